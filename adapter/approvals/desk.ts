/**
 * Approvals (docs/contract.md §6): answering a require_approval decision and
 * waiting for the answer. The store's compare-and-set makes the first answer
 * win; an answer is reserved, recorded, and only then committed, so no
 * approval takes effect without its record.
 */
import type { Logger } from "pino";
import type { RecordStateCall, RecordStateReading } from "./record-state.js";
import { approvalProblem, type ReadRecord, type RecordReader } from "./evidence.js";
import { DECISION_ENTRYPOINT } from "../policy/bundle.js";
import type { BundleVersion, Decision } from "../common/decision.js";
import { deepFreeze } from "../call/input.js";
import { ApprovalError, CanonicalJsonError, VetoOptionsError, toError } from "../common/errors.js";
import type { VetoCall } from "../call/input.js";
import {
  RECORD_BUNDLE_NAME,
  type AmendmentEventRecord,
  type ApprovalEventRecord,
  type ExecutionEventRecord,
  type RecordSink,
  type VetoRecord,
} from "../records/records.js";
import type { StoredDecision, VetoStore } from "../history/store.js";
import { safeLog } from "../common/logger.js";
import { isBlank } from "../common/text.js";
import { loneSurrogateAt } from "../common/canonical-json.js";
import { runUnit, type DecisionUnit } from "../history/unit.js";

export interface AnswerOptions {
  readonly decisionId: string;
  readonly reviewerId: string;
  readonly note?: string;
}

export interface AmendOptions {
  readonly decisionId: string;
  readonly reviewerId: string;
  /** The call's arguments as amended: the whole arguments object, which replaces the original's. */
  readonly arguments: unknown;
  readonly note?: string;
}

/** The call an amendment decides: the original's tool and context, the amended arguments. */
export interface AmendedCall {
  readonly tool: string;
  readonly arguments: unknown;
  readonly context: unknown;
}

export interface WaitOptions {
  readonly decisionId: string;
  /** Give up after this long (rejects with code approval_timeout). Default: wait until the approval expires. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /**
   * When given, the approval must be for exactly this call (else code
   * call_mismatch), and the wait claims it for execution (use-once,
   * docs/contract.md §6): approved -> executed in the store, with an
   * execution record, before it resolves. A second claim of the same approval
   * is refused with code already_executed (and recorded). At most once: a
   * crash between the claim and the call's side effect loses the call.
   */
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
  /**
   * The store's clock, when it has one (VetoStore.now): then it, not `clock`,
   * says when an approval expires and when an answer was given
   * (docs/contract.md §6: one clock for every instance on the store).
   */
  readonly storeClock?: () => Promise<number>;
  readonly bundle: BundleVersion;
  readonly pollMs: number;
  readonly log: Logger;
  /** The digest an approval is bound to: the records' RecordMasker.callDigest (keyed when records are). */
  readonly callDigest: (call: Pick<VetoCall, "tool" | "arguments" | "context">) => string;
  /** Where an approval's records are read back from (see approval-evidence.ts). */
  readonly records: RecordReader;
  /**
   * Called with each answer and execution record once the sink has it (feeds
   * `records` when the sink cannot be read); an answer's before its store
   * change commits. Returns what forgets it, for an answer that then fails.
   */
  readonly written: (record: VetoRecord) => () => void;
  /**
   * The application's recordState, asked within its timeout (never throws):
   * where an approved call bound to a record state executes, it is asked
   * again (docs/contract.md §6). Absent when the instance has none.
   */
  readonly recordState?: (call: RecordStateCall) => Promise<RecordStateReading>;
}

function answerOf(
  decisionId: string,
  status: "approved" | "rejected",
  reviewerId: string,
  note: string | undefined,
  answeredAt: string,
): ApprovalAnswer {
  return { decisionId, status, reviewerId, ...(note === undefined ? {} : { note }), answeredAt };
}

