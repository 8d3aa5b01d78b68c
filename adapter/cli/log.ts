/**
 * `veto log verify PATH...`: check decision logs without writing to them.
 * Each PATH is one log: the file and its rotated continuations PATH.1,
 * PATH.2, ... (a continuation given beside its PATH, as a shell glob does, is
 * folded into it).
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { verifyLog } from "../log/index.js";
import { CliExit, UsageError, print, type Command } from "./common.js";
import { verifyPostgresCommand } from "./db.js";

/** The logs named by `paths`: continuations PATH.N given beside their PATH dropped (verifyLog expands PATH to them). */
export function distinctLogs(paths: readonly string[]): string[] {
  const given = new Set(paths.map((p) => resolve(p)));
  const seen = new Set<string>();
  return paths.filter((path) => {
    const base = /^(.*)\.[1-9][0-9]*$/.exec(path)?.[1];
    if (base !== undefined && given.has(resolve(base))) return false;
    if (seen.has(resolve(path))) return false;
    seen.add(resolve(path));
    return true;
  });
}

async function verifyCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { postgres: { type: "string" }, schema: { type: "string" }, since: { type: "string" } },
  });
  if (values.postgres !== undefined || values.schema !== undefined || values.since !== undefined) {
    if (positionals.length > 0) throw new UsageError("log verify takes log PATHs or --postgres URL, not both");
    return await verifyPostgresCommand(values.postgres, values.schema, values.since);
  }
  if (positionals.length === 0) throw new UsageError("log verify needs at least one log PATH");
  for (const path of distinctLogs(positionals)) {
    const result = await verifyLog([path]);
    if (!result.ok) throw new CliExit(1, `log verify failed: ${result.file}: ${result.reason}`);
    const files = result.files.length > 1 ? ` (${result.files.length} files)` : "";
    await print(`${path}: ${result.count} records, head ${result.head}${files}\n`);
  }
  return 0;
}

const SUBCOMMANDS: ReadonlyMap<string, (args: string[]) => Promise<number>> = new Map([["verify", verifyCommand]]);

export const logCommand: Command = {
  usage: `  veto log verify PATH...
      checks each decision log (PATH and its rotations PATH.1, PATH.2, ...): prints
      "PATH: N records, head sha256:..." per log and exits 0, or names the first bad
      file and line and why on stderr and exits 1
  veto log verify --postgres URL [--schema NAME] [--since TIME]
      the same for the records table of a PostgreSQL store (schema default veto), then
      checks the store's decisions table against the records: every row has its
      decision record and answer records, every record its row; each mismatch on
      stderr by decision id, exit 1. --since TIME (ISO 8601) leaves out rows and
      records before TIME (records began later, or a retention job deleted old rows)`,

  async run(args) {
    const [sub, ...rest] = args;
    const run = sub === undefined ? undefined : SUBCOMMANDS.get(sub);
    if (run === undefined) throw new UsageError(sub === undefined ? "log needs a subcommand (verify)" : `unknown log subcommand ${sub}`);
    return run(rest);
  },
};
