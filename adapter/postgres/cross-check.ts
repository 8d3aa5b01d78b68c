/**
 * The store's tables against the records (docs/contract.md §7): the hash
 * chain proves the records were not changed, but escalation and approvals
 * read the `decisions` table, which the instances can write. So every row
 * must say what its records say, and every record must have its row:
 *
 * - every decision row has its decision record (the last one of its id: a
 *   record_unavailable deny supersedes the first) with the same action,
 *   escalated, actor, tenant, call digest, time and approvers;
 * - every answered approval has exactly one answer record of its kind, by
 *   the same reviewer, at the same time (the check waitForApproval makes,
 *   adapter/approvals/evidence.ts), and no unanswered one has any;
 * - every decision, approval and rejection record has its row (records of
 *   other types, such as checkpoints, belong to no decision): a deny record
 *   whose row is gone is a deny escalation no longer counts (the deny
 *   history is the table).
 *
 * Read-only (SELECT on both tables: the auditor role suffices). Records and
 * rows before `sinceMs` are left out, for a schema whose records began late
 * or whose old rows a retention job deleted. What this cannot see: a record
 * forged with a correct link AND its row changed to match; only records
 * signed with keys the writer lacks can show that.
 */
import { answerProblem, type ReadRecord } from "../approvals/evidence.js";
import { countsTowardsEscalation } from "../common/decision.js";
import { countsForActor, type StoredDecision } from "../history/store.js";
import { checkOptions, openPool, quoteIdent, type PostgresOptions } from "./connection.js";
import { decisionSelectList, toStoredDecision, type DecisionRow } from "./decision-row.js";

export interface StoreMismatch {
  readonly decisionId: string;
  /** The record concerned, when it is one without its row. */
  readonly seq?: number;
  readonly problem: string;
}

export type CrossCheckResult =
  | { readonly ok: true; readonly schema: string; readonly rows: number; readonly records: number }
  | {
      readonly ok: false;
      readonly schema: string;
      readonly rows: number;
      readonly records: number;
      /** The first MAX_MISMATCHES mismatches, rows in id order, then records in seq order. */
      readonly mismatches: readonly StoreMismatch[];
      /** How many there are in all. */
      readonly total: number;
    };

export interface CrossCheckOptions {
  /** Leave out rows decided, and records written, before this time (epoch ms). Default: none left out. */
  readonly sinceMs?: number;
}

const PAGE = 1_000;
export const MAX_MISMATCHES = 1_000;

/** A decision row with the lines of its records in chain order. */
interface Row extends DecisionRow {
  lines: string[] | null;
}

const iso = (ms: number): string => (Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms));
const show = (v: unknown): string => (v === undefined ? "none" : JSON.stringify(v));

function sameList(a: unknown, b: readonly string[]): boolean {
  return Array.isArray(a) && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A line of the (verified) chain; one that is not a JSON object reads as an empty record, which matches nothing. */
function parseLine(line: string): ReadRecord {
  try {
    const parsed: unknown = JSON.parse(line);
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as ReadRecord) : {};
  } catch {
    return {};
  }
}

/**
 * Whether a decision record is one that counts towards its actor's
 * recentDenies: a deny of the policy's (not an outage deny of the adapter's)
 * for a call the agent made (not a reviewer's amendment).
 */
function recordCounts(made: ReadRecord, result: Record<string, unknown>): boolean {
  const reasons = result["reasons"];
  return (
    made["amended_from"] === undefined &&
    Array.isArray(reasons) &&
    countsTowardsEscalation({
      action: result["action"] === "deny" ? "deny" : "allow",
      reasons: reasons.map((r: unknown) => ({ code: String((r as { code?: unknown } | null)?.code), message: "" })),
    })
  );
}

/** What is wrong with one decision row, given its records in chain order. */
export function rowProblems(row: StoredDecision, records: readonly ReadRecord[]): string[] {
  const problems: string[] = [];
  const made = records.filter((r) => r["type"] === "decision").at(-1);
  if (made === undefined) {
    problems.push(`${row.action} at ${iso(row.atMs)} has no decision record${row.action === "deny" ? " (a deny escalation counts)" : ""}`);
  } else {
    const result = (made["result"] ?? {}) as Record<string, unknown>;
    const differ: string[] = [];
    const compare = (field: string, inRow: unknown, inRecord: unknown): void => {
      if (inRow !== inRecord) differ.push(`${field} (row ${show(inRow)}, record ${show(inRecord)})`);
    };
    compare("action", row.action, result["action"]);
    compare("escalated", row.escalated, result["escalated"]);
    compare("actor", row.actorId ?? null, made["actor_id"]);
    compare("tenant", row.tenantId ?? null, made["tenant_id"]);
    compare("call digest", row.callDigest ?? null, made["call_digest"]);
    const recordMs = typeof made["timestamp"] === "string" ? Date.parse(made["timestamp"]) : NaN;
    if (recordMs !== row.atMs) differ.push(`time (row ${iso(row.atMs)}, record ${show(made["timestamp"])})`);
    if (!sameList(result["approvers"], row.approvers))
      differ.push(`approvers (row ${show(row.approvers)}, record ${show(result["approvers"])})`);
    if (differ.length > 0) problems.push(`the row differs from its decision record in ${differ.join(", ")}`);
    if (row.action === "deny" && !countsForActor(row) && recordCounts(made, result))
      problems.push("the deny does not count towards escalation, but its decision record is a deny that counts");
  }
  const answers = records.filter((r) => r["type"] === "approval" || r["type"] === "rejection");
  const status = row.approval?.status;
  if (status === "approved" || status === "rejected" || status === "executed") {
    const problem = answerProblem(row, records);
    if (problem !== undefined) problems.push(`${status} by ${row.approval?.reviewerId ?? "nobody"}, but ${problem}`);
  } else if (answers.length > 0) {
    const kinds = answers.map((a) => `${String(a["type"])} by ${String(a["reviewer_id"])} (seq ${String(a["seq"])})`).join(", ");
    problems.push(
      `the records hold ${kinds}, but the row ${status === undefined ? `is ${row.action}, not require_approval` : `is ${status}`}`,
    );
  }
  return problems;
}

