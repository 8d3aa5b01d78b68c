// veto-crm/langchain: a createAgent middleware with LangChain's own fake
// tool-calling model, LangGraph's interrupt()/Command, the PostgresSaver
// checkpointer, the real bundle and a real PostgreSQL (docs/integrations.md).
import { AIMessage, HumanMessage, ToolMessage, createAgent, createMiddleware, tool, type BaseMessage } from "langchain";
import { fakeModel } from "@langchain/core/testing";
import { Command, MemorySaver, interrupt, type BaseCheckpointSaver } from "@langchain/langgraph";
import { PostgresSaver } from "@langchain/langgraph-checkpoint-postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { Veto } from "../../../adapter/index.js";
import { vetoInterrupts, vetoMiddleware } from "../../../adapter/integrations/langchain/index.js";
import { pino } from "pino";
import { createVeto } from "../../../adapter/index.js";
import { postgres } from "../../../adapter/postgres/index.js";
import { APPROVER, requireBundle } from "../../helpers/index.js";
import { pgUrl, testDatabase } from "../../helpers/postgres.js";
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

const db = testDatabase();
const schema = db.schema("lc");
const lgSchema = db.schema("lc_graph");
let veto: Veto;
let saver: PostgresSaver;

beforeAll(async () => {
  veto = await pgVeto(schema);
  saver = PostgresSaver.fromConnString(pgUrl(), { schema: lgSchema });
  await saver.setup();
});
afterAll(async () => {
  await veto.close();
  await saver.end();
  await db.dropSchemas();
});

/** The CRM the tool writes to: every execution, with the arguments it got. */
class Crm {
  readonly runs: Record<string, unknown>[] = [];
  readonly tool = tool(
    async (args: Record<string, unknown>) => {
      this.runs.push(args);
      return `updated ${String(args["recordId"])}`;
    },
    {
      name: "crm_update",
      description: "Update a CRM record",
      schema: z.object({
        object: z.string(),
        recordId: z.string(),
        tenantId: z.string(),
        changes: z.record(z.string(), z.unknown()),
        amount: z.number().optional(),
        reason: z.string(),
      }),
    },
  );
}

/** LangChain's fake model: calls crm_update with the JSON in the last human message, then reports the tool's answer. */
function scriptedModel() {
  const model = fakeModel();
  for (let i = 0; i < 40; i++) {
    model.respond((messages: BaseMessage[]) => {
      const last = messages.at(-1)!;
      if (ToolMessage.isInstance(last)) return new AIMessage(`tool said: ${last.text}`);
      const human = messages.filter((m) => HumanMessage.isInstance(m)).at(-1)!;
      return new AIMessage({ content: "", tool_calls: [{ id: `tc_${i}`, name: "crm_update", args: JSON.parse(human.text) }] });
    });
  }
  return model;
}

/** An agent as an application builds it: context from the app (invoke's `context`), tool names mapped to the policy's. */
function agentFor(crm: Crm, checkpointer: BaseCheckpointSaver = saver, model = scriptedModel(), on: Veto = veto) {
  const middleware = vetoMiddleware({
    veto: on,
    context: ({ runtime }) => (runtime.context as { veto: typeof APP_CONTEXT }).veto,
    toolNames: { crm_update: "crm.update" },
  });
  return createAgent({ model, tools: [crm.tool], middleware: [middleware], checkpointer });
}

let thread = 0;
const config = () => ({ configurable: { thread_id: `t${++thread}` }, context: { veto: APP_CONTEXT } });
const ask = (input: Record<string, unknown>) => ({ messages: [new HumanMessage(JSON.stringify(input))] });
const lastText = (r: { messages: BaseMessage[] }) => r.messages.at(-1)?.text;
const toolMessages = (r: { messages: BaseMessage[] }) => r.messages.filter((m) => ToolMessage.isInstance(m)).map((m) => m.text);

