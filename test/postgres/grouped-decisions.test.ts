/**
 * Decisions written in groups (adapter/postgres/batch.ts) keep deny counts
 * exact (docs/contract.md §3): seeded bursts of concurrent calls for a few
 * (actor, tenant) keys through several instances on one schema, each with a
 * pool of its own (as separate processes have), one of them on a store that
 * writes each decision in a transaction of its own (as a store without
 * groups, or another implementation, does). Afterwards, in chain order, every
 * decision's recorded count is exactly the number of counted denies of its
 * key before it, its escalation follows that count, the rows agree with the
 * records, and the chain verifies.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { pino } from "pino";
import { createVeto, type Decision, type StoreUnit, type Veto, type VetoStore } from "../../adapter/index.js";
import { PostgresStore, migrate, verifyPostgresLog, type GroupStats } from "../../adapter/postgres/index.js";
import { historyLockKey } from "../../adapter/postgres/connection.js";
import { seededRandom } from "../helpers/generate-calls.js";
import { requireBundle } from "../helpers/index.js";
import { kindCall, pgUrl, testDatabase, type CallKind } from "../helpers/postgres.js";
import { APP_CONTEXT } from "../integrations/helpers.js";

const SEED = Number(process.env.VETO_GROUP_SEED ?? Date.now() % 2 ** 31);
const TENANT = "globex";
const THRESHOLD = 3;
const db = testDatabase();

beforeAll(() => {
  requireBundle();
});
afterAll(() => db.dropSchemas());

/** The store as a store without groups sees it: every unit its own transaction (no record sink handed to unit()). */
class OneByOne implements VetoStore {
  readonly inner: PostgresStore;
  constructor(inner: PostgresStore) {
    this.inner = inner;
  }
  appendDecision: VetoStore["appendDecision"] = (d) => this.inner.appendDecision(d);
  countRecentDenies: VetoStore["countRecentDenies"] = (a, t, s) => this.inner.countRecentDenies(a, t, s);
  getDecision: VetoStore["getDecision"] = (id) => this.inner.getDecision(id);
  transitionApproval: VetoStore["transitionApproval"] = (id, t) => this.inner.transitionApproval(id, t);
  watchDecision: VetoStore["watchDecision"] = (id, l) => this.inner.watchDecision(id, l);
  now = (): Promise<number> => this.inner.now();
  unit<T>(history: Parameters<NonNullable<VetoStore["unit"]>>[0], fn: (unit: StoreUnit) => Promise<T>): Promise<T> {
    return this.inner.unit(history, fn);
  }
  close = (): Promise<void> => this.inner.close();
}

/** CallKind, or "nameless": an invalid call that names no actor or tenant (its decision takes a group's place, no key). */
type Kind = CallKind | "nameless";

const call = (actorId: string, kind: Kind): Record<string, unknown> =>
  kind === "nameless"
    ? { tool: "crm.update", arguments: { object: "opportunity" }, context: { environment: "production", reason: "grouped decisions test" } }
    : kindCall(actorId, TENANT, kind, "grouped decisions test");

interface Line {
  seq: number;
  decision_id: string;
  actor_id: string;
  history: { recent_denies: number } | null;
  result: { action: string; escalated: boolean; reasons: { code: string }[] };
}

/**
 * In chain order, every decision's recorded count is the number of counted
 * denies of its key before it, its escalation follows that count, the rows
 * agree with the records and with what the callers heard, and the chain
 * verifies.
 */
async function checkChain(schema: string, decisions: readonly Decision[], seed: number): Promise<void> {
  expect(
    decisions.filter((d) => d.reasons.some((r) => r.code === "record_unavailable")),
    `seed ${seed}`,
  ).toEqual([]);

  const { rows } = await db.pool.query<{ line: string; counts: boolean | null; action: string | null }>(
    `SELECT r.line, d.counts_towards_escalation AS counts, d.action FROM "${schema}".records r
       LEFT JOIN "${schema}".decisions d ON d.id = r.decision_id ORDER BY r.seq`,
  );
  expect(rows.length, `seed ${seed}: one record per decision`).toBe(decisions.length);
  const counted = new Map<string, number>();
  for (const row of rows) {
    const line = JSON.parse(row.line) as Line;
    const before = counted.get(line.actor_id) ?? 0;
    const where = `seed ${seed}, seq ${line.seq} (${line.actor_id})`;
    const invalid = line.result.reasons.some((r) => r.code === "invalid_input");
    expect(invalid ? null : line.history?.recent_denies, `${where}: the recorded count is the counted denies before it`).toBe(
      invalid ? null : before,
    );
    expect(row.action, `${where}: the row holds the record's action`).toBe(line.result.action);
    if (invalid) expect(line.result.action, where).toBe("deny");
    else if (before >= THRESHOLD) expect([line.result.action, line.result.escalated], `${where}: escalated`).toEqual(["deny", true]);
    else expect(line.result.escalated, `${where}: not escalated`).toBe(false);
    if (row.action === "deny" && row.counts === true) counted.set(line.actor_id, before + 1);
  }
  // What the callers heard is what was written.
  const byId = new Map(rows.map((r) => [(JSON.parse(r.line) as Line).decision_id, JSON.parse(r.line) as Line]));
  for (const d of decisions)
    expect([byId.get(d.id)?.result.action, byId.get(d.id)?.result.escalated], `seed ${seed}`).toEqual([d.action, d.escalated]);
  expect(await verifyPostgresLog({ connectionString: pgUrl(), schema }), `seed ${seed}`).toMatchObject({
    ok: true,
    count: decisions.length,
  });
}

