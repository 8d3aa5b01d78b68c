/**
 * `veto eval --bundle PATH [--data FILE] [--log PATH | --records FILE]`
 * (contract section 8): one call per stdin line, one decision per stdout line,
 * in order, all calls sharing one in-memory deny history. With --log, every
 * decision's record is in the durable, hash-chained log (fdatasync'ed) before
 * the decision is printed.
 */
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { toError } from "../errors.js";
import { DecisionLogError, openFileLog, type FileDecisionLog } from "../log/index.js";
import { createVeto, protectUnreadable, type Veto } from "../veto.js";
import { UsageError, CliExit, fail, print, readDataFile, type Command } from "./common.js";
import { VERIFICATION_KEY_USAGE, readVerificationKey, verificationKeyOptions } from "./verification-key.js";

/** Environment variable holding the per-deployment key for record digests (kept out of argv, which `ps` shows). */
export const RECORD_KEY_ENV = "VETO_RECORD_KEY";

export const evalCommand: Command = {
  usage: `  veto eval --bundle PATH [--data FILE] [--log PATH | --records FILE] [--verification-key PATH [--verification-alg ALG]]
      reads one call per line (JSON {tool, arguments, context}) from stdin and writes
      one decision per line to stdout. --log PATH: records go to a durable, hash-chained
      decision log (created if missing; each decision is printed only once its record
      is synced). --records FILE: records as pino JSON lines (appended). Neither: stderr.
      $${RECORD_KEY_ENV}: key (>= 16 bytes) for HMAC digests of sensitive values.
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
        ...verificationKeyOptions,
      },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
    if (values.bundle === undefined) throw new UsageError("eval needs --bundle PATH");
    if (values.log !== undefined && values.records !== undefined) {
      throw new UsageError("eval takes --log or --records, not both");
    }
    const data = values.data === undefined ? undefined : await readDataFile(values.data);
    const verificationKey = await readVerificationKey(values["verification-key"], values["verification-alg"]);
    const recordKey = process.env[RECORD_KEY_ENV] || undefined;
    const destination =
      values.records === undefined
        ? pino.destination({ fd: 2, sync: true })
        : pino.destination({ dest: values.records, sync: true, append: true, mkdir: true });
    const logger = pino({ name: "veto" }, destination);

    let decisionLog: FileDecisionLog | undefined;
    if (values.log !== undefined) {
      try {
        decisionLog = await openFileLog(values.log, { logger: logger.child({ component: "decision-log" }) });
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
        ...(decisionLog === undefined ? {} : { recordSink: decisionLog }),
        ...(recordKey === undefined ? {} : { recordKey }),
        ...(verificationKey === undefined ? {} : { verificationKey }),
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
    // protect() resolves only after the record sink's write did: with --log,
    // after the record is fdatasync'ed.
    const decision =
      parseError === undefined
        ? await veto.protect(call)
        : await protectUnreadable(veto, line, `the line is not valid JSON: ${parseError.message}`);
    await print(`${JSON.stringify(decision)}\n`);
  }
}
