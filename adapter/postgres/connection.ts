/**
 * What the PostgreSQL store, record sink, migrator and CLI share: options,
 * the pool, identifiers, advisory-lock keys. `pg` is loaded on first use, so
 * applications that never configure PostgreSQL never load it.
 */
import type { Client, Pool, PoolClient, PoolConfig } from "pg";
import { VetoError, VetoOptionsError, type PostgresErrorCode } from "../common/errors.js";

/** Anything with pino's `error(obj, msg)`. */
export interface PostgresLogger {
  error(fields: object, message: string): void;
  warn?(fields: object, message: string): void;
}

export interface PostgresOptions {
  /** `postgres://user:password@host:port/database?...` Default: pg's own defaults (the PG* environment variables). */
  readonly connectionString?: string;
  /** Schema that holds the tables; created by the first migration run. Default "veto". */
  readonly schema?: string;
  /**
   * Pool settings (`max`, `ssl`, `idleTimeoutMillis`, `connectionTimeoutMillis`,
   * ... ; `connectionString` above wins) or a `pg.Pool` to use as it is (then
   * not ended by close()). Default: `{ max: 10, connectionTimeoutMillis: 10,000 }`.
   * Every wait for a connection is bounded by `connectionTimeoutMillis` (10,000
   * when it is unset or 0, for a pool passed in too): past it, a decision is a
   * record_unavailable deny and an answer a record_unavailable refusal. The
   * store opens one more connection, outside the pool, for LISTEN.
   */
  readonly pool?: PoolConfig | Pool;
  /**
   * Apply pending migrations when connecting (under the migration lock, so
   * instances starting together are safe). Default false: connecting fails
   * with code "schema_not_migrated" until `veto db migrate` has run.
   */
  readonly migrate?: boolean;
  /** Where connection errors of idle or listening connections are reported. Default: nowhere. */
  readonly logger?: PostgresLogger;
}

export type { PostgresErrorCode };

export class PostgresStoreError extends VetoError {
  override name = "PostgresStoreError";
  declare readonly code: PostgresErrorCode;

