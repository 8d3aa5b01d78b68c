/**
 * PostgresStore: the VetoStore that many processes share.
 *
 * - Deny history: counted from the decisions table. A unit with a history
 *   key is one transaction that first takes pg_advisory_xact_lock on
 *   (schema, actor, tenant): count -> evaluate -> record -> append of one
 *   key run one at a time across every process, so escalation starts exactly
 *   at the threshold. READ COMMITTED is enough: the count runs after the lock
 *   is granted, so its snapshot holds every earlier unit's commit.
 * - Approvals: rows bound to the call digest; answers move them with
 *   UPDATE ... WHERE approval_status = <from> (the first answer wins; a
 *   concurrent one waits on the row lock, then finds it settled).
 * - Waiting: a trigger NOTIFYs veto_approval at commit; one LISTEN
 *   connection per store wakes the waiters of this process, and the
 *   approvals' polling covers the gaps (connecting, reconnecting).
 * - A killed process's transaction is rolled back by the server: no
 *   half-written decision, approval or record. A connection lost while a
 *   unit holds it (a terminated backend, a failover, a socket reset) fails
 *   the unit, which the decision flow turns into a record_unavailable deny;
 *   the connection is discarded, never reused, and never crashes the process.
 * - One clock (docs/contract.md §6): the database's. A unit reads it once,
 *   after its history lock (`nowMs`), and everything decided in the unit is
 *   timed by it; an approval moves out of pending only as the database's
 *   clock allows, in the statement that moves it.
 */
import type { Client, Pool } from "pg";
import { DecisionWatchers, listLimit } from "../history/store.js";
import type {
  ListApprovalsOptions,
  ApprovalTransition,
  HistoryKey,
  StoreUnit,
  StoredDecision,
  UnitOptions,
  VetoStore,
} from "../history/store.js";
import {
  BEGIN,
  checkout,
  connectionTimeoutMs,
  DB_NOW_MS,
  lockSql,
  historyLockKey,
  queryOnce,
  quoteIdent,
  loadPg,
  type PostgresLogger,
  type PostgresOptions,
} from "./connection.js";
import {
  DECISION_WRITE_COLUMNS,
  decisionRowValues,
  decisionSelectList,
  recentDeniesSql,
  toStoredDecision,
  type DecisionRow,
} from "./decision-row.js";
import { openMigrated } from "./migrations.js";
import { PostgresRecordSink, type PostgresCheckpointOptions } from "./records.js";
import { PostgresTransaction } from "./transaction.js";
import { DecisionBatcher, type GroupStats } from "./batch.js";
import type { RecordSink } from "../records/records.js";

export const APPROVAL_CHANNEL = "veto_approval";
const RECONNECT_MS = 1_000;

interface Queryable {
  query<R extends object>(text: string, values?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
}

/** The SQL of the store, for one schema. */
class Statements {
  readonly upsertDecision: string;
  readonly countDenies: string;
  readonly selectDecision: string;
  readonly transition: string;
  readonly claim: string;
  readonly claimAllowed: string;
  readonly listApprovals: string;

