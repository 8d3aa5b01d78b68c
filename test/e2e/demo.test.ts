/**
 * The demo end to end (`make demo`): runs scripts/demo/run.mjs against the
 * built package and the committed bundle, and checks its verdicts, the CRM's
 * state and the decision log — not its wording.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, requireBundle, requireCli } from "../helpers/index.js";

interface Step {
  label: string;
  actor: string;
  tool: string;
  action: string;
  escalated: boolean;
  reasons: string[];
  executed: boolean;
  review: string[];
  effect: string;
  decision: string;
}

interface DemoOutput {
  bundle: { revision: string; hash: string };
  steps: Step[];
  incidents: { actorId: string; tenantId: string; recentDenies: number; row: number; countedRows: number[]; rejectedRows: number[] }[];
  crm: { path: string; before: CrmState; after: CrmState };
  log: {
    path: string;
    records: number;
    checkpoints: number;
    publicKey: string;
    verified: {
      ok: boolean;
      count: number;
      head: string;
      checkpoints?: { records: number; checkpoints: number; signatures: string; uncovered: unknown };
    };
  };
}

interface CrmState {
  tenants: Record<string, Record<string, Record<string, Record<string, unknown>>>>;
  exports: unknown[];
  writes: number;
}

let dir: string;
let out: DemoOutput;

beforeAll(() => {
  requireBundle();
  requireCli();
  dir = mkdtempSync(join(tmpdir(), "veto-demo-"));
  const stdout = execFileSync("node", [resolve(ROOT, "scripts/demo/run.mjs"), "--json", "--dir", dir], {
    encoding: "utf8",
    timeout: 60_000,
  });
  out = JSON.parse(stdout) as DemoOutput;
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const field = (s: CrmState, tenant: string, object: string, id: string, name: string): unknown => s.tenants[tenant]?.[object]?.[id]?.[name];

describe("make demo", () => {
  it("walks every row of the risk table with the expected verdicts", () => {
    const verdicts = out.steps.map((s) => [s.tool, s.action, s.escalated, s.reasons.join(","), s.executed]);
    expect(verdicts).toEqual([
      ["crm.read", "allow", false, "read_only", true],
      ["crm.search", "allow", false, "read_only", true],
      ["crm.update", "allow", false, "low_value", true],
      ["crm.update", "require_approval", false, "production_amount,sensitive_field", true],
      ["crm.update", "require_approval", false, "sensitive_field", false],
      ["crm.update", "deny", false, "wrong_tenant", false],
      ["crm.update", "deny", false, "missing_reason", false],
      ["crm.export", "deny", false, "blocked_destination", false],
      ["crm.update", "deny", false, "invalid_input", false],
      ["crm.update", "deny", false, "wrong_tenant", false],
      ["crm.update", "deny", true, "repeated_denies", false],
      ["crm.read", "deny", true, "repeated_denies", false],
      ["crm.update", "require_approval", false, "production_amount", false],
      ["crm.update", "require_approval", false, "production_amount", true],
    ]);
  });

  it("refuses the self-approval, then records the owner's answers", () => {
    expect(out.steps[3]?.review).toEqual(["approved by user:crm-owner@acme.example"]);
    expect(out.steps[4]?.review).toEqual(["self-approval refused (self_approval)", "rejected by user:crm-owner@acme.example"]);
  });

  it("refuses an approved call whose record a colleague edited after it was decided (record_changed)", () => {
    expect(out.steps[12]?.review).toEqual(["record edited by a colleague", "approved by user:crm-owner@acme.example"]);
    expect(out.steps[12]?.effect).toBe("not executed (record_changed)");
    const records = readFileSync(out.log.path, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((r) => r["decision_id"] === out.steps[12]?.decision);
    expect(records.map((r) => r["type"])).toEqual(["decision", "approval", "execution"]);
    expect(records[0]).toMatchObject({ record_state: "v1" });
    expect(records[2]).toMatchObject({ result: { execution: "refused", reason: "record_changed" }, record_state: "v2" });
  });

  it("runs the call the owner amended, once, with the amended arguments; the records link both decisions", () => {
    expect(out.steps[13]?.review).toEqual(["amended by user:crm-owner@acme.example (require_approval, approved)"]);
    expect(field(out.crm.after, "acme", "opportunity", "opp_1", "amount")).toBe(7500);
    const all = readFileSync(out.log.path, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const original = out.steps[13]!.decision;
    const amendment = all.find((r) => r["type"] === "amendment" && r["decision_id"] === original)!;
    const amendedTo = amendment["amended_to"] as string;
    expect(all.find((r) => r["type"] === "decision" && r["decision_id"] === amendedTo)).toMatchObject({
      amended_from: original,
      amended_by: "user:crm-owner@acme.example",
    });
    expect(all.filter((r) => r["decision_id"] === amendedTo).map((r) => r["type"])).toEqual(["decision", "approval", "execution"]);
  });

  it("opens an incident for each escalated decision", () => {
    expect(out.incidents.map((i) => [i.actorId, i.tenantId, i.recentDenies])).toEqual([
      ["agent:sales-assistant", "acme", 3],
      ["agent:sales-assistant", "acme", 4],
    ]);
  });

  it("says which rows each escalation counted, row 5's rejected approval among them", () => {
    expect(out.incidents.map((i) => [i.row, i.countedRows, i.rejectedRows])).toEqual([
      [11, [5, 6, 10], [5]],
      [12, [5, 6, 10, 11], [5]],
    ]);
    for (const i of out.incidents) expect(i.countedRows).toHaveLength(i.recentDenies);
    expect(out.steps[4]?.effect).toBe("not executed (approval_rejected; counts as a deny towards escalation)");
    const human = execFileSync("node", [resolve(ROOT, "scripts/demo/run.mjs"), "--dir", join(dir, "human")], {
      encoding: "utf8",
      timeout: 60_000,
      env: { ...process.env, NO_COLOR: "1" },
    });
    expect(human).toMatch(
      /^row 11: incident review opened for agent:sales-assistant in acme after 3 denies: rows 5, 6 and 10 \(row 5: a rejected approval, which counts as a deny\)/m,
    );
  });

  it("changes the CRM only where the call was allowed or approved", () => {
    const { before, after } = out.crm;
    expect(field(after, "acme", "opportunity", "opp_1", "close_date")).toBe("2026-12-20");
    expect(field(after, "acme", "opportunity", "opp_2", "stage")).toBe("closed_won");
    for (const [t, o, id, f] of [
      ["acme", "account", "acc_1", "credit_limit"],
      ["globex", "account", "acc_9", "website"],
      ["acme", "opportunity", "opp_3", "close_date"],
      ["globex", "opportunity", "opp_9", "amount"],
    ] as const) {
      expect(field(after, t, o, id, f)).toEqual(field(before, t, o, id, f));
    }
    // The colleague's edit of opp_3 (outside the agent) is a write; the agent's call never ran. The amended call is the fourth.
    expect(field(after, "acme", "opportunity", "opp_3", "name")).toBe("Acme services (renamed)");
    expect(after.exports).toEqual([]);
    expect(after.writes).toBe(4);
    // What the demo reports is what is on disk.
    expect(JSON.parse(readFileSync(out.crm.path, "utf8"))).toEqual(after);
  });

  it("leaves a decision log with every decision and answer, signed, that verifies with the public key", () => {
    // 15 decisions (one of them the amended call's), 3 approvals, 1 rejection (the refused
    // self-approval writes nothing), 1 amendment, 3 executions (two use-once claims and the
    // record_changed refusal), between the checkpoints signed when the log was opened and closed.
    expect(out.log.records).toBe(23);
    expect(out.log.checkpoints).toBe(2);
    expect(out.log.verified).toMatchObject({
      ok: true,
      count: 25,
      checkpoints: { records: 23, checkpoints: 2, signatures: "verified", uncovered: null },
    });
    const cli = execFileSync(
      "node",
      [resolve(ROOT, "dist/cli.js"), "log", "verify", out.log.path, "--public-key", out.log.publicKey, "--require-checkpointed"],
      { encoding: "utf8" },
    );
    expect(cli).toContain(`${out.log.path}: 23 records and 2 checkpoints (seq 1..25), head ${out.log.verified.head}\n`);
    expect(cli).toContain("covers seq 1..24 (close,");
    expect(cli).toContain("signature verified");
  });

  it("its log's last record cut off no longer verifies with the public key", () => {
    const lines = readFileSync(out.log.path, "utf8").split("\n").slice(0, -1);
    const cut = join(dir, "cut.jsonl");
    writeFileSync(cut, [...lines.slice(0, -2), lines.at(-1)].map((l) => `${l}\n`).join(""));
    const run = spawnSync("node", [resolve(ROOT, "dist/cli.js"), "log", "verify", cut, "--public-key", out.log.publicKey], {
      encoding: "utf8",
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toBe(`veto: log verify failed: ${cut}: line 24: prev_hash does not match line 23\n`);
  });
});
