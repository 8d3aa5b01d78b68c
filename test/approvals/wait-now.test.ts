// waitForApproval with a timeout of 0 ("is it answered now?", what a resumed
// agent run asks, docs/integrations.md): the store is read once before the
// timeout can end the wait, on the in-memory store and on PostgreSQL, whose
// reads take longer than a timer of 0 ms.
import { afterAll, describe, expect, it } from "vitest";
import { InMemoryStore, type VetoStore } from "../../adapter/history/store.js";
import { PostgresStore } from "../../adapter/postgres/store.js";
import { APPROVER, makeVeto, write } from "../helpers/index.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";

const db = testDatabase();
afterAll(() => db.dropSchemas());

describe.each([
  ["in-memory", async (): Promise<{ store: VetoStore; recordSink?: never }> => ({ store: new InMemoryStore() })],
  [
    "postgres",
    async () => {
      const store = await PostgresStore.connect({ connectionString: pgUrl(), schema: db.schema("waitnow"), migrate: true });
      return { store, recordSink: store.recordSink() };
    },
  ],
] as const)("waitForApproval({ timeoutMs: 0 }) (%s)", (_name, open) => {
  it("gets the answer already given, claims it once, and times out only while there is none", async () => {
    const { store, recordSink } = await open();
    const { veto } = await makeVeto({ store, ...(recordSink === undefined ? {} : { recordSink }) });
    const call = write({ amount: 9000 });
    const decision = await veto.protect(call);
    expect(decision.action).toBe("require_approval");
    await expect(veto.waitForApproval({ decisionId: decision.id, timeoutMs: 0 })).rejects.toMatchObject({ code: "approval_timeout" });
    await veto.approve({ decisionId: decision.id, reviewerId: APPROVER });
    for (let i = 0; i < 5; i++) {
      await expect(veto.waitForApproval({ decisionId: decision.id, timeoutMs: 0 })).resolves.toMatchObject({ status: "approved" });
    }
    await expect(veto.waitForApproval({ decisionId: decision.id, call: call as never, timeoutMs: 0 })).resolves.toMatchObject({
      status: "approved",
    });
    await expect(veto.waitForApproval({ decisionId: decision.id, call: call as never, timeoutMs: 0 })).rejects.toMatchObject({
      code: "already_executed",
    });
    await veto.close();
    await store.close();
  });
});