  constructor(schema: string) {
    const decisions = `${quoteIdent(schema)}.decisions`;
    const columns = DECISION_WRITE_COLUMNS.join(", ");
    const read = decisionSelectList();
    // Upsert: a decision whose record could not be written is stored again as
    // the deny that replaced it, under the same id.
    this.upsertDecision = `INSERT INTO ${decisions} (${columns})
      VALUES (${columns
        .split(", ")
        .map((_, i) => `$${i + 1}`)
        .join(", ")})
      ON CONFLICT (id) DO UPDATE SET ${columns
        .split(", ")
        .slice(1)
        .map((c) => `${c} = EXCLUDED.${c}`)
        .join(", ")}`;
    this.countDenies = recentDeniesSql(schema);
    this.selectDecision = `SELECT ${read} FROM ${decisions} WHERE id = $1`;
    // The use-once claim: approved -> executed, the answer kept, timed by $2
    // (the unit's reading of the database's clock) or now.
    this.claim = `UPDATE ${decisions}
      SET approval_status = 'executed', executed_at_ms = coalesce($2::bigint, ${DB_NOW_MS})
      WHERE id = $1 AND approval_status = 'approved'`;
    // The use-once claim of an amended call the policy allowed: it has no approval, only an execution time, set once.
    this.claimAllowed = `UPDATE ${decisions}
      SET executed_at_ms = coalesce($2::bigint, ${DB_NOW_MS})
      WHERE id = $1 AND action = 'allow' AND amendment IS NOT NULL AND approval_status IS NULL AND executed_at_ms IS NULL`;
    // $4: now (a pending approval past its expiry reads as expired); $5, $6:
    // the last row of the page before; $7: an actor left out.
    this.listApprovals = `SELECT ${read} FROM ${decisions}
      WHERE approval_status IS NOT NULL
        AND ($1::text[] IS NULL OR approvers && $1::text[])
        AND ($2::text[] IS NULL OR CASE WHEN approval_status = 'pending' AND expires_at_ms <= $4::bigint THEN 'expired'
                                        ELSE approval_status END = ANY($2::text[]))
        AND ($5::bigint IS NULL OR (at_ms, id) < ($5::bigint, $6::text))
        AND ($7::text IS NULL OR actor_id IS DISTINCT FROM $7::text)
      ORDER BY at_ms DESC, id DESC LIMIT $3`;
    // Out of pending: answered only before expiry, expired only at or after
    // it, both by the database's clock as the row is moved (after any wait for
    // its lock). $6: the answer's time as its unit read the same clock, or
    // null for now.
    this.transition = `UPDATE ${decisions}
      SET approval_status = $3, reviewer_id = $4, note = $5, amended_to = $7,
          answered_at_ms = CASE WHEN $3 IN ('pending', 'answering') THEN NULL ELSE coalesce($6::bigint, ${DB_NOW_MS}) END
      WHERE id = $1 AND approval_status = $2
        AND ($2 <> 'pending' OR (expires_at_ms <= ${DB_NOW_MS}) = ($3 = 'expired'))`;
  }
}

async function appendDecision(db: Queryable, sql: Statements, d: StoredDecision): Promise<void> {
  await db.query(sql.upsertDecision, decisionRowValues(d));
}

async function countRecentDenies(db: Queryable, sql: Statements, actorId: string, tenantId: string, sinceMs: number): Promise<number> {
  const { rows } = await db.query<{ n: string }>(sql.countDenies, [actorId, tenantId, sinceMs]);
  return Number(rows[0]?.n ?? 0);
}

async function getDecision(db: Queryable, sql: Statements, id: string): Promise<StoredDecision | undefined> {
  const { rows } = await db.query<DecisionRow>(sql.selectDecision, [id]);
  return rows[0] === undefined ? undefined : toStoredDecision(rows[0]);
}

/** `atMs`: the unit's time by the database's clock; null outside a unit (the statement reads the clock). */
async function transitionApproval(
  db: Queryable,
  sql: Statements,
  id: string,
  t: ApprovalTransition,
  atMs: number | null,
): Promise<boolean> {
  if (t.to === "executed") {
    if (t.from !== "approved") return false;
    const claimed = await db.query(sql.claim, [id, atMs]);
    return claimed.rowCount === 1;
  }
  const { rowCount } = await db.query(sql.transition, [id, t.from, t.to, t.reviewerId ?? null, t.note ?? null, atMs, t.amendedTo ?? null]);
  return rowCount === 1;
}

async function claimExecution(db: Queryable, sql: Statements, id: string, atMs: number | null): Promise<boolean> {
  const { rowCount } = await db.query(sql.claimAllowed, [id, atMs]);
  return rowCount === 1;
}

export type PostgresStoreOptions = PostgresOptions;

/**
 * The LISTEN connection: a client of its own, outside the pool (so waiting
 * never takes a connection a decision needs), made as the pool makes its
 * clients, with the same bound on connecting.
 */
async function newListenClient(pool: Pool): Promise<Client> {
  const own = (pool as unknown as { Client?: new (config: object) => Client }).Client;
  const ClientClass = typeof own === "function" ? own : (await loadPg()).Client;
  return new ClientClass({ ...pool.options, connectionTimeoutMillis: connectionTimeoutMs(pool) });
}

export class PostgresStore implements VetoStore {
  readonly schema: string;
  readonly #pool: Pool;
  readonly #ownsPool: boolean;
  readonly #detach: () => void;
  /** Statements outside units: each on a connection of its own, checked out and released at once. */
  readonly #db: Queryable;
  readonly #sql: Statements;
  readonly #log: PostgresLogger | undefined;
  readonly #watchers = new DecisionWatchers();
  readonly #approvalWatchers = new Set<(decisionId: string | undefined) => void>();
  #listener: Client | undefined;
  #listenState: "idle" | "connecting" | "listening" = "idle";
  #reconnect: NodeJS.Timeout | undefined;
  #closed = false;
  /** Sinks made by recordSink() that sign checkpoints: closed (a close checkpoint) before the pool ends. */
  readonly #signingSinks = new Set<PostgresRecordSink>();
  /** Decision units whose records join this store's transactions, written in groups (see batch.ts). */
  readonly #batcher: DecisionBatcher;