  constructor(code: PostgresErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export const DEFAULT_SCHEMA = "veto";
const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;
const OPTION_KEYS = new Set(["connectionString", "schema", "pool", "migrate", "logger"]);

type PgModule = { readonly Pool: typeof Pool; readonly Client: typeof Client };
let pgModule: Promise<PgModule> | undefined;

/** pg is CommonJS: its ESM entry has the classes on the default export too. */
export function loadPg(): Promise<PgModule> {
  pgModule ??= import("pg").then((m) => (m as unknown as { default?: PgModule }).default ?? (m as unknown as PgModule));
  return pgModule;
}

export function isPool(value: unknown): value is Pool {
  return (
    value !== null &&
    typeof value === "object" &&
    typeof (value as Pool).connect === "function" &&
    typeof (value as Pool).query === "function" &&
    typeof (value as Pool).end === "function"
  );
}

/**
 * How every transaction of the stores begins. Counts and the chain's tail are
 * read by statements that run after a lock is granted, and must see every
 * commit before it: each statement its own snapshot, READ COMMITTED, whatever
 * the server's or the role's default (under REPEATABLE READ or SERIALIZABLE
 * the snapshot would be the first statement's, taken before the lock).
 */
export const BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED";

/** `"schema"`: an identifier the SQL can embed (the pattern already excludes quotes). */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function checkOptions(options: PostgresOptions, where: string): { schema: string } {
  if (options === null || typeof options !== "object") {
    throw new VetoOptionsError(`${where}: pass { connectionString, schema?, pool?, migrate? }`);
  }
  const issues: string[] = [];
  for (const key of Object.keys(options)) if (!OPTION_KEYS.has(key)) issues.push(`${key}: unknown option`);
  if (options.connectionString !== undefined && (typeof options.connectionString !== "string" || options.connectionString === "")) {
    issues.push("connectionString: must be a non-empty string");
  }
  const schema = options.schema ?? DEFAULT_SCHEMA;
  if (typeof schema !== "string" || !SCHEMA_PATTERN.test(schema)) {
    issues.push("schema: must be a lower-case SQL identifier (letters, digits, _; at most 63)");
  }
  if (options.pool !== undefined && (options.pool === null || typeof options.pool !== "object")) {
    issues.push("pool: must be pg.Pool settings or a pg.Pool");
  }
  if (options.migrate !== undefined && typeof options.migrate !== "boolean") issues.push("migrate: must be a boolean");
  if (options.logger !== undefined && typeof (options.logger as PostgresLogger | null)?.error !== "function") {
    issues.push("logger: must have an error(fields, message) method");
  }
  if (issues.length > 0) throw new VetoOptionsError(`${where}: invalid options: ${issues.join("; ")}`, issues);
  return { schema };
}

/** How long a checkout may wait for a connection when the pool sets no bound of its own. */
export const DEFAULT_CONNECTION_TIMEOUT_MS = 10_000;

/** The bound on a wait for one of `pool`'s connections: its connectionTimeoutMillis, else the default. */
export function connectionTimeoutMs(pool: Pool): number {
  const own = pool.options?.connectionTimeoutMillis;
  return typeof own === "number" && Number.isFinite(own) && own > 0 ? own : DEFAULT_CONNECTION_TIMEOUT_MS;
}

/**
 * A pool of our own (ended by its owner) or the caller's. Idle-connection
 * errors are reported, never thrown: without a listener, an idle
 * connection's error (a failover, a terminated backend) would crash the
 * process. A caller's pool gets the listener too (`detach` removes it).
 */
export async function openPool(options: PostgresOptions): Promise<{ pool: Pool; ownsPool: boolean; detach: () => void }> {
  const report = (error: Error): void => options.logger?.error({ err: error }, "idle PostgreSQL connection failed");
  if (isPool(options.pool)) {
    const pool = options.pool;
    watchPool(pool);
    pool.on("error", report);
    return { pool, ownsPool: false, detach: () => pool.removeListener("error", report) };
  }
  const pg = await loadPg();
  const pool = new pg.Pool({
    max: 10,
    connectionTimeoutMillis: DEFAULT_CONNECTION_TIMEOUT_MS,
    ...options.pool,
    ...(options.connectionString === undefined ? {} : { connectionString: options.connectionString }),
  });
  watchPool(pool);
  pool.on("error", report);
  return { pool, ownsPool: true, detach: () => pool.removeListener("error", report) };
}

interface ClientWatch {
  readonly listener: (error: Error) => void;
  error: Error | undefined;
}

/** Per checked-out client: our 'error' listener and the first error it heard. */
const checkedOut = new WeakMap<PoolClient, ClientWatch>();
const watchedPools = new WeakSet<Pool>();

function watchClient(client: PoolClient): ClientWatch {
  let watch = checkedOut.get(client);
  if (watch === undefined) {
    const state: ClientWatch = {
      listener: (error) => {
        state.error ??= error;
      },
      error: undefined,
    };
    client.on("error", state.listener);
    checkedOut.set(client, state);
    watch = state;
  }
  return watch;
}

function unwatchClient(client: PoolClient): ClientWatch | undefined {
  const watch = checkedOut.get(client);
  if (watch !== undefined) {
    checkedOut.delete(client);
    client.removeListener("error", watch.listener);
  }
  return watch;
}

/**
 * Listen to every connection `pool` hands out, from the moment it does: the
 * pool stops listening to a connection as it hands it out, and pg can emit
 * the connection's 'error' (its backend terminated just as it became ready)
 * before the one who asked for it runs again. The pool's 'acquire' and
 * 'release' events are synchronous with the hand-over, so no such moment is
 * left without a listener. Idempotent; stays for the pool's life.
 */
export function watchPool(pool: Pool): void {
  if (watchedPools.has(pool)) return;
  watchedPools.add(pool);
  pool.on("acquire", (client: PoolClient) => {
    watchClient(client);
  });
  pool.on("release", (_error: Error | undefined, client: PoolClient) => {
    unwatchClient(client);
  });
}

function connectionUnavailable(pool: Pool, cause: unknown): PostgresStoreError {
  const message = cause instanceof Error ? cause.message : String(cause);
  return new PostgresStoreError(
    "connection_unavailable",
    /timeout/i.test(message)
      ? `connection timeout: no PostgreSQL connection within ${connectionTimeoutMs(pool)} ms (pool of ${pool.options?.max ?? "?"}: all busy, or the server does not answer)`
      : `cannot connect to PostgreSQL: ${message}`,
    { cause },
  );
}

/**
 * Check out a connection, waiting at most connectionTimeoutMs(pool) (rejects
 * with PostgresStoreError code connection_unavailable). While it is out, an
 * 'error' the connection emits (its backend terminated, the socket reset) is
 * kept rather than thrown, which would end the process: pg emits it on the
 * client, and the pool listens only to idle ones (see watchPool).
 * releaseClient hands that error to the pool, which then discards the
 * connection.
 *
 * A caller holding a connection must never check out another: with every
 * connection held by such callers, none is ever released.
 */
export async function checkout(pool: Pool): Promise<PoolClient> {
  watchPool(pool);
  let client: PoolClient;
  try {
    if (typeof pool.options?.connectionTimeoutMillis === "number" && pool.options.connectionTimeoutMillis > 0) {
      client = await pool.connect();
    } else {
      // A pool passed in without a bound of its own: bound the wait here. A
      // connection that arrives after the timeout goes straight back.
      const connecting = pool.connect();
      let timer: NodeJS.Timeout | undefined;
      try {
        client = await Promise.race([
          connecting,
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error("timeout exceeded when trying to connect")), DEFAULT_CONNECTION_TIMEOUT_MS);
          }),
        ]);
      } catch (error) {
        connecting.then(
          (late) => late.release(),
          () => {},
        );
        throw error;
      } finally {
        clearTimeout(timer);
      }
    }
  } catch (error) {
    throw connectionUnavailable(pool, error);
  }
  // Already watched since the hand-over (a pg.Pool); a pool without those events from here on.
  watchClient(client);
  return client;
}