/** The fields every answer and execution record of `decision` shares, at `atMs`, for `reviewerId`. */
function eventFields(decision: StoredDecision, atMs: number, bundle: BundleVersion, reviewerId: string) {
  return {
    decision_id: decision.id,
    timestamp: new Date(atMs).toISOString(),
    path: DECISION_ENTRYPOINT,
    bundles: { [RECORD_BUNDLE_NAME]: bundle },
    actor_id: decision.actorId ?? null,
    tenant_id: decision.tenantId ?? null,
    call_digest: decision.callDigest ?? null,
    reviewer_id: reviewerId,
  };
}

/** The refusal of an approval whose time is up; naming when, where the time is known. */
function expiredError(decisionId: string, expiresAtMs?: number): ApprovalError {
  const when = expiresAtMs === undefined ? "" : ` at ${new Date(expiresAtMs).toISOString()}`;
  return new ApprovalError("approval_expired", decisionId, `the approval of ${decisionId} expired${when}`);
}

function requireString(value: unknown, name: string, method: string): string {
  if (typeof value !== "string" || isBlank(value)) {
    throw new VetoOptionsError(`${method}: ${name} must be a non-empty string`);
  }
  return requireRecordable(value, name, method);
}

/**
 * A string an answer's record holds: text with a UTF-8 form. A lone
 * surrogate has none, so its record could not be written; refused before
 * anything is reserved or recorded, naming where.
 */
function requireRecordable(value: string, name: string, method: string): string {
  const at = loneSurrogateAt(value);
  if (at >= 0) {
    throw new VetoOptionsError(
      `${method}: ${name} holds a lone surrogate (code unit ${at}), which no record can hold: send well-formed text`,
    );
  }
  return value;
}

