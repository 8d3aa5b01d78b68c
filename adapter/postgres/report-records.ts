/**
 * Every record of <schema>.records for the policy report (`veto report
 * --postgres`): the chain is verified first (verifyPostgresLog), then the
 * verified rows are read back in seq order, each checked against the hash the
 * verification saw at its place, checkpoints left out.
 */
import type { LoggedRecord } from "../audit/replay.js";
import { checkOptions, openPool, quoteIdent, type PostgresOptions } from "./connection.js";
import { verifyPostgresLog } from "./records.js";

const PAGE = 5_000;

export type PostgresRecordsResult =
  | { readonly ok: true; readonly table: string; readonly records: LoggedRecord[] }
  | { readonly ok: false; readonly table: string; readonly reason: string };

export async function readPostgresRecords(options: PostgresOptions): Promise<PostgresRecordsResult> {
  const { schema } = checkOptions(options, "readPostgresRecords");
  const verified = await verifyPostgresLog(options);
  const table = `${schema}.records`;
  if (!verified.ok) return { ok: false, table, reason: verified.reason };
  const { pool, ownsPool, detach } = await openPool(options);
  try {
    const records: LoggedRecord[] = [];
    let after = 0;
    let lastHash = "";
    for (;;) {
      const { rows } = await pool.query<{ seq: string; hash: string; type: string; line: string }>(
        `SELECT seq, hash, type, line FROM ${quoteIdent(schema)}.records WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT ${PAGE}`,
        [after, verified.count],
      );
      for (const row of rows) {
        after = Number(row.seq);
        lastHash = row.hash;
        if (row.type === "checkpoint") continue;
        const parsed = JSON.parse(row.line) as Record<string, unknown>;
        if (parsed["hash"] !== row.hash) return { ok: false, table, reason: `seq ${row.seq}: changed after it was verified` };
        const { seq: _seq, prev_hash: _prev, hash: _hash, ...record } = parsed;
        records.push({ file: table, line: after, record });
      }
      if (rows.length < PAGE) break;
    }
    // The rows read end where the verified chain ended: nothing was replaced in between.
    if (verified.count > 0 && lastHash !== verified.head) return { ok: false, table, reason: "the chain changed while it was read" };
    return { ok: true, table, records };
  } finally {
    detach();
    if (ownsPool) await pool.end();
  }
}