describe("veto-crm/langchain", () => {
  it("allow: the tool runs once with exactly the decided arguments", async () => {
    const crm = new Crm();
    const r = await agentFor(crm, new MemorySaver()).invoke(ask(update({ amount: 100 })), config());
    expect(crm.runs).toEqual([update({ amount: 100 })]);
    expect(lastText(r)).toBe("tool said: updated opp_1");
  });

  it("deny: the tool never runs, the model reads the code, and denies count towards escalation", async () => {
    const crm = new Crm();
    const agent = agentFor(crm, new MemorySaver());
    const actor = { ...APP_CONTEXT, actorId: "agent:support-triage" };
    const cfg = () => ({ ...config(), context: { veto: actor } });
    for (let i = 0; i < 3; i++) {
      const r = await agent.invoke(ask(update({ tenantId: "globex" })), cfg());
      expect(toolMessages(r)).toEqual([expect.stringMatching(/^Denied by policy \[wrong_tenant\]: /)]);
    }
    // The next call of that actor, harmless on its own, is denied as a repeated attempt.
    const r = await agent.invoke(ask(update({ amount: 100 })), cfg());
    expect(toolMessages(r)[0]).toMatch(/repeated_denies/);
    expect(crm.runs).toEqual([]);
  });

  it("require_approval: pauses, survives the checkpointer, an approval from another process runs it exactly once", async () => {
    const crm = new Crm();
    const cfg = config();
    const first = await agentFor(crm).invoke(ask(update({ amount: 9000 })), cfg);
    const [pause] = vetoInterrupts(first);
    expect(pause).toMatchObject({ type: "veto_approval", tool: "crm.update", approvers: expect.arrayContaining([expect.any(String)]) });
    expect(pause!.reasons.map((r) => r.code)).toContain("production_amount");
    expect(crm.runs).toEqual([]);

    // Another process approves; a new agent (new checkpointer object, as after a restart) resumes from PostgreSQL.
    const pid = await answerElsewhere(schema, pause!.decisionId, "approve");
    expect(pid).not.toBe(process.pid);
    const resumedSaver = PostgresSaver.fromConnString(pgUrl(), { schema: lgSchema });
    try {
      const snapshot = await agentFor(crm, resumedSaver).graph.getState(cfg);
      expect(vetoInterrupts(snapshot).map((p) => p.decisionId)).toEqual([pause!.decisionId]);
      const done = await agentFor(crm, resumedSaver).invoke(new Command({ resume: { approved: true } }), cfg);
      expect(lastText(done)).toBe("tool said: updated opp_1");
      expect(crm.runs).toEqual([update({ amount: 9000 })]);

      // The step replayed from the paused checkpoint (time travel) decides the call anew: the executed
      // approval is not used again, the new decision has no answer, nothing runs.
      const history = [];
      for await (const s of agentFor(crm, resumedSaver).graph.getStateHistory(cfg)) history.push(s);
      const paused = history.find((s) => vetoInterrupts(s).length > 0)!;
      const replay = await agentFor(crm, resumedSaver).invoke(new Command({ resume: { approved: true } }), {
        ...cfg,
        configurable: { ...cfg.configurable, checkpoint_id: paused.config.configurable!["checkpoint_id"] as string },
      });
      expect(toolMessages(replay).at(-1)).toMatch(/^Not executed \[approval_pending\]/);
      expect(toolMessages(replay).at(-1)).not.toContain(pause!.decisionId);
      expect(crm.runs).toHaveLength(1);
    } finally {
      await resumedSaver.end();
    }
  });

  it("reject from another process: resumed, the tool never runs and the model reads approval_rejected", async () => {
    const crm = new Crm();
    const cfg = config();
    const [pause] = vetoInterrupts(await agentFor(crm).invoke(ask(update({ amount: 9000, recordId: "opp_2" })), cfg));
    await answerElsewhere(schema, pause!.decisionId, "reject");
    const done = await agentFor(crm).invoke(new Command({ resume: { approved: true } }), cfg);
    expect(toolMessages(done)).toEqual([expect.stringMatching(/^Not executed \[approval_rejected\]/)]);
    expect(crm.runs).toEqual([]);
  });

  it("a forged approval (resume says approved, the store does not) is refused", async () => {
    const crm = new Crm();
    const cfg = config();
    await agentFor(crm).invoke(ask(update({ amount: 9000, recordId: "opp_3" })), cfg);
    const done = await agentFor(crm).invoke(new Command({ resume: { approved: true } }), cfg);
    expect(toolMessages(done)).toEqual([expect.stringMatching(/^Not executed \[approval_pending\]/)]);
    expect(crm.runs).toEqual([]);
  });

  it("two resumes at once on one thread: the tool runs once, the other is refused already_executed", async () => {
    const crm = new Crm();
    const cfg = config();
    const [pause] = vetoInterrupts(await agentFor(crm).invoke(ask(update({ amount: 9000, recordId: "opp_5" })), cfg));
    await answerElsewhere(schema, pause!.decisionId, "approve");
    const savers = [0, 1].map(() => PostgresSaver.fromConnString(pgUrl(), { schema: lgSchema }));
    try {
      const both = await Promise.all(savers.map((s) => agentFor(crm, s).invoke(new Command({ resume: { approved: true } }), cfg)));
      const said = both.map((r) => toolMessages(r).at(-1)!).sort();
      expect(said).toEqual([expect.stringMatching(/^Not executed \[already_executed\]/), "updated opp_5"]);
      expect(crm.runs).toEqual([update({ amount: 9000, recordId: "opp_5" })]);
    } finally {
      await Promise.all(savers.map((s) => s.end()));
    }
  });

  it("two calls paused in one step: each resumed by its interrupt id; the approved one runs, the rejected one never", async () => {
    const crm = new Crm();
    const cfg = config();
    const model = fakeModel();
    const calls = [update({ amount: 9000, recordId: "opp_a" }), update({ amount: 8000, recordId: "opp_b" })];
    model.respondWithTools(calls.map((args, i) => ({ name: "crm_update", args, id: `tc_ab${i}` })));
    for (let i = 0; i < 4; i++) model.respond(new AIMessage("done"));
    const agent = agentFor(crm, saver, model);
    const pauses = vetoInterrupts(await agent.invoke(ask({}), cfg));
    expect(pauses.map((p) => p.arguments["recordId"]).sort()).toEqual(["opp_a", "opp_b"]);
    expect(new Set(pauses.map((p) => p.interruptId)).size).toBe(2);
    const a = pauses.find((p) => p.arguments["recordId"] === "opp_a")!;
    const b = pauses.find((p) => p.arguments["recordId"] === "opp_b")!;
    await answerElsewhere(schema, a.decisionId, "approve");
    await answerElsewhere(schema, b.decisionId, "reject");
    const done = await agent.invoke(
      new Command({ resume: { [a.interruptId!]: { approved: true }, [b.interruptId!]: { approved: true } } }),
      cfg,
    );
    expect(toolMessages(done).sort()).toEqual([expect.stringMatching(/^Not executed \[approval_rejected\]/), "updated opp_a"]);
    expect(crm.runs).toEqual([calls[0]]);
  });

  it("an allow read back from the checkpoint (another middleware paused after it) is decided again on resume", async () => {
    const crm = new Crm();
    // An actor of its own (globex lists no actors), so no other test's denies count here.
    const actor = { actorId: "agent:confirming", tenantId: "globex", environment: "production" };
    const cfg = { ...config(), context: { veto: actor } };
    const confirm = createMiddleware({
      name: "Confirm",
      wrapToolCall: async (request, handler) => {
        interrupt({ type: "confirm" });
        return await handler(request);
      },
    });
    const middleware = vetoMiddleware({
      veto,
      context: ({ runtime }) => (runtime.context as { veto: typeof APP_CONTEXT }).veto,
      toolNames: { crm_update: "crm.update" },
    });
    const agent = createAgent({ model: scriptedModel(), tools: [crm.tool], middleware: [middleware, confirm], checkpointer: saver });
    const first = await agent.invoke(ask(update({ amount: 100, recordId: "opp_7", tenantId: "globex" })), cfg);
    expect((first as { __interrupt__?: { value: unknown }[] }).__interrupt__?.map((i) => i.value)).toEqual([{ type: "confirm" }]);
    expect(vetoInterrupts(first)).toEqual([]);
    // Meanwhile the actor is denied three times: its next decision is escalated.
    for (let i = 0; i < 3; i++) {
      const d = await veto.protect({ tool: "crm.update", arguments: update({ tenantId: "acme" }), context: actor });
      expect(d.reasons.map((r) => r.code)).toContain("wrong_tenant");
    }
    const done = await agent.invoke(new Command({ resume: true }), cfg);
    expect(toolMessages(done)).toEqual([expect.stringMatching(/repeated_denies/)]);
    expect(crm.runs).toEqual([]);
  });

  it("edited arguments on resume: the approval does not carry over; the edited call never runs", async () => {
    const crm = new Crm();
    const cfg = config();
    const agent = agentFor(crm);
    const [pause] = vetoInterrupts(await agent.invoke(ask(update({ amount: 9000, recordId: "opp_4" })), cfg));
    await answerElsewhere(schema, pause!.decisionId, "approve");
    // The client rewrites the paused tool call's arguments in the thread, then resumes.
    const state = await agent.graph.getState(cfg);
    const proposal = [...(state.values as { messages: BaseMessage[] }).messages]
      .reverse()
      .find((m) => AIMessage.isInstance(m)) as AIMessage;
    const edited = new AIMessage({
      id: proposal.id!,
      content: "",
      tool_calls: proposal.tool_calls!.map((c) => ({ ...c, args: { ...c.args, amount: 240000 } })),
    });
    await agent.graph.updateState(cfg, { messages: [edited] });
    const done = await agent.invoke(new Command({ resume: { approved: true } }), cfg);
    // The edited call is a new decision (no answer yet): refused; the approval of the original is not used.
    expect(toolMessages(done).at(-1)).toMatch(/^Not executed \[approval_pending\]/);
    expect(toolMessages(done).at(-1)).not.toContain(pause!.decisionId);
    await expect(veto.waitForApproval({ decisionId: pause!.decisionId })).resolves.toMatchObject({ status: "approved" });
    expect(crm.runs).toEqual([]);
  });

  it("record state: the CRM record changed after the approval; on resume the call is refused record_changed and never runs", async () => {
    // The application's CRM keeps a version per record; the approval is bound to the version it had (docs/contract.md §6).
    const versions = new Map<string, number>();
    const bound = await createVeto({
      bundle: requireBundle(),
      logger: pino({ level: "silent" }),
      approvalPollMs: 50,
      recordState: (call) => `v${versions.get(String(call.arguments["recordId"])) ?? 1}`,
      store: postgres({ connectionString: pgUrl(), schema, records: true }),
    });
    try {
      const crm = new Crm();
      const cfg = config();
      const [pause] = vetoInterrupts(
        await agentFor(crm, saver, scriptedModel(), bound).invoke(ask(update({ amount: 9000, recordId: "opp_v" })), cfg),
      );
      await answerElsewhere(schema, pause!.decisionId, "approve");
      versions.set("opp_v", 2);
      const done = await agentFor(crm, saver, scriptedModel(), bound).invoke(new Command({ resume: { approved: true } }), cfg);
      expect(toolMessages(done)).toEqual([expect.stringMatching(/^Not executed \[record_changed\]/)]);
      expect(crm.runs).toEqual([]);
      // The refusal is recorded; the approval was not claimed.
      const records = await db.pool.query<{ line: string }>(
        `SELECT line FROM "${schema}".records WHERE decision_id = $1 AND type = 'execution'`,
        [pause!.decisionId],
      );
      expect(records.rows.map((r) => JSON.parse(r.line).result)).toEqual([{ execution: "refused", reason: "record_changed" }]);
    } finally {
      await bound.close();
    }
  });
});

