/**
 * The policy report (report.ts) as plain-text tables, for a terminal and for
 * the README: fixed-width columns, no colour.
 */
import type { AnswerTimes, PolicyReport, VerdictCounts } from "./report.js";

function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

const verdictRow = (name: string, c: VerdictCounts): string[] => [
  name,
  String(c.total),
  String(c.allow),
  String(c.deny),
  String(c.require_approval),
  String(c.escalated),
];
const VERDICT_HEAD = ["total", "allow", "deny", "approval", "escalated"];

/** "1.2s", "3m", "2.5h"; "-" without a value. */
export function duration(ms: number | null): string {
  if (ms === null) return "-";
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)}m`;
  return `${(ms / 3_600_000).toFixed(1)}h`;
}

const timesText = (t: AnswerTimes): [string, string] => [duration(t.median_ms), duration(t.p90_ms)];
const share = (s: number | null): string => (s === null ? "-" : `${Math.round(s * 100)}%`);

export function formatReportText(report: PolicyReport): string {
  const out: string[] = [];
  const d = report.decisions;
  out.push(
    `${d.total} decisions (${report.window.since ?? "start"} to ${report.window.until}): ` +
      `${d.allow} allow, ${d.deny} deny, ${d.require_approval} require_approval, ${d.escalated} escalated`,
  );
  const a = report.approvals;
  out.push(
    `approvals: ${a.requested} requested, ${a.approved} approved, ${a.rejected} rejected, ${a.expired} expired, ` +
      `${a.pending} pending, ${a.amended} amended, ${a.executed} executed; ` +
      `time to answer median ${duration(a.answer_time.median_ms)}, p90 ${duration(a.answer_time.p90_ms)}`,
  );
  out.push(
    "",
    table(
      ["tool", ...VERDICT_HEAD],
      Object.entries(report.by_tool).map(([k, c]) => verdictRow(k, c)),
    ),
  );
  out.push(
    "",
    table(
      ["tenant", ...VERDICT_HEAD],
      Object.entries(report.by_tenant).map(([k, c]) => verdictRow(k, c)),
    ),
  );
  out.push(
    "",
    table(
      ["day", ...VERDICT_HEAD],
      Object.entries(report.by_day).map(([k, c]) => verdictRow(k, c)),
    ),
  );
  out.push(
    "",
    table(
      ["reason code", "decisions", "approval", "approved", "rejected", "expired", "pending", "granted", "median", "p90", "flag"],
      Object.entries(report.by_code).map(([code, c]) => [
        code,
        String(c.decisions.total),
        String(c.approvals.requested),
        String(c.approvals.approved),
        String(c.approvals.rejected),
        String(c.approvals.expired),
        String(c.approvals.pending),
        share(c.granted_unchanged_share),
        ...timesText(c.answer_time),
        c.flag === "relax" ? "relax?" : c.flag === "deny" ? "deny?" : "",
      ]),
    ),
  );
  const approvers = Object.entries(report.by_approver);
  if (approvers.length > 0) {
    out.push(
      "",
      table(
        ["approver", "approved", "rejected", "median", "p90"],
        approvers.map(([who, r]) => [who, String(r.approved), String(r.rejected), ...timesText(r.answer_time)]),
      ),
    );
  }
  const s = report.shadow;
  if (s.evaluated > 0) {
    out.push("", `shadow: ${s.evaluated} evaluated, ${s.disagreements} disagree, ${s.errors} failed`);
    for (const [kind, n] of Object.entries(s.transitions))
      out.push(`  ${kind}: ${n} (e.g. ${(s.examples[kind] ?? []).slice(0, 3).join(", ")})`);
  }
  const c = report.candidate;
  if (c !== undefined) {
    out.push(
      "",
      `candidate ${c.bundle.hash}${c.bundle.revision === "" ? "" : ` (revision ${c.bundle.revision})`}: ` +
        `${c.changed} of ${c.replayed} replayed decisions change (${c.skipped} skipped, ${c.unreplayable} cannot be replayed)`,
      `  allows_rejected: ${c.allows_rejected}${examplesText(c.examples["allows_rejected"])}`,
      `  denies_approved: ${c.denies_approved}${examplesText(c.examples["denies_approved"])}`,
      `  allows_pending: ${c.allows_pending}, allows_expired: ${c.allows_expired}, ` +
        `denies_pending: ${c.denies_pending}, denies_expired: ${c.denies_expired}`,
    );
    for (const [kind, n] of Object.entries(c.transitions)) out.push(`  ${kind}: ${n}${examplesText(c.examples[kind])}`);
  }
  return `${out.join("\n")}\n`;
}

function examplesText(ids: readonly string[] | undefined): string {
  return ids === undefined || ids.length === 0 ? "" : ` (${ids.slice(0, 5).join(", ")}${ids.length > 5 ? ", …" : ""})`;
}
