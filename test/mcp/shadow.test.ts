// `veto mcp-proxy --shadow-bundle PATH --shadow-data FILE` (docs/mcp.md): a
// real MCP client over stdio, the proxy started as the docs start it, the
// counting upstream. Seeded generated calls go through a proxy with a
// candidate (the test bundle with a relaxed approval threshold) and one
// without: the host sees the same results and the upstream receives the same
// calls with the same arguments; each record carries the candidate's
// verdict, which is what a replay of the recorded call on the candidate gives;
// a candidate that fails to evaluate is recorded as `shadow.error`, never a deny.
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readLog, type LoggedRecord } from "../../adapter/audit/index.js";
import { Replayer } from "../../adapter/audit/replay.js";
import { FIXTURE_DATA, requireBundle, runCli } from "../helpers/index.js";
import { seededRandom } from "../helpers/generate-calls.js";
import { ABORT_ABOVE, failingCandidate } from "../helpers/shadow.js";
import { CONTEXT_FLAGS, UPSTREAM, startProxy, vetoMeta, type Host } from "./helpers.js";

const SEED = Number(process.env["VETO_TEST_SEED"] ?? 2111);

const hosts: Host[] = [];
afterEach(async () => {
  for (const host of hosts.splice(0)) await host.close();
});

function relaxedData(): Record<string, unknown> {
  const data = JSON.parse(readFileSync(FIXTURE_DATA, "utf8")) as { veto: { config: { tenants: Record<string, Record<string, unknown>> } } };
  data.veto.config.tenants["acme"]!["approval_threshold"] = 50_000;
  return data;
}

function generatedCalls(seed: number, count: number): { name: string; arguments: Record<string, unknown> }[] {
  const random = seededRandom(seed);
  const update = { object: "opportunity", recordId: "opp_1", tenantId: "acme", changes: { close_date: "2027-01-31" } };
  return Array.from({ length: count }, () => {
    const r = random();
    if (r < 0.55) return { name: "crm.update", arguments: { ...update, amount: Math.floor(random() * 120_000), reason: "Customer asked" } };
    if (r < 0.65) return { name: "crm.update", arguments: { ...update, tenantId: "globex", reason: "Customer asked" } };
    if (r < 0.75) return { name: "crm.update", arguments: { ...update, object: "account", changes: { credit_limit: 1 }, reason: "Raise" } };
    return { name: "crm.read", arguments: { object: "contact", recordId: "c_1", tenantId: "acme", fields: ["name", "company"] } };
  });
}

/** What the host sees of a result, without the decision id (each proxy makes its own). */
function seen(result: unknown): unknown {
  const { decisionId: _, ...meta } = vetoMeta(result);
  const r = result as { isError?: boolean; content?: { text?: string }[] };
  return {
    isError: r.isError ?? false,
    meta,
    text: (r.content ?? []).map((c) => (c.text ?? "").replace(/[0-9A-HJKMNP-TV-Z]{26}/g, "<id>")),
  };
}

/**
 * The generated calls through a proxy without a shadow and one with `shadowFlags`:
 * the host sees the same results and the upstream the same calls with the same
 * arguments, and the records differ only in their ids, times, chain and `shadow`.
 * Returns the shadowed proxy's decision records with the calls behind them.
 */
async function throughBoth(
  shadowFlags: (dir: string) => string[],
  calls: { name: string; arguments: Record<string, unknown> }[],
): Promise<{ logged: LoggedRecord[]; calls: typeof calls }> {
  const plain = await startProxy([]);
  hosts.push(plain);
  const shadowed = await startProxy(shadowFlags(plain.dir));
  hosts.push(shadowed);
  for (const call of calls) {
    const [a, b] = [await plain.client.callTool(call), await shadowed.client.callTool(call)];
    expect(seen(b), JSON.stringify(call)).toEqual(seen(a));
  }
  const forwarded = (host: Host) => host.calls().map(({ name, arguments: args }) => ({ name, arguments: args }));
  expect(forwarded(shadowed)).toEqual(forwarded(plain));
  expect(forwarded(shadowed).length).toBeGreaterThan(0);

  const decisions = async (log: string) => (await readLog([log])).filter((r) => r.record["type"] === "decision");
  const logged = await decisions(shadowed.log);
  expect(logged).toHaveLength(calls.length);
  const strip = (r: Record<string, unknown>) => {
    const { decision_id: _i, timestamp: _t, prev_hash: _p, hash: _h, shadow: _s, metrics: _m, expires_at: _e, ...rest } = r;
    return rest;
  };
  expect(logged.map((l) => strip(l.record))).toEqual((await decisions(plain.log)).map((l) => strip(l.record)));
  return { logged, calls };
}

