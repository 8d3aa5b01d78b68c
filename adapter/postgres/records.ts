/**
 * Decision records in PostgreSQL: the file log's hash chain
 * (adapter/records/chain.ts over adapter/common/canonical-json.ts) in an append-only table, so `veto log verify
 * --postgres` checks it exactly as it checks a file. Appends take an advisory
 * lock on the chain for the rest of their transaction: seq and prev_hash
 * follow the last committed record, across every process. Inside a store
 * unit the record joins the unit's transaction (record and history commit
 * together); alone, each write is its own transaction.
 *
 * With a checkpoint key, the instance that appends the record completing
 * `checkpointEvery` records since the last checkpoint signs a checkpoint in
 * the same transaction, and close() signs one when the chain does not end
 * with one: several instances sharing a chain each sign with their own key,
 * and a verifier holds the table to the list of their public keys.
 */
import type { Pool, PoolClient } from "pg";
import { ChainChecker, GENESIS_HASH, prepareRecord, sealCheckpoint, sealRecord, type SealedLine } from "../records/chain.js";
import {
  CheckpointTracker,
  checkpointSigner,
  coverageProblem,
  type CheckpointKeyInput,
  type CheckpointReason,
  type CheckpointSigner,
} from "../records/checkpoint.js";
import { CanonicalJsonError, DecisionLogError, RecordUnavailableError } from "../records/errors.js";
import { checkpointOptions, type CheckpointReport, type VerifyOptions } from "../records/file/verify.js";
import type { VetoRecord } from "../records/records.js";
import type { TransactionalRecordSink } from "../history/unit.js";
import {
  BEGIN,
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
import { readDecisionRecords } from "./record-reader.js";
import { PostgresTransaction } from "./transaction.js";
import { appendRecordsStatement, BatchTransaction, type DeferredRecord } from "./batch.js";

/** Where a written record sits in the chain. */
export interface PostgresWrittenRecord {
  readonly seq: number;
  readonly hash: string;
}

/** A sink's checkpoint signing: the key, how often, the clock. */
export interface PostgresCheckpointOptions {
  /**
   * Ed25519 private key (PEM text or bytes, or a KeyObject) this instance
   * signs checkpoints with. Default: none (no checkpoints).
   */
  readonly checkpointKey?: CheckpointKeyInput;
  /** Sign a checkpoint once this many records follow the last one. Default 1,000. */
  readonly checkpointEvery?: number;
  /** Milliseconds since the epoch, for a checkpoint's `time`. Default Date.now. */
  readonly clock?: () => number;
}

interface Checkpointing {
  readonly signer: CheckpointSigner;
  readonly every: number;
  readonly clock: () => number;
  /** record_log.log_id, read once. */
  logId: string | undefined;
}

/** Checked options, or undefined without a key. Throws DecisionLogError("invalid_options"). */
export function checkpointing(options: PostgresCheckpointOptions, where: string): Checkpointing | undefined {
  const { checkpointKey, checkpointEvery, clock } = options;
  if (checkpointKey === undefined) {
    if (checkpointEvery !== undefined || clock !== undefined) {
      throw new DecisionLogError("invalid_options", `${where}: checkpointEvery and clock need checkpointKey`);
    }
    return undefined;
  }
  const every = checkpointEvery ?? 1_000;
  if (!Number.isSafeInteger(every) || every < 1) {
    throw new DecisionLogError("invalid_options", `${where}: checkpointEvery must be a positive integer, got ${String(every)}`);
  }
  if (clock !== undefined && typeof clock !== "function") {
    throw new DecisionLogError("invalid_options", `${where}: clock must be a function returning epoch milliseconds`);
  }
  return { signer: checkpointSigner(checkpointKey, `${where}: checkpointKey`), every, clock: clock ?? Date.now, logId: undefined };
}

async function insertEntry(
  client: PoolClient,
  table: string,
  sealed: SealedLine,
  prevHash: string,
  type: string,
  decisionId: string,
): Promise<void> {
  await client.query(`INSERT INTO ${table} (seq, prev_hash, hash, type, decision_id, line) VALUES ($1, $2, $3, $4, $5, $6)`, [
    sealed.seq,
    prevHash,
    sealed.hash,
    type,
    decisionId,
    sealed.text,
  ]);
}

async function appendCheckpoint(
  client: PoolClient,
  schema: string,
  signing: Checkpointing,
  reason: CheckpointReason,
  seq: number,
  head: string,
): Promise<void> {
  signing.logId ??= (await client.query<{ log_id: string }>(`SELECT log_id FROM ${quoteIdent(schema)}.record_log`)).rows[0]?.log_id;
  if (signing.logId === undefined) throw new Error(`${schema}.record_log holds no log id`);
  const checkpoint = signing.signer.sign({
    log_id: signing.logId,
    seq: seq - 1,
    head,
    reason,
    time: new Date(signing.clock()).toISOString(),
    key_id: signing.signer.keyId,
  });
  await insertEntry(client, `${quoteIdent(schema)}.records`, sealCheckpoint(checkpoint, seq, head), head, "checkpoint", "");
}

async function appendRecord(
  client: PoolClient,
  schema: string,
  record: object,
  signing: Checkpointing | undefined,
): Promise<PostgresWrittenRecord> {
  const table = `${quoteIdent(schema)}.records`;
  // One round trip: the chain lock, then (a new snapshot) the last entry and, when signing, the last checkpoint.
  const lastCheckpoint = signing === undefined ? "" : `; SELECT max(seq) AS seq FROM ${table} WHERE type = 'checkpoint'`;
  const results = (await client.query(
    `${lockSql(recordsLockKey(schema))}; SELECT seq, hash FROM ${table} ORDER BY seq DESC LIMIT 1${lastCheckpoint}`,
  )) as unknown as { rows: { seq: string | null; hash?: string }[] }[];
  const last = results[1]?.rows[0];
  const prevHash = last?.hash ?? GENESIS_HASH;
  const sealed = sealRecord(record, last === undefined ? 1 : Number(last.seq) + 1, prevHash);
  const fields = record as { type?: unknown; decision_id?: unknown };
  await insertEntry(
    client,
    table,
    sealed,
    prevHash,
    typeof fields.type === "string" ? fields.type : "",
    typeof fields.decision_id === "string" ? fields.decision_id : "",
  );
  if (signing !== undefined) {
    // Every entry after the last checkpoint is a record.
    const since = sealed.seq - Number(results[2]?.rows[0]?.seq ?? 0);
    if (since >= signing.every) await appendCheckpoint(client, schema, signing, "interval", sealed.seq + 1, sealed.hash);
  }
  return { seq: sealed.seq, hash: sealed.hash };
}

/** `record` checked and canonicalized for append_records (batch.ts appendRecordsStatement); throws CanonicalJsonError. */
function deferred(record: object): DeferredRecord {
  const fields = record as { type?: unknown; decision_id?: unknown };
  return {
    prepared: prepareRecord(record),
    type: typeof fields.type === "string" ? fields.type : "",
    decisionId: typeof fields.decision_id === "string" ? fields.decision_id : "",
  };
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
  readonly #signing: Checkpointing | undefined;
  #closed: Promise<void> | undefined;
  #detach = (): void => {};

  /**
   * Made by PostgresStore.recordSink() (shares its pool) or
   * PostgresRecordSink.connect(). Throws DecisionLogError("invalid_options")
   * for an unusable checkpoint key.
   */
  constructor(pool: Pool, schema: string, ownsPool = false, checkpoints: PostgresCheckpointOptions = {}) {
    this.#signing = checkpointing(checkpoints, "PostgresRecordSink");
    this.#pool = pool;
    this.schema = schema;
    this.#ownsPool = ownsPool;
  }

  /**
   * A sink on a pool of its own, for a store that is not PostgreSQL (or on
   * another database). The records table must exist: run `veto db migrate`
   * or pass `migrate: true`.
   */
  static async connect(options: PostgresOptions & PostgresCheckpointOptions): Promise<PostgresRecordSink> {
    const { checkpointKey, checkpointEvery, clock, ...postgres } = options;
    const checkpoints = { checkpointKey, checkpointEvery, clock };
    checkpointing(checkpoints, "PostgresRecordSink.connect");
    const { pool, ownsPool, detach, schema } = await openMigrated(postgres, "PostgresRecordSink.connect");
    const sink = new PostgresRecordSink(pool, schema, ownsPool, checkpoints);
    sink.#detach = detach;
    return sink;
  }

  /** The key id this sink signs checkpoints with, or null without a key. */
  get checkpointKeyId(): string | null {
    return this.#signing?.signer.keyId ?? null;
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
      if (this.#signing === undefined) {
        // One round trip: the chain's lock is held only while the server appends and commits.
        const prepared = deferred(record);
        const results = (await client.query(
          `${BEGIN}; ${appendRecordsStatement(this.schema, [prepared])}; SELECT seq, hash FROM ${quoteIdent(this.schema)}.records ORDER BY seq DESC LIMIT 1; COMMIT`,
        )) as unknown as { rows: { seq?: string; hash?: string }[] }[];
        const last = results.at(-2)?.rows[0];
        const seq = Number(last?.seq);
        if (!Number.isSafeInteger(seq) || typeof last?.hash !== "string") throw new Error("the appended record was not read back");
        return { seq, hash: last.hash };
      }
      await client.query(BEGIN);
      const written = await appendRecord(client, this.schema, record, this.#signing);
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

  /** Whether decisions of the store on `pool` and `schema` may write this sink's records in groups (batch.ts): not when it signs checkpoints. */
  batchesWith(pool: Pool, schema: string): boolean {
    return this.#signing === undefined && this.#closed === undefined && pool === this.#pool && schema === this.schema;
  }

  joinsTransaction(transaction: unknown): boolean {
    return (
      (transaction instanceof PostgresTransaction || transaction instanceof BatchTransaction) &&
      transaction.open &&
      transaction.pool === this.#pool &&
      transaction.schema === this.schema
    );
  }

  async writeInTransaction(transaction: unknown, record: VetoRecord): Promise<void> {
    if (transaction instanceof BatchTransaction) {
      try {
        // Checked and canonicalized now; sealed and written when the group commits.
        transaction.defer(deferred(record));
      } catch (error) {
        throw unavailable(error, this.schema);
      }
      return;
    }
    const tx = transaction as PostgresTransaction;
    if (this.#signing === undefined) {
      try {
        // Checked and canonicalized now; sealed and appended by the database with the unit's next statement
        // (or its commit), so the chain's lock is taken no sooner.
        tx.atCommit(appendRecordsStatement(this.schema, [deferred(record)]), (error) => unavailable(error, this.schema));
      } catch (error) {
        throw unavailable(error, this.schema);
      }
      return;
    }
    try {
      await tx.run((client) => appendRecord(client, this.schema, record, this.#signing));
    } catch (error) {
      throw unavailable(error, this.schema);
    }
  }

  /**
   * The records of one decision that sit in the chain, in chain order: what
   * waitForApproval checks an approval against (adapter/approvals/evidence.ts).
   */
  async readRecords(decisionId: string): Promise<readonly Record<string, unknown>[]> {
    return await readDecisionRecords(this.#pool, this.schema, decisionId);
  }

  /**
   * With a checkpoint key, sign a close checkpoint when the chain does not
   * already end with a checkpoint; then end the pool if the sink owns it.
   * Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      try {
        if (this.#signing !== undefined) await this.#signClose(this.#signing);
      } finally {
        this.#detach();
        if (this.#ownsPool) await this.#pool.end();
      }
    })();
    return this.#closed;
  }

  async #signClose(signing: Checkpointing): Promise<void> {
    const client = await checkout(this.#pool);
    let broken: unknown;
    try {
      await client.query(BEGIN);
      const table = `${quoteIdent(this.schema)}.records`;
      const results = (await client.query(
        `${lockSql(recordsLockKey(this.schema))}; SELECT seq, hash, type FROM ${table} ORDER BY seq DESC LIMIT 1`,
      )) as unknown as { rows: { seq: string; hash: string; type: string }[] }[];
      const last = results[1]?.rows[0];
      if (last !== undefined && last.type !== "checkpoint") {
        await appendCheckpoint(client, this.schema, signing, "close", Number(last.seq) + 1, last.hash);
      }
      await client.query("COMMIT");
    } catch (error) {
      await client.query("ROLLBACK").catch((e: unknown) => {
        broken = e;
      });
      throw unavailable(error, this.schema);
    } finally {
      releaseClient(client, broken);
    }
  }
}

export type PostgresVerifyResult =
  | {
      readonly ok: true;
      readonly count: number;
      readonly head: string;
      readonly table: string;
      /** Present when the table holds checkpoints or public keys were given. */
      readonly checkpoints?: CheckpointReport;
    }
  | { readonly ok: false; readonly seq: number; readonly reason: string; readonly table: string };

const PAGE = 1_000;

/**
 * Verify <schema>.records as one chain from its first entry, the way
 * verifyLog checks a file: canonical JSON, every hash, every prev_hash, seq
 * 1, 2, 3 ... with no gap, the columns agreeing with the line, and the
 * checkpoints (signed with one of `checks.publicKeys`, covering what
 * `checks` asks). Never throws for a damaged chain; the result names the
 * first bad seq and why. Without keys it cannot show entries cut off the end.
 */
export async function verifyPostgresLog(
  options: PostgresOptions,
  checks: Pick<VerifyOptions, "publicKeys" | "requireCheckpointed" | "expectCheckpoint"> = {},
): Promise<PostgresVerifyResult> {
  const { schema } = checkOptions(options, "verifyPostgresLog");
  const { keys, expect, requireCheckpointed, savedProblem } = checkpointOptions(checks, "verifyPostgresLog");
  const { pool, ownsPool, detach } = await openPool(options);
  const table = `${schema}.records`;
  const checker = new ChainChecker();
  const tracker = new CheckpointTracker({ keys, unknownKeys: "fail", expect });
  const seqText = (problem: string): string => problem.replace(/\bline (\d+)/g, "seq $1");
  try {
    if (savedProblem !== null) return { ok: false, seq: 0, reason: savedProblem, table };
    let after = 0;
    for (;;) {
      const { rows } = await pool.query<{ seq: string; prev_hash: string; hash: string; type: string; decision_id: string; line: string }>(
        `SELECT seq, prev_hash, hash, type, decision_id, line FROM ${quoteIdent(schema)}.records WHERE seq > $1 ORDER BY seq LIMIT ${PAGE}`,
        [after],
      );
      for (const row of rows) {
        const seq = Number(row.seq);
        const place = { file: table, line: seq };
        const result = checker.accept(Buffer.from(row.line, "utf8"), place);
        if (!result.ok) return { ok: false, seq, reason: `seq ${seq}: ${seqText(result.problem)}`, table };
        const r = result.record;
        const [type, decisionId] = result.checkpoint === null ? [r["type"], r["decision_id"]] : ["checkpoint", ""];
        if (
          r["seq"] !== seq ||
          r["prev_hash"] !== row.prev_hash ||
          r["hash"] !== row.hash ||
          type !== row.type ||
          decisionId !== row.decision_id
        ) {
          return { ok: false, seq, reason: `seq ${seq}: columns do not match the record's line`, table };
        }
        const problem = tracker.entry({ ...result, text: () => row.line }, place, null);
        if (problem !== null) return { ok: false, seq, reason: `seq ${seq}: ${seqText(problem)}`, table };
        after = seq;
      }
      if (rows.length < PAGE) break;
    }
    const summary = tracker.summary();
    const problem = coverageProblem(summary, checker.count, { keysGiven: keys !== undefined, requireCheckpointed, expect });
    if (problem !== null) {
      const seq = problem.atUncovered && summary.uncovered !== null ? summary.uncovered.line : checker.count;
      return { ok: false, seq, reason: problem.atUncovered ? `seq ${seq}: ${seqText(problem.reason)}` : problem.reason, table };
    }
    const result = { ok: true as const, count: checker.count, head: checker.head, table };
    if (summary.checkpoints === 0 && keys === undefined) return result;
    return {
      ...result,
      checkpoints: {
        records: summary.records,
        checkpoints: summary.checkpoints,
        logId: summary.logId,
        last: summary.last,
        uncovered: summary.uncovered,
        signatures: keys === undefined ? "unchecked" : "verified",
      },
    };
  } finally {
    detach();
    if (ownsPool) await pool.end();
  }
}
