/**
 * With a record sink outside the store's transaction (the file log), a
 * decision's unit ends once its record has its place in the sink's order and
 * the store has the decision; the wait for the record's sync happens after.
 * So calls of one actor and tenant share syncs instead of queueing behind each
 * other's — while every deny count stays exact, records keep the order of
 * decisions, and no decision reaches its caller before its record is durable.
 */
import { describe, expect, it } from "vitest";
import type { Decision, DecisionEventRecord, RecordSink, VetoRecord } from "../../adapter/index.js";
import { makeVeto, write } from "../helpers/index.js";

/** A sink whose writes become durable only when the test says so. */
class GatedSink implements RecordSink {
  readonly records: VetoRecord[] = [];
  readonly #gates: { resolve: () => void; reject: (e: Error) => void }[] = [];

  write(record: VetoRecord): Promise<void> {
    this.records.push(structuredClone(record));
    return new Promise((resolve, reject) => this.#gates.push({ resolve, reject }));
  }

  get waiting(): number {
    return this.#gates.length;
  }

  release(error?: Error): void {
    for (const gate of this.#gates.splice(0)) error === undefined ? gate.resolve() : gate.reject(error);
  }
}

const settle = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
};

describe("records outside the store's transaction", () => {
  it("decide one actor's calls in order with exact counts while their records wait for one sync", async () => {
    const sink = new GatedSink();
    const { veto } = await makeVeto({ recordSink: sink });
    const denied = write({ tenantId: "globex" }); // wrong_tenant
    let answered = 0;
    const pending = [1, 2, 3, 4].map(() => veto.protect(denied).then((d) => (answered++, d)));
    await settle();

    // All four were decided and recorded in order before any record was durable...
    expect(sink.waiting).toBe(4);
    const records = sink.records as DecisionEventRecord[];
    expect(records.map((r) => r.history?.recent_denies)).toEqual([0, 1, 2, 3]);
    expect(records.map((r) => [r.result.action, r.result.escalated])).toEqual([
      ["deny", false],
      ["deny", false],
      ["deny", false],
      ["deny", true],
    ]);
    // ...and none was answered before its record was.
    expect(answered).toBe(0);

    sink.release();
    const decisions: Decision[] = await Promise.all(pending);
    expect(decisions.map((d) => d.id)).toEqual(records.map((r) => r.decision_id));
    await veto.close();
  });

  it("supersede a decision whose record fails after the unit ended with a record_unavailable deny", async () => {
    const sink = new GatedSink();
    const { veto } = await makeVeto({ recordSink: sink });
    const pending = veto.protect(write());
    await settle();
    expect(sink.waiting).toBe(1);
    sink.release(new Error("fdatasync failed"));
    await settle();
    sink.release(); // the superseding record's write
    const decision = await pending;
    expect(decision.action).toBe("deny");
    expect(decision.reasons.map((r) => r.code)).toEqual(["record_unavailable"]);
    await veto.close();
  });
});
