/**
 * One row of <schema>.decisions and the StoredDecision it holds: the one
 * mapping the store (store.ts) and the cross-check (cross-check.ts) read
 * rows with, so the two never disagree on what a row says.
 */
import {
  countsForActor,
  type Amendment,
  type ApprovalReview,
  type ApprovalState,
  type ApprovalStatus,
  type StoredDecision,
} from "../history/store.js";
import type { Action } from "../common/decision.js";
import { quoteIdent } from "./connection.js";

/** The columns a decision is written to, in the order the store's upsert binds them. */
export const DECISION_WRITE_COLUMNS = [
  "id",
  "action",
  "escalated",
  "actor_id",
  "tenant_id",
  "at_ms",
  "call_digest",
  "approvers",
  "approval_status",
  "expires_at_ms",
  "reviewer_id",
  "note",
  "answered_at_ms",
  "counts_towards_escalation",
  "review",
  "record_state",
  "amendment",
] as const;

/** A decision's values in DECISION_WRITE_COLUMNS order: the one place a row is built from a StoredDecision. */
export function decisionRowValues(d: StoredDecision): (string | number | boolean | null | string[])[] {
  return [
    d.id,
    d.action,
    d.escalated,
    d.actorId ?? null,
    d.tenantId ?? null,
    d.atMs,
    d.callDigest ?? null,
    [...d.approvers],
    d.approval?.status ?? null,
    d.approval?.expiresAtMs ?? null,
    d.approval?.reviewerId ?? null,
    d.approval?.note ?? null,
    d.approval?.answeredAtMs ?? null,
    // Of the decisions that count (an amended call never does: migration 010 holds it in the table).
    countsForActor(d),
    d.review === undefined ? null : JSON.stringify(d.review),
    d.recordState ?? null,
    d.amendment === undefined ? null : JSON.stringify(d.amendment),
  ];
}

/**
 * Decisions as write_group takes their rows (migration 016): one array per
 * column of DECISION_WRITE_COLUMNS, element k of each the k-th decision's
 * value; approvers as a text[] literal each.
 */
export function decisionColumns(decisions: readonly StoredDecision[]): (string | number | boolean | null)[][] {
  const columns: (string | number | boolean | null)[][] = DECISION_WRITE_COLUMNS.map(() => []);
  for (const d of decisions) {
    for (const [c, v] of decisionRowValues(d).entries()) {
      if (typeof v === "number" && !Number.isSafeInteger(v)) throw new Error(`not an integer: ${v}`);
      columns[c]?.push(Array.isArray(v) ? textArrayLiteral(v) : v);
    }
  }
  return columns;
}

/**
 * A text[] literal of `texts` (PostgreSQL's array input): each element
 * double-quoted with `"` and `\` escaped, a null element NULL. A row's
 * approvers go as one element of write_group's approvers column: the driver
 * writes arrays of arrays only as rectangular ones.
 */
export function textArrayLiteral(texts: readonly (string | null)[]): string {
  let out = "{";
  for (const [i, t] of texts.entries()) {
    if (i > 0) out += ",";
    out += t === null ? "NULL" : `"${t.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
  }
  return `${out}}`;
}

/**
 * The statement counting an (actor, tenant)'s recent denies ($1, $2): its
 * denies at or after $3, and the rejections answered since then, of the
 * decisions that count (docs/contract.md §3; an amended call never counts).
 * One count for every writer: the function recent_denies (migrations 013,
 * 015), which counts with key_window as a group's lock_and_count_window does.
 */
export function recentDeniesSql(schema: string): string {
  return `SELECT ${quoteIdent(schema)}.recent_denies($1, $2, $3) AS n`;
}

/** The columns a decision is read from: those written, and the time of its use-once claim. */
export const DECISION_READ_COLUMNS = [...DECISION_WRITE_COLUMNS, "executed_at_ms", "amended_to"] as const;

/** DECISION_READ_COLUMNS as a select list, each prefixed with `alias.` when one is given. */
export function decisionSelectList(alias?: string): string {
  return DECISION_READ_COLUMNS.map((c) => (alias === undefined ? c : `${alias}.${c}`)).join(", ");
}

/** A row as pg returns DECISION_READ_COLUMNS (bigints as text). */
export interface DecisionRow {
  id: string;
  action: Action;
  escalated: boolean;
  actor_id: string | null;
  tenant_id: string | null;
  at_ms: string;
  call_digest: string | null;
  approvers: string[];
  approval_status: ApprovalStatus | null;
  expires_at_ms: string | null;
  reviewer_id: string | null;
  note: string | null;
  answered_at_ms: string | null;
  counts_towards_escalation: boolean;
  review: ApprovalReview | null;
  record_state: string | null;
  amendment: Amendment | null;
  executed_at_ms: string | null;
  amended_to: string | null;
}

export function toStoredDecision(row: DecisionRow): StoredDecision {
  let approval: ApprovalState | undefined;
  if (row.approval_status !== null) {
    approval = {
      status: row.approval_status,
      expiresAtMs: Number(row.expires_at_ms),
      ...(row.reviewer_id === null ? {} : { reviewerId: row.reviewer_id }),
      ...(row.note === null ? {} : { note: row.note }),
      ...(row.answered_at_ms === null ? {} : { answeredAtMs: Number(row.answered_at_ms) }),
      ...(row.executed_at_ms === null ? {} : { executedAtMs: Number(row.executed_at_ms) }),
      ...(row.amended_to === null ? {} : { amendedTo: row.amended_to }),
    };
  }
  return {
    id: row.id,
    action: row.action,
    escalated: row.escalated,
    ...(row.counts_towards_escalation ? {} : { countsTowardsEscalation: false }),
    ...(row.actor_id === null ? {} : { actorId: row.actor_id }),
    ...(row.tenant_id === null ? {} : { tenantId: row.tenant_id }),
    atMs: Number(row.at_ms),
    ...(row.call_digest === null ? {} : { callDigest: row.call_digest }),
    approvers: row.approvers,
    ...(approval === undefined ? {} : { approval }),
    ...(row.review === null ? {} : { review: row.review }),
    ...(row.record_state === null ? {} : { recordState: row.record_state }),
    ...(row.amendment === null ? {} : { amendment: row.amendment }),
    // An allowed amended call's claim (it has no approval to hold it).
    ...(approval === undefined && row.executed_at_ms !== null ? { executedAtMs: Number(row.executed_at_ms) } : {}),
  };
}
