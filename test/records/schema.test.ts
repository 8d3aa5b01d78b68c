// The record schema (adapter/records/schema.ts) is the one statement of a
// record's shape (docs/contract.md §7): every record a real veto writes
// parses with it and loses nothing in parsing (the schema names every field
// the writers write), and replay reads records with the same schema.
import { describe, expect, it } from "vitest";
import { replayRecords } from "../../adapter/audit/replay.js";
import { RECORD_TYPES, issuesText, replayedDecisionSchema, vetoRecordSchema } from "../../adapter/records/schema.js";
import type { VetoRecord } from "../../adapter/records/records.js";
import { generateCases } from "../helpers/generate-calls.js";
import { APPROVER, BUNDLE, makeVeto, write } from "../helpers/index.js";

const SEED = Number(process.env["VETO_TEST_SEED"] ?? Date.now() % 2 ** 31);

function expectParses(record: VetoRecord): void {
  const parsed = vetoRecordSchema.safeParse(record);
  expect(parsed.success, `seed ${SEED}: ${parsed.success ? "" : issuesText(parsed.error)}\n${JSON.stringify(record)}`).toBe(true);
  // Nothing dropped: the schema names every field the writer wrote.
  expect(parsed.data, `seed ${SEED}`).toEqual(record);
}

describe("the record schema", () => {
  it(`parses every decision record of generated calls exactly (seed ${SEED}; VETO_TEST_SEED repeats it)`, async () => {
    const { veto, sink, clock } = await makeVeto();
    const cases = generateCases(SEED, 300).filter((c) => c.config === "bundle");
    for (const c of cases) {
      await veto.protect(c.call);
      clock.advance(86_400_000); // past any deny window: each call decided on its own
    }
    // One of each verdict whatever the seed drew (a seed may draw no require_approval).
    for (const call of [write(), write({ amount: 9000 }), write({ destination: "ana@gmail.com" })]) {
      await veto.protect(call);
      clock.advance(86_400_000);
    }
    // And what is not a call at all: refused calls are recorded too.
    for (const raw of [null, "text", [1], { tool: "crm.update" }, { tool: 1, arguments: {}, context: {} }]) await veto.protect(raw);
    await veto.close();
    expect(sink.records.length).toBe(cases.length + 3 + 5);
    for (const record of sink.records) expectParses(record);
    const actions = new Set(sink.records.map((r) => (r.type === "decision" ? r.result.action : r.type)));
    expect([...actions].sort()).toEqual(["allow", "deny", "require_approval"]);
  });

  it("parses approval, rejection and execution records exactly", async () => {
    const { veto, sink } = await makeVeto();
    const update = veto.guard("crm.update", () => "ran");
    const call = write({ amount: 9000 });
    const running = update(call["arguments"] as never, call["context"] as never);
    await new Promise((r) => setTimeout(r, 20));
    await veto.approve({ decisionId: sink.last().decision_id, reviewerId: APPROVER, note: "ok" });
    await expect(running).resolves.toBe("ran");
    const rejected = await veto.protect(write({ amount: 9500 }));
    await veto.reject({ decisionId: rejected.id, reviewerId: APPROVER });
    await veto.close();
    expect(sink.records.map((r) => r.type)).toEqual(["decision", "approval", "execution", "decision", "rejection"]);
    for (const record of sink.records) expectParses(record);
  });

  it("names the field of a record that does not parse", () => {
    const parsed = replayedDecisionSchema.safeParse({ type: "decision", decision_id: "d", masked: [], history: { recent_denies: -1 } });
    expect(parsed.success).toBe(false);
    const text = issuesText(parsed.error!);
    expect(text).toMatch(/^timestamp: /);
    expect(text).toMatch(/; history\.recent_denies: Too small/);
    expect(text).toMatch(/; result: /);
  });
});

describe("replay knows every record type the schema names", () => {
  it("lists the schema's types, and replays none but decisions", () => {
    expect(RECORD_TYPES).toEqual(["decision", "approval", "rejection", "execution", "amendment"]);
  });

  it("passes over the answers and use-once claims of a real approval, and lists an unknown type as unreplayable", async () => {
    const { veto, sink } = await makeVeto();
    const update = veto.guard("crm.update", () => "ran");
    const call = write({ amount: 9000 });
    const running = update(call["arguments"] as never, call["context"] as never);
    await new Promise((r) => setTimeout(r, 20));
    await veto.approve({ decisionId: sink.last().decision_id, reviewerId: APPROVER });
    await running;
    await veto.close();
    const logged = sink.records.map((record, i) => ({ file: "memory", line: i + 1, record }));
    expect(logged.map((l) => l.record["type"])).toEqual(["decision", "approval", "execution"]);
    const report = await replayRecords([...logged, { file: "memory", line: 4, record: { type: "claim", decision_id: "x" } }], {
      bundle: BUNDLE,
    });
    expect(report).toMatchObject({ decisions: 2, unchanged: 1, changed: [], skipped: [] });
    expect(report.unreplayable.map((u) => [u.line, u.reason])).toEqual([
      [4, 'its type "claim" is not one this version knows (decision, approval, rejection, execution, amendment)'],
    ]);
  });
});