  /** Use PostgresStore.connect(). */
  private constructor(pool: Pool, ownsPool: boolean, detach: () => void, schema: string, log: PostgresLogger | undefined) {
    this.#pool = pool;
    this.#ownsPool = ownsPool;
    this.#detach = detach;
    this.#db = { query: (text, values) => queryOnce(pool, text, values) };
    this.schema = schema;
    this.#sql = new Statements(schema);
    this.#log = log;
    this.#batcher = new DecisionBatcher(pool, schema);
  }

  /**
   * Connect, then apply pending migrations (`migrate: true`) or check that
   * none is pending (default). Rejects with VetoOptionsError for bad options,
   * PostgresStoreError (code schema_not_migrated, migration_changed,
   * connection_unavailable) or the driver's error when the server refuses.
   */
  static async connect(options: PostgresStoreOptions): Promise<PostgresStore> {
    const { pool, ownsPool, detach, schema } = await openMigrated(options, "PostgresStore.connect");
    return new PostgresStore(pool, ownsPool, detach, schema, options.logger);
  }

  /** The pool, for a record sink or a query of your own. */
  get pool(): Pool {
    return this.#pool;
  }

  /**
   * A record sink writing to this store's database (the records table of the
   * same schema, same pool). Inside a decision's or answer's unit it writes in
   * the same transaction as the history update. Closing it leaves the store
   * open. With `checkpointKey` it signs checkpoints (see PostgresRecordSink);
   * closing the store closes it first.
   */
  recordSink(checkpoints: PostgresCheckpointOptions = {}): PostgresRecordSink {
    const sink = new PostgresRecordSink(this.#pool, this.schema, false, checkpoints);
    if (sink.checkpointKeyId !== null) this.#signingSinks.add(sink);
    return sink;
  }

  /**
   * What this store's groups of decisions did, since it connected: how many
   * read their keys' counts first (two round trips), how many were decided on
   * the counts the store knew and confirmed with their writes (one round
   * trip), and how many of those the database refused (their decisions were
   * made again). See docs/postgres.md, "One round trip".
   */
  groupStats(): GroupStats {
    return this.#batcher.stats;
  }

  /** The database's clock (docs/contract.md §6): what every instance on it times decisions and approvals by. */
  async now(): Promise<number> {
    const { rows } = await this.#db.query<{ now_ms: string }>(`SELECT ${DB_NOW_MS} AS now_ms`);
    return Number(rows[0]?.now_ms);
  }

  /**
   * A one-time token used (a sign-in link, docs/inbox.md), in this schema's
   * used_tokens: the insert wins once, for every process on the schema.
   * Tokens an hour past their expiry are deleted on the way.
   */
  async useToken(id: string, expiresAtMs: number): Promise<boolean> {
    const table = `${quoteIdent(this.schema)}.used_tokens`;
    const { rowCount } = await this.#db.query(
      `WITH gone AS (DELETE FROM ${table} WHERE expires_at_ms < ${DB_NOW_MS} - 3600000)
       INSERT INTO ${table} (id, expires_at_ms, used_at_ms) VALUES ($1, $2, ${DB_NOW_MS}) ON CONFLICT (id) DO NOTHING`,
      [id, expiresAtMs],
    );
    return rowCount === 1;
  }

