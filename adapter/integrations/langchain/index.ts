/**
 * "veto-crm/langchain": a createAgent middleware (LangChain.js 1.x on
 * LangGraph.js) that puts every tool call through Veto (docs/integrations.md).
 *
 *   allow             -> the tool runs once, with the frozen copy of what was decided;
 *   deny              -> an error ToolMessage naming the reason codes; the tool never runs;
 *   require_approval  -> interrupt() (LangGraph's pause, kept by the checkpointer);
 *                        resumed with Command({ resume }), the tool runs only when the
 *                        store says this exact call was approved, at most once;
 *                        when an approver amended it, the amended call runs as
 *                        its own decision says, with the amended input, once,
 *                        and its ToolMessage says so (docs/contract.md §6, amend).
 *
 * The decision is made in a LangGraph task, so when a resumed run replays the
 * tools node from the top the decision is read back from the checkpoint, not
 * made (and recorded, and waited for) a second time.
 */
import { randomUUID } from "node:crypto";
import { ToolMessage, createMiddleware } from "langchain";
import { interrupt, task } from "@langchain/langgraph";
import type { CallContext } from "../../call/input.js";
import { ToolGate, amendedNotice, refusedMessage, withAmendedNotice, type GateOptions } from "../gate.js";

/** What the application's context function receives: LangGraph's runtime (its `context` is what invoke's `context` option gave). */
export interface LangChainRun {
  readonly runtime: { readonly context?: unknown };
  readonly state: unknown;
  readonly toolCall: { readonly name: string; readonly id?: string | undefined };
}

export type VetoMiddlewareOptions = GateOptions<LangChainRun>;

/** The value of the interrupt a call that needs approval raises (`result.__interrupt__[i].value`). */
export interface VetoInterrupt {
  readonly type: "veto_approval";
  readonly decisionId: string;
  readonly tool: string;
  readonly arguments: Readonly<Record<string, unknown>>;
  readonly approvers: readonly string[];
  readonly reasons: readonly { readonly code: string; readonly message: string }[];
  readonly message: string;
}

/**
 * What to resume with: `new Command({ resume: { approved: true } })` once the
 * approval is given (veto.waitForApproval({ decisionId }) observes it), or
 * `{ approved: false }` to give up. The value is the application's wish, never
 * evidence: approved or not, the store decides.
 */
export interface VetoResume {
  readonly approved: boolean;
}

/** The decision as the task keeps it in the checkpoint (JSON). */
interface TaskVerdict {
  readonly kind: "allow" | "deny" | "approval";
  readonly decisionId: string;
  readonly message: string;
  readonly approvers: readonly string[];
  readonly reasons: readonly { readonly code: string; readonly message: string }[];
}

/** A pending Veto interrupt, with LangGraph's id for it (to resume several at once: `Command({ resume: { [interruptId]: value } })`). */
export type PendingVetoInterrupt = VetoInterrupt & { readonly interruptId: string | undefined };

/** The Veto interrupts of an invoke result (`result.__interrupt__`) or of a state snapshot's tasks. */
export function vetoInterrupts(source: unknown): PendingVetoInterrupt[] {
  const found: unknown[] = [];
  const s = source as { __interrupt__?: unknown; tasks?: { interrupts?: unknown[] }[] } | null;
  if (Array.isArray(s?.__interrupt__)) found.push(...(s.__interrupt__ as unknown[]));
  if (Array.isArray(s?.tasks)) for (const t of s.tasks) if (Array.isArray(t.interrupts)) found.push(...t.interrupts);
  const pending: PendingVetoInterrupt[] = [];
  for (const i of found) {
    const { id, value } = (i ?? {}) as { id?: unknown; value?: Partial<VetoInterrupt> };
    if (value?.type === "veto_approval" && typeof value.decisionId === "string") {
      pending.push({ ...(value as VetoInterrupt), interruptId: typeof id === "string" ? id : undefined });
    }
  }
  return pending;
}

