/**
 * The shape of a decision record (docs/contract.md §7) as one zod schema: the
 * record types the writers build (records.ts) are inferred from it, and the
 * readers (replay) parse records with it, so a field is added, renamed or
 * retyped in one place. Field names follow OPA's decision-log event where one
 * exists (decision_id, timestamp, path, result, bundles, masked, metrics).
 *
 * Parsing keeps what the schema names and drops the rest (a record from a
 * newer writer with more fields still reads); a record that does not parse
 * fails with zod's issues, each naming the field's path.
 */
import { z } from "zod";
import { ACTIONS, reasonSchema } from "../common/decision.js";

const nullableString = z.string().nullable();
const stringList = z.array(z.string()).readonly();

/** OPA's `{name: {revision}}`, with the version hash beside the revision. */
const bundleVersionSchema = z.object({ revision: z.string(), hash: z.string() }).readonly();

/** What every record carries. */
const recordBaseFields = {
  decision_id: z.string().min(1),
  /** When this record's event happened, ISO 8601 UTC. */
  timestamp: z.string(),
  /** The policy's entrypoint. */
  path: z.string(),
  bundles: z.record(z.string(), bundleVersionSchema).readonly(),
  actor_id: nullableString,
  tenant_id: nullableString,
  /** Digest of tool, arguments and context: the call an approval is bound to. */
  call_digest: nullableString,
};

/** The verdict a decision record holds: the policy's answer, or the adapter's own deny. */
export const decisionResultSchema = z
  .object({
    action: z.enum(ACTIONS),
    escalated: z.boolean(),
    reason: z.string(),
    reasons: z.array(reasonSchema.readonly()).readonly(),
    approvers: stringList,
  })
  .readonly();

const decisionRecordObject = z.object({
  type: z.literal("decision"),
  ...recordBaseFields,
  tool: nullableString,
  environment: nullableString,
  source_system: nullableString,
  request_id: nullableString,
  session_id: nullableString,
  on_behalf_of: nullableString,
  /**
   * The call as received ({tool, arguments, context}), with the value of every
   * sensitive field replaced by a digest (see RecordMasker): what replay
   * re-evaluates. Null when the call was not JSON at all.
   */
  input: z.unknown(),
  /** JSON pointers of the values replaced in `input` (OPA's `masked`). */
  masked: stringList,
  /** Digest of the whole call as received (canonical JSON), or null when it was not JSON. */
  input_digest: nullableString,
  /** The deny history the policy saw; null when it was not evaluated (replay skips such records). */
  history: z
    .object({ recent_denies: z.number().int().min(0) })
    .readonly()
    .nullable(),
  result: decisionResultSchema,
  metrics: z.object({ timer_rego_query_eval_ns: z.number() }).readonly(),
  /**
   * Every host the policy read in `arguments.destination` (docs/contract.md §3),
   * sorted, as the policy's answer gives them. Present when the policy
   * evaluated a call whose destination is a string; absent otherwise (no
   * destination, or a deny the adapter answered without evaluating).
   */
  destination_hosts: stringList.optional(),
  /**
   * When the approval a require_approval decision asks for expires, ISO 8601
   * UTC (docs/contract.md §6). Absent on other verdicts, and in logs written
   * before records carried it (a report counts those unanswered as pending).
   */
  expires_at: z.string().optional(),
  /**
   * A shadow bundle's verdict on the same call and history (docs/policy-changes.md):
   * its version and action, escalation and reason codes, or the error it
   * failed with. Present only when the instance runs a shadow bundle.
   */
  shadow: z
    .object({
      revision: z.string(),
      hash: z.string(),
      action: z.enum(ACTIONS).optional(),
      escalated: z.boolean().optional(),
      reasons: stringList.optional(),
      error: z.string().optional(),
    })
    .readonly()
    .optional(),
  /**
   * The state of the CRM record the call targets, as the application's
   * `recordState` gave it when the call needed approval (docs/contract.md §6,
   * record state): what the call is compared against where it executes.
   * Absent when no state was bound.
   */
  record_state: z.string().optional(),
  /** For the decision of an amended call (docs/contract.md §6, amend): the decision it amends. */
  amended_from: z.string().optional(),
  /** For the decision of an amended call: the approver who amended it. */
  amended_by: z.string().optional(),
});
export const decisionRecordSchema = decisionRecordObject.readonly();

