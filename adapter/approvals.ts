/**
 * Approvals (contract section 6): answering a require_approval decision and
 * waiting for the answer. The store's compare-and-set makes the first answer
 * win; an answer is reserved, recorded, and only then committed, so no
 * approval takes effect without its record.
 */
import type { Logger } from "pino";
import { DECISION_ENTRYPOINT } from "./bundle.js";
import type { BundleVersion } from "./decision.js";
import { ApprovalError, VetoOptionsError, toError } from "./errors.js";
import type { VetoCall } from "./input.js";
import { RECORD_BUNDLE_NAME, type ApprovalEventRecord, type RecordSink } from "./records.js";
import type { StoredDecision, VetoStore } from "./store.js";
import { safeLog } from "./safe-log.js";
import { isBlank } from "./text.js";
import { runUnit } from "./unit.js";

export interface AnswerOptions {
  readonly decisionId: string;
  readonly reviewerId: string;
  readonly note?: string;
}

export interface WaitOptions {
  readonly decisionId: string;
  /** Give up after this long (rejects with code approval_timeout). Default: wait until the approval expires. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /** When given, the approval must be for exactly this call (else code call_mismatch). */
  readonly call?: { readonly tool: unknown; readonly arguments: unknown; readonly context: unknown };
}

export interface ApprovalAnswer {
  readonly decisionId: string;
  readonly status: "approved" | "rejected";
  readonly reviewerId: string;
  readonly note?: string;
  /** ISO 8601 UTC. */
  readonly answeredAt: string;
}

export interface ApprovalDeskDeps {
  readonly store: VetoStore;
  readonly sink: RecordSink;
  readonly clock: () => number;
  readonly bundle: BundleVersion;
  readonly pollMs: number;
  readonly log: Logger;
  /** The digest an approval is bound to: the records' RecordMasker.callDigest (keyed when records are). */
  readonly callDigest: (call: Pick<VetoCall, "tool" | "arguments" | "context">) => string;
}

function requireString(value: unknown, name: string, method: string): string {
  if (typeof value !== "string" || isBlank(value)) {
    throw new VetoOptionsError(`${method}: ${name} must be a non-empty string`);
  }
  return value;
}

export class ApprovalDesk {
  readonly #deps: ApprovalDeskDeps;
  readonly #waiters = new Set<(error: Error) => void>();
  #closedWith: Error | undefined;

  constructor(deps: ApprovalDeskDeps) {
    this.#deps = deps;
  }

