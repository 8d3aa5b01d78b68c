/**
 * Shadow mode (docs/policy-changes.md): a candidate evaluated beside the
 * enforced bundle, on the real bundle with generated calls. The decision is
 * what it would be without the shadow; the record carries the candidate's
 * verdict, equal to a replay of the same call and history on the candidate;
 * the shadow fields are inside the hash chain; the report shows the
 * disagreements; a shadow bundle from a server is hot-reloaded; a candidate
 * whose evaluation fails at run time is recorded as `shadow.error` and changes
 * nothing.
 */
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openFileLog, readLog, verifyLog } from "../../adapter/audit/index.js";
import { Replayer } from "../../adapter/audit/replay.js";
import { buildReport } from "../../adapter/audit/report.js";
import { VetoOptionsError } from "../../adapter/index.js";
import { FIXTURE_DATA, MemorySink, ROOT, jsonLines, makeVeto, read, requireBundle, requireCli, runCli, write } from "../helpers/index.js";
import { tempDir } from "../helpers/file-log.js";
import { seededRandom } from "../helpers/generate-calls.js";
import { ABORT_ABOVE, failingCandidate } from "../helpers/shadow.js";

const SEED = Number(process.env["VETO_TEST_SEED"] ?? 2108);

let dir: string;
let cleanup: () => Promise<void>;
let relaxed: Record<string, unknown>;
let relaxedPath: string;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
  const data = JSON.parse(readFileSync(FIXTURE_DATA, "utf8")) as { veto: { config: { tenants: Record<string, Record<string, unknown>> } } };
  data.veto.config.tenants["acme"]!["approval_threshold"] = 50_000;
  relaxed = data;
  relaxedPath = join(dir, "relaxed.json");
  writeFileSync(relaxedPath, JSON.stringify(relaxed));
});
afterAll(() => cleanup());

function generatedCalls(seed: number, count: number): Record<string, unknown>[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, () => {
    const r = random();
    if (r < 0.4) return write({ amount: Math.floor(random() * 120_000) });
    if (r < 0.55) return write({ object: "account", changes: { credit_limit: 1 } });
    if (r < 0.7) return write({ tenantId: "globex" });
    if (r < 0.8) return write({}, { environment: "production", reason: "" });
    return read();
  });
}

