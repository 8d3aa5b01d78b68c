/**
 * One MCP tools/call, governed (docs/mcp.md, "Guarantees"): decided before
 * anything runs; a deny answered as an isError result naming the code and the
 * upstream never called; an approval waited for (with progress notifications
 * and an URL elicitation when the host takes them), claimed use-once and only
 * then the call forwarded, once, with exactly the arguments decided
 * (docs/contract.md §6). The MCP proxy and the registerTool wrapper share it.
 * Nothing here touches stdout: records go to the veto's sink, the log to its
 * logger.
 */
import type { Logger } from "pino";
import type { Veto } from "../veto.js";
import type { Decision } from "../common/decision.js";
import { ApprovalError, VetoDeniedError, toError } from "../common/errors.js";
import { resumeApproval } from "../veto.js";
import { safeLog } from "../common/logger.js";
import type { MappedCall } from "./tool-map.js";

/** A tool result (MCP CallToolResult), as plain data: this module does not import the MCP SDK. */
export interface ToolResult {
  [key: string]: unknown;
  content: { type: "text"; text: string }[];
  isError?: boolean;
  _meta?: Record<string, unknown>;
}

/** Where a refusal's details go in a result's `_meta`. */
export const META_KEY = "veto-crm/decision";

/** The context every call of this door is decided with (docs/contract.md §1); reason and requestId come per call. */
export interface BaseContext {
  readonly actorId: string;
  readonly tenantId: string;
  readonly environment: string;
  readonly sourceSystem?: string;
  readonly sessionId?: string;
  readonly onBehalfOf?: string;
}

export interface GovernOptions {
  readonly veto: Veto;
  readonly context: BaseContext;
  /** "wait": wait for an answer (someone can give one: a shared store, an approval service); "unavailable": refuse at once with approval_unavailable. */
  readonly approvals: "wait" | "unavailable";
  /** Longest wait for an approval, ms. */
  readonly approvalTimeoutMs: number;
  /** Where a person answers: sent as an URL elicitation to hosts that take one. `{decisionId}` is replaced by the decision's id. */
  readonly inboxUrl?: string | undefined;
  /** How often a waiting call sends a progress notification (to hosts that asked for progress), ms. */
  readonly progressIntervalMs: number;
  readonly log: Logger;
}

/** What the host's side of one call offers. */
export interface CallChannel {
  /** Fires when the host cancels the request (or its transport closes). */
  readonly signal: AbortSignal;
  /** The host's progressToken, when it asked for progress. */
  readonly progressToken?: string | number | undefined;
  readonly requestId?: string | undefined;
  readonly sendProgress: (params: { progressToken: string | number; progress: number; message: string }) => Promise<void>;
  /** Present when the host supports URL elicitation: ask the user to open `url`; resolves with the user's action. */
  readonly elicitUrl?:
    | ((params: { elicitationId: string; url: string; message: string }, signal: AbortSignal) => Promise<"accept" | "decline" | "cancel">)
    | undefined;
  /** Tell the host an URL elicitation's out-of-band part is complete. */
  readonly completeElicitation?: ((elicitationId: string) => Promise<void>) | undefined;
}

/** A forward that failed; `code` names how (upstream_timeout, upstream_failed, upstream_error). */
export class UpstreamFailure extends Error {
  override name = "UpstreamFailure";
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** A refusal's details for programs, under META_KEY: the code and, when one was made, the decision. */
export function decisionMeta(code: string, decision?: Decision, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    code,
    ...(decision === undefined
      ? {}
      : {
          decisionId: decision.id,
          action: decision.action,
          escalated: decision.escalated,
          reasons: decision.reasons,
          approvers: decision.approvers,
          bundle: decision.bundle,
        }),
    ...extra,
  };
}

/** An isError result naming the code, the message and the decision; details in `_meta` for programs. */
export function refusal(code: string, text: string, decision?: Decision, extra: Record<string, unknown> = {}): ToolResult {
  return { isError: true, content: [{ type: "text", text }], _meta: { [META_KEY]: decisionMeta(code, decision, extra) } };
}

function denied(decision: Decision): ToolResult {
  const codes = decision.reasons.map((r) => r.code);
  const escalated = decision.escalated ? " The actor is escalated to incident review." : "";
  return refusal(
    codes[0] ?? "denied",
    `Denied by policy (${codes.join(", ")}): ${decision.reason}.${escalated} Nothing was run. Decision ${decision.id}.`,
    decision,
  );
}

