/**
 * The policy report: what a decision log says about the policy that made it,
 * with the owners' answers to its approvals as ground truth (docs/policy-changes.md).
 *
 * - verdicts by tool, tenant, reason code and day, and escalations;
 * - approvals: approved / rejected / expired / pending / amended / executed,
 *   time to answer (median, p90) per reason code and per approver, and the
 *   share of each code's approvals that owners granted unchanged, flagged
 *   "relax" (≥ relaxShare of ≥ minAnswers answers granted unchanged) or
 *   "deny" (more than denyShare rejected, over ≥ minAnswers answers);
 * - shadow disagreements (records that carry a `shadow` verdict), by transition;
 * - with a candidate: every decision replayed on it (replay.ts: the recorded
 *   deny history), the transitions joined with the owners' answers:
 *   `allows_rejected` (an owner rejected the call, the candidate would allow
 *   it), `denies_approved` (an owner approved it, the candidate would deny it),
 *   and the same for approvals still pending and expired.
 *
 * Every count is over the decisions in the window (`since` ≤ timestamp <
 * `until`) that pass the tenant and tool filters; a decision recorded twice
 * (superseded by a record_unavailable deny) counts once, as its last record.
 * An answer, an amendment or an execution counts with its decision.
 */
import type { Action } from "../common/decision.js";
import { replayRecords, type LoggedRecord, type ReplayOptions, type Verdict } from "./replay.js";

export interface ReportOptions {
  /** Decisions at or after this time (epoch ms). Default: all. */
  readonly sinceMs?: number;
  /** Decisions before this time (epoch ms); also the time expiries are measured against. Default: now. */
  readonly untilMs?: number;
  readonly tenant?: string;
  readonly tool?: string;
  /** Replay every decision on this bundle (and data) and join the changes with the owners' answers. */
  readonly candidate?: ReplayOptions;
  /** Answers a code needs before it is flagged. Default 20. */
  readonly minAnswers?: number;
  /** Share granted unchanged at or above which a code is a candidate to relax. Default 0.95. */
  readonly relaxShare?: number;
  /** Share rejected above which a code is a candidate to deny outright. Default 0.5. */
  readonly denyShare?: number;
  /** How many example decision ids to keep per list. Default 20. */
  readonly maxExamples?: number;
}

export interface VerdictCounts {
  total: number;
  allow: number;
  deny: number;
  require_approval: number;
  escalated: number;
}

export interface AnswerTimes {
  /** Answers timed. */
  readonly count: number;
  /** Milliseconds from the decision to its answer; null without answers. */
  readonly median_ms: number | null;
  readonly p90_ms: number | null;
}

export interface ApprovalCounts {
  requested: number;
  approved: number;
  rejected: number;
  /** Unanswered, and their expiry (`expires_at`) before the report's end. */
  expired: number;
  /** Unanswered and not expired (or recorded without an expiry). */
  pending: number;
  /** Amended by an approver instead of answered (records of type "amendment"): the amended call is a new decision. */
  amended: number;
  /** Approved and claimed for execution. */
  executed: number;
}

export type CodeFlag = "relax" | "deny" | null;

export interface CodeReport {
  readonly decisions: VerdictCounts;
  readonly approvals: ApprovalCounts;
  readonly answer_time: AnswerTimes;
  /** Approved unchanged / (approved + rejected); null without answers. */
  readonly granted_unchanged_share: number | null;
  readonly flag: CodeFlag;
}

export interface ApproverReport {
  readonly approved: number;
  readonly rejected: number;
  readonly answer_time: AnswerTimes;
}

export interface TransitionExample {
  readonly decision_id: string;
  readonly timestamp: string | null;
  readonly tool: string | null;
  readonly tenant_id: string | null;
  readonly old: Verdict;
  readonly new: Verdict;
}

export interface ShadowReport {
  /** Decisions that carry a shadow verdict. */
  readonly evaluated: number;
  /** Of those, whose shadow verdict differs in action or escalation. */
  readonly disagreements: number;
  /** Shadow evaluations that failed (`shadow.error`). */
  readonly errors: number;
  readonly transitions: Readonly<Record<string, number>>;
  readonly examples: Readonly<Record<string, readonly string[]>>;
}