describe("veto-crm/langchain: a call the approver amended (docs/contract.md §6, amend)", () => {
  /** A paused call on a new thread: its input, its pause, its config. */
  async function pausedCall(crm: Crm, recordId: string) {
    const cfg = config();
    const input = update({ amount: 9000, recordId });
    const [pause] = vetoInterrupts(await agentFor(crm).invoke(ask(input), cfg));
    expect(pause).toBeDefined();
    return { cfg, input, decisionId: pause!.decisionId };
  }
  const resume = (crm: Crm, cfg: ReturnType<typeof config>, checkpointer: BaseCheckpointSaver = saver) =>
    agentFor(crm, checkpointer).invoke(new Command({ resume: { approved: true } }), cfg);

  it("amended to an allowed call: two resumes at once run the tool once, with the amended input, and its message says so", async () => {
    const crm = new Crm();
    const { cfg, input, decisionId } = await pausedCall(crm, "opp_am1");
    const amended = amendedArguments(input, 100);
    expect((await amendElsewhere(schema, decisionId, amended)).action).toBe("allow");
    const savers = [0, 1].map(() => PostgresSaver.fromConnString(pgUrl(), { schema: lgSchema }));
    try {
      const both = await Promise.all(savers.map((s) => resume(crm, cfg, s)));
      const said = both.map((r) => toolMessages(r).at(-1)!).sort();
      expect(said[0]).toMatch(/^Not executed \[already_executed\]/);
      expect(said[1]).toMatch(/^Note: the reviewer user:crm-owner@acme\.example amended this call's arguments before it ran/);
      expect(said[1]).toContain('"amount":100');
      expect(said[1]).toMatch(/\nupdated opp_am1$/);
    } finally {
      await Promise.all(savers.map((s) => s.end()));
    }
    expect(crm.runs).toEqual([{ ...amended, reason: input["reason"] }]);
    // Resumed again later: nothing runs.
    await resume(crm, cfg);
    expect(crm.runs).toHaveLength(1);
  });

  it("amended to a call that needs approval (approved by the amender): runs once with the amended input", async () => {
    const crm = new Crm();
    const { cfg, input, decisionId } = await pausedCall(crm, "opp_am2");
    const amended = amendedArguments(input, 8000);
    expect((await amendElsewhere(schema, decisionId, amended)).action).toBe("require_approval");
    const done = await resume(crm, cfg);
    expect(toolMessages(done).at(-1)).toMatch(/^Note: the reviewer .* amended this call's arguments[\s\S]*updated opp_am2$/);
    expect(crm.runs).toEqual([{ ...amended, reason: input["reason"] }]);
  });

  it("amended to a call the policy denies: never runs, the model reads the policy's code", async () => {
    const crm = new Crm();
    const { cfg, input, decisionId } = await pausedCall(crm, "opp_am3");
    expect((await amendElsewhere(schema, decisionId, amendedArguments(input, 10_000_000))).action).toBe("deny");
    const done = await resume(crm, cfg);
    expect(toolMessages(done).at(-1)).toMatch(/^Not executed \[amount_over_limit\]: the reviewer amended the call/);
    expect(crm.runs).toEqual([]);
  });

  it("amended, then the amendment rejected: never runs, and the rejection does not count towards the agent's escalation", async () => {
    const moved = await movedApproversVeto(schema);
    try {
      const crm = new Crm();
      const { cfg, input, decisionId } = await pausedCall(crm, "opp_am4");
      const before = await recentDenies(schema);
      const { decision } = await moved.amend({ decisionId, reviewerId: APPROVER, arguments: amendedArguments(input, 7000) });
      expect(decision.action).toBe("require_approval");
      await moved.reject({ decisionId: decision.id, reviewerId: THIRD_APPROVER });
      const done = await resume(crm, cfg);
      expect(toolMessages(done).at(-1)).toMatch(/^Not executed \[approval_rejected\]/);
      expect(crm.runs).toEqual([]);
      expect(await recentDenies(schema)).toBe(before);
    } finally {
      await moved.close();
    }
  });
});
