/**
 * Decisions in groups: the decision units of one PostgresStore that start
 * while another group is being written share one transaction, on one
 * connection, in two round trips (docs/contract.md §3, §7):
 *
 * 1. BEGIN; the history lock of every (actor, tenant) in the group, each
 *    taken only if free (pg_try_advisory_xact_lock, in one order: sorted);
 *    the database's clock and each key's deny count, after the locks (so it
 *    sees every commit before them): one statement, the function
 *    lock_and_count_window (migrations 014, 015: counting with deny_window
 *    for one key, count_windows for several), whose plans the server keeps
 *    per session. A decision whose key another transaction holds
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
 * When the store knows every key's count in a group (its last group of the
 * key left it, and no counted deny has left the window since), step 1 is
 * left out: the group is timed and counted by what the store knows, and its
 * writes are one prepared statement, its own transaction: write_group
 * (migration 016), which checks that the transaction is READ COMMITTED and
 * that its arrays agree, then calls confirm_counts (migrations 014, 015),
 * taking the keys' locks (only if free), reading the clock and counting
 * again under them, then appends the records and inserts the rows as step
 * 2 does. Such a group's decisions are made on what the store knew, without
 * a lock; the lock is taken, and the count checked under it, when the group
 * writes. A count that differs, a lock held elsewhere, a time that is not
 * the database's, or a decision of a key timed after the group's (SQLSTATE
 * VS001), and nothing of the group is written: each decision is made again
 * (UnitRetry) in a group that takes step 1 (docs/postgres.md, "One round
 * trip"). So is a group whose statement could not run on this connection:
 * a session that is not READ COMMITTED (VS002), or a pooler that loses
 * (26000) or mixes up (42P05) prepared statements; the store then takes
 * step 1 for every later group.
 *
 * The chain's lock is held only for the second round trip: other processes'
 * groups (and single units) wait for it only while a group writes. In one
 * store, a group starts once the group before it has committed (callers
 * waiting for one group's commit then form the next, whole), or has waited
 * STALLED_MS for its decisions to be made (a slow `recordState`): then the
 * next one starts beside it, on a connection of its own, and the slow
 * decision delays only the decisions grouped with it.
 *
 * What makes counts exact is unchanged: every decision is written in a
 * transaction that holds its key's lock from before the count it is
 * recorded with until its commit (a predicted group's count is taken
 * again under the lock, and the group refused if it differs). Two decisions of one key in one group are counted
 * one after the other: the second waits until the first has stored its
 * decision (or given up) and adds the first's deny to the database's count.
 * Locks are taken keys first, then the chain, as a single decision's unit
 * takes them (its key, then the chain when it writes its record), so no
 * two transactions wait for each other: a group never waits for a key's
 * lock, and a decision that waits alone holds no other lock.
 *
 * Any other failed statement fails the whole group: every decision in it
 * is then a record_unavailable deny (its unit's commit rejects), nothing of
 * the group is written, and its locks are released with the rollback.
 */
