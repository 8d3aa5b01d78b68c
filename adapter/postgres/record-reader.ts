/**
 * Reading one decision's records back from <schema>.records, for the
 * approval check (adapter/approvals/evidence.ts): each row is kept only when
 * it sits in the chain: its line is the canonical sealed record whose hash
 * the row gives, and its prev_hash is the hash of the record before it. A
 * row someone slipped in without chaining it is left out, so the approval it
 * was meant to back is refused. (A record appended with a correct link still
 * reads as genuine: only signed checkpoints can tell it apart.)
 */
import type { Pool } from "pg";
import type { ReadRecord } from "../approvals/evidence.js";
import { GENESIS_HASH, sealRecord } from "../records/chain.js";
import { queryOnce, quoteIdent } from "./connection.js";

interface RecordRow {
  seq: string;
  prev_hash: string;
  hash: string;
  type: string;
  decision_id: string;
  line: string;
  before: string | null;
}

/** The parsed line when the row is a sealed record in its place in the chain, else undefined. */
export function chainedRecord(row: Omit<RecordRow, "before">, before: string | null): ReadRecord | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(row.line);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return undefined;
  const { seq, prev_hash: prevHash, hash, ...body } = parsed as Record<string, unknown>;
  if (seq !== Number(row.seq) || prevHash !== row.prev_hash || hash !== row.hash) return undefined;
  if (body["type"] !== row.type || body["decision_id"] !== row.decision_id) return undefined;
  if (prevHash !== (seq === 1 ? GENESIS_HASH : before)) return undefined;
  try {
    const sealed = sealRecord(body, seq, prevHash);
    if (sealed.text !== row.line || sealed.hash !== hash) return undefined;
  } catch {
    return undefined;
  }
  return parsed as ReadRecord;
}

/** The chained records of `decisionId` in chain order (one indexed query, on a connection of its own). */
export async function readDecisionRecords(pool: Pool, schema: string, decisionId: string): Promise<ReadRecord[]> {
  const table = `${quoteIdent(schema)}.records`;
  // queryOnce: the wait for a connection is bounded and a connection lost
  // mid-read is discarded; the caller (a wait) reads again later.
  const { rows } = await queryOnce<RecordRow>(
    pool,
    `SELECT r.seq, r.prev_hash, r.hash, r.type, r.decision_id, r.line, p.hash AS before
       FROM ${table} r LEFT JOIN ${table} p ON p.seq = r.seq - 1
      WHERE r.decision_id = $1 ORDER BY r.seq`,
    [decisionId],
  );
  const records: ReadRecord[] = [];
  for (const row of rows) {
    const record = chainedRecord(row, row.before);
    if (record !== undefined) records.push(record);
  }
  return records;
}