/** Each grouping store's group counts (the third instance writes one by one). */
async function run(seed: number, isolation?: string): Promise<GroupStats[]> {
  const random = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
  const schema = db.schema("grouped");
  await migrate({ connectionString: pgUrl(), schema });
  const instances: Veto[] = [];
  const stores: PostgresStore[] = [];
  for (let i = 0; i < 3; i++) {
    const store = await PostgresStore.connect({
      connectionString: pgUrl(),
      schema,
      pool: {
        max: 2 + Math.floor(random() * 7),
        // A server or role whose transactions default to another isolation level.
        ...(isolation === undefined ? {} : { options: `-c default_transaction_isolation=${isolation.replace(" ", "\\ ")}` }),
      },
    });
    stores.push(store);
    instances.push(
      await createVeto({
        bundle: requireBundle(),
        logger: pino({ level: "silent" }),
        // The third instance writes one decision per transaction, beside the two that group them.
        store: i === 2 ? new OneByOne(store) : store,
        recordSink: store.recordSink(),
      }),
    );
  }
  try {
    // Some ids outside ASCII: the database hashes the UTF-8 of each line exactly as chain.ts does.
    const actors = Array.from(
      { length: 2 + Math.floor(random() * 4) },
      (_, i) => `agent:grouped-${seed}-${i}${i % 2 === 0 ? "-grüße-✓-😀" : ""}`,
    );
    const denyShare = 0.2 + random() * 0.5;
    const plan = Array.from({ length: 120 }, () => {
      const r = random();
      const kind: Kind = r < 0.05 ? "nameless" : r < 0.1 ? "invalid" : r < 0.1 + denyShare ? "deny" : "allow";
      return { veto: pick(instances), actor: pick(actors), kind };
    });
    // Bursts: each a batch of calls started together, some instances' groups forming while others commit.
    const decisions: Decision[] = [];
    for (let at = 0; at < plan.length;) {
      const size = 1 + Math.floor(random() * 40);
      const burst = plan.slice(at, at + size);
      at += size;
      decisions.push(...(await Promise.all(burst.map((p) => p.veto.protect(call(p.actor, p.kind))))));
    }
    await checkChain(schema, decisions, seed);
    return stores.slice(0, 2).map((s) => s.groupStats());
  } finally {
    await Promise.all(instances.map((v) => v.close()));
    await Promise.all(stores.map((s) => s.close()));
  }
}

describe("PostgreSQL: decisions in groups keep counts exact", () => {
  it(`three instances, one writing one by one, concurrent bursts on a few keys (seeds from ${SEED})`, { timeout: 120_000 }, async () => {
    for (let k = 0; k < 3; k++) await run(SEED + k);
  });

  it.each(["repeatable read", "serializable"])(
    "the same where transactions default to %s: the stores ask for read committed",
    { timeout: 120_000 },
    async (isolation) => {
      for (let k = 0; k < 2; k++) {
        const stats = await run(SEED + 10 + k, isolation);
        // A predicted group's one statement refuses to run at that level (migration 016, VS002): its
        // decisions are made again, counted, and the store predicts no more.
        for (const s of stats) expect([s.refused, s.predicted <= 1], `seed ${SEED + 10 + k}`).toEqual([s.predicted, true]);
      }
    },
  );
});

/**
 * While another connection (another process, another language) holds one
 * key's history lock, an instance's grouped decisions for other keys go on:
 * only that key's decisions wait (docs/contract.md §3). Seeded: the number
 * of decisions per key, their kinds, their order, the pool's size and the
 * waves they start in.
 */
