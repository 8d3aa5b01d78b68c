/**
 * What the inbox shows of an approval: the JSON API's item (server.ts
 * approvalItem), as the inbox reads it. Declared here, not imported, so the
 * inbox depends on the service only through what createApprovalServer hands
 * it (no import cycle).
 */
import type { StoredDecision } from "../../history/store.js";
import type { Reviewer } from "../auth.js";

export type ShownStatus = "pending" | "approved" | "rejected" | "expired" | "executed" | "amended";

export interface ShownItem {
  readonly decisionId: string;
  readonly status: ShownStatus;
  readonly tool: string | null;
  readonly actorId: string | null;
  readonly tenantId: string | null;
  readonly environment: string | null;
  readonly arguments: unknown;
  readonly reasons: readonly { code: string; message: string }[];
  readonly approvers: readonly string[];
  readonly bundle: { revision: string; hash: string } | null;
  readonly recentDenies: number | null;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly reviewerId?: string;
  readonly note?: string;
  readonly answeredAt?: string;
  readonly executedAt?: string;
  /** For an amended approval: the decision id of the amended call. */
  readonly amendedTo?: string;
}

/** The service's own rules, handed to the inbox so both answer alike. */
export interface ServiceRules {
  /** The item of a stored approval at `nowMs` (a pending one past its expiry shows as expired). */
  readonly itemOf: (d: StoredDecision, nowMs: number) => ShownItem;
  /** Whether the reviewer may see and answer it (a listed approver, never the actor). */
  readonly mayAnswer: (reviewer: Reviewer, d: StoredDecision) => boolean;
  /** The HTTP status of an ApprovalError code. */
  readonly statusOf: (code: string) => number;
}
