/**
 * Schema migrations: versioned SQL files (migrations/NNN_name.sql), each
 * applied once, in order, in its own transaction, and remembered in
 * <schema>.schema_migrations with a checksum. A session advisory lock per
 * schema makes concurrent migrators (instances starting together, two
 * `veto db migrate`) take turns: the second finds nothing left to do.
 */
import { createHash } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { Pool, PoolClient } from "pg";
import {
  PostgresStoreError,
  checkOptions,
  checkout,
  migrateLockKey,
  openPool,
  queryOnce,
  quoteIdent,
  releaseClient,
  type PostgresOptions,
} from "./connection.js";

export interface Migration {
  readonly version: number;
  /** The file name, e.g. "001_store.sql". */
  readonly name: string;
  readonly sql: string;
  /** "sha256:<hex>" of the file. */
  readonly checksum: string;
}

export interface MigrateResult {
  readonly schema: string;
  /** Names of the migrations this run applied (empty when the schema was current). */
  readonly applied: readonly string[];
  /** The schema's version afterwards. */
  readonly version: number;
}

export interface MigrateOptions extends PostgresOptions {
  /** Directory of the NNN_name.sql files. Default: the ones shipped with this package. */
  readonly migrationsDir?: string;
}

const FILE_PATTERN = /^(\d{3,})_[a-z0-9_]+\.sql$/;

/**
 * Beside this module in the source tree (adapter/postgres/migrations/), and
 * beside dist/index.js and dist/cli.js (dist/migrations/) after the build,
 * which bundles this module into them.
 */
export function defaultMigrationsDir(): string {
  return fileURLToPath(new URL("./migrations", import.meta.url));
}

