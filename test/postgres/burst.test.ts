/**
 * Bursts of answers on small pools: more concurrent approve()/reject() calls
 * for one decision than the pool has connections, together with protect()
 * calls, racing another instance and the expiry. No unit ever waits for a
 * second connection while it holds one, so every call settles, exactly one
 * answer wins (docs/contract.md §6: only once), and every wait for a
 * connection is bounded (a record_unavailable deny or refusal, never a hang).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { pino } from "pino";
import { ApprovalError, createVeto, type Decision, type Veto, type VetoOptions } from "../../adapter/index.js";
import { PostgresStore, migrate, postgres } from "../../adapter/postgres/index.js";
import { seededRandom } from "../helpers/generate-calls.js";
import { MemorySink, requireBundle } from "../helpers/index.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";

const APPROVER = "user:sysadmin@globex.example";
const SEED = Number(process.env.VETO_BURST_SEED ?? 7_301);
const db = testDatabase();
let schema: string;

beforeAll(async () => {
  requireBundle();
  schema = db.schema("burst");
  await migrate({ connectionString: pgUrl(), schema });
});
afterAll(() => db.dropSchemas());

const opened: Veto[] = [];
afterAll(async () => {
  await Promise.all(opened.map((v) => v.close()));
});

async function instance(
  options: Partial<VetoOptions> & { max?: number; records?: boolean; connectionTimeoutMillis?: number } = {},
): Promise<Veto> {
  const { max = 10, records = true, connectionTimeoutMillis, ...rest } = options;
  const veto = await createVeto({
    bundle: requireBundle(),
    logger: pino({ level: "silent" }),
    approvalPollMs: 50,
    ...(records ? {} : { recordSink: new MemorySink() }),
    store: postgres({
      connectionString: pgUrl(),
      schema,
      records,
      pool: { max, ...(connectionTimeoutMillis === undefined ? {} : { connectionTimeoutMillis }) },
    }),
    ...rest,
  });
  opened.push(veto);
  return veto;
}

let actors = 0;
function globex(args: Record<string, unknown> = {}): Record<string, unknown> {
  actors += 1;
  return {
    tool: "crm.update",
    arguments: { object: "opportunity", recordId: "opp_9", tenantId: "globex", changes: { close_date: "2026-12-01" }, ...args },
    context: { actorId: `agent:burst-${actors}`, tenantId: "globex", environment: "production", reason: "burst test" },
  };
}

/** Settle `promise` within `ms`, or fail naming what wedged. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: still unsettled after ${ms} ms (wedged)`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

type Settled = { ok: true; value: unknown } | { ok: false; code: string };
const settle = (p: Promise<unknown>): Promise<Settled> =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, code: error instanceof ApprovalError ? error.code : `raw:${String(error)}` }),
  );

async function asked(veto: Veto): Promise<Decision> {
  const d = await veto.protect(globex({ amount: 30000 }));
  expect(d.action).toBe("require_approval");
  return d;
}

/**
 * `answers` concurrent answers (approve or reject, seeded) for one decision,
 * spread over `answerers`, with `protects` concurrent protect() calls.
 */
async function burst(answerers: Veto[], answers: number, protects: number, random: () => number, label: string): Promise<void> {
  const d = await asked(answerers[0]!);
  const kinds = Array.from({ length: answers }, () => (random() < 0.5 ? "approve" : "reject"));
  const [outcomes, decisions] = await within(
    60_000,
    label,
    Promise.all([
      Promise.all(
        kinds.map((kind, i) => settle(answerers[i % answerers.length]![kind as "approve"]({ decisionId: d.id, reviewerId: APPROVER }))),
      ),
      Promise.all(Array.from({ length: protects }, (_, i) => answerers[i % answerers.length]!.protect(globex({ amount: 100 })))),
    ]),
  );
  const won = outcomes.filter((o) => o.ok);
  expect(won, `${label}: exactly one answer wins`).toHaveLength(1);
  expect(
    outcomes.filter((o) => !o.ok).map((o) => (o as { code: string }).code),
    `${label}: the others are refused as answered`,
  ).toEqual(Array(answers - 1).fill("already_answered"));
  // Protects are decided, not turned away for want of a connection.
  expect(
    decisions.map((x) => [x.action, x.reasons[0]?.code]),
    label,
  ).toEqual(Array(protects).fill(["allow", "low_value"]));
  const { rows } = await db.pool.query(`SELECT approval_status FROM "${schema}".decisions WHERE id = $1`, [d.id]);
  const winner = won[0]!.value as { status: string };
  expect(rows, label).toEqual([{ approval_status: winner.status }]);
}

