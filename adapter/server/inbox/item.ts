/**
 * What the inbox shows of an approval: the JSON API's item (server.ts
 * approvalItem), as the inbox reads it. Declared here, not imported, so the
 * inbox depends on the service only through what createApprovalServer hands
 * it (no import cycle).
 */
import type { ApprovalError } from "../../common/errors.js";
import type { StoredDecision } from "../../history/store.js";
import type { Decision } from "../../common/decision.js";
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
  /** The target record's state the approval is bound to (docs/contract.md §6, record state), when one is. */
  readonly recordState?: string;
  /** For an amended approval: the decision id of the amended call. */
  readonly amendedTo?: string;
  /** For the approval of an amended call: the decision it amends, and who amended it. */
  readonly amendedFrom?: string;
  readonly amendedBy?: string;
}

/** The JSON API's amend, as the inbox's form uses it (server.ts amendAs): one rule for both. */
export type AmendAs = (
  reviewer: Reviewer,
  id: unknown,
  body: unknown,
) => Promise<
  | { readonly ok: true; readonly answer: { readonly amended: ShownItem; readonly decision: Decision } }
  | { readonly ok: false; readonly refusal: { readonly status: number; readonly code: string; readonly message: string } }
>;

/** The service's own rules, handed to the inbox so both answer alike. */
export interface ServiceRules {
  /** The item of a stored approval at `nowMs` (a pending one past its expiry shows as expired). */
  readonly itemOf: (d: StoredDecision, nowMs: number) => ShownItem;
  /** Whether the reviewer may see and answer it (a listed approver, never the actor). */
  readonly mayAnswer: (reviewer: Reviewer, d: StoredDecision) => boolean;
  /** The HTTP status of an ApprovalError code. */
  readonly statusOf: (code: string) => number;
  /** What a refusal tells the reviewer of an ApprovalError (a server failure's details stay in the log). */
  readonly publicMessage: (error: ApprovalError, status: number) => string;
  /** Amend a pending call as this reviewer (the JSON API's rules, checks and answer). */
  readonly amend: AmendAs;
}
