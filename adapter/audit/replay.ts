/**
 * Replay: re-evaluate recorded decisions against another bundle or data
 * document, with the deny history each decision saw, and say which verdicts
 * would change. What a security team reads before rolling out a policy change.
 *
 * A record's `input` is the call as received with sensitive values replaced by
 * digests (keys kept), so every check the policy makes on field names,
 * amounts, destinations, tenants and context is replayed exactly. The deny
 * history is the recorded `history.recent_denies`, not one recomputed under the
 * new policy: replay answers "what would the new policy have said to this call,
 * in that situation", one decision at a time.
 */
import { activatePolicy } from "../policy/source.js";
import { ADAPTER_REASON_CODES, adapterDeny, type Action, type BundleVersion, type PolicyAnswer } from "../common/decision.js";
import type { PolicyEvaluator } from "../policy/evaluator.js";
import { DEFAULT_INPUT_LIMITS, amountFieldNames, checkCall } from "../call/input.js";
import { foldKey } from "../common/text.js";
import type { PolicyData } from "../policy/data.js";
import { createBundleVerifier, type VerificationKeyInput } from "../policy/signature.js";
import { RECORD_TYPES, issuesText, replayedDecisionSchema, type ReplayedDecision } from "../records/schema.js";

export interface ReplayOptions {
  /** Path of the bundle .tar.gz to replay against, or its bytes. Required. */
  readonly bundle: string | Uint8Array;
  /** A data document replacing the bundle's data.json entirely. Default: the bundle's. */
  readonly data?: Record<string, unknown>;
  /**
   * Verify the bundle's signature first, as createVeto's `verificationKey`
   * does: an unsigned or altered bundle is refused (BundleSignatureError).
   * Default: none (signatures are not checked).
   */
  readonly verificationKey?: VerificationKeyInput | readonly VerificationKeyInput[];
}

/** The comparable part of a verdict. */
export interface Verdict {
  readonly action: Action;
  readonly escalated: boolean;
  /** Reason codes, in the order the decision lists them. */
  readonly codes: readonly string[];
  readonly approvers: readonly string[];
}

/** Where a record sits in the log, and whose call it was. */
export interface ReplayedRecord {
  readonly decision_id: string;
  readonly timestamp: string | null;
  readonly tool: string | null;
  readonly actor_id: string | null;
  readonly tenant_id: string | null;
  readonly file: string;
  readonly line: number;
}

export interface ReplayComparison extends ReplayedRecord {
  readonly old: Verdict;
  readonly new: Verdict;
}

export interface ReplaySkip extends ReplayedRecord {
  /** Why the record cannot be replayed exactly. */
  readonly reason: string;
}

/**
 * "skipped": the recorded verdict was not the policy's (the adapter decided:
 * the call was not JSON, the record or the store failed), so no policy can
 * change it and there is nothing to compare. "unreplayable": the record
 * should hold a policy verdict but cannot be replayed (it is malformed, of an
 * unknown type, or masks a value the policy reads), so whether the verdict
 * would change is unknown.
 */
export type ReplayOutcome =
  ({ readonly kind: "unchanged" | "changed" } & ReplayComparison) | ({ readonly kind: "skipped" | "unreplayable" } & ReplaySkip);

export interface ReplayReport {
  /** The bundle replayed against. */
  readonly bundle: BundleVersion;
  /**
   * Decisions in the log (a decision recorded twice, e.g. superseded by a
   * record_unavailable deny, counts once: its last record), and every record
   * that is neither an approval nor a rejection nor a decision with an id.
   */
  readonly decisions: number;
  readonly unchanged: number;
  readonly changed: readonly ReplayComparison[];
  readonly skipped: readonly ReplaySkip[];
  /** Records that should hold a policy verdict but cannot be replayed: each with its reason, in log order. */
  readonly unreplayable: readonly ReplaySkip[];
  /** Changed decisions per kind, "old_action → new_action" (e.g. "allow → require_approval"), sorted by kind. */
  readonly summary: Readonly<Record<string, number>>;
}

