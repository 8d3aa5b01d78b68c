/**
 * `veto db migrate [--postgres URL] [--schema NAME]`: apply the PostgreSQL
 * store's pending migrations. Safe to run from several hosts at
 * once: migrators take turns under an advisory lock.
 *
 * Also the PostgreSQL half of `veto log verify --postgres URL`.
 */
import { parseArgs } from "node:util";
import { toError } from "../common/errors.js";
import { DEFAULT_SCHEMA } from "../postgres/connection.js";
import { migrate } from "../postgres/migrations.js";
import type { VerifyOptions } from "../audit/index.js";
import { crossCheckPostgresStore } from "../postgres/cross-check.js";
import { verifyPostgresLog, type PostgresVerifyResult } from "../postgres/records.js";
import { CliExit, UsageError, fail, oneLine, print, type Command } from "./common.js";
import { checkpointLines, countText } from "./checkpoint-flags.js";

export const POSTGRES_URL_ENV = "VETO_POSTGRES_URL";

/** --postgres URL, else $VETO_POSTGRES_URL. */
export function postgresUrl(flag: string | undefined, command: string): string {
  const url = flag ?? process.env[POSTGRES_URL_ENV];
  if (url === undefined || url === "") throw new UsageError(`${command} needs --postgres URL (or ${POSTGRES_URL_ENV})`);
  return url;
}

/** Exit 2 with the server's or the options' complaint on one line. */
async function reachable<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof CliExit || error instanceof UsageError) throw error;
    fail(`${what}: ${toError(error).message}`);
  }
}

async function migrateCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { postgres: { type: "string" }, schema: { type: "string" } },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const connectionString = postgresUrl(values.postgres, "db migrate");
  const schema = values.schema ?? DEFAULT_SCHEMA;
  const result = await reachable(`db migrate on schema ${schema}`, () => migrate({ connectionString, schema }));
  await print(
    result.applied.length === 0
      ? `schema ${schema}: up to date (version ${result.version})\n`
      : `schema ${schema}: applied ${result.applied.join(", ")} (version ${result.version})\n`,
  );
  return 0;
}

/** verifyPostgresLog from flags: exit 2 when unreachable, 1 when the chain does not verify. */
export async function verifyPostgres(
  flag: string | undefined,
  schemaFlag: string | undefined,
  checks: Pick<VerifyOptions, "publicKeys" | "expectCheckpoint" | "requireCheckpointed"> = {},
): Promise<Extract<PostgresVerifyResult, { ok: true }>> {
  const connectionString = postgresUrl(flag, "log verify --postgres");
  const schema = schemaFlag ?? DEFAULT_SCHEMA;
  const result = await reachable(`log verify on ${schema}.records`, () => verifyPostgresLog({ connectionString, schema }, checks));
  if (!result.ok) throw new CliExit(1, `log verify failed: ${result.table}: ${result.reason}`);
  return result;
}

/** `veto log verify --postgres URL [--schema NAME] [--since TIME] [checkpoint flags]`: the chain, then the store against it. */
export async function verifyPostgresCommand(
  flag: string | undefined,
  schemaFlag: string | undefined,
  sinceFlag?: string,
  checks: Pick<VerifyOptions, "publicKeys" | "expectCheckpoint" | "requireCheckpointed"> = {},
): Promise<number> {
  const sinceMs = sinceFlag === undefined ? undefined : Date.parse(sinceFlag);
  if (sinceMs !== undefined && !Number.isFinite(sinceMs)) {
    throw new UsageError(`--since must be an ISO 8601 time (2026-03-01T00:00:00Z), not ${JSON.stringify(sinceFlag)}`);
  }
  const result = await verifyPostgres(flag, schemaFlag, checks);
  await print(
    `${result.table}: ${countText(result.count, result.checkpoints)}, head ${result.head}\n${checkpointLines(result.table, result.checkpoints, "seq")}`,
  );
  return await crossCheckCommand(postgresUrl(flag, "log verify --postgres"), schemaFlag ?? DEFAULT_SCHEMA, sinceMs);
}

/** The store's rows against the verified records: each mismatch on a line of its own on stderr, then exit 1. */
async function crossCheckCommand(connectionString: string, schema: string, sinceMs: number | undefined): Promise<number> {
  const checked = await reachable(`log verify on ${schema}.decisions`, () =>
    crossCheckPostgresStore({ connectionString, schema }, sinceMs === undefined ? {} : { sinceMs }),
  );
  const since = sinceMs === undefined ? "" : ` since ${new Date(sinceMs).toISOString()}`;
  if (checked.ok) {
    await print(`${schema}.decisions: ${checked.rows} rows${since} match their records\n`);
    return 0;
  }
  for (const m of checked.mismatches) {
    process.stderr.write(
      `veto: ${schema}: decision ${m.decisionId}${m.seq === undefined ? "" : ` (record seq ${m.seq})`}: ${oneLine(m.problem)}\n`,
    );
  }
  const more = checked.total > checked.mismatches.length ? ` (the first ${checked.mismatches.length} listed)` : "";
  throw new CliExit(
    1,
    `log verify failed: ${schema}.decisions: ${checked.total} mismatches between the store and its records${since}${more}`,
  );
}

const SUBCOMMANDS: ReadonlyMap<string, (args: string[]) => Promise<number>> = new Map([["migrate", migrateCommand]]);

export const dbCommand: Command = {
  usage: `  veto db migrate [--postgres URL] [--schema NAME]
      applies the PostgreSQL store's pending migrations to schema NAME (default veto;
      URL default $${POSTGRES_URL_ENV}); safe to run from several hosts at once`,

  async run(args) {
    const [sub, ...rest] = args;
    const run = sub === undefined ? undefined : SUBCOMMANDS.get(sub);
    if (run === undefined) throw new UsageError(sub === undefined ? "db needs a subcommand (migrate)" : `unknown db subcommand ${sub}`);
    return run(rest);
  },
};
