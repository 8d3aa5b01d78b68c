/**
 * The `veto` command line (contract section 8).
 *   veto eval --bundle PATH [--data FILE] [--records FILE]
 *   veto hash BUNDLE
 * Exit codes: 0 done (whatever the verdicts); 2 bundle, data or usage unusable.
 */
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { once } from "node:events";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { bundleVersionHashOfTarball } from "./bundle-hash.js";
import { toError, VetoError } from "./errors.js";
import { createVeto, protectUnreadable } from "./veto.js";

const USAGE = `usage:
  veto eval --bundle PATH [--data FILE] [--records FILE]
      reads one call per line (JSON {tool, arguments, context}) from stdin and writes
      one decision per line to stdout; records go to FILE (appended) or else stderr
  veto hash BUNDLE
      prints the bundle's version hash (sha256:<64 hex>)`;

class UsageError extends Error {}

/** One line on stderr, exit 2. */
function fail(message: string): never {
  process.stderr.write(`veto: ${message.replace(/\s*\n\s*/g, " ")}\n`);
  process.exit(2);
}

async function hashCommand(args: string[]): Promise<void> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  const [path, ...rest] = positionals;
  if (path === undefined || rest.length > 0) throw new UsageError("hash takes exactly one bundle path");
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    fail(`cannot read bundle ${path}: ${toError(error).message}`);
  }
  try {
    process.stdout.write(`${await bundleVersionHashOfTarball(bytes)}\n`);
  } catch (error) {
    fail(`bundle ${path} is not a readable .tar.gz: ${toError(error).message}`);
  }
}

async function readDataFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    fail(`cannot read data file ${path}: ${toError(error).message}`);
  }
  try {
    const data: unknown = JSON.parse(text);
    if (data === null || typeof data !== "object" || Array.isArray(data)) fail(`data file ${path} is not a JSON object`);
    return data as Record<string, unknown>;
  } catch (error) {
    fail(`data file ${path} is not valid JSON: ${toError(error).message}`);
  }
}

async function evalCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { bundle: { type: "string" }, data: { type: "string" }, records: { type: "string" } },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  if (values.bundle === undefined) throw new UsageError("eval needs --bundle PATH");
  const data = values.data === undefined ? undefined : await readDataFile(values.data);
  const destination =
    values.records === undefined
      ? pino.destination({ fd: 2, sync: true })
      : pino.destination({ dest: values.records, sync: true, append: true, mkdir: true });
  const logger = pino({ name: "veto" }, destination);

  let veto;
  try {
    veto = await createVeto({ bundle: values.bundle, logger, ...(data === undefined ? {} : { data }) });
  } catch (error) {
    fail(toError(error).message);
  }

  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === "") continue;
    let call: unknown;
    let parseError: Error | undefined;
    try {
      call = JSON.parse(line);
    } catch (error) {
      parseError = toError(error);
    }
    const decision =
      parseError === undefined
        ? await veto.protect(call)
        : await protectUnreadable(veto, line, `the line is not valid JSON: ${parseError.message}`);
    if (!process.stdout.write(`${JSON.stringify(decision)}\n`)) await once(process.stdout, "drain");
  }
  await veto.close();
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "eval":
        return await evalCommand(rest);
      case "hash":
        return await hashCommand(rest);
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(`${USAGE}\n`);
        return;
      default:
        throw new UsageError(command === undefined ? "no command given" : `unknown command ${command}`);
    }
  } catch (error) {
    if (error instanceof UsageError || (error instanceof TypeError && "code" in error)) {
      process.stderr.write(`veto: ${error.message}\n${USAGE}\n`);
      process.exit(2);
    }
    if (error instanceof VetoError) fail(error.message);
    throw error;
  }
}

await main(process.argv.slice(2));