export const approvalRecordSchema = z
  .object({
    type: z.enum(["approval", "rejection"]),
    ...recordBaseFields,
    reviewer_id: z.string(),
    note: nullableString,
    result: z.object({ approval: z.enum(["approved", "rejected"]) }).readonly(),
  })
  .readonly();

/**
 * An approver amended a pending call instead of answering it (docs/contract.md
 * §6, amend): the original's approval ends "amended", and `amended_to` names
 * the decision of the amended call (whose record names this one back in
 * `amended_from`).
 */
export const amendmentRecordSchema = z
  .object({
    type: z.literal("amendment"),
    ...recordBaseFields,
    reviewer_id: z.string(),
    note: nullableString,
    amended_to: z.string().min(1),
    result: z.object({ approval: z.literal("amended") }).readonly(),
  })
  .readonly();

/**
 * The use-once claim of an approved call (docs/contract.md §6): written as the
 * caller claims the approval, before the call runs ("claimed"), or when a
 * claim finds it already claimed ("refused": a second run was stopped), or
 * when the target record's state changed since the approval ("refused" with
 * reason "record_changed": nothing ran).
 */
export const executionRecordSchema = z
  .object({
    type: z.literal("execution"),
    ...recordBaseFields,
    /** Who approved the call being claimed. */
    reviewer_id: nullableString,
    result: z
      .object({
        execution: z.enum(["claimed", "refused"]),
        /**
         * Why a claim was refused, when not for a second run: "record_changed"
         * (the target record's state is not the one approved, or could not be
         * read, docs/contract.md §6). Absent otherwise.
         */
        reason: z.literal("record_changed").optional(),
      })
      .readonly(),
    /** For a record_changed refusal: the state the record had when asked (null: it could not be read). */
    record_state: nullableString.optional(),
  })
  .readonly();

/** Any record the adapter writes, told apart by `type`. */
export const vetoRecordSchema = z.discriminatedUnion("type", [
  decisionRecordSchema,
  approvalRecordSchema,
  executionRecordSchema,
  amendmentRecordSchema,
]);

/** Every record type, in the schema's order: "decision", "approval", "rejection", "execution", "amendment". */
export const RECORD_TYPES: readonly VetoRecord["type"][] = vetoRecordSchema.options.flatMap((option) => {
  const type = option.def.innerType.shape.type;
  return type instanceof z.ZodEnum ? type.options : [...type.values];
});

export type DecisionEventRecord = z.infer<typeof decisionRecordSchema>;
export type ApprovalEventRecord = z.infer<typeof approvalRecordSchema>;
export type ExecutionEventRecord = z.infer<typeof executionRecordSchema>;
export type AmendmentEventRecord = z.infer<typeof amendmentRecordSchema>;
export type VetoRecord = z.infer<typeof vetoRecordSchema>;

/**
 * What replay reads of a decision record: the same schema's fields, picked.
 * A decision record as the writer writes it always parses.
 */
export const replayedDecisionSchema = decisionRecordObject.pick({
  type: true,
  decision_id: true,
  timestamp: true,
  tool: true,
  actor_id: true,
  tenant_id: true,
  input: true,
  masked: true,
  history: true,
  result: true,
});
export type ReplayedDecision = z.infer<typeof replayedDecisionSchema>;

/** Zod's issues as one line, each naming its field: `history.recent_denies: Too small: ...; masked: ...`. */
export function issuesText(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.map(String).join(".") || "the record"}: ${i.message}`).join("; ");
}
