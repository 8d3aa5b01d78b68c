// Amend before approve (docs/contract.md §6): an approver amends a pending
// call's arguments; the amended call is a new decision by the policy with the
// same context, linked to the original, which ends "amended"; the waiting
// guard runs the amended call as its decision allows, exactly once.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ApprovalError, VetoDeniedError, VetoOptionsError } from "../../adapter/index.js";
import { InMemoryStore } from "../../adapter/history/store.js";
import { ACTOR, APPROVER, OTHER_APPROVER, codes, makeVeto, write } from "../helpers/index.js";

/** FC_SEED=<n> reproduces a failing run; fast-check prints the seed and path of every failure. */
const SEED = Number(process.env.FC_SEED ?? 20261130);

type Args = Record<string, unknown>;
const NEEDS_APPROVAL = write({ amount: 9000 });
const argsOf = (amount: number): Args => ({ ...(NEEDS_APPROVAL["arguments"] as Args), amount });

async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 20));
}

async function pendingGuard(t: Awaited<ReturnType<typeof makeVeto>>) {
  const runs: { args: Args; action: string }[] = [];
  const update = t.veto.guard("crm.update", (args: Args, _ctx, decision) => {
    runs.push({ args, action: decision.action });
    return "updated";
  });
  const running = update(NEEDS_APPROVAL["arguments"] as Args, NEEDS_APPROVAL["context"] as never).then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  await settle();
  const decisionId = t.sink.records.filter((r) => r.type === "decision").at(-1)!.decision_id;
  return { runs, running, decisionId };
}

