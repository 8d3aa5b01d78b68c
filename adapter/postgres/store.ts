/**
 * PostgresStore: the VetoStore that many processes share (issue 7).
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
 *   half-written decision, approval or record.
 */
import type { Pool, PoolClient } from "pg";
import { DecisionWatchers } from "../store.js";
import type {
  ApprovalState,
  ApprovalStatus,
  ApprovalTransition,
  HistoryKey,
  StoreUnit,
  StoredDecision,
  VetoStore,
} from "../store.js";
import type { Action } from "../decision.js";
import {
  lockSql,
  historyLockKey,
  quoteIdent,
  releaseClient,
  type PostgresLogger,
  type PostgresOptions,
} from "./connection.js";
import { openMigrated } from "./migrations.js";
import { PostgresRecordSink } from "./records.js";
import { PostgresTransaction } from "./transaction.js";

export const APPROVAL_CHANNEL = "veto_approval";
const RECONNECT_MS = 1_000;

interface Queryable {
  query<R extends object>(text: string, values?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
}

interface DecisionRow {
  id: string;
  action: Action;
  escalated: boolean;
  actor_id: string | null;
  tenant_id: string | null;
  at_ms: string;
  call_digest: string | null;
  approvers: string[];
  approval_status: ApprovalStatus | null;
  expires_at_ms: string | null;
  reviewer_id: string | null;
  note: string | null;
  answered_at_ms: string | null;
  counts_towards_escalation: boolean;
}

function toStored(row: DecisionRow): StoredDecision {
  let approval: ApprovalState | undefined;
  if (row.approval_status !== null) {
    approval = {
      status: row.approval_status,
      expiresAtMs: Number(row.expires_at_ms),
      ...(row.reviewer_id === null ? {} : { reviewerId: row.reviewer_id }),
      ...(row.note === null ? {} : { note: row.note }),
      ...(row.answered_at_ms === null ? {} : { answeredAtMs: Number(row.answered_at_ms) }),
    };
  }
  return {
    id: row.id,
    action: row.action,
    escalated: row.escalated,
    ...(row.counts_towards_escalation ? {} : { countsTowardsEscalation: false }),
    ...(row.actor_id === null ? {} : { actorId: row.actor_id }),
    ...(row.tenant_id === null ? {} : { tenantId: row.tenant_id }),
    atMs: Number(row.at_ms),
    ...(row.call_digest === null ? {} : { callDigest: row.call_digest }),
    approvers: row.approvers,
    ...(approval === undefined ? {} : { approval }),
  };
}

/** The SQL of the store, for one schema. */
class Statements {
  readonly upsertDecision: string;
  readonly countDenies: string;
  readonly selectDecision: string;
  readonly transition: string;

  constructor(schema: string) {
    const decisions = `${quoteIdent(schema)}.decisions`;
    const columns =
      "id, action, escalated, actor_id, tenant_id, at_ms, call_digest, approvers, approval_status, expires_at_ms, reviewer_id, note, answered_at_ms, counts_towards_escalation";
    // Upsert: a decision whose record could not be written is stored again as
    // the deny that replaced it, under the same id.
    this.upsertDecision = `INSERT INTO ${decisions} (${columns})
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
      ON CONFLICT (id) DO UPDATE SET ${columns
        .split(", ")
        .slice(1)
        .map((c) => `${c} = EXCLUDED.${c}`)
        .join(", ")}`;
    this.countDenies = `SELECT
      (SELECT count(*) FROM ${decisions} WHERE actor_id = $1 AND tenant_id = $2 AND action = 'deny' AND counts_towards_escalation AND at_ms >= $3)
      + (SELECT count(*) FROM ${decisions} WHERE actor_id = $1 AND tenant_id = $2 AND approval_status = 'rejected' AND answered_at_ms >= $3)
      AS n`;
    this.selectDecision = `SELECT ${columns} FROM ${decisions} WHERE id = $1`;
    this.transition = `UPDATE ${decisions}
      SET approval_status = $3, reviewer_id = $4, note = $5,
          answered_at_ms = CASE WHEN $3 IN ('pending', 'answering') THEN NULL ELSE $6::bigint END
      WHERE id = $1 AND approval_status = $2
        AND ($2 <> 'pending' OR $3 = 'expired' OR expires_at_ms > $6::bigint)`;
  }
}

async function appendDecision(db: Queryable, sql: Statements, d: StoredDecision): Promise<void> {
  await db.query(sql.upsertDecision, [
    d.id,
    d.action,
    d.escalated,
    d.actorId ?? null,
    d.tenantId ?? null,
    d.atMs,
    d.callDigest ?? null,
    [...d.approvers],
    d.approval?.status ?? null,
    d.approval?.expiresAtMs ?? null,
    d.approval?.reviewerId ?? null,
    d.approval?.note ?? null,
    d.approval?.answeredAtMs ?? null,
    d.countsTowardsEscalation !== false,
  ]);
}

async function countRecentDenies(db: Queryable, sql: Statements, actorId: string, tenantId: string, sinceMs: number): Promise<number> {
  const { rows } = await db.query<{ n: string }>(sql.countDenies, [actorId, tenantId, sinceMs]);
  return Number(rows[0]?.n ?? 0);
}

async function getDecision(db: Queryable, sql: Statements, id: string): Promise<StoredDecision | undefined> {
  const { rows } = await db.query<DecisionRow>(sql.selectDecision, [id]);
  return rows[0] === undefined ? undefined : toStored(rows[0]);
}

async function transitionApproval(db: Queryable, sql: Statements, id: string, t: ApprovalTransition): Promise<boolean> {
  const { rowCount } = await db.query(sql.transition, [id, t.from, t.to, t.reviewerId ?? null, t.note ?? null, t.atMs]);
  return rowCount === 1;
}

export interface PostgresStoreOptions extends PostgresOptions {}

export class PostgresStore implements VetoStore {
  readonly schema: string;
  readonly #pool: Pool;
  readonly #ownsPool: boolean;
  readonly #sql: Statements;
  readonly #log: PostgresLogger | undefined;
  readonly #watchers = new DecisionWatchers();
  #listener: PoolClient | undefined;
  #listenState: "idle" | "connecting" | "listening" = "idle";
  #reconnect: NodeJS.Timeout | undefined;
  #closed = false;