  async answer(kind: "approval" | "rejection", options: AnswerOptions): Promise<ApprovalAnswer> {
    const method = kind === "approval" ? "approve" : "reject";
    if (options === null || typeof options !== "object") {
      throw new VetoOptionsError(`${method}: pass { decisionId, reviewerId, note? }`);
    }
    const decisionId = requireString(options.decisionId, "decisionId", method);
    const reviewerId = requireString(options.reviewerId, "reviewerId", method);
    if (options.note !== undefined && typeof options.note !== "string") {
      throw new VetoOptionsError(`${method}: note must be a string when given`);
    }
    const { store, clock } = this.#deps;
    const decision = await this.#approvable(decisionId);
    if (reviewerId === decision.actorId) {
      throw new ApprovalError("self_approval", decisionId, `${reviewerId} made the call and cannot answer its own approval`);
    }
    if (!decision.approvers.includes(reviewerId)) {
      throw new ApprovalError(
        "not_an_approver",
        decisionId,
        `${reviewerId} is not among this decision's approvers (${decision.approvers.join(", ")})`,
      );
    }
    const nowMs = clock();
    await this.#refuseIfSettled(decision, nowMs);

    // Reserve, record, settle: one unit, so with a transactional store the
    // reservation is never seen by others and a crash leaves the approval
    // pending with no record (a concurrent answer waits on the row, then
    // finds it settled).
    const status: "approved" | "rejected" = kind === "approval" ? "approved" : "rejected";
    let started = false;
    return await runUnit(store, this.#deps.sink, undefined, async (unit) => {
      started = true;
      // The time of the answer is read again here, where the reservation is
      // made: the store refuses to reserve a pending approval at or after its
      // expiry, so no answer commits after expiresAtMs however long the unit
      // took to start.
      const atMs = clock();
      const reserved = await unit.transitionApproval(decisionId, { from: "pending", to: "answering", reviewerId, atMs });
      if (!reserved) {
        const again = await store.getDecision(decisionId);
        if (again !== undefined) await this.#refuseIfSettled(again, atMs);
        throw new ApprovalError("already_answered", decisionId, `decision ${decisionId} is already being answered`);
      }

      const record: ApprovalEventRecord = {
        type: kind,
        decision_id: decisionId,
        timestamp: new Date(atMs).toISOString(),
        path: DECISION_ENTRYPOINT,
        bundles: { [RECORD_BUNDLE_NAME]: this.#deps.bundle },
        actor_id: decision.actorId ?? null,
        tenant_id: decision.tenantId ?? null,
        call_digest: decision.callDigest ?? null,
        reviewer_id: reviewerId,
        note: options.note ?? null,
        result: { approval: status },
      };
      try {
        await unit.writeRecord(record);
      } catch (error) {
        // A transactional unit is already rolled back (the reservation with it).
        if (unit.transaction === undefined) {
          await store.transitionApproval(decisionId, { from: "answering", to: "pending", atMs });
        }
        safeLog(this.#deps.log, { err: toError(error), decision_id: decisionId }, `${kind} record could not be written`);
        throw new ApprovalError(
          "record_unavailable",
          decisionId,
          `the ${kind} was refused because its record could not be written: ${toError(error).message}`,
          { cause: toError(error) },
        );
      }
      try {
        await unit.transitionApproval(decisionId, {
          from: "answering",
          to: status,
          reviewerId,
          ...(options.note === undefined ? {} : { note: options.note }),
          atMs,
        });
        await unit.commit();
      } catch (error) {
        safeLog(this.#deps.log, { err: toError(error), decision_id: decisionId }, `${kind} could not be stored`);
        throw new ApprovalError("record_unavailable", decisionId, `the ${kind} could not be stored: ${toError(error).message}`, {
          cause: toError(error),
        });
      }
      return {
        decisionId,
        status,
        reviewerId,
        ...(options.note === undefined ? {} : { note: options.note }),
        answeredAt: record.timestamp,
      };
    }).catch((error: unknown): never => {
      if (started) throw error;
      // The store could not give a unit (no connection, BEGIN failed): refused, naming why.
      const cause = toError(error);
      safeLog(this.#deps.log, { err: cause, decision_id: decisionId }, `${kind} could not be stored`);
      throw new ApprovalError("record_unavailable", decisionId, `the ${kind} could not be stored: ${cause.message}`, { cause });
    });
  }

  async wait(options: WaitOptions): Promise<ApprovalAnswer> {
    if (options === null || typeof options !== "object") {
      throw new VetoOptionsError("waitForApproval: pass { decisionId, timeoutMs?, signal? }");
    }
    const decisionId = requireString(options.decisionId, "decisionId", "waitForApproval");
    const { timeoutMs, signal } = options;
    if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs >= 0)) {
      throw new VetoOptionsError("waitForApproval: timeoutMs must be a non-negative number of milliseconds");
    }
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new VetoOptionsError("waitForApproval: signal must be an AbortSignal");
    }
    const aborted = (): ApprovalError =>
      new ApprovalError("approval_aborted", decisionId, `waiting for approval of ${decisionId} was aborted`, {
        cause: signal?.reason,
      });
    if (signal?.aborted) throw aborted();

    const decision = await this.#approvable(decisionId);
    if (options.call !== undefined && this.#deps.callDigest(options.call as VetoCall) !== decision.callDigest) {
      throw new ApprovalError("call_mismatch", decisionId, `the approval of ${decisionId} is for a different call`);
    }

    return await new Promise<ApprovalAnswer>((resolve, reject) => {
      let settled = false;
      const timers: NodeJS.Timeout[] = [];
      let poll: NodeJS.Timeout | undefined;
      let unwatch = (): void => {};
      const finish = (error: Error | undefined, answer?: ApprovalAnswer): void => {
        if (settled) return;
        settled = true;
        for (const t of timers) clearTimeout(t);
        clearInterval(poll);
        unwatch();
        signal?.removeEventListener("abort", onAbort);
        this.#waiters.delete(onClose);
        if (error === undefined) resolve(answer!);
        else reject(error);
      };
      const onAbort = (): void => finish(aborted());
      const onClose = (error: Error): void => finish(error);
      const check = (): void => {
        this.#settledOutcome(decisionId).then(
          (outcome) => {
            if (outcome !== undefined) finish(outcome.error, outcome.answer);
          },
          (error: unknown) => finish(toError(error)),
        );
      };

      if (this.#closedWith !== undefined) {
        reject(this.#closedWith);
        return;
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(onClose);
      unwatch = this.#deps.store.watchDecision(decisionId, check);
      // Polling covers stores that cannot notify and clocks that move without timers.
      poll = setInterval(check, this.#deps.pollMs);
      poll.unref();
      if (timeoutMs !== undefined) {
        timers.push(
          setTimeout(
            () => finish(new ApprovalError("approval_timeout", decisionId, `no answer for ${decisionId} within ${timeoutMs} ms`)),
            timeoutMs,
          ),
        );
      }
      const untilExpiry = (decision.approval?.expiresAtMs ?? 0) - this.#deps.clock();
      timers.push(setTimeout(check, Math.max(0, Math.min(untilExpiry + 1, 2 ** 31 - 1))));
      check();
    });
  }

  /** Reject every pending wait, and every wait started from now on (used by close()). */
  abortAll(error: Error): void {
    this.#closedWith = error;
    for (const waiter of [...this.#waiters]) waiter(error);
  }

  async #approvable(decisionId: string): Promise<StoredDecision> {
    const decision = await this.#deps.store.getDecision(decisionId);
    if (decision === undefined) {
      throw new ApprovalError("unknown_decision", decisionId, `no decision ${decisionId} is known to this store`);
    }
    if (decision.action !== "require_approval" || decision.approval === undefined) {
      throw new ApprovalError(
        "approval_not_required",
        decisionId,
        `decision ${decisionId} was ${decision.action}, not require_approval`,
      );
    }
    return decision;
  }

  /** Throws when the approval can no longer be answered; expires it when its time is up. */
  async #refuseIfSettled(decision: StoredDecision, nowMs: number): Promise<void> {
    const approval = decision.approval!;
    if (approval.status === "pending" && nowMs >= approval.expiresAtMs) {
      await this.#deps.store.transitionApproval(decision.id, { from: "pending", to: "expired", atMs: nowMs });
      throw new ApprovalError("approval_expired", decision.id, `the approval of ${decision.id} expired at ${new Date(approval.expiresAtMs).toISOString()}`);
    }
    if (approval.status === "expired") {
      throw new ApprovalError("approval_expired", decision.id, `the approval of ${decision.id} expired at ${new Date(approval.expiresAtMs).toISOString()}`);
    }
    if (approval.status !== "pending") {
      throw new ApprovalError(
        "already_answered",
        decision.id,
        `decision ${decision.id} was already answered (${approval.status}${approval.reviewerId === undefined ? "" : ` by ${approval.reviewerId}`})`,
      );
    }
  }

  /** The wait's outcome if the approval is settled (or now expired), else undefined. */
  async #settledOutcome(decisionId: string): Promise<{ error?: Error; answer?: ApprovalAnswer } | undefined> {
    const decision = await this.#approvable(decisionId);
    const approval = decision.approval!;
    switch (approval.status) {
      case "approved":
        return {
          answer: {
            decisionId,
            status: "approved",
            reviewerId: approval.reviewerId ?? "",
            ...(approval.note === undefined ? {} : { note: approval.note }),
            answeredAt: new Date(approval.answeredAtMs ?? 0).toISOString(),
          },
        };
      case "rejected":
        return {
          error: new ApprovalError(
            "approval_rejected",
            decisionId,
            `the call was rejected by ${approval.reviewerId ?? "a reviewer"}${approval.note === undefined ? "" : `: ${approval.note}`}`,
          ),
        };
      case "expired":
        return { error: new ApprovalError("approval_expired", decisionId, `the approval of ${decisionId} expired`) };
      case "pending":
      case "answering": {
        const nowMs = this.#deps.clock();
        if (nowMs < approval.expiresAtMs) return undefined;
        if (approval.status === "pending") {
          await this.#deps.store.transitionApproval(decisionId, { from: "pending", to: "expired", atMs: nowMs });
        }
        return { error: new ApprovalError("approval_expired", decisionId, `the approval of ${decisionId} expired`) };
      }
    }
  }
}
