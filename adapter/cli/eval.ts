/**
 * `veto eval --bundle PATH [--data FILE] [--log PATH | --records FILE]`
 * (docs/contract.md §8): one call per stdin line, one decision per stdout line,
 * in order, all calls sharing one in-memory deny history. With --log, every
 * decision's record is in the durable, hash-chained log (fdatasync'ed) before
 * the decision is printed.
 */
import { parseArgs } from "node:util";
import { pino } from "pino";
import { jsonSyntaxProblem, toError } from "../common/errors.js";
import { DEFAULT_INPUT_LIMITS } from "../call/input.js";
import { DecisionLogError, openFileLog, type FileDecisionLog } from "../audit/index.js";
import { FdRecordSink, standardLogDestination } from "../records/fd-sink.js";
import { createVeto, protectText, protectUnreadable, type Veto } from "../veto.js";
import { UsageError, CliExit, fail, print, readBoundedFile, readDataFile, type Command } from "./common.js";
import { readLines } from "../common/line-reader.js";
import { SHADOW_USAGE, readShadowOptions, shadowOptions } from "./shadow-flags.js";
import { MAX_KEY_FILE_BYTES, VERIFICATION_KEY_USAGE, readVerificationKey, verificationKeyOptions } from "./verification-key.js";

/** Environment variable holding the per-deployment key for record digests (kept out of argv, which `ps` shows). */
export const RECORD_KEY_ENV = "VETO_RECORD_KEY";

