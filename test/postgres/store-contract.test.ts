/**
 * The VetoStore contract, one suite run against every store: the in-memory
 * default and PostgresStore on the real server. `other` is a second handle on
 * the same state: for PostgreSQL a second connected store (its own pool and
 * LISTEN connection), as another process would have.
 */
import { afterAll, describe, expect, it } from "vitest";
import { InMemoryStore, type StoredDecision, type VetoStore } from "../../adapter/index.js";
import { PostgresStore } from "../../adapter/postgres/index.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";

interface Stores {
  store: VetoStore;
  other: VetoStore;
  close: () => Promise<void>;
}

const db = testDatabase();
afterAll(() => db.dropSchemas());

const implementations: { name: string; transactional: boolean; open: () => Promise<Stores> }[] = [
  {
    name: "InMemoryStore",
    transactional: false,
    open: async () => {
      const store = new InMemoryStore();
      return { store, other: store, close: () => store.close() };
    },
  },
  {
    name: "PostgresStore",
    transactional: true,
    open: async () => {
      const schema = db.schema("contract");
      const store = await PostgresStore.connect({ connectionString: pgUrl(), schema, migrate: true });
      const other = await PostgresStore.connect({ connectionString: pgUrl(), schema });
      return {
        store,
        other,
        close: async () => {
          await store.close();
          await other.close();
        },
      };
    },
  },
];

const FIXED_T0 = Date.parse("2026-03-01T09:00:00.000Z");
/**
 * The time the store decides by: a store with a clock of its own (the
 * database's) times transitions by it, whatever `atMs` says, so its tests
 * start at its now; the others at a fixed time.
 */
let T0 = FIXED_T0;
let seq = 0;

function decision(fields: Partial<StoredDecision> = {}): StoredDecision {
  seq += 1;
  return {
    id: `01TEST${String(seq).padStart(20, "0")}`,
    action: "deny",
    escalated: false,
    actorId: "agent:a",
    tenantId: "acme",
    atMs: T0,
    callDigest: `sha256:${"a".repeat(64)}`,
    approvers: [],
    ...fields,
  };
}

function pending(fields: Partial<StoredDecision> = {}): StoredDecision {
  return decision({
    action: "require_approval",
    approvers: ["user:x", "user:y"],
    approval: { status: "pending", expiresAtMs: T0 + 3_600_000 },
    ...fields,
  });
}

async function withStores(open: () => Promise<Stores>, fn: (s: Stores) => Promise<void>): Promise<void> {
  const stores = await open();
  T0 = (await stores.store.now?.()) ?? FIXED_T0;
  try {
    await fn(stores);
  } finally {
    await stores.close();
  }
}

