/**
 * What backs an approval (docs/contract.md §6, §7). A store row that says
 * "approved" is not evidence: anyone who can write the store's tables (an
 * application instance's database role, say) can write that row. An approval
 * counts only when the records say the same thing: the decision's own record
 * names the reviewer among its approvers and not as its actor, and an
 * approval record by that reviewer, for that decision and call digest, at the
 * time the row gives, exists. The approval record is written in the same
 * unit as the answer (docs/contract.md §7: no approval without its record),
 * so every approval this adapter makes passes.
 *
 * The records are read back from the sink when it can be read (the
 * PostgreSQL sink: the shared chain, so any instance can check an answer
 * given on any other); otherwise from this process's memory of the records it
 * wrote, so an answer given elsewhere, which this process cannot check, is
 * refused.
 */
import type { VetoRecord } from "../records/records.js";
import type { StoredDecision } from "../history/store.js";

/** A record as read back from where it was written: untrusted JSON. */
export type ReadRecord = Readonly<Record<string, unknown>>;

/**
 * A record sink whose records can be read back by decision id (the
 * PostgreSQL sink). waitForApproval checks every approval against them.
 */
export interface RecordReader {
  /**
   * The records of `decisionId` in the order they were written. A record
   * that does not sit in the chain (its hash, or its link to the record
   * before it, is wrong) is left out.
   */
  readRecords(decisionId: string): Promise<readonly ReadRecord[]>;
}

export function isRecordReader(value: unknown): value is RecordReader {
  return value !== null && typeof value === "object" && typeof (value as Partial<RecordReader>).readRecords === "function";
}

/** What approval checks read of a record (not the call it holds, which may be large). */
function evidenceOf(record: VetoRecord): ReadRecord {
  const common = {
    type: record.type,
    decision_id: record.decision_id,
    timestamp: record.timestamp,
    actor_id: record.actor_id,
    tenant_id: record.tenant_id,
    call_digest: record.call_digest,
  };
  if (record.type === "decision") {
    return {
      ...common,
      result: { action: record.result.action, escalated: record.result.escalated, approvers: [...record.result.approvers] },
      ...(record.record_state === undefined ? {} : { record_state: record.record_state }),
      ...(record.amended_from === undefined ? {} : { amended_from: record.amended_from }),
    };
  }
  if (record.type === "execution") return { ...common, reviewer_id: record.reviewer_id, result: { execution: record.result.execution } };
  return { ...common, reviewer_id: record.reviewer_id, note: record.note, result: { approval: record.result.approval } };
}

/**
 * The records this process wrote that an approval check reads (the records
 * of require_approval decisions and the answers), for a sink that cannot be
 * read back. Bounded: the oldest decisions are forgotten first, and an
 * approval whose records were forgotten is refused (fail closed), as an
 * in-memory store forgets its oldest decisions.
 */
export class WrittenRecords implements RecordReader {
  readonly #max: number;
  readonly #byDecision = new Map<string, ReadRecord[]>();

  constructor(maxDecisions = 100_000) {
    this.#max = maxDecisions;
  }

  /**
   * Remember a record once it is written (only those an approval check reads,
   * and only the fields it reads). Returns what forgets it again: for an
   * answer remembered before its store change commits, so that no waiter
   * sees the change without its record, and forgotten when it does not.
   */
  remember(record: VetoRecord): () => void {
    // Decisions an approval check reads: require_approval ones, and those of amended calls (the amendment's evidence).
    const kept = record.type !== "decision" || record.result.action === "require_approval" || record.amended_from !== undefined;
    const evidence = evidenceOf(record);
    const list = this.#byDecision.get(record.decision_id);
    if (list !== undefined) list.push(evidence);
    else if (kept) {
      this.#byDecision.set(record.decision_id, [evidence]);
      if (this.#byDecision.size > this.#max) {
        const oldest = this.#byDecision.keys().next().value;
        if (oldest !== undefined) this.#byDecision.delete(oldest);
      }
    }
    return () => {
      const held = this.#byDecision.get(record.decision_id);
      const at = held?.indexOf(evidence) ?? -1;
      if (at >= 0) held!.splice(at, 1);
    };
  }

  async readRecords(decisionId: string): Promise<readonly ReadRecord[]> {
    return this.#byDecision.get(decisionId) ?? [];
  }
}

const bySink = new WeakMap<object, WrittenRecords>();

/**
 * The memory of the records written to `sink`: one per sink object, so
 * instances that share a sink (and so hold their records in one place) check
 * each other's answers, as they would by reading the sink back.
 */
