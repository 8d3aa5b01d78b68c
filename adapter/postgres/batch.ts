/**
 * Decisions in groups: the decision units of one PostgresStore that start
 * while another group is being written share one transaction, on one
 * connection, in two round trips (docs/contract.md §3, §7):
 *
 * 1. BEGIN; the history lock of every (actor, tenant) in the group, each
 *    taken only if free (pg_try_advisory_xact_lock, in one order: sorted);
 *    the database's clock and each key's deny count, after the locks (so it
 *    sees every commit before them): one statement, the function
 *    lock_and_count of migration 012 (counting with recent_denies, 013),
 *    whose plans the server keeps per session. A decision whose key another transaction holds
 *    (another process, another language, another group of this one) leaves
 *    the group and runs alone: in a transaction of its own that waits for
 *    the lock, after the decisions of its key that left before it (one
 *    connection per waiting key). Only that key's decisions wait; the group
 *    goes on.
 * 2. The record chain's lock; the group's records, sealed in group order
 *    after the chain's last entry by the function that inserts them
 *    (append_records, migration 012: each record's canonical members come
 *    from here, the database adds seq, prev_hash and the SHA-256 hash
 *    exactly as chain.ts does); the decision rows; COMMIT.
 *
 * The chain's lock is held only for the second round trip: other processes'
 * groups (and single units) wait for it only while a group writes. In one
 * store, a group starts once the group before it has committed (callers
 * waiting for one group's commit then form the next, whole), or has waited
 * STALLED_MS for its decisions to be made (a slow `recordState`): then the
 * next one starts beside it, on a connection of its own, and the slow
 * decision delays only the decisions grouped with it.
 *
 * What makes counts exact is unchanged: every decision is counted, decided
 * and written in a transaction that holds its key's lock from before the
 * count until its commit. Two decisions of one key in one group are counted
 * one after the other: the second waits until the first has stored its
 * decision (or given up) and adds the first's deny to the database's count.
 * Locks are taken keys first, then the chain, as a single decision's unit
 * takes them (its key, then the chain when it writes its record), so no
 * two transactions wait for each other: a group never waits for a key's
 * lock, and a decision that waits alone holds no other lock.
 *
 * A failed statement fails the whole group: every decision in it is then a
 * record_unavailable deny (its unit's commit rejects), nothing of the group
 * is written, and its locks are released with the rollback.
 */
import type { Pool, PoolClient } from "pg";
import type { PreparedRecord } from "../records/chain.js";
import { countsForActor, type HistoryKey, type StoreUnit, type StoredDecision } from "../history/store.js";
import { BEGIN, checkout, clientError, historyLockKey, quoteIdent, quoteLiteral, recordsLockKey, releaseClient } from "./connection.js";
import {
  DECISION_WRITE_COLUMNS,
  decisionRowValues,
  decisionSelectList,
  recentDeniesSql,
  toStoredDecision,
  type DecisionRow,
} from "./decision-row.js";
import { toError } from "../common/errors.js";

/** Most decisions in one group. */
const MAX_GROUP = 256;

/**
 * How long after its first round trip a group may wait for its decisions
 * before the next group starts beside it (on a connection of its own): a
 * decision that is slow to be made (a slow `recordState`) then delays only
 * the decisions grouped with it.
 */
const STALLED_MS = 200;

/** A history key with the escalation window its count looks back over. */
export interface BatchKey extends HistoryKey {
  readonly windowMs: number;
}

type Settled = "open" | "committing" | "rolled_back";

/** One decision's share of a group: what its unit stores and records. */
class Member {
  readonly key: BatchKey;
  readonly keyText: string;
  readonly group: Group;
  state: Settled = "open";
  /** Whether this decision, once stored, counts towards its key's escalation. */
  counts = false;
  decision: StoredDecision | undefined;
  readonly records: { prepared: PreparedRecord; type: string; decisionId: string }[] = [];
  /** Earlier members of the group with the same key. */
  before: Member[] = [];
  readonly #done: { promise: Promise<void>; resolve: () => void };

  constructor(key: BatchKey, group: Group) {
    this.key = key;
    this.keyText = JSON.stringify([key.actorId, key.tenantId]);
    this.group = group;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.#done = { promise, resolve };
  }

  /** Resolves once this member has stored its decision, committed or given up: what a later member of its key waits for. */
  get done(): Promise<void> {
    return this.#done.promise;
  }

