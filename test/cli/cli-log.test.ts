// The decision log from the command line, run as built (node dist/cli.js):
// veto eval --log, veto log verify, veto replay.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyLog } from "../../adapter/audit/index.js";
import { BUNDLE, bundleData, jsonLines, read, requireBundle, requireCli, runCli, write } from "../helpers/index.js";

let dir: string;
beforeAll(() => {
  requireBundle();
  requireCli();
  dir = mkdtempSync(join(tmpdir(), "veto-cli-log-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const veto = runCli;

const lines = jsonLines;
const parse = (text: string): Record<string, unknown>[] =>
  text
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/**
 * Calls for the replay test, each with its verdict under the bundle's data
 * (acme: approval_threshold 5000, max_amount 250000) and under the changed
 * data below (approval_threshold 50000, max_amount 100000).
 */
const SCENARIO: { call: unknown; before: string; after: string }[] = [
  { call: read(), before: "allow [read_only]", after: "same" },
  { call: write({ amount: 1000 }), before: "allow [low_value]", after: "same" },
  { call: write({ amount: 9000 }), before: "require_approval [production_amount]", after: "allow [low_value]" },
  { call: write({ amount: 48000 }), before: "require_approval [production_amount]", after: "allow [low_value]" },
  { call: write({ amount: 60000 }), before: "require_approval [production_amount]", after: "same" },
  { call: write({ amount: 120000 }), before: "require_approval [production_amount]", after: "deny [amount_over_limit]" },
  {
    call: write({ amount: 9000, changes: { stage: "closed_won" } }),
    before: "require_approval [production_amount, sensitive_field]",
    after: "require_approval [sensitive_field]",
  },
  {
    call: write({ object: "contact", recordId: "c_1", changes: { ssn: "123-45-6789", phone: "+1 555 0100" } }),
    before: "require_approval [sensitive_field]",
    after: "same",
  },
  { call: write({ amount: 300000 }), before: "deny [amount_over_limit]", after: "same" },
  { call: write({ destination: "https://gmail.com/x" }), before: "deny [blocked_destination]", after: "same" },
  { call: write({ destination: "https://gmail.com/x" }), before: "deny [blocked_destination]", after: "same" },
  // Three denies in the window: escalated. Replay uses the recorded history, so it stays escalated.
  { call: write({ amount: 9000 }), before: "deny [repeated_denies]", after: "same" },
  { call: "{not json", before: "deny [invalid_input]", after: "skipped" },
];

const verdict = (d: Record<string, unknown>): string =>
  `${String(d["action"])} [${(d["reasons"] as { code: string }[]).map((r) => r.code).join(", ")}]`;

function changedData(): string {
  const data = bundleData();
  const tenants = data.veto.config["tenants"] as Record<string, Record<string, unknown>>;
  tenants["acme"]!["approval_threshold"] = 50000;
  tenants["acme"]!["max_amount"] = 100000;
  const file = join(dir, "changed-data.json");
  writeFileSync(file, JSON.stringify(data));
  return file;
}

/** Run the scenario through `veto eval --log` into a new log; returns the log path and the decisions printed. */
function recordScenario(name: string, env: Record<string, string> = {}): { log: string; decisions: Record<string, unknown>[] } {
  const log = join(dir, name);
  const r = veto(["eval", "--bundle", BUNDLE, "--log", log], lines(...SCENARIO.map((s) => s.call)), env);
  expect(r.status, r.stderr).toBe(0);
  return { log, decisions: parse(r.stdout) };
}

describe("veto eval --log, then veto log verify", () => {
  it("every printed decision has its record in the log, which verifies: count and head hash, exit 0", () => {
    const { log, decisions } = recordScenario("eval.jsonl");
    expect(decisions.map(verdict)).toEqual(SCENARIO.map((s) => s.before));
    const records = parse(readFileSync(log, "utf8"));
    expect(records.map((r) => r["decision_id"])).toEqual(decisions.map((d) => d["id"]));
    expect(records.map((r) => r["seq"])).toEqual(SCENARIO.map((_, i) => i + 1));

    const r = veto(["log", "verify", log]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(`${log}: ${SCENARIO.length} records, head ${String(records.at(-1)!["hash"])}\n`);
  });

  it("appends to an existing log, continuing its chain", () => {
    const log = join(dir, "append.jsonl");
    veto(["eval", "--bundle", BUNDLE, "--log", log], lines(read(), read()));
    veto(["eval", "--bundle", BUNDLE, "--log", log], lines(read()));
    const r = veto(["log", "verify", log]);
    expect([r.status, r.stdout]).toEqual([0, expect.stringMatching(/: 3 records, head sha256:[0-9a-f]{64}\n$/)]);
  });

  it("sensitive values never appear in clear in the log; with VETO_RECORD_KEY they are HMAC digests", () => {
    for (const [name, env, prefix] of [
      ["plain.jsonl", {}, "sha256:"],
      ["keyed.jsonl", { VETO_RECORD_KEY: "a-deployment-key-of-32-bytes-000" }, "hmac-sha256:"],
    ] as const) {
      const { log } = recordScenario(name, env);
      const text = readFileSync(log, "utf8");
      for (const secret of ["123-45-6789", "+1 555 0100", "closed_won"]) expect(text).not.toContain(secret);
      const contact = parse(text)[7]!;
      expect([...(contact["masked"] as string[])].sort()).toEqual(["/input/arguments/changes/phone", "/input/arguments/changes/ssn"]);
      const changes = (contact["input"] as { arguments: { changes: Record<string, string> } }).arguments.changes;
      expect(changes["ssn"]!.startsWith(prefix)).toBe(true);
      expect(changes["phone"]!.startsWith(prefix)).toBe(true);
    }
  });

  it("editing any byte of any record makes verify fail, naming that line", async () => {
    const { log } = recordScenario("tamper-source.jsonl");
    const original = readFileSync(log);
    const starts = [0];
    for (let i = 0; i < original.length; i++) if (original[i] === 0x0a && i + 1 < original.length) starts.push(i + 1);
    const target = join(dir, "tampered.jsonl");
    // Every byte of a record (newline included), in-process: the same verifyLog the CLI runs.
    for (const line of [8]) {
      const end = original.indexOf(0x0a, starts[line - 1]);
      for (let at = starts[line - 1]!; at <= end; at++) {
        const copy = Buffer.from(original);
        copy[at] = copy[at]! ^ 0x01;
        writeFileSync(target, copy);
        const result = await verifyLog([target]);
        expect(result.ok, `byte ${at}`).toBe(false);
        expect(result, `byte ${at}`).toMatchObject({ file: target, line });
      }
    }
    // One byte in every record through the CLI: exit 1 and one line naming the file and line.
    for (const [index, start] of starts.entries()) {
      const copy = Buffer.from(original);
      const at = start + 40 + index;
      copy[at] = copy[at] === 0x30 ? 0x31 : 0x30;
      writeFileSync(target, copy);
      const r = veto(["log", "verify", target]);
      expect(r.status).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr.split("\n")).toEqual([
        expect.stringMatching(new RegExp(`^veto: log verify failed: ${target}: line ${index + 1}: `)),
        "",
      ]);
    }
  });

  it("a deleted line, swapped lines and a missing file fail verify, naming where", () => {
    const { log } = recordScenario("tamper-lines.jsonl");
    const text = readFileSync(log, "utf8").split("\n").slice(0, -1);
    const target = join(dir, "lines.jsonl");
    writeFileSync(target, [...text.slice(0, 3), ...text.slice(4)].map((l) => `${l}\n`).join(""));
    expect(veto(["log", "verify", target]).stderr).toBe(`veto: log verify failed: ${target}: line 4: prev_hash does not match line 3\n`);
    writeFileSync(target, [text[0], text[2], text[1], ...text.slice(3)].map((l) => `${l}\n`).join(""));
    expect(veto(["log", "verify", target]).stderr).toMatch(new RegExp(`^veto: log verify failed: ${target}: line 2: `));
    const missing = veto(["log", "verify", join(dir, "nope.jsonl")]);
    expect([missing.status, missing.stderr]).toEqual([
      1,
      `veto: log verify failed: ${join(dir, "nope.jsonl")}: cannot read file: ENOENT\n`,
    ]);
  });

  it("verifies several logs, one line each; usage errors exit 2", () => {
    const a = recordScenario("a.jsonl").log;
    const b = recordScenario("b.jsonl").log;
    const r = veto(["log", "verify", a, b]);
    expect(r.status).toBe(0);
    expect(
      r.stdout
        .trim()
        .split("\n")
        .map((l) => l.split(":")[0]),
    ).toEqual([a, b]);
    expect(veto(["log", "verify"]).status).toBe(2);
    expect(veto(["log", "frob"]).stderr).toMatch(/^veto: unknown log subcommand frob\n/);
    expect(veto(["eval", "--bundle", BUNDLE, "--log", a, "--records", b]).status).toBe(2);
  });

  it("a log that does not verify is refused by eval --log (exit 2, one line)", () => {
    const { log } = recordScenario("broken-for-eval.jsonl");
    const text = readFileSync(log, "utf8");
    writeFileSync(log, text.replace("agent:sales-assistant", "agent:sales-assistanT"));
    const r = veto(["eval", "--bundle", BUNDLE, "--log", log], lines(read()));
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(new RegExp(`^veto: cannot open decision log ${log}: ${log}: line 1: hash mismatch\n$`));
  });
});

describe("veto replay", () => {
  it("against changed data: exactly the expected verdicts change, with a count per kind", () => {
    const { log, decisions } = recordScenario("replay.jsonl");
    const data = changedData();
    const r = veto(["replay", "--bundle", BUNDLE, "--data", data, log]);
    expect(r.status, r.stderr).toBe(0);
    const expectedChanges = SCENARIO.flatMap((s, i) =>
      s.after === "same" || s.after === "skipped" ? [] : [`${String(decisions[i]!["id"])}: ${s.before} → ${s.after}`],
    );
    const out = r.stdout.trim().split("\n");
    expect(out.slice(0, expectedChanges.length)).toEqual(expectedChanges);
    expect(out.slice(expectedChanges.length)).toEqual([
      `${String(decisions[12]!["id"])}: skipped (${log} line 13): the call was not recorded (it was not JSON, or broke the input limits)`,
      expect.stringMatching(
        /^replayed 12 of 13 decisions against bundle sha256:[0-9a-f]{64} \(revision .+\): 4 changed, 8 unchanged, 1 skipped$/,
      ),
      "require_approval → allow: 2",
      "require_approval → deny: 1",
      "require_approval → require_approval: 1",
    ]);
  });

  it("--json gives the same report as data; --fail-on-change exits 1 when anything changes", () => {
    const { log, decisions } = recordScenario("replay-json.jsonl");
    const data = changedData();
    const r = veto(["replay", "--bundle", BUNDLE, "--data", data, "--json", "--fail-on-change", log]);
    expect(r.status).toBe(1);
    const report = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(report).toMatchObject({ logs: [log], data, decisions: 13, unchanged: 8 });
    expect(report["summary"]).toEqual({
      "require_approval → allow": 2,
      "require_approval → deny": 1,
      "require_approval → require_approval": 1,
    });
    expect(report["changed"]).toEqual([
      expect.objectContaining({
        decision_id: decisions[2]!["id"],
        file: log,
        line: 3,
        tool: "crm.update",
        actor_id: "agent:sales-assistant",
        tenant_id: "acme",
        old: {
          action: "require_approval",
          escalated: false,
          codes: ["production_amount"],
          approvers: ["user:crm-owner@acme.example", "user:revops-lead@acme.example"],
        },
        new: { action: "allow", escalated: false, codes: ["low_value"], approvers: [] },
      }),
      expect.objectContaining({ decision_id: decisions[3]!["id"], line: 4 }),
      expect.objectContaining({
        decision_id: decisions[5]!["id"],
        line: 6,
        new: expect.objectContaining({ codes: ["amount_over_limit"] }),
      }),
      expect.objectContaining({ decision_id: decisions[6]!["id"], line: 7, new: expect.objectContaining({ codes: ["sensitive_field"] }) }),
    ]);
    expect(report["skipped"]).toEqual([expect.objectContaining({ decision_id: decisions[12]!["id"], line: 13 })]);
  });

  it("against the same bundle and data nothing changes (exit 0 even with --fail-on-change)", () => {
    const { log } = recordScenario("replay-same.jsonl");
    const r = veto(["replay", "--bundle", BUNDLE, "--fail-on-change", log]);
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split("\n").slice(-1)[0]).toMatch(/: 0 changed, 12 unchanged, 1 skipped$/);
    const keyed = recordScenario("replay-same-keyed.jsonl", { VETO_RECORD_KEY: "another-deployment-key-0123456789" }).log;
    const k = veto(["replay", "--bundle", BUNDLE, "--json", "--fail-on-change", keyed]);
    expect([k.status, (JSON.parse(k.stdout) as { changed: unknown[] }).changed]).toEqual([0, []]);
  });

  it("refuses a log that does not verify before replaying anything (exit 1)", () => {
    const { log } = recordScenario("replay-tampered.jsonl");
    const text = readFileSync(log, "utf8");
    writeFileSync(log, text.replace('"amount":48000', '"amount":4800'));
    const r = veto(["replay", "--bundle", BUNDLE, log]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`veto: log ${log} does not verify, nothing replayed: ${log}: line 4: hash mismatch\n`);
  });

  it("exits 2 on an unusable bundle or data file, or a wrong command line", () => {
    const { log } = recordScenario("replay-usage.jsonl");
    expect(veto(["replay", "--bundle", "/etc/hostname", log]).status).toBe(2);
    expect(veto(["replay", "--bundle", BUNDLE, "--data", "/etc/hostname", log]).stderr).toMatch(/^veto: data file .* is not valid JSON/);
    expect(veto(["replay", "--bundle", BUNDLE]).status).toBe(2);
    expect(veto(["replay", log]).status).toBe(2);
  });
});
