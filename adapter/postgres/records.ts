/**
 * Decision records in PostgreSQL: the file log's hash chain (adapter/log
 * chain.ts, canonical.ts) in an append-only table, so `veto log verify
 * --postgres` checks it exactly as it checks a file. Appends take an advisory
 * lock on the chain for the rest of their transaction: seq and prev_hash
 * follow the last committed record, across every process. Inside a store
 * unit the record joins the unit's transaction (record and history commit
 * together); alone, each write is its own transaction.
 */
import type { Pool, PoolClient } from "pg";
import { ChainChecker, GENESIS_HASH, sealRecord } from "../log/chain.js";
import { CanonicalJsonError, RecordUnavailableError } from "../log/errors.js";
import type { VetoRecord } from "../records.js";
import type { TransactionalRecordSink } from "../unit.js";
import {
  lockSql,
  checkOptions,
  checkout,
  openPool,
  quoteIdent,
  recordsLockKey,
  releaseClient,
  type PostgresOptions,
} from "./connection.js";
import { openMigrated } from "./migrations.js";
import { PostgresTransaction } from "./transaction.js";

/** Where a written record sits in the chain. */
export interface PostgresWrittenRecord {
  readonly seq: number;
  readonly hash: string;
}

async function appendRecord(client: PoolClient, schema: string, record: object): Promise<PostgresWrittenRecord> {
  const table = `${quoteIdent(schema)}.records`;
  // One round trip: the chain lock, then (a new snapshot) the last record.
  const results = (await client.query(
    `${lockSql(client, recordsLockKey(schema))}; SELECT seq, hash FROM ${table} ORDER BY seq DESC LIMIT 1`,
  )) as unknown as { rows: { seq: string; hash: string }[] }[];
  const last = results[1]?.rows[0];
  const sealed = sealRecord(record, last === undefined ? 1 : Number(last.seq) + 1, last?.hash ?? GENESIS_HASH);
  const fields = record as { type?: unknown; decision_id?: unknown };
  await client.query(
    `INSERT INTO ${table} (seq, prev_hash, hash, type, decision_id, line) VALUES ($1, $2, $3, $4, $5, $6)`,
    [
      sealed.seq,
      last?.hash ?? GENESIS_HASH,
      sealed.hash,
      typeof fields.type === "string" ? fields.type : "",
      typeof fields.decision_id === "string" ? fields.decision_id : "",
      sealed.text,
    ],
  );
  return { seq: sealed.seq, hash: sealed.hash };
}

/** The sink's errors in the file log's terms: record_invalid (this record only) or record_unavailable. */
function unavailable(error: unknown, schema: string): RecordUnavailableError {
  if (error instanceof CanonicalJsonError) {
    return new RecordUnavailableError(`record not written to ${schema}.records: ${error.message}`, {
      code: "record_invalid",
      cause: error,
    });
  }
  return new RecordUnavailableError(`record not written to ${schema}.records: ${(error as Error).message}`, { cause: error });
}

export class PostgresRecordSink implements TransactionalRecordSink {
  readonly schema: string;
  readonly #pool: Pool;
  readonly #ownsPool: boolean;
  #detach = (): void => {};

  /** Made by PostgresStore.recordSink() (shares its pool) or PostgresRecordSink.connect(). */
  constructor(pool: Pool, schema: string, ownsPool = false) {
    this.#pool = pool;
    this.schema = schema;
    this.#ownsPool = ownsPool;
  }

  /**
   * A sink on a pool of its own, for a store that is not PostgreSQL (or on
   * another database). The records table must exist: run `veto db migrate`
   * or pass `migrate: true`.
   */
  static async connect(options: PostgresOptions): Promise<PostgresRecordSink> {
    const { pool, ownsPool, detach, schema } = await openMigrated(options, "PostgresRecordSink.connect");
    const sink = new PostgresRecordSink(pool, schema, ownsPool);
    sink.#detach = detach;
    return sink;
  }

  /** Append in a transaction of its own; resolves once committed. */
  async write(record: VetoRecord): Promise<void> {
    await this.append(record);
  }

  async append(record: object): Promise<PostgresWrittenRecord> {
    let client: PoolClient;
    try {
      client = await checkout(this.#pool);
    } catch (error) {
      throw unavailable(error, this.schema);
    }
    let broken: unknown;
    try {
      await client.query("BEGIN");
      const written = await appendRecord(client, this.schema, record);
      await client.query("COMMIT");
      return written;
    } catch (error) {
      await client.query("ROLLBACK").catch((e: unknown) => {
        broken = e;
      });
      throw unavailable(error, this.schema);
    } finally {
      // A connection that broke (its error kept by checkout) is discarded either way.
      releaseClient(client, broken);
    }
  }

  joinsTransaction(transaction: unknown): boolean {
    return (
      transaction instanceof PostgresTransaction &&
      transaction.open &&
      transaction.pool === this.#pool &&
      transaction.schema === this.schema
    );
  }

  async writeInTransaction(transaction: unknown, record: VetoRecord): Promise<void> {
    try {
      await (transaction as PostgresTransaction).run((client) => appendRecord(client, this.schema, record));
    } catch (error) {
      throw unavailable(error, this.schema);
    }
  }

  async close(): Promise<void> {
    this.#detach();
    if (this.#ownsPool) await this.#pool.end();
  }
}

export type PostgresVerifyResult =
  | { readonly ok: true; readonly count: number; readonly head: string; readonly table: string }
  | { readonly ok: false; readonly seq: number; readonly reason: string; readonly table: string };

const PAGE = 1_000;

/**
 * Verify <schema>.records as one chain from its first record, the way
 * verifyLog checks a file: canonical JSON, every hash, every prev_hash, seq
 * 1, 2, 3 ... with no gap, and the columns agreeing with the line. Never
 * throws for a damaged chain; the result names the first bad seq and why.
 * Like any hash chain it cannot show records cut off the end: compare `head`
 * and `count` with a copy kept elsewhere.
 */
export async function verifyPostgresLog(options: PostgresOptions): Promise<PostgresVerifyResult> {
  const { schema } = checkOptions(options, "verifyPostgresLog");
  const { pool, ownsPool, detach } = await openPool(options);
  const table = `${schema}.records`;
  const checker = new ChainChecker();
  try {
    let after = 0;
    for (;;) {
      const { rows } = await pool.query<{ seq: string; prev_hash: string; hash: string; type: string; decision_id: string; line: string }>(
        `SELECT seq, prev_hash, hash, type, decision_id, line FROM ${quoteIdent(schema)}.records WHERE seq > $1 ORDER BY seq LIMIT ${PAGE}`,
        [after],
      );
      for (const row of rows) {
        const seq = Number(row.seq);
        const result = checker.accept(Buffer.from(row.line, "utf8"), { file: table, line: seq });
        if (!result.ok) return { ok: false, seq, reason: `seq ${seq}: ${result.problem.replace(/\bline (\d+)/, "seq $1")}`, table };
        const r = result.record;
        if (r["seq"] !== seq || r["prev_hash"] !== row.prev_hash || r["hash"] !== row.hash || r["type"] !== row.type || r["decision_id"] !== row.decision_id) {
          return { ok: false, seq, reason: `seq ${seq}: columns do not match the record's line`, table };
        }
        after = seq;
      }
      if (rows.length < PAGE) break;
    }
    return { ok: true, count: checker.count, head: checker.head, table };
  } finally {
    detach();
    if (ownsPool) await pool.end();
  }
}
