/**
 * The inbox's pages, rendered on the server: plain HTML with every value
 * escaped, no inline script or style (the Content-Security-Policy forbids
 * both), one stylesheet and one small script from the same origin.
 */
import type { ShownItem } from "./item.js";
import { MAX_STATE_CHARS, MAX_VALUE_CHARS, cut, type CurrentView } from "../record-view.js";

export function esc(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A value as the reviewer reads it: strings as they are, everything else as JSON, never truncated. */
export function shown(value: unknown): string {
  if (value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value, null, 1);
}

const DIGEST = /^(hmac-)?sha256:[0-9a-f]{64}$/;

/** A value for a table cell: escaped; a sensitive field's digest (as the record masks it) said to be one. */
function cell(value: unknown): string {
  if (typeof value === "string" && DIGEST.test(value))
    return `<span class="masked">masked (sensitive field)</span> <code>${esc(value)}</code>`;
  return esc(shown(value));
}

const when = (iso: string): string => `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
const time = (iso: string): string => `<time datetime="${esc(iso)}">${esc(when(iso))}</time>`;

/** "in 4 min 05 s", "in 2 h 03 min", "expired". */
export function remaining(ms: number): string {
  if (ms <= 0) return "expired";
  const s = Math.ceil(ms / 1000);
  if (s < 60) return `in ${s} s`;
  if (s < 3600) return `in ${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `in ${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

export interface CardContext {
  /** The signed-in reviewer. */
  readonly reviewerId: string;
  readonly csrf: string;
  readonly nowMs: number;
  /** The record's current side (the server's readRecord hook), for a pending approval when the server has one. */
  readonly current?: CurrentView | undefined;
  /** For an amended approval: what became of the amended call (a line, and whether its card is this reviewer's to open). */
  readonly amendedTo?: { readonly text: string; readonly link: boolean };
  /** The amend form as last submitted, shown again (open) after a refusal. */
  readonly amendDraft?: { readonly arguments: string; readonly note: string };
  /** A line about what just happened to this card (an answer, an amendment, a refusal). */
  readonly outcome?: { readonly kind: "answered" | "amended" | "conflict" | "refused"; readonly text: string };
}

const STATUS_WORDS: Readonly<Record<ShownItem["status"], string>> = {
  pending: "Pending",
  approved: "Approved",
  rejected: "Rejected",
  expired: "Expired",
  executed: "Approved and executed",
  amended: "Amended",
};

/** The sentence saying how an answered approval was answered. */
export function answerLine(item: ShownItem, reviewerId: string): string {
  const by =
    item.reviewerId === undefined ? "" : item.reviewerId === reviewerId ? ` by you (${item.reviewerId})` : ` by ${item.reviewerId}`;
  const at = item.answeredAt === undefined ? "" : ` at ${when(item.answeredAt)}`;
  switch (item.status) {
    case "approved":
      return `Approved${by}${at}.`;
    case "executed":
      return `Approved${by}${at}; executed${item.executedAt === undefined ? "" : ` at ${when(item.executedAt)}`}.`;
    case "rejected":
      return `Rejected${by}${at}.`;
    case "amended":
      return `Amended${by}${at}: the amended call is decision ${item.amendedTo ?? "(unknown)"}.`;
    case "expired":
      return `Expired at ${when(item.expiresAt)} without an answer.`;
    default:
      return "Waiting for an answer.";
  }
}

function row(label: string, value: string, raw = false): string {
  return `<div><dt>${esc(label)}</dt><dd>${raw ? value : esc(value)}</dd></div>`;
}

function args(item: ShownItem): Record<string, unknown> {
  const a = item.arguments;
  return a !== null && typeof a === "object" && !Array.isArray(a) ? (a as Record<string, unknown>) : {};
}

/** One approval: an <article data-decision-id> with everything a reviewer needs, and the answer form while it is pending. */
export function card(item: ShownItem, c: CardContext): string {
  const id = item.decisionId;
  const a = args(item);
  const changes =
    a["changes"] !== null && typeof a["changes"] === "object" && !Array.isArray(a["changes"])
      ? (a["changes"] as Record<string, unknown>)
      : undefined;
  const title = `${item.tool ?? "a call"}${typeof a["object"] === "string" ? ` on ${a["object"]}` : ""}${typeof a["recordId"] === "string" ? ` ${a["recordId"]}` : ""}`;
  const facts = [
    row("Actor", item.actorId ?? "unknown"),
    row("Tenant", item.tenantId ?? "unknown"),
    row("Environment", item.environment ?? "unknown"),
    row("Tool", item.tool ?? "unknown"),
    row("Object", typeof a["object"] === "string" ? a["object"] : "none"),
    row("Record", typeof a["recordId"] === "string" ? a["recordId"] : "none"),
    row("Requested", time(item.createdAt), true),
    row(
      "Expires",
      `${time(item.expiresAt)} <span class="countdown" data-countdown>${esc(item.status === "pending" || item.status === "expired" ? remaining(Date.parse(item.expiresAt) - c.nowMs) : "")}</span>`,
      true,
    ),
    row("Bundle revision", item.bundle?.revision ?? "unknown"),
    row("Bundle hash", `<code class="hash">${esc(item.bundle?.hash ?? "unknown")}</code>`, true),
    row(
      "Recent denies",
      item.recentDenies === null ? "unknown" : `${item.recentDenies} (this actor in this tenant, in the escalation window)`,
    ),
    row("Approvers", item.approvers.join(", ")),
    ...(item.recordState === undefined
      ? []
      : [row("Record state at the request", `<code>${esc(bounded(item.recordState, MAX_STATE_CHARS))}</code>`, true)]),
    ...(item.amendedFrom === undefined
      ? []
      : [
          row(
            "Amends",
            `decision <a href="/approvals/${esc(item.amendedFrom)}"><code>${esc(item.amendedFrom)}</code></a>, amended by ${esc(item.amendedBy ?? "unknown")}`,
            true,
          ),
        ]),
  ].join("");
  const view = c.current;
  const hasCurrent = view?.available === true;
  const currentCell = (field: string, value: unknown): string => {
    if (view?.available !== true) return "";
    if (view.masked.includes(field) || (typeof value === "string" && DIGEST.test(value)))
      return '<td class="current"><span class="masked">masked (sensitive field)</span></td>';
    if (!Object.prototype.hasOwnProperty.call(view.fields, field)) return '<td class="current"><em>not set</em></td>';
    const cutNote = view.truncated.includes(field) ? ` <span class="cut">(first ${MAX_VALUE_CHARS} characters)</span>` : "";
    return `<td class="current">${esc(bounded(shown(view.fields[field])))}${cutNote}</td>`;
  };
  const changeRows =
    changes === undefined
      ? ""
      : Object.entries(changes)
          .map(
            ([field, value]) =>
              `<tr><th scope="row">${esc(field)}</th>${currentCell(field, value)}<td class="new">${cell(value)}</td></tr>`,
          )
          .join("");
  const unavailable = view?.available === false ? ` (current values unavailable: ${esc(view.reason)})` : "";
  const changesTable =
    changes === undefined
      ? ""
      : `<table class="changes"><caption>Changed fields${unavailable}</caption><thead><tr><th scope="col">Field</th>${hasCurrent ? '<th scope="col">Current value</th>' : ""}<th scope="col">New value</th></tr></thead><tbody>${changeRows || `<tr><td colspan="${hasCurrent ? 3 : 2}">no fields</td></tr>`}</tbody></table>${stateLines(item, view)}`;
  const others = Object.entries(a).filter(([k]) => !["changes", "object", "recordId"].includes(k));
  const otherList =
    others.length === 0
      ? ""
      : `<h3 class="sub">Other arguments</h3><dl class="arguments">${others.map(([k, v]) => row(k, shown(v))).join("")}</dl>`;
  const reasons = `<h3 class="sub">Why it needs approval</h3><ul class="reasons">${item.reasons.map((r) => `<li>${esc(r.message)} <code>${esc(r.code)}</code></li>`).join("") || "<li>no reason given</li>"}</ul>`;
  const pending = item.status === "pending";
  const form = pending
    ? `<form class="answer" method="post" action="/approvals/${esc(id)}/approve">
<input type="hidden" name="_csrf" value="${esc(c.csrf)}">
<label for="note-${esc(id)}">Comment</label>
<textarea id="note-${esc(id)}" name="note" rows="2" maxlength="2000"></textarea>
<div class="buttons"><button type="submit" class="approve">Approve</button><button type="submit" class="reject" formaction="/approvals/${esc(id)}/reject">Reject</button></div>
</form>
${amendForm(item, c)}`
    : "";
  const amendedLine =
    item.status === "amended" && item.amendedTo !== undefined
      ? `<p class="amended-to" data-amended-to="${esc(item.amendedTo)}">Amended → decision ${
          c.amendedTo?.link === true
            ? `<a href="/approvals/${esc(item.amendedTo)}"><code>${esc(item.amendedTo)}</code></a>`
            : `<code>${esc(item.amendedTo)}</code>`
        }${c.amendedTo === undefined ? "" : `: ${esc(c.amendedTo.text)}`}</p>`
      : "";
  const outcome =
    c.outcome !== undefined && c.outcome.text !== "" ? esc(c.outcome.text) : pending ? "" : esc(answerLine(item, c.reviewerId));
  const note = item.note === undefined ? "" : `<p class="note"><span class="label">Comment:</span> ${esc(item.note)}</p>`;
  return `<article class="card status-${esc(item.status)}" id="approval-${esc(id)}" data-decision-id="${esc(id)}" data-status="${esc(item.status)}" data-expires-at="${esc(item.expiresAt)}"${c.outcome === undefined ? "" : ` data-outcome="${esc(c.outcome.kind)}"`} aria-labelledby="title-${esc(id)}">
<header><h2 id="title-${esc(id)}"><a href="/approvals/${esc(id)}">${esc(title)}</a></h2><p class="status" data-status-text>${esc(STATUS_WORDS[item.status])}</p></header>
<dl class="facts">${facts}</dl>
${changesTable}
${otherList}
${reasons}
${note}
${amendedLine}
${form}
<p class="result" role="status" aria-live="polite" tabindex="-1">${outcome}</p>
<p class="decision-id">Decision <code>${esc(id)}</code></p>
</article>`;
}

/** At most `max` characters of a text from outside (the app's CRM), with an ellipsis when cut. */
function bounded(text: string, max = MAX_VALUE_CHARS): string {
  const c = cut(text, max);
  return c.cut ? `${c.text}…` : text;
}

/** The state the current values were read at, beside the approval's; a warning when they differ. */
function stateLines(item: ShownItem, view: CurrentView | undefined): string {
  if (view?.available !== true || view.state === undefined) return "";
  const read = `<code>${esc(view.state)}</code>`;
  if (view.stateChanged === true) {
    return `<p class="warning record-changed" role="alert" data-record-changed>Record changed since the request: the approval is bound to state <code>${esc(bounded(item.recordState ?? "", MAX_STATE_CHARS))}</code>, the current values were read at ${read}. An approval would be refused when the call runs (<code>record_changed</code>): reject it, or amend it against the current values.</p>`;
  }
  const against =
    view.stateChanged === false
      ? ", the state the approval is bound to"
      : item.recordState === undefined
        ? " (the approval is bound to no state)"
        : "";
  return `<p class="record-state" data-record-state>Current values read at state ${read}${against}.</p>`;
}

/** The form that amends a pending call's arguments (docs/inbox.md, "Amending"): closed until opened, or shown again after a refusal. */
function amendForm(item: ShownItem, c: CardContext): string {
  const id = esc(item.decisionId);
  let text: string;
  if (c.amendDraft !== undefined) text = c.amendDraft.arguments;
  else {
    try {
      text = JSON.stringify(item.arguments ?? {}, null, 2) ?? "{}";
    } catch {
      text = "{}";
    }
  }
  const masked = /"(hmac-)?sha256:[0-9a-f]{64}"/.test(text)
    ? `<p class="hint">A sensitive field's value is shown masked (<code>sha256:…</code>): put the value itself in its place, or remove the field. A masked value is refused.</p>`
    : "";
  return `<details class="amend"${c.amendDraft === undefined ? "" : " open"}><summary>Amend the arguments</summary>
<form class="amend" method="post" action="/approvals/${id}/amend">
<input type="hidden" name="_csrf" value="${esc(c.csrf)}">
<p class="hint">The amended call is decided again by the policy, with the same actor, tenant and reason. If it still needs approval and you are one of its approvers, amending approves it.</p>
${masked}<label for="amend-arguments-${id}">Arguments (JSON object)</label>
<textarea id="amend-arguments-${id}" name="arguments" rows="12" spellcheck="false" autocapitalize="off" required>${esc(text)}</textarea>
<label for="amend-note-${id}">Note for the amendment</label>
<textarea id="amend-note-${id}" name="note" rows="2" maxlength="2000">${esc(c.amendDraft?.note ?? "")}</textarea>
<div class="buttons"><button type="submit" class="amend">Amend</button></div>
</form></details>`;
}

export interface PageContext {
  readonly title: string;
  readonly reviewerId?: string;
  readonly csrf?: string;
  readonly nowMs: number;
  /** "inbox" (live: new approvals are added), "approval", "history", "sign-in". */
  readonly view: string;
  readonly scoped?: boolean;
}

export function page(p: PageContext, body: string): string {
  const nav =
    p.reviewerId === undefined
      ? ""
      : `<nav aria-label="Main"><a href="/">Pending</a><a href="/history">History</a></nav>
<div class="who"><span>Signed in as <strong>${esc(p.reviewerId)}</strong>${p.scoped === true ? " (by link, for its approvals only)" : ""}</span>
<form method="post" action="/sign-out"><input type="hidden" name="_csrf" value="${esc(p.csrf ?? "")}"><button type="submit" class="link">Sign out</button></form></div>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${esc(p.title)} · Veto approvals</title>
<link rel="stylesheet" href="/assets/inbox.css">
<link rel="icon" href="/assets/icon.svg" type="image/svg+xml">
<script src="/assets/inbox.js" defer></script>
</head>
<body data-view="${esc(p.view)}" data-server-now="${p.nowMs}">
<a class="skip" href="#main">Skip to content</a>
<header class="top"><p class="brand">Veto approvals</p>${nav}</header>
<main id="main" tabindex="-1">
${body}
</main>
</body>
</html>
`;
}

export function message(title: string, text: string, extra = ""): string {
  return `<h1>${esc(title)}</h1><p class="message">${esc(text)}</p>${extra}`;
}
