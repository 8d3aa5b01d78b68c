// Record state (docs/contract.md §6): an approval is bound to the state of
// the CRM record its call targets, as createVeto's `recordState` gives it when
// the call needs approval; where the approved call executes the state is asked
// again and the call runs only when it is unchanged. Whatever the function does
// wrong, at either time, fails closed.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ApprovalError, VetoDeniedError, VetoOptionsError, type VetoOptions } from "../../adapter/index.js";
import { InMemoryStore } from "../../adapter/history/store.js";
import { approvalItem } from "../../adapter/server/server.js";
import type { RecordStateCall } from "../../adapter/approvals/record-state.js";
import type { VetoRecord } from "../../adapter/records/records.js";
import { APPROVER, MemorySink, codes, makeVeto, write } from "../helpers/index.js";

/** FC_SEED=<n> reproduces a failing run; fast-check prints the seed and path of every failure. */
const SEED = Number(process.env.FC_SEED ?? 20261130);

type Args = Record<string, unknown>;
const NEEDS_APPROVAL = write({ amount: 9000 });
const ALLOWED = write({ amount: 10 });

/** The demo CRM's idea of a record state: a version per record id, bumped by every write. */
class Crm {
  readonly versions = new Map<string, number>();
  readonly asked: RecordStateCall[] = [];
  readonly runs: Args[] = [];
  bump(recordId = "opp_123"): void {
    this.versions.set(recordId, (this.versions.get(recordId) ?? 1) + 1);
  }
  readonly recordState = (call: RecordStateCall): string => {
    this.asked.push(call);
    const id = String((call.arguments as Args)["recordId"]);
    return `v${this.versions.get(id) ?? 1}`;
  };
}

function parts(call: Record<string, unknown>): [Args, never] {
  return [call["arguments"] as Args, call["context"] as never];
}

const executions = (sink: MemorySink, id: string): VetoRecord[] =>
  sink.records.filter((r) => r.type === "execution" && r.decision_id === id);

async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 20));
}

describe("record state: bound when the call needs approval", () => {
  it("is asked once, with a frozen copy of the call, and recorded as record_state", async () => {
    const crm = new Crm();
    const { veto, sink } = await makeVeto({ recordState: crm.recordState });
    const decision = await veto.protect(NEEDS_APPROVAL);
    expect(decision.action).toBe("require_approval");
    expect(crm.asked).toHaveLength(1);
    expect(crm.asked[0]).toEqual({ tool: "crm.update", arguments: NEEDS_APPROVAL["arguments"], context: NEEDS_APPROVAL["context"] });
    expect(Object.isFrozen(crm.asked[0]!.arguments)).toBe(true);
    const record = sink.last();
    expect(record.type === "decision" && record.record_state).toBe("v1");
    await veto.close();
  });

  it("is never asked for a call that is allowed or denied, nor by approve() or reject()", async () => {
    const crm = new Crm();
    const { veto, sink } = await makeVeto({ recordState: crm.recordState });
    expect((await veto.protect(ALLOWED)).action).toBe("allow");
    expect((await veto.protect(write({ destination: "ana@gmail.com" }))).action).toBe("deny");
    expect(crm.asked).toHaveLength(0);
    expect(sink.records.every((r) => r.type !== "decision" || r.record_state === undefined)).toBe(true);
    const one = await veto.protect(NEEDS_APPROVAL);
    const two = await veto.protect(write({ amount: 9001 }));
    await veto.approve({ decisionId: one.id, reviewerId: APPROVER });
    await veto.reject({ decisionId: two.id, reviewerId: APPROVER });
    expect(crm.asked).toHaveLength(2);
    await veto.close();
  });

  it("undefined binds no state: the approved call runs without asking again", async () => {
    const { veto, sink } = await makeVeto({ recordState: () => undefined });
    let ran = 0;
    const update = veto.guard("crm.update", () => ++ran);
    const running = update(...parts(NEEDS_APPROVAL));
    await settle();
    const made = sink.records.find((r) => r.type === "decision")!;
    expect(made.type === "decision" && made.record_state).toBeUndefined();
    await veto.approve({ decisionId: made.decision_id, reviewerId: APPROVER });
    await expect(running).resolves.toBe(1);
    await veto.close();
  });

  it("a state function that throws, answers another type, or is too slow denies record_state_unavailable, uncounted", async () => {
    type Bad = { kind: "throws"; message: string } | { kind: "type"; value: unknown } | { kind: "slow" } | { kind: "rejects" };
    const bad: fc.Arbitrary<Bad> = fc.oneof(
      fc.record({ kind: fc.constant("throws" as const), message: fc.string() }),
      fc.record({
        kind: fc.constant("type" as const),
        value: fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.object(), fc.array(fc.string()), fc.bigInt()),
      }),
      fc.constant({ kind: "slow" as const }),
      fc.constant({ kind: "rejects" as const }),
    );
    const stateFn =
      (b: Bad): VetoOptions["recordState"] =>
      () => {
        switch (b.kind) {
          case "throws":
            throw new Error(b.message);
          case "rejects":
            return Promise.reject(new Error("CRM unreachable"));
          case "type":
            return b.value as string;
          case "slow":
            return new Promise((r) => setTimeout(() => r("v1"), 400));
        }
      };
    await fc.assert(
      fc.asyncProperty(fc.array(bad, { minLength: 1, maxLength: 5 }), async (bads) => {
        let i = 0;
        const { veto, sink } = await makeVeto({
          recordState: (call) => stateFn(bads[i++ % bads.length]!)!(call),
          recordStateTimeoutMs: 30,
        });
        for (let n = 0; n < bads.length; n++) {
          const decision = await veto.protect(NEEDS_APPROVAL);
          expect(decision.action).toBe("deny");
          expect(codes(decision)).toEqual(["record_state_unavailable"]);
          const record = sink.last();
          expect(record.type === "decision" && record.result.action).toBe("deny");
          expect(record.type === "decision" && record.record_state).toBeUndefined();
        }
        // Not the actor's doing: however many there were, a harmless call is still allowed (no escalation).
        const next = await veto.protect(ALLOWED);
        expect(next.action).toBe("allow");
        expect(next.escalated).toBe(false);
        await veto.close();
      }),
      { seed: SEED, numRuns: 25 },
    );
  });

  it("options are checked: recordState must be a function, recordStateTimeoutMs a positive integer", async () => {
    await expect(makeVeto({ recordState: "v1" as never })).rejects.toBeInstanceOf(VetoOptionsError);
    await expect(makeVeto({ recordState: () => "v1", recordStateTimeoutMs: 0 })).rejects.toBeInstanceOf(VetoOptionsError);
    await expect(makeVeto({ recordStateTimeoutMs: 1.5 })).rejects.toBeInstanceOf(VetoOptionsError);
  });
});

