// What the three integrations share (adapter/integrations/gate.ts), on
// generated calls: the call a resume rebuilds from the framework's tool call
// claims the approval of the call that was decided, whatever the order of its
// keys, and only that call: one changed value anywhere is call_mismatch; the
// context is the application's, the model's reason moves into it. An
// approver's amendment of a paused call is followed to its own decision: run
// once with the amended input when allowed or approved, never otherwise, and
// nothing that becomes of it counts towards the agent's escalation.
// FC_SEED=<n> reproduces a failing run; fast-check prints the seed of every failure.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ToolGate, decisionIdIn, denyMessage, pauseMessage } from "../../adapter/integrations/gate.js";
import { pino } from "pino";
import { VetoOptionsError, createVeto, type CallContext } from "../../adapter/index.js";
import { InMemoryStore } from "../../adapter/history/store.js";
import { APPROVER, FakeClock, MemorySink, OTHER_APPROVER, bundleData, makeVeto, requireBundle, write } from "../helpers/index.js";
import { APP_CONTEXT, update } from "./helpers.js";

const SEED = Number(process.env["FC_SEED"] ?? 20261130);

const leaf = fc.oneof(
  fc.string({ unit: "binary-ascii", maxLength: 8 }),
  fc.string({ unit: "grapheme", maxLength: 6 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
);
const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    leaf,
    fc.array(tie("value"), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 5 }), tie("value"), { maxKeys: 3 }),
  ),
})).value;
/** Extra tool arguments a model might add (never the contract's typed fields). */
const extras = fc.dictionary(fc.constantFrom("note", "meta", "tags", "x", "ünï", "nested"), json, { maxKeys: 3 });

/** The same object with its keys in reverse order, at every depth. */
function reversed(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversed);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .reverse()
        .map(([k, v]) => [k, reversed(v)]),
    );
  }
  return value;
}

/** Every path to a leaf of an object, for changing one value. */
function leaves(value: unknown, path: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(value)) return value.flatMap((v, i) => leaves(v, [...path, i]));
  if (value !== null && typeof value === "object") return Object.entries(value).flatMap(([k, v]) => leaves(v, [...path, k]));
  return [path];
}

function changedAt(value: Record<string, unknown>, path: (string | number)[]): Record<string, unknown> {
  const copy = structuredClone(value);
  let at: Record<string | number, unknown> = copy;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>;
  const last = path.at(-1)!;
  const old = at[last];
  at[last] =
    typeof old === "string" ? `${old}!` : typeof old === "number" ? (old === 0 ? 1 : -old) : typeof old === "boolean" ? !old : "changed";
  return copy;
}

