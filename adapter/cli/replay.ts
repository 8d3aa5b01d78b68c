/**
 * `veto replay --bundle NEW [--data FILE] [--json] [--fail-on-change] PATH...`:
 * re-evaluate every recorded decision against another bundle or data document
 * and print the verdicts that would change and the records that cannot be
 * replayed. Every log is verified first; a log
 * that does not verify stops the command (exit 1) before anything is replayed.
 */
import { parseArgs } from "node:util";
import { toError, VetoError } from "../common/errors.js";
import { LogCorruptError, readLog } from "../audit/index.js";
import { replayRecords, type LoggedRecord, type ReplayReport, type Verdict } from "../audit/replay.js";
import { CliExit, UsageError, fail, print, readDataFile, type Command } from "./common.js";
import { distinctLogs, requireRegularLog } from "./log.js";
import { VERIFICATION_KEY_USAGE, readVerificationKey, verificationKeyOptions } from "./verification-key.js";

export const replayCommand: Command = {
  usage: `  veto replay --bundle PATH [--data FILE] [--json] [--fail-on-change] [--verification-key PATH [--verification-alg ALG]] LOG...
      re-evaluates every decision recorded in the logs against this bundle and data,
      with the deny history each decision saw, and prints the verdicts that would
      change ("decision_id: old_action [codes] → new_action [codes]") and a count per
      change kind, and every record that cannot be replayed, with its reason.
      --json: one JSON report instead. Exit 0; with --fail-on-change, 1 when any
      verdict changes or any record cannot be replayed. Exit 1 when a log does not verify, 2 when the bundle
      or data is unusable (or, with --verification-key, its signature does not verify).
      ${VERIFICATION_KEY_USAGE}`,

  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        bundle: { type: "string" },
        data: { type: "string" },
        json: { type: "boolean", default: false },
        "fail-on-change": { type: "boolean", default: false },
        ...verificationKeyOptions,
      },
    });
    if (values.bundle === undefined) throw new UsageError("replay needs --bundle PATH");
    if (positionals.length === 0) throw new UsageError("replay needs at least one decision log");
    const logs = distinctLogs(positionals);
    for (const path of logs) await requireRegularLog(path);
    const records: LoggedRecord[] = [];
    for (const path of logs) {
      try {
        records.push(...(await readLog([path])));
      } catch (error) {
        if (error instanceof LogCorruptError) throw new CliExit(1, `log ${path} does not verify, nothing replayed: ${error.message}`);
        throw error;
      }
    }
    const data = values.data === undefined ? undefined : await readDataFile(values.data);
    const verificationKey = await readVerificationKey(values["verification-key"], values["verification-alg"]);
    let report: ReplayReport;
    try {
      report = await replayRecords(records, {
        bundle: values.bundle,
        ...(data === undefined ? {} : { data }),
        ...(verificationKey === undefined ? {} : { verificationKey }),
      });
    } catch (error) {
      if (error instanceof VetoError) fail(error.message);
      fail(`cannot replay: ${toError(error).message}`);
    }
    await print(values.json ? `${JSON.stringify({ logs, data: values.data ?? null, ...report })}\n` : formatReport(report));
    // An unreplayable record is a verdict that might have changed: the gate fails closed.
    return values["fail-on-change"] && (report.changed.length > 0 || report.unreplayable.length > 0) ? 1 : 0;
  },
};

function verdictText(v: Verdict): string {
  return `${v.action} [${v.codes.join(", ")}]`;
}

function formatReport(report: ReplayReport): string {
  const out: string[] = [];
  for (const change of report.changed) {
    // Approvers are worth a mention only when the action stayed require_approval.
    const approvers =
      change.old.action !== change.new.action || change.old.approvers.join(",") === change.new.approvers.join(",")
        ? ""
        : ` (approvers [${change.old.approvers.join(", ")}] → [${change.new.approvers.join(", ")}])`;
    out.push(`${change.decision_id}: ${verdictText(change.old)} → ${verdictText(change.new)}${approvers}`);
  }
  for (const skip of report.skipped) out.push(`${skip.decision_id}: skipped (${skip.file} line ${skip.line}): ${skip.reason}`);
  for (const record of report.unreplayable) {
    out.push(`${record.decision_id}: cannot be replayed (${record.file} line ${record.line}): ${record.reason}`);
  }
  const replayed = report.decisions - report.skipped.length - report.unreplayable.length;
  out.push(
    `replayed ${replayed} of ${report.decisions} decisions against bundle ${report.bundle.hash}` +
      `${report.bundle.revision === "" ? "" : ` (revision ${report.bundle.revision})`}: ` +
      `${report.changed.length} changed, ${report.unchanged} unchanged, ${report.skipped.length} skipped` +
      `${report.unreplayable.length === 0 ? "" : `, ${report.unreplayable.length} cannot be replayed`}`,
  );
  for (const [kind, count] of Object.entries(report.summary)) out.push(`${kind}: ${count}`);
  return `${out.join("\n")}\n`;
}
