// Repeat-deny history (docs/contract.md §3, recentDenies) across the sliding
// window, with an injected clock.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InMemoryStore, type EscalationEvent } from "../../adapter/index.js";
import { CountFaultStore, runSteps, stepArbitrary } from "../helpers/escalation-model.js";
import { APPROVER, codes, makeVeto, read, write } from "../helpers/index.js";

const DENY = write({ destination: "https://pastebin.com/x" }); // blocked_destination
const WINDOW_MS = 900 * 1000;

describe("escalation", () => {
  it("escalates at exactly deny_threshold (3) recent denies, not before", async () => {
    const { veto } = await makeVeto();
    const actions = [];
    for (let i = 0; i < 4; i++) {
      const d = await veto.protect(DENY);
      actions.push([d.action, d.escalated, codes(d)]);
    }
    expect(actions).toEqual([
      ["deny", false, ["blocked_destination"]],
      ["deny", false, ["blocked_destination"]],
      ["deny", false, ["blocked_destination"]],
      ["deny", true, ["repeated_denies"]],
    ]);
    // Escalation wins over allow too, and escalated denies keep counting.
    expect(codes(await veto.protect(read()))).toEqual(["repeated_denies"]);
    await veto.close();
  });

  it("denies leave the window after window_seconds; one still inside keeps counting", async () => {
    const { veto, clock } = await makeVeto();
    await veto.protect(DENY);
    clock.advance(10_000);
    await veto.protect(DENY);
    await veto.protect(DENY);
    // Window is [now - 900 s, now]: the first deny sits exactly on its edge.
    clock.advance(WINDOW_MS - 10_000);
    expect((await veto.protect(read())).escalated).toBe(true);
    // One millisecond later the first deny has left; the escalated deny just made still counts.
    clock.advance(1);
    expect((await veto.protect(read())).escalated).toBe(true);
    clock.advance(WINDOW_MS + 1);
    const d = await veto.protect(read());
    expect([d.action, d.escalated, codes(d)]).toEqual(["allow", false, ["read_only"]]);
    await veto.close();
  });

  it("allows and approvals do not count; history is per (actor, tenant)", async () => {
    const { veto } = await makeVeto();
    for (let i = 0; i < 5; i++) await veto.protect(read());
    for (let i = 0; i < 3; i++) await veto.protect(DENY);
    // Another actor of the same tenant, and the same actor id in another tenant, start clean.
    const other = await veto.protect(read({}, { actorId: "agent:support-triage" }));
    expect([other.action, other.escalated]).toEqual(["allow", false]);
    const otherTenant = await veto.protect(read({}, { tenantId: "globex" }));
    expect([otherTenant.action, otherTenant.escalated]).toEqual(["allow", false]);
    expect((await veto.protect(read())).escalated).toBe(true);
    await veto.close();
  });

  it("a rejected approval counts as a deny; an approved one does not", async () => {
    const { veto } = await makeVeto();
    const approveMe = await veto.protect(write({ amount: 9000 }));
    await veto.approve({ decisionId: approveMe.id, reviewerId: APPROVER });
    await veto.protect(DENY);
    await veto.protect(DENY);
    expect((await veto.protect(read())).action).toBe("allow");
    const rejectMe = await veto.protect(write({ amount: 9000 }));
    await veto.reject({ decisionId: rejectMe.id, reviewerId: APPROVER, note: "no" });
    const d = await veto.protect(read());
    expect([d.action, d.escalated]).toEqual(["deny", true]);
    await veto.close();
  });

  it("the window and threshold come from the data document", async () => {
    const data = (await import("../helpers/index.js")).bundleData();
    data.veto.config["escalation"] = { deny_threshold: 1, window_seconds: 5 };
    const { veto, clock } = await makeVeto({ data });
    await veto.protect(DENY);
    expect((await veto.protect(read())).escalated).toBe(true);
    clock.advance(10_001);
    expect((await veto.protect(read())).action).toBe("allow");
    await veto.close();
  });

  it("calls onEscalation after recording, and says so in the record", async () => {
    const events: EscalationEvent[] = [];
    const { veto, sink } = await makeVeto({ onEscalation: (e) => void events.push(e) });
    for (let i = 0; i < 3; i++) await veto.protect(DENY);
    const d = await veto.protect(DENY);
    await new Promise((r) => setImmediate(r));
    expect(events).toEqual([{ decision: d, actorId: "agent:sales-assistant", tenantId: "acme", recentDenies: 3 }]);
    expect(sink.last()).toMatchObject({
      decision_id: d.id,
      result: { escalated: true, reasons: [{ code: "repeated_denies" }] },
      history: { recent_denies: 3 },
    });
    await veto.close();
  });

  it("a failing onEscalation hook is logged and changes nothing", async () => {
    const { veto, logLines } = await makeVeto({
      onEscalation: () => {
        throw new Error("pager down");
      },
    });
    for (let i = 0; i < 3; i++) await veto.protect(DENY);
    const d = await veto.protect(DENY);
    await new Promise((r) => setImmediate(r));
    expect(d.escalated).toBe(true);
    expect(logLines.some((l) => l["msg"] === "onEscalation hook failed")).toBe(true);
    await veto.close();
  });

  it("outages do not escalate: record_unavailable and evaluation_error denies are recorded, not counted", async () => {
    const store = new CountFaultStore(new InMemoryStore());
    const { veto, sink } = await makeVeto({ store });
    sink.failing = new Error("disk full");
    const superseded = await veto.protect(DENY);
    expect(codes(superseded)).toEqual(["record_unavailable"]);
    for (let i = 0; i < 3; i++) expect(codes(await veto.protect(DENY))).toEqual(["record_unavailable"]);
    sink.failing = undefined;
    store.failCount = true;
    for (let i = 0; i < 4; i++) expect(codes(await veto.protect(read()))).toEqual(["evaluation_error"]);
    store.failCount = false;
    // Eight denies on file, none of them the actor's doing: the next calls start from zero.
    const outageRecords = sink.records.filter((r) => r.type === "decision" && r.result.reasons.some((x) => x.code === "evaluation_error"));
    expect(outageRecords).toHaveLength(4);
    const d = await veto.protect(DENY);
    expect([d.action, d.escalated, codes(d)]).toEqual(["deny", false, ["blocked_destination"]]);
    expect(sink.last()).toMatchObject({ decision_id: d.id, history: { recent_denies: 0 } });
    // A policy deny superseded by record_unavailable is remembered as an uncounted deny.
    expect(await store.getDecision(superseded.id)).toMatchObject({ action: "deny", countsTowardsEscalation: false });
    await veto.close();
  });

  it("invalid_input naming the actor and tenant still counts", async () => {
    const { veto } = await makeVeto();
    for (let i = 0; i < 3; i++) expect(codes(await veto.protect(write({ amount: "9000" })))).toEqual(["invalid_input"]);
    const d = await veto.protect(read());
    expect([d.action, d.escalated]).toEqual(["deny", true]);
    await veto.close();
  });

  it("seeded model: only policy denies, invalid_input and rejections count (in-memory store)", async () => {
    const seed = Number(process.env["VETO_ESCALATION_SEED"] ?? 20260517);
    let run = 0;
    let checked = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(stepArbitrary, { minLength: 1, maxLength: 40 }), async (steps) => {
        run += 1;
        const store = new CountFaultStore(new InMemoryStore());
        const m = await makeVeto({ store, approvalTtlMs: 3_600_000 });
        try {
          checked += await runSteps({ ...m, store }, `agent:model-${run}`, steps);
        } finally {
          await m.veto.close();
        }
      }),
      { seed, numRuns: 60, endOnFailure: true },
    );
    expect(checked).toBeGreaterThan(300);
  });
});
