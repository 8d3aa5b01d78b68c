// Approvals (docs/contract.md §6): every rule, and waitForApproval's outcomes.
import { describe, expect, it } from "vitest";
import { ApprovalError, InMemoryStore, VetoOptionsError, type Decision, type HistoryKey, type StoreUnit } from "../../adapter/index.js";
import { ACTOR, APPROVER, OTHER_APPROVER, makeVeto, read, write, type TestVeto } from "../helpers/index.js";

const NEEDS_APPROVAL = write({ amount: 9000 });

async function pending(): Promise<TestVeto & { decision: Decision }> {
  const t = await makeVeto({ approvalTtlMs: 60_000 });
  const decision = await t.veto.protect(NEEDS_APPROVAL);
  expect(decision.action).toBe("require_approval");
  return { ...t, decision };
}

async function refusal(promise: Promise<unknown>): Promise<ApprovalError> {
  const error = await promise.then(
    () => {
      throw new Error("expected a refusal");
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApprovalError);
  return error as ApprovalError;
}

describe("approve / reject", () => {
  it("an approver approves; the wait resolves; an approval record is written first", async () => {
    const { veto, sink, decision } = await pending();
    const waiting = veto.waitForApproval({ decisionId: decision.id });
    const answer = await veto.approve({ decisionId: decision.id, reviewerId: APPROVER, note: "ok" });
    expect(answer).toMatchObject({ decisionId: decision.id, status: "approved", reviewerId: APPROVER, note: "ok" });
    expect(sink.last()).toMatchObject({
      type: "approval",
      decision_id: decision.id,
      reviewer_id: APPROVER,
      note: "ok",
      actor_id: ACTOR,
      tenant_id: "acme",
      result: { approval: "approved" },
      bundles: { crm: veto.bundle },
    });
    expect((sink.last() as { call_digest: string }).call_digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    await expect(waiting).resolves.toMatchObject({ status: "approved", reviewerId: APPROVER });
    // Waiting again after the fact resolves at once.
    await expect(veto.waitForApproval({ decisionId: decision.id })).resolves.toMatchObject({ status: "approved" });
    await veto.close();
  });

  it("the actor cannot approve its own call (self_approval)", async () => {
    const { veto, decision } = await pending();
    expect((await refusal(veto.approve({ decisionId: decision.id, reviewerId: ACTOR }))).code).toBe("self_approval");
    await veto.close();
  });

  it("a reviewer who is not an approver is refused (not_an_approver)", async () => {
    const { veto, decision } = await pending();
    const e = await refusal(veto.reject({ decisionId: decision.id, reviewerId: "user:intern@acme.example" }));
    expect(e.code).toBe("not_an_approver");
    expect(e.message).toContain(APPROVER);
    await veto.close();
  });

  it("only once: the second answer is refused (already_answered), whoever gives it", async () => {
    const { veto, decision, sink } = await pending();
    await veto.reject({ decisionId: decision.id, reviewerId: APPROVER });
    const before = sink.records.length;
    expect((await refusal(veto.approve({ decisionId: decision.id, reviewerId: OTHER_APPROVER }))).code).toBe("already_answered");
    expect((await refusal(veto.reject({ decisionId: decision.id, reviewerId: APPROVER }))).code).toBe("already_answered");
    expect(sink.records.length).toBe(before);
    await veto.close();
  });

  it("concurrent answers: exactly one wins", async () => {
    const { veto, decision } = await pending();
    const results = await Promise.allSettled([
      veto.approve({ decisionId: decision.id, reviewerId: APPROVER }),
      veto.reject({ decisionId: decision.id, reviewerId: OTHER_APPROVER }),
      veto.approve({ decisionId: decision.id, reviewerId: OTHER_APPROVER }),
    ]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect((r.reason as ApprovalError).code).toBe("already_answered");
    await veto.close();
  });

  it("only before expiry (approval_expired), and the wait rejects too", async () => {
    const { veto, clock, decision } = await pending();
    clock.advance(60_000);
    expect((await refusal(veto.approve({ decisionId: decision.id, reviewerId: APPROVER }))).code).toBe("approval_expired");
    expect((await refusal(veto.waitForApproval({ decisionId: decision.id }))).code).toBe("approval_expired");
    await veto.close();
  });

  it("one millisecond before expiry is still in time", async () => {
    const { veto, clock, decision } = await pending();
    clock.advance(59_999);
    await expect(veto.approve({ decisionId: decision.id, reviewerId: APPROVER })).resolves.toMatchObject({ status: "approved" });
    await veto.close();
  });

  it("an answer is timed where it is reserved: one whose unit starts at expiry is refused (approval_expired), not committed late", async () => {
    // A clock that moves one millisecond each time it is read.
    let now = Date.parse("2026-03-01T09:00:00.000Z");
    let tick = 0;
    const clock = (): number => (now += tick);
    const t = await makeVeto({ approvalTtlMs: 60_000, clock });
    const decision = await t.veto.protect(NEEDS_APPROVAL);
    expect(decision.action).toBe("require_approval");
    const expiresAtMs = Date.parse(decision.timestamp) + 60_000;
    // approve() reads the clock one millisecond before expiry; by the reservation it is expired.
    now = expiresAtMs - 2;
    tick = 1;
    expect((await refusal(t.veto.approve({ decisionId: decision.id, reviewerId: APPROVER }))).code).toBe("approval_expired");
    tick = 0;
    expect((await refusal(t.veto.waitForApproval({ decisionId: decision.id }))).code).toBe("approval_expired");
    expect(t.sink.records.filter((r) => r.type === "approval")).toHaveLength(0);
    await t.veto.close();
  });

  it("a wait in progress rejects when the approval expires", async () => {
    const { veto, clock, decision } = await pending();
    const waiting = veto.waitForApproval({ decisionId: decision.id });
    clock.advance(61_000);
    expect((await refusal(waiting)).code).toBe("approval_expired");
    await veto.close();
  });

  it("unknown decisions and decisions that needed no approval are refused", async () => {
    const { veto } = await pending();
    const allowed = await veto.protect(read());
    expect((await refusal(veto.approve({ decisionId: "01NOSUCHDECISION", reviewerId: APPROVER }))).code).toBe("unknown_decision");
    expect((await refusal(veto.approve({ decisionId: allowed.id, reviewerId: APPROVER }))).code).toBe("approval_not_required");
    expect((await refusal(veto.waitForApproval({ decisionId: "01NOSUCHDECISION" }))).code).toBe("unknown_decision");
    expect((await refusal(veto.waitForApproval({ decisionId: allowed.id }))).code).toBe("approval_not_required");
    await veto.close();
  });

  it("an answer whose record cannot be written is refused, and the approval stays open", async () => {
    const { veto, sink, decision } = await pending();
    sink.failing = new Error("disk full");
    const e = await refusal(veto.approve({ decisionId: decision.id, reviewerId: APPROVER }));
    expect(e.code).toBe("record_unavailable");
    expect(e.message).toContain("disk full");
    sink.failing = undefined;
    await expect(veto.approve({ decisionId: decision.id, reviewerId: APPROVER })).resolves.toMatchObject({ status: "approved" });
    await veto.close();
  });

  it("an answer the store cannot start a unit for is refused with record_unavailable, not the driver's error", async () => {
    class NoUnitStore extends InMemoryStore {
      broken = false;
      override async unit<T>(history: HistoryKey | undefined, fn: (unit: StoreUnit) => Promise<T>): Promise<T> {
        if (this.broken) throw new Error("connect ECONNREFUSED 127.0.0.1:5432");
        return await super.unit(history, fn);
      }
    }
    const store = new NoUnitStore();
    const t = await makeVeto({ approvalTtlMs: 60_000, store });
    const decision = await t.veto.protect(NEEDS_APPROVAL);
    store.broken = true;
    const e = await refusal(t.veto.approve({ decisionId: decision.id, reviewerId: APPROVER }));
    expect(e.code).toBe("record_unavailable");
    expect(e.message).toContain("ECONNREFUSED");
    store.broken = false;
    await expect(t.veto.approve({ decisionId: decision.id, reviewerId: APPROVER })).resolves.toMatchObject({ status: "approved" });
    await t.veto.close();
  });

  it("bad arguments are programmer errors (VetoOptionsError)", async () => {
    const { veto, decision } = await pending();
    await expect(veto.approve({ decisionId: decision.id } as never)).rejects.toBeInstanceOf(VetoOptionsError);
    await expect(veto.approve({ decisionId: "", reviewerId: APPROVER })).rejects.toThrow(/decisionId must be a non-empty string/);
    await expect(veto.reject(undefined as never)).rejects.toBeInstanceOf(VetoOptionsError);
    await expect(veto.waitForApproval({ decisionId: decision.id, timeoutMs: -1 })).rejects.toThrow(/timeoutMs/);
    await veto.close();
  });
});

describe("waitForApproval", () => {
  it("rejects on rejection (approval_rejected), naming the reviewer and note", async () => {
    const { veto, decision } = await pending();
    const waiting = veto.waitForApproval({ decisionId: decision.id });
    await veto.reject({ decisionId: decision.id, reviewerId: APPROVER, note: "too large" });
    const e = await refusal(waiting);
    expect(e.code).toBe("approval_rejected");
    expect(e.message).toContain("too large");
    await veto.close();
  });

  it("rejects on timeout (approval_timeout)", async () => {
    const { veto, decision } = await pending();
    expect((await refusal(veto.waitForApproval({ decisionId: decision.id, timeoutMs: 30 }))).code).toBe("approval_timeout");
    await veto.close();
  });

  it("rejects on abort, before and during the wait (approval_aborted)", async () => {
    const { veto, decision } = await pending();
    const early = new AbortController();
    early.abort(new Error("user left"));
    expect((await refusal(veto.waitForApproval({ decisionId: decision.id, signal: early.signal }))).code).toBe("approval_aborted");
    const during = new AbortController();
    const waiting = veto.waitForApproval({ decisionId: decision.id, signal: during.signal });
    setTimeout(() => during.abort(), 10);
    const e = await refusal(waiting);
    expect(e.code).toBe("approval_aborted");
    // Aborting a wait does not answer the approval.
    await expect(veto.approve({ decisionId: decision.id, reviewerId: APPROVER })).resolves.toMatchObject({ status: "approved" });
    await veto.close();
  });

  it("an abort while the wait still reads the decision (before it listens) ends it at once, not at the timeout", async () => {
    // A store that answers slowly, as a database does: the abort lands inside that read.
    class SlowStore extends InMemoryStore {
      override async getDecision(id: string): ReturnType<InMemoryStore["getDecision"]> {
        await new Promise((r) => setTimeout(r, 50));
        return await super.getDecision(id);
      }
    }
    const { veto } = await makeVeto({ store: new SlowStore(), approvalTtlMs: 60_000 });
    const decision = await veto.protect(NEEDS_APPROVAL);
    const racing = new AbortController();
    const started = performance.now();
    const raced = veto.waitForApproval({ decisionId: decision.id, signal: racing.signal, timeoutMs: 5_000 });
    setTimeout(() => racing.abort(), 10);
    expect((await refusal(raced)).code).toBe("approval_aborted");
    expect(performance.now() - started).toBeLessThan(1_000);
    await veto.close();
  });

  it("an approval authorizes only the call it was given for (call_mismatch)", async () => {
    const { veto, decision } = await pending();
    await veto.approve({ decisionId: decision.id, reviewerId: APPROVER });
    const other = write({ amount: 9_001 });
    const e = await refusal(veto.waitForApproval({ decisionId: decision.id, call: other as never }));
    expect(e.code).toBe("call_mismatch");
    // Same call, keys in another order: same digest.
    const reordered = { context: NEEDS_APPROVAL["context"], arguments: NEEDS_APPROVAL["arguments"], tool: NEEDS_APPROVAL["tool"] };
    await expect(veto.waitForApproval({ decisionId: decision.id, call: reordered })).resolves.toMatchObject({ status: "approved" });
    await veto.close();
  });

  it("close() rejects waits in progress", async () => {
    const { veto, decision } = await pending();
    const waiting = veto.waitForApproval({ decisionId: decision.id });
    await veto.close();
    await expect(waiting).rejects.toMatchObject({ code: "closed" });
    await expect(veto.protect(read())).rejects.toMatchObject({ code: "closed" });
  });
});