async function heldKey(seed: number): Promise<void> {
  const random = seededRandom(seed);
  const schema = db.schema("grouped_held");
  await migrate({ connectionString: pgUrl(), schema });
  const store = await PostgresStore.connect({ connectionString: pgUrl(), schema, pool: { max: 2 + Math.floor(random() * 5) } });
  const veto = await createVeto({ bundle: requireBundle(), logger: pino({ level: "silent" }), store, recordSink: store.recordSink() });
  const held = `agent:held-${seed}-grüße-😀`;
  const free = Array.from({ length: 1 + Math.floor(random() * 3) }, (_, i) => `agent:free-${seed}-${i}`);
  const holder = await db.pool.connect();
  try {
    await holder.query("BEGIN");
    await holder.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [historyLockKey(schema, held, TENANT)]);
    const kind = (): Kind => {
      const r = random();
      return r < 0.05 ? "nameless" : r < 0.1 ? "invalid" : r < 0.6 ? "deny" : "allow";
    };
    const waiting: Promise<Decision>[] = [];
    let heldDone = 0;
    const others: Decision[] = [];
    for (let wave = 0, waves = 1 + Math.floor(random() * 3); wave < waves; wave++) {
      const plan = Array.from({ length: 5 + Math.floor(random() * 30) }, () => {
        const k = kind();
        // A nameless call takes no key's lock: it finishes while the held key waits, like the free keys'.
        const actor = k === "nameless" ? "(none)" : random() < 0.4 ? held : (free[Math.floor(random() * free.length)] as string);
        return { actor, kind: k };
      });
      const started = plan.map((p) => {
        const d = veto.protect(call(p.actor, p.kind));
        if (p.actor === held)
          waiting.push(
            d.then((x) => {
              heldDone += 1;
              return x;
            }),
          );
        return { actor: p.actor, d };
      });
      // Every other key's decision finishes while the held key's wait.
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`seed ${seed}: other keys' decisions waited for the held key`)), 20_000);
      });
      try {
        others.push(...(await Promise.race([Promise.all(started.filter((s) => s.actor !== held).map((s) => s.d)), late])));
      } finally {
        clearTimeout(timer);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(heldDone, `seed ${seed}: a decision of the held key finished while its lock was held`).toBe(0);
    const { rows } = await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".decisions WHERE actor_id = $1`, [held]);
    expect(Number(rows[0]?.n), `seed ${seed}`).toBe(0);
    await holder.query("COMMIT");
    const late = await Promise.all(waiting);
    expect(heldDone, `seed ${seed}`).toBe(waiting.length);
    await checkChain(schema, [...others, ...late], seed);
  } finally {
    await holder.query("ROLLBACK").catch(() => {});
    holder.release();
    await veto.close();
    await store.close();
  }
}

describe("PostgreSQL: a key locked elsewhere holds up only its own decisions", () => {
  it(
    `other keys' decisions finish while it is held; its own finish after, counted exactly (seeds from ${SEED})`,
    { timeout: 120_000 },
    async () => {
      for (let k = 0; k < 4; k++) await heldKey(SEED + k);
    },
  );
});

describe("PostgreSQL: a decision slow to be made holds up only its own group", () => {
  it("the next group starts beside a group that waits for a slow recordState; counts stay exact", { timeout: 60_000 }, async () => {
    const schema = db.schema("grouped_slow");
    await migrate({ connectionString: pgUrl(), schema });
    const store = await PostgresStore.connect({ connectionString: pgUrl(), schema });
    let release!: () => void;
    const slowState = new Promise<void>((resolve) => (release = resolve));
    const veto = await createVeto({
      bundle: requireBundle(),
      logger: pino({ level: "silent" }),
      store,
      recordSink: store.recordSink(),
      recordStateTimeoutMs: 30_000,
      recordState: async (c) => {
        if ((c.arguments as Record<string, unknown>)["recordId"] === "opp_slow") await slowState;
        return "v1";
      },
    });
    try {
      const slow = veto.protect({
        tool: "crm.update",
        arguments: { object: "opportunity", recordId: "opp_slow", tenantId: "acme", changes: { close_date: "2026-12-01" }, amount: 9000 },
        context: { ...APP_CONTEXT, reason: "grouped decisions test" },
      });
      let slowDone = false;
      void slow.then(() => (slowDone = true));
      await new Promise((resolve) => setTimeout(resolve, 50));
      const random = seededRandom(SEED);
      const burst = Array.from({ length: 40 }, (_, i) => veto.protect(call(`agent:quick-${i % 4}`, random() < 0.5 ? "deny" : "allow")));
      const quick = await Promise.all(burst);
      expect(slowDone, "the slow decision was still being made").toBe(false);
      release();
      const decided = await slow;
      expect(decided.action).toBe("require_approval");
      await checkChain(schema, [...quick, decided], SEED);
    } finally {
      release();
      await veto.close();
      await store.close();
    }
  });
});