describe("the integrations' gate", () => {
  it(`a resumed call claims exactly its own approval, once (seed ${SEED})`, async () => {
    const { veto } = await makeVeto();
    const gate = new ToolGate<{ app: CallContext }>({ veto, context: (run) => run.app, toolNames: { crm_update: "crm.update" } }, "test");
    await fc.assert(
      fc.asyncProperty(extras, fc.integer({ min: 5000, max: 250000 }), async (extra, amount) => {
        const input = update({ amount, ...extra });
        const call = await gate.call("crm_update", input, { app: APP_CONTEXT });
        expect(call.tool).toBe("crm.update");
        expect(call.context).toEqual({ ...APP_CONTEXT, reason: input["reason"] });
        expect(call.arguments).not.toHaveProperty("reason");
        expect(Object.isFrozen(call.input)).toBe(true);
        const verdict = await gate.decide(call);
        expect(verdict.kind).toBe("approval");
        expect(decisionIdIn(pauseMessage(verdict.decision))).toBe(verdict.decision.id);
        const id = verdict.decision.id;
        // Before any answer: pending, not executed.
        expect(await gate.claim(id, call)).toMatchObject({ ok: false, code: "approval_pending" });
        await veto.approve({ decisionId: id, reviewerId: APPROVER });
        // One value changed anywhere in the input: another call.
        for (const path of leaves(input)) {
          const other = await gate.call("crm_update", changedAt(input, path), { app: APP_CONTEXT });
          expect(await gate.claim(id, other)).toMatchObject({ ok: false, code: "call_mismatch" });
        }
        // Another actor's context: another call.
        const elsewhere = await gate.call("crm_update", input, { app: { ...APP_CONTEXT, actorId: "agent:support-triage" } });
        expect(await gate.claim(id, elsewhere)).toMatchObject({ ok: false, code: "call_mismatch" });
        // The same call rebuilt from a tool call with its keys in another order: claimed once.
        const rebuilt = await gate.call("crm_update", reversed(input), { app: APP_CONTEXT });
        expect(await gate.claim(id, rebuilt)).toEqual({ ok: true, run: rebuilt });
        expect(await gate.claim(id, call)).toMatchObject({ ok: false, code: "already_executed" });
      }),
      { seed: SEED, numRuns: 100 },
    );
    await veto.close();
  });

  it("the application's reason wins over the model's; reasonArgument renames or turns it off", async () => {
    const { veto } = await makeVeto();
    const input = update({ amount: 100, why: "model says" });
    const named = new ToolGate<null>({ veto, context: () => APP_CONTEXT, reasonArgument: "why" }, "test");
    expect((await named.call("crm.update", input, null)).context.reason).toBe("model says");
    const off = new ToolGate<null>({ veto, context: () => APP_CONTEXT, reasonArgument: false }, "test");
    expect((await off.call("crm.update", input, null)).arguments).toHaveProperty("reason");
    expect((await off.call("crm.update", input, null)).context).not.toHaveProperty("reason");
    const app = new ToolGate<null>({ veto, context: () => ({ ...APP_CONTEXT, reason: "app says" }) }, "test");
    const call = await app.call("crm.update", input, null);
    expect(call.context.reason).toBe("app says");
    expect(call.input).toEqual(input);
    // Only the contract's context fields are taken from the application.
    const extra = new ToolGate<null>({ veto, context: () => ({ ...APP_CONTEXT, tool: "x", arguments: {} }) }, "test");
    expect(Object.keys((await extra.call("crm.update", input, null)).context).sort()).toEqual([
      "actorId",
      "environment",
      "reason",
      "tenantId",
    ]);
    await veto.close();
  });

  it("a deny's text names every code; bad options are a VetoOptionsError saying what to fix", async () => {
    const { veto } = await makeVeto();
    const gate = new ToolGate<null>({ veto, context: () => APP_CONTEXT }, "test");
    const verdict = await gate.decide(await gate.call("crm.update", update({ tenantId: "globex" }), null));
    expect(verdict.kind).toBe("deny");
    expect(denyMessage(verdict.decision)).toMatch(/^Denied by policy \[wrong_tenant\]: /);
    expect(() => new ToolGate({ veto: {} as never, context: () => APP_CONTEXT }, "x")).toThrow(VetoOptionsError);
    expect(() => new ToolGate({ veto, context: "app" as never }, "x")).toThrow(/context must be a function/);
    expect(() => new ToolGate({ veto, context: () => APP_CONTEXT, toolNames: { a: "" } }, "x")).toThrow(/toolNames/);
    expect(() => new ToolGate({ veto, context: () => APP_CONTEXT, reasonArgument: "" }, "x")).toThrow(/reasonArgument/);
    const broken = new ToolGate<null>({ veto, context: () => "nobody" as never }, "test");
    await expect(broken.call("crm.update", {}, null)).rejects.toThrow(VetoOptionsError);
    await veto.close();
  });
});

/** A memory sink whose records can be read back, so instances sharing it check each other's answers (as on PostgreSQL). */
class ReadableSink extends MemorySink {
  async readRecords(decisionId: string): Promise<readonly Record<string, unknown>[]> {
    return this.records.filter((r) => r.decision_id === decisionId);
  }
}

const THIRD_APPROVER = "user:cfo@acme.example";

/**
 * Two instances on one store and one sink: `same` decides with the test data;
 * `moved` with acme's approvers changed to [OTHER_APPROVER, THIRD_APPROVER]
 * (a data change between the pause and the amendment), so an amendment made
 * there by APPROVER needs another approver's answer, which may be a rejection.
 */