import type { Pool, PoolClient } from "pg";
import type { PreparedRecord } from "../records/chain.js";
import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";
import { countsForActor, UnitRetry, type HistoryKey, type StoreUnit, type StoredDecision } from "../history/store.js";
import {
  BEGIN,
  checkout,
  DB_NOW_MS,
  clientError,
  historyLockKey,
  quoteIdent,
  quoteLiteral,
  recordsLockKey,
  releaseClient,
} from "./connection.js";
import {
  DECISION_WRITE_COLUMNS,
  decisionColumns,
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

/**
 * How far behind the database's clock a one-round-trip group's time may be
 * when its writes arrive (confirm_counts, migration 014): the time the
 * group's decisions are recorded at was predicted as it started.
 */
const LAG_MS = 5000;

/** How long a key whose remembered count did not hold is decided the two-round-trip way. */
const COOL_MS = 1000;

/** Most keys whose counts a store remembers; the least recently used are forgotten first. */
const MAX_KNOWN = 100_000;

/** SQLSTATE of confirm_counts' refusal (migration 014). */
const STALE = "VS001";
/** SQLSTATE of write_group's refusal of a transaction that is not READ COMMITTED (migration 016). */
const NOT_READ_COMMITTED = "VS002";
/**
 * SQLSTATE of a statement the connection has not prepared: a pooler in
 * transaction mode that does not keep prepared statements (PgBouncer before
 * 1.21, or without max_prepared_statements) sends write_group's Bind to a
 * server connection that never saw its Parse. Nothing ran.
 */
const NOT_PREPARED = "26000";
/**
 * SQLSTATE of a Parse for a name the server connection already has: the
 * same pooler sends the Parse of another client connection (to which the
 * driver's statement is new) to a server connection that one of this
 * store's connections prepared it on. The Parse fails, so nothing ran.
 */
const ALREADY_PREPARED = "42P05";
/** Refusals of a predicted group's one statement that say it cannot run on this store's connections at all. */
const UNPREDICTABLE: ReadonlySet<unknown> = new Set([NOT_READ_COMMITTED, NOT_PREPARED, ALREADY_PREPARED]);

/**
 * A key's count over `windowMs`: in a group, at the group's time; in what a
 * store remembers after its last group of the key, at any time up to
 * `oldestMs + windowMs` (null: no time bound), unless another writer changed
 * it since, which confirm_counts finds out.
 */
interface Known {
  readonly n: number;
  readonly oldestMs: number | null;
  readonly windowMs: number;
}

/** What a store's groups of decisions did (PostgresStore.groupStats). */
export interface GroupStats {
  /** Groups that read their keys' counts first: two round trips. */
  readonly counted: number;
  /** Groups decided on the counts the store knew, confirmed with their writes: one round trip. */
  readonly predicted: number;
  /** Of those, groups whose prediction the database refused: their decisions were made again. */
  readonly refused: number;
}

/** A history key with the escalation window its count looks back over. */
export interface BatchKey extends HistoryKey {
  readonly windowMs: number;
}

type Settled = "open" | "committing" | "rolled_back";

/** One decision's share of a group: what its unit stores and records. */
class Member {
  /** Undefined for a decision that names no (actor, tenant): it takes no lock and counts nothing. */
  readonly key: BatchKey | undefined;
  readonly keyText: string;
  readonly group: Group;
  state: Settled = "open";
  /** Whether this decision, once stored, counts towards its key's escalation. */
  counts = false;
  decision: StoredDecision | undefined;
  readonly records: DeferredRecord[] = [];
  /** Earlier members of the group with the same key. */
  before: Member[] = [];
  /** Whether this decision is being made again after a prediction failed: its group predicts nothing. */
  readonly again: boolean;
  readonly #done: { promise: Promise<void>; resolve: () => void };

  constructor(key: BatchKey | undefined, group: Group, again: boolean) {
    this.key = key;
    this.again = again;
    this.keyText = key === undefined ? "" : JSON.stringify([key.actorId, key.tenantId]);
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

  /** Record `record` with the group; it is sealed and written when the group commits. */
  defer(record: DeferredRecord): void {
    if (!this.open) throw new Error("the store transaction is over (committed or rolled back)");
    this.#member.records.push(record);
  }
}

class Group {
  readonly members: Member[] = [];
  client: PoolClient | undefined;
  nowMs = 0;
  /**
   * The keys whose history lock the group holds (or, predicted, will take),
   * each with its count at the group's time, the oldest time that count
   * includes, and the window it was taken over: its first member's (a bundle
   * reload may give a later member of the key another window, whose count is
   * then taken apart). A member of any other key leaves the group.
   */
  held = new Map<string, Known>();
  /**
   * One round trip: the counts and the time were predicted (from what the
   * store knew), and are confirmed by the writes' first statement.
   */
  predicted = false;
  /** Whether the confirmation refused the predictions: every member decides again. */
  stale = false;
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
    if (member.key !== undefined) for (const m of this.members) if (m.keyText === member.keyText) member.before.push(m);
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

/** A record checked and canonicalized, to be sealed and written when its transaction commits. */
export interface DeferredRecord {
  readonly prepared: PreparedRecord;
  readonly type: string;
  readonly decisionId: string;
}

/**
 * The statement that takes the chain's lock and appends `records`, sealed
 * in order after the chain's last entry (migration 012, append_records): the
 * lock is held from this statement to the end of its transaction.
 */
export function appendRecordsStatement(schema: string, records: readonly DeferredRecord[]): string {
  const part = (k: 0 | 1 | 2 | 3): string => sqlValue(records.map((r) => r.prepared.parts[k]));
  return `SELECT ${quoteIdent(schema)}.append_records(${[
    quoteLiteral(recordsLockKey(schema)),
    part(0),
    part(1),
    part(2),
    part(3),
    sqlValue(records.map((r) => r.type)),
    sqlValue(records.map((r) => r.decisionId)),
  ].join(", ")})`;
}

/** write_group's arguments: the confirmation's 7, the records' 7, one array per decision column. */
const WRITE_GROUP_ARGUMENTS = 7 + 7 + DECISION_WRITE_COLUMNS.length;

/**
 * A predicted group's one statement (migration 016, write_group), named by
 * its schema's digest so that each connection prepares it once.
 */
export function writeGroupStatement(schema: string): { readonly name: string; readonly text: string } {
  const parameters = Array.from({ length: WRITE_GROUP_ARGUMENTS }, (_, i) => `$${i + 1}`);
  return {
    // A server keeps 63 bytes of a name; schemas may be longer, and two that share 63 bytes on one pool would collide.
    name: `veto.write_group:${createHash("sha256").update(schema).digest("hex").slice(0, 16)}`,
    text: `SELECT ${quoteIdent(schema)}.write_group(${parameters.join(", ")}) AS now_ms`,
  };
}

/** Between two records' parts in write_group's argument, and a null part (migration 016). */
const PART_SEPARATOR = "\u001e";
const NULL_PART = "\u001f";

/**
 * The records' member parts `k` as write_group takes them: joined by
 * U+001E, a null part U+001F. Canonical JSON holds no raw control
 * character; a part that does is refused, not split in the wrong place.
 */
function joinedParts(records: readonly DeferredRecord[], k: 0 | 1 | 2 | 3): string {
  let out = "";
  for (const [i, r] of records.entries()) {
    const part = r.prepared.parts[k];
    if (part !== null && (part.includes(PART_SEPARATOR) || part.includes(NULL_PART)))
      throw new Error(`record ${r.decisionId}: a member part holds U+001E or U+001F`);
    out += (i > 0 ? PART_SEPARATOR : "") + (part ?? NULL_PART);
  }
  return out;
}

/**
 * write_group's arguments, in its order: the confirmation (confirm_counts'
 * seven), the records (the chain's lock key, each member part joined in
 * one text, types, decision ids), the rows (decisionColumns).
 */
export function writeGroupValues(
  schema: string,
  confirmation: readonly unknown[],
  records: readonly DeferredRecord[],
  decided: readonly StoredDecision[],
): unknown[] {
  return [
    ...confirmation,
    recordsLockKey(schema),
    ...([0, 1, 2, 3] as const).map((k) => joinedParts(records, k)),
    records.map((r) => r.type),
    records.map((r) => r.decisionId),
    ...decisionColumns(decided),
  ];
}

/** A group's key with its history lock key (connection.ts historyLockKey) and its Member.keyText. */
interface InLockOrder {
  readonly lockKey: string;
  readonly keyText: string;
  readonly key: BatchKey;
}

/** The four arrays lock_and_count_window and confirm_counts begin with: lock keys, actors, tenants, windows (whole ms). */
function keyArrays(ordered: readonly InLockOrder[]): [string[], string[], string[], number[]] {
  return [
    ordered.map((o) => o.lockKey),
    ordered.map((o) => o.key.actorId),
    ordered.map((o) => o.key.tenantId),
    ordered.map((o) => Math.floor(o.key.windowMs)),
  ];
}

export class DecisionBatcher {
  readonly #pool: Pool;
  readonly #schema: string;
  readonly #decisions: string;
  readonly #lockAndCount: string;
  readonly #countDenies: string;
  /** write_group (migration 016), prepared once per connection under this name. */
  readonly #writeGroup: { readonly name: string; readonly text: string };
  /** Per key (Member.keyText), its count as of this store's last group of it; most recently used last. */
  readonly #known = new Map<string, Known>();
  /** Per key whose prediction failed, until when (performance.now()) it is not predicted. */
  readonly #cooling = new Map<string, number>();
  /**
   * The database's clock less performance.now(), as last read (undefined:
   * never read): a lower bound, since the reading was taken before the
   * reply arrived, and so a predicted time is never ahead of the database's.
   */
  #clockOffset: number | undefined;
  /** The latest group time this store used: a predicted time is never earlier (times of a key's decisions do not go back). */
  #lastNowMs = 0;
  /** The group taking members; starts once the group before it is over. */
  #forming: Group | undefined;
  #busy = false;
  readonly #stats = { counted: 0, predicted: 0, refused: 0 };
  /** False once write_group could not run on this store's connections (NOT_READ_COMMITTED, NOT_PREPARED): every group is counted. */
  #predicting = true;

  constructor(pool: Pool, schema: string) {
    this.#pool = pool;
    this.#schema = schema;
    this.#decisions = `${quoteIdent(schema)}.decisions`;
    this.#lockAndCount = `${quoteIdent(schema)}.lock_and_count_window`;
    this.#countDenies = recentDeniesSql(schema);
    this.#writeGroup = writeGroupStatement(schema);
  }

  /**
   * A decision's unit in the next group. Rejects, before `fn` runs, when the
   * group's first round trip fails. When another transaction holds the
   * key's lock, the decision leaves the group and runs in `alone` (its own
   * transaction, which waits for the lock), after the decisions of its key
   * that left before it.
   */
  async unit<T>(
    key: BatchKey | undefined,
    fn: (unit: StoreUnit) => Promise<T>,
    alone: (fn: (unit: StoreUnit) => Promise<T>) => Promise<T>,
    again = false,
  ): Promise<T> {
    let group = this.#forming;
    if (group === undefined || group.members.length >= MAX_GROUP) {
      group = new Group();
      this.#forming = group;
      group.started = this.#schedule(group);
    }
    const member = new Member(key, group, again);
    group.add(member);
    let unit: StoreUnit | undefined;
    try {
      await group.started;
      if (group.failure !== undefined) throw group.failure;
      if (member.key !== undefined && !group.held.has(member.keyText)) {
        // Its key is locked elsewhere: the group goes on without it, so only this key waits.
        member.settle("rolled_back");
        // Written outside the groups: what this store knew of the key's count no longer holds.
        this.#forget(member.keyText);
        return await this.#alone(member.keyText, () => alone(fn));
      }
      unit = this.#storeUnit(member);
      return await fn(unit);
    } catch (error) {
      // The group's prediction did not hold: nothing of this decision was written; made again, predicting nothing.
      if (error instanceof UnitRetry && error.unit === unit && unit !== undefined && !again) {
        member.settle("rolled_back");
        return await this.unit(key, fn, alone, true);
      }
      throw error;
    } finally {
      // A unit that ends without commit or rollback gives up its place.
      member.settle("rolled_back");
    }
  }

  get stats(): GroupStats {
    return { ...this.#stats };
  }

  /** Forget what this store knew of a key's count. */
  #forget(keyText: string): void {
    this.#known.delete(keyText);
  }

  /** The database's time now, as this store predicts it; undefined when it cannot. */
  #predictedNow(): number | undefined {
    return this.#clockOffset === undefined ? undefined : Math.max(this.#lastNowMs, Math.floor(performance.now() + this.#clockOffset));
  }

  /** Remember the database's clock `dbMs`, read in a reply that arrived at `arrivedAt` (performance.now()). */
  #readClock(dbMs: number, arrivedAt: number): void {
    this.#clockOffset = dbMs - arrivedAt;
  }

  /**
   * Whether `group` can be decided in one round trip: it has no decision
   * made again, and for each of its keys this store knows the count at the
   * predicted time. Fills the group's time and counts when it can.
   */
  #predict(group: Group): boolean {
    if (!this.#predicting) return false;
    const nowMs = this.#predictedNow();
    if (nowMs === undefined) return false;
    const at = performance.now();
    const held = new Map<string, Known>();
    for (const m of group.members) {
      if (m.again) return false;
      if (m.key === undefined || held.has(m.keyText)) continue;
      const known = this.#known.get(m.keyText);
      if (known === undefined || known.windowMs !== m.key.windowMs) return false;
      if (known.oldestMs !== null && nowMs - known.windowMs > known.oldestMs) return false;
      const cool = this.#cooling.get(m.keyText);
      if (cool !== undefined) {
        if (at < cool) return false;
        this.#cooling.delete(m.keyText);
      }
      held.set(m.keyText, known);
    }
    group.predicted = true;
    group.nowMs = nowMs;
    this.#lastNowMs = nowMs;
    group.held = held;
    return true;
  }

  /**
   * After `group` committed: each held key's count as it now stands (the
   * group's count and its own denies), to predict the next group's with.
   */
  #learn(group: Group): void {
    const added = new Map<string, number>();
    for (const m of group.members) {
      if (m.key !== undefined && m.state === "committing" && m.counts && m.decision !== undefined)
        added.set(m.keyText, (added.get(m.keyText) ?? 0) + 1);
    }
    for (const [keyText, { n, oldestMs, windowMs }] of group.held) {
      const more = added.get(keyText) ?? 0;
      this.#known.delete(keyText);
      this.#known.set(keyText, {
        n: n + more,
        oldestMs: more > 0 && (oldestMs === null || group.nowMs < oldestMs) ? group.nowMs : oldestMs,
        windowMs,
      });
    }
    while (this.#known.size > MAX_KNOWN) this.#known.delete(this.#known.keys().next().value as string);
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
      if (this.#predict(group)) this.#stats.predicted += 1;
      else {
        this.#stats.counted += 1;
        await this.#begin(group.client, group);
      }
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
      this.#learn(group);
    } catch (error) {
      // Whether or not it was written, what this store knew of the group's keys no longer holds.
      for (const m of group.members) this.#forget(m.keyText);
      const code = (error as { code?: unknown } | null)?.code;
      // The session's transactions default to another level, or a pooler loses or mixes up prepared statements:
      // predicted groups' one statement cannot run here. The group's decisions are made again, counted.
      const unpredictable = group.predicted && UNPREDICTABLE.has(code);
      if (unpredictable) this.#predicting = false;
      if (code === STALE || unpredictable) {
        group.stale = true;
        this.#stats.refused += 1;
        // The clock is read again too (the refusal may have been the time's).
        this.#clockOffset = undefined;
        const until = performance.now() + COOL_MS;
        if (this.#cooling.size > MAX_KNOWN) for (const [k, t] of this.#cooling) if (t <= until - COOL_MS) this.#cooling.delete(k);
        for (const m of group.members) this.#cooling.set(m.keyText, until);
      }
      group.finish(toError(error));
      if (client !== undefined) {
        broken = clientError(client);
        // A predicted group began no transaction: its one statement was its own.
        if (!group.predicted) await client.query("ROLLBACK").catch((e: unknown) => (broken ??= e));
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
    // Each key counted over its first member's window (a later member with another window counts apart).
    for (const m of group.members) if (m.key !== undefined && !keys.has(m.keyText)) keys.set(m.keyText, m.key);
    // Taken without waiting, in one order: a key held elsewhere is left out (its members decide alone).
    const ordered = this.#inLockOrder(keys);
    // The locks, then the clock and each held key's count (lock_and_count_window: one statement, a plan kept per session);
    // only the clock for a group whose decisions name no key.
    const [locks, actors, tenants, windows] = keyArrays(ordered);
    const text =
      ordered.length === 0
        ? `${BEGIN}; SELECT ${DB_NOW_MS} AS now_ms, NULL::bigint AS i, FALSE AS got, NULL::bigint AS n, NULL::bigint AS oldest_ms`
        : `${BEGIN}; SELECT now_ms, i, got, n, oldest_ms FROM ${this.#lockAndCount}(${[
            sqlValue(locks),
            sqlValue(actors),
            sqlValue(tenants),
            `ARRAY[${windows.map((w) => sqlValue(w)).join(", ")}]::bigint[]`,
          ].join(", ")})`;
    const results = (await client.query(text)) as unknown as {
      rows: { now_ms: string; i: string; got: boolean; n: string | null; oldest_ms: string | null }[];
    }[];
    const arrivedAt = performance.now();
    const counted = results.at(-1)?.rows ?? [];
    const first = counted[0];
    const nowMs = Number(first?.now_ms);
    if (first === undefined || !Number.isSafeInteger(nowMs)) throw new Error("the database did not tell its time");
    group.nowMs = nowMs;
    this.#lastNowMs = Math.max(this.#lastNowMs, nowMs);
    this.#readClock(nowMs, arrivedAt);
    for (const row of counted) {
      if (row.got !== true) continue;
      const { keyText, key } = ordered[Number(row.i)] as InLockOrder;
      group.held.set(keyText, {
        n: Number(row.n),
        oldestMs: row.oldest_ms === null ? null : Number(row.oldest_ms),
        windowMs: key.windowMs,
      });
    }
  }

  /** `keys` (by Member.keyText) in the one order every writer locks several in: by lock key. */
  #inLockOrder(keys: ReadonlyMap<string, BatchKey>): InLockOrder[] {
    const ordered = [...keys].map(([keyText, key]) => ({ lockKey: historyLockKey(this.#schema, key.actorId, key.tenantId), keyText, key }));
    return ordered.sort((a, b) => (a.lockKey < b.lockKey ? -1 : a.lockKey > b.lockKey ? 1 : 0));
  }

  /**
   * A predicted group's confirmation, as write_group's first seven arguments
   * (confirm_counts', migrations 014, 015): the keys' arrays in lock order
   * (keyArrays), their predicted counts, the group's time and the lag
   * allowed.
   */
  #confirmation(group: Group, committing: readonly Member[]): unknown[] {
    const keys = new Map<string, BatchKey>();
    // Confirmed over the window each key's count was predicted for.
    for (const m of committing) {
      if (m.key !== undefined) keys.set(m.keyText, { ...m.key, windowMs: (group.held.get(m.keyText) as Known).windowMs });
    }
    const ordered = this.#inLockOrder(keys);
    return [...keyArrays(ordered), ordered.map((o) => (group.held.get(o.keyText) as Known).n), group.nowMs, LAG_MS];
  }

  async #write(client: PoolClient, group: Group): Promise<void> {
    const committing = group.members.filter((m) => m.state === "committing");
    const records = committing.flatMap((m) => m.records);
    const decided = committing.flatMap((m) => (m.decision === undefined ? [] : [m.decision]));
    if (group.predicted) {
      // Nothing to write: nothing was begun.
      if (committing.length === 0) return;
      // One prepared statement, its own transaction (migration 016).
      const { rows } = await client.query<{ now_ms: string }>({
        name: this.#writeGroup.name,
        text: this.#writeGroup.text,
        values: writeGroupValues(this.#schema, this.#confirmation(group, committing), records, decided),
      });
      const confirmed = Number(rows[0]?.now_ms);
      if (Number.isSafeInteger(confirmed)) this.#readClock(confirmed, performance.now());
      return;
    }
    // A counted group: its transaction was begun with its keys' locks and counts (#begin).
    const statements: string[] = [];
    if (records.length > 0) statements.push(appendRecordsStatement(this.#schema, records));
    if (decided.length > 0) {
      const rows = decided.map(
        (d) =>
          `(${decisionRowValues(d)
            .map((v) => sqlValue(v))
            .join(", ")})`,
      );
      statements.push(`INSERT INTO ${this.#decisions} (${DECISION_WRITE_COLUMNS.join(", ")}) VALUES ${rows.join(", ")}`);
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
      const same = key !== undefined && actorId === key.actorId && tenantId === key.tenantId;
      // The decisions of this key before it in the group: stored (or given up) first, then counted in.
      if (same) await Promise.all(member.before.map((m) => m.done));
      const earlier = same ? member.before.filter((m) => m.counts && (m.decision?.atMs ?? -Infinity) >= sinceMs).length : 0;
      const counted = group.held.get(member.keyText);
      // The group's count, when it was taken over this window (a reload may have given this decision another).
      if (same && counted !== undefined && sinceMs === group.nowMs - counted.windowMs) return counted.n + earlier;
      // Another key or another window: counted now, in the group's transaction (its locks are held); a
      // predicted group has none yet, so the decision is made again in a group that has.
      if (group.predicted) throw new UnitRetry(unit, "a count the group did not predict");
      const { rows } = await client.query<{ n: string }>(this.#countDenies, [actorId, tenantId, sinceMs]);
      return Number(rows[0]?.n ?? 0) + earlier;
    };
    const unsupported = (what: string) => (): Promise<never> =>
      Promise.reject(new Error(`${what} is not available in a decision's unit on PostgreSQL`));
    const unit: StoreUnit = {
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
        try {
          await group.committed;
        } catch (error) {
          if (group.stale) throw new UnitRetry(unit, toError(error).message);
          throw error;
        }
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
    return unit;
  }
}