describe("PostgreSQL: decisions that name no actor or tenant", () => {
  it("share the groups (no lock, no count), alone or beside named ones; a keyless unit that is not a decision does not", async () => {
    const schema = db.schema("grouped_nameless");
    await migrate({ connectionString: pgUrl(), schema });
    const store = await PostgresStore.connect({ connectionString: pgUrl(), schema });
    const veto = await createVeto({ bundle: requireBundle(), logger: pino({ level: "silent" }), store, recordSink: store.recordSink() });
    try {
      const random = seededRandom(SEED + 40);
      const decisions: Decision[] = [];
      for (let round = 0; round < 6; round++) {
        // A burst of nameless calls only, then one mixed with named calls of a few keys.
        const kinds: Kind[] = Array.from({ length: 5 + Math.floor(random() * 30) }, () =>
          round % 2 === 0 ? "nameless" : ((["nameless", "deny", "allow", "invalid"] as const)[Math.floor(random() * 4)] ?? "nameless"),
        );
        const before = store.groupStats();
        decisions.push(...(await Promise.all(kinds.map((k, i) => veto.protect(call(`agent:nameless-${i % 3}`, k))))));
        const after = store.groupStats();
        const groups = after.counted + after.predicted - before.counted - before.predicted;
        // Started together, they are written together: far fewer groups than decisions (one transaction each before).
        expect(groups, `seed ${SEED + 40}, round ${round}: ${kinds.length} decisions`).toBeLessThanOrEqual(Math.ceil(kinds.length / 2));
        if (kinds.every((k) => k === "nameless")) expect(groups, `seed ${SEED + 40}, round ${round}`).toBeGreaterThanOrEqual(1);
        // Whether counted or predicted (a group of nameless decisions only is confirmed with no keys), none was refused.
        expect(after.refused, `seed ${SEED + 40}, round ${round}`).toBe(before.refused);
      }
      for (const d of decisions.filter((x) => x.reasons.some((r) => r.code === "invalid_input"))) expect(d.action).toBe("deny");
      await checkChain(schema, decisions, SEED + 40);
      // A keyless unit that is not marked a decision (an approval's, say) still runs in a transaction of its own:
      // the one-transaction unit offers transitionApproval, which a group's unit refuses.
      const moved = await store.unit(
        undefined,
        async (unit) => {
          const ok = await unit.transitionApproval("no-such-decision", { from: "pending", to: "expired", atMs: 0 });
          await unit.commit();
          return ok;
        },
        store.recordSink(),
      );
      expect(moved).toBe(false);
    } finally {
      await veto.close();
      await store.close();
    }
  });
});

describe("PostgreSQL: a grouped decision's unit", () => {
  it("counts, reads decisions and commits in the group's transaction; a rolled-back unit leaves nothing", async () => {
    const schema = db.schema("grouped_unit");
    await migrate({ connectionString: pgUrl(), schema });
    const store = await PostgresStore.connect({ connectionString: pgUrl(), schema });
    const sink = store.recordSink();
    try {
      const key = { actorId: "agent:unit", tenantId: TENANT, windowMs: 900_000 };
      const stored = (id: string, nowMs: number) => ({
        id,
        action: "deny" as const,
        escalated: false,
        atMs: nowMs,
        approvers: [],
        actorId: key.actorId,
        tenantId: key.tenantId,
      });
      // Two units of one key in one group: the second counts the first's deny.
      const [first, second] = await Promise.all(
        ["d1", "d2"].map((id) =>
          store.unit(
            key,
            async (unit) => {
              const n = await unit.countRecentDenies(key.actorId, key.tenantId, (unit.nowMs as number) - key.windowMs);
              await unit.appendDecision(stored(id, unit.nowMs as number));
              const own = await unit.getDecision(id);
              await unit.commit();
              return { n, own: own?.id };
            },
            sink,
          ),
        ),
      );
      expect([first, second]).toEqual([
        { n: 0, own: "d1" },
        { n: 1, own: "d2" },
      ]);
      await store.unit(
        key,
        async (unit) => {
          expect((await unit.getDecision("d1"))?.action).toBe("deny");
          expect(await unit.getDecision("missing")).toBeUndefined();
          expect(await unit.countRecentDenies(key.actorId, key.tenantId, 0)).toBe(2);
          await unit.appendDecision(stored("d3", unit.nowMs as number));
          await unit.rollback();
        },
        sink,
      );
      expect(await store.getDecision("d3")).toBeUndefined();
      expect(await store.countRecentDenies(key.actorId, key.tenantId, 0)).toBe(2);
    } finally {
      await store.close();
    }
  });
});

/**
 * Groups decided on the counts their store knows, in one round trip
 * (migration 014, docs/postgres.md "One round trip"): the database confirms
 * each count under the key's lock with the writes, and refuses any that
 * another writer changed, any that a deny leaving the window changed, and
 * any time that is not its own; the refused decisions are made again, and
 * every recorded count stays exact.
 */
