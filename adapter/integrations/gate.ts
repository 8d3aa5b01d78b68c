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
import { ApprovalError, VetoDeniedError, VetoError, VetoOptionsError, toError } from "../common/errors.js";
import { resumeApproval, type Veto } from "../veto.js";

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

/** An approver's amendment of a paused call (docs/contract.md §6, amend): what runs instead, and who made it. */
export interface Amended {
  /** The decision amended. */
  readonly from: string;
  /** The amended call's decision, which the call runs under. */
  readonly decisionId: string;
  /** The approver who amended it, when the store says. */
  readonly by: string | null;
  /** The amended arguments, as decided (the tool's input is these, with the reason argument). */
  readonly arguments: Readonly<Record<string, unknown>>;
}

/**
 * A resume's outcome: the call to run (`run`, frozen: the claimed call, or
 * the amended call an approver made of it, with `amended`), or a refusal.
 */
export type Claim =
  | { readonly ok: true; readonly run: GateCall; readonly amended?: Amended }
  | { readonly ok: false; readonly code: string; readonly message: string };

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

/** What the model reads before the result of an amended call: that a reviewer changed the arguments, and to what. */
export function amendedNotice(amended: Amended): string {
  return (
    `Note: the reviewer${amended.by === null ? "" : ` ${amended.by}`} amended this call's arguments before it ran ` +
    `(veto decision ${amended.from} -> ${amended.decisionId}); it ran once with ${JSON.stringify(amended.arguments)}, ` +
    `not with the arguments you gave.`
  );
}

/**
 * A tool's result with the amended notice (amendedNotice): a text result
 * gets it as its first line; any other result is wrapped as
 * `{ veto_amended: { note, by, arguments }, result }`.
 */
export function withAmendedNotice(result: unknown, amended: Amended | undefined): unknown {
  if (amended === undefined) return result;
  const note = amendedNotice(amended);
  if (typeof result === "string") return `${note}\n${result}`;
  return { veto_amended: { note, by: amended.by, arguments: amended.arguments }, result };
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
   * (resumeApproval: the digest must match, the approval must be backed by
   * its records, and approved -> executed is the use-once compare-and-set).
   * When an approver amended the call (docs/contract.md §6, amend), the
   * amended call is followed to its own decision instead: allowed or approved,
   * it is claimed once and returned to run, with its frozen arguments and the
   * model's reason argument; denied, rejected, expired, unanswered or already
   * executed, it is refused. The original never runs. `waitMs` 0 (the
   * default) asks "is it approved now?" once; Infinity waits until the
   * approval expires. Never throws: a refusal carries the error's code
   * (approval_pending when no answer came in time; the policy's code for an
   * amended call it denied).
   */
  async claim(decisionId: string, call: GateCall, { waitMs = 0 }: { waitMs?: number } = {}): Promise<Claim> {
    try {
      const resumed = await resumeApproval(this.veto, {
        decisionId,
        call: { tool: call.tool, arguments: call.arguments, context: call.context },
        ...(waitMs === Infinity ? {} : { timeoutMs: waitMs }),
        accept: (amended) => (amended.tool === call.tool && plainObject(amended.arguments) ? undefined : "it is not a call of this tool"),
      });
      if (resumed.amended === undefined) return { ok: true, run: call };
      const args = resumed.call.arguments as Readonly<Record<string, unknown>>;
      return {
        ok: true,
        run: deepFreeze({
          tool: call.tool,
          arguments: args,
          context: resumed.call.context as CallContext,
          input: this.#amendedInput(call, args),
        }),
        amended: { from: resumed.amended.from, decisionId: resumed.decisionId, by: resumed.amended.by, arguments: args },
      };
    } catch (error) {
      const e = toError(error);
      if (e instanceof VetoDeniedError) {
        // The reviewer's amendment of the call, denied by the policy: nothing runs.
        const { decision } = e;
        return {
          ok: false,
          code: decision.reasons[0]?.code ?? "denied",
          message: `the reviewer amended the call, and the policy denied the amended call (decision ${decision.id}): ${denyMessage(decision)}`,
        };
      }
      const code = e instanceof VetoError ? e.code : "approval_unusable";
      if (code === "approval_timeout") {
        const id = e instanceof ApprovalError ? e.decisionId : decisionId;
        return { ok: false, code: "approval_pending", message: `decision ${id} has no answer yet; resume once it is approved` };
      }
      return { ok: false, code, message: e.message };
    }
  }

  /**
   * The tool's input for amended arguments: them, copied, with the model's
   * reason argument as the original input had it (unless the amendment set
   * that argument itself: then exactly as decided).
   */
  #amendedInput(call: GateCall, args: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> {
    const input: Record<string, unknown> = copyJson(args);
    const key = this.#reasonArgument;
    if (key !== false && Object.hasOwn(call.input, key) && !Object.hasOwn(input, key)) input[key] = call.input[key];
    return deepFreeze(input);
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
