/**
 * The policy report (report.ts) as one self-contained HTML page: inline CSS
 * and SVG charts, no script, no font, no image, nothing fetched, so it can be
 * attached to a policy change review and opened anywhere. A Content Security
 * Policy in the page forbids every load except its own inline styles.
 */
import { duration } from "./report-text.js";
import type { PolicyReport, VerdictCounts } from "./report.js";

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

const COLOURS = {
  allow: "#2e7d32",
  deny: "#c62828",
  require_approval: "#ef6c00",
  approved: "#2e7d32",
  rejected: "#c62828",
  expired: "#757575",
  pending: "#1565c0",
} as const;

interface Segment {
  readonly label: string;
  readonly value: number;
  readonly colour: string;
}

/** Horizontal stacked bars, one row per item, with a legend: an SVG of fixed layout. */
function stackedBars(title: string, rows: readonly { label: string; segments: readonly Segment[] }[]): string {
  if (rows.length === 0) return "";
  const max = Math.max(1, ...rows.map((r) => r.segments.reduce((n, s) => n + s.value, 0)));
  const labelWidth = 190;
  const barWidth = 460;
  const rowHeight = 22;
  const legend = rows[0]!.segments.map((s) => s);
  const height = rows.length * rowHeight + 34;
  const parts: string[] = [];
  rows.forEach((row, i) => {
    const y = i * rowHeight + 4;
    parts.push(`<text x="${labelWidth - 6}" y="${y + 14}" text-anchor="end">${escapeHtml(row.label)}</text>`);
    let x = labelWidth;
    for (const s of row.segments) {
      if (s.value === 0) continue;
      const w = (s.value / max) * barWidth;
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${rowHeight - 6}" fill="${s.colour}"><title>${escapeHtml(`${row.label}: ${s.value} ${s.label}`)}</title></rect>`,
      );
      x += w;
    }
    const total = row.segments.reduce((n, s) => n + s.value, 0);
    parts.push(`<text x="${(x + 4).toFixed(1)}" y="${y + 14}">${total}</text>`);
  });
  let lx = labelWidth;
  const ly = rows.length * rowHeight + 20;
  for (const s of legend) {
    parts.push(
      `<rect x="${lx}" y="${ly - 10}" width="10" height="10" fill="${s.colour}"/><text x="${lx + 14}" y="${ly}">${escapeHtml(s.label)}</text>`,
    );
    lx += 24 + s.label.length * 7;
  }
  return `<figure><figcaption>${escapeHtml(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="${escapeHtml(title)}" width="${labelWidth + barWidth + 60}" height="${height}" viewBox="0 0 ${labelWidth + barWidth + 60} ${height}">${parts.join("")}</svg></figure>`;
}

const verdictSegments = (c: VerdictCounts): Segment[] => [
  { label: "allow", value: c.allow, colour: COLOURS.allow },
  { label: "require_approval", value: c.require_approval, colour: COLOURS.require_approval },
  { label: "deny", value: c.deny, colour: COLOURS.deny },
];

function table(head: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  if (rows.length === 0) return "<p>none</p>";
  const th = head.map((h) => `<th>${escapeHtml(h)}</th>`).join("");
  const body = rows
    .map(
      (r) =>
        `<tr>${r.map((c, i) => (i === 0 ? `<th scope="row">${escapeHtml(String(c))}</th>` : `<td>${escapeHtml(String(c))}</td>`)).join("")}</tr>`,
    )
    .join("");
  return `<table><thead><tr>${th}</tr></thead><tbody>${body}</tbody></table>`;
}

const verdictRows = (map: Readonly<Record<string, VerdictCounts>>) =>
  Object.entries(map).map(([k, c]) => [k, c.total, c.allow, c.deny, c.require_approval, c.escalated]);
const VERDICT_HEAD = ["total", "allow", "deny", "require_approval", "escalated"];
const share = (s: number | null): string => (s === null ? "-" : `${Math.round(s * 100)}%`);

