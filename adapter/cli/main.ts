/**
 * The `veto` command line (docs/contract.md §8). This file only dispatches:
 * each subcommand lives in adapter/cli/<name>.ts and is listed in COMMANDS.
 * Exit codes: 0 done (whatever the verdicts); 1 a log does not verify (or,
 * with replay --fail-on-change, a verdict changed); 2 the bundle, data, log
 * or command line is unusable. Every failure is one line on stderr.
 */
import { writeSync } from "node:fs";
import { CliExit, UsageError, oneLine, type Command } from "./common.js";
import { dbCommand } from "./db.js";
import { evalCommand } from "./eval.js";
import { hashCommand } from "./hash.js";
import { logCommand } from "./log.js";
import { replayCommand } from "./replay.js";
import { serveCommand } from "./serve.js";
import { VetoError } from "../shared/errors.js";

const COMMANDS: ReadonlyMap<string, Command> = new Map([
  ["eval", evalCommand],
  ["hash", hashCommand],
  ["log", logCommand],
  ["replay", replayCommand],
  ["db", dbCommand],
  ["serve", serveCommand],
]);

/**
 * The one line on stderr. A stderr that cannot take it (a broken pipe,
 * /dev/full) must not turn the exit code into a crash's: the line is lost,
 * the exit code stands.
 */
function complain(text: string): void {
  try {
    writeSync(2, text);
  } catch {
    // Nowhere left to say it.
  }
}

const USAGE = `usage:\n${[...COMMANDS.values()].map((c) => c.usage).join("\n")}`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  try {
    const command = name === undefined ? undefined : COMMANDS.get(name);
    if (command === undefined) throw new UsageError(name === undefined ? "no command given" : `unknown command ${name}`);
    return await command.run(rest);
  } catch (error) {
    // parseArgs throws TypeErrors with an ERR_PARSE_ARGS_* code for unknown or malformed options.
    if (error instanceof UsageError || (error instanceof TypeError && "code" in error)) {
      complain(`veto: ${oneLine(error.message)}\n${USAGE}\n`);
      return 2;
    }
    if (error instanceof CliExit) {
      complain(`veto: ${error.message}\n`);
      return error.exitCode;
    }
    if (error instanceof VetoError) {
      complain(`veto: ${oneLine(error.message)}\n`);
      return 2;
    }
    throw error;
  }
}

process.exitCode = await main(process.argv.slice(2));