/** An answer's optional note: a string with a UTF-8 form when given. */
function optionalNote(value: unknown, method: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string") throw new VetoOptionsError(`${method}: note must be a string when given`);
  return requireRecordable(value, "note", method);
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
    optionalNote(options.note, method);
    const { store, clock } = this.#deps;
    const decision = await this.#storeCall(kind, decisionId, () => this.#approvable(decisionId));
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
    await this.#storeCall(kind, decisionId, async () => this.#refuseIfSettled(decision, await this.#now()));

    // Reserve, record, settle: one unit, so with a transactional store the
    // reservation is never seen by others and a crash leaves the approval
    // pending with no record (a concurrent answer waits on the row, then
    // finds it settled).
    const status: "approved" | "rejected" = kind === "approval" ? "approved" : "rejected";
    return await runUnit(store, this.#deps.sink, undefined, async (unit) => {
      // The time of the answer is read again here, where the reservation is
      // made (by the store's clock when it has one: the unit's), and the
      // store refuses to reserve a pending approval at or after its expiry,
      // so no answer commits after expiresAtMs however long the unit took to
      // start.
      const atMs = unit.nowMs ?? clock();
      const reserved = await unit.transitionApproval(decisionId, { from: "pending", to: "answering", reviewerId, atMs });
      if (!reserved) {
        // Why not: read in the unit, then end it before touching the store
        // again, so this answer never holds one connection while asking the
        // pool for another (a burst of answers would take every connection).
        const again = await unit.getDecision(decisionId);
        await unit.rollback();
        if (again?.approval?.status === "pending") {
          // Pending but not reservable: the store's clock says it has expired
          // (so it is, whether or not that can be written down now).
          await store.transitionApproval(decisionId, { from: "pending", to: "expired", atMs }).catch(() => false);
          throw expiredError(decisionId, again.approval.expiresAtMs);
        }
        if (again !== undefined) await this.#refuseIfSettled(again, atMs);
        throw new ApprovalError("already_answered", decisionId, `decision ${decisionId} is already being answered`);
      }

      const record: ApprovalEventRecord = {
        type: kind,
        ...eventFields(decision, atMs, this.#deps.bundle, reviewerId),
        note: options.note ?? null,
        result: { approval: status },
      };
      let forget: () => void;
      try {
        await unit.writeRecord(record);
        // Known before the answer commits: a waiter that sees the approval finds its record.
        forget = this.#deps.written(record);
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
        // A COMMIT whose connection broke may have committed all the same:
        // read what the store holds (the unit's connection is gone by now).
        let read = true;
        const settled = await store.getDecision(decisionId).catch(() => {
          read = false;
          return undefined;
        });
        const held = settled?.approval;
        if (held?.status === status && held.reviewerId === reviewerId && held.answeredAtMs === atMs) {
          return answerOf(decisionId, status, reviewerId, options.note, record.timestamp);
        }
        // Known not to have committed: its record backs nothing. Unknown: kept, as the sink keeps it.
        if (read) forget();
        throw this.#unstored(kind, decisionId, error);
      }
      return answerOf(decisionId, status, reviewerId, options.note, record.timestamp);
    }).catch((error: unknown): never => {
      if (error instanceof ApprovalError) throw error;
      // The store could not give a unit (no connection, BEGIN failed) or lost
      // it (a terminated backend, a failover): refused, naming why.
      throw this.#unstored(kind, decisionId, error);
    });
  }

  /**
   * Amend a pending call (docs/contract.md §6, amend): the same checks as an
   * answer (a listed approver, never the actor, once, before expiry), and
   * `check` (the input contract: an amended call that breaks it is refused
   * with VetoOptionsError and nothing changes), then the approval is
   * reserved, `decide` makes the amended call's decision (recorded
   * and stored before it returns), and the original ends "amended" with its
   * amendment record naming the new decision. A failure before the amendment
   * is settled leaves the original pending (the new decision, if made, stays
   * on record, linked to nothing that can run).
   */
  async amend(
    options: AmendOptions,
    decide: (original: StoredDecision, call: AmendedCall) => Promise<Decision>,
    check?: (call: AmendedCall) => string | undefined,
  ): Promise<Decision> {
    const method = "amend";
    if (options === null || typeof options !== "object") {
      throw new VetoOptionsError(`${method}: pass { decisionId, reviewerId, arguments, note? }`);
    }
    const decisionId = requireString(options.decisionId, "decisionId", method);
    const reviewerId = requireString(options.reviewerId, "reviewerId", method);
    optionalNote(options.note, method);
    const args = options.arguments;
    if (args === null || typeof args !== "object" || Array.isArray(args)) {
      throw new VetoOptionsError(`${method}: arguments must be the amended call's arguments object`);
    }
    const { store, clock } = this.#deps;
    const original = await this.#storeCall("approval", decisionId, () => this.#approvable(decisionId));
    if (reviewerId === original.actorId) {
      throw new ApprovalError("self_approval", decisionId, `${reviewerId} made the call and cannot amend it`);
    }
    if (!original.approvers.includes(reviewerId)) {
      throw new ApprovalError(
        "not_an_approver",
        decisionId,
        `${reviewerId} is not among this decision's approvers (${original.approvers.join(", ")})`,
      );
    }
    const atFirst = await this.#storeCall("approval", decisionId, () => this.#now());
    await this.#refuseIfSettled(original, atFirst);
    const context = original.review?.context;
    const tool = original.review?.tool;
    if (context === undefined || tool === undefined || tool === "") {
      throw new ApprovalError(
        "not_amendable",
        decisionId,
        `decision ${decisionId} was stored without the context an amendment is decided with`,
      );
    }
    // A call that breaks the input contract is the amender's mistake to correct, not a decision: refused
    // with what to fix, and the approval left pending (decided, it would be an invalid_input deny that
    // used up the approval).
    const notValid = (why: string) => new VetoOptionsError(`${method}: the amended call is not valid input: ${why}`);
    const invalid = check?.({ tool, arguments: args, context });
    if (invalid !== undefined) throw notValid(invalid);
    // Reserved as an answer is: no approval or second amendment can come in between.
    const reservedAt = await this.#storeCall("approval", decisionId, () => this.#now());
    const reserved = await this.#storeCall("approval", decisionId, () =>
      store.transitionApproval(decisionId, { from: "pending", to: "answering", reviewerId, atMs: reservedAt }),
    );
    if (!reserved) {
      const again = await this.#storeCall("approval", decisionId, async () => await store.getDecision(decisionId));
      if (again !== undefined) await this.#refuseIfSettled(again, reservedAt);
      throw new ApprovalError("already_answered", decisionId, `decision ${decisionId} is already being answered`);
    }
    const release = (): Promise<unknown> =>
      store.transitionApproval(decisionId, { from: "answering", to: "pending", atMs: clock() }).catch(() => false);
    let amended: Decision;
    try {
      amended = await decide(original, { tool, arguments: args, context });
    } catch (error) {
      await release();
      throw error;
    }
    // The check above and the decision read the call and the bundle apart (a reload, or getters, between
    // them): an amended call its decision found not valid is refused the same way, the original left pending.
    const invalidReason = amended.action === "deny" ? amended.reasons.find((r) => r.code === "invalid_input") : undefined;
    if (invalidReason !== undefined) {
      await release();
      throw notValid(invalidReason.message);
    }
    try {
      await runUnit(store, this.#deps.sink, undefined, async (unit) => {
        const atMs = unit.nowMs ?? clock();
        const record: AmendmentEventRecord = {
          type: "amendment",
          ...eventFields(original, atMs, this.#deps.bundle, reviewerId),
          note: options.note ?? null,
          amended_to: amended.id,
          result: { approval: "amended" },
        };
        await unit.writeRecord(record);
        this.#deps.written(record);
        const moved = await unit.transitionApproval(decisionId, {
          from: "answering",
          to: "amended",
          reviewerId,
          ...(options.note === undefined ? {} : { note: options.note }),
          atMs,
          amendedTo: amended.id,
        });
        if (!moved) throw new Error(`decision ${decisionId} was no longer reserved for the amendment`);
        await unit.commit();
      });
    } catch (error) {
      if (store.unit === undefined || (await store.getDecision(decisionId).catch(() => undefined))?.approval?.status === "answering") {
        await release();
      }
      throw this.#unstored("approval", decisionId, error);
    }
    return amended;
  }

  /**
   * The digest of a call a caller hands to waitForApproval, or null when it
   * has no canonical JSON form (a Date, a cycle, a lone surrogate...): such a
   * call is not the one protect() decided, so it matches no approval.
   */
  #digestOrNull(call: VetoCall): string | null {
    try {
      return this.#deps.callDigest(call);
    } catch (error) {
      if (error instanceof CanonicalJsonError) return null;
      throw error;
    }
  }

  /** The store's clock when it has one, else the instance's. */
  async #now(): Promise<number> {
    return this.#deps.storeClock === undefined ? this.#deps.clock() : await this.#deps.storeClock();
  }

  /** A store read or write before an answer's unit: its failure (not a refusal) is a record_unavailable refusal. */
  async #storeCall<T>(kind: "approval" | "rejection", decisionId: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (error instanceof ApprovalError) throw error;
      throw this.#unstored(kind, decisionId, error);
    }
  }

  /** An answer the store could not take (logged): a record_unavailable refusal naming why. */
  #unstored(kind: "approval" | "rejection", decisionId: string, error: unknown): ApprovalError {
    const cause = toError(error);
    safeLog(this.#deps.log, { err: cause, decision_id: decisionId }, `${kind} could not be stored`);
    return new ApprovalError("record_unavailable", decisionId, `the ${kind} could not be stored: ${cause.message}`, { cause });
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

    const unreadable = (error: unknown): ApprovalError => {
      const cause = toError(error);
      return new ApprovalError("record_unavailable", decisionId, `the approval of ${decisionId} cannot be read: ${cause.message}`, {
        cause,
      });
    };
    let decision: StoredDecision;
    let startedAtMs: number;
    try {
      decision = await this.#approvable(decisionId);
      startedAtMs = await this.#now();
    } catch (error) {
      throw error instanceof ApprovalError ? error : unreadable(error);
    }
    if (options.call !== undefined && this.#digestOrNull(options.call as VetoCall) !== decision.callDigest) {
      throw new ApprovalError("call_mismatch", decisionId, `the approval of ${decisionId} is for a different call`);
    }
    // When the approval expires, measured on this process's monotonic clock
    // from the store's time now: the expiry timer, and how long a store that
    // cannot be read is waited for.
    const untilExpiry = (decision.approval?.expiresAtMs ?? 0) - startedAtMs;
    const expiresAt = performance.now() + untilExpiry;

    const answer = await new Promise<ApprovalAnswer>((resolve, reject) => {
      let settled = false;
      /** Why the last check could not read the store or the records, until one can again. */
      let unread: unknown;
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
      const check = (): Promise<void> =>
        this.#settledOutcome(decisionId).then(
          (outcome) => {
            unread = undefined;
            if (outcome !== undefined) finish(outcome.error, outcome.answer);
          },
          (error: unknown) => {
            if (error instanceof ApprovalError) {
              finish(error);
              return;
            }
            // The store or the records could not be read (a lost connection,
            // a failover): that says nothing about the approval, so try again
            // at the next poll or notification, until the approval's time is
            // up; after that nothing can approve it, and the wait ends,
            // failing closed (docs/contract.md §9, a wait that cannot read).
            unread = error;
            if (performance.now() >= expiresAt) finish(unreadable(error));
            else safeLog(this.#deps.log, { err: toError(error), decision_id: decisionId }, "approval could not be read; trying again");
          },
        );

      if (this.#closedWith !== undefined) {
        reject(this.#closedWith);
        return;
      }
      // An abort while the decision was being read (after the check at the
      // start) fired before this listener existed: it must end the wait too.
      if (signal?.aborted) {
        reject(aborted());
        return;
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(onClose);
      unwatch = this.#deps.store.watchDecision(decisionId, () => void check());
      // Polling covers stores that cannot notify and clocks that move without timers.
      poll = setInterval(() => void check(), this.#deps.pollMs);
      poll.unref();
      const firstRead = check();
      if (timeoutMs !== undefined) {
        // A timeout never ends the wait before the store was read once: a
        // short timeout (0: "is it answered now?", what a resumed agent run
        // asks) gets the answer already given, on any store however slow.
        timers.push(
          setTimeout(
            () =>
              void firstRead.then(() =>
                finish(
                  // Out of time while the approval could not be read: say so, not "no answer".
                  unread !== undefined
                    ? unreadable(unread)
                    : new ApprovalError("approval_timeout", decisionId, `no answer for ${decisionId} within ${timeoutMs} ms`),
                ),
              ),
            timeoutMs,
          ),
        );
      }
      timers.push(setTimeout(() => void check(), Math.max(0, Math.min(untilExpiry + 1, 2 ** 31 - 1))));
    });
    if (options.call === undefined) return answer;
    await this.#checkRecordState(decision, answer, options.call as VetoCall);
    return await this.#claim(decision, answer);
  }

  /**
   * Record state (docs/contract.md §6): an approval bound to the state of its
   * target record runs only while the record is still in it. Asked before the
   * claim, so a refusal leaves the approval unclaimed; a state that changed,
   * could not be read (a function that throws, answers no string, is too
   * slow, or an instance without one) is refused as record_changed, and the
   * refusal is recorded (an execution record, "refused", reason
   * record_changed) before the error is thrown. Nothing runs.
   */
  async #checkRecordState(decision: StoredDecision, answer: ApprovalAnswer, call: VetoCall): Promise<void> {
    const bound = decision.recordState;
    if (bound === undefined) return;
    const ask = this.#deps.recordState;
    const reading: RecordStateReading =
      ask === undefined ? { ok: false, problem: "this instance has no recordState to read it with" } : await ask(call);
    if (reading.ok && reading.state === bound) return;
    const why = reading.ok
      ? reading.state === undefined
        ? "recordState now gives no state"
        : `the record is now in state ${JSON.stringify(reading.state)}`
      : reading.problem;
    const decisionId = decision.id;
    const record: ExecutionEventRecord = {
      type: "execution",
      ...eventFields(decision, await this.#now().catch(() => this.#deps.clock()), this.#deps.bundle, answer.reviewerId),
      result: { execution: "refused", reason: "record_changed" },
      record_state: reading.ok ? (reading.state ?? null) : null,
    };
    await this.#deps.sink.write(record).then(
      () => this.#deps.written(record),
      (error: unknown) =>
        safeLog(this.#deps.log, { err: toError(error), decision_id: decisionId }, "record_changed refusal could not be recorded"),
    );
    safeLog(this.#deps.log, { decision_id: decisionId, problem: why }, "approved call refused: its record changed");
    throw new ApprovalError(
      "record_changed",
      decisionId,
      `the call approved in ${decisionId} was approved with its record in state ${JSON.stringify(bound)}, but ${why}; it does not run`,
    );
  }

  /**
   * The use-once claim (docs/contract.md §6): approved -> executed by
   * compare-and-set, with its execution record, before the call runs. With
   * records in the store's transaction the record is written first and both
   * commit together; otherwise the claim is made first, so a record that
   * cannot be written loses the call (never runs it twice, never runs it
   * unrecorded). A claim that finds the approval claimed already is refused
   * with already_executed, and that refusal is recorded too.
   */
  async #claim(decision: StoredDecision, answer: ApprovalAnswer): Promise<ApprovalAnswer> {
    await this.#claimOnce(
      decision,
      answer.reviewerId,
      (unit, atMs) => unit.transitionApproval(decision.id, { from: "approved", to: "executed", atMs }),
      {
        unclaimed: `the approval of ${decision.id} could not be claimed for execution`,
        claimedBefore: `the approved call ${decision.id} was already claimed for execution; it runs at most once`,
      },
    );
    return answer;
  }

  /**
   * One use-once claim, by `claim` (a compare-and-set in the unit), with its
   * execution record by `reviewerId`: in the store's transaction the record
   * first (both commit together); otherwise the claim first, so a record that
   * cannot be written loses the call (never runs it twice, never unrecorded).
   * A claim that finds it claimed already is refused with already_executed
   * (`claimedBefore`), and that refusal is recorded; any other failure is
   * record_unavailable (`unclaimed`: why).
   */
  async #claimOnce(
    decision: StoredDecision,
    reviewerId: string,
    claim: (unit: DecisionUnit, atMs: number) => Promise<boolean>,
    messages: { unclaimed: string; claimedBefore: string },
  ): Promise<void> {
    const { store, sink, clock } = this.#deps;
    const decisionId = decision.id;
    const recordOf = (atMs: number, execution: "claimed" | "refused"): ExecutionEventRecord => ({
      type: "execution",
      ...eventFields(decision, atMs, this.#deps.bundle, reviewerId),
      result: { execution },
    });
    let refusedAt: number | undefined;
    const claimed = await runUnit(store, sink, undefined, async (unit) => {
      const atMs = unit.nowMs ?? clock();
      const record = recordOf(atMs, "claimed");
      if (unit.recordsInTransaction) await unit.writeRecord(record);
      if (!(await claim(unit, atMs))) {
        await unit.rollback();
        refusedAt = atMs;
        return false;
      }
      await unit.commit();
      if (!unit.recordsInTransaction) await unit.writeRecord(record);
      this.#deps.written(record);
      return true;
    }).catch((error: unknown): never => {
      if (error instanceof ApprovalError) throw error;
      const cause = toError(error);
      safeLog(this.#deps.log, { err: cause, decision_id: decisionId }, "the call could not be claimed; it does not run");
      throw new ApprovalError("record_unavailable", decisionId, `${messages.unclaimed}: ${cause.message}`, { cause });
    });
    if (claimed) return;
    const record = recordOf(refusedAt ?? clock(), "refused");
    await sink.write(record).then(
      () => this.#deps.written(record),
      (error: unknown) => safeLog(this.#deps.log, { err: toError(error), decision_id: decisionId }, "refused claim could not be recorded"),
    );
    throw new ApprovalError("already_executed", decisionId, messages.claimedBefore);
  }

  /**
   * The use-once claim of an amended call the policy allowed (docs/contract.md
   * §6, amend and use once): it has no approval to move, so the store sets its
   * execution time once (VetoStore.claimExecution), with its execution record
   * ("claimed", by the amender) as an approval's claim has; a second claim is
   * refused with already_executed, and recorded. Call it only with the
   * amended call `waitForApproval` handed over (code "amended"), whose
   * decision record it checked.
   */
  async claimAllowedAmendment(decisionId: string): Promise<void> {
    const { store } = this.#deps;
    const decision = await this.#storeCall("approval", decisionId, () => store.getDecision(decisionId));
    if (decision?.action !== "allow" || decision.amendment === undefined) {
      throw new ApprovalError("approval_unverified", decisionId, `decision ${decisionId} is not an allowed amended call`);
    }
    await this.#claimOnce(decision, decision.amendment.by, (unit, atMs) => unit.claimExecution(decisionId, atMs), {
      unclaimed: `the amended call ${decisionId} could not be claimed`,
      claimedBefore: `the amended call ${decisionId} was already claimed for execution; it runs at most once`,
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
      throw new ApprovalError("approval_not_required", decisionId, `decision ${decisionId} was ${decision.action}, not require_approval`);
    }
    return decision;
  }

  /** Throws when the approval can no longer be answered; expires it when its time is up. */
  async #refuseIfSettled(decision: StoredDecision, nowMs: number): Promise<void> {
    const approval = decision.approval!;
    if (approval.status === "pending" && nowMs >= approval.expiresAtMs) {
      await this.#deps.store.transitionApproval(decision.id, { from: "pending", to: "expired", atMs: nowMs }).catch(() => false);
      throw expiredError(decision.id, approval.expiresAtMs);
    }
    if (approval.status === "expired") throw expiredError(decision.id, approval.expiresAtMs);
    if (approval.status !== "pending") {
      throw new ApprovalError(
        "already_answered",
        decision.id,
        `decision ${decision.id} was already answered (${approval.status}${approval.reviewerId === undefined ? "" : ` by ${approval.reviewerId}`})`,
      );
    }
  }

  /**
   * The one place an approval is accepted (waitForApproval, guard and every
   * integration built on them): only when the records back what the store
   * shows (evidence.ts), else refused as approval_unverified and logged. The
   * store alone is not evidence: whoever can write its tables could have
   * written the row. Records that cannot be read (a lost connection) are no
   * verdict either way: that failure is thrown as it is, and the wait reads
   * again, as it does when the store cannot be read (docs/contract.md §9).
   */
  async #backedApproval(decision: StoredDecision): Promise<{ error?: Error; answer?: ApprovalAnswer }> {
    const approval = decision.approval!;
    let records: readonly ReadRecord[];
    try {
      records = await this.#deps.records.readRecords(decision.id);
    } catch (error) {
      throw new Error(`its records could not be read: ${toError(error).message}`, { cause: error });
    }
    const problem = approvalProblem(decision, records);
    if (problem !== undefined) {
      safeLog(
        this.#deps.log,
        { decision_id: decision.id, reviewer_id: approval.reviewerId ?? null, problem },
        "approval refused: the records do not back it",
      );
      return {
        error: new ApprovalError("approval_unverified", decision.id, `the approval of ${decision.id} is refused: ${problem}`),
      };
    }
    return {
      answer: answerOf(decision.id, "approved", approval.reviewerId!, approval.note, new Date(approval.answeredAtMs!).toISOString()),
    };
  }

  /**
   * The refusal a wait for an amended call gets (docs/contract.md §6, amend):
   * code "amended", carrying the amended call and its decision, read from the
   * store and checked against the records: the amended call's decision record
   * must name the original as amended_from, be for exactly that call (its
   * digest) and say the same action; else approval_unverified.
   */
  async #amendedError(original: StoredDecision): Promise<ApprovalError> {
    const id = original.id;
    const to = original.approval?.amendedTo;
    const next = to === undefined ? undefined : await this.#deps.store.getDecision(to);
    const amendment = next?.amendment;
    const unverified = (why: string): ApprovalError =>
      new ApprovalError("approval_unverified", id, `the amendment of ${id} is refused: ${why}`);
    if (next === undefined || amendment === undefined || amendment.from !== id)
      return unverified("the store shows no amended decision for it");
    if (amendment.call === undefined) {
      return new ApprovalError("amended", id, `the call of ${id} was amended by ${amendment.by}; the amended call was not valid (${to})`);
    }
    let records: readonly ReadRecord[];
    try {
      records = await this.#deps.records.readRecords(next.id);
    } catch (error) {
      throw new Error(`its records could not be read: ${toError(error).message}`, { cause: error });
    }
    const made = records.filter((r) => r["type"] === "decision").at(-1);
    const result = (made?.["result"] ?? {}) as Record<string, unknown>;
    const digest = this.#digestOrNull(amendment.call as VetoCall);
    if (made === undefined || made["amended_from"] !== id || made["call_digest"] !== digest || digest !== next.callDigest) {
      return unverified("the amended decision's record does not name it, or is for another call");
    }
    if (result["action"] !== amendment.decision.action || next.action !== amendment.decision.action) {
      return unverified("the amended decision's record and the store disagree on its action");
    }
    const frozen = deepFreeze(structuredClone({ by: amendment.by, decision: amendment.decision, call: amendment.call }));
    return new ApprovalError(
      "amended",
      id,
      `the call of ${id} was amended by ${amendment.by}: the amended call is decision ${next.id} (${amendment.decision.action}); the original never runs`,
      { amended: frozen },
    );
  }

  /** The wait's outcome if the approval is settled (or now expired), else undefined. */
  async #settledOutcome(decisionId: string): Promise<{ error?: Error; answer?: ApprovalAnswer } | undefined> {
    const decision = await this.#approvable(decisionId);
    const approval = decision.approval!;
    switch (approval.status) {
      case "approved":
      case "executed":
        // An executed approval was approved: a wait that claims it is refused by the claim (already_executed).
        return await this.#backedApproval(decision);
      case "rejected":
        return {
          error: new ApprovalError(
            "approval_rejected",
            decisionId,
            `the call was rejected by ${approval.reviewerId ?? "a reviewer"}${approval.note === undefined ? "" : `: ${approval.note}`}`,
          ),
        };
      case "expired":
        return { error: expiredError(decisionId) };
      case "amended":
        return { error: await this.#amendedError(decision) };
      case "pending":
      case "answering": {
        const nowMs = await this.#now();
        if (nowMs < approval.expiresAtMs) return undefined;
        // The store has the last word on expiry: if it did not move the
        // approval (an answer came first), the next read says what happened.
        if (
          approval.status === "pending" &&
          !(await this.#deps.store.transitionApproval(decisionId, { from: "pending", to: "expired", atMs: nowMs }))
        ) {
          return undefined;
        }
        return { error: expiredError(decisionId) };
      }
    }
  }
}