describe("shadow mode", () => {
  it(`never changes a decision, and records the candidate's verdict on the same call and history (seed ${SEED})`, async () => {
    const logPath = join(dir, "shadow.jsonl");
    const log = await openFileLog(logPath);
    const plain = await makeVeto();
    const shadowed = await makeVeto({ recordSink: log, shadow: { bundle: requireBundle(), data: relaxed } });
    const strip = (d: { id: string; timestamp: string }) => ({ ...d, id: "", timestamp: "" });
    for (const call of generatedCalls(SEED, 150)) {
      plain.clock.advance(20_000);
      shadowed.clock.advance(20_000);
      const [a, b] = [await plain.veto.protect(call), await shadowed.veto.protect(call)];
      expect(strip(b), JSON.stringify(call)).toEqual(strip(a));
    }
    await plain.veto.close();
    await shadowed.veto.close();
    await log.close();

    const records = (await readLog([logPath])).filter((r) => r.record["type"] === "decision");
    const replayer = await Replayer.create({ bundle: requireBundle(), data: relaxed });
    let disagree = 0;
    for (const logged of records) {
      const shadow = logged.record["shadow"] as { action: string; escalated: boolean; reasons: string[]; hash: string } | undefined;
      const result = logged.record["result"] as { action: string; escalated: boolean };
      if (logged.record["history"] === null) {
        expect(shadow).toBeUndefined();
        continue;
      }
      expect(shadow, String(logged.record["decision_id"])).toBeDefined();
      const replayed = await replayer.replay(logged);
      if (replayed.kind !== "changed" && replayed.kind !== "unchanged") throw new Error(`not replayed: ${JSON.stringify(replayed)}`);
      expect({ action: shadow!.action, escalated: shadow!.escalated, reasons: shadow!.reasons }).toEqual({
        action: replayed.new.action,
        escalated: replayed.new.escalated,
        reasons: replayed.new.codes,
      });
      expect(shadow!.hash).toBe(replayer.bundle.hash);
      if (shadow!.action !== result.action || shadow!.escalated !== result.escalated) disagree += 1;
    }
    expect(disagree).toBeGreaterThan(0);

    const report = await buildReport(await readLog([logPath]), { untilMs: Date.parse("2030-01-01T00:00:00Z") });
    expect(report.shadow.disagreements).toBe(disagree);
    expect(report.shadow.transitions["require_approval → allow"]).toBeGreaterThan(0);
    expect(report.shadow.examples["require_approval → allow"]!.length).toBeGreaterThan(0);

    // The shadow verdict is inside the hash chain: editing it breaks verification.
    const text = readFileSync(logPath, "utf8");
    const tampered = join(dir, "tampered.jsonl");
    expect(text).toMatch(/"shadow":\{"action":"allow"/);
    writeFileSync(tampered, text.replace(/"shadow":\{"action":"allow"/, '"shadow":{"action":"deny"'));
    expect((await verifyLog([logPath])).ok).toBe(true);
    expect((await verifyLog([tampered])).ok).toBe(false);
  });

  it(`a candidate whose evaluation fails is recorded as shadow.error, never a deny, and later calls still decide (seed ${SEED})`, async () => {
    const candidate = failingCandidate(dir);
    const logPath = join(dir, "failing.jsonl");
    const log = await openFileLog(logPath);
    const plain = await makeVeto();
    const shadowed = await makeVeto({ recordSink: log, shadow: { bundle: candidate } });
    const strip = (d: { id: string; timestamp: string }) => ({ ...d, id: "", timestamp: "" });
    const calls = generatedCalls(SEED, 150);
    for (const call of calls) {
      plain.clock.advance(20_000);
      shadowed.clock.advance(20_000);
      const [a, b] = [await plain.veto.protect(call), await shadowed.veto.protect(call)];
      expect(strip(b), JSON.stringify(call)).toEqual(strip(a));
    }
    await plain.veto.close();
    await shadowed.veto.close();
    await log.close();

    const records = (await readLog([logPath])).filter((r) => r.record["type"] === "decision");
    expect(records).toHaveLength(calls.length);
    const version = (await Replayer.create({ bundle: candidate })).bundle;
    let failed = 0;
    let answeredAfterFailure = 0;
    for (const [i, logged] of records.entries()) {
      const record = logged.record;
      if (record["history"] === null) continue;
      const shadow = record["shadow"] as Record<string, unknown>;
      const result = record["result"] as { action: string; escalated: boolean; reasons: { code: string }[] };
      const amount = (calls[i]!["arguments"] as { amount?: unknown }).amount;
      const context = `${i}: ${JSON.stringify(calls[i])} -> ${JSON.stringify(shadow)}`;
      expect(shadow, context).toMatchObject({ revision: version.revision, hash: version.hash });
      if (typeof amount === "number" && amount > ABORT_ABOVE) {
        expect(Object.keys(shadow).sort(), context).toEqual(["error", "hash", "revision"]);
        expect(shadow["error"], context).toMatch(/conflict/);
        // The enforced decision was the policy's own, not an evaluation_error deny.
        expect(
          result.reasons.map((r) => r.code),
          context,
        ).not.toContain("evaluation_error");
        failed += 1;
      } else {
        expect(shadow, context).toEqual({
          revision: version.revision,
          hash: version.hash,
          action: result.action,
          escalated: result.escalated,
          reasons: result.reasons.map((r) => r.code),
        });
        if (failed > 0) answeredAfterFailure += 1;
      }
    }
    expect(failed).toBeGreaterThan(0);
    expect(answeredAfterFailure).toBeGreaterThan(0);
    expect((await verifyLog([logPath])).ok).toBe(true);
    const report = await buildReport(await readLog([logPath]), { untilMs: Date.parse("2030-01-01T00:00:00Z") });
    expect(report.shadow.errors).toBe(failed);
    expect(report.shadow.disagreements).toBe(0);

    // The CLI prints the same decisions with the failing candidate as without one.
    requireCli();
    const input = jsonLines(...calls.slice(0, 40));
    const withShadow = runCli(
      ["eval", "--bundle", requireBundle(), "--records", join(dir, "failing-eval.jsonl"), "--shadow-bundle", candidate],
      input,
    );
    const without = runCli(["eval", "--bundle", requireBundle(), "--records", join(dir, "plain-eval.jsonl")], input);
    expect(withShadow.status, withShadow.stderr).toBe(0);
    const lines = (text: string) =>
      text
        .trim()
        .split("\n")
        .map((l) => strip(JSON.parse(l) as { id: string; timestamp: string }));
    expect(lines(withShadow.stdout)).toEqual(lines(without.stdout));
    expect(readFileSync(join(dir, "failing-eval.jsonl"), "utf8")).toMatch(
      /"shadow":\{"revision":"[^"]+","hash":"[^"]+","error":"[^"]*var assignment conflict"\}/,
    );
  }, 120_000);

  it("refuses an unusable shadow bundle or options at createVeto, naming the option", async () => {
    await expect(makeVeto({ shadow: { bundle: join(dir, "missing.tar.gz") } })).rejects.toThrow(/missing\.tar\.gz/);
    await expect(makeVeto({ shadow: {} as never })).rejects.toBeInstanceOf(VetoOptionsError);
    await expect(makeVeto({ shadow: { bundle: requireBundle(), data: [] as never } })).rejects.toThrow(/shadow\.data/);
  });

  it("reloads a shadow bundle from a bundle server, recording the new version", async () => {
    const bytes = { a: readFileSync(requireBundle()), b: readFileSync(join(ROOT, "bundles/crm.tar.gz")) };
    let serving = bytes.a;
    const server: Server = createServer((req, res) => {
      const etag = `"${createHash("sha256").update(serving).digest("hex").slice(0, 16)}"`;
      if (req.headers["if-none-match"] === etag) res.writeHead(304, { etag }).end();
      else res.writeHead(200, { etag, "content-type": "application/gzip" }).end(serving);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/crm.tar.gz`;
      const sink = new MemorySink();
      const { veto } = await makeVeto({ recordSink: sink, shadow: { bundle: { url, pollIntervalMs: 20 } } });
      const hashOf = () => (sink.records.at(-1) as { shadow?: { hash: string } }).shadow?.hash;
      await veto.protect(write());
      const first = hashOf();
      serving = bytes.b;
      let second = first;
      for (let i = 0; i < 200 && second === first; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        await veto.protect(write());
        second = hashOf();
      }
      await veto.close();
      expect(first).toBeDefined();
      expect(second).not.toBe(first);
      // The enforced bundle did not move.
      expect(sink.records.at(-1)!.bundles["crm"]!.hash).toBe(veto.bundle.hash);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("veto eval --shadow-bundle records the candidate's verdict and prints the enforced one", () => {
    requireCli();
    const logPath = join(dir, "eval.jsonl");
    const call = write({ amount: 9000 });
    const run = runCli(
      ["eval", "--bundle", requireBundle(), "--log", logPath, "--shadow-bundle", requireBundle(), "--shadow-data", relaxedPath],
      jsonLines(call),
    );
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ action: "require_approval" });
    const record = JSON.parse(readFileSync(logPath, "utf8").trim().split("\n")[0]!) as { shadow: unknown };
    expect(record.shadow).toMatchObject({ action: "allow", escalated: false });
    expect(runCli(["eval", "--bundle", requireBundle(), "--shadow-data", relaxedPath], jsonLines(call)).status).toBe(2);
  });
});