describe.each([1, 2, 10])("a pool of %i", (max) => {
  it(`bursts of ${max + 1} and ${5 * max} concurrent answers with protects: every call settles, one answer wins (seed ${SEED})`, async () => {
    const random = seededRandom(SEED + max);
    for (const records of [true, false]) {
      const veto = await instance({ max, records });
      for (const answers of [max + 1, 5 * max]) {
        await burst(
          [veto],
          answers,
          max + 1,
          random,
          `max ${max}, ${answers} answers, records ${records ? "in the database" : "in a sink"} (seed ${SEED})`,
        );
      }
      // Still serving after the bursts.
      expect((await within(10_000, "a later protect", veto.protect(globex({ amount: 100 })))).action).toBe("allow");
    }
  });

  it(`answers racing another instance's answers, waiters and the expiry settle; at most one wins (seed ${SEED})`, async () => {
    const random = seededRandom(SEED * 31 + max);
    const ttlMs = 400;
    const [a, b] = [await instance({ max, approvalTtlMs: ttlMs }), await instance({ max, approvalTtlMs: ttlMs })];
    for (let round = 0; round < 3; round++) {
      const d = await asked(a);
      // Answers spread over the approval's life and just past it.
      const answers = Array.from({ length: 5 * max }, (_, i) => {
        const delay = Math.floor(random() * ttlMs * 1.5);
        const who = i % 2 === 0 ? a : b;
        return new Promise<Settled>((resolve) =>
          setTimeout(
            () => void settle(who[random() < 0.5 ? "approve" : "reject"]({ decisionId: d.id, reviewerId: APPROVER })).then(resolve),
            delay,
          ),
        );
      });
      const waits = [a, b].map((v) => settle(v.waitForApproval({ decisionId: d.id })));
      const protects = Array.from({ length: max + 1 }, (_, i) => (i % 2 === 0 ? a : b).protect(globex({ amount: 100 })));
      const [outcomes, waited, decided] = await within(
        60_000,
        `round ${round} (seed ${SEED})`,
        Promise.all([Promise.all(answers), Promise.all(waits), Promise.all(protects)]),
      );
      const won = outcomes.filter((o) => o.ok);
      expect(won.length, `round ${round} (seed ${SEED})`).toBeLessThanOrEqual(1);
      for (const o of outcomes.filter((x) => !x.ok))
        expect(["already_answered", "approval_expired"]).toContain((o as { code: string }).code);
      // Both waiters agree with the store: approved, rejected or expired.
      const { rows } = await db.pool.query<{ approval_status: string }>(`SELECT approval_status FROM "${schema}".decisions WHERE id = $1`, [
        d.id,
      ]);
      const status = rows[0]!.approval_status;
      expect(["approved", "rejected", "expired"]).toContain(status);
      const expected =
        status === "approved" ? { ok: true } : { ok: false, code: status === "rejected" ? "approval_rejected" : "approval_expired" };
      for (const w of waited) expect(w).toMatchObject(expected);
      expect(decided.every((x) => x.action === "allow")).toBe(true);
    }
  });
});

describe("every wait for a connection is bounded", () => {
  async function onStore(store: PostgresStore): Promise<Veto> {
    const veto = await createVeto({ bundle: requireBundle(), logger: pino({ level: "silent" }), store, recordSink: store.recordSink() });
    opened.push(veto);
    return veto;
  }

  it("with every connection of the pool taken: protect denies, an answer and a wait are refused (record_unavailable) within the bound", async () => {
    const store = await PostgresStore.connect({ connectionString: pgUrl(), schema, pool: { max: 2, connectionTimeoutMillis: 300 } });
    const veto = await onStore(store);
    const d = await asked(veto);
    const held = await Promise.all([store.pool.connect(), store.pool.connect()]);
    const started = Date.now();
    try {
      const denied = await veto.protect(globex({ amount: 100 }));
      expect([denied.action, denied.reasons.map((r) => r.code)]).toEqual(["deny", ["record_unavailable"]]);
      expect(denied.reason).toMatch(/connection timeout: no PostgreSQL connection within 300 ms/);
      expect(await settle(veto.approve({ decisionId: d.id, reviewerId: APPROVER }))).toEqual({ ok: false, code: "record_unavailable" });
      expect(await settle(veto.waitForApproval({ decisionId: d.id }))).toEqual({ ok: false, code: "record_unavailable" });
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      for (const c of held) c.release();
    }
    // The connections back: the same instance answers and decides again.
    expect(await settle(veto.approve({ decisionId: d.id, reviewerId: APPROVER }))).toMatchObject({ ok: true });
    expect((await veto.protect(globex({ amount: 100 }))).action).toBe("allow");
    await store.close();
  });

  it("a pg.Pool passed in without connectionTimeoutMillis gets the default bound (10 s)", async () => {
    const pool = new pg.Pool({ connectionString: pgUrl(), max: 1 });
    const store = await PostgresStore.connect({ pool, schema });
    const veto = await onStore(store);
    const held = await pool.connect();
    const started = Date.now();
    let denied: Decision;
    try {
      denied = await within(30_000, "protect on a pool whose only connection is taken", veto.protect(globex({ amount: 100 })));
    } finally {
      held.release();
    }
    const waited = Date.now() - started;
    expect([denied.action, denied.reasons.map((r) => r.code)]).toEqual(["deny", ["record_unavailable"]]);
    expect(waited).toBeGreaterThanOrEqual(9_500);
    expect(waited).toBeLessThan(25_000);
    expect((await veto.protect(globex({ amount: 100 }))).action).toBe("allow");
    await store.close();
    await pool.end();
  });
});
