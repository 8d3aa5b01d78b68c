/**
 * `veto db migrate [--postgres URL] [--schema NAME]`: apply the PostgreSQL
 * store's pending migrations (issue 7). Safe to run from several hosts at
 * once: migrators take turns under an advisory lock.
 *
 * Also the PostgreSQL half of `veto log verify --postgres URL`.
 */
import { parseArgs } from "node:util";
import { toError } from "../errors.js";
import { DEFAULT_SCHEMA } from "../postgres/connection.js";
import { migrate } from "../postgres/migrations.js";
import type { VerifyOptions } from "../log/index.js";
import { verifyPostgresLog, type PostgresVerifyResult } from "../postgres/records.js";
import { CliExit, UsageError, fail, print, type Command } from "./common.js";
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

/** `veto log verify --postgres URL [--schema NAME] [checkpoint flags]`. */
export async function verifyPostgresCommand(
  flag: string | undefined,
  schemaFlag: string | undefined,
  checks: Pick<VerifyOptions, "publicKeys" | "expectCheckpoint" | "requireCheckpointed"> = {},
): Promise<number> {
  const result = await verifyPostgres(flag, schemaFlag, checks);
  await print(`${result.table}: ${countText(result.count, result.checkpoints)}, head ${result.head}\n${checkpointLines(result.table, result.checkpoints, "seq")}`);
  return 0;
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