export function writtenRecordsOf(sink: object): WrittenRecords {
  let written = bySink.get(sink);
  if (written === undefined) {
    written = new WrittenRecords();
    bySink.set(sink, written);
  }
  return written;
}

const orNull = (value: string | undefined): string | null => value ?? null;

function timeMs(value: unknown): number | undefined {
  if (typeof value !== "string") return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : undefined;
}

function stringList(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((v) => typeof v === "string") ? value : undefined;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(a);
  return set.size === new Set(b).size && b.every((x) => set.has(x));
}

/**
 * Why the approval the store shows for `decision` is not backed by the
 * decision's `records` (in the order written), or undefined when it is. Only
 * for a decision whose approval status is "approved".
 */
export function approvalProblem(decision: StoredDecision, records: readonly ReadRecord[]): string | undefined {
  if (decision.approval?.status !== "approved" && decision.approval?.status !== "executed") return "the store shows no approval";
  return answerProblem(decision, records);
}

/**
 * Why the answer (approved or rejected) the store shows for `decision` is not
 * backed by its `records`, or undefined when it is: the reviewer is a listed
 * approver and not the actor, in the store and in the decision record; the
 * decision record agrees with the store; exactly one answer record exists,
 * of the same kind, by the same reviewer, for the same call, at the time the
 * store gives, with the same note.
 */
export function answerProblem(decision: StoredDecision, records: readonly ReadRecord[]): string | undefined {
  const approval = decision.approval;
  // An executed approval was approved, then claimed: its answer is the approval's.
  const status = approval?.status === "executed" ? "approved" : approval?.status;
  const reviewer = approval?.reviewerId;
  if ((status !== "approved" && status !== "rejected") || reviewer === undefined || reviewer === "") {
    return "the store shows no answer with a reviewer";
  }
  const answered = status === "approved" ? "approved" : "rejected";
  if (reviewer === decision.actorId) return `the store shows it ${answered} by ${reviewer}, the decision's own actor`;
  if (!decision.approvers.includes(reviewer)) return `the store shows it ${answered} by ${reviewer}, who is not among its approvers`;
  if (decision.callDigest === undefined) return "the store shows no call digest for it";

  // The last decision record is the one in force (a record_unavailable deny supersedes the first).
  const made = records.filter((r) => r["type"] === "decision").at(-1);
  if (made === undefined) return "its decision record is not in the records";
  const result = (made["result"] ?? {}) as Record<string, unknown>;
  const recordedApprovers = stringList(result["approvers"]);
  if (result["action"] !== "require_approval") return `its decision record says ${String(result["action"])}, not require_approval`;
  if (
    made["actor_id"] !== orNull(decision.actorId) ||
    made["tenant_id"] !== orNull(decision.tenantId) ||
    made["call_digest"] !== decision.callDigest ||
    timeMs(made["timestamp"]) !== decision.atMs ||
    // The record state the approval is bound to (docs/contract.md §6) is the one recorded.
    (made["record_state"] ?? undefined) !== decision.recordState ||
    recordedApprovers === undefined ||
    !sameSet(recordedApprovers, decision.approvers)
  ) {
    return "its decision record does not match the store (actor, tenant, call digest, time, approvers or record state differ)";
  }
  if (reviewer === made["actor_id"] || !recordedApprovers.includes(reviewer)) {
    return `its decision record does not list ${reviewer} among its approvers`;
  }

  const type = status === "approved" ? "approval" : "rejection";
  const answers = records.filter((r) => r["type"] === "approval" || r["type"] === "rejection");
  if (answers.length === 0) return `no ${type} record by ${reviewer} is in the records`;
  if (answers.length > 1) return `the records hold ${answers.length} answers to it, not one`;
  const answer = answers[0]!;
  if (answer["type"] !== type || (answer["result"] as { approval?: unknown } | undefined)?.approval !== status) {
    return `the records hold ${type === "approval" ? "a rejection" : "an approval"} of it, not ${type === "approval" ? "an approval" : "a rejection"}`;
  }
  if (answer["reviewer_id"] !== reviewer) return `its ${type} record is by ${String(answer["reviewer_id"])}, not ${reviewer}`;
  if (
    answer["call_digest"] !== decision.callDigest ||
    answer["actor_id"] !== orNull(decision.actorId) ||
    answer["tenant_id"] !== orNull(decision.tenantId)
  ) {
    return `its ${type} record is for another call (call digest, actor or tenant differ)`;
  }
  if (timeMs(answer["timestamp"]) !== approval!.answeredAtMs) return `its ${type} record's time differs from the store's`;
  if (answer["note"] !== (approval!.note ?? null)) return `its ${type} record's note differs from the store's`;
  return undefined;
}
