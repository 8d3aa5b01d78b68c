/**
 * The `veto` command line (docs/contract.md §8). This file only dispatches:
 * each subcommand lives in adapter/cli/<name>.ts and is listed in COMMANDS.
 * Exit codes: 0 done (whatever the verdicts); 1 a log does not verify (or,
 * with replay --fail-on-change, a verdict changed); 2 the bundle, data, log
 * or command line is unusable. Every failure is one line on stderr (a usage
 * error adds a second: which `--help` to run). `veto <command> --help` and
 * `veto help <command>` print that command's usage; `veto --help` the synopsis.
 */
import { readFileSync, writeSync } from "node:fs";
import { CliExit, UsageError, oneLine, type Command } from "./common.js";
import { dbCommand } from "./db.js";
import { evalCommand } from "./eval.js";
import { hashCommand } from "./hash.js";
import { logCommand } from "./log.js";
import { mcpProxyCommand } from "./mcp-proxy.js";
import { replayCommand } from "./replay.js";
import { reportCommand } from "./report.js";
import { serveCommand } from "./serve.js";
import { VetoError } from "../common/errors.js";

const COMMANDS: ReadonlyMap<string, Command> = new Map([
  ["eval", evalCommand],
  ["hash", hashCommand],
  ["log", logCommand],
  ["replay", replayCommand],
  ["report", reportCommand],
  ["db", dbCommand],
  ["serve", serveCommand],
  ["mcp-proxy", mcpProxyCommand],
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

/** `veto --help`: one line or so per command (its synopsis lines), never the paragraphs. */
const OVERVIEW = [
  "usage:",
  ...[...COMMANDS.values()].flatMap((c) => c.usage.split("\n").filter((line) => line.startsWith("  veto "))),
  "  veto --version",
  "run `veto <command> --help` for what a command does and its options",
].join("\n");

/** The package's version, from the package.json beside dist/ (or beside adapter/ in the repository). */
function version(): string {
  for (const relative of ["../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(relative, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "veto-crm" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // Not there: try the next place.
    }
  }
  return "unknown";
}

const isHelp = (arg: string | undefined): boolean => arg === "--help" || arg === "-h";

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "--version" || name === "-v" || name === "version") {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  if (name === undefined || isHelp(name) || (name === "help" && rest.length === 0)) {
    if (name === undefined) {
      complain("veto: no command given\nrun `veto --help` for the commands\n");
      return 2;
    }
    process.stdout.write(`${OVERVIEW}\n`);
    return 0;
  }
  // `veto help eval` and `veto eval --help` (anywhere before a lone "--").
  const asked =
    name === "help" ? rest[0] : rest.slice(0, rest.includes("--") ? rest.indexOf("--") : rest.length).some(isHelp) ? name : undefined;
  if (asked !== undefined) {
    const command = COMMANDS.get(asked);
    if (command === undefined) {
      complain(`veto: unknown command ${asked}\nrun \`veto --help\` for the commands\n`);
      return 2;
    }
    process.stdout.write(`usage:\n${command.usage}\n`);
    return 0;
  }
  const command = COMMANDS.get(name);
  try {
    if (command === undefined) throw new UsageError(`unknown command ${name}`);
    return await command.run(rest);
  } catch (error) {
    // parseArgs throws TypeErrors with an ERR_PARSE_ARGS_* code for unknown or malformed options.
    if (error instanceof UsageError || (error instanceof TypeError && "code" in error)) {
      const hint = command === undefined ? "run `veto --help` for the commands" : `run \`veto ${name} --help\``;
      complain(`veto: ${oneLine(error.message)}\n${hint}\n`);
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