describe("veto mcp-proxy --shadow-bundle", () => {
  it(`records the candidate's verdict on each proxied call and changes nothing the host or upstream sees (seed ${SEED})`, async () => {
    const { logged } = await throughBoth(
      (dir) => {
        const relaxedPath = join(dir, "relaxed.json");
        writeFileSync(relaxedPath, JSON.stringify(relaxedData()));
        return ["--shadow-bundle", requireBundle(), "--shadow-data", relaxedPath];
      },
      generatedCalls(SEED, 40),
    );

    const replayer = await Replayer.create({ bundle: requireBundle(), data: relaxedData() });
    const transitions = new Map<string, number>();
    for (const entry of logged) {
      const shadow = entry.record["shadow"] as
        { revision: string; hash: string; action: string; escalated: boolean; reasons: string[] } | undefined;
      const result = entry.record["result"] as { action: string };
      if (entry.record["history"] === null) {
        expect(shadow).toBeUndefined();
        continue;
      }
      const replayed = await replayer.replay(entry);
      if (replayed.kind !== "changed" && replayed.kind !== "unchanged") throw new Error(`not replayed: ${JSON.stringify(replayed)}`);
      expect(shadow, String(entry.record["decision_id"])).toEqual({
        revision: replayer.bundle.revision,
        hash: replayer.bundle.hash,
        action: replayed.new.action,
        escalated: replayed.new.escalated,
        reasons: replayed.new.codes,
      });
      const key = `${result.action}→${shadow!.action}`;
      transitions.set(key, (transitions.get(key) ?? 0) + 1);
    }
    // The relaxed threshold shows: calls the proxy held for approval that the candidate would allow.
    expect(transitions.get("require_approval→allow") ?? 0, JSON.stringify([...transitions])).toBeGreaterThan(0);
  }, 60_000);

  it(`a candidate whose evaluation fails is recorded as shadow.error and changes nothing (seed ${SEED + 1})`, async () => {
    let candidate = "";
    const { logged, calls } = await throughBoth(
      (dir) => {
        candidate = failingCandidate(dir);
        return ["--shadow-bundle", candidate];
      },
      generatedCalls(SEED + 1, 40),
    );
    const version = (await Replayer.create({ bundle: candidate })).bundle;
    let failed = 0;
    let answered = 0;
    for (const [i, entry] of logged.entries()) {
      if (entry.record["history"] === null) continue;
      const shadow = entry.record["shadow"] as Record<string, unknown>;
      const amount = (calls[i]!.arguments as { amount?: unknown }).amount;
      const context = `${JSON.stringify(calls[i])} -> ${JSON.stringify(shadow)}`;
      expect(shadow, context).toMatchObject({ revision: version.revision, hash: version.hash });
      if (typeof amount === "number" && amount > ABORT_ABOVE) {
        expect(Object.keys(shadow).sort(), context).toEqual(["error", "hash", "revision"]);
        expect(shadow["error"], context).toMatch(/var assignment conflict/);
        failed += 1;
      } else {
        expect(shadow, context).toHaveProperty("action", (entry.record["result"] as { action: string }).action);
        if (failed > 0) answered += 1;
      }
    }
    expect(failed).toBeGreaterThan(0);
    expect(answered).toBeGreaterThan(0);
  }, 120_000);

  it("refuses --shadow-data without --shadow-bundle, and an unusable candidate, with one line and exit 2", () => {
    const base = [
      "mcp-proxy",
      "--bundle",
      requireBundle(),
      "--log",
      join(tmpdir(), `veto-mcp-shadow-${process.pid}.jsonl`),
      ...CONTEXT_FLAGS,
    ];
    const refusal = (args: string[]) => {
      const r = runCli([...args, "--", process.execPath, UPSTREAM]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stdout).toBe("");
      return r.stderr.split("\n").filter((l) => l.startsWith("veto: "));
    };
    expect(refusal([...base, "--shadow-data", FIXTURE_DATA])).toEqual([expect.stringMatching(/--shadow-data needs --shadow-bundle/)]);
    expect(refusal([...base, "--shadow-bundle", "/nonexistent/candidate.tar.gz"])).toEqual([expect.stringMatching(/candidate\.tar\.gz/)]);
  });
});