export async function loadMigrations(dir: string = defaultMigrationsDir()): Promise<Migration[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    throw new PostgresStoreError("migrations_unreadable", `cannot read the migrations in ${dir}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const migrations: Migration[] = [];
  for (const name of names.sort()) {
    const match = FILE_PATTERN.exec(name);
    if (match === null) continue;
    const sql = await readFile(`${dir}/${name}`, "utf8");
    migrations.push({
      version: Number(match[1]),
      name,
      sql,
      checksum: `sha256:${createHash("sha256").update(sql, "utf8").digest("hex")}`,
    });
  }
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new PostgresStoreError("migrations_unreadable", `${dir}: migration ${m.name} should be number ${i + 1} (no gaps or repeats)`);
    }
  });
  return migrations;
}

interface AppliedRow {
  version: number;
  name: string;
  checksum: string;
}

type Reader = Pick<PoolClient, "query">;

async function applied(client: Reader, schema: string): Promise<AppliedRow[] | undefined> {
  const exists = await client.query<{ found: boolean }>("SELECT to_regclass($1) IS NOT NULL AS found", [
    `${quoteIdent(schema)}.schema_migrations`,
  ]);
  if (exists.rows[0]?.found !== true) return undefined;
  const { rows } = await client.query<AppliedRow>(
    `SELECT version, name, checksum FROM ${quoteIdent(schema)}.schema_migrations ORDER BY version`,
  );
  return rows;
}

/**
 * Earlier checksums of migrations whose file changed in comments only, after
 * databases recorded them: each listed exactly, file by file, so a database
 * migrated before the edit is still recognised. Any other difference is refused.
 */
const COMMENT_ONLY_EDITS: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ["001_store.sql", new Set(["sha256:5b9032f985a43d0c5c04bca7c6f9a3c41c8eff8aa2ec90b76676b357172b8ed0"])],
  ["002_records.sql", new Set(["sha256:4cb46ae4a26835a7db61301c77ac8b96b890137b3b615e2e60a79d5deda0c3c4"])],
]);

function checkApplied(rows: readonly AppliedRow[], migrations: readonly Migration[], schema: string): void {
  // A schema a newer release migrated: its tables may mean what this code does not know (fail closed).
  const unknown = rows.filter((row) => row.version > migrations.length);
  if (unknown.length > 0) {
    throw new PostgresStoreError(
      "schema_newer",
      `schema ${schema} is at version ${Math.max(...unknown.map((r) => r.version))} (${unknown.map((r) => r.name).join(", ")}), newer than this code knows (version ${migrations.length}): upgrade veto-crm`,
    );
  }
  for (const row of rows) {
    const known = migrations[row.version - 1];
    if (known !== undefined && known.checksum !== row.checksum && COMMENT_ONLY_EDITS.get(known.name)?.has(row.checksum) !== true) {
      throw new PostgresStoreError(
        "migration_changed",
        `migration ${known.name} was changed after it was applied to schema ${schema} (applied ${row.checksum}, file ${known.checksum}); add a new migration instead`,
      );
    }
  }
}

/** Apply every pending migration to `options.schema`. Safe to run from many processes at once. */
export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  const { migrationsDir, ...rest } = options;
  const { schema } = checkOptions(rest, "migrate");
  const migrations = await loadMigrations(migrationsDir);
  const { pool, ownsPool, detach } = await openPool(rest);
  try {
    return await migrateWith(pool, schema, migrations);
  } finally {
    detach();
    if (ownsPool) await pool.end();
  }
}

export async function migrateWith(pool: Pool, schema: string, migrations: readonly Migration[]): Promise<MigrateResult> {
  const client = await checkout(pool);
  let failed: unknown;
  const lockKey = migrateLockKey(schema);
  try {
    await client.query("SELECT pg_advisory_lock(hashtextextended($1, 0))", [lockKey]);
    try {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${quoteIdent(schema)}.schema_migrations (
           version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      const rows = (await applied(client, schema)) ?? [];
      checkApplied(rows, migrations, schema);
      const done = new Set(rows.map((r) => r.version));
      const appliedNow: string[] = [];
      for (const migration of migrations) {
        if (done.has(migration.version)) continue;
        await client.query("BEGIN");
        try {
          await client.query(`SET LOCAL search_path TO ${quoteIdent(schema)}`);
          await client.query(migration.sql);
          await client.query(`INSERT INTO ${quoteIdent(schema)}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`, [
            migration.version,
            migration.name,
            migration.checksum,
          ]);
          await client.query("COMMIT");
        } catch (error) {
          await client.query("ROLLBACK").catch(() => {});
          throw new Error(`migration ${migration.name} failed on schema ${schema}: ${(error as Error).message}`, { cause: error });
        }
        appliedNow.push(migration.name);
      }
      return { schema, applied: appliedNow, version: Math.max(0, ...rows.map((r) => r.version), ...migrations.map((m) => m.version)) };
    } catch (error) {
      // The session lock goes with the connection, which a failure discards.
      failed = error;
      throw error;
    } finally {
      if (failed === undefined) await client.query("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [lockKey]);
    }
  } catch (error) {
    failed = error;
    throw error;
  } finally {
    releaseClient(client, failed);
  }
}

/** Fails with code "schema_not_migrated" unless every migration this package ships is applied (unchanged). */
export async function requireMigrated(pool: Pool, schema: string, migrations: readonly Migration[]): Promise<void> {
  // Each statement on a checked-out connection: a bounded wait, errors kept from the process.
  const rows = await applied({ query: ((text: string, values?: unknown[]) => queryOnce(pool, text, values)) as Reader["query"] }, schema);
  const done = new Set((rows ?? []).map((r) => r.version));
  const missing = migrations.filter((m) => !done.has(m.version)).map((m) => m.name);
  if (missing.length > 0) {
    throw new PostgresStoreError(
      "schema_not_migrated",
      `schema ${schema} lacks migrations ${missing.join(", ")}: run \`veto db migrate --postgres URL${schema === "veto" ? "" : ` --schema ${schema}`}\` (or connect with migrate: true)`,
    );
  }
  checkApplied(rows ?? [], migrations, schema);
}

/**
 * The pool for a store or sink: options checked, then pending migrations
 * applied (`migrate: true`) or required to be none. The pool is ended again
 * when that fails.
 */
export async function openMigrated(
  options: PostgresOptions,
  where: string,
): Promise<{ pool: Pool; ownsPool: boolean; detach: () => void; schema: string }> {
  const { schema } = checkOptions(options, where);
  const migrations = await loadMigrations();
  const { pool, ownsPool, detach } = await openPool(options);
  try {
    if (options.migrate === true) await migrateWith(pool, schema, migrations);
    else await requireMigrated(pool, schema, migrations);
  } catch (error) {
    detach();
    if (ownsPool) await pool.end();
    throw error;
  }
  return { pool, ownsPool, detach, schema };
}