  settle(state: Settled): void {
    if (this.state !== "open") return;
    this.state = state;
    this.#done.resolve();
    this.group.memberSettled();
  }
}

/** The transaction object a group's units share: what PostgresRecordSink recognizes and defers records into. */
export class BatchTransaction {
  readonly pool: Pool;
  readonly schema: string;
  readonly #member: Member;

  constructor(pool: Pool, schema: string, member: Member) {
    this.pool = pool;
    this.schema = schema;
    this.#member = member;
  }

  get open(): boolean {
    return this.#member.state === "open" && this.#member.group.failure === undefined;
  }

  /** Record `prepared` with the group; it is sealed and written when the group commits. */
  defer(prepared: PreparedRecord, type: string, decisionId: string): void {
    if (!this.open) throw new Error("the store transaction is over (committed or rolled back)");
    this.#member.records.push({ prepared, type, decisionId });
  }
}

class Group {
  readonly members: Member[] = [];
  client: PoolClient | undefined;
  nowMs = 0;
  counts = new Map<string, number>();
  /** The keys whose history lock the group holds; a member of any other key leaves the group. */
  readonly held = new Set<string>();
  failure: Error | undefined;
  /** Resolves when the first round trip is done (or failed). */
  started!: Promise<void>;
  /** Resolves when the group is committed; rejects when it failed. */
  readonly committed: Promise<void>;
  #resolveCommitted!: () => void;
  #rejectCommitted!: (error: unknown) => void;
  /** Whether the next group may start (this one is over, or stalled). */
  nextMayStart = false;
  #open = 0;
  #allSettled: (() => void) | undefined;

  constructor() {
    this.committed = new Promise<void>((resolve, reject) => {
      this.#resolveCommitted = resolve;
      this.#rejectCommitted = reject;
    });
    // Awaited by each committing member; a group nobody waits for must not be an unhandled rejection.
    this.committed.catch(() => {});
  }

  add(member: Member): void {
    for (const m of this.members) if (m.keyText === member.keyText) member.before.push(m);
    this.members.push(member);
    this.#open += 1;
  }

