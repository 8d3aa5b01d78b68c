/**
 * `veto log verify PATH...`: check decision logs without writing to them.
 * Each PATH is one log: the file and its rotated continuations PATH.1,
 * PATH.2, ... (a continuation given beside its PATH, as a shell glob does, is
 * folded into it).
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { NotRegularFileError, regularFileExists } from "../files.js";
import { verifyLog } from "../log/index.js";
import { expandLogPaths } from "../log/segments.js";
import { CliExit, UsageError, fail, print, type Command } from "./common.js";
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

/**
 * Exit 2, at once, when a file of the log at `path` (PATH or a continuation)
 * exists but is not a regular file (a directory, a FIFO, /dev/zero): that is
 * unusable input, not a log that fails to verify (exit 1). A missing file is
 * left to verification, which names it.
 */
export async function requireRegularLog(path: string): Promise<void> {
  for (const file of await expandLogPaths([path])) {
    try {
      await regularFileExists(file);
    } catch (error) {
      if (error instanceof NotRegularFileError) fail(`log ${path}: ${error.message}`);
    }
  }
}

async function verifyCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { postgres: { type: "string" }, schema: { type: "string" } },
  });
  if (values.postgres !== undefined || values.schema !== undefined) {
    if (positionals.length > 0) throw new UsageError("log verify takes log PATHs or --postgres URL, not both");
    return await verifyPostgresCommand(values.postgres, values.schema);
  }
  if (positionals.length === 0) throw new UsageError("log verify needs at least one log PATH");
  const logs = distinctLogs(positionals);
  for (const path of logs) await requireRegularLog(path);
  for (const path of logs) {
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
  veto log verify --postgres URL [--schema NAME]
      the same for the records table of a PostgreSQL store (schema default veto)`,

  async run(args) {
    const [sub, ...rest] = args;
    const run = sub === undefined ? undefined : SUBCOMMANDS.get(sub);
    if (run === undefined) throw new UsageError(sub === undefined ? "log needs a subcommand (verify)" : `unknown log subcommand ${sub}`);
    return run(rest);
  },
};
