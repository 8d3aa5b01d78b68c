/**
 * What every `veto` subcommand shares: how it fails (one line on stderr, an
 * exit code) and how it reads a data file. Subcommands live in their own
 * modules beside this one; cli.ts only dispatches.
 */
import { toError } from "../errors.js";
import { readRegularFile } from "../files.js";

/** A subcommand: its usage lines and what it does; resolves with the exit code. */
export interface Command {
  readonly usage: string;
  run(args: string[]): Promise<number>;
}

/** Wrong command line: the message, then the usage, exit 2. */
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

export async function readDataFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = (await readRegularFile(path)).toString("utf8");
  } catch (error) {
    fail(`cannot read data file ${path}: ${toError(error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    fail(`data file ${path} is not valid JSON: ${toError(error).message}`);
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) fail(`data file ${path} is not a JSON object`);
  return data as Record<string, unknown>;
}

/** Write to stdout, waiting when the pipe is full. */
export async function print(text: string): Promise<void> {
  if (!process.stdout.write(text)) {
    await new Promise<void>((resolve) => process.stdout.once("drain", () => resolve()));
  }
}