  async appendDecision(decision: StoredDecision): Promise<void> {
    await appendDecision(this.#db, this.#sql, decision);
  }

  async countRecentDenies(actorId: string, tenantId: string, sinceMs: number): Promise<number> {
    return await countRecentDenies(this.#db, this.#sql, actorId, tenantId, sinceMs);
  }

  async getDecision(id: string): Promise<StoredDecision | undefined> {
    return await getDecision(this.#db, this.#sql, id);
  }

  /** `transition.atMs` is not used: the database's clock decides, and times the answer. */
  async transitionApproval(id: string, transition: ApprovalTransition): Promise<boolean> {
    return await transitionApproval(this.#db, this.#sql, id, transition, null);
  }

  /** Timed by the database's clock. */
  async claimExecution(id: string): Promise<boolean> {
    return await claimExecution(this.#db, this.#sql, id, null);
  }

  /**
   * One transaction on one connection, which the unit holds throughout and
   * never adds a second to. BEGIN, the history lock and the database's clock
   * share one round trip; the clock is read after the lock is granted.
   * Transitions in the unit are timed by that reading, whatever `atMs` says.
   *
   * A decision's unit (a history key with its window) whose records go to
   * this store's records table, unsigned, joins a group of decisions that
   * share one transaction and two round trips (batch.ts): its key's lock, its
   * count and its writes stay in that one transaction. When another
   * transaction holds its key's lock, it runs here alone instead and waits
   * for the lock, while the group goes on.
   */
  async unit<T>(
    history: HistoryKey | undefined,
    fn: (unit: StoreUnit) => Promise<T>,
    records?: RecordSink,
    options?: UnitOptions,
  ): Promise<T> {
    if (
      (history === undefined ? options?.decision === true : history.windowMs !== undefined && Number.isSafeInteger(history.windowMs)) &&
      records instanceof PostgresRecordSink &&
      records.batchesWith(this.#pool, this.schema)
    ) {
      const key =
        history === undefined ? undefined : { actorId: history.actorId, tenantId: history.tenantId, windowMs: history.windowMs as number };
      return await this.#batcher.unit(key, fn, (alone) => this.#unit(history, alone));
    }
    return await this.#unit(history, fn);
  }

  /** One unit in its own transaction: BEGIN, the history lock (waited for) and the clock in one round trip. */
  async #unit<T>(history: HistoryKey | undefined, fn: (unit: StoreUnit) => Promise<T>): Promise<T> {
    const client = await checkout(this.#pool);
    const tx = new PostgresTransaction(this.#pool, this.schema, client);
    try {
      const nowMs = await tx.run(async (c) => {
        const lock = history === undefined ? "" : `; ${lockSql(historyLockKey(this.schema, history.actorId, history.tenantId))}`;
        const results = (await c.query(`${BEGIN}${lock}; SELECT ${DB_NOW_MS} AS now_ms`)) as unknown as { rows: { now_ms?: string }[] }[];
        const ms = Number(results.at(-1)?.rows[0]?.now_ms);
        if (!Number.isSafeInteger(ms)) throw new Error("the database did not tell its time");
        return ms;
      });
      const sql = this.#sql;
      return await fn({
        countRecentDenies: (actorId, tenantId, sinceMs) => tx.run((c) => countRecentDenies(c, sql, actorId, tenantId, sinceMs)),
        appendDecision: (decision) => tx.run((c) => appendDecision(c, sql, decision)),
        getDecision: (id) => tx.run((c) => getDecision(c, sql, id)),
        transitionApproval: (id, transition) => tx.run((c) => transitionApproval(c, sql, id, transition, nowMs)),
        claimExecution: (id) => tx.run((c) => claimExecution(c, sql, id, nowMs)),
        commit: () => tx.commit(),
        rollback: () => tx.rollback(),
        transaction: tx,
        nowMs,
      });
    } finally {
      // Not committed: undone.
      await tx.rollback();
    }
  }

  watchDecision(id: string, listener: () => void): () => void {
    const unwatch = this.#watchers.add(id, listener);
    this.#listen();
    return unwatch;
  }

  async listApprovals(options: ListApprovalsOptions = {}): Promise<StoredDecision[]> {
    const { rows } = await this.#db.query<DecisionRow>(this.#sql.listApprovals, [
      options.approverIds === undefined ? null : [...options.approverIds],
      options.status === undefined ? null : [...options.status],
      listLimit(options.limit),
      options.nowMs ?? null,
      options.after?.atMs ?? null,
      options.after?.id ?? null,
      options.notActorId ?? null,
    ]);
    return rows.map(toStoredDecision);
  }

  /** Through the same LISTEN connection as watchDecision: every approval opened or changed on this schema, by any process. */
  watchApprovals(listener: (decisionId: string | undefined) => void): () => void {
    const own = (id: string | undefined): void => listener(id);
    this.#approvalWatchers.add(own);
    this.#listen();
    return () => void this.#approvalWatchers.delete(own);
  }

  #notifyApprovals(id: string | undefined): void {
    for (const listener of [...this.#approvalWatchers]) {
      try {
        listener(id);
      } catch (error) {
        this.#log?.error({ err: error }, "an approval watcher failed");
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const sink of this.#signingSinks) {
      await sink.close().catch((error: unknown) => this.#log?.error({ err: error }, "records: the close checkpoint could not be written"));
    }
    clearTimeout(this.#reconnect);
    this.#watchers.clear();
    this.#approvalWatchers.clear();
    const listener = this.#listener;
    this.#listener = undefined;
    if (listener !== undefined) {
      // A goodbye the network swallows must not hold up close().
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([listener.end().catch(() => {}), new Promise((r) => (timer = setTimeout(r, 1_000)))]);
      clearTimeout(timer);
    }
    this.#detach();
    if (this.#ownsPool) await this.#pool.end();
  }

  /** One LISTEN connection per store, (re)opened while anyone watches. */
  #listen(): void {
    if (this.#closed || this.#listenState !== "idle") return;
    this.#listenState = "connecting";
    this.#openListener().catch((error: unknown) => {
      this.#listenState = "idle";
      this.#log?.error({ err: error }, "PostgreSQL LISTEN connection failed; polling until it is back");
      this.#scheduleListen();
    });
  }

  async #openListener(): Promise<void> {
    const client = await newListenClient(this.#pool);
    let lost = false;
    const drop = (error?: unknown): void => {
      if (lost) return;
      lost = true;
      if (this.#listener === client) this.#listener = undefined;
      this.#listenState = "idle";
      if (error !== undefined && !this.#closed) {
        this.#log?.error({ err: error }, "PostgreSQL LISTEN connection lost; polling until it is back");
      }
      client.end().catch(() => {});
      this.#scheduleListen();
    };
    // Listening from before connect: an error at any moment (a terminated
    // backend, a reset) ends this connection and schedules the next, and
    // never reaches the process as an unhandled 'error'.
    client.on("error", drop);
    client.on("end", () => drop(new Error("connection ended")));
    client.on("notification", (message) => {
      if (message.channel !== APPROVAL_CHANNEL || message.payload === undefined) return;
      let target: unknown;
      try {
        target = JSON.parse(message.payload);
      } catch {
        return;
      }
      if (!Array.isArray(target) || target[0] !== this.schema || typeof target[1] !== "string") return;
      this.#watchers.notify(target[1]);
      this.#notifyApprovals(target[1]);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${APPROVAL_CHANNEL}`);
    } catch (error) {
      drop(error);
      return;
    }
    if (lost) return;
    if (this.#closed) {
      drop();
      return;
    }
    this.#listener = client;
    this.#listenState = "listening";
    // Anything answered while we were not listening: every waiter re-reads.
    this.#watchers.notify();
    this.#notifyApprovals(undefined);
  }

  #scheduleListen(): void {
    if (this.#closed || (this.#watchers.size === 0 && this.#approvalWatchers.size === 0) || this.#reconnect !== undefined) return;
    this.#reconnect = setTimeout(() => {
      this.#reconnect = undefined;
      this.#listen();
    }, RECONNECT_MS);
    this.#reconnect.unref();
  }
}