/** The error a checked-out connection emitted, if any (it is then unusable). */
export function clientError(client: PoolClient): Error | undefined {
  return checkedOut.get(client)?.error;
}

/** One statement on a connection of its own (bounded wait, errors kept), released at once. */
export async function queryOnce<R extends object>(
  pool: Pool,
  text: string,
  values?: unknown[],
): Promise<{ rows: R[]; rowCount: number | null }> {
  const client = await checkout(pool);
  let failed: unknown;
  try {
    return await client.query<R>(text, values);
  } catch (error) {
    // A statement that failed leaves a healthy connection reusable; a broken one carries its error.
    failed = clientError(client);
    throw error;
  } finally {
    releaseClient(client, failed);
  }
}

/**
 * `text` as an SQL string literal: the same text as pg's escapeLiteral
 * (quotes doubled; with a backslash, backslashes doubled and the literal an
 * E'' one, so it reads the same whatever standard_conforming_strings says),
 * built with two native replacements instead of one concatenation per
 * character (~12 µs and a rope of garbage per record-sized string there).
 */
export function quoteLiteral(text: string): string {
  return text.includes("\\") ? ` E'${text.replaceAll("\\", "\\\\").replaceAll("'", "''")}'` : `'${text.replaceAll("'", "''")}'`;
}

/**
 * Take a transaction-scoped advisory lock: one 64-bit key per purpose and
 * schema (and history key), hashed by the server. As SQL text (the key an
 * escaped literal) so it can share a round trip with the statement before
 * it in one simple query; each statement still gets its own snapshot, so
 * the statements after the lock see every commit made before it was granted.
 */
export function lockSql(key: string): string {
  return `SELECT pg_advisory_xact_lock(hashtextextended(${quoteLiteral(key)}, 0))`;
}

export function historyLockKey(schema: string, actorId: string, tenantId: string): string {
  return JSON.stringify(["veto:history", schema, actorId, tenantId]);
}

/** The database's clock, in epoch milliseconds, where a statement reads it. */
export const DB_NOW_MS = "floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

export function recordsLockKey(schema: string): string {
  return JSON.stringify(["veto:records", schema]);
}

export function migrateLockKey(schema: string): string {
  return JSON.stringify(["veto:migrate", schema]);
}

/**
 * Release a checked-out client; a client that failed (or emitted an error
 * while out) is destroyed rather than reused.
 */
export function releaseClient(client: PoolClient, failed: unknown): void {
  // Unwatched and handed back in one synchronous step: the pool listens again at once.
  const kept = unwatchClient(client)?.error;
  const error = failed === undefined || failed === null ? kept : failed;
  try {
    client.release(error === undefined ? undefined : error instanceof Error ? error : true);
  } catch {
    // Already released: nothing left to do.
  }
}