/** A record as read from a log: where it is and its fields. */
export interface LoggedRecord {
  readonly file: string;
  readonly line: number;
  readonly record: Readonly<Record<string, unknown>>;
}

/**
 * Replayed calls passed the size limit when they were decided; their masked
 * form can be larger (a digest is longer than a short value), so replay does
 * not apply the size limit again. The depth limit still holds.
 */
const REPLAY_LIMITS = { ...DEFAULT_INPUT_LIMITS, maxInputBytes: Number.MAX_SAFE_INTEGER };

function verdictOf(answer: PolicyAnswer | ReplayedDecision["result"]): Verdict {
  return {
    action: answer.action,
    escalated: answer.escalated,
    codes: answer.reasons.map((r) => r.code),
    approvers: [...answer.approvers],
  };
}

function sameVerdict(a: Verdict, b: Verdict): boolean {
  const same = (x: readonly string[], y: readonly string[]): boolean => x.length === y.length && x.every((v, i) => v === y[i]);
  return a.action === b.action && a.escalated === b.escalated && same(a.codes, b.codes) && same(a.approvers, b.approvers);
}

/** "old_action → new_action": how changes are counted. */
export function changeKind(change: { readonly old: Verdict; readonly new: Verdict }): string {
  return `${change.old.action} → ${change.new.action}`;
}

export class Replayer {
  readonly bundle: BundleVersion;
  readonly #data: PolicyData;
  readonly #evaluator: PolicyEvaluator;

  private constructor(bundle: BundleVersion, data: PolicyData, evaluator: PolicyEvaluator) {
    this.bundle = bundle;
    this.#data = data;
    this.#evaluator = evaluator;
  }

  /**
   * Verify (with a verificationKey), load and probe the bundle and data
   * exactly as createVeto does (activatePolicy); rejects with
   * BundleSignatureError or BundleLoadError when either is unusable.
   */
  static async create(options: ReplayOptions): Promise<Replayer> {
    const verifier = options.verificationKey === undefined ? undefined : createBundleVerifier(options.verificationKey);
    const policy = await activatePolicy(options.bundle, { verifier, data: options.data }, "given to replay");
    return new Replayer(policy.version, policy.data, policy.evaluator);
  }

  /**
   * Replay one decision record. Records that are not decision records of
   * this format, or that cannot be replayed exactly, come back as "skipped"
   * with the reason.
   */
  async replay(logged: LoggedRecord): Promise<ReplayOutcome> {
    // The records' own schema (records/schema.ts), the fields replay reads.
    const parsed = replayedDecisionSchema.safeParse(logged.record);
    const where = placeOf(logged);
    const skip = (reason: string): ReplayOutcome => ({ kind: "skipped", ...where, reason });
    const unreplayable = (reason: string): ReplayOutcome => ({ kind: "unreplayable", ...where, reason });
    if (!parsed.success) {
      return unreplayable(`not a decision record this version can replay (${issuesText(parsed.error)})`);
    }
    const record = parsed.data;
    const old = verdictOf(record.result);
    if (old.codes.includes(ADAPTER_REASON_CODES.recordUnavailable)) {
      return skip("the recorded verdict is record_unavailable: the record, not the policy, decided");
    }
    if (record.input === null || record.input === undefined) {
      return skip("the call was not recorded (it was not JSON, or broke the input limits)");
    }
    const maskedAmount = record.masked.find((pointer) => {
      const field = /^\/input\/arguments\/changes\/([^/]+)$/.exec(pointer)?.[1];
      return (
        field !== undefined && amountFieldNames(this.#data.amountFields).has(foldKey(field.replaceAll("~1", "/").replaceAll("~0", "~")))
      );
    });
    if (maskedAmount !== undefined) {
      return unreplayable(`${maskedAmount} is an amount the policy reads, but its value was masked as sensitive`);
    }

    let answer: PolicyAnswer;
    const checked = checkCall(record.input, REPLAY_LIMITS, this.#data.amountFields);
    if (!checked.ok) {
      answer = adapterDeny(ADAPTER_REASON_CODES.invalidInput, checked.message);
    } else if (record.history === null) {
      return skip("no deny history was recorded (the policy was not evaluated)");
    } else {
      const { call } = checked;
      const evaluation = await this.#evaluator.evaluate({
        tool: call.tool,
        arguments: call.arguments,
        context: call.context,
        history: { recentDenies: record.history.recent_denies },
      });
      answer = evaluation.ok ? evaluation.answer : adapterDeny(ADAPTER_REASON_CODES.evaluationError, evaluation.error.message);
    }
    const now = verdictOf(answer);
    return { kind: sameVerdict(old, now) ? "unchanged" : "changed", ...where, old, new: now };
  }
}