export interface CandidateReport {
  readonly bundle: { readonly revision: string; readonly hash: string };
  readonly replayed: number;
  readonly changed: number;
  readonly skipped: number;
  readonly unreplayable: number;
  /** "old → new" → count. */
  readonly transitions: Readonly<Record<string, number>>;
  /** Calls an owner rejected that the candidate would allow. */
  readonly allows_rejected: number;
  /** Calls an owner approved that the candidate would deny. */
  readonly denies_approved: number;
  readonly allows_pending: number;
  readonly allows_expired: number;
  readonly denies_pending: number;
  readonly denies_expired: number;
  /** Decision ids behind each count and each transition (at most maxExamples each). */
  readonly examples: Readonly<Record<string, readonly string[]>>;
  readonly changes: readonly TransitionExample[];
}

export interface PolicyReport {
  readonly window: { readonly since: string | null; readonly until: string };
  readonly filters: { readonly tenant: string | null; readonly tool: string | null };
  readonly records: number;
  readonly decisions: VerdictCounts;
  readonly approvals: ApprovalCounts & { readonly answer_time: AnswerTimes };
  readonly by_tool: Readonly<Record<string, VerdictCounts>>;
  readonly by_tenant: Readonly<Record<string, VerdictCounts>>;
  readonly by_day: Readonly<Record<string, VerdictCounts>>;
  readonly by_code: Readonly<Record<string, CodeReport>>;
  readonly by_approver: Readonly<Record<string, ApproverReport>>;
  readonly shadow: ShadowReport;
  readonly candidate?: CandidateReport;
}

/** What the report reads of a decision record (tolerant: old logs lack fields). */
interface DecisionFacts {
  readonly id: string;
  readonly atMs: number;
  readonly timestamp: string;
  readonly day: string;
  readonly tool: string;
  readonly tenant: string;
  readonly action: Action;
  readonly escalated: boolean;
  readonly codes: readonly string[];
  readonly expiresAtMs: number | null;
  /** For the decision of an amended call: the decision it amends (the owner changed the call). */
  readonly amendedFrom: string | null;
  readonly shadow: Readonly<Record<string, unknown>> | null;
  readonly logged: LoggedRecord;
}

/** What became of a require_approval decision. */
type Outcome = "approved" | "rejected" | "expired" | "pending" | "amended";

interface Answer {
  readonly approval: "approved" | "rejected";
  readonly reviewer: string;
  readonly atMs: number;
}

const ACTION_SET: ReadonlySet<string> = new Set(["allow", "deny", "require_approval"]);
const NONE = "(none)";

const emptyCounts = (): VerdictCounts => ({ total: 0, allow: 0, deny: 0, require_approval: 0, escalated: 0 });
const emptyApprovals = (): ApprovalCounts => ({
  requested: 0,
  approved: 0,
  rejected: 0,
  expired: 0,
  pending: 0,
  amended: 0,
  executed: 0,
});

function count(into: VerdictCounts, d: DecisionFacts): void {
  into.total += 1;
  into[d.action] += 1;
  if (d.escalated) into.escalated += 1;
}

function bucket<T>(map: Map<string, T>, key: string, make: () => T): T {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}

