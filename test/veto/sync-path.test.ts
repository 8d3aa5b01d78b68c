/**
 * With the built-in in-memory store, protect() decides without awaiting the
 * store (its operations apply at once, so a decision made from its count to
 * its append without yielding is a unit of its own). These tests hold that
 * path to the one through the store's unit of work, which a subclass of the
 * store takes: on seeded generated calls (VETO_TEST_SEED repeats a run) the
 * two give the same decisions and the same records, in sequence and with
 * calls of one actor made concurrently.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { InMemoryStore, type Decision, type VetoRecord } from "../../adapter/index.js";
import { generateCases } from "../helpers/generate-calls.js";
import { ACTOR, makeVeto, write, type TestVeto } from "../helpers/index.js";

const SEED = Number(process.env["VETO_TEST_SEED"] ?? Date.now() % 2 ** 31);

/** The same store, as a subclass: protect() goes through its unit of work. */
class UnitPathStore extends InMemoryStore {}

/** Decisions and records with their ids numbered in order and the evaluation's timing left out. */
function comparable(decisions: readonly Decision[], records: readonly VetoRecord[]): unknown {
  const ids = new Map(decisions.map((d, i) => [d.id, `#${i}`]));
  return {
    decisions: decisions.map((d) => ({ ...d, id: ids.get(d.id) })),
    records: records.map((r) => {
      const { metrics: _timing, ...rest } = r as VetoRecord & { metrics?: unknown };
      return { ...rest, decision_id: ids.get(r.decision_id) ?? r.decision_id };
    }),
  };
}

async function decideAll(t: TestVeto, calls: readonly unknown[], concurrent: boolean): Promise<Decision[]> {
  if (concurrent) return await Promise.all(calls.map((call) => t.veto.protect(call)));
  const decisions: Decision[] = [];
  for (const call of calls) {
    decisions.push(await t.veto.protect(call));
    // Time moves, so deny histories both build up and age out of the window.
    t.clock.advance(45_000);
  }
  return decisions;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("protect() with the in-memory store, without awaiting it", () => {
  it(`decides generated calls as the unit path does, records and all (seed ${SEED})`, async () => {
    const calls = [
      // Whatever the seed generated, an approval and an escalation (four cross-tenant denies of one actor
      // inside the window) are among the calls; the approval first, before any deny history of its actor
      // (the generated calls' or the escalation's) can turn it into an escalated deny.
      write({ amount: 9000 }),
      ...generateCases(SEED, 600)
        .filter((c) => c.config === "bundle")
        .map((c) => c.call),
      ...Array.from({ length: 4 }, () => write({ tenantId: "globex" }, { tenantId: "acme", actorId: ACTOR })),
    ];
    expect(calls.length).toBeGreaterThan(200);
    const syncPath = vi.spyOn(InMemoryStore.prototype, "unitIdle");
    const direct = await makeVeto();
    const viaUnit = await makeVeto({ store: new UnitPathStore() });
    const a = await decideAll(direct, calls, false);
    // The built-in store took the synchronous path (it asks whether the key's unit is idle) ...
    expect(syncPath).toHaveBeenCalled();
    syncPath.mockClear();
    const b = await decideAll(viaUnit, calls, false);
    // ... and a subclass never.
    expect(syncPath).not.toHaveBeenCalled();
    expect(comparable(a, direct.sink.records)).toEqual(comparable(b, viaUnit.sink.records));
    // The generated calls reach escalation and approvals, not only allows and denies.
    expect(a.some((d) => d.escalated)).toBe(true);
    expect(a.some((d) => d.action === "require_approval")).toBe(true);
    await direct.veto.close();
    await viaUnit.veto.close();
  });

  it("an operation patched on the prototype is honoured: the decision takes the unit path", async () => {
    const appended = vi.spyOn(InMemoryStore.prototype, "appendDecision");
    const syncPath = vi.spyOn(InMemoryStore.prototype, "unitIdle");
    const direct = await makeVeto();
    await direct.veto.protect(write());
    expect(appended).toHaveBeenCalledTimes(1);
    expect(syncPath).not.toHaveBeenCalled();
    await direct.veto.close();
  });

  it("counts denies of calls made at once in the order they were made", async () => {
    // Writes to another tenant: each is denied and counts, so later ones escalate.
    const calls = Array.from({ length: 12 }, (_, i) =>
      i % 3 === 2 ? write() : write({ tenantId: "globex" }, { tenantId: "acme", actorId: ACTOR }),
    );
    const direct = await makeVeto();
    const viaUnit = await makeVeto({ store: new UnitPathStore() });
    const a = await decideAll(direct, calls, true);
    const b = await decideAll(viaUnit, calls, true);
    expect(comparable(a, direct.sink.records)).toEqual(comparable(b, viaUnit.sink.records));
    expect(a.filter((d) => d.escalated).length).toBeGreaterThan(0);
    await direct.veto.close();
    await viaUnit.veto.close();
  });

  it("takes the unit path when an operation of the store is replaced", async () => {
    const store = new InMemoryStore();
    let counts = 0;
    const count = store.countRecentDenies.bind(store);
    store.countRecentDenies = (actorId, tenantId, sinceMs) => {
      counts += 1;
      return count(actorId, tenantId, sinceMs);
    };
    const t = await makeVeto({ store });
    await t.veto.protect(write());
    expect(counts).toBe(1);
    await t.veto.close();
  });
});
