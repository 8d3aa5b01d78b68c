/**
 * "veto-crm/openai-agents": Veto for the OpenAI Agents SDK (JS) function
 * tools, through the SDK's own approval machinery (docs/integrations.md).
 *
 *   needsApproval     decides the call (once per call id): true only for
 *                     require_approval, so a deny never becomes an approval request;
 *   input guardrail   runs just before execution: a deny -> rejectContent (the
 *                     model reads the codes, the tool never runs); an approved
 *                     call -> the store's use-once claim for exactly this call,
 *                     whatever the RunState says (state.approve() is the
 *                     application's wish, not evidence). When an approver
 *                     amended the call, the amended call's decision answers
 *                     (claimed once when it allows), and the tool's invoke runs
 *                     the amended input instead of the model's, its output
 *                     saying so (docs/contract.md §6, amend).
 *
 * The decision of each call id is kept in the run's context (the `veto`
 * field of `runContext.context`), so it travels in `RunState.toString()` and
 * a run restored in another process resumes without deciding again. Nothing
 * kept there is trusted to let a call run: an allow read back from a
 * restored state is decided again, an approval is claimed in the store.
 */
import {
  ToolGuardrailFunctionOutputFactory,
  defineToolInputGuardrail,
  type FunctionTool,
  type RunContext,
  type RunState,
  type RunToolApprovalItem,
} from "@openai/agents";
import { VetoOptionsError } from "../../common/errors.js";
import {
  ToolGate,
  inputFingerprint,
  refusedMessage,
  sameInput,
  withAmendedNotice,
  type Amended,
  type GateCall,
  type GateOptions,
} from "../gate.js";

/** The tool input as the gate copies it (a JSON object, else nothing): what a claim was made for. */
function gateInput(value: unknown): unknown {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? value : {};
}

export type VetoAgentsOptions = GateOptions<RunContext<unknown>>;

/** What is kept of one call's decision in the run's context (JSON). */
export interface KeptDecision {
  readonly decisionId: string;
  readonly action: "allow" | "deny" | "require_approval";
  /** The text the model reads (deny) or the approval request's text (require_approval). */
  readonly message: string;
  /** Which input it decided (inputFingerprint): a call id seen again with other arguments is decided anew. */
  readonly input: string;
}

/** A call the run is paused on, with the Veto decision to approve (veto serve, veto.approve()). */
export interface PendingApproval {
  readonly item: RunToolApprovalItem;
  readonly callId: string;
  readonly decisionId: string | undefined;
  readonly message: string | undefined;
}

const FIELD = "veto";

function keptOf(context: unknown): Record<string, KeptDecision> | undefined {
  if (context === null || typeof context !== "object") return undefined;
  const holder = context as Record<string, unknown>;
  const field = holder[FIELD];
  if (field === undefined) {
    // A context that cannot take the field (frozen, sealed) keeps nothing: every call is then decided where it runs.
    if (!Object.isExtensible(holder)) return undefined;
    const fresh: Record<string, KeptDecision> = {};
    holder[FIELD] = { decisions: fresh };
    return fresh;
  }
  const decisions: unknown = field !== null && typeof field === "object" ? (field as { decisions?: unknown }).decisions : undefined;
  return decisions !== null && typeof decisions === "object" ? (decisions as Record<string, KeptDecision>) : undefined;
}

export interface VetoAgents {
  /** The tool, governed: needsApproval and an input guardrail set (the tool's own needsApproval is replaced; its guardrails stay, after Veto's). */
  tool<T extends FunctionTool<any, any, any>>(tool: T): T; // eslint-disable-line @typescript-eslint/no-explicit-any -- FunctionTool's own type parameters
  /** The calls a run (or a restored RunState) is paused on, each with its Veto decision id. */
  pendingApprovals(state: RunState<any, any>): PendingApproval[]; // eslint-disable-line @typescript-eslint/no-explicit-any -- any context, any agent
}