describe("record state: compared where the approved call executes", () => {
  it("guard: changed before the approval is read; unchanged runs exactly once", async () => {
    const crm = new Crm();
    const { veto, sink } = await makeVeto({ recordState: crm.recordState });
    const update = veto.guard("crm.update", (args: Args) => {
      crm.runs.push(args);
      return "updated";
    });
    // Changed: the CRM record is written between decision and approval.
    const changed = update(...parts(NEEDS_APPROVAL)).catch((e: unknown) => e);
    await settle();
    const first = sink.records.find((r) => r.type === "decision")!.decision_id;
    crm.bump();
    await veto.approve({ decisionId: first, reviewerId: APPROVER });
    expect(((await changed) as ApprovalError).code).toBe("record_changed");
    expect(crm.runs).toEqual([]);
    const [refusal] = executions(sink, first);
    expect(refusal).toMatchObject({
      result: { execution: "refused", reason: "record_changed" },
      record_state: "v2",
      reviewer_id: APPROVER,
    });
    // Unchanged: runs, and the claim is recorded.
    const same = update(...parts(write({ amount: 9100 })));
    await settle();
    const second = sink.records.filter((r) => r.type === "decision").at(-1)!.decision_id;
    await veto.approve({ decisionId: second, reviewerId: APPROVER });
    await expect(same).resolves.toBe("updated");
    expect(crm.runs).toHaveLength(1);
    expect(executions(sink, second).map((r) => r.type === "execution" && r.result.execution)).toEqual(["claimed"]);
    await veto.close();
  });

  it("waitForApproval({ decisionId, call }) refuses a changed record and leaves the approval unclaimed; a plain wait only observes", async () => {
    const crm = new Crm();
    const store = new InMemoryStore();
    const { veto } = await makeVeto({ recordState: crm.recordState, store });
    const decision = await veto.protect(NEEDS_APPROVAL);
    await veto.approve({ decisionId: decision.id, reviewerId: APPROVER });
    crm.bump();
    const error = await veto.waitForApproval({ decisionId: decision.id, call: NEEDS_APPROVAL as never }).catch((e: unknown) => e);
    expect((error as ApprovalError).code).toBe("record_changed");
    expect((error as ApprovalError).message).toContain('"v1"');
    const stored = (await store.getDecision(decision.id))!;
    expect(stored.approval!.status).toBe("approved");
    // The approval API's item shows the state the approval is bound to.
    expect(approvalItem(stored, Date.now()).recordState).toBe("v1");
    await expect(veto.waitForApproval({ decisionId: decision.id })).resolves.toMatchObject({ status: "approved" });
    await veto.close();
  });

  it("an instance without recordState cannot run a call bound to a state: record_changed", async () => {
    const crm = new Crm();
    const store = new InMemoryStore();
    const sink = new MemorySink();
    const deciding = await makeVeto({ recordState: crm.recordState, store, recordSink: sink });
    const executing = await makeVeto({ store, recordSink: sink });
    const decision = await deciding.veto.protect(NEEDS_APPROVAL);
    await deciding.veto.approve({ decisionId: decision.id, reviewerId: APPROVER });
    const error = await executing.veto.waitForApproval({ decisionId: decision.id, call: NEEDS_APPROVAL as never }).catch((e: unknown) => e);
    expect((error as ApprovalError).code).toBe("record_changed");
    await deciding.veto.close();
    await executing.veto.close();
  });

  it("generated: the call runs iff the state read at execution equals the bound one; failures refuse", async () => {
    type AtExecution = { kind: "same" } | { kind: "other"; state: string } | { kind: "throws" } | { kind: "type"; value: unknown };
    const atExecution: fc.Arbitrary<AtExecution> = fc.oneof(
      fc.constant({ kind: "same" as const }),
      fc.record({ kind: fc.constant("other" as const), state: fc.string() }),
      fc.constant({ kind: "throws" as const }),
      fc.record({ kind: fc.constant("type" as const), value: fc.oneof(fc.constant(undefined), fc.integer(), fc.constant(null)) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 1 }), atExecution, async (bound, later) => {
        let phase: "decide" | "execute" = "decide";
        const { veto, sink } = await makeVeto({
          recordState: () => {
            if (phase === "decide") return bound;
            if (later.kind === "same") return bound;
            if (later.kind === "other") return later.state;
            if (later.kind === "throws") throw new Error("CRM down");
            return later.value as string;
          },
        });
        const decision = await veto.protect(NEEDS_APPROVAL);
        await veto.approve({ decisionId: decision.id, reviewerId: APPROVER });
        phase = "execute";
        const outcome = await veto.waitForApproval({ decisionId: decision.id, call: NEEDS_APPROVAL as never }).then(
          () => "claimed",
          (e: unknown) => (e instanceof ApprovalError ? e.code : String(e)),
        );
        const runs = later.kind === "same" || (later.kind === "other" && later.state === bound);
        expect(outcome).toBe(runs ? "claimed" : "record_changed");
        const recorded = executions(sink, decision.id).map((r) => r.type === "execution" && r.result);
        expect(recorded).toEqual([runs ? { execution: "claimed" } : { execution: "refused", reason: "record_changed" }]);
        await veto.close();
      }),
      { seed: SEED, numRuns: 40 },
    );
  });

  it("a state function slower than recordStateTimeoutMs at execution refuses the call", async () => {
    let slow = false;
    const { veto } = await makeVeto({
      recordState: () => (slow ? new Promise((r) => setTimeout(() => r("v1"), 300)) : "v1"),
      recordStateTimeoutMs: 40,
    });
    let ran = false;
    const update = veto.guard("crm.update", () => {
      ran = true;
    });
    const decision = await veto.protect(NEEDS_APPROVAL);
    await veto.approve({ decisionId: decision.id, reviewerId: APPROVER });
    slow = true;
    const started = performance.now();
    const error = await veto.waitForApproval({ decisionId: decision.id, call: NEEDS_APPROVAL as never }).catch((e: unknown) => e);
    expect((error as ApprovalError).code).toBe("record_changed");
    expect((error as ApprovalError).message).toContain("did not answer within 40 ms");
    expect(performance.now() - started).toBeLessThan(250);
    expect(ran).toBe(false);
    // guard's own denies still throw VetoDeniedError, not an approval error.
    await expect(update(...parts(write({ destination: "ana@gmail.com" })))).rejects.toBeInstanceOf(VetoDeniedError);
    await veto.close();
  });
});
