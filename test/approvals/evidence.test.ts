// An approval counts only when the records back it (docs/contract.md §6, §7):
// the check every waiter shares, on generated tamperings, and through the
// adapter with the in-memory store.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { answerProblem, approvalProblem, type ReadRecord } from "../../adapter/approvals/evidence.js";
import { ApprovalError, InMemoryStore, type StoredDecision, type VetoStore } from "../../adapter/index.js";
import { ACTOR, APPROVER, MemorySink, OTHER_APPROVER, makeVeto, write } from "../helpers/index.js";

const NEEDS_APPROVAL = write({ amount: 9000 });
/** FC_SEED=<n> reproduces a failing run; fast-check prints the seed and path of every failure. */
const SEED = Number(process.env.FC_SEED ?? 20260301);

type Json = Record<string, unknown>;

/** A real answer made through the adapter: the store's row and the decision's records as written. */
async function answered(kind: "approve" | "reject", reviewerId: string): Promise<{ row: StoredDecision; records: ReadRecord[] }> {
  const store = new InMemoryStore();
  const t = await makeVeto({ store, approvalTtlMs: 60_000 });
  const decision = await t.veto.protect(NEEDS_APPROVAL);
  expect(decision.action).toBe("require_approval");
  t.clock.advance(1234);
  await t.veto[kind]({ decisionId: decision.id, reviewerId, note: "n" });
  const row = (await store.getDecision(decision.id))!;
  await t.veto.close();
  return { row, records: t.sink.records.filter((r) => r.decision_id === decision.id) as unknown as ReadRecord[] };
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

/** Approve a pending decision straight in the store, as someone who can write it but not the records would. */
async function approveBehindTheBack(store: VetoStore, id: string, reviewerId: string, atMs: number): Promise<void> {
  expect(await store.transitionApproval(id, { from: "pending", to: "answering", reviewerId, atMs })).toBe(true);
  expect(await store.transitionApproval(id, { from: "answering", to: "approved", reviewerId, atMs })).toBe(true);
}

type Tamper = { name: string; apply: (row: StoredDecision, records: Json[]) => void };

const otherText = (original: unknown) => fc.string({ minLength: 1, maxLength: 12 }).filter((s) => s !== original);
const nonZero = fc.integer({ min: -86_400_000, max: 86_400_000 }).filter((n) => n !== 0);
const shifted = (iso: unknown, by: number): string => new Date(Date.parse(String(iso)) + by).toISOString();

/** Every change of one fact, on either side, that an approval check must notice. */
function tamperings(row: StoredDecision, records: readonly Json[]): fc.Arbitrary<Tamper> {
  const answerAt = records.findIndex((r) => r["type"] !== "decision");
  const decisionAt = records.findIndex((r) => r["type"] === "decision");
  const a = records[answerAt]!;
  const d = records[decisionAt]!;
  const set =
    (i: number, key: string, value: unknown): ((row: StoredDecision, records: Json[]) => void) =>
    (_r, recs) => {
      recs[i] = { ...recs[i], [key]: value };
    };
  const setResult =
    (i: number, key: string, value: unknown): ((row: StoredDecision, records: Json[]) => void) =>
    (_r, recs) => {
      recs[i] = { ...recs[i], result: { ...(recs[i]!["result"] as Json), [key]: value } };
    };
  const setRow =
    (patch: Json): ((row: StoredDecision, records: Json[]) => void) =>
    (r) =>
      Object.assign(r, patch);
  const setApproval =
    (patch: Json): ((row: StoredDecision, records: Json[]) => void) =>
    (r) => {
      Object.assign(r, { approval: { ...r.approval, ...patch } });
    };
  return fc.oneof(
    fc
      .constantFrom(ACTOR, OTHER_APPROVER, "user:intern@acme.example")
      .filter((v) => v !== row.approval!.reviewerId)
      .map((v) => ({ name: `row reviewer ${v}`, apply: setApproval({ reviewerId: v }) })),
    otherText(row.approval!.reviewerId).map((v) => ({ name: `row reviewer ${v}`, apply: setApproval({ reviewerId: v }) })),
    otherText(row.approval!.note).map((v) => ({ name: `row note ${v}`, apply: setApproval({ note: v }) })),
    nonZero.map((n) => ({ name: `row answered_at ${n}`, apply: setApproval({ answeredAtMs: row.approval!.answeredAtMs! + n }) })),
    nonZero.map((n) => ({ name: `row at_ms ${n}`, apply: setRow({ atMs: row.atMs + n }) })),
    otherText(row.actorId).map((v) => ({ name: `row actor ${v}`, apply: setRow({ actorId: v }) })),
    otherText(row.tenantId).map((v) => ({ name: `row tenant ${v}`, apply: setRow({ tenantId: v }) })),
    otherText(row.callDigest).map((v) => ({ name: `row digest ${v}`, apply: setRow({ callDigest: v }) })),
    otherText(undefined)
      .filter((v) => !row.approvers.includes(v))
      .map((v) => ({ name: `row approvers + ${v}`, apply: setRow({ approvers: [...row.approvers, v] }) })),
    fc.constant({
      name: "row approvers without the reviewer",
      apply: setRow({ approvers: row.approvers.filter((x) => x !== row.approval!.reviewerId) }),
    }),
    fc.constantFrom("timestamp", "actor_id", "tenant_id", "call_digest", "reviewer_id", "note").chain((key) =>
      (key === "timestamp" ? nonZero.map((n) => shifted(a[key], n)) : otherText(a[key])).map((v) => ({
        name: `answer ${key} ${v}`,
        apply: set(answerAt, key, v),
      })),
    ),
    fc.constantFrom("timestamp", "actor_id", "tenant_id", "call_digest").chain((key) =>
      (key === "timestamp" ? nonZero.map((n) => shifted(d[key], n)) : otherText(d[key])).map((v) => ({
        name: `decision ${key} ${v}`,
        apply: set(decisionAt, key, v),
      })),
    ),
    fc.constantFrom("allow", "deny").map((v) => ({ name: `decision action ${v}`, apply: setResult(decisionAt, "action", v) })),
    otherText(undefined).map((v) => ({ name: `decision approvers [${v}]`, apply: setResult(decisionAt, "approvers", [v]) })),
    fc.constant({ name: "decision approvers + actor", apply: setResult(decisionAt, "approvers", [...row.approvers, ACTOR]) }),
    fc.constant({
      name: "answer of the other kind",
      apply: (_r: StoredDecision, recs: Json[]) => {
        const flipped = a["type"] === "approval" ? { type: "rejection", approval: "rejected" } : { type: "approval", approval: "approved" };
        recs[answerAt] = { ...a, type: flipped.type, result: { approval: flipped.approval } };
      },
    }),
    fc.constant({ name: "no answer record", apply: (_r: StoredDecision, recs: Json[]) => void recs.splice(answerAt, 1) }),
    fc.constant({ name: "no decision record", apply: (_r: StoredDecision, recs: Json[]) => void recs.splice(decisionAt, 1) }),
    fc.constantFrom("approval", "rejection").map((type) => ({
      name: `a second answer (${type})`,
      apply: (_r: StoredDecision, recs: Json[]) => {
        recs.push({ ...a, type, result: { approval: type === "approval" ? "approved" : "rejected" } });
      },
    })),
    fc.constant({
      name: "a later decision record superseding it with a deny",
      apply: (_r: StoredDecision, recs: Json[]) => {
        recs.push({ ...d, result: { ...(d["result"] as Json), action: "deny", approvers: [] } });
      },
    }),
  );
}

describe("the approval check (generated tamperings)", () => {
  it("passes exactly the answers the adapter made, approvals and rejections", async () => {
    const approved = await answered("approve", APPROVER);
    expect(approvalProblem(approved.row, approved.records)).toBeUndefined();
    const rejected = await answered("reject", OTHER_APPROVER);
    expect(answerProblem(rejected.row, rejected.records)).toBeUndefined();
    expect(approvalProblem(rejected.row, rejected.records)).toBe("the store shows no approval");
  });

  for (const [kind, reviewer] of [
    ["approve", APPROVER],
    ["reject", OTHER_APPROVER],
  ] as const) {
    it(`refuses any one fact changed on either side of a real ${kind === "approve" ? "approval" : "rejection"} (seed ${SEED})`, async () => {
      const genuine = await answered(kind, reviewer);
      fc.assert(
        fc.property(tamperings(genuine.row, genuine.records as Json[]), (tamper) => {
          const row: StoredDecision = structuredClone(genuine.row);
          const records = structuredClone(genuine.records) as Json[];
          tamper.apply(row, records);
          const problem = answerProblem(row, records);
          expect(problem, tamper.name).toEqual(expect.any(String));
        }),
        { seed: SEED, numRuns: 400 },
      );
    });
  }
});

describe("waitForApproval with the in-memory store", () => {
  it("refuses an approval written into the store without its record (approval_unverified), by anyone, and logs why", async () => {
    for (const reviewer of ["user:intern@acme.example", ACTOR, APPROVER]) {
      const store = new InMemoryStore();
      const t = await makeVeto({ store, approvalTtlMs: 60_000 });
      const decision = await t.veto.protect(NEEDS_APPROVAL);
      const waiting = t.veto.waitForApproval({ decisionId: decision.id });
      await approveBehindTheBack(store, decision.id, reviewer, t.clock.nowMs);
      const e = await refusal(waiting);
      expect(e.code).toBe("approval_unverified");
      expect(e.decisionId).toBe(decision.id);
      // A later wait is refused the same way; the store's row alone is never enough.
      expect((await refusal(t.veto.waitForApproval({ decisionId: decision.id }))).code).toBe("approval_unverified");
      expect(t.logLines).toContainEqual(
        expect.objectContaining({ msg: "approval refused: the records do not back it", decision_id: decision.id, reviewer_id: reviewer }),
      );
      await t.veto.close();
    }
  });

  it("guard never runs the tool on such an approval", async () => {
    const store = new InMemoryStore();
    const t = await makeVeto({ store, approvalTtlMs: 60_000 });
    let ran = false;
    const update = t.veto.guard("crm.update", () => {
      ran = true;
    });
    const running = update(NEEDS_APPROVAL["arguments"] as Json, NEEDS_APPROVAL["context"] as never).catch((e: unknown) => e);
    for (let i = 0; i < 100 && t.sink.records.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    await approveBehindTheBack(store, t.sink.last().decision_id, APPROVER, t.clock.nowMs);
    const error = await running;
    expect(error).toBeInstanceOf(ApprovalError);
    expect((error as ApprovalError).code).toBe("approval_unverified");
    expect(ran).toBe(false);
    await t.veto.close();
  });

  it("instances sharing a store and a sink check each other's answers; one whose records are elsewhere refuses them", async () => {
    const store = new InMemoryStore();
    const sink = new MemorySink();
    const a = await makeVeto({ store, recordSink: sink, approvalTtlMs: 60_000 });
    const b = await makeVeto({ store, recordSink: sink, approvalTtlMs: 60_000 });
    const apart = await makeVeto({ store, approvalTtlMs: 60_000 });
    const decision = await a.veto.protect(NEEDS_APPROVAL);
    await b.veto.approve({ decisionId: decision.id, reviewerId: APPROVER });
    await expect(a.veto.waitForApproval({ decisionId: decision.id })).resolves.toMatchObject({ status: "approved", reviewerId: APPROVER });
    // Its own sink holds neither the decision nor the answer: it cannot tell this answer from a forged one.
    expect((await refusal(apart.veto.waitForApproval({ decisionId: decision.id }))).code).toBe("approval_unverified");
    for (const t of [a, b, apart]) await t.veto.close();
  });
});

/** A sink that can be read back (as the PostgreSQL one), whose reads fail while `failReads` lasts: a connection lost mid-read. */
class FlakyReadableSink extends MemorySink {
  failReads = 0;
  reads = 0;

  async readRecords(decisionId: string): Promise<readonly ReadRecord[]> {
    this.reads += 1;
    if (this.failReads > 0) {
      this.failReads -= 1;
      throw new Error("read ECONNRESET");
    }
    return this.records.filter((r) => r.decision_id === decisionId);
  }
}

describe("waitForApproval when the records cannot be read for a while (docs/contract.md §9)", () => {
  it(`a read that fails is no verdict: the wait reads again and settles as the records say (seed ${SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 6 }), fc.constantFrom("approve", "reject"), async (failures, kind) => {
        const sink = new FlakyReadableSink();
        const t = await makeVeto({ store: new InMemoryStore(), recordSink: sink, approvalTtlMs: 60_000 });
        try {
          const decision = await t.veto.protect(NEEDS_APPROVAL);
          sink.failReads = failures;
          const waiting = t.veto.waitForApproval({ decisionId: decision.id, timeoutMs: 10_000 });
          await t.veto[kind]({ decisionId: decision.id, reviewerId: APPROVER });
          if (kind === "approve") {
            await expect(waiting).resolves.toMatchObject({ decisionId: decision.id, status: "approved", reviewerId: APPROVER });
            expect(sink.reads).toBeGreaterThanOrEqual(failures + 1);
          } else {
            expect((await refusal(waiting)).code).toBe("approval_rejected");
          }
        } finally {
          await t.veto.close();
        }
      }),
      { seed: SEED, numRuns: 20 },
    );
  });

  it("records that stay unreadable: record_unavailable when the wait's time is up, never approval_unverified", async () => {
    for (const how of ["timeoutMs", "expiry"] as const) {
      const sink = new FlakyReadableSink();
      const t = await makeVeto({ store: new InMemoryStore(), recordSink: sink, approvalTtlMs: how === "expiry" ? 300 : 60_000 });
      const decision = await t.veto.protect(NEEDS_APPROVAL);
      sink.failReads = Number.POSITIVE_INFINITY;
      const waiting = t.veto.waitForApproval({ decisionId: decision.id, ...(how === "timeoutMs" ? { timeoutMs: 300 } : {}) });
      await t.veto.approve({ decisionId: decision.id, reviewerId: APPROVER });
      const e = await refusal(waiting);
      expect([how, e.code]).toEqual([how, "record_unavailable"]);
      expect(e.message).toMatch(/its records could not be read: read ECONNRESET/);
      expect(sink.reads).toBeGreaterThan(1);
      // Readable again: the same approval is accepted.
      sink.failReads = 0;
      await expect(t.veto.waitForApproval({ decisionId: decision.id })).resolves.toMatchObject({ status: "approved" });
      await t.veto.close();
    }
  });
});