/** Where a record is and whose call it names, as far as its fields are strings. */
function placeOf(logged: LoggedRecord): ReplayedRecord {
  const raw = logged.record;
  const text = (v: unknown): string | null => (typeof v === "string" ? v : null);
  return {
    decision_id: text(raw["decision_id"]) ?? "?",
    timestamp: text(raw["timestamp"]),
    tool: text(raw["tool"]),
    actor_id: text(raw["actor_id"]),
    tenant_id: text(raw["tenant_id"]),
    file: logged.file,
    line: logged.line,
  };
}

/** A value as a message shows it: JSON, or "missing". */
const shown = (value: unknown): string => (value === undefined ? "missing" : (JSON.stringify(value) ?? typeof value));

/**
 * Replay every decision of a log (records as readLog returns them, in log
 * order) against `options`. Approval, rejection and execution records are not replayed.
 * A decision recorded more than once is replayed once, against its last
 * record. Every other record (an unknown type, a decision without a usable
 * decision_id, a malformed decision) is listed as unreplayable with its reason.
 */
export async function replayRecords(records: Iterable<LoggedRecord>, options: ReplayOptions): Promise<ReplayReport> {
  const replayer = await Replayer.create(options);
  // In log order: a decision's id (at its first appearance) or a record that cannot be replayed.
  const slots: (string | ReplaySkip)[] = [];
  const latest = new Map<string, LoggedRecord>();
  for (const logged of records) {
    const type = logged.record["type"];
    // Answers and use-once claims hold no verdict to replay.
    if (type !== "decision" && (RECORD_TYPES as readonly unknown[]).includes(type)) continue;
    const id = logged.record["decision_id"];
    if (type !== "decision") {
      slots.push({ ...placeOf(logged), reason: `its type ${shown(type)} is not one this version knows (${RECORD_TYPES.join(", ")})` });
    } else if (typeof id !== "string" || id === "") {
      slots.push({ ...placeOf(logged), reason: `its decision_id ${shown(id)} is not a non-empty string` });
    } else {
      if (!latest.has(id)) slots.push(id);
      latest.set(id, logged);
    }
  }
  const changed: ReplayComparison[] = [];
  const skipped: ReplaySkip[] = [];
  const unreplayable: ReplaySkip[] = [];
  let unchanged = 0;
  for (const slot of slots) {
    const logged = typeof slot === "string" ? latest.get(slot) : undefined;
    if (logged === undefined) {
      unreplayable.push(slot as ReplaySkip);
      continue;
    }
    const { kind, ...outcome } = await replayer.replay(logged);
    if (kind === "unchanged") unchanged += 1;
    else if (kind === "changed") changed.push(outcome as ReplayComparison);
    else if (kind === "skipped") skipped.push(outcome as ReplaySkip);
    else unreplayable.push(outcome as ReplaySkip);
  }
  const counts = new Map<string, number>();
  for (const change of changed) counts.set(changeKind(change), (counts.get(changeKind(change)) ?? 0) + 1);
  const summary = Object.fromEntries([...counts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return { bundle: replayer.bundle, decisions: slots.length, unchanged, changed, skipped, unreplayable, summary };
}
