/**
 * One decision's (or one answer's) store and record writes as a unit: the
 * store's unit of work when it has one (a per-(actor, tenant) lock; for a
 * database, one transaction), and the record written inside that
 * transaction when the record sink can join it. Stores without units get a
 * pass-through with no lock, as before.
 */
import type { RecordSink, VetoRecord } from "./records.js";
import type { HistoryKey, StoreUnit, VetoStore } from "./store.js";

/**
 * A record sink that can write inside a store's transaction (the PostgreSQL
 * sink inside the PostgreSQL store's), so a record and the history update it
 * goes with commit or vanish together.
 */
export interface TransactionalRecordSink extends RecordSink {
  /** Whether `transaction` (a StoreUnit's `transaction`) is one this sink can write in. */
  joinsTransaction(transaction: unknown): boolean;
  /** Write `record` inside `transaction`; a failure ends (rolls back) the transaction. */
  writeInTransaction(transaction: unknown, record: VetoRecord): Promise<void>;
}

export interface DecisionUnit extends StoreUnit {
  /**
   * Write the record: inside the unit's transaction when the sink can join
   * it, else through the sink. A failed write ends the unit (rolled back), so
   * whatever the caller does next (a superseding deny through the store's
   * pool) never waits on the unit's connection or locks.
   */
  writeRecord(record: VetoRecord): Promise<void>;
}

function isTransactional(sink: RecordSink): sink is TransactionalRecordSink {
  const s = sink as Partial<TransactionalRecordSink>;
  return typeof s.joinsTransaction === "function" && typeof s.writeInTransaction === "function";
}

export async function runUnit<T>(
  store: VetoStore,
  sink: RecordSink,
  history: HistoryKey | undefined,
  fn: (unit: DecisionUnit) => Promise<T>,
): Promise<T> {
  const withRecords = (unit: StoreUnit): DecisionUnit => ({
    countRecentDenies: (actorId, tenantId, sinceMs) => unit.countRecentDenies(actorId, tenantId, sinceMs),
    appendDecision: (decision) => unit.appendDecision(decision),
    getDecision: (id) => unit.getDecision(id),
    transitionApproval: (id, transition) => unit.transitionApproval(id, transition),
    commit: () => unit.commit(),
    rollback: () => unit.rollback(),
    transaction: unit.transaction,
    writeRecord: async (record) => {
      try {
        if (unit.transaction !== undefined && isTransactional(sink) && sink.joinsTransaction(unit.transaction)) {
          await sink.writeInTransaction(unit.transaction, record);
        } else {
          await sink.write(record);
        }
      } catch (error) {
        await unit.rollback();
        throw error;
      }
    },
  });
  if (store.unit !== undefined) return await store.unit(history, (unit) => fn(withRecords(unit)));
  return await fn(
    withRecords({
      countRecentDenies: (actorId, tenantId, sinceMs) => store.countRecentDenies(actorId, tenantId, sinceMs),
      appendDecision: (decision) => store.appendDecision(decision),
      getDecision: (id) => store.getDecision(id),
      transitionApproval: (id, transition) => store.transitionApproval(id, transition),
      commit: async () => {},
      rollback: async () => {},
    }),
  );
}
