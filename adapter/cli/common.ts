/**
 * What every `veto` subcommand shares: how it fails (one line on stderr, an
 * exit code) and how it reads a data file. Subcommands live in their own
 * modules beside this one; cli.ts only dispatches.
 */
import { FileTooLargeError, readFileBounded } from "../common/bounded-read.js";
import { MAX_BUNDLE_UNPACKED_BYTES } from "../policy/bundle-hash.js";
import { toError } from "../common/errors.js";
import { readPolicyData } from "../policy/data.js";

/** A subcommand: its usage lines and what it does; resolves with the exit code. */
export interface Command {
  readonly usage: string;
  run(args: string[]): Promise<number>;
}

/** Wrong command line: the message, then which `--help` to run, exit 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Stop with one line on stderr ("veto: ...") and this exit code. */
export class CliExit extends Error {
  override name = "CliExit";
  readonly exitCode: number;

  constructor(exitCode: number, message: string) {
    super(oneLine(message));
    this.exitCode = exitCode;
  }
}

export function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, " ");
}

/** Exit 2: the bundle, data or another input the command needs is unusable. */
export function fail(message: string): never {
  throw new CliExit(2, message);
}

/** Largest --data file: as large as a bundle may unpack to, since it replaces a bundle's data.json. */
export const MAX_DATA_FILE_BYTES = MAX_BUNDLE_UNPACKED_BYTES;

/**
 * Read a whole file the command was pointed at (`what` names it in messages:
 * "data file", "bundle"), refusing one over `maxBytes` from its size, before
 * reading it.
 */
export async function readBoundedFile(path: string, what: string, maxBytes: number): Promise<Buffer> {
  try {
    return await readFileBounded(path, maxBytes);
  } catch (error) {
    if (error instanceof FileTooLargeError) fail(`${what} ${path} is unusable: ${error.message}`);
    fail(`cannot read ${what} ${path}: ${toError(error).message}`);
  }
}

/**
 * A --data file: read within MAX_DATA_FILE_BYTES, parsed, and checked as the
 * data document it will be (readPolicyData), so that every problem with it is
 * reported naming the file.
 */
export async function readDataFile(path: string): Promise<Record<string, unknown>> {
  const bytes = await readBoundedFile(path, "data file", MAX_DATA_FILE_BYTES);
  let data: unknown;
  try {
    data = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    fail(`data file ${path} is not valid JSON: ${toError(error).message}`);
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) fail(`data file ${path} is not a JSON object`);
  try {
    readPolicyData(data, `in file ${path}`);
  } catch (error) {
    fail(toError(error).message);
  }
  return data as Record<string, unknown>;
}

/** Write to stdout, waiting when the pipe is full. */
export async function print(text: string): Promise<void> {
  if (!process.stdout.write(text)) {
    await new Promise<void>((resolve) => process.stdout.once("drain", () => resolve()));
  }
}