  memberSettled(): void {
    this.#open -= 1;
    if (this.#open === 0) this.#allSettled?.();
  }

  /** Resolves once every member has committed or rolled back. */
  allSettled(): Promise<void> {
    if (this.#open === 0) return Promise.resolve();
    return new Promise<void>((resolve) => (this.#allSettled = resolve));
  }

  finish(error: Error | undefined): void {
    if (error === undefined) this.#resolveCommitted();
    else {
      this.failure ??= error;
      this.#rejectCommitted(error);
    }
  }
}

type SqlValue = string | number | boolean | null | readonly (string | null)[];

const sqlValue = (v: SqlValue): string => {
  if (v === null) return "NULL";
  if (typeof v === "boolean") return v ? "TRUE" : "FALSE";
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) throw new Error(`not an integer: ${v}`);
    return String(v);
  }
  if (typeof v === "string") return quoteLiteral(v);
  const texts: readonly (string | null)[] = v;
  return texts.length === 0 ? "'{}'::text[]" : `ARRAY[${texts.map((x) => (x === null ? "NULL" : quoteLiteral(x))).join(", ")}]::text[]`;
};

export class DecisionBatcher {
  readonly #pool: Pool;
  readonly #schema: string;
  readonly #decisions: string;
  readonly #lockAndCount: string;
  readonly #countDenies: string;
  readonly #appendRecords: string;
  /** The group taking members; starts once the group before it is over. */
  #forming: Group | undefined;
  #busy = false;

  constructor(pool: Pool, schema: string) {
    this.#pool = pool;
    this.#schema = schema;
    this.#decisions = `${quoteIdent(schema)}.decisions`;
    this.#lockAndCount = `${quoteIdent(schema)}.lock_and_count`;
    this.#countDenies = recentDeniesSql(schema);
    this.#appendRecords = `${quoteIdent(schema)}.append_records`;
  }

  /**
   * A decision's unit in the next group. Rejects, before `fn` runs, when the
   * group's first round trip fails. When another transaction holds the
   * key's lock, the decision leaves the group and runs in `alone` (its own
   * transaction, which waits for the lock), after the decisions of its key
   * that left before it.
   */
  async unit<T>(
    key: BatchKey,
    fn: (unit: StoreUnit) => Promise<T>,
    alone: (fn: (unit: StoreUnit) => Promise<T>) => Promise<T>,
  ): Promise<T> {
    let group = this.#forming;
    if (group === undefined || group.members.length >= MAX_GROUP) {
      group = new Group();
      this.#forming = group;
      group.started = this.#schedule(group);
    }
    const member = new Member(key, group);
    group.add(member);
    try {
      await group.started;
      if (group.failure !== undefined) throw group.failure;
      if (!group.held.has(member.keyText)) {
        // Its key is locked elsewhere: the group goes on without it, so only this key waits.
        member.settle("rolled_back");
        return await this.#alone(member.keyText, () => alone(fn));
      }
      return await fn(this.#storeUnit(member));
    } finally {
      // A unit that ends without commit or rollback gives up its place.
      member.settle("rolled_back");
    }
  }

  /** Per key, the turn of the last decision that left a group; each waits for the one before. */
  readonly #aloneTurns = new Map<string, Promise<void>>();

  /**
   * Runs the decisions of one key that left their groups one at a time, so
   * that while the key is locked elsewhere they wait on one connection of
   * the pool, not on as many as there are decisions (the other keys' groups
   * need the rest).
   */
  async #alone<T>(keyText: string, run: () => Promise<T>): Promise<T> {
    const previous = this.#aloneTurns.get(keyText);
    let release!: () => void;
    const turn = new Promise<void>((resolve) => (release = resolve));
    const last = previous === undefined ? turn : previous.then(() => turn);
    this.#aloneTurns.set(keyText, last);
    try {
      if (previous !== undefined) await previous;
      return await run();
    } finally {
      release();
      if (this.#aloneTurns.get(keyText) === last) this.#aloneTurns.delete(keyText);
    }
  }

  /**
   * Wait for the group before to be over, then run this group's first round
   * trip; the rest (waiting for its members, writing, committing) goes on
   * from there. Never rejects: a failure is the group's `failure`.
   */
  async #schedule(group: Group): Promise<void> {
    // Units started in the same turn join this group.
    await Promise.resolve();
    while (this.#busy) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#busy = true;
    if (this.#forming === group) this.#forming = undefined;
    try {
      group.client = await checkout(this.#pool);
      await this.#begin(group.client, group);
    } catch (error) {
      group.failure = toError(error);
    }
    const stalled = setTimeout(() => this.#next(group), STALLED_MS);
    stalled.unref();
    void this.#complete(group).finally(() => clearTimeout(stalled));
  }

  readonly #waiting: (() => void)[] = [];

  async #complete(group: Group): Promise<void> {
    const client = group.client;
    let broken: unknown;
    try {
      await group.allSettled();
      if (group.failure !== undefined) throw group.failure;
      await this.#write(client as PoolClient, group);
      group.finish(undefined);
    } catch (error) {
      group.finish(toError(error));
      if (client !== undefined) {
        broken = clientError(client);
        await client.query("ROLLBACK").catch((e: unknown) => (broken ??= e));
      }
    } finally {
      if (client !== undefined) releaseClient(client, broken);
      this.#next(group);
    }
  }

  /** Lets the next group start, once per group. */
  #next(group: Group): void {
    if (group.nextMayStart) return;
    group.nextMayStart = true;
    this.#busy = false;
    this.#waiting.shift()?.();
  }

  async #begin(client: PoolClient, group: Group): Promise<void> {
    const keys = new Map<string, BatchKey>();
    for (const m of group.members) keys.set(m.keyText, m.key);
    // Taken without waiting, in one order: a key held elsewhere is left out (its members decide alone).
    const lockKeys = new Map<string, string>();
    for (const [text, k] of keys) lockKeys.set(historyLockKey(this.#schema, k.actorId, k.tenantId), text);
    const sorted = [...lockKeys.keys()].sort();
    const inOrder = sorted.map((k) => keys.get(lockKeys.get(k) as string) as BatchKey);
    // The locks, then the clock and each held key's count (lock_and_count: one statement, a plan kept per session).
    const text = `${BEGIN}; SELECT now_ms, i, got, n FROM ${this.#lockAndCount}(${sqlValue(sorted)}, ${sqlValue(inOrder.map((k) => k.actorId))}, ${sqlValue(
      inOrder.map((k) => k.tenantId),
    )}, ARRAY[${inOrder.map((k) => sqlValue(Math.floor(k.windowMs))).join(", ")}]::bigint[])`;
    const results = (await client.query(text)) as unknown as { rows: { now_ms: string; i: string; got: boolean; n: string | null }[] }[];
    const counted = results.at(-1)?.rows ?? [];
    const first = counted[0];
    const nowMs = Number(first?.now_ms);
    if (first === undefined || !Number.isSafeInteger(nowMs)) throw new Error("the database did not tell its time");
    group.nowMs = nowMs;
    for (const row of counted) {
      if (row.got !== true) continue;
      const keyText = lockKeys.get(sorted[Number(row.i)] as string) as string;
      group.held.add(keyText);
      group.counts.set(keyText, Number(row.n));
    }
  }

  async #write(client: PoolClient, group: Group): Promise<void> {
    const committing = group.members.filter((m) => m.state === "committing");
    const records = committing.flatMap((m) => m.records);
    const decisions = committing
      .filter((m) => m.decision !== undefined)
      .map(
        (m) =>
          `(${decisionRowValues(m.decision as StoredDecision)
            .map((v) => sqlValue(v))
            .join(", ")})`,
      );
    const statements: string[] = [];
    if (records.length > 0) {
      const part = (k: 0 | 1 | 2 | 3): string => sqlValue(records.map((r) => r.prepared.parts[k]));
      // The chain's lock, then the records sealed after its last entry (migration 012, append_records).
      statements.push(
        `SELECT ${this.#appendRecords}(${[
          quoteLiteral(recordsLockKey(this.#schema)),
          part(0),
          part(1),
          part(2),
          part(3),
          sqlValue(records.map((r) => r.type)),
          sqlValue(records.map((r) => r.decisionId)),
        ].join(", ")})`,
      );
    }
    if (decisions.length > 0) {
      statements.push(`INSERT INTO ${this.#decisions} (${DECISION_WRITE_COLUMNS.join(", ")}) VALUES ${decisions.join(", ")}`);
    }
    statements.push("COMMIT");
    await client.query(statements.join("; "));
  }

  /** The unit a member's decision runs in. */
  #storeUnit(member: Member): StoreUnit {
    const group = member.group;
    const client = group.client as PoolClient;
    const transaction = new BatchTransaction(this.#pool, this.#schema, member);
    const key = member.key;
    const countOne = async (actorId: string, tenantId: string, sinceMs: number): Promise<number> => {
      const same = actorId === key.actorId && tenantId === key.tenantId;
      // The decisions of this key before it in the group: stored (or given up) first, then counted in.
      if (same) await Promise.all(member.before.map((m) => m.done));
      const earlier = same ? member.before.filter((m) => m.counts && (m.decision?.atMs ?? -Infinity) >= sinceMs).length : 0;
      const precounted = group.counts.get(member.keyText);
      if (same && sinceMs === group.nowMs - key.windowMs && precounted !== undefined) return precounted + earlier;
      // Another key or another window: counted now, in the group's transaction (its locks are held).
      const { rows } = await client.query<{ n: string }>(this.#countDenies, [actorId, tenantId, sinceMs]);
      return Number(rows[0]?.n ?? 0) + earlier;
    };
    const unsupported = (what: string) => (): Promise<never> =>
      Promise.reject(new Error(`${what} is not available in a decision's unit on PostgreSQL`));
    return {
      countRecentDenies: countOne,
      appendDecision: async (decision) => {
        if (!transaction.open) throw new Error("the store transaction is over (committed or rolled back)");
        member.decision = decision;
        member.counts = decision.action === "deny" && countsForActor(decision);
      },
      getDecision: async (id) => {
        // Its own decision as stored so far; any other as committed (read in the group's transaction).
        if (member.decision?.id === id) return member.decision;
        const { rows } = await client.query<DecisionRow>(`SELECT ${decisionSelectList()} FROM ${this.#decisions} WHERE id = $1`, [id]);
        return rows[0] === undefined ? undefined : toStoredDecision(rows[0]);
      },
      transitionApproval: unsupported("transitionApproval"),
      commit: async () => {
        if (!transaction.open) throw group.failure ?? new Error("the store transaction is over (committed or rolled back)");
        member.settle("committing");
        await group.committed;
      },
      rollback: async () => {
        member.decision = undefined;
        member.counts = false;
        member.records.length = 0;
        member.settle("rolled_back");
      },
      transaction,
      nowMs: group.nowMs,
    };
  }
}