export function vetoAgents(options: VetoAgentsOptions): VetoAgents {
  const gate = new ToolGate<RunContext<unknown>>(options, "vetoAgents");
  /** Allows decided in this process, by call id: the only allows trusted without deciding again. */
  const allowed = new Map<string, { decisionId: string; input: unknown }>();
  const remember = (callId: string, decisionId: string, input: unknown): void => {
    allowed.set(callId, { decisionId, input });
    // Bounded: an allowed call whose guardrail never ran (the run was abandoned) is forgotten, oldest first.
    if (allowed.size > 10_000) allowed.delete(allowed.keys().next().value!);
  };

  /**
   * Calls whose approval an approver amended, claimed by the guardrail, by
   * call id, until the tool's invoke takes them: the input the SDK will invoke
   * with, and the amended call to run instead (docs/contract.md §6, amend).
   */
  const amendedRuns = new Map<string, { asked: unknown; run: GateCall; amended: Amended }>();

  const decideAndKeep = async (runContext: RunContext<unknown>, callId: string | undefined, call: GateCall): Promise<KeptDecision> => {
    const verdict = await gate.decide(call);
    const kept: KeptDecision = {
      decisionId: verdict.decision.id,
      action: verdict.decision.action,
      message: verdict.kind === "allow" ? "" : verdict.message,
      input: inputFingerprint(call.input),
    };
    if (callId !== undefined) {
      const decisions = keptOf(runContext.context);
      if (decisions !== undefined) decisions[callId] = kept;
      if (kept.action === "allow") remember(callId, kept.decisionId, call.input);
    }
    return kept;
  };

  const guardrail = defineToolInputGuardrail<unknown>({
    name: "veto",
    run: async ({ context, toolCall }) => {
      const { callId, name } = toolCall;
      let input: unknown;
      try {
        input = JSON.parse(toolCall.arguments);
      } catch {
        input = toolCall.arguments;
      }
      const call = await gate.call(name, input, context);
      const kept = keptOf(context.context)?.[callId];
      const sdk = context.isToolApproved({ toolName: name, callId });
      if (kept === undefined) {
        // Not decided by needsApproval (or the context that kept it was replaced on restore).
        if (sdk === true) {
          return ToolGuardrailFunctionOutputFactory.rejectContent(
            refusedMessage({ code: "unknown_decision", message: `no Veto decision is kept for call ${callId} in this run's context` }),
          );
        }
        const fresh = await decideAndKeep(context, callId, call);
        if (fresh.action === "allow") {
          allowed.delete(callId);
          return ToolGuardrailFunctionOutputFactory.allow({ decisionId: fresh.decisionId });
        }
        return ToolGuardrailFunctionOutputFactory.rejectContent(fresh.message);
      }
      if (kept.action === "deny") return ToolGuardrailFunctionOutputFactory.rejectContent(kept.message);
      if (kept.action === "allow") {
        const mine = allowed.get(callId);
        allowed.delete(callId);
        if (mine?.decisionId === kept.decisionId && sameInput(mine.input, call.input)) {
          return ToolGuardrailFunctionOutputFactory.allow({ decisionId: kept.decisionId });
        }
        // An allow read back from a restored state, or for other arguments: decided again.
        const again = await gate.decide(call);
        if (again.kind === "allow") return ToolGuardrailFunctionOutputFactory.allow({ decisionId: again.decision.id });
        return ToolGuardrailFunctionOutputFactory.rejectContent(again.message);
      }
      // require_approval. Before the SDK has an answer (preApprovalInputGuardrails), let the run pause.
      if (sdk === undefined) return ToolGuardrailFunctionOutputFactory.allow({ decisionId: kept.decisionId, pending: true });
      const claim = await gate.claim(kept.decisionId, call);
      if (!claim.ok) return ToolGuardrailFunctionOutputFactory.rejectContent(refusedMessage(claim));
      if (claim.amended !== undefined) {
        // The SDK invokes the tool with the arguments the model gave: the wrapped invoke runs the amendment instead, once.
        amendedRuns.set(callId, { asked: call.input, run: claim.run, amended: claim.amended });
        if (amendedRuns.size > 10_000) amendedRuns.delete(amendedRuns.keys().next().value!);
        return ToolGuardrailFunctionOutputFactory.allow({ decisionId: claim.amended.decisionId, amendedFrom: kept.decisionId });
      }
      return ToolGuardrailFunctionOutputFactory.allow({ decisionId: kept.decisionId });
    },
  });

  return {
    tool(tool) {
      if (tool === null || typeof tool !== "object" || tool.type !== "function" || typeof tool.invoke !== "function") {
        throw new VetoOptionsError("vetoAgents.tool: pass a function tool made by tool() from @openai/agents");
      }
      const needsApproval = async (runContext: RunContext, input: unknown, callId?: string): Promise<boolean> => {
        // Answered at the SDK level already (a resumed run asks again): the guardrail decides.
        if (callId !== undefined && runContext.isToolApproved({ toolName: tool.name, callId }) !== undefined) return true;
        const call = await gate.call(tool.name, input, runContext);
        const kept = callId === undefined ? undefined : keptOf(runContext.context)?.[callId];
        if (kept !== undefined && kept.input === inputFingerprint(call.input)) return kept.action === "require_approval";
        return (await decideAndKeep(runContext, callId, call)).action === "require_approval";
      };
      const invoke: typeof tool.invoke = async (runContext, input, details) => {
        const callId = details?.toolCall?.callId;
        const amended = callId === undefined ? undefined : amendedRuns.get(callId);
        if (callId === undefined || amended === undefined) return (await tool.invoke(runContext, input, details)) as unknown;
        amendedRuns.delete(callId);
        let given: unknown;
        try {
          given = JSON.parse(input);
        } catch {
          given = input;
        }
        // Not the input the guardrail claimed for: run nothing (the amendment stays claimed, unrun: at most once).
        if (!sameInput(gateInput(given), amended.asked)) {
          return refusedMessage({
            code: "call_mismatch",
            message: `the amended call ${amended.amended.decisionId} was claimed for other input`,
          });
        }
        return withAmendedNotice(await tool.invoke(runContext, JSON.stringify(amended.run.input), details), amended.amended);
      };
      return { ...tool, invoke, needsApproval, inputGuardrails: [guardrail, ...(tool.inputGuardrails ?? [])] };
    },
    pendingApprovals(state) {
      const decisions = keptOf(state._context.context);
      return state.getInterruptions().map((item) => {
        const callId = (item.rawItem as { callId?: string }).callId ?? "";
        const kept = decisions?.[callId];
        return { item, callId, decisionId: kept?.decisionId, message: kept?.message };
      });
    },
  };
}
