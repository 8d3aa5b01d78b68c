/**
 * "veto-crm/ai-sdk": Veto for the Vercel AI SDK 7 through its own tool
 * approval (docs/integrations.md). AI SDK 7 needs Node 22; nothing else in
 * veto-crm does.
 *
 *   toolApproval   allow -> "not-applicable" (runs); deny -> "denied" with the
 *                  codes (the model reads them as the denied tool output);
 *                  require_approval -> "user-approval", the request's reason
 *                  naming the Veto decision.
 *   on resume      the SDK asks toolApproval again for every approved
 *                  response in the history, which the client controls: the
 *                  answer is "denied" unless the store's use-once claim for
 *                  exactly this call succeeds, whatever the response says.
 *                  When an approver amended the call, the amended call's
 *                  decision answers (claimed once when it allows) and execute
 *                  runs the amended input, its result saying so
 *                  (docs/contract.md §6, amend).
 *   tools()        wraps each tool's execute: it runs with the frozen input
 *                  that was decided or claimed; a call that did not come
 *                  through toolApproval (code that does not use it) is decided
 *                  there, and one needing approval waits for it (as guard does).
 *   activeTools()  the tools the policy shows this context (tool hiding): the
 *                  bundle's visibility entrypoint (docs/contract.md §4b), or
 *                  the visibility option when given.
 */
import type { ModelMessage, ToolApprovalStatus, ToolExecutionOptions, ToolSet } from "ai";
import type { CallContext } from "../../call/input.js";
import { VetoOptionsError } from "../../common/errors.js";
import { toolVisibility } from "../../veto.js";
import {
  ToolGate,
  VetoToolRefusedError,
  decisionIdIn,
  inputFingerprint,
  refusedMessage,
  sameInput,
  withAmendedNotice,
  type Amended,
  type GateCall,
  type GateOptions,
} from "../gate.js";

/** What the application's context function receives: the run's runtimeContext, and the tool's context when there is one. */
export interface AiSdkRun {
  readonly runtimeContext: unknown;
  readonly toolContext?: unknown;
}

/** Whether the policy shows a tool to a context: the shape of the policy's visibility entrypoint's answer. */
export type ToolVisibility = (query: {
  readonly tool: string;
  readonly context: CallContext;
}) => boolean | { readonly visible: boolean } | Promise<boolean | { readonly visible: boolean }>;

export interface VetoAiSdkOptions extends GateOptions<AiSdkRun> {
  /**
   * For activeTools(): whether a tool is shown to the context. Default: the
   * policy's own answer, the bundle's visibility entrypoint
   * (docs/contract.md §4b) through the veto; give it only to override.
   */
  readonly visibility?: ToolVisibility;
  /**
   * How long a wrapped tool called without toolApproval waits for an approval
   * (then refused, approval_pending). Default: until the approval expires.
   */
  readonly approvalTimeoutMs?: number;
}

/** The toolApproval function's argument (AI SDK's GenericToolApprovalFunction), the parts read here. */
export interface ToolApprovalRequestInfo {
  readonly toolCall: { readonly toolName: string; readonly toolCallId: string; readonly input: unknown };
  readonly messages: readonly ModelMessage[];
  readonly runtimeContext?: unknown;
  readonly toolsContext?: unknown;
}

export interface VetoAiSdk {
  /** Pass as `toolApproval` to generateText, streamText or ToolLoopAgent. */
  readonly toolApproval: (request: ToolApprovalRequestInfo) => Promise<ToolApprovalStatus>;
  /** The tools, each execute wrapped (see above). */
  tools<T extends ToolSet>(tools: T): T;
  /**
   * The names of the tools the policy shows to this run's context; pass as
   * `activeTools`. A failed check hides the tool; a veto not made by
   * createVeto (without a visibility option) is a VetoOptionsError.
   */
  activeTools(names: Iterable<string>, run: AiSdkRun): Promise<string[]>;
}

/** The tool-approval-request the history holds for a tool call, if any. */
function approvalRequestOf(messages: readonly ModelMessage[], toolCallId: string): { reason?: string } | undefined {
  for (const message of messages) {
    if (message.role !== "assistant" || typeof message.content === "string") continue;
    for (const part of message.content) {
      if (part.type === "tool-approval-request" && part.toolCallId === toolCallId) return part;
    }
  }
  return undefined;
}