describe.each(implementations)("$name: the VetoStore contract", ({ open, transactional }) => {
  it("returns a decision as it was appended, with and without its optional fields", () =>
    withStores(open, async ({ store, other }) => {
      const full = pending({ escalated: false });
      const bare: StoredDecision = { id: "01BARE", action: "deny", escalated: false, atMs: T0, approvers: [] };
      const escalated = decision({ escalated: true });
      for (const d of [full, bare, escalated]) await store.appendDecision(d);
      expect(await other.getDecision(full.id)).toEqual(full);
      expect(await other.getDecision(bare.id)).toEqual(bare);
      expect(await other.getDecision(escalated.id)).toEqual(escalated);
      expect(await other.getDecision("01UNKNOWN")).toBeUndefined();
    }));

  it("counts denies and rejected approvals of one actor and tenant from sinceMs on (inclusive)", () =>
    withStores(open, async ({ store, other }) => {
      await store.appendDecision(decision({ atMs: T0 - 1 }));
      await store.appendDecision(decision({ atMs: T0 }));
      await store.appendDecision(decision({ atMs: T0 + 5 }));
      await store.appendDecision(decision({ action: "allow", atMs: T0 + 5 }));
      await store.appendDecision(decision({ actorId: "agent:b", atMs: T0 + 5 }));
      await store.appendDecision(decision({ tenantId: "globex", atMs: T0 + 5 }));
      const asked = pending({ atMs: T0 - 10_000 });
      await store.appendDecision(asked);
      expect(await other.countRecentDenies("agent:a", "acme", T0)).toBe(2);
      expect(await other.countRecentDenies("agent:a", "acme", T0 - 1)).toBe(3);

      // A rejection counts at the time of the answer (atMs, or the store's clock when it has one), not of the decision.
      expect(await store.transitionApproval(asked.id, { from: "pending", to: "answering", reviewerId: "user:x", atMs: T0 + 7 })).toBe(true);
      expect(await store.transitionApproval(asked.id, { from: "answering", to: "rejected", reviewerId: "user:x", atMs: T0 + 7 })).toBe(
        true,
      );
      const answeredAtMs = (await other.getDecision(asked.id))?.approval?.answeredAtMs ?? Number.NaN;
      expect(answeredAtMs).toBeGreaterThanOrEqual(T0 + (store.now === undefined ? 7 : 0));
      expect(await other.countRecentDenies("agent:a", "acme", T0)).toBe(3);
      expect(await other.countRecentDenies("agent:a", "acme", answeredAtMs)).toBe(1);
      expect(await other.countRecentDenies("agent:a", "acme", answeredAtMs + 1)).toBe(0);
      expect(await other.countRecentDenies("agent:b", "acme", T0)).toBe(1);
      expect(await other.countRecentDenies("agent:a", "globex", T0)).toBe(1);
    }));

  it("a decision appended again under its id replaces the first (the record_unavailable deny)", () =>
    withStores(open, async ({ store, other }) => {
      const first = pending();
      await store.appendDecision(first);
      const replaced: StoredDecision = { ...first, action: "deny", approvers: [], approval: undefined };
      delete (replaced as { approval?: unknown }).approval;
      await store.appendDecision(replaced);
      expect(await other.getDecision(first.id)).toEqual(replaced);
      expect(await other.countRecentDenies("agent:a", "acme", T0)).toBe(1);
    }));

  it("remembers an outage deny (countsTowardsEscalation false) without counting it, also when it replaces a counted one", () =>
    withStores(open, async ({ store, other }) => {
      const outage = decision({ countsTowardsEscalation: false });
      await store.appendDecision(outage);
      expect(await other.getDecision(outage.id)).toEqual(outage);
      expect(await other.countRecentDenies("agent:a", "acme", T0)).toBe(0);
      // A counted deny superseded by an outage deny under the same id stops counting (for good: the
      // adapter never writes it back, and the PostgreSQL store's table refuses it).
      const policyDeny = decision();
      await store.appendDecision(policyDeny);
      expect(await other.countRecentDenies("agent:a", "acme", T0)).toBe(1);
      await store.appendDecision({ ...policyDeny, countsTowardsEscalation: false });
      expect(await other.countRecentDenies("agent:a", "acme", T0)).toBe(0);
      // Appending the same counted deny twice counts it once.
      const again = decision();
      await store.appendDecision(again);
      await store.appendDecision(again);
      expect(await other.countRecentDenies("agent:a", "acme", T0)).toBe(1);
    }));

  it("moves an approval only from the state it is in; the answer keeps reviewer, note and time", () =>
    withStores(open, async ({ store, other }) => {
      const d = pending();
      await store.appendDecision(d);
      expect(await other.transitionApproval(d.id, { from: "answering", to: "approved", reviewerId: "user:x", atMs: T0 })).toBe(false);
      expect(await other.transitionApproval(d.id, { from: "pending", to: "answering", reviewerId: "user:x", atMs: T0 + 1 })).toBe(true);
      expect(await store.transitionApproval(d.id, { from: "pending", to: "answering", reviewerId: "user:y", atMs: T0 + 1 })).toBe(false);
      expect(
        await store.transitionApproval(d.id, { from: "answering", to: "approved", reviewerId: "user:x", note: "ok", atMs: T0 + 2 }),
      ).toBe(true);
      const after = (await store.now?.()) ?? T0 + 2;
      const approval = (await other.getDecision(d.id))?.approval;
      expect(approval).toEqual({
        status: "approved",
        expiresAtMs: T0 + 3_600_000,
        reviewerId: "user:x",
        note: "ok",
        answeredAtMs: store.now === undefined ? T0 + 2 : approval?.answeredAtMs,
      });
      // By the store's clock when it has one: between the test's two readings of it.
      expect(approval?.answeredAtMs).toBeGreaterThanOrEqual(store.now === undefined ? T0 + 2 : T0);
      expect(approval?.answeredAtMs).toBeLessThanOrEqual(after);
      expect(await other.transitionApproval("01UNKNOWN", { from: "pending", to: "expired", atMs: T0 })).toBe(false);
    }));

  it("a pending approval moves on only before its expiry, and expires only at or after it", () =>
    withStores(open, async ({ store, other }) => {
      // Expired by T0, the store's now: atMs at (or after) expiry.
      const d = pending({ approval: { status: "pending", expiresAtMs: T0 } });
      await store.appendDecision(d);
      expect(await other.transitionApproval(d.id, { from: "pending", to: "answering", reviewerId: "user:x", atMs: T0 })).toBe(false);
      expect(await store.transitionApproval(d.id, { from: "pending", to: "rejected", reviewerId: "user:x", atMs: T0 + 5 })).toBe(false);
      expect((await store.getDecision(d.id))?.approval?.status).toBe("pending");
      expect(await other.transitionApproval(d.id, { from: "pending", to: "expired", atMs: T0 })).toBe(true);
      expect((await store.getDecision(d.id))?.approval?.status).toBe("expired");
      // An hour left: it cannot expire yet, and an answer reserved in time completes.
      const e = pending();
      await store.appendDecision(e);
      expect(await other.transitionApproval(e.id, { from: "pending", to: "expired", atMs: T0 })).toBe(false);
      expect(await store.transitionApproval(e.id, { from: "pending", to: "answering", reviewerId: "user:x", atMs: T0 + 1 })).toBe(true);
      expect(await store.transitionApproval(e.id, { from: "answering", to: "approved", reviewerId: "user:x", atMs: T0 + 3_600_001 })).toBe(
        true,
      );
    }));

  it("of many concurrent answers through both handles, exactly one moves the approval", () =>
    withStores(open, async ({ store, other }) => {
      for (let round = 0; round < 5; round++) {
        const d = pending();
        await store.appendDecision(d);
        const moved = await Promise.all(
          Array.from({ length: 12 }, (_, i) =>
            (i % 2 === 0 ? store : other).transitionApproval(d.id, { from: "pending", to: "answering", reviewerId: `user:${i}`, atMs: T0 }),
          ),
        );
        expect(moved.filter(Boolean)).toHaveLength(1);
        const winner = `user:${moved.indexOf(true)}`;
        expect((await store.getDecision(d.id))?.approval).toMatchObject({ status: "answering", reviewerId: winner });
      }
    }));

  it("tells a watcher when the approval changes through the other handle, until unwatched", () =>
    withStores(open, async ({ store, other }) => {
      const d = pending();
      await store.appendDecision(d);
      let calls = 0;
      let wake = (): void => {};
      const unwatch = store.watchDecision(d.id, () => {
        calls += 1;
        wake();
      });
      // Give a LISTEN connection time to be up (a store without one polls instead).
      await new Promise((r) => setTimeout(r, 200));
      const before = calls;
      const woken = new Promise<void>((resolve) => {
        wake = resolve;
      });
      await other.transitionApproval(d.id, { from: "pending", to: "answering", reviewerId: "user:x", atMs: T0 });
      await Promise.race([woken, new Promise((_, reject) => setTimeout(() => reject(new Error("no notification within 5 s")), 5_000))]);
      expect(calls).toBeGreaterThan(before);
      unwatch();
      const after = calls;
      await other.transitionApproval(d.id, { from: "answering", to: "approved", reviewerId: "user:x", atMs: T0 });
      await new Promise((r) => setTimeout(r, 200));
      expect(calls).toBe(after);
    }));

  it("units of one actor and tenant run one at a time: 24 concurrent count-then-append units see 0..23", () =>
    withStores(open, async ({ store, other }) => {
      const seen = await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          (i % 2 === 0 ? store : other).unit!({ actorId: "agent:race", tenantId: "acme" }, async (unit) => {
            const n = await unit.countRecentDenies("agent:race", "acme", T0);
            // Widen the window between read and write: without the lock, others would read the same n.
            await new Promise((r) => setTimeout(r, 2));
            await unit.appendDecision(decision({ actorId: "agent:race", atMs: T0 + i }));
            await unit.commit();
            return n;
          }),
        ),
      );
      expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 24 }, (_, i) => i));
      expect(await store.countRecentDenies("agent:race", "acme", T0)).toBe(24);
    }));

  it("units of different actors do not wait for each other", () =>
    withStores(open, async ({ store }) => {
      let releaseFirst = (): void => {};
      const first = store.unit!({ actorId: "agent:slow", tenantId: "acme" }, async (unit) => {
        await unit.countRecentDenies("agent:slow", "acme", T0);
        await new Promise<void>((resolve) => {
          releaseFirst = resolve;
        });
        await unit.commit();
      });
      await new Promise((r) => setTimeout(r, 50));
      const second = await store.unit!({ actorId: "agent:fast", tenantId: "acme" }, async (unit) => {
        const n = await unit.countRecentDenies("agent:fast", "acme", T0);
        await unit.commit();
        return n;
      });
      expect(second).toBe(0);
      releaseFirst();
      await first;
    }));

  // Only a transactional store can undo; the in-memory one applies at once.
  if (transactional)
    it("a unit that ends without commit leaves nothing behind, and a failed one refuses further work", () =>
      withStores(open, async ({ store, other }) => {
        const d = pending();
        await expect(
          store.unit!({ actorId: "agent:a", tenantId: "acme" }, async (unit) => {
            await unit.appendDecision(d);
            expect(await unit.getDecision(d.id)).toEqual(d);
            throw new Error("crash before commit");
          }),
        ).rejects.toThrow("crash before commit");
        expect(await other.getDecision(d.id)).toBeUndefined();

        await store.unit!(undefined, async (unit) => {
          await unit.appendDecision(d);
          // Violates a CHECK: an approval without its call digest.
          await expect(unit.appendDecision(pending({ callDigest: undefined }))).rejects.toThrow(/approval_bound_to_call/);
          await expect(unit.commit()).rejects.toThrow(/transaction is over/);
        });
        expect(await other.getDecision(d.id)).toBeUndefined();
      }));
});
