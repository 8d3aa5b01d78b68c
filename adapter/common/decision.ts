/**
 * The decision the adapter hands back (docs/contract.md §5) and the policy's
 * own answer (section 4b) that it is built from.
 */
import { z } from "zod";

export const ACTIONS = ["allow", "deny", "require_approval"] as const;
export type Action = (typeof ACTIONS)[number];

export const reasonSchema = z.strictObject({
  code: z.string().min(1),
  message: z.string(),
});
export type Reason = z.infer<typeof reasonSchema>;

/**
 * What `veto/crm/decision` must answer. Anything else is treated as an
 * evaluation failure (fail closed), so the consistency rules of the contract
 * are checked here too: approvers exactly when approval is required, and
 * escalation only on a deny.
 */
export const policyAnswerSchema = z
  .strictObject({
    action: z.enum(ACTIONS),
    escalated: z.boolean(),
    reasons: z.array(reasonSchema).min(1),
    approvers: z.array(z.string().min(1)),
    /** Every host the policy read in `arguments.destination`, sorted; present when that is a string (docs/contract.md §4b). */
    destination_hosts: z.array(z.string()).optional(),
  })
  .refine((a) => (a.action === "require_approval") === a.approvers.length > 0, {
    message: "approvers must be non-empty exactly when action is require_approval",
  })
  .refine((a) => !a.escalated || a.action === "deny", {
    message: "only a deny can be escalated",
  });
export type PolicyAnswer = z.infer<typeof policyAnswerSchema>;

/**
 * What `veto/crm/visible` answers (docs/contract.md §4b): whether the tool is
 * offered at all in the context, and when not, every reason why, sorted by code.
 */
export const visibilitySchema = z
  .strictObject({ visible: z.boolean(), reasons: z.array(reasonSchema) })
  .refine((v) => v.visible === (v.reasons.length === 0), { message: "reasons must be listed exactly when the tool is hidden" });
export type Visibility = z.infer<typeof visibilitySchema>;

export interface BundleVersion {
  readonly revision: string;
  /** "sha256:" followed by 64 lowercase hex digits. */
  readonly hash: string;
}

export interface Decision {
  readonly id: string;
  readonly action: Action;
  readonly escalated: boolean;
  readonly reason: string;
  readonly reasons: readonly Reason[];
  readonly approvers: readonly string[];
  readonly bundle: BundleVersion;
  readonly timestamp: string;
}

/** Reason codes the adapter answers itself, without (or instead of) the policy. */
export const ADAPTER_REASON_CODES = {
  invalidInput: "invalid_input",
  evaluationError: "evaluation_error",
  recordUnavailable: "record_unavailable",
  recordStateUnavailable: "record_state_unavailable",
} as const;

/**
 * The adapter's own fail-closed codes: the system's fault, not the actor's.
 * A deny answered with one of them is recorded and remembered but does not
 * count towards the actor's recentDenies (docs/contract.md §3, §7b).
 */
export const OUTAGE_REASON_CODES: ReadonlySet<string> = new Set([
  ADAPTER_REASON_CODES.evaluationError,
  ADAPTER_REASON_CODES.recordUnavailable,
  ADAPTER_REASON_CODES.recordStateUnavailable,
]);

/** Whether a decision counts towards its actor's deny history: a deny, unless the adapter's own outage answered it. */
export function countsTowardsEscalation(answer: { readonly action: Action; readonly reasons: readonly Reason[] }): boolean {
  return answer.action === "deny" && !answer.reasons.some((r) => OUTAGE_REASON_CODES.has(r.code));
}

/** The messages policy/veto/crm/reasons.rego defines for these codes; the adapter appends the detail. */
export const ADAPTER_REASON_MESSAGES: Readonly<Record<string, string>> = {
  invalid_input: "The call does not match the input contract",
  evaluation_error: "The policy could not be evaluated",
  record_unavailable: "The decision record could not be written durably",
  record_state_unavailable: "The state of the CRM record could not be read",
};

/** A deny the adapter answers itself: the code's message from reasons.rego, then the detail. */
export function adapterDeny(code: string, detail: string): PolicyAnswer {
  const message = `${ADAPTER_REASON_MESSAGES[code] ?? code}: ${detail}`;
  return { action: "deny", escalated: false, reasons: [{ code, message }], approvers: [] };
}

const sealedAnswers = new WeakSet<PolicyAnswer>();

/**
 * `answer` as a frozen copy whose reasons are frozen `{code, message}`
 * objects and whose lists are frozen: what a decision is made of, so one
 * answer serves every decision that gets it (the evaluator keeps the answers
 * it has seen) and a decision takes its reasons and approvers as they are.
 */
export function sealAnswer(answer: PolicyAnswer): PolicyAnswer {
  const sealed: PolicyAnswer = {
    action: answer.action,
    escalated: answer.escalated,
    reasons: Object.freeze(answer.reasons.map((r) => Object.freeze({ code: r.code, message: r.message }))) as PolicyAnswer["reasons"],
    approvers: Object.freeze([...answer.approvers]) as PolicyAnswer["approvers"],
  };
  if (answer.destination_hosts !== undefined) {
    sealed.destination_hosts = Object.freeze([...answer.destination_hosts]) as NonNullable<PolicyAnswer["destination_hosts"]>;
  }
  Object.freeze(sealed);
  sealedAnswers.add(sealed);
  return sealed;
}

/** Whether `answer` came from sealAnswer (its reasons and lists are frozen and of the decision's shape). */
export function isSealedAnswer(answer: PolicyAnswer): boolean {
  return sealedAnswers.has(answer);
}
