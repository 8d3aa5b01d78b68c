// veto-crm/openai-agents: needsApproval, the tool input guardrail,
// interruptions and RunState, with the SDK's own ScriptedModel, the real
// bundle and a real PostgreSQL; the paused run is restored in another process
// before the reviewer answers from a third (docs/integrations.md).
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { resolve } from "node:path";
import { RunState, Runner, run } from "@openai/agents";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Veto } from "../../../adapter/index.js";
import { vetoAgents, type VetoAgents } from "../../../adapter/integrations/openai-agents/index.js";
import { pgUrl, requireDist, testDatabase } from "../../helpers/postgres.js";
import { APPROVER } from "../../helpers/index.js";
import {
  APP_CONTEXT,
  THIRD_APPROVER,
  amendElsewhere,
  amendedArguments,
  answerElsewhere,
  movedApproversVeto,
  pgVeto,
  recentDenies,
  update,
} from "../helpers.js";
import { buildAgent } from "./agent.mjs";

const db = testDatabase();
const schema = db.schema("oa");
let veto: Veto;
let agents: VetoAgents;

beforeAll(async () => {
  veto = await pgVeto(schema);
  agents = vetoAgents({ veto, context: (rc) => (rc.context as { app: typeof APP_CONTEXT }).app, toolNames: { crm_update: "crm.update" } });
});
afterAll(async () => {
  await veto.close();
  await db.dropSchemas();
});

const ask = (args: Record<string, unknown>) => JSON.stringify(update(args));
/** A run's options: its own context object (the integration keeps its decisions there). */
const options = () => ({ context: { app: APP_CONTEXT } });

/** A paused run: the interruption, its decision, and the serialized RunState. */
async function paused(args: Record<string, unknown>) {
  const { agent, runs } = buildAgent(agents);
  const result = await run(agent, ask(args), options());
  expect(result.interruptions).toHaveLength(1);
  const [pending] = agents.pendingApprovals(result.state);
  expect(pending!.decisionId).toMatch(/^[0-9A-Z]{26}$/);
  expect(runs).toEqual([]);
  return { decisionId: pending!.decisionId!, text: result.state.toString() };
}

/** Restore the serialized state in a fresh agent, approve at the SDK level (the app's wish), run. */
async function resumeHere(text: string) {
  const { agent, runs } = buildAgent(agents);
  const state = await RunState.fromString(agent, text);
  for (const p of agents.pendingApprovals(state)) state.approve(p.item);
  const result = await run(agent, state);
  return { output: String(result.finalOutput), runs };
}

