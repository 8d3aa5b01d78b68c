/**
 * What every framework integration shares (docs/integrations.md): the call
 * built from the model's tool call and the application's context, the
 * decision, the refusal texts the model reads, and the use-once claim on
 * resume. The frameworks themselves are imported only by their own folders.
 *
 * The rule (docs/contract.md §6, §6b): the context (actor, tenant,
 * environment) comes from the application, never from the model; an allowed
 * call runs once with the frozen copy of what was decided; a denied call never
 * runs; a call that needs approval pauses the framework's way, and on resume
 * runs only when the store says that exact call (its digest) was approved, and
 * at most once (the claim, `approved -> executed`).
 */
import { createHash } from "node:crypto";
import { deepFreeze, type CallContext } from "../call/input.js";
import type { Decision } from "../common/decision.js";
import { VetoError, VetoOptionsError, toError } from "../common/errors.js";
import type { Veto } from "../veto.js";

export interface GateOptions<R> {
  /** The Veto instance that decides (createVeto). Required. */
  readonly veto: Veto;
  /**
   * The call's context from the application's run context: `actorId`,
   * `tenantId`, `environment`, and the optional fields of docs/contract.md §1.
   * Never taken from the model. Required. It must give the same context when
   * a paused run is resumed: the approval is bound to it.
   */
  readonly context: (run: R) => CallContext | Promise<CallContext>;
  /**
   * Framework tool name -> the policy's tool name, e.g. `{ crm_update: "crm.update" }`
   * (frameworks forbid dots in tool names). Default: the same name.
   */
  readonly toolNames?: Readonly<Record<string, string>>;
  /**
   * The tool argument in which the model states its reason: moved into
   * `context.reason` (unless the application's context gives one) and left
   * out of the policy's arguments. The tool still receives it. Default
   * "reason"; false: the model gives none.
   */
  readonly reasonArgument?: string | false;
}

/** A tool call as the policy sees it, and the frozen input the tool receives when it runs. */
export interface GateCall {
  readonly tool: string;
  readonly arguments: Readonly<Record<string, unknown>>;
  readonly context: Readonly<CallContext>;
  /** The tool's whole input (the reason argument included), deep-frozen: what runs is what was decided. */
  readonly input: Readonly<Record<string, unknown>>;
}

export type Verdict =
  | { readonly kind: "allow"; readonly decision: Decision }
  | { readonly kind: "deny"; readonly decision: Decision; readonly message: string }
  | { readonly kind: "approval"; readonly decision: Decision; readonly message: string };

export type Claim = { readonly ok: true } | { readonly ok: false; readonly code: string; readonly message: string };

const CONTEXT_FIELDS = ["actorId", "tenantId", "environment", "reason", "sourceSystem", "requestId", "sessionId", "onBehalfOf"];