const elicitationUrl = (template: string, decisionId: string): string =>
  template.replaceAll("{decisionId}", encodeURIComponent(decisionId));

/**
 * Decide `call` and run `forward(args)` only as the decision allows. `args`
 * is what is forwarded: the MCP arguments the call was mapped from (frozen
 * here, so nothing changes them between decision and forward). `reason` is
 * the call's reason, undefined when it gave none.
 */
export async function governCall(
  options: GovernOptions,
  call: MappedCall,
  args: Record<string, unknown>,
  reason: unknown,
  channel: CallChannel,
  forward: (args: Record<string, unknown>, signal: AbortSignal) => Promise<ToolResult>,
  unmap: (amended: MappedCall) => Record<string, unknown> | undefined = identityUnmap(call),
): Promise<ToolResult> {
  deepFreeze(args);
  const context = {
    ...options.context,
    ...(reason === undefined ? {} : { reason }),
    ...(channel.requestId === undefined ? {} : { requestId: channel.requestId }),
  };
  const decided = { tool: call.tool, arguments: call.arguments, context };
  const decision = await options.veto.protect(decided);
  if (decision.action === "deny") return denied(decision);
  let run: { args: Record<string, unknown>; amended?: AmendedRun } = { args };
  if (decision.action === "require_approval") {
    const waited = await waitForApproval(options, decision, decided, channel, unmap);
    if (waited.refused !== undefined) return waited.refused;
    if (waited.amended !== undefined) run = waited.amended;
  }
  try {
    const result = await forward(run.args, channel.signal);
    return run.amended === undefined ? result : withAmendment(result, run.amended);
  } catch (error) {
    const failure = toError(error);
    const code = failure instanceof UpstreamFailure ? failure.code : "upstream_error";
    const id = run.amended?.decisionId ?? decision.id;
    safeLog(options.log, { err: failure, decision_id: id, tool: call.tool }, "forwarded call failed");
    return refusal(code, `${failure.message} Decision ${id} allowed the call; it may or may not have run.`, decision);
  }
}

/** An approver's amendment of a waiting call (docs/contract.md §6, amend): what is forwarded instead. */
interface AmendedRun {
  readonly from: string;
  readonly decisionId: string;
  readonly by: string | null;
  /** The amended call's arguments, as decided (the policy's). */
  readonly arguments: unknown;
}

/** Without a tool map entry, the amended arguments are the MCP arguments (the policy tool must be the same). */
function identityUnmap(call: MappedCall): (amended: MappedCall) => Record<string, unknown> | undefined {
  return (amended) => (amended.tool === call.tool ? amended.arguments : undefined);
}

/** The upstream's result of an amended call, saying so first (text the model reads) and in `_meta`. */
function withAmendment(result: ToolResult, amended: AmendedRun): ToolResult {
  const note =
    `Note: the reviewer${amended.by === null ? "" : ` ${amended.by}`} amended this call's arguments before it ran ` +
    `(decision ${amended.from} -> ${amended.decisionId}); it ran once with ${JSON.stringify(amended.arguments)}, not with the arguments you gave.`;
  const content = Array.isArray(result.content) ? result.content : [];
  return {
    ...result,
    content: [{ type: "text", text: note }, ...content],
    _meta: {
      ...(result._meta ?? {}),
      [META_KEY]: { amended: { from: amended.from, decisionId: amended.decisionId, by: amended.by, arguments: amended.arguments } },
    },
  };
}

/**
 * Wait for the answer and claim it (use-once), following an approver's
 * amendment to its own decision (resumeApproval); `{ args }` to forward (the
 * amended call's MCP arguments, with `amended`, when amended), else the
 * refusal to answer with.
 */