export const evalCommand: Command = {
  usage: `  veto eval --bundle PATH [--data FILE] [--log PATH [--signing-key FILE [--checkpoint-every N]] | --records FILE] [--verification-key PATH [--verification-alg ALG]] [--shadow-bundle PATH [--shadow-data FILE]]
      reads one call per line (JSON {tool, arguments, context}) from stdin and writes
      one decision per line to stdout. --log PATH: records go to a durable, hash-chained
      decision log (created if missing; each decision is printed only once its record
      is synced). --signing-key FILE: an Ed25519 private key (PEM) that signs checkpoints
      into the log, at open, every N records (default 1000) and at close; a log that
      holds checkpoints needs it. --records FILE: records as pino JSON lines (appended,
      each synced). Neither: stderr. A path that is not a regular file is refused (exit 2).
      $${RECORD_KEY_ENV}: key (>= 16 bytes) for HMAC digests of sensitive values.
      ${SHADOW_USAGE}.
      ${VERIFICATION_KEY_USAGE}`,

  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        bundle: { type: "string" },
        data: { type: "string" },
        records: { type: "string" },
        log: { type: "string" },
        "signing-key": { type: "string" },
        "checkpoint-every": { type: "string" },
        ...shadowOptions,
        ...verificationKeyOptions,
      },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
    if (values.bundle === undefined) throw new UsageError("eval needs --bundle PATH");
    if (values.log !== undefined && values.records !== undefined) {
      throw new UsageError("eval takes --log or --records, not both");
    }
    if (values.log === undefined && (values["signing-key"] !== undefined || values["checkpoint-every"] !== undefined)) {
      throw new UsageError("--signing-key and --checkpoint-every sign a decision log: they need --log PATH");
    }
    if (values["signing-key"] === undefined && values["checkpoint-every"] !== undefined) {
      throw new UsageError("--checkpoint-every needs --signing-key FILE");
    }
    const checkpointEvery = values["checkpoint-every"] === undefined ? undefined : Number(values["checkpoint-every"]);
    if (
      checkpointEvery !== undefined &&
      !(/^[1-9][0-9]*$/.test(values["checkpoint-every"] as string) && Number.isSafeInteger(checkpointEvery))
    ) {
      throw new UsageError(`--checkpoint-every must be a positive integer, got ${values["checkpoint-every"]}`);
    }
    let checkpointKey: Buffer | undefined;
    if (values["signing-key"] !== undefined) {
      checkpointKey = await readBoundedFile(values["signing-key"], "signing key", MAX_KEY_FILE_BYTES);
    }
    const data = values.data === undefined ? undefined : await readDataFile(values.data);
    const shadow = await readShadowOptions(values);
    const verificationKey = await readVerificationKey(values["verification-key"], values["verification-alg"]);
    const recordKey = process.env[RECORD_KEY_ENV] || undefined;
    // The adapter's own log: stderr, never the records file, and never able
    // to change an outcome (a line stderr cannot take is dropped, never waited on).
    const logger = pino({ name: "veto" }, standardLogDestination(2));
    // Without --log, records are pino JSON lines in --records FILE (a regular
    // file, each record fdatasync'ed) or on stderr, each write acknowledged
    // only when made (fd-sink.ts).
    let records: FdRecordSink | undefined;
    if (values.log === undefined) {
      try {
        records = values.records === undefined ? FdRecordSink.stderr() : await FdRecordSink.openFile(values.records);
      } catch (error) {
        fail(`cannot open records file ${values.records}: ${toError(error).message}`);
      }
    }

    let decisionLog: FileDecisionLog | undefined;
    if (values.log !== undefined) {
      try {
        decisionLog = await openFileLog(values.log, {
          logger: logger.child({ component: "decision-log" }),
          ...(checkpointKey === undefined ? {} : { checkpointKey }),
          ...(checkpointEvery === undefined ? {} : { checkpointEvery }),
        });
      } catch (error) {
        if (error instanceof DecisionLogError) fail(`cannot open decision log ${values.log}: ${error.message}`);
        fail(`cannot open decision log ${values.log}: ${toError(error).message}`);
      }
    }

    let veto: Veto;
    try {
      veto = await createVeto({
        bundle: values.bundle,
        logger,
        ...(data === undefined ? {} : { data }),
        recordSink: decisionLog ?? records,
        ...(recordKey === undefined ? {} : { recordKey }),
        ...(verificationKey === undefined ? {} : { verificationKey }),
        ...(shadow === undefined ? {} : { shadow }),
      });
    } catch (error) {
      await decisionLog?.close();
      fail(toError(error).message);
    }

    try {
      await decideLines(veto);
    } finally {
      await veto.close();
      await decisionLog?.close();
      await records?.close();
    }
    if (records?.failure != null) {
      throw new CliExit(
        2,
        `records ${values.records === undefined ? "on standard error" : `file ${values.records}`} failed, every call from then on was denied with record_unavailable: ${toError(records.failure.cause ?? records.failure).message}`,
      );
    }
    if (decisionLog?.failure != null) {
      throw new CliExit(
        2,
        `decision log ${values.log} failed, every call from then on was denied with record_unavailable: ${decisionLog.failure.message}`,
      );
    }
    return 0;
  },
};

async function decideLines(veto: Veto): Promise<void> {
  // Every line has its decision, so output pairs with input line by line; a
  // blank or whitespace-only line is not JSON (invalid_input, attributed to
  // no one). Only the empty text after a final newline is not a line. A line
  // over the input limit is answered (invalid_input, attributed to no one)
  // without being held: see line-reader.ts.
  for await (const read of readLines(process.stdin, DEFAULT_INPUT_LIMITS.maxInputBytes)) {
    if (read.text === undefined) {
      await print(`${JSON.stringify(await protectUnreadable(veto, undefined, read.unreadable))}\n`);
      continue;
    }
    const line = read.text;
    let call: unknown;
    let problem: string | undefined;
    if (line.trim() === "") {
      problem = "the line is blank, not a JSON call";
    } else {
      try {
        call = JSON.parse(line);
      } catch (error) {
        problem = `the line is not valid JSON: ${jsonSyntaxProblem(error)}`;
      }
    }
    // protect() resolves only after the record sink's write did: with --log,
    // after the record is fdatasync'ed. Amounts are judged by their text on
    // the line, which JSON.parse does not keep (docs/contract.md §9).
    const decision = problem === undefined ? await protectText(veto, call, line) : await protectUnreadable(veto, line, problem);
    await print(`${JSON.stringify(decision)}\n`);
  }
}