/** The decision id a pause message names (see pauseMessage). */
const DECISION_IN_MESSAGE = /\(veto decision ([0-9A-Za-z]{1,64})\b/;

/** The text the model reads for a deny: every reason code, then the first message. */
export function denyMessage(decision: Decision): string {
  const codes = decision.reasons.map((r) => r.code).join(", ");
  return `Denied by policy [${codes}]: ${decision.reason}`;
}

/** The text of a pause: names the decision so the run can be resumed, and who may approve. */
export function pauseMessage(decision: Decision): string {
  const codes = decision.reasons.map((r) => r.code).join(", ");
  return `Approval required (veto decision ${decision.id}; approvers: ${decision.approvers.join(", ")}) [${codes}]: ${decision.reason}`;
}

/** The decision id named in a pause message, if any. Untrusted: the claim checks it is for exactly this call. */
export function decisionIdIn(text: unknown): string | undefined {
  return typeof text === "string" ? DECISION_IN_MESSAGE.exec(text)?.[1] : undefined;
}

/** The text the model reads when a resumed call is refused. */
export function refusedMessage(claim: { code: string; message: string }): string {
  return `Not executed [${claim.code}]: ${claim.message}`;
}

function plainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

export class ToolGate<R> {
  readonly veto: Veto;
  readonly #context: (run: R) => CallContext | Promise<CallContext>;
  readonly #toolNames: Readonly<Record<string, string>>;
  readonly #reasonArgument: string | false;

  constructor(options: GateOptions<R>, where: string) {
    if (options === null || typeof options !== "object")
      throw new VetoOptionsError(`${where}: pass { veto, context, toolNames?, reasonArgument? }`);
    const { veto, context, toolNames, reasonArgument } = options;
    if (veto === null || typeof veto !== "object" || typeof veto.protect !== "function" || typeof veto.waitForApproval !== "function") {
      throw new VetoOptionsError(`${where}: veto must be the instance createVeto() returned`);
    }
    if (typeof context !== "function") {
      throw new VetoOptionsError(
        `${where}: context must be a function of the run's context returning { actorId, tenantId, environment, ... }`,
      );
    }
    if (toolNames !== undefined && (!plainObject(toolNames) || Object.values(toolNames).some((v) => typeof v !== "string" || v === ""))) {
      throw new VetoOptionsError(`${where}: toolNames must map tool names to the policy's tool names (non-empty strings)`);
    }
    if (reasonArgument !== undefined && reasonArgument !== false && (typeof reasonArgument !== "string" || reasonArgument === "")) {
      throw new VetoOptionsError(`${where}: reasonArgument must be the name of a tool argument, or false`);
    }
    this.veto = veto;
    this.#context = context;
    this.#toolNames = { ...toolNames };
    this.#reasonArgument = reasonArgument ?? "reason";
  }

  policyTool(name: string): string {
    return Object.hasOwn(this.#toolNames, name) ? this.#toolNames[name]! : name;
  }

  /**
   * The call for a tool call: the policy's tool name, the arguments without
   * the reason argument, the application's context (with the model's reason
   * when the application gives none). The input is copied and frozen first,
   * so nothing the framework or the model holds can change it afterwards.
   * An input that is not a JSON object is passed on as it is: the policy
   * denies it (invalid_input), recorded.
   */
  async call(toolName: string, rawInput: unknown, run: R): Promise<GateCall> {
    const input = deepFreeze(plainObject(rawInput) ? copyJson(rawInput) : {});
    const given = await this.#context(run);
    if (!plainObject(given)) throw new VetoOptionsError("the context function must return { actorId, tenantId, environment, ... }");
    const context: Record<string, unknown> = {};
    for (const key of CONTEXT_FIELDS) if (given[key] !== undefined) context[key] = given[key];
    const args: Record<string, unknown> = { ...input };
    const reasonKey = this.#reasonArgument;
    if (reasonKey !== false && Object.hasOwn(args, reasonKey)) {
      const modelReason = args[reasonKey];
      delete args[reasonKey];
      if (context["reason"] === undefined && typeof modelReason === "string") context["reason"] = modelReason;
    }
    return deepFreeze({
      tool: this.policyTool(toolName),
      arguments: plainObject(rawInput) ? args : (rawInput as Record<string, unknown>),
      context: context as CallContext,
      input,
    });
  }

  /** The policy's decision for the call; recorded, a deny counted towards escalation, before it returns. */
  async decide(call: GateCall): Promise<Verdict> {
    const decision = await this.veto.protect({ tool: call.tool, arguments: call.arguments, context: call.context });
    if (decision.action === "allow") return { kind: "allow", decision };
    if (decision.action === "deny") return { kind: "deny", decision, message: denyMessage(decision) };
    return { kind: "approval", decision, message: pauseMessage(decision) };
  }

  /**
   * On resume: claim the approval of `decisionId` for exactly this call
   * (waitForApproval with the call: the digest must match, the approval must
   * be backed by its records, and approved -> executed is the use-once
   * compare-and-set). `waitMs` 0 (the default) asks "is it approved now?"
   * once; Infinity waits until the approval expires. Never
   * throws: a refusal carries the ApprovalError's code (approval_pending when
   * no answer came in time).
   */
  async claim(decisionId: string, call: GateCall, { waitMs = 0 }: { waitMs?: number } = {}): Promise<Claim> {
    try {
      await this.veto.waitForApproval({
        decisionId,
        call: { tool: call.tool, arguments: call.arguments, context: call.context },
        ...(waitMs === Infinity ? {} : { timeoutMs: waitMs }),
      });
      return { ok: true };
    } catch (error) {
      const e = toError(error);
      const code = e instanceof VetoError ? e.code : "approval_unusable";
      if (code === "approval_timeout") {
        return { ok: false, code: "approval_pending", message: `decision ${decisionId} has no answer yet; resume once it is approved` };
      }
      return { ok: false, code, message: e.message };
    }
  }
}

/**
 * A tool call refused where it was to run (a tool wrapper, docs/integrations.md):
 * the message is the text the model reads; `reasonCode` is the policy's or the
 * approval's code.
 */
export class VetoToolRefusedError extends VetoError {
  override name = "VetoToolRefusedError";
  readonly reasonCode: string;
  readonly decisionId: string;

  constructor(reasonCode: string, decisionId: string, message: string) {
    super("denied", message);
    this.reasonCode = reasonCode;
    this.decisionId = decisionId;
  }
}

/** A JSON copy: what the model said, with nothing shared with the framework's object. */
function copyJson(value: Record<string, unknown>): Record<string, unknown> {
  try {
    return JSON.parse(JSON.stringify(value)) as Record<string, unknown>;
  } catch {
    return structuredClone(value);
  }
}

/** Same JSON text: the input a framework hands to execution is the one that was decided. */
export function sameInput(a: unknown, b: unknown): boolean {
  try {
    return canonical(a) === canonical(b);
  } catch {
    return false;
  }
}

/** A short fingerprint of a tool's input (SHA-256 of its canonical JSON): tells a kept decision from one for other arguments. */
export function inputFingerprint(input: unknown): string {
  return createHash("sha256").update(canonical(input)).digest("hex").slice(0, 32);
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    plainObject(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, v[k]]),
        )
      : v,
  );
}
