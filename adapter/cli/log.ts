/**
 * `veto log verify PATH...`: check decision logs without writing to them.
 * Each PATH is one log: the file and its rotated continuations PATH.1,
 * PATH.2, ... (a continuation given beside its PATH, as a shell glob does, is
 * folded into it). With --public-key, the log's signed checkpoints too; and
 * `veto log checkpoint` saves the last one for a later --expect-checkpoint.
 */
import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { toError } from "../common/errors.js";
import type { SeenCheckpoint } from "../records/checkpoint.js";
import { NotRegularFileError, regularFileExists } from "../common/files.js";
import { verifyLog } from "../audit/index.js";
import { expandLogPaths } from "../records/file/segments.js";
import { checkpointChecks, checkpointFlags, checkpointLines, countText, coverText } from "./checkpoint-flags.js";
import { CliExit, UsageError, fail, print, type Command } from "./common.js";
import { verifyPostgres, verifyPostgresCommand } from "./db.js";

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
    options: { postgres: { type: "string" }, schema: { type: "string" }, since: { type: "string" }, ...checkpointFlags },
  });
  const logs = distinctLogs(positionals);
  if (values["expect-checkpoint"] !== undefined && logs.length > 1)
    throw new UsageError("--expect-checkpoint holds one log to it: give one PATH");
  const checks = await checkpointChecks(values);
  if (values.postgres !== undefined || values.schema !== undefined || values.since !== undefined) {
    if (positionals.length > 0) throw new UsageError("log verify takes log PATHs or --postgres URL, not both");
    return await verifyPostgresCommand(values.postgres, values.schema, values.since, checks);
  }
  if (positionals.length === 0) throw new UsageError("log verify needs at least one log PATH");
  for (const path of logs) await requireRegularLog(path);
  for (const path of logs) {
    const result = await verifyLog([path], checks);
    if (!result.ok) throw new CliExit(1, `log verify failed: ${result.file}: ${result.reason}`);
    const files = result.files.length > 1 ? ` (${result.files.length} files)` : "";
    await print(
      `${path}: ${countText(result.count, result.checkpoints)}, head ${result.head}${files}\n${checkpointLines(path, result.checkpoints)}`,
    );
  }
  return 0;
}

/**
 * `veto log checkpoint --out FILE --public-key KEY... (LOG | --postgres URL)`:
 * verify the log, then save its last checkpoint for a later
 * `veto log verify --expect-checkpoint FILE`.
 */
async function checkpointCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { out: { type: "string" }, postgres: { type: "string" }, schema: { type: "string" }, ...checkpointFlags },
  });
  if (values.out === undefined) throw new UsageError("log checkpoint needs --out FILE");
  if ((values["public-key"] ?? []).length === 0)
    throw new UsageError("log checkpoint needs --public-key FILE (it saves a verified checkpoint)");
  const checks = await checkpointChecks(values);
  const onPostgres = values.postgres !== undefined || values.schema !== undefined;
  if (onPostgres ? positionals.length > 0 : positionals.length !== 1) {
    throw new UsageError("log checkpoint takes one log PATH or --postgres URL");
  }
  let name: string;
  let last: SeenCheckpoint | null;
  if (onPostgres) {
    const result = await verifyPostgres(values.postgres, values.schema, checks);
    name = result.table;
    last = result.checkpoints?.last ?? null;
  } else {
    name = positionals[0] as string;
    const result = await verifyLog([name], checks);
    if (!result.ok) throw new CliExit(1, `log verify failed: ${result.file}: ${result.reason}, no checkpoint saved`);
    last = result.checkpoints?.last ?? null;
  }
  // verify with keys fails on a log without checkpoints; this is for the type checker.
  if (last === null) throw new CliExit(1, `${name} holds no checkpoint, nothing saved`);
  try {
    await writeFile(values.out, `${last.text}\n`);
  } catch (error) {
    fail(`cannot write ${values.out}: ${toError(error).message}`);
  }
  await print(
    `${name}: saved the checkpoint at ${last.file === name ? "" : `${last.file} `}${onPostgres ? "seq" : "line"} ${last.line} (covers ${coverText(last.seq - 1)}, head ${last.checkpoint.head}) to ${values.out}\n`,
  );
  return 0;
}

const SUBCOMMANDS: ReadonlyMap<string, (args: string[]) => Promise<number>> = new Map([
  ["verify", verifyCommand],
  ["checkpoint", checkpointCommand],
]);

export const logCommand: Command = {
  usage: `  veto log verify PATH... [--public-key FILE]... [--expect-checkpoint FILE] [--require-checkpointed]
      checks each decision log (PATH and its rotations PATH.1, PATH.2, ...): prints
      "PATH: N records, head sha256:..." per log and exits 0, or names the first bad
      file and line and why on stderr and exits 1. --public-key (repeatable: a key
      list): every signed checkpoint must verify with one of them, and the log must
      hold one; --require-checkpointed: no record may follow the last checkpoint;
      --expect-checkpoint FILE: the log must reach, unchanged, a checkpoint saved before
  veto log verify --postgres URL [--schema NAME] [--since TIME] [the same checkpoint flags]
      the same for the records table of a PostgreSQL store (schema default veto), then
      checks the store's decisions table against the records: every row has its
      decision record and answer records, every record its row; each mismatch on
      stderr by decision id, exit 1. --since TIME (ISO 8601) leaves out rows and
      records before TIME (records began later, or a retention job deleted old rows)
  veto log checkpoint --out FILE --public-key FILE... [--expect-checkpoint FILE] (PATH | --postgres URL [--schema NAME])
      verifies the log, then saves its last checkpoint to FILE for a later --expect-checkpoint`,

  async run(args) {
    const [sub, ...rest] = args;
    const run = sub === undefined ? undefined : SUBCOMMANDS.get(sub);
    if (run === undefined)
      throw new UsageError(sub === undefined ? "log needs a subcommand (verify, checkpoint)" : `unknown log subcommand ${sub}`);
    return run(rest);
  },
};
