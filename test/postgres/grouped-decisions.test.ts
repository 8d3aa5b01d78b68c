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
import { pino } from "pino";
import { createVeto, type Decision, type StoreUnit, type Veto, type VetoStore } from "../../adapter/index.js";
import { PostgresStore, migrate, verifyPostgresLog } from "../../adapter/postgres/index.js";
import { historyLockKey } from "../../adapter/postgres/connection.js";
import { seededRandom } from "../helpers/generate-calls.js";
import { requireBundle } from "../helpers/index.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";
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

type Kind = "allow" | "deny" | "invalid";

function call(actorId: string, kind: Kind): Record<string, unknown> {
  // Malformed arguments: an invalid_input deny, which counts for the actor and tenant it names (docs/contract.md §3).
  if (kind === "invalid") {
    return {
      tool: "crm.update",
      arguments: "not an object",
      context: { actorId, tenantId: TENANT, environment: "production", reason: "grouped decisions test" },
    };
  }
  return kind === "deny"
    ? {
        tool: "crm.update",
        arguments: { object: "opportunity", recordId: "opp_1", tenantId: TENANT, destination: "https://pastebin.com/x" },
        context: { actorId, tenantId: TENANT, environment: "production", reason: "grouped decisions test" },
      }
    : {
        tool: "crm.read",
        arguments: { object: "opportunity", recordId: "opp_1", tenantId: TENANT },
        context: { actorId, tenantId: TENANT, environment: "production", reason: "grouped decisions test" },
      };
}

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

async function run(seed: number, isolation?: string): Promise<void> {
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
      const kind: Kind = r < 0.1 ? "invalid" : r < 0.1 + denyShare ? "deny" : "allow";
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
      for (let k = 0; k < 2; k++) await run(SEED + 10 + k, isolation);
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
      return r < 0.1 ? "invalid" : r < 0.6 ? "deny" : "allow";
    };
    const waiting: Promise<Decision>[] = [];
    let heldDone = 0;
    const others: Decision[] = [];
    for (let wave = 0, waves = 1 + Math.floor(random() * 3); wave < waves; wave++) {
      const plan = Array.from({ length: 5 + Math.floor(random() * 30) }, () => ({
        actor: random() < 0.4 ? held : (free[Math.floor(random() * free.length)] as string),
        kind: kind(),
      }));
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