describe("veto-crm/openai-agents", () => {
  it("allow: the tool runs once with exactly the decided arguments", async () => {
    const { agent, runs } = buildAgent(agents);
    const result = await run(agent, ask({ amount: 100 }), options());
    expect(result.interruptions).toEqual([]);
    expect(result.finalOutput).toBe("tool said: updated opp_1");
    expect(runs).toEqual([update({ amount: 100 })]);
  });

  it("deny: no approval request, the tool never runs, the model reads the code; denies count towards escalation", async () => {
    const { agent, runs } = buildAgent(agents);
    const actor = () => ({ context: { app: { ...APP_CONTEXT, actorId: "agent:support-triage" } } });
    for (let i = 0; i < 3; i++) {
      const result = await run(agent, ask({ amount: 100, tenantId: "globex" }), actor());
      expect(result.interruptions).toEqual([]);
      expect(result.finalOutput).toMatch(/^tool said: Denied by policy \[wrong_tenant\]: /);
    }
    const next = await run(agent, ask({ amount: 100 }), actor());
    expect(next.finalOutput).toMatch(/repeated_denies/);
    expect(runs).toEqual([]);
  });

  it("require_approval: RunState restored in another process before the answer; approved from a third; runs exactly once; a second resume is already_executed", async () => {
    requireDist();
    const { decisionId, text } = await paused({ amount: 9000 });
    const child = spawn(process.execPath, [resolve(import.meta.dirname, "resume-child.mjs"), pgUrl(), schema], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    child.stdin.end(text);
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    expect((await lines.next()).value).toBe(`restored ${decisionId}`);
    await answerElsewhere(schema, decisionId, "approve");
    const outcome = JSON.parse((await lines.next()).value as string) as { pid: number; finalOutput: string; runs: unknown[] };
    expect(outcome.pid).not.toBe(process.pid);
    expect(outcome.finalOutput).toBe("tool said: updated opp_1");
    expect(outcome.runs).toEqual([update({ amount: 9000 })]);

    // The same serialized state resumed again: the store refuses the second claim; nothing runs.
    const again = await resumeHere(text);
    expect(again.output).toMatch(/^tool said: Not executed \[already_executed\]/);
    expect(again.runs).toEqual([]);
  });

  it("reject from another process: state.approve() does not override it; the tool never runs", async () => {
    const { decisionId, text } = await paused({ amount: 9000, recordId: "opp_2" });
    await answerElsewhere(schema, decisionId, "reject");
    const resumed = await resumeHere(text);
    expect(resumed.output).toMatch(/^tool said: Not executed \[approval_rejected\]/);
    expect(resumed.runs).toEqual([]);
  });

  it("a forged approval (state.approve() with no approval in the store) is refused", async () => {
    const { text } = await paused({ amount: 9000, recordId: "opp_3" });
    const resumed = await resumeHere(text);
    expect(resumed.output).toMatch(/^tool said: Not executed \[approval_pending\]/);
    expect(resumed.runs).toEqual([]);
  });

  it("edited arguments in the serialized state: refused (call_mismatch), the approval stays unused", async () => {
    const { decisionId, text } = await paused({ amount: 9000, recordId: "opp_4" });
    await answerElsewhere(schema, decisionId, "approve");
    const edited = text.replaceAll('\\"amount\\":9000', '\\"amount\\":240000');
    expect(edited).not.toBe(text);
    const resumed = await resumeHere(edited);
    expect(resumed.output).toMatch(/^tool said: Not executed \[call_mismatch\]/);
    expect(resumed.runs).toEqual([]);
    // Unused: the original call can still claim it.
    const original = await resumeHere(text);
    expect(original.runs).toEqual([update({ amount: 9000, recordId: "opp_4" })]);
  });

  it("with preApprovalInputGuardrails the run still pauses, and a deny is still refused", async () => {
    const runner = new Runner({ toolExecution: { preApprovalInputGuardrails: true } });
    const { agent, runs } = buildAgent(agents);
    const result = await runner.run(agent, ask({ amount: 9000, recordId: "opp_5" }), options());
    expect(agents.pendingApprovals(result.state)).toHaveLength(1);
    const denied = await runner.run(buildAgent(agents).agent, ask({ amount: 100, destination: "https://gmail.com/x" }), options());
    expect(denied.finalOutput).toMatch(/blocked_destination/);
    expect(runs).toEqual([]);
  });
});

describe("veto-crm/openai-agents: a call the approver amended (docs/contract.md §6, amend)", () => {
  const amendedOf = (args: Record<string, unknown>, amount: number) => amendedArguments(update(args), amount);

  it("amended to an allowed call: state.approve() and resume run the tool once with the amended input; the model reads that; a second resume runs nothing", async () => {
    const { decisionId, text } = await paused({ amount: 9000, recordId: "opp_am1" });
    const amended = amendedOf({ recordId: "opp_am1" }, 100);
    expect((await amendElsewhere(schema, decisionId, amended)).action).toBe("allow");
    const resumed = await resumeHere(text);
    expect(resumed.runs).toEqual([{ ...amended, reason: update()["reason"] }]);
    expect(resumed.output).toMatch(
      /^tool said: Note: the reviewer user:crm-owner@acme\.example amended this call's arguments before it ran/,
    );
    expect(resumed.output).toContain('"amount":100');
    expect(resumed.output).toMatch(/\nupdated opp_am1$/);
    const again = await resumeHere(text);
    expect(again.output).toMatch(/^tool said: Not executed \[already_executed\]/);
    expect(again.runs).toEqual([]);
  });

  it("amended to a call that needs approval (approved by the amender): runs once with the amended input", async () => {
    const { decisionId, text } = await paused({ amount: 9000, recordId: "opp_am2" });
    const amended = amendedOf({ recordId: "opp_am2" }, 8000);
    expect((await amendElsewhere(schema, decisionId, amended)).action).toBe("require_approval");
    const resumed = await resumeHere(text);
    expect(resumed.runs).toEqual([{ ...amended, reason: update()["reason"] }]);
    expect((await resumeHere(text)).runs).toEqual([]);
  });

  it("amended to a call the policy denies: never runs, the model reads the policy's code", async () => {
    const { decisionId, text } = await paused({ amount: 9000, recordId: "opp_am3" });
    expect((await amendElsewhere(schema, decisionId, amendedOf({ recordId: "opp_am3" }, 10_000_000))).action).toBe("deny");
    const resumed = await resumeHere(text);
    expect(resumed.output).toMatch(/^tool said: Not executed \[amount_over_limit\]: the reviewer amended the call/);
    expect(resumed.runs).toEqual([]);
  });

  it("amended, then the amendment rejected: never runs, and the rejection does not count towards the agent's escalation", async () => {
    const moved = await movedApproversVeto(schema);
    try {
      const { decisionId, text } = await paused({ amount: 9000, recordId: "opp_am4" });
      const before = await recentDenies(schema);
      const { decision } = await moved.amend({ decisionId, reviewerId: APPROVER, arguments: amendedOf({ recordId: "opp_am4" }, 7000) });
      expect(decision.action).toBe("require_approval");
      expect((await resumeHere(text)).output).toMatch(/^tool said: Not executed \[approval_pending\]/);
      await moved.reject({ decisionId: decision.id, reviewerId: THIRD_APPROVER });
      const resumed = await resumeHere(text);
      expect(resumed.output).toMatch(/^tool said: Not executed \[approval_rejected\]/);
      expect(resumed.runs).toEqual([]);
      expect(await recentDenies(schema)).toBe(before);
    } finally {
      await moved.close();
    }
  });
});