async function waitForApproval(
  options: GovernOptions,
  decision: Decision,
  call: { tool: string; arguments: Record<string, unknown>; context: object },
  channel: CallChannel,
  unmap: (amended: MappedCall) => Record<string, unknown> | undefined,
): Promise<{ refused?: ToolResult; amended?: { args: Record<string, unknown>; amended: AmendedRun } }> {
  const approvers = decision.approvers.join(", ");
  if (options.approvals === "unavailable") {
    return {
      refused: refusal(
        "approval_unavailable",
        `Approval required (${decision.reasons.map((r) => r.code).join(", ")}) from ${approvers}, but no approval can be given here ` +
          `(no shared store and no approval service): the call was not run. Decision ${decision.id}.`,
        decision,
      ),
    };
  }
  const stop = new AbortController();
  let declined: "decline" | "cancel" | undefined;
  const onHostAbort = (): void => stop.abort(channel.signal.reason);
  if (channel.signal.aborted) onHostAbort();
  else channel.signal.addEventListener("abort", onHostAbort, { once: true });

  // Progress keeps a host that resets its timeout on progress waiting, and tells the user what is awaited.
  let heartbeat: NodeJS.Timeout | undefined;
  if (channel.progressToken !== undefined) {
    const token = channel.progressToken;
    let n = 0;
    const beat = (): void => {
      n += 1;
      channel
        .sendProgress({ progressToken: token, progress: n, message: `waiting for approval of decision ${decision.id} by ${approvers}` })
        .catch(() => {});
    };
    beat();
    heartbeat = setInterval(beat, options.progressIntervalMs);
  }

  // The elicitation only sends the user to the inbox: its "accept" approves nothing (the store decides).
  const elicitation = new AbortController();
  let elicited = false;
  if (options.inboxUrl !== undefined && channel.elicitUrl !== undefined) {
    elicited = true;
    const url = elicitationUrl(options.inboxUrl, decision.id);
    channel
      .elicitUrl(
        { elicitationId: decision.id, url, message: `This call needs approval by ${approvers}: open the inbox to answer it.` },
        elicitation.signal,
      )
      .then(
        (action) => {
          if (action !== "accept") {
            declined = action;
            stop.abort(new Error(`the user chose ${action} on the approval link`));
          }
        },
        (error: unknown) => {
          if (!elicitation.signal.aborted)
            safeLog(options.log, { err: toError(error), decision_id: decision.id }, "url elicitation failed; still waiting");
        },
      );
  }

  try {
    let forwarded: Record<string, unknown> | undefined;
    const resumed = await resumeApproval(options.veto, {
      decisionId: decision.id,
      call,
      timeoutMs: options.approvalTimeoutMs,
      signal: stop.signal,
      // Forwarded is exactly what was decided: the amended call must map back to the MCP arguments it came from.
      accept: (amended) => {
        const mapped = plainObject(amended.arguments) ? { tool: amended.tool, arguments: amended.arguments } : undefined;
        forwarded = mapped === undefined ? undefined : unmap(mapped);
        return forwarded === undefined ? "its arguments do not map back to this MCP tool's arguments" : undefined;
      },
    });
    if (resumed.amended === undefined) return {};
    const { from, by } = resumed.amended;
    return {
      amended: {
        args: deepFrozen(structuredClone(forwarded!)),
        amended: { from, decisionId: resumed.decisionId, by, arguments: resumed.call.arguments },
      },
    };
  } catch (error) {
    if (error instanceof VetoDeniedError) {
      const d = error.decision;
      const codes = d.reasons.map((r) => r.code);
      return {
        refused: refusal(
          codes[0] ?? "denied",
          `The reviewer amended the call, and the policy denied the amended call (${codes.join(", ")}): ${d.reason}. Nothing was run. Decision ${d.id}.`,
          d,
          { amendedFrom: decision.id },
        ),
      };
    }
    if (declined !== undefined) {
      return {
        refused: refusal(
          "approval_declined",
          `The user chose ${declined} on the approval link: the call was not run. Decision ${decision.id}.`,
          decision,
        ),
      };
    }
    const code = error instanceof ApprovalError ? error.code : "approval_unavailable";
    return { refused: refusal(code, `Not run (${code}): ${toError(error).message}. Decision ${decision.id}.`, decision) };
  } finally {
    clearInterval(heartbeat);
    channel.signal.removeEventListener("abort", onHostAbort);
    elicitation.abort();
    if (elicited && declined === undefined) channel.completeElicitation?.(decision.id).catch(() => {});
  }
}

function plainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function deepFrozen<T>(value: T): T {
  deepFreeze(value);
  return value;
}

/**
 * Freezes `value` and everything in it, one level after another rather than
 * by recursion: arguments nested deeper than the stack (an agent's, before
 * protect() has refused them past limits.maxDepth) must reach the decision,
 * to be denied and recorded, not end the call with a RangeError.
 */
function deepFreeze(value: unknown): void {
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const next = pending.pop();
    if (next === null || typeof next !== "object" || Object.isFrozen(next)) continue;
    Object.freeze(next);
    for (const child of Object.values(next)) pending.push(child);
  }
}
