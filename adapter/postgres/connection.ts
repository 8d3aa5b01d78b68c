/**
 * What the PostgreSQL store, record sink, migrator and CLI share: options,
 * the pool, identifiers, advisory-lock keys. `pg` is loaded on first use, so
 * applications that never configure PostgreSQL never load it.
 */
import type { Pool, PoolClient, PoolConfig } from "pg";
import { VetoError, VetoOptionsError, type PostgresErrorCode } from "../shared/errors.js";

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
   * Pool settings (`max`, `ssl`, `idleTimeoutMillis`, ... ; `connectionString`
   * above wins) or a `pg.Pool` to use as it is (then not ended by close()).
   * Default: `{ max: 10 }`. The store keeps one more connection for LISTEN.
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

type PgModule = { readonly Pool: typeof Pool };
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

/** A pool of our own (ended by its owner) or the caller's. Idle-connection errors are reported, never thrown. */
export async function openPool(options: PostgresOptions): Promise<{ pool: Pool; ownsPool: boolean }> {
  if (isPool(options.pool)) return { pool: options.pool, ownsPool: false };
  const pg = await loadPg();
  const pool = new pg.Pool({
    max: 10,
    ...options.pool,
    ...(options.connectionString === undefined ? {} : { connectionString: options.connectionString }),
  });
  // Without a listener, an idle connection's error (a server restart) would crash the process.
  pool.on("error", (error) => options.logger?.error({ err: error }, "idle PostgreSQL connection failed"));
  return { pool, ownsPool: true };
}

/**
 * Take a transaction-scoped advisory lock: one 64-bit key per purpose and
 * schema (and history key), hashed by the server. As SQL text (the key an
 * escaped literal) so it can share a round trip with the statement before
 * it in one simple query; each statement still gets its own snapshot, so
 * the statements after the lock see every commit made before it was granted.
 */
export function lockSql(client: { escapeLiteral(text: string): string }, key: string): string {
  return `SELECT pg_advisory_xact_lock(hashtextextended(${client.escapeLiteral(key)}, 0))`;
}

export function historyLockKey(schema: string, actorId: string, tenantId: string): string {
  return JSON.stringify(["veto:history", schema, actorId, tenantId]);
}

export function recordsLockKey(schema: string): string {
  return JSON.stringify(["veto:records", schema]);
}

export function migrateLockKey(schema: string): string {
  return JSON.stringify(["veto:migrate", schema]);
}

/** Release a checked-out client; a client that failed is destroyed rather than reused. */
export function releaseClient(client: PoolClient, failed: unknown): void {
  try {
    client.release(failed === undefined || failed === null ? undefined : failed instanceof Error ? failed : true);
  } catch {
    // Already released: nothing left to do.
  }
}
