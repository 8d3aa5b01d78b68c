/**
 * One decision's (or one answer's) store and record writes as a unit: the
 * store's unit of work when it has one (a per-(actor, tenant) lock; for a
 * database, one transaction), and the record written inside that
 * transaction when the record sink can join it. Stores without units get a
 * pass-through with no lock, as before.
 */
import type { RecordSink, VetoRecord } from "../records/records.js";
import {
  directUnit,
  type ApprovalTransition,
  type HistoryKey,
  type StoreUnit,
  type StoredDecision,
  type UnitOptions,
  type VetoStore,
} from "./store.js";

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
  /**
   * Whether writeRecord writes inside the store's transaction (and so must
   * finish before commit). When it does not, the record takes its place in the
   * sink's order when writeRecord is called, and the unit may end before the
   * sink has made it durable.
   */
  readonly recordsInTransaction: boolean;
  /** The store's claimExecution; rejects when the store has none. */
  claimExecution(id: string, atMs: number): Promise<boolean>;
}

function isTransactional(sink: RecordSink): sink is TransactionalRecordSink {
  const s = sink as Partial<TransactionalRecordSink>;
  return typeof s.joinsTransaction === "function" && typeof s.writeInTransaction === "function";
}

/** A store unit plus writeRecord: one object per unit of work (methods on the prototype, no closures). */
class RecordingUnit implements DecisionUnit {
  readonly #unit: StoreUnit;
  readonly #sink: RecordSink;
  readonly transaction: unknown;
  readonly recordsInTransaction: boolean;
  readonly nowMs: number | undefined;

  constructor(unit: StoreUnit, sink: RecordSink) {
    this.#unit = unit;
    this.#sink = sink;
    this.transaction = unit.transaction;
    this.nowMs = unit.nowMs;
    this.recordsInTransaction = unit.transaction !== undefined && isTransactional(sink) && sink.joinsTransaction(unit.transaction);
  }

  countRecentDenies(actorId: string, tenantId: string, sinceMs: number): Promise<number> {
    return this.#unit.countRecentDenies(actorId, tenantId, sinceMs);
  }

  appendDecision(decision: StoredDecision): Promise<void> {
    return this.#unit.appendDecision(decision);
  }

  getDecision(id: string): Promise<StoredDecision | undefined> {
    return this.#unit.getDecision(id);
  }

  transitionApproval(id: string, transition: ApprovalTransition): Promise<boolean> {
    return this.#unit.transitionApproval(id, transition);
  }

  /** A store without claimExecution cannot claim an allowed amended call once: refused (the call does not run). */
  claimExecution(id: string, atMs: number): Promise<boolean> {
    const unit = this.#unit;
    if (unit.claimExecution === undefined) {
      return Promise.reject(new Error("this store has no claimExecution, so an allowed amended call cannot be claimed once"));
    }
    return unit.claimExecution(id, atMs);
  }

  commit(): Promise<void> {
    return this.#unit.commit();
  }

  rollback(): Promise<void> {
    return this.#unit.rollback();
  }

  async writeRecord(record: VetoRecord): Promise<void> {
    const unit = this.#unit;
    const sink = this.#sink;
    try {
      if (this.recordsInTransaction && isTransactional(sink)) {
        await sink.writeInTransaction(unit.transaction, record);
      } else {
        await sink.write(record);
      }
    } catch (error) {
      await unit.rollback();
      throw error;
    }
  }
}

export async function runUnit<T>(
  store: VetoStore,
  sink: RecordSink,
  history: HistoryKey | undefined,
  fn: (unit: DecisionUnit) => Promise<T>,
  options?: UnitOptions,
): Promise<T> {
  if (store.unit !== undefined) return await store.unit(history, (unit) => fn(new RecordingUnit(unit, sink)), sink, options);
  return await fn(new RecordingUnit(directUnit(store), sink));
}

/**
 * A unit standing in for one the store could not give (its unit() rejected:
 * no connection, BEGIN or the lock failed): every operation fails with that
 * error, so the decision flow ends where a failed record write ends it, in a
 * record_unavailable deny that tries to leave its own record.
 */
export function failedUnit(cause: Error): DecisionUnit {
  const fail = (): Promise<never> => Promise.reject(cause);
  return {
    countRecentDenies: fail,
    appendDecision: fail,
    getDecision: fail,
    transitionApproval: fail,
    claimExecution: fail,
    commit: fail,
    rollback: async () => {},
    writeRecord: fail,
    recordsInTransaction: true,
  };
}