export function formatReportHtml(report: PolicyReport): string {
  const d = report.decisions;
  const a = report.approvals;
  const sections: string[] = [];
  sections.push(
    `<p class="summary"><strong>${d.total}</strong> decisions from ${escapeHtml(report.window.since ?? "the start of the log")} to ${escapeHtml(report.window.until)}: ` +
      `${d.allow} allow, ${d.deny} deny, ${d.require_approval} require_approval, ${d.escalated} escalated. ` +
      `Approvals: ${a.approved} approved, ${a.rejected} rejected, ${a.expired} expired, ${a.pending} pending, ${a.amended} amended, ${a.executed} executed; ` +
      `time to answer median ${duration(a.answer_time.median_ms)}, p90 ${duration(a.answer_time.p90_ms)}.</p>`,
  );
  const c = report.candidate;
  if (c !== undefined) {
    const examples = (key: string) => (c.examples[key] ?? []).map((id) => `<code>${escapeHtml(id)}</code>`).join(" ");
    sections.push(
      `<section><h2>Candidate ${escapeHtml(c.bundle.hash)}${c.bundle.revision === "" ? "" : ` (revision ${escapeHtml(c.bundle.revision)})`}</h2>` +
        `<p class="${c.allows_rejected > 0 ? "alarm" : "ok"}"><strong>allows_rejected: ${c.allows_rejected}</strong> — calls an owner rejected that the candidate would allow. ${examples("allows_rejected")}</p>` +
        `<p>denies_approved: ${c.denies_approved} ${examples("denies_approved")}</p>` +
        `<p>${c.changed} of ${c.replayed} replayed decisions change; ${c.skipped} skipped, ${c.unreplayable} cannot be replayed. ` +
        `allows_pending ${c.allows_pending}, allows_expired ${c.allows_expired}, denies_pending ${c.denies_pending}, denies_expired ${c.denies_expired}.</p>` +
        stackedBars(
          "Candidate transitions",
          Object.entries(c.transitions).map(([kind, n]) => ({
            label: kind,
            segments: [{ label: "decisions", value: n, colour: "#6a1b9a" }],
          })),
        ) +
        table(
          ["transition", "count", "examples"],
          Object.entries(c.transitions).map(([kind, n]) => [kind, n, (c.examples[kind] ?? []).slice(0, 5).join(", ")]),
        ) +
        "</section>",
    );
  }
  sections.push(
    `<section><h2>Verdicts over time</h2>${stackedBars(
      "Decisions per day",
      Object.entries(report.by_day).map(([day, counts]) => ({ label: day, segments: verdictSegments(counts) })),
    )}${table(["day", ...VERDICT_HEAD], verdictRows(report.by_day))}</section>`,
  );
  const codes = Object.entries(report.by_code);
  sections.push(
    `<section><h2>Approvals per reason code</h2>${stackedBars(
      "Approval outcomes per reason code",
      codes
        .filter(([, r]) => r.approvals.requested > 0)
        .map(([code, r]) => ({
          label: code,
          segments: (["approved", "rejected", "expired", "pending"] as const).map((k) => ({
            label: k,
            value: r.approvals[k],
            colour: COLOURS[k],
          })),
        })),
    )}${table(
      [
        "reason code",
        "decisions",
        "approvals",
        "approved",
        "rejected",
        "expired",
        "pending",
        "amended",
        "executed",
        "granted unchanged",
        "median",
        "p90",
        "flag",
      ],
      codes.map(([code, r]) => [
        code,
        r.decisions.total,
        r.approvals.requested,
        r.approvals.approved,
        r.approvals.rejected,
        r.approvals.expired,
        r.approvals.pending,
        r.approvals.amended,
        r.approvals.executed,
        share(r.granted_unchanged_share),
        duration(r.answer_time.median_ms),
        duration(r.answer_time.p90_ms),
        r.flag === "relax" ? "candidate to relax" : r.flag === "deny" ? "candidate to deny" : "",
      ]),
    )}</section>`,
  );
  sections.push(
    `<section><h2>Approvers</h2>${table(
      ["approver", "approved", "rejected", "median", "p90"],
      Object.entries(report.by_approver).map(([who, r]) => [
        who,
        r.approved,
        r.rejected,
        duration(r.answer_time.median_ms),
        duration(r.answer_time.p90_ms),
      ]),
    )}</section>`,
  );
  sections.push(`<section><h2>By tool</h2>${table(["tool", ...VERDICT_HEAD], verdictRows(report.by_tool))}</section>`);
  sections.push(`<section><h2>By tenant</h2>${table(["tenant", ...VERDICT_HEAD], verdictRows(report.by_tenant))}</section>`);
  const s = report.shadow;
  if (s.evaluated > 0) {
    sections.push(
      `<section><h2>Shadow</h2><p>${s.evaluated} evaluated, ${s.disagreements} disagree, ${s.errors} failed.</p>${table(
        ["transition", "count", "examples"],
        Object.entries(s.transitions).map(([kind, n]) => [kind, n, (s.examples[kind] ?? []).slice(0, 5).join(", ")]),
      )}</section>`,
    );
  }
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Veto policy report</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #1b1b1b; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5rem 0 1rem; } th, td { padding: .2rem .6rem; border-bottom: 1px solid #eee; }
td { text-align: right; font-variant-numeric: tabular-nums; } thead th { text-align: right; } thead th:first-child, tbody th { text-align: left; font-weight: normal; }
svg text { font: 12px system-ui, sans-serif; fill: #333; } figure { margin: .5rem 0; } figcaption { font-weight: 600; margin-bottom: .25rem; }
.alarm { background: #ffebee; border-left: 4px solid #c62828; padding: .5rem; } .ok { background: #e8f5e9; border-left: 4px solid #2e7d32; padding: .5rem; }
code { font-size: 12px; }
</style>
</head>
<body>
<h1>Veto policy report</h1>
${sections.join("\n")}
</body>
</html>
`;
}