const sorted = <T>(map: Map<string, T>): Record<string, T> =>
  Object.fromEntries([...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** Nearest-rank percentile of sorted values. */
function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  return values[Math.max(0, Math.ceil(p * values.length) - 1)]!;
}

function times(values: number[]): AnswerTimes {
  values.sort((a, b) => a - b);
  return { count: values.length, median_ms: percentile(values, 0.5), p90_ms: percentile(values, 0.9) };
}

const text = (v: unknown): string | null => (typeof v === "string" ? v : null);

function decisionFacts(logged: LoggedRecord): DecisionFacts | undefined {
  const r = logged.record;
  const id = text(r["decision_id"]);
  const timestamp = text(r["timestamp"]);
  const result = r["result"] as { action?: unknown; escalated?: unknown; reasons?: unknown } | undefined;
  if (id === null || id === "" || timestamp === null || result === undefined || result === null) return undefined;
  const atMs = Date.parse(timestamp);
  if (!Number.isFinite(atMs) || typeof result.action !== "string" || !ACTION_SET.has(result.action)) return undefined;
  const reasons = Array.isArray(result.reasons) ? result.reasons : [];
  const codes = reasons.flatMap((reason: unknown) => {
    const code = (reason as { code?: unknown } | null)?.code;
    return typeof code === "string" ? [code] : [];
  });
  const expires = text(r["expires_at"]);
  const expiresAtMs = expires === null ? null : Date.parse(expires);
  const shadow = r["shadow"];
  return {
    id,
    atMs,
    timestamp,
    day: new Date(atMs).toISOString().slice(0, 10),
    tool: text(r["tool"]) ?? NONE,
    tenant: text(r["tenant_id"]) ?? NONE,
    action: result.action as Action,
    escalated: result.escalated === true,
    codes: codes.length === 0 ? [NONE] : [...new Set(codes)],
    expiresAtMs: expiresAtMs !== null && Number.isFinite(expiresAtMs) ? expiresAtMs : null,
    amendedFrom: text(r["amended_from"]),
    shadow: shadow !== null && typeof shadow === "object" && !Array.isArray(shadow) ? (shadow as Record<string, unknown>) : null,
    logged,
  };
}

/** The report over `records` (in log order, as readLog or readPostgresRecords returns them). */
export async function buildReport(records: Iterable<LoggedRecord>, options: ReportOptions = {}): Promise<PolicyReport> {
  const untilMs = options.untilMs ?? Date.now();
  const sinceMs = options.sinceMs ?? Number.NEGATIVE_INFINITY;
  const minAnswers = options.minAnswers ?? 20;
  const relaxShare = options.relaxShare ?? 0.95;
  const denyShare = options.denyShare ?? 0.5;
  const maxExamples = options.maxExamples ?? 20;

  const latest = new Map<string, DecisionFacts>();
  const answers = new Map<string, Answer>();
  const executed = new Set<string>();
  const amended = new Set<string>();
  let total = 0;
  for (const logged of records) {
    total += 1;
    const r = logged.record;
    const id = text(r["decision_id"]);
    if (id === null) continue;
    const type = r["type"];
    if (type === "decision") {
      const facts = decisionFacts(logged);
      if (facts !== undefined) latest.set(id, facts);
    } else if (type === "approval" || type === "rejection") {
      const atMs = Date.parse(text(r["timestamp"]) ?? "");
      // The first answer is the one that counted (docs/contract.md §6: an approval is answered once).
      if (!answers.has(id) && Number.isFinite(atMs)) {
        answers.set(id, { approval: type === "approval" ? "approved" : "rejected", reviewer: text(r["reviewer_id"]) ?? NONE, atMs });
      }
    } else if (type === "execution") {
      if ((r["result"] as { execution?: unknown } | undefined)?.execution === "claimed") executed.add(id);
    } else if (type === "amendment") {
      amended.add(id);
    }
  }

  const decisions: DecisionFacts[] = [];
  for (const d of latest.values()) {
    if (d.atMs < sinceMs || d.atMs >= untilMs) continue;
    if (options.tenant !== undefined && d.tenant !== options.tenant) continue;
    if (options.tool !== undefined && d.tool !== options.tool) continue;
    decisions.push(d);
  }
  decisions.sort((a, b) => a.atMs - b.atMs);

  const overall = emptyCounts();
  const byTool = new Map<string, VerdictCounts>();
  const byTenant = new Map<string, VerdictCounts>();
  const byDay = new Map<string, VerdictCounts>();
  // approvedAmended: approvals of amended calls (granted, but not as the agent asked).
  const byCode = new Map<string, { decisions: VerdictCounts; approvals: ApprovalCounts; times: number[]; approvedAmended: number }>();
  const byApprover = new Map<string, { approved: number; rejected: number; times: number[] }>();
  const approvals = emptyApprovals();
  const allTimes: number[] = [];
  /** The owners' outcome per require_approval decision. */
  const outcomeOf = new Map<string, Outcome>();

  for (const d of decisions) {
    count(overall, d);
    count(bucket(byTool, d.tool, emptyCounts), d);
    count(bucket(byTenant, d.tenant, emptyCounts), d);
    count(bucket(byDay, d.day, emptyCounts), d);
    const codeBuckets = d.codes.map((code) =>
      bucket(byCode, code, () => ({ decisions: emptyCounts(), approvals: emptyApprovals(), times: [], approvedAmended: 0 })),
    );
    for (const b of codeBuckets) count(b.decisions, d);
    if (d.action !== "require_approval") continue;
    const answer = answers.get(d.id);
    // An amended approval ended "amended": the owner answered by changing the call (docs/contract.md §6).
    const outcome: Outcome = amended.has(d.id)
      ? "amended"
      : answer !== undefined
        ? answer.approval
        : d.expiresAtMs !== null && d.expiresAtMs < untilMs
          ? "expired"
          : "pending";
    outcomeOf.set(d.id, outcome);
    const isExecuted = outcome === "approved" && executed.has(d.id);
    const tally = (into: ApprovalCounts): void => {
      into.requested += 1;
      into[outcome] += 1;
      if (isExecuted) into.executed += 1;
    };
    tally(approvals);
    for (const b of codeBuckets) {
      tally(b.approvals);
      if (outcome === "approved" && d.amendedFrom !== null) b.approvedAmended += 1;
    }
    if (answer !== undefined) {
      const took = Math.max(0, answer.atMs - d.atMs);
      allTimes.push(took);
      for (const b of codeBuckets) b.times.push(took);
      const who = bucket(byApprover, answer.reviewer, () => ({ approved: 0, rejected: 0, times: [] as number[] }));
      who[answer.approval] += 1;
      who.times.push(took);
    }
  }

  const codeReports = new Map<string, CodeReport>();
  for (const [code, b] of byCode) {
    // An amendment is an answer that did not grant the call as asked.
    const answered = b.approvals.approved + b.approvals.rejected + b.approvals.amended;
    const grantedUnchanged = b.approvals.approved - b.approvedAmended;
    const share = answered === 0 ? null : grantedUnchanged / answered;
    let flag: CodeFlag = null;
    if (answered >= minAnswers && share !== null) {
      if (share >= relaxShare) flag = "relax";
      else if (b.approvals.rejected / answered > denyShare) flag = "deny";
    }
    codeReports.set(code, {
      decisions: b.decisions,
      approvals: b.approvals,
      answer_time: times(b.times),
      granted_unchanged_share: share,
      flag,
    });
  }
  const approverReports = new Map<string, ApproverReport>();
  for (const [who, b] of byApprover) approverReports.set(who, { approved: b.approved, rejected: b.rejected, answer_time: times(b.times) });

  const report: PolicyReport = {
    window: { since: Number.isFinite(sinceMs) ? new Date(sinceMs).toISOString() : null, until: new Date(untilMs).toISOString() },
    filters: { tenant: options.tenant ?? null, tool: options.tool ?? null },
    records: total,
    decisions: overall,
    approvals: { ...approvals, answer_time: times(allTimes) },
    by_tool: sorted(byTool),
    by_tenant: sorted(byTenant),
    by_day: sorted(byDay),
    by_code: sorted(codeReports),
    by_approver: sorted(approverReports),
    shadow: shadowReport(decisions, maxExamples),
  };
  if (options.candidate === undefined) return report;
  return { ...report, candidate: await candidateReport(decisions, outcomeOf, options.candidate, maxExamples) };
}

function addExample(examples: Map<string, string[]>, key: string, id: string, max: number): void {
  const list = bucket(examples, key, () => [] as string[]);
  if (list.length < max) list.push(id);
}

/** Records written with a shadow bundle carry its verdict: where it differs from the enforced one. */
function shadowReport(decisions: readonly DecisionFacts[], maxExamples: number): ShadowReport {
  let evaluated = 0;
  let disagreements = 0;
  let errors = 0;
  const transitions = new Map<string, number>();
  const examples = new Map<string, string[]>();
  for (const d of decisions) {
    if (d.shadow === null) continue;
    evaluated += 1;
    if (d.shadow["error"] !== undefined && d.shadow["error"] !== null) {
      errors += 1;
      continue;
    }
    const action = text(d.shadow["action"]);
    if (action === null) continue;
    const escalated = d.shadow["escalated"] === true;
    if (action === d.action && escalated === d.escalated) continue;
    disagreements += 1;
    const kind = `${d.action} → ${action}${escalated === d.escalated ? "" : escalated ? " (escalated)" : " (not escalated)"}`;
    transitions.set(kind, (transitions.get(kind) ?? 0) + 1);
    addExample(examples, kind, d.id, maxExamples);
  }
  return { evaluated, disagreements, errors, transitions: sorted(transitions), examples: sorted(examples) };
}

async function candidateReport(
  decisions: readonly DecisionFacts[],
  outcomeOf: ReadonlyMap<string, Outcome>,
  candidate: ReplayOptions,
  maxExamples: number,
): Promise<CandidateReport> {
  const replay = await replayRecords(
    decisions.map((d) => d.logged),
    candidate,
  );
  const facts = new Map(decisions.map((d) => [d.id, d]));
  const counts = { allows_rejected: 0, denies_approved: 0, allows_pending: 0, allows_expired: 0, denies_pending: 0, denies_expired: 0 };
  const examples = new Map<string, string[]>();
  const changes: TransitionExample[] = [];
  for (const change of replay.changed) {
    const kind = `${change.old.action} → ${change.new.action}`;
    addExample(examples, kind, change.decision_id, maxExamples);
    if (changes.length < maxExamples * 5) {
      changes.push({
        decision_id: change.decision_id,
        timestamp: change.timestamp,
        tool: change.tool,
        tenant_id: change.tenant_id,
        old: change.old,
        new: change.new,
      });
    }
    const outcome = outcomeOf.get(change.decision_id);
    // An amended call was neither granted nor refused as asked: in none of the joined counts.
    if (outcome === undefined || outcome === "amended" || facts.get(change.decision_id) === undefined) continue;
    const key =
      change.new.action === "allow"
        ? ({ rejected: "allows_rejected", pending: "allows_pending", expired: "allows_expired", approved: null } as const)[outcome]
        : change.new.action === "deny"
          ? ({ approved: "denies_approved", pending: "denies_pending", expired: "denies_expired", rejected: null } as const)[outcome]
          : null;
    if (key === null) continue;
    counts[key] += 1;
    addExample(examples, key, change.decision_id, maxExamples);
  }
  return {
    bundle: { revision: replay.bundle.revision, hash: replay.bundle.hash },
    replayed: replay.decisions - replay.skipped.length - replay.unreplayable.length,
    changed: replay.changed.length,
    skipped: replay.skipped.length,
    unreplayable: replay.unreplayable.length,
    transitions: replay.summary,
    ...counts,
    examples: sorted(examples),
    changes,
  };
}

/** The counts `--fail-on` may name: the candidate's joined counts and the shadow's disagreements. */
export const FAIL_ON_COUNTS = [
  "allows_rejected",
  "denies_approved",
  "allows_pending",
  "allows_expired",
  "denies_pending",
  "denies_expired",
  "changed",
  "unreplayable",
  "shadow_disagreements",
  "shadow_errors",
] as const;
export type FailOnCount = (typeof FAIL_ON_COUNTS)[number];

/** The value of a --fail-on count in a report; null when the report lacks it (no candidate). */
export function failOnValue(report: PolicyReport, name: FailOnCount): number | null {
  if (name === "shadow_disagreements") return report.shadow.disagreements;
  if (name === "shadow_errors") return report.shadow.errors;
  return report.candidate === undefined ? null : report.candidate[name];
}