describe("PostgreSQL: one round trip on the counts a store knows", () => {
  /**
   * Every query of every pg client goes through `intercept` (given the query's arguments and the
   * driver's own query on the same client) until the returned function puts the driver's back.
   */
  function interceptQueries(intercept: (args: unknown[], query: (...a: unknown[]) => Promise<unknown>) => unknown): () => void {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- put back as it was, called with its `this` below
    const original = pg.Client.prototype.query;
    const query = original as (...a: unknown[]) => Promise<unknown>;
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      return intercept(args, (...a) => query.apply(this, a));
    } as typeof original;
    return () => void (pg.Client.prototype.query = original);
  }

  /**
   * Round trips a store's connections send, by what they call (observed on
   * the real driver): counted (lock_and_count_window), confirmed with the
   * writes (write_group, migration 016), and of those how many as the named
   * statement prepared once per connection, alone (no BEGIN or COMMIT around it).
   */
  function watchStatements(): { counts: () => { counted: number; confirmed: number; prepared: number }; stop: () => void } {
    let counted = 0;
    let confirmed = 0;
    let prepared = 0;
    const stop = interceptQueries((args, query) => {
      const config = typeof args[0] === "object" && args[0] !== null ? (args[0] as { text?: unknown; name?: unknown }) : {};
      const text = typeof args[0] === "string" ? args[0] : typeof config.text === "string" ? config.text : "";
      if (text.includes(".lock_and_count_window(")) counted += 1;
      if (text.includes(".write_group(")) {
        confirmed += 1;
        if (typeof config.name === "string" && /^SELECT [^;]*\.write_group\([^;]*\) AS now_ms$/.test(text)) prepared += 1;
      }
      return query(...args);
    });
    return { counts: () => ({ counted, confirmed, prepared }), stop };
  }

  /**
   * `n` decisions, one after another, of `actor(i)`'s calls (deny or allow, seeded), by one store on a
   * schema of its own (`pool`: its pool's options); the store's group counts, once the chain is checked.
   */
  async function oneAfterAnother(
    prefix: string,
    seed: number,
    n: number,
    actor: (i: number) => string,
    pool: pg.PoolConfig = {},
  ): Promise<GroupStats> {
    const schema = db.schema(prefix);
    await migrate({ connectionString: pgUrl(), schema });
    const store = await PostgresStore.connect({ connectionString: pgUrl(), schema, pool });
    const veto = await createVeto({ bundle: requireBundle(), logger: pino({ level: "silent" }), store, recordSink: store.recordSink() });
    try {
      const random = seededRandom(seed);
      const decisions: Decision[] = [];
      for (let i = 0; i < n; i++) decisions.push(await veto.protect(call(actor(i), random() < 0.4 ? "deny" : "allow")));
      await checkChain(schema, decisions, seed);
      return store.groupStats();
    } finally {
      await veto.close();
      await store.close();
    }
  }

  it("a store's later decisions of a key take one round trip each; its counts are the database's", { timeout: 60_000 }, async () => {
    const watch = watchStatements();
    try {
      const stats = await oneAfterAnother("one_trip", SEED + 40, 60, (i) => `agent:one-trip-${i % 3}`);
      // The first decision of each key reads its count; every later one is confirmed with its writes.
      expect(stats).toEqual({ counted: 3, predicted: 57, refused: 0 });
      expect(watch.counts()).toEqual({ counted: 3, confirmed: 57, prepared: 57 });
    } finally {
      watch.stop();
    }
  });

  it.each(["repeatable read", "serializable"])(
    "where transactions default to %s: the first prediction is refused and made again, then every group is counted",
    { timeout: 60_000 },
    async (isolation) => {
      const stats = await oneAfterAnother("one_trip_isolation", SEED + 45, 20, () => "agent:one-trip-isolation", {
        options: `-c default_transaction_isolation=${isolation.replace(" ", "\\ ")}`,
      });
      // The second decision's group is predicted, and write_group refuses to run outside READ COMMITTED
      // (VS002): made again in a counted group, as is every later one.
      expect(stats).toEqual({ counted: 20, predicted: 1, refused: 1 });
    },
  );

  it("behind a pooler that loses prepared statements: the write runs nothing, is made again, then every group is counted", async () => {
    // What PgBouncer in transaction mode does to a prepared statement: the driver sends only the Bind
    // of a statement it prepared before, to a server connection that never saw the Parse (SQLSTATE 26000).
    let writes = 0;
    const stop = interceptQueries((args, query) => {
      const name = (args[0] as { name?: unknown } | null)?.name;
      if (typeof name === "string" && name.startsWith("veto.write_group:") && ++writes === 3) {
        return query("DEALLOCATE ALL").then(() => query(...args));
      }
      return query(...args);
    });
    try {
      const stats = await oneAfterAnother("one_trip_pooler", SEED + 46, 10, () => "agent:one-trip-pooler", { max: 1 });
      // Predicted from the second decision; the fourth's write finds no statement and runs nothing: that
      // decision is made again, counted, as is every later one. None is a record_unavailable deny (checkChain).
      expect(writes).toBe(3);
      expect(stats).toEqual({ counted: 8, predicted: 3, refused: 1 });
    } finally {
      stop();
    }
  });

  it("behind a pooler that shares prepared statements' names: the write runs nothing, is made again, then every group is counted", async () => {
    // The same pooler the other way round: a client connection new to the statement sends its Parse to a
    // server connection that another one prepared it on (SQLSTATE 42P05): the Parse fails, nothing runs.
    let writes = 0;
    const stop = interceptQueries((args, query) => {
      const name = (args[0] as { name?: unknown } | null)?.name;
      if (typeof name === "string" && name.startsWith("veto.write_group:") && ++writes === 1) {
        return query(`PREPARE "${name}" AS SELECT 1`).then(() => query(...args));
      }
      return query(...args);
    });
    try {
      const stats = await oneAfterAnother("one_trip_shared_name", SEED + 47, 10, () => "agent:one-trip-shared-name", { max: 1 });
      // The second decision's group is the first predicted; its Parse is refused, so it is made again,
      // counted, as is every later one. None is a record_unavailable deny (checkChain).
      expect(writes).toBe(1);
      expect(stats).toEqual({ counted: 10, predicted: 1, refused: 1 });
    } finally {
      stop();
    }
  });

  it(
    `another process's decisions between a store's: refused, made again, counted exactly (seeds from ${SEED})`,
    { timeout: 120_000 },
    async () => {
      for (let k = 0; k < 4; k++) {
        const seed = SEED + 50 + k;
        const random = seededRandom(seed);
        const schema = db.schema("one_trip_other");
        await migrate({ connectionString: pgUrl(), schema });
        const stores = [
          await PostgresStore.connect({ connectionString: pgUrl(), schema }),
          await PostgresStore.connect({ connectionString: pgUrl(), schema }),
        ];
        const vetos = await Promise.all(
          stores.map((store) =>
            createVeto({ bundle: requireBundle(), logger: pino({ level: "silent" }), store, recordSink: store.recordSink() }),
          ),
        );
        try {
          const decisions: Decision[] = [];
          const actors = Array.from({ length: 1 + Math.floor(random() * 3) }, (_, i) => `agent:other-${seed}-${i}`);
          for (let i = 0; i < 80; i++) {
            const r = random();
            const kind: Kind = r < 0.1 ? "invalid" : r < 0.55 ? "deny" : "allow";
            // Mostly the first store; now and then the second, which the first cannot know of.
            const at = random() < 0.25 ? 1 : 0;
            decisions.push(await (vetos[at] as Veto).protect(call(actors[Math.floor(random() * actors.length)] as string, kind)));
          }
          const stats = stores.map((s) => s.groupStats());
          expect(stats[0]!.predicted, `seed ${seed}: the first store predicted`).toBeGreaterThan(0);
          expect(stats[0]!.refused + stats[1]!.refused, `seed ${seed}: some predictions were refused`).toBeGreaterThan(0);
          await checkChain(schema, decisions, seed);
        } finally {
          await Promise.all(vetos.map((v) => v.close()));
          await Promise.all(stores.map((s) => s.close()));
        }
      }
    },
  );

  it("a deny written by another writer, and one leaving the window, change the next count exactly", { timeout: 60_000 }, async () => {
    const schema = db.schema("one_trip_window");
    await migrate({ connectionString: pgUrl(), schema });
    const store = await PostgresStore.connect({ connectionString: pgUrl(), schema });
    const veto = await createVeto({ bundle: requireBundle(), logger: pino({ level: "silent" }), store, recordSink: store.recordSink() });
    const actor = "agent:window-edge";
    const recorded = async (d: Decision): Promise<number> => {
      const { rows } = await db.pool.query<{ line: string }>(`SELECT line FROM "${schema}".records WHERE decision_id = $1`, [d.id]);
      return (JSON.parse(rows[0]!.line) as Line).history!.recent_denies;
    };
    const insertDeny = async (id: string, atMs: number): Promise<void> => {
      await db.pool.query(
        `INSERT INTO "${schema}".decisions (id, action, escalated, actor_id, tenant_id, at_ms, approvers, counts_towards_escalation)
         VALUES ($1, 'deny', false, $2, $3, $4, '{}', true)`,
        [id, actor, TENANT, atMs],
      );
    };
    try {
      const windowMs = 900_000;
      const now = await store.now();
      // One deny that leaves the window 1.5 s from now (below the threshold: the calls below stay allowed).
      await insertDeny("old-1", now - windowMs + 1500);
      expect(await recorded(await veto.protect(call(actor, "allow")))).toBe(1);
      expect(await recorded(await veto.protect(call(actor, "allow")))).toBe(1);
      expect(store.groupStats()).toEqual({ counted: 1, predicted: 1, refused: 0 });
      // Another writer's deny: the store cannot know it; the database refuses its prediction.
      await insertDeny("other-1", (await store.now()) - 10);
      expect(await recorded(await veto.protect(call(actor, "allow")))).toBe(2);
      expect(store.groupStats()).toEqual({ counted: 2, predicted: 2, refused: 1 });
      // A refused key is counted first for a while (a second process may be deciding it too).
      expect(await recorded(await veto.protect(call(actor, "allow")))).toBe(2);
      expect(store.groupStats()).toEqual({ counted: 3, predicted: 2, refused: 1 });
      // The oldest deny leaves the window: the store knew when, and counts again rather than predict.
      while ((await store.now()) < now + 1600) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await recorded(await veto.protect(call(actor, "allow")))).toBe(1);
      expect(store.groupStats()).toEqual({ counted: 4, predicted: 2, refused: 1 });
      expect(await recorded(await veto.protect(call(actor, "allow")))).toBe(1);
      expect(store.groupStats()).toEqual({ counted: 4, predicted: 3, refused: 1 });
    } finally {
      await veto.close();
      await store.close();
    }
  });
});

