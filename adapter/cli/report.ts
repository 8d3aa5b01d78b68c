/**
 * `veto report (--log FILE | --postgres URL [--schema NAME]) [--since TIME]
 * [--until TIME] [--tenant ID] [--tool NAME] [--candidate BUNDLE
 * [--candidate-data FILE]] [--json] [--fail-on NAME[,NAME]]`: what a decision
 * log says about its policy, with the owners' answers as ground truth
 * (adapter/audit/report.ts, docs/policy-changes.md). The log is verified
 * first; one that does not verify stops the command (exit 1).
 */
import { parseArgs } from "node:util";
import { toError, VetoError } from "../common/errors.js";
import { LogCorruptError, readLog } from "../audit/index.js";
import { FAIL_ON_COUNTS, buildReport, failOnValue, type FailOnCount, type PolicyReport } from "../audit/report.js";
import { formatReportHtml } from "../audit/report-html.js";
import { formatReportText } from "../audit/report-text.js";
import { writeFile } from "node:fs/promises";
import type { LoggedRecord } from "../audit/replay.js";
import { DEFAULT_SCHEMA } from "../postgres/connection.js";
import { readPostgresRecords } from "../postgres/report-records.js";
import { CliExit, UsageError, fail, print, readDataFile, type Command } from "./common.js";
import { postgresUrl } from "./db.js";
import { requireRegularLog } from "./log.js";
import { VERIFICATION_KEY_USAGE, readVerificationKey, verificationKeyOptions } from "./verification-key.js";

function timeFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) throw new UsageError(`--${name} must be an ISO 8601 time (2026-03-01T00:00:00Z), not ${JSON.stringify(value)}`);
  return ms;
}

function failOnFlag(value: string | undefined): FailOnCount[] {
  if (value === undefined) return [];
  return value.split(",").map((name) => {
    const trimmed = name.trim();
    if (!(FAIL_ON_COUNTS as readonly string[]).includes(trimmed)) {
      throw new UsageError(`--fail-on names counts among ${FAIL_ON_COUNTS.join(", ")}, not ${JSON.stringify(trimmed)}`);
    }
    return trimmed as FailOnCount;
  });
}

async function readRecords(log: string | undefined, postgres: string | undefined, schema: string | undefined): Promise<LoggedRecord[]> {
  if (log !== undefined) {
    await requireRegularLog(log);
    try {
      return await readLog([log]);
    } catch (error) {
      if (error instanceof LogCorruptError) throw new CliExit(1, `log ${log} does not verify, no report: ${error.message}`);
      throw error;
    }
  }
  const connectionString = postgresUrl(postgres, "report --postgres");
  let result;
  try {
    result = await readPostgresRecords({ connectionString, schema: schema ?? DEFAULT_SCHEMA });
  } catch (error) {
    fail(`report on ${schema ?? DEFAULT_SCHEMA}.records: ${toError(error).message}`);
  }
  if (!result.ok) throw new CliExit(1, `${result.table} does not verify, no report: ${result.reason}`);
  return result.records;
}

export const reportCommand: Command = {
  usage: `  veto report (--log PATH | --postgres URL [--schema NAME]) [--since TIME] [--until TIME] [--tenant ID] [--tool NAME] [--candidate BUNDLE [--candidate-data FILE]] [--json] [--html FILE] [--fail-on NAME[,NAME]]
      what the decision log says about its policy: verdicts by tool, tenant, reason code
      and day; approvals approved / rejected / expired / pending / amended / executed,
      time to answer, and the share of each code's approvals granted unchanged (flagged
      "relax?" at ≥ 95% over ≥ 20 answers, "deny?" when mostly rejected); shadow
      disagreements. --candidate: every decision replayed on BUNDLE (and FILE's data),
      joined with the owners' answers (allows_rejected, denies_approved, ...).
      --until (default now) also decides which unanswered approvals have expired.
      --json: one JSON document. --html FILE: also one self-contained page (tables and
      SVG charts, no script, nothing fetched) for a policy change review. --fail-on allows_rejected,...: exit 1 when any named
      count is above 0 (names: ${FAIL_ON_COUNTS.join(", ")}).
      Exit 1 when the log does not verify, 2 when an input is unusable.
      ${VERIFICATION_KEY_USAGE}`,

  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        log: { type: "string" },
        postgres: { type: "string" },
        schema: { type: "string" },
        since: { type: "string" },
        until: { type: "string" },
        tenant: { type: "string" },
        tool: { type: "string" },
        candidate: { type: "string" },
        "candidate-data": { type: "string" },
        json: { type: "boolean", default: false },
        html: { type: "string" },
        "fail-on": { type: "string" },
        ...verificationKeyOptions,
      },
    });
    if (positionals.length > 0) throw new UsageError(`report takes --log PATH, not ${JSON.stringify(positionals[0])}`);
    const onPostgres = values.postgres !== undefined || values.schema !== undefined;
    if ((values.log === undefined) === !onPostgres) throw new UsageError("report needs one of --log PATH or --postgres URL");
    if (values["candidate-data"] !== undefined && values.candidate === undefined)
      throw new UsageError("--candidate-data needs --candidate BUNDLE");
    const sinceMs = timeFlag("since", values.since);
    const untilMs = timeFlag("until", values.until);
    const failOn = failOnFlag(values["fail-on"]);
    if (values.candidate === undefined) {
      const needs = failOn.find((name) => !name.startsWith("shadow_"));
      if (needs !== undefined) throw new UsageError(`--fail-on ${needs} needs --candidate BUNDLE`);
    }
    const data = values["candidate-data"] === undefined ? undefined : await readDataFile(values["candidate-data"]);
    const verificationKey = await readVerificationKey(values["verification-key"], values["verification-alg"]);
    const records = await readRecords(values.log, values.postgres, values.schema);
    let report: PolicyReport;
    try {
      report = await buildReport(records, {
        ...(sinceMs === undefined ? {} : { sinceMs }),
        ...(untilMs === undefined ? {} : { untilMs }),
        ...(values.tenant === undefined ? {} : { tenant: values.tenant }),
        ...(values.tool === undefined ? {} : { tool: values.tool }),
        ...(values.candidate === undefined
          ? {}
          : {
              candidate: {
                bundle: values.candidate,
                ...(data === undefined ? {} : { data }),
                ...(verificationKey === undefined ? {} : { verificationKey }),
              },
            }),
      });
    } catch (error) {
      if (error instanceof VetoError) fail(error.message);
      fail(`cannot report: ${toError(error).message}`);
    }
    if (values.html !== undefined) {
      try {
        await writeFile(values.html, formatReportHtml(report));
      } catch (error) {
        fail(`cannot write ${values.html}: ${toError(error).message}`);
      }
    }
    await print(values.json ? `${JSON.stringify(report)}\n` : formatReportText(report));
    const over = failOn.filter((name) => (failOnValue(report, name) ?? 0) > 0);
    if (over.length > 0) {
      process.stderr.write(`veto: report: ${over.map((name) => `${name} ${failOnValue(report, name)}`).join(", ")} (--fail-on)\n`);
      return 1;
    }
    return 0;
  },
};
