/**
 * Which approval service announces an approval (docs/approvals.md,
 * "Notifications"): a claim per approval in <schema>.approval_notifications.
 * The first claimant wins; a claim lapses after `leaseMs` (its claimant died
 * while sending) and is then taken by the next sweep; a settled claim is
 * never taken again. Timed by the database's clock (docs/contract.md §6).
 * Shaped as the approval service's NotificationLedger.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Pool } from "pg";
import { VetoOptionsError } from "../common/errors.js";
import { DB_NOW_MS, queryOnce, quoteIdent } from "./connection.js";
import type { PostgresStore } from "./store.js";

export interface PostgresNotificationLedgerOptions {
  /** How long a claim holds before another service may take it, ms: more than one notification can take. Default 600,000. */
  readonly leaseMs?: number;
  /** Names this claimant in the table. Default: host, process id and a random suffix. */
  readonly claimant?: string;
}

export class PostgresNotificationLedger {
  readonly claimant: string;
  readonly #pool: Pool;
  readonly #claim: string;
  readonly #settle: string;
  readonly #leaseMs: number;

  constructor(store: PostgresStore, options: PostgresNotificationLedgerOptions = {}) {
    const leaseMs = options.leaseMs ?? 600_000;
    if (!(Number.isSafeInteger(leaseMs) && leaseMs > 0))
      throw new VetoOptionsError("PostgresNotificationLedger: leaseMs must be a positive integer");
    this.#leaseMs = leaseMs;
    this.claimant = options.claimant ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.#pool = store.pool;
    const table = `${quoteIdent(store.schema)}.approval_notifications`;
    this.#claim = `INSERT INTO ${table} AS n (decision_id, claimed_by, claimed_until_ms)
      VALUES ($1, $2, ${DB_NOW_MS} + $3::bigint)
      ON CONFLICT (decision_id) DO UPDATE
        SET claimed_by = EXCLUDED.claimed_by, claimed_until_ms = EXCLUDED.claimed_until_ms, claims = n.claims + 1
        WHERE n.delivered IS NULL AND n.claimed_until_ms <= ${DB_NOW_MS}
      RETURNING decision_id`;
    this.#settle = `UPDATE ${table} SET delivered = $3, settled_at_ms = ${DB_NOW_MS}
      WHERE decision_id = $1 AND claimed_by = $2 AND delivered IS NULL`;
  }

  async claim(decisionId: string): Promise<boolean> {
    const { rowCount } = await queryOnce(this.#pool, this.#claim, [decisionId, this.claimant, this.#leaseMs]);
    return rowCount === 1;
  }

  async settle(decisionId: string, delivered: boolean): Promise<void> {
    await queryOnce(this.#pool, this.#settle, [decisionId, this.claimant, delivered]);
  }
}