/** confirm_counts (migration 014) itself: what it refuses, with SQLSTATE VS001, and what it confirms. */
/**
 * Each key's counted denies, one second apart, the latest 7 s before the database's clock: before every
 * group time the confirm_counts tests confirm (a decision timed after a group's refuses it, migration 014).
 */
async function insertDenies(schema: string, keys: readonly { actor: string; denies: number }[]): Promise<void> {
  const { rows } = await db.pool.query<{ t: string }>(`SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS t`);
  const base = Number(rows[0]!.t);
  for (const key of keys) {
    for (let i = 0; i < key.denies; i++) {
      await db.pool.query(
        `INSERT INTO "${schema}".decisions (id, action, escalated, actor_id, tenant_id, at_ms, approvers, counts_towards_escalation)
         VALUES ($1, 'deny', false, $2, $3, $4, '{}', true)`,
        [`c-${key.actor}-${i}`, key.actor, TENANT, base - 6000 - 1000 * (i + 1)],
      );
    }
  }
}

describe("PostgreSQL: confirm_counts", () => {
  // One key (checked on its own, migration 015) and a key among others (all counted in one query).
  it.each([1, 3])(
    "refuses a count off by any amount, a time ahead or too far behind, a lock held elsewhere; confirms the rest (%i keys)",
    async (size) => {
      const schema = db.schema("confirm");
      await migrate({ connectionString: pgUrl(), schema });
      const random = seededRandom(SEED + 60 + size);
      // The key under test at a random place among the group's keys; every other key's count is right.
      const keys = Array.from({ length: size }, (_, k) => ({ actor: `agent:confirm-${k}-✓`, denies: 1 + Math.floor(random() * 6) }));
      const tested = Math.floor(random() * size);
      const { actor, denies } = keys[tested]!;
      const lockKey = historyLockKey(schema, actor, TENANT);
      await insertDenies(schema, keys);
      const confirm = async (
        expected: number,
        atMs: string,
        lagMs = 5000,
      ): Promise<{ ok: true; t: number } | { ok: false; code: string }> => {
        const client = await db.pool.connect();
        try {
          await client.query("BEGIN ISOLATION LEVEL READ COMMITTED");
          const { rows } = await client.query<{ t: string }>(
            `SELECT "${schema}".confirm_counts($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], ${atMs}, $6) AS t`,
            [
              keys.map((k) => historyLockKey(schema, k.actor, TENANT)),
              keys.map((k) => k.actor),
              keys.map(() => TENANT),
              keys.map(() => 900_000),
              keys.map((k, i) => (i === tested ? expected : k.denies)),
              lagMs,
            ],
          );
          return { ok: true, t: Number(rows[0]!.t) };
        } catch (error) {
          return { ok: false, code: (error as { code: string }).code };
        } finally {
          await client.query("ROLLBACK");
          client.release();
        }
      };
      const now = "floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint";
      expect(await confirm(denies, now)).toMatchObject({ ok: true });
      for (let k = 0; k < 12; k++) {
        const off = (random() < 0.5 ? -1 : 1) * (1 + Math.floor(random() * 5));
        expect(await confirm(denies + off, now), `off by ${off}`).toEqual({ ok: false, code: "VS001" });
        const ahead = 1 + Math.floor(random() * 100_000);
        expect(await confirm(denies, `${now} + ${ahead}`), `${ahead} ms ahead`).toEqual({ ok: false, code: "VS001" });
        const behind = 5001 + Math.floor(random() * 100_000);
        expect(await confirm(denies, `${now} - ${behind}`), `${behind} ms behind`).toEqual({ ok: false, code: "VS001" });
      }
      expect(await confirm(denies, "NULL")).toEqual({ ok: false, code: "VS001" });
      expect(await confirm(denies, `${now} - 4000`)).toMatchObject({ ok: true });
      // A group timed before a decision of its key (another writer decided it meanwhile): refused, whatever the count.
      const between = 1 + Math.floor(random() * 3000);
      await db.pool.query(
        `INSERT INTO "${schema}".decisions (id, action, escalated, actor_id, tenant_id, at_ms, approvers, counts_towards_escalation)
       VALUES ('c-allow', 'allow', false, $1, $2, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - $3, '{}', true)`,
        [actor, TENANT, between],
      );
      expect(await confirm(denies, `${now} - ${between + 500}`), `timed before a decision ${between} ms ago`).toEqual({
        ok: false,
        code: "VS001",
      });
      expect(await confirm(denies, now)).toMatchObject({ ok: true });
      const holder = await db.pool.connect();
      try {
        await holder.query("BEGIN");
        await holder.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [lockKey]);
        expect(await confirm(denies, now), "lock held elsewhere").toEqual({ ok: false, code: "VS001" });
      } finally {
        await holder.query("ROLLBACK");
        holder.release();
      }
      expect(await confirm(denies, now)).toMatchObject({ ok: true });
    },
  );

  // 014 walked lock_keys and read the other arrays by subscript; 015 reads them all by position. A group
  // whose arrays disagree (a length, the numbering, a dimension, a null) is refused, never read another way.
  it("refuses a group whose arrays disagree, and a null lock key; lock_and_count_window rejects the arrays", async () => {
    const schema = db.schema("shapes");
    await migrate({ connectionString: pgUrl(), schema });
    const random = seededRandom(SEED + 70);
    const size = 1 + Math.floor(random() * 4);
    const keys = Array.from({ length: size }, (_, k) => ({ actor: `agent:shape-${k}`, denies: Math.floor(random() * 4) }));
    await insertDenies(schema, keys);
    type Arrays = [string[], string[], string[], number[], number[]];
    const good = (): Arrays => [
      keys.map((k) => historyLockKey(schema, k.actor, TENANT)),
      keys.map((k) => k.actor),
      keys.map(() => TENANT),
      keys.map(() => 900_000),
      keys.map((k) => k.denies),
    ];
    const literal = (a: readonly (string | number | null)[]): string =>
      `{${a.map((v) => (v === null ? "NULL" : typeof v === "number" ? String(v) : `"${v.replace(/["\\]/g, "\\$&")}"`)).join(",")}}`;
    // Each array as a literal, one of them possibly reshaped.
    const run = async (fn: "confirm" | "count", texts: string[]): Promise<{ ok: true } | { ok: false; code: string }> => {
      const client = await db.pool.connect();
      try {
        await client.query("BEGIN ISOLATION LEVEL READ COMMITTED");
        const [l, a, t, w, e] = texts;
        await client.query(
          fn === "confirm"
            ? `SELECT "${schema}".confirm_counts($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
                 floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint, 5000)`
            : `SELECT * FROM "${schema}".lock_and_count_window($1::text[], $2::text[], $3::text[], $4::bigint[])`,
          fn === "confirm" ? [l, a, t, w, e] : [l, a, t, w],
        );
        return { ok: true };
      } catch (error) {
        return { ok: false, code: (error as { code: string }).code };
      } finally {
        await client.query("ROLLBACK");
        client.release();
      }
    };
    expect(await run("confirm", good().map(literal))).toEqual({ ok: true });
    expect(await run("count", good().map(literal))).toEqual({ ok: true });
    const reshapes: [string, (a: (string | number)[]) => string | null][] = [
      ["one element fewer", (a) => literal(a.slice(1))],
      ["one element more", (a) => literal([...a, a[0]!])],
      ["numbered from 0", (a) => `[0:${a.length - 1}]=${literal(a)}`],
      ["two dimensions", (a) => `{${a.map((v) => literal([v])).join(",")}}`],
      ["null", () => null],
    ];
    for (let k = 0; k < 12; k++) {
      const [what, reshape] = reshapes[Math.floor(random() * reshapes.length)]!;
      const which = Math.floor(random() * 5);
      const texts: (string | null)[] = good().map((a, i) => (i === which ? reshape(a) : literal(a)));
      expect(await run("confirm", texts as string[]), `confirm_counts, array ${which} ${what}`).toEqual({ ok: false, code: "VS001" });
      // lock_and_count_window takes no counts: a reshaped fifth array is not passed to it.
      if (which < 4) {
        expect(await run("count", texts as string[]), `lock_and_count_window, array ${which} ${what}`).toEqual({
          ok: false,
          code: "22023",
        });
      }
    }
    // A null lock key: confirm_counts refuses (it would confirm a key it never locked); lock_and_count_window
    // answers that key as not held, uncounted.
    const nulled = good().map(literal);
    const at = Math.floor(random() * size);
    const locks: (string | null)[] = good()[0];
    locks[at] = null;
    nulled[0] = literal(locks);
    expect(await run("confirm", nulled)).toEqual({ ok: false, code: "VS001" });
    const { rows } = await db.pool.query<{ i: string; got: boolean; n: string | null }>(
      `SELECT i, got, n FROM "${schema}".lock_and_count_window($1::text[], $2::text[], $3::text[], $4::bigint[])`,
      nulled.slice(0, 4),
    );
    expect(rows.map((r) => ({ i: Number(r.i), got: r.got, counted: r.n !== null }))).toEqual(
      keys.map((_, i) => ({ i, got: i !== at, counted: i !== at })),
    );
    expect(rows.filter((r) => r.n !== null).map((r) => Number(r.n))).toEqual(keys.filter((_, i) => i !== at).map((k) => k.denies));
  });
});