describe("amend", () => {
  it("to a call that still needs approval: the amender approves it; guard runs the amended call once; the chain links both ways", async () => {
    const t = await makeVeto();
    const { runs, running, decisionId } = await pendingGuard(t);
    const result = await t.veto.amend({ decisionId, reviewerId: APPROVER, arguments: argsOf(8000), note: "8,000, not 9,000" });
    expect(result.decision.action).toBe("require_approval");
    expect(result.approval).toMatchObject({ decisionId: result.decision.id, status: "approved", reviewerId: APPROVER });
    const outcome = await running;
    expect(outcome).toEqual({ ok: true, v: "updated" });
    expect(runs).toEqual([{ args: argsOf(8000), action: "require_approval" }]);
    expect(Object.isFrozen(runs[0]!.args)).toBe(true);

    const chain = t.sink.records.filter((r) => r.decision_id === decisionId || r.decision_id === result.decision.id);
    expect(chain.map((r) => `${r.type}:${r.decision_id === decisionId ? "original" : "amended"}`)).toEqual([
      "decision:original",
      "decision:amended",
      "amendment:original",
      "approval:amended",
      "execution:amended",
    ]);
    expect(chain[1]).toMatchObject({ amended_from: decisionId, amended_by: APPROVER, actor_id: ACTOR });
    expect(chain[2]).toMatchObject({ amended_to: result.decision.id, reviewer_id: APPROVER, note: "8,000, not 9,000" });

    // The original can never run: a wait for it is told it was amended, with the amended call.
    const error = await t.veto.waitForApproval({ decisionId, call: NEEDS_APPROVAL as never }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApprovalError);
    expect((error as ApprovalError).code).toBe("amended");
    expect((error as ApprovalError).amended?.call.arguments).toEqual(argsOf(8000));
    expect((error as ApprovalError).amended?.decision.id).toBe(result.decision.id);
    await expect(t.veto.approve({ decisionId, reviewerId: OTHER_APPROVER })).rejects.toMatchObject({ code: "already_answered" });
    // Nor can the amended one run twice.
    await expect(
      t.veto.waitForApproval({ decisionId: result.decision.id, call: { ...NEEDS_APPROVAL, arguments: argsOf(8000) } as never }),
    ).rejects.toMatchObject({ code: "already_executed" });
    expect(runs).toHaveLength(1);
    await t.veto.close();
  });

  it("to a call the policy allows: guard runs the amended call; to one it denies (over max_amount): nothing runs", async () => {
    const t = await makeVeto();
    const allowed = await pendingGuard(t);
    const low = await t.veto.amend({ decisionId: allowed.decisionId, reviewerId: APPROVER, arguments: argsOf(100) });
    expect(low.decision.action).toBe("allow");
    expect(await allowed.running).toEqual({ ok: true, v: "updated" });
    expect(allowed.runs).toEqual([{ args: argsOf(100), action: "allow" }]);
    // Claimed once where it ran, like an approval: its execution record.
    const claims = t.sink.records.filter((r) => r.type === "execution" && r.decision_id === low.decision.id);
    expect(claims.map((r) => (r as { result: { execution: string } }).result.execution)).toEqual(["claimed"]);

    const denied = await pendingGuard(t);
    const high = await t.veto.amend({ decisionId: denied.decisionId, reviewerId: APPROVER, arguments: argsOf(10_000_000) });
    expect(high.decision.action).toBe("deny");
    expect(codes(high.decision)).toContain("amount_over_limit");
    const outcome = await denied.running;
    expect(outcome.ok).toBe(false);
    expect((outcome as { e: unknown }).e).toBeInstanceOf(VetoDeniedError);
    expect(denied.runs).toEqual([]);
    await t.veto.close();
  });

  it("is refused for the actor, a non-approver, a second time, after expiry, and for bad arguments", async () => {
    const t = await makeVeto({ approvalTtlMs: 60_000 });
    const one = await t.veto.protect(NEEDS_APPROVAL);
    await expect(t.veto.amend({ decisionId: one.id, reviewerId: ACTOR, arguments: argsOf(1) })).rejects.toMatchObject({
      code: "self_approval",
    });
    await expect(t.veto.amend({ decisionId: one.id, reviewerId: "user:mallory", arguments: argsOf(1) })).rejects.toMatchObject({
      code: "not_an_approver",
    });
    await expect(t.veto.amend({ decisionId: one.id, reviewerId: APPROVER, arguments: [] as never })).rejects.toBeInstanceOf(
      VetoOptionsError,
    );
    await t.veto.amend({ decisionId: one.id, reviewerId: APPROVER, arguments: argsOf(6000) });
    await expect(t.veto.amend({ decisionId: one.id, reviewerId: OTHER_APPROVER, arguments: argsOf(7000) })).rejects.toMatchObject({
      code: "already_answered",
    });
    const two = await t.veto.protect(write({ amount: 9500 }));
    t.clock.advance(60_001);
    await expect(t.veto.amend({ decisionId: two.id, reviewerId: APPROVER, arguments: argsOf(1) })).rejects.toMatchObject({
      code: "approval_expired",
    });
    await expect(t.veto.amend({ decisionId: "nope", reviewerId: APPROVER, arguments: argsOf(1) })).rejects.toMatchObject({
      code: "unknown_decision",
    });
    await t.veto.close();
  });

  it("generated: an amended call's deny never counts towards the agent's escalation; the amended call's decision is the policy's", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 20_000_000 }), { minLength: 1, maxLength: 5 }), async (amounts) => {
        const store = new InMemoryStore();
        const t = await makeVeto({ store });
        for (const amount of amounts) {
          const pending = await t.veto.protect(NEEDS_APPROVAL);
          const { decision } = await t.veto.amend({ decisionId: pending.id, reviewerId: APPROVER, arguments: argsOf(amount) });
          // The same call decided directly, with no deny history, gets the same verdict.
          const reference = await makeVeto();
          const direct = await reference.veto.protect(write({ amount }));
          await reference.veto.close();
          expect(decision.action).toBe(direct.action);
          expect(codes(decision)).toEqual(codes(direct));
          expect((await store.getDecision(pending.id))!.approval).toMatchObject({ status: "amended", amendedTo: decision.id });
        }
        const next = await t.veto.protect(write({ amount: 10 }));
        expect(next.action).toBe("allow");
        expect(next.escalated).toBe(false);
        await t.veto.close();
      }),
      { seed: SEED, numRuns: 10 },
    );
  });
});
