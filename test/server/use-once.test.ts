// Use-once execution of an approved call (docs/contract.md §6): the first
// claim runs the call, any later one is refused with already_executed and
// recorded; on the in-memory store and on a real PostgreSQL with its records.
import { afterAll, describe, expect, it } from "vitest";
import { ApprovalError } from "../../adapter/index.js";
import { InMemoryStore, type VetoStore } from "../../adapter/history/store.js";
import type { RecordSink } from "../../adapter/records/records.js";
import { PostgresStore } from "../../adapter/postgres/store.js";
import { APPROVER, MemorySink, makeVeto, write } from "../helpers/index.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";

const db = testDatabase();
afterAll(() => db.dropSchemas());

const CALL = write({ amount: 9000 });
const args = CALL["arguments"] as Record<string, unknown>;
const context = CALL["context"] as never;

async function inMemory(): Promise<{ store: VetoStore; recordSink: RecordSink; types: () => Promise<string[]> }> {
  const sink = new MemorySink();
  return { store: new InMemoryStore(), recordSink: sink, types: async () => sink.records.map((r) => r.type) };
}

async function onPostgres(): Promise<{ store: VetoStore; recordSink: RecordSink; types: () => Promise<string[]> }> {
  const store = await PostgresStore.connect({ connectionString: pgUrl(), schema: db.schema("once"), migrate: true });
  const types = async (): Promise<string[]> =>
    (await db.pool.query<{ type: string }>(`SELECT type FROM "${store.schema}".records ORDER BY seq`)).rows.map((r) => r.type);
  return { store, recordSink: store.recordSink(), types };
}

describe.each([
  ["in-memory", inMemory],
  ["postgres with its records", onPostgres],
] as const)("use-once (%s)", (_name, open) => {
  it("a waiting guard released by an approval runs once; a second claim is already_executed and recorded", async () => {
    const { store, recordSink, types } = await open();
    const { veto } = await makeVeto({ store, recordSink });
    let runs = 0;
    const tool = veto.guard("crm.update", () => ++runs);
    const running = tool(args, context);
    await expect.poll(async () => (await store.listApprovals!({ status: ["pending"] })).length, { timeout: 5000 }).toBe(1);
    const [pending] = await store.listApprovals!({ status: ["pending"] });
    const id = pending!.id;
    expect(runs).toBe(0);
    await veto.approve({ decisionId: id, reviewerId: APPROVER });
    await expect(running).resolves.toBe(1);
    const executed = await store.getDecision(id);
    expect(executed?.approval).toMatchObject({ status: "executed", reviewerId: APPROVER });
    expect(executed?.approval?.executedAtMs).toBeTypeOf("number");
    // A second claim of the same decision, twice over: refused, never run.
    const again = veto.waitForApproval({ decisionId: id, call: CALL as never });
    await expect(again).rejects.toBeInstanceOf(ApprovalError);
    await expect(again).rejects.toMatchObject({ code: "already_executed" });
    await expect(veto.waitForApproval({ decisionId: id, call: CALL as never })).rejects.toMatchObject({ code: "already_executed" });
    // Observing without a call still reads it as approved.
    await expect(veto.waitForApproval({ decisionId: id })).resolves.toMatchObject({ status: "approved", reviewerId: APPROVER });
    expect(runs).toBe(1);
    expect(await types()).toEqual(["decision", "approval", "execution", "execution", "execution"]);
    await veto.close();
    await store.close();
  });

  it("claims racing for one approval: exactly one wins", async () => {
    const { store, recordSink } = await open();
    const { veto } = await makeVeto({ store, recordSink });
    const decision = await veto.protect(CALL);
    await veto.approve({ decisionId: decision.id, reviewerId: APPROVER });
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () => veto.waitForApproval({ decisionId: decision.id, call: CALL as never })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect(r.reason).toMatchObject({ code: "already_executed" });
    await veto.close();
    await store.close();
  });
});
