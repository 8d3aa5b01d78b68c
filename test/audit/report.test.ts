/**
 * `veto report` on logs the real adapter wrote (the real bundle, a file log),
 * with generated traffic and scripted owner answers: every count equals an
 * independent count over the log's lines, and a candidate that relaxes the
 * approval threshold reports exactly the rejected calls it would allow.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openFileLog, readLog } from "../../adapter/audit/index.js";
import { buildReport, type PolicyReport } from "../../adapter/audit/report.js";
import {
  APPROVER,
  FIXTURE_DATA,
  OTHER_APPROVER,
  ROOT,
  makeVeto,
  read,
  requireBundle,
  requireCli,
  runCli,
  write,
} from "../helpers/index.js";
import { tempDir } from "../helpers/file-log.js";
import { seededRandom } from "../helpers/generate-calls.js";

const SEED = Number(process.env["VETO_TEST_SEED"] ?? 2107);
const CALLS = 240;
const RELAXED_THRESHOLD = 100_000;
const TTL_MS = 3_600_000;

interface Scripted {
  readonly id: string;
  readonly action: string;
  readonly amount: number | null;
  readonly codes: readonly string[];
  readonly escalated: boolean;
  answer: "approved" | "rejected" | null;
}

let dir: string;
let cleanup: () => Promise<void>;
let logPath: string;
let candidateData: string;
let untilMs: number;
const scripted: Scripted[] = [];

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
  logPath = join(dir, "decisions.jsonl");
  const log = await openFileLog(logPath);
  const { veto, clock } = await makeVeto({ recordSink: log, approvalTtlMs: TTL_MS });
  const random = seededRandom(SEED);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  for (let i = 0; i < CALLS; i += 1) {
    clock.advance(Math.floor(random() * 20 * 60_000));
    const kind = pick(["low", "amount", "amount", "amount", "sensitive", "read", "wrong_tenant", "other_actor"] as const);
    let amount: number | null = null;
    let call: Record<string, unknown>;
    if (kind === "amount") {
      amount = 5000 + Math.floor(random() * 200_000);
      call = write({ amount });
    } else if (kind === "sensitive") call = write({ object: "account", changes: { credit_limit: 90000 } });
    else if (kind === "read") call = read();
    else if (kind === "wrong_tenant") call = write({ tenantId: "globex" }, { actorId: "agent:support-triage" });
    else if (kind === "other_actor") {
      amount = 7000;
      call = write({ amount }, { actorId: "agent:support-triage" });
    } else call = write();
    const decision = await veto.protect(call);
    const entry: Scripted = {
      id: decision.id,
      action: decision.action,
      amount,
      codes: decision.reasons.map((r) => r.code),
      escalated: decision.escalated,
      answer: null,
    };
    scripted.push(entry);
    if (decision.action !== "require_approval") continue;
    const roll = random();
    // A fifth unanswered (expired or pending by the end), the rest answered after a while.
    if (roll < 0.2) continue;
    clock.advance(Math.floor(random() * 30 * 60_000));
    const reviewerId = random() < 0.5 ? APPROVER : OTHER_APPROVER;
    if (roll < 0.6) {
      await veto.approve({ decisionId: decision.id, reviewerId });
      entry.answer = "approved";
    } else {
      await veto.reject({ decisionId: decision.id, reviewerId, note: "no" });
      entry.answer = "rejected";
    }
  }
  untilMs = clock.nowMs + 1;
  await veto.close();
  await log.close();
  const data = JSON.parse(readFileSync(FIXTURE_DATA, "utf8")) as { veto: { config: { tenants: Record<string, Record<string, unknown>> } } };
  data.veto.config.tenants["acme"]!["approval_threshold"] = RELAXED_THRESHOLD;
  candidateData = join(dir, "relaxed.json");
  writeFileSync(candidateData, JSON.stringify(data));
}, 120_000);
afterAll(() => cleanup());

/** The log's lines as JSON, checkpoints left out: the independent reading. */
function rawRecords(): Record<string, unknown>[] {
  return readFileSync(logPath, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((r) => typeof r["type"] === "string");
}

describe("veto report over a log the adapter wrote", () => {
  it(`counts verdicts and approvals exactly as the records say (seed ${SEED})`, async () => {
    const report = await buildReport(await readLog([logPath]), { untilMs });
    const raw = rawRecords();
    const decisions = raw.filter((r) => r["type"] === "decision");
    const result = (r: Record<string, unknown>) => r["result"] as { action: string; escalated: boolean; reasons: { code: string }[] };
    const ofAction = (a: string) => decisions.filter((r) => result(r).action === a).length;
    expect(report.decisions).toEqual({
      total: decisions.length,
      allow: ofAction("allow"),
      deny: ofAction("deny"),
      require_approval: ofAction("require_approval"),
      escalated: decisions.filter((r) => result(r).escalated).length,
    });
    expect(report.decisions.total).toBe(CALLS);
    const answered = new Map(raw.filter((r) => r["type"] === "approval" || r["type"] === "rejection").map((r) => [r["decision_id"], r]));
    const asking = decisions.filter((r) => result(r).action === "require_approval");
    const unanswered = asking.filter((r) => !answered.has(r["decision_id"]));
    for (const r of asking) expect(Date.parse(r["expires_at"] as string) - Date.parse(r["timestamp"] as string)).toBe(TTL_MS);
    const expired = unanswered.filter((r) => Date.parse(r["expires_at"] as string) < untilMs).length;
    expect(report.approvals).toMatchObject({
      requested: asking.length,
      approved: raw.filter((r) => r["type"] === "approval").length,
      rejected: raw.filter((r) => r["type"] === "rejection").length,
      expired,
      pending: unanswered.length - expired,
    });
    // What the script did, too.
    expect(report.approvals.approved).toBe(scripted.filter((s) => s.answer === "approved").length);
    expect(report.approvals.rejected).toBe(scripted.filter((s) => s.answer === "rejected").length);
    expect(report.approvals.expired + report.approvals.pending).toBeGreaterThan(0);
    // Per tool and per code sum up; per code, answers with their times.
    const toolTotal = Object.values(report.by_tool).reduce((n, c) => n + c.total, 0);
    expect(toolTotal).toBe(CALLS);
    for (const [code, c] of Object.entries(report.by_code)) {
      const withCode = decisions.filter((r) => result(r).reasons.some((x) => x.code === code));
      expect(c.decisions.total, code).toBe(withCode.length);
      const codeAnswers = withCode.map((r) => answered.get(r["decision_id"])).filter((a) => a !== undefined);
      expect(c.approvals.approved + c.approvals.rejected, code).toBe(codeAnswers.length);
      expect(c.answer_time.count, code).toBe(codeAnswers.length);
    }
    const times = asking
      .flatMap((r) => {
        const a = answered.get(r["decision_id"]);
        return a === undefined ? [] : [Date.parse(a["timestamp"] as string) - Date.parse(r["timestamp"] as string)];
      })
      .sort((a, b) => a - b);
    expect(report.approvals.answer_time.median_ms).toBe(times[Math.ceil(times.length / 2) - 1]);
    expect(report.approvals.answer_time.p90_ms).toBe(times[Math.ceil(times.length * 0.9) - 1]);
    const approvers = Object.values(report.by_approver).reduce((n, a) => n + a.approved + a.rejected, 0);
    expect(approvers).toBe(answered.size);
    const days = Object.values(report.by_day).reduce((n, c) => n + c.total, 0);
    expect(days).toBe(CALLS);
  });

  it("expired and pending move with --until", async () => {
    const early = await buildReport(await readLog([logPath]), { untilMs: untilMs + 10 * TTL_MS });
    expect(early.approvals.pending).toBe(0);
    expect(early.approvals.expired).toBe(early.approvals.requested - early.approvals.approved - early.approvals.rejected);
  });

  it("a candidate that relaxes the approval threshold reports exactly the rejected calls it would allow", async () => {
    const report = await buildReport(await readLog([logPath]), {
      untilMs,
      candidate: { bundle: requireBundle(), data: JSON.parse(readFileSync(candidateData, "utf8")) as Record<string, unknown> },
      maxExamples: CALLS,
    });
    const wouldAllow = (s: Scripted) =>
      s.action === "require_approval" &&
      !s.escalated &&
      s.codes.join() === "production_amount" &&
      s.amount !== null &&
      s.amount < RELAXED_THRESHOLD;
    const expected = scripted.filter((s) => s.answer === "rejected" && wouldAllow(s)).map((s) => s.id);
    expect(expected.length).toBeGreaterThan(0);
    const candidate = report.candidate!;
    expect(candidate.allows_rejected).toBe(expected.length);
    expect([...(candidate.examples["allows_rejected"] ?? [])].sort()).toEqual([...expected].sort());
    expect(candidate.denies_approved).toBe(0);
    const relaxed = scripted.filter(wouldAllow);
    expect(candidate.transitions["require_approval → allow"]).toBe(relaxed.length);
    expect(candidate.allows_pending + candidate.allows_expired).toBe(relaxed.filter((s) => s.answer === null).length);
  });

  it("the CLI prints the JSON the issue's shape names and --fail-on allows_rejected exits 1", () => {
    requireCli();
    const until = new Date(untilMs).toISOString();
    const json = runCli([
      "report",
      "--log",
      logPath,
      "--until",
      until,
      "--json",
      "--candidate",
      requireBundle(),
      "--candidate-data",
      candidateData,
    ]);
    expect(json.status, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout) as PolicyReport;
    expect(Object.keys(report.decisions).sort()).toEqual(["allow", "deny", "escalated", "require_approval", "total"]);
    for (const key of ["approved", "rejected", "expired", "pending"])
      expect(typeof (report.approvals as unknown as Record<string, unknown>)[key]).toBe("number");
    expect(report.by_code).toBeTypeOf("object");
    expect(Number.isInteger(report.candidate!.allows_rejected)).toBe(true);
    expect(Number.isInteger(report.candidate!.denies_approved)).toBe(true);
    expect(report.candidate!.changed).toBeGreaterThan(0);

    const gated = runCli([
      "report",
      "--log",
      logPath,
      "--candidate",
      requireBundle(),
      "--candidate-data",
      candidateData,
      "--fail-on",
      "allows_rejected",
    ]);
    expect(gated.status).toBe(1);
    expect(gated.stderr).toMatch(/allows_rejected \d+ \(--fail-on\)/);
    // The enforced policy as its own candidate changes nothing: the gate passes.
    const same = runCli(["report", "--log", logPath, "--candidate", requireBundle(), "--fail-on", "allows_rejected,denies_approved"]);
    expect(same.status, same.stderr).toBe(0);
    expect(same.stdout).toContain("allows_rejected: 0");
  });

  it("refuses a log that does not verify, and bad flags", () => {
    const text = readFileSync(logPath, "utf8");
    const edited = join(dir, "edited.jsonl");
    expect(text).toContain('"action":"allow"');
    writeFileSync(edited, text.replace('"action":"allow"', '"action":"deny"'));
    expect(runCli(["report", "--log", edited]).status).toBe(1);
    expect(runCli(["report"]).status).toBe(2);
    expect(runCli(["report", "--log", logPath, "--since", "yesterday"]).status).toBe(2);
    expect(runCli(["report", "--log", logPath, "--fail-on", "allows_rejected"]).status).toBe(2);
    expect(runCli(["report", "--log", logPath, "--candidate", requireBundle(), "--fail-on", "nonsense"]).status).toBe(2);
  });

  it("filters by tenant, tool and time", async () => {
    const records = await readLog([logPath]);
    const all = await buildReport(records, { untilMs });
    const acme = await buildReport(records, { untilMs, tenant: "acme" });
    expect(acme.decisions.total).toBe(all.by_tenant["acme"]!.total);
    const reads = await buildReport(records, { untilMs, tool: "crm.read" });
    expect(reads.decisions).toEqual(all.by_tool["crm.read"]);
    const days = Object.keys(all.by_day);
    const lastDay = days[days.length - 1]!;
    const since = await buildReport(records, { untilMs, sinceMs: Date.parse(`${lastDay}T00:00:00Z`) });
    expect(since.decisions).toEqual(all.by_day[lastDay]);
  });
});

describe("veto report on the demo's log", () => {
  it("runs on the log `make demo` writes and prints the tables", () => {
    requireCli();
    const demoDir = join(dir, "demo");
    const demo = spawnSync("node", [join(ROOT, "scripts/demo/run.mjs"), "--json", "--dir", demoDir], { encoding: "utf8" });
    expect(demo.status, demo.stderr).toBe(0);
    const summary = JSON.parse(demo.stdout) as { steps: unknown[]; log: { path: string } };
    const text = runCli(["report", "--log", summary.log.path]);
    expect(text.status, text.stderr).toBe(0);
    // One decision per step, and one more for each amended call (a new decision).
    const decisions = readFileSync(summary.log.path, "utf8")
      .split("\n")
      .filter((line) => line.includes('"type":"decision"')).length;
    expect(decisions).toBeGreaterThanOrEqual(summary.steps.length);
    expect(text.stdout).toMatch(new RegExp(`^${decisions} decisions `));
    expect(text.stdout).toMatch(/^reason code\s+decisions\s+approval\s+approved\s+rejected/m);
    expect(text.stdout).toMatch(/^sensitive_field\s+\d+\s+\d+\s+\d+\s+1\s/m);
    // The README shows this report: its tool and reason-code tables are the demo's (times aside).
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const tools = text.stdout.split("\n\n").find((block) => block.startsWith("tool "))!;
    expect(readme).toContain(tools);
    const codeRows = text.stdout
      .split("\n\n")
      .find((block) => block.startsWith("reason code "))!
      .split("\n");
    for (const row of codeRows) expect(readme).toContain(row.slice(0, 80)); // up to "granted": the times vary
    const json = JSON.parse(runCli(["report", "--log", summary.log.path, "--json"]).stdout) as PolicyReport;
    // The demo: three approvals granted (one of them the amended call), one rejected, one amended.
    expect(json.approvals).toMatchObject({ approved: 3, rejected: 1, pending: 0, expired: 0, amended: 1 });
  });
});