export function vetoAiSdk(options: VetoAiSdkOptions): VetoAiSdk {
  const { visibility, approvalTimeoutMs, ...gateOptions } = options ?? ({} as VetoAiSdkOptions);
  const gate = new ToolGate<AiSdkRun>(gateOptions, "vetoAiSdk");
  if (visibility !== undefined && typeof visibility !== "function") {
    throw new VetoOptionsError("vetoAiSdk: visibility must be a function ({ tool, context }) => boolean | { visible }");
  }
  if (approvalTimeoutMs !== undefined && !(typeof approvalTimeoutMs === "number" && approvalTimeoutMs >= 0)) {
    throw new VetoOptionsError("vetoAiSdk: approvalTimeoutMs must be a non-negative number of milliseconds");
  }
  // Without an override, the policy decides: its visibility entrypoint, evaluated by the veto
  // (a bundle without it, or a failed evaluation, answers hidden).
  const visible: ToolVisibility = visibility ?? ((query) => toolVisibility(gate.veto, query));
  /**
   * Calls allowed or claimed by toolApproval in this process, until their
   * execute takes them: by tool call id and input, so requests that share a
   * tool call id (ids come from the model, histories from clients) never
   * take each other's.
   */
  const ready = new Map<string, { call: GateCall; amended?: Amended }>();
  const readyKey = (toolCallId: string, input: unknown): string => `${toolCallId}\u0000${inputFingerprint(input)}`;
  /** `asked`: the input the SDK asked about (and will execute with); `run`: what runs, the same or an approver's amendment of it. */
  const keep = (toolCallId: string, asked: GateCall, run: GateCall = asked, amended?: Amended): void => {
    const key = readyKey(toolCallId, asked.input);
    ready.delete(key);
    ready.set(key, { call: run, ...(amended === undefined ? {} : { amended }) });
    // Bounded: a call whose execute never ran (an aborted run) is forgotten, oldest first.
    if (ready.size > 10_000) ready.delete(ready.keys().next().value!);
  };

  const toolApproval = async ({
    toolCall,
    messages,
    runtimeContext,
    toolsContext,
  }: ToolApprovalRequestInfo): Promise<ToolApprovalStatus> => {
    const { toolName, toolCallId, input } = toolCall;
    const toolContext = (toolsContext as Record<string, unknown> | undefined)?.[toolName];
    const call = await gate.call(toolName, input, { runtimeContext, toolContext });
    const request = approvalRequestOf(messages, toolCallId);
    if (request !== undefined) {
      // A continuation: the history (client-controlled) holds an approval for this call. Only the store can say yes.
      const decisionId = decisionIdIn(request.reason);
      if (decisionId === undefined) {
        return {
          type: "denied",
          reason: refusedMessage({ code: "unknown_decision", message: "the approval request names no Veto decision" }),
        };
      }
      const claim = await gate.claim(decisionId, call);
      if (!claim.ok) return { type: "denied", reason: refusedMessage(claim) };
      // Amended by the approver: the SDK executes with the input in its history; execute runs the amended call instead.
      keep(toolCallId, call, claim.run, claim.amended);
      if (claim.amended !== undefined) {
        return { type: "approved", reason: `approved in Veto as amended by the reviewer (decision ${claim.amended.decisionId})` };
      }
      return { type: "approved", reason: `approved in Veto (decision ${decisionId})` };
    }
    const verdict = await gate.decide(call);
    if (verdict.kind === "deny") return { type: "denied", reason: verdict.message };
    if (verdict.kind === "approval") return { type: "user-approval", reason: verdict.message };
    keep(toolCallId, call);
    return "not-applicable";
  };

  const wrap = (name: string, execute: (input: unknown, options: ToolExecutionOptions<unknown>) => unknown) => {
    return async (input: unknown, execution: ToolExecutionOptions<unknown>): Promise<unknown> => {
      const key = readyKey(execution.toolCallId, input);
      const decided = ready.get(key);
      ready.delete(key);
      if (decided?.amended !== undefined) {
        // The key matched the input the SDK asked about; what runs is the approver's amendment of it, once.
        return withAmendedNotice(await execute(decided.call.input, execution), decided.amended);
      }
      if (decided !== undefined && sameInput(decided.call.input, input)) return await execute(decided.call.input, execution);
      // Not through toolApproval (or for other input): decided here, as guard() does.
      const call = await gate.call(name, input, { runtimeContext: undefined, toolContext: execution.context });
      const verdict = await gate.decide(call);
      if (verdict.kind === "deny") {
        throw new VetoToolRefusedError(verdict.decision.reasons[0]?.code ?? "denied", verdict.decision.id, verdict.message);
      }
      if (verdict.kind === "approval") {
        const claim = await gate.claim(verdict.decision.id, call, { waitMs: approvalTimeoutMs ?? Infinity });
        if (!claim.ok) throw new VetoToolRefusedError(claim.code, verdict.decision.id, refusedMessage(claim));
        return withAmendedNotice(await execute(claim.run.input, execution), claim.amended);
      }
      return await execute(call.input, execution);
    };
  };

  return {
    toolApproval,
    tools(tools) {
      if (tools === null || typeof tools !== "object") throw new VetoOptionsError("vetoAiSdk.tools: pass the tool set { name: tool(...) }");
      const wrapped: Record<string, unknown> = {};
      for (const [name, tool] of Object.entries(tools)) {
        const execute = (tool as { execute?: unknown }).execute;
        wrapped[name] =
          typeof execute === "function"
            ? { ...tool, execute: wrap(name, execute as (input: unknown, options: ToolExecutionOptions<unknown>) => unknown) }
            : tool;
      }
      return wrapped as typeof tools;
    },
    async activeTools(names, run) {
      const shown: string[] = [];
      for (const name of names) {
        try {
          const call = await gate.call(name, {}, run);
          const answer = await visible({ tool: call.tool, context: call.context });
          if (answer === true || (typeof answer === "object" && answer !== null && answer.visible === true)) shown.push(name);
        } catch (error) {
          // A programmer's mistake (a veto createVeto did not make) says what to fix.
          if (error instanceof VetoOptionsError) throw error;
          // Fail closed: a tool whose visibility cannot be told is hidden.
        }
      }
      return shown;
    },
  };
}