async function twoInstances() {
  const store = new InMemoryStore();
  const sink = new ReadableSink();
  const clock = new FakeClock();
  const base = {
    bundle: requireBundle(),
    logger: pino({ level: "silent" }),
    recordSink: sink,
    store,
    clock: clock.now,
    approvalPollMs: 20,
  };
  const data = bundleData() as { veto: { config: { tenants: Record<string, Record<string, unknown>> } } };
  const moved = structuredClone(data);
  moved.veto.config.tenants["acme"]!["approvers"] = [OTHER_APPROVER, THIRD_APPROVER];
  const same = await createVeto(base);
  const other = await createVeto({ ...base, data: moved });
  return { store, sink, clock, same, other, close: async () => Promise.all([same.close(), other.close()]) };
}

type Step = { amount: number; where: "same" | "other"; answer: "approve" | "reject" | "none" };
const step: fc.Arbitrary<Step> = fc.record({
  amount: fc.oneof(
    fc.integer({ min: 1, max: 4999 }),
    fc.integer({ min: 5000, max: 250_000 }),
    fc.integer({ min: 250_001, max: 20_000_000 }),
  ),
  where: fc.constantFrom("same", "other"),
  answer: fc.constantFrom("approve", "reject", "none"),
});

describe("the gate on an amended call (docs/contract.md §6, amend)", () => {
  it(`a resume runs the amendment as its decision says, once, with the model's reason; never the original; nothing of it counts (seed ${SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 5 }), extras, async (steps, extra) => {
        const t = await twoInstances();
        try {
          const gate = new ToolGate<null>({ veto: t.same, context: () => APP_CONTEXT, toolNames: { crm_update: "crm.update" } }, "test");
          let ran = 0;
          for (const [i, s] of steps.entries()) {
            const input = update({ amount: 9000, recordId: `opp_${i}`, ...extra });
            const call = await gate.call("crm_update", input, null);
            const verdict = await gate.decide(call);
            expect(verdict.kind).toBe("approval");
            const original = verdict.decision.id;
            const amendedArgs = { ...call.arguments, amount: s.amount };
            const amender = s.where === "same" ? t.same : t.other;
            const { decision } = await amender.amend({ decisionId: original, reviewerId: APPROVER, arguments: amendedArgs });
            const expected = s.amount < 5000 ? "allow" : s.amount <= 250_000 ? "require_approval" : "deny";
            expect(decision.action).toBe(expected);
            // Approved by the amender (same approvers), or waiting for another's answer.
            let approved = expected === "require_approval" && s.where === "same";
            if (expected === "require_approval" && s.where === "other" && s.answer !== "none") {
              const reviewer = s.answer === "approve" ? OTHER_APPROVER : THIRD_APPROVER;
              await t.other[s.answer === "approve" ? "approve" : "reject"]({ decisionId: decision.id, reviewerId: reviewer });
              approved = s.answer === "approve";
            }
            const first = await gate.claim(original, call);
            if (expected === "allow" || approved) {
              expect(first.ok).toBe(true);
              if (!first.ok) continue;
              ran += 1;
              expect(first.amended).toEqual({ from: original, decisionId: decision.id, by: APPROVER, arguments: amendedArgs });
              expect(first.run.arguments).toEqual(amendedArgs);
              expect(first.run.input).toEqual({ ...amendedArgs, reason: input["reason"] });
              expect(first.run.context).toEqual(call.context);
              expect(Object.isFrozen(first.run.input)).toBe(true);
            } else {
              const code = expected === "deny" ? "amount_over_limit" : s.answer === "reject" ? "approval_rejected" : "approval_pending";
              expect(first).toMatchObject({ ok: false, code });
            }
            // A second resume never runs anything; the original can never be claimed.
            const second = await gate.claim(original, call);
            expect(second.ok).toBe(false);
            if (first.ok) expect(second).toMatchObject({ code: "already_executed" });
            const plain = await t.same.waitForApproval({ decisionId: original, call, timeoutMs: 0 }).catch((e: unknown) => e);
            expect(plain).toMatchObject({ code: "amended" });
          }
          expect(ran).toBe(
            steps.filter((s) => s.amount < 5000 || (s.amount <= 250_000 && (s.where === "same" || s.answer === "approve"))).length,
          );
          // No deny, rejection or refusal of an amended call counted towards the agent's escalation.
          for (const veto of [t.same, t.other]) {
            const next = await veto.protect(write({ amount: 10 }));
            expect(next.action).toBe("allow");
            expect(next.escalated).toBe(false);
          }
          expect(await t.store.countRecentDenies(APP_CONTEXT.actorId, APP_CONTEXT.tenantId, 0)).toBe(0);
        } finally {
          await t.close();
        }
      }),
      { seed: SEED, numRuns: 25 },
    );
  });

  it("rejections: three of amended calls do not escalate the agent; three of its own calls do", async () => {
    const t = await twoInstances();
    const gate = new ToolGate<null>({ veto: t.same, context: () => APP_CONTEXT, toolNames: { crm_update: "crm.update" } }, "test");
    for (let i = 0; i < 3; i++) {
      const call = await gate.call("crm_update", update({ amount: 9000, recordId: `opp_a${i}` }), null);
      const original = (await gate.decide(call)).decision.id;
      const { decision } = await t.other.amend({
        decisionId: original,
        reviewerId: APPROVER,
        arguments: { ...call.arguments, amount: 8000 },
      });
      await t.other.reject({ decisionId: decision.id, reviewerId: THIRD_APPROVER });
      expect(await gate.claim(original, call)).toMatchObject({ ok: false, code: "approval_rejected" });
    }
    const after = await t.same.protect(write({ amount: 10 }));
    expect(after).toMatchObject({ action: "allow", escalated: false });
    for (let i = 0; i < 3; i++) {
      const call = await gate.call("crm_update", update({ amount: 9000, recordId: `opp_b${i}` }), null);
      await t.same.reject({ decisionId: (await gate.decide(call)).decision.id, reviewerId: APPROVER });
    }
    const escalated = await t.same.protect(write({ amount: 10 }));
    expect(escalated.escalated).toBe(true);
    await t.close();
  });

  it("an amended call that is itself amended is followed; an expired amendment is refused; a store without claimExecution runs nothing", async () => {
    const t = await twoInstances();
    const gate = new ToolGate<null>({ veto: t.same, context: () => APP_CONTEXT }, "test");
    const call = await gate.call("crm.update", update({ amount: 9000, recordId: "opp_c" }), null);
    const original = (await gate.decide(call)).decision.id;
    const first = await t.other.amend({ decisionId: original, reviewerId: APPROVER, arguments: { ...call.arguments, amount: 8000 } });
    const second = await t.other.amend({
      decisionId: first.decision.id,
      reviewerId: OTHER_APPROVER,
      arguments: { ...call.arguments, amount: 100 },
    });
    expect(second.decision.action).toBe("allow");
    const claimed = await gate.claim(original, call);
    expect(claimed).toMatchObject({ ok: true, amended: { from: first.decision.id, decisionId: second.decision.id, by: OTHER_APPROVER } });
    expect(await gate.claim(original, call)).toMatchObject({ ok: false, code: "already_executed" });
    const executions = t.sink.records.filter((r) => r.type === "execution" && r.decision_id === second.decision.id);
    expect(executions.map((r) => (r as { result: { execution: string } }).result.execution)).toEqual(["claimed", "refused"]);

    const late = await gate.call("crm.update", update({ amount: 9000, recordId: "opp_d" }), null);
    const lateId = (await gate.decide(late)).decision.id;
    const pending = await t.other.amend({ decisionId: lateId, reviewerId: APPROVER, arguments: { ...late.arguments, amount: 7000 } });
    t.clock.advance(3_600_001);
    expect(await gate.claim(lateId, late)).toMatchObject({ ok: false, code: "approval_expired" });
    expect((await t.store.getDecision(pending.decision.id))?.approval?.status).toBe("expired");
    await t.close();

    // A store of one's own without claimExecution: an allowed amendment is refused, never run.
    const store = new InMemoryStore();
    Object.defineProperty(store, "claimExecution", { value: undefined });
    const sink = new ReadableSink();
    const veto = await createVeto({ bundle: requireBundle(), logger: pino({ level: "silent" }), recordSink: sink, store });
    const own = new ToolGate<null>({ veto, context: () => APP_CONTEXT }, "test");
    const c = await own.call("crm.update", update({ amount: 9000 }), null);
    const id = (await own.decide(c)).decision.id;
    await veto.amend({ decisionId: id, reviewerId: APPROVER, arguments: { ...c.arguments, amount: 10 } });
    expect(await own.claim(id, c)).toMatchObject({ ok: false, code: "record_unavailable" });
    await veto.close();
  });
});