/**
 * The middleware. Needs a checkpointer and a thread_id (interrupt() does);
 * with `PostgresSaver` the pause survives the process.
 */
export function vetoMiddleware(options: VetoMiddlewareOptions) {
  const gate = new ToolGate<LangChainRun>(options, "vetoMiddleware");
  /** Nonces of the decisions made in this process just now (not read back from a checkpoint). */
  const fresh = new Set<string>();
  const decide = task(
    "veto_decision",
    async (call: { tool: string; arguments: Record<string, unknown>; context: CallContext; nonce: string }): Promise<TaskVerdict> => {
      fresh.add(call.nonce);
      const verdict = await gate.decide({ tool: call.tool, arguments: call.arguments, context: call.context, input: {} });
      const { decision } = verdict;
      return {
        kind: verdict.kind,
        decisionId: decision.id,
        message: verdict.kind === "allow" ? "" : verdict.message,
        approvers: [...decision.approvers],
        reasons: decision.reasons.map((r) => ({ code: r.code, message: r.message })),
      };
    },
  );
  return createMiddleware({
    name: "Veto",
    wrapToolCall: async (request, handler) => {
      const { name, id } = request.toolCall;
      const refuse = (content: string): ToolMessage => new ToolMessage({ content, tool_call_id: id ?? "", name, status: "error" });
      const call = await gate.call(name, request.toolCall.args, {
        runtime: request.runtime,
        state: request.state,
        toolCall: request.toolCall,
      });
      const nonce = randomUUID();
      const verdict = await decide({ tool: call.tool, arguments: { ...call.arguments }, context: { ...call.context }, nonce });
      const decidedNow = fresh.delete(nonce);
      const run = () => handler({ ...request, toolCall: { ...request.toolCall, args: call.input as Record<string, unknown> } });
      if (verdict.kind === "deny") return refuse(verdict.message);
      if (verdict.kind === "allow") {
        if (decidedNow) return await run();
        // An allow read back from the checkpoint (the node ran again after a later pause) is not evidence: decided again.
        const again = await gate.decide(call);
        return again.kind === "allow" ? await run() : refuse(again.message);
      }
      const pause: VetoInterrupt = {
        type: "veto_approval",
        decisionId: verdict.decisionId,
        tool: call.tool,
        arguments: call.arguments,
        approvers: verdict.approvers,
        reasons: verdict.reasons,
        message: verdict.message,
      };
      const answer = interrupt<VetoInterrupt, Partial<VetoResume> | null | undefined>(pause);
      if (answer?.approved === false) {
        return refuse(refusedMessage({ code: "declined", message: `the application declined decision ${verdict.decisionId}` }));
      }
      // The resume value is not evidence: the store says whether this exact call was approved, and the claim makes it once.
      const claim = await gate.claim(verdict.decisionId, call);
      if (!claim.ok) return refuse(refusedMessage(claim));
      if (claim.amended === undefined) return await run();
      // Amended by the approver: the tool runs the amended input, not the args LangGraph replays; its message says so.
      const amended = claim.amended;
      const result = await handler({ ...request, toolCall: { ...request.toolCall, args: claim.run.input as Record<string, unknown> } });
      if (!ToolMessage.isInstance(result)) return result;
      const content = withAmendedNotice(result.content, amended);
      return new ToolMessage({
        content:
          typeof content === "string"
            ? content
            : ([{ type: "text", text: amendedNotice(amended) }, ...(result.content as object[])] as ToolMessage["content"]),
        tool_call_id: result.tool_call_id,
        ...(result.name === undefined ? {} : { name: result.name }),
        ...(result.status === undefined ? {} : { status: result.status }),
        ...(result.artifact === undefined ? {} : { artifact: result.artifact as unknown }),
        ...(result.id === undefined ? {} : { id: result.id }),
      });
    },
  });
}