  /** Use PostgresStore.connect(). */
  private constructor(pool: Pool, ownsPool: boolean, schema: string, log: PostgresLogger | undefined) {
    this.#pool = pool;
    this.#ownsPool = ownsPool;
    this.schema = schema;
    this.#sql = new Statements(schema);
    this.#log = log;
  }

  /**
   * Connect, then apply pending migrations (`migrate: true`) or check that
   * none is pending (default). Rejects with VetoOptionsError for bad options,
   * PostgresStoreError (code schema_not_migrated, migration_changed) or the
   * driver's error when the server cannot be reached.
   */
  static async connect(options: PostgresStoreOptions): Promise<PostgresStore> {
    const { pool, ownsPool, schema } = await openMigrated(options, "PostgresStore.connect");
    return new PostgresStore(pool, ownsPool, schema, options.logger);
  }

  /** The pool, for a record sink or a query of your own. */
  get pool(): Pool {
    return this.#pool;
  }

  /**
   * A record sink writing to this store's database (the records table of the
   * same schema, same pool). Inside a decision's or answer's unit it writes in
   * the same transaction as the history update. Closing it leaves the store open.
   */
  recordSink(): PostgresRecordSink {
    return new PostgresRecordSink(this.#pool, this.schema);
  }

  async appendDecision(decision: StoredDecision): Promise<void> {
    await appendDecision(this.#pool, this.#sql, decision);
  }

  async countRecentDenies(actorId: string, tenantId: string, sinceMs: number): Promise<number> {
    return await countRecentDenies(this.#pool, this.#sql, actorId, tenantId, sinceMs);
  }

  async getDecision(id: string): Promise<StoredDecision | undefined> {
    return await getDecision(this.#pool, this.#sql, id);
  }

  async transitionApproval(id: string, transition: ApprovalTransition): Promise<boolean> {
    return await transitionApproval(this.#pool, this.#sql, id, transition);
  }

  async unit<T>(history: HistoryKey | undefined, fn: (unit: StoreUnit) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    const tx = new PostgresTransaction(this.#pool, this.schema, client);
    try {
      await tx.run(async (c) => {
        const lock = history === undefined ? "" : `; ${lockSql(c, historyLockKey(this.schema, history.actorId, history.tenantId))}`;
        await c.query(`BEGIN${lock}`);
      });
      const sql = this.#sql;
      return await fn({
        countRecentDenies: (actorId, tenantId, sinceMs) => tx.run((c) => countRecentDenies(c, sql, actorId, tenantId, sinceMs)),
        appendDecision: (decision) => tx.run((c) => appendDecision(c, sql, decision)),
        getDecision: (id) => tx.run((c) => getDecision(c, sql, id)),
        transitionApproval: (id, transition) => tx.run((c) => transitionApproval(c, sql, id, transition)),
        commit: () => tx.commit(),
        rollback: () => tx.rollback(),
        transaction: tx,
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

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#reconnect);
    this.#watchers.clear();
    const listener = this.#listener;
    this.#listener = undefined;
    if (listener !== undefined) releaseClient(listener, true);
    if (this.#ownsPool) await this.#pool.end();
  }

  /** One LISTEN connection per store, (re)opened while anyone watches. */
  #listen(): void {
    if (this.#closed || this.#listenState !== "idle") return;
    this.#listenState = "connecting";
    void this.#pool.connect().then(
      async (client) => {
        const drop = (error?: unknown): void => {
          if (this.#listener !== client) return;
          this.#listener = undefined;
          this.#listenState = "idle";
          if (error !== undefined) this.#log?.error({ err: error }, "PostgreSQL LISTEN connection lost; polling until it is back");
          releaseClient(client, true);
          this.#scheduleListen();
        };
        this.#listener = client;
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
        });
        client.on("error", drop);
        client.on("end", () => drop(new Error("connection ended")));
        try {
          await client.query(`LISTEN ${APPROVAL_CHANNEL}`);
        } catch (error) {
          drop(error);
          return;
        }
        if (this.#closed) {
          drop();
          return;
        }
        this.#listenState = "listening";
        // Anything answered while we were not listening: every waiter re-reads.
        this.#watchers.notify();
      },
      (error: unknown) => {
        this.#listenState = "idle";
        this.#log?.error({ err: error }, "PostgreSQL LISTEN connection failed; polling until it is back");
        this.#scheduleListen();
      },
    );
  }

  #scheduleListen(): void {
    if (this.#closed || this.#watchers.size === 0 || this.#reconnect !== undefined) return;
    this.#reconnect = setTimeout(() => {
      this.#reconnect = undefined;
      this.#listen();
    }, RECONNECT_MS);
    this.#reconnect.unref();
  }
}