/**
 * Cross-check <schema>.decisions against <schema>.records. Run it after the
 * chain verified (verifyPostgresLog): it trusts each record's line. Never
 * throws for a mismatch; rejects only when the server cannot be read.
 */
export async function crossCheckPostgresStore(options: PostgresOptions, check: CrossCheckOptions = {}): Promise<CrossCheckResult> {
  const { schema } = checkOptions(options, "crossCheckPostgresStore");
  const sinceMs = check.sinceMs ?? Number.MIN_SAFE_INTEGER;
  if (!Number.isSafeInteger(sinceMs)) throw new TypeError("crossCheckPostgresStore: sinceMs must be epoch milliseconds");
  const { pool, ownsPool } = await openPool(options);
  const decisions = `${quoteIdent(schema)}.decisions`;
  const records = `${quoteIdent(schema)}.records`;
  const mismatches: StoreMismatch[] = [];
  let total = 0;
  const add = (m: StoreMismatch): void => {
    total += 1;
    if (mismatches.length < MAX_MISMATCHES) mismatches.push(m);
  };
  try {
    const counts = await pool.query<{ rows: string; records: string }>(
      `SELECT (SELECT count(*) FROM ${decisions} WHERE at_ms >= $1) AS rows, (SELECT count(*) FROM ${records}) AS records`,
      [sinceMs],
    );
    const rowCount = Number(counts.rows[0]?.rows ?? 0);
    const recordCount = Number(counts.rows[0]?.records ?? 0);
    if (recordCount === 0 && rowCount > 0) {
      // Without records (postgres({ records: false })) there is nothing to check the rows against.
      return {
        ok: false,
        schema,
        rows: rowCount,
        records: 0,
        mismatches: [
          {
            decisionId: "*",
            problem: `${rowCount} decision rows, but ${schema}.records is empty: this schema keeps no records, so its store cannot be checked`,
          },
        ],
        total: 1,
      };
    }

    // Every row against its records (one indexed lookup per row).
    let after = "";
    for (;;) {
      const { rows } = await pool.query<Row>(
        `SELECT ${decisionSelectList("d")},
                (SELECT array_agg(r.line ORDER BY r.seq) FROM ${records} r WHERE r.decision_id = d.id) AS lines
           FROM ${decisions} d WHERE d.id > $1 AND d.at_ms >= $2 ORDER BY d.id LIMIT ${PAGE}`,
        [after, sinceMs],
      );
      for (const row of rows) {
        const lines = (row.lines ?? []).map(parseLine);
        for (const problem of rowProblems(toStoredDecision(row), lines)) add({ decisionId: row.id, problem });
        after = row.id;
      }
      if (rows.length < PAGE) break;
    }

    // Every record has its row.
    let seqAfter = 0;
    for (;;) {
      const { rows } = await pool.query<{ seq: string; type: string; decision_id: string; line: string }>(
        `SELECT r.seq, r.type, r.decision_id, r.line FROM ${records} r
          WHERE r.seq > $1 AND r.type IN ('decision', 'approval', 'rejection') AND NOT EXISTS (SELECT 1 FROM ${decisions} d WHERE d.id = r.decision_id)
          ORDER BY r.seq LIMIT ${PAGE}`,
        [seqAfter],
      );
      for (const row of rows) {
        seqAfter = Number(row.seq);
        const record = parseLine(row.line);
        const atMs = typeof record["timestamp"] === "string" ? Date.parse(record["timestamp"]) : NaN;
        if (atMs < sinceMs) continue;
        const action = (record["result"] as { action?: unknown; approval?: unknown } | undefined)?.action;
        const what =
          row.type === "decision" ? `decision record (${String(action)})` : `${row.type} record by ${String(record["reviewer_id"])}`;
        add({
          decisionId: row.decision_id,
          seq: seqAfter,
          problem: `${what} at ${String(record["timestamp"])} has no row in ${schema}.decisions${action === "deny" ? ": a deny escalation no longer counts" : ""}`,
        });
      }
      if (rows.length < PAGE) break;
    }
    return total === 0
      ? { ok: true, schema, rows: rowCount, records: recordCount }
      : { ok: false, schema, rows: rowCount, records: recordCount, mismatches, total };
  } finally {
    if (ownsPool) await pool.end();
  }
}
