/**
 * Migration 013 counts an (actor, tenant)'s recent denies from ordinals
 * instead of reading every deny in the window (docs/postgres.md, "Counting
 * denies"). The count must be exactly what counting every row said
 * (docs/contract.md §3): generated histories, written in any time order,
 * with denies that stop counting, late denies, rejections, other rows and
 * rows deleted (one anywhere, or all before a moment as the retention job
 * does), are counted both ways at every boundary; so are histories written before
 * the migration and numbered by it, and denies written at once by writers
 * that hold no lock.
 */
import fc from "fast-check";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadMigrations, migrateWith, type Migration } from "../../adapter/postgres/migrations.js";
import { testDatabase } from "../helpers/postgres.js";

const SEED = 20261202;
const db = testDatabase();
let migrations: Migration[];
let schema: string;

beforeAll(async () => {
  migrations = await loadMigrations();
  expect(migrations.some((m) => m.version === 13)).toBe(true);
  schema = db.schema("ordinals");
  await migrateWith(db.pool, schema, migrations);
});

afterAll(async () => {
  await db.dropSchemas();
});

/** What counting every row says: the count before migration 013. */
function naiveCount(s: string): string {
  return `SELECT (SELECT count(*) FROM "${s}".decisions WHERE actor_id = $1 AND tenant_id = $2 AND counts_towards_escalation
                   AND action = 'deny' AND at_ms >= $3)
             + (SELECT count(*) FROM "${s}".decisions WHERE actor_id = $1 AND tenant_id = $2 AND counts_towards_escalation
                   AND approval_status = 'rejected' AND answered_at_ms >= $3) AS n`;
}

/** The earliest time among what the naive count counts (a deny's time, a rejection's answer time). */
function naiveEarliest(s: string): string {
  return `SELECT least((SELECT min(at_ms) FROM "${s}".decisions WHERE actor_id = $1 AND tenant_id = $2 AND counts_towards_escalation
                         AND action = 'deny' AND at_ms >= $3),
                       (SELECT min(answered_at_ms) FROM "${s}".decisions WHERE actor_id = $1 AND tenant_id = $2 AND counts_towards_escalation
                         AND approval_status = 'rejected' AND answered_at_ms >= $3))::text AS t`;
}

type Op =
  | { kind: "insert"; key: number; action: "allow" | "deny" | "require_approval"; counts: boolean; at: number }
  | { kind: "replace"; target: number }
  | { kind: "reject"; target: number; at: number }
  // An owner's DELETE: one row (anywhere in its key's history), or every row of the run older than a moment (retention).
  | { kind: "delete"; target: number }
  | { kind: "expire"; back: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant("insert" as const),
      key: fc.integer({ min: 0, max: 2 }),
      action: fc.constantFrom("deny" as const, "deny" as const, "allow" as const, "require_approval" as const),
      counts: fc.boolean(),
      // Mostly forward in time, sometimes before what came last (a late deny).
      at: fc.integer({ min: 0, max: 40 }),
    }),
    weight: 6,
  },
  { arbitrary: fc.record({ kind: fc.constant("replace" as const), target: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("reject" as const), target: fc.nat(), at: fc.integer({ min: 0, max: 40 }) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("delete" as const), target: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("expire" as const), back: fc.integer({ min: 0, max: 800 }) }), weight: 1 },
);

interface Row {
  id: string;
  action: string;
  counts: boolean;
  approval: string | null;
}

/** Applies `ops` to keys of run `run` in schema `s`, through `client`; returns the keys' actor ids. */
async function apply(client: pg.PoolClient | pg.Pool, s: string, run: string, ops: readonly Op[]): Promise<string[]> {
  const rows: Row[] = [];
  let clock = 1_000;
  for (const [i, o] of ops.entries()) {
    if (o.kind === "insert") {
      clock += 1;
      const at = o.at < 8 ? clock - o.at * 3 : clock + o.at;
      clock = Math.max(clock, at);
      const id = `${run}-${i}`;
      const pending = o.action === "require_approval";
      await client.query(
        `INSERT INTO "${s}".decisions (id, action, escalated, actor_id, tenant_id, at_ms, call_digest, approvers,
           approval_status, expires_at_ms, counts_towards_escalation)
         VALUES ($1, $2, false, $3, 'acme', $4, $5, '{}', $6, $7, $8)`,
        [
          id,
          o.action,
          `agent:${run}-${o.key}`,
          at,
          pending ? "sha256:d" : null,
          pending ? "pending" : null,
          pending ? at + 60_000 : null,
          o.counts,
        ],
      );
      rows.push({ id, action: o.action, counts: o.counts, approval: pending ? "pending" : null });
    } else if (o.kind === "replace") {
      // The record_unavailable deny that replaces a decision under its id, and does not count (migration 011).
      const row = rows[o.target % Math.max(rows.length, 1)];
      if (row === undefined || (row.approval !== null && row.approval !== "pending")) continue;
      await client.query(
        `UPDATE "${s}".decisions SET action = 'deny', escalated = false, approvers = '{}', approval_status = NULL,
           expires_at_ms = NULL, counts_towards_escalation = false WHERE id = $1`,
        [row.id],
      );
      Object.assign(row, { action: "deny", counts: false, approval: null });
    } else if (o.kind === "delete") {
      const at = o.target % Math.max(rows.length, 1);
      const row = rows[at];
      if (row === undefined) continue;
      await client.query(`DELETE FROM "${s}".decisions WHERE id = $1`, [row.id]);
      rows.splice(at, 1);
    } else if (o.kind === "expire") {
      const { rows: gone } = await client.query<{ id: string }>(
        `DELETE FROM "${s}".decisions WHERE id LIKE $1 AND at_ms < $2 RETURNING id`,
        [`${run}-%`, clock - o.back],
      );
      const ids = new Set(gone.map((g) => g.id));
      rows.splice(0, rows.length, ...rows.filter((r) => !ids.has(r.id)));
    } else {
      const row = rows[o.target % Math.max(rows.length, 1)];
      if (row === undefined || row.approval !== "pending") continue;
      await client.query(`UPDATE "${s}".decisions SET approval_status = 'answering', reviewer_id = 'user:r' WHERE id = $1`, [row.id]);
      await client.query(`UPDATE "${s}".decisions SET approval_status = 'rejected', answered_at_ms = $2 WHERE id = $1`, [
        row.id,
        clock + o.at - 20,
      ]);
      row.approval = "rejected";
    }
  }
  return [0, 1, 2].map((k) => `agent:${run}-${k}`);
}

/** Every boundary that can matter for `actor`: before everything, each time and answer time, one past each, after everything. */
async function expectSameCounts(s: string, actor: string): Promise<number> {
  const { rows } = await db.pool.query<{ t: string }>(
    `SELECT DISTINCT t FROM (SELECT at_ms AS t FROM "${s}".decisions WHERE actor_id = $1
                             UNION ALL SELECT answered_at_ms FROM "${s}".decisions WHERE actor_id = $1 AND answered_at_ms IS NOT NULL) x`,
    [actor],
  );
  const since = [0, 1e15, ...rows.flatMap((r) => [Number(r.t), Number(r.t) + 1])];
  const windows: { n: number; oldest_ms: string | null }[] = [];
  let checked = 0;
  for (const t of since) {
    const naive = await db.pool.query<{ n: string }>(naiveCount(s), [actor, "acme", t]);
    const counted = await db.pool.query<{ n: string }>(`SELECT "${s}".recent_denies($1, $2, $3) AS n`, [actor, "acme", t]);
    expect({ actor, since: t, n: Number(counted.rows[0]?.n) }).toEqual({ actor, since: t, n: Number(naive.rows[0]?.n) });
    // Migration 014's deny_window: the same count, and a time no later than the earliest it counts (so the
    // count holds while the window's start has not passed it), never before the window.
    const window = await db.pool.query<{ n: string; oldest_ms: string | null }>(`SELECT n, oldest_ms FROM "${s}".deny_window($1, $2, $3)`, [
      actor,
      "acme",
      t,
    ]);
    const earliest = await db.pool.query<{ t: string | null }>(naiveEarliest(s), [actor, "acme", t]);
    const w = window.rows[0];
    const first = earliest.rows[0]?.t ?? null;
    expect(Number(w?.n), `deny_window(${actor}, ${t})`).toBe(Number(naive.rows[0]?.n));
    if (first !== null) {
      expect(w?.oldest_ms, `deny_window(${actor}, ${t}) names a time`).not.toBeNull();
      expect(Number(w?.oldest_ms)).toBeLessThanOrEqual(Number(first));
    }
    if (w?.oldest_ms != null) expect(Number(w.oldest_ms)).toBeGreaterThanOrEqual(t);
    windows.push({ n: Number(w?.n), oldest_ms: w?.oldest_ms ?? null });
    checked += 1;
  }
  // Migration 015's count_windows: every boundary at once, as one group's keys, each row what
  // deny_window gave for it alone, itself held to the naive count above (and null for a key not counted).
  const counted = [...since.map(() => true), false];
  const grouped = await db.pool.query<{ j: string; n: string | null; oldest_ms: string | null }>(
    `SELECT j, n, oldest_ms FROM "${s}".count_windows($1, $2, $3, $4)`,
    [counted.map(() => actor), counted.map(() => "acme"), [...since, 0], counted],
  );
  expect(grouped.rows.map((r) => Number(r.j))).toEqual(counted.map((_, i) => i + 1));
  expect(grouped.rows.slice(0, -1).map((r) => ({ n: Number(r.n), oldest_ms: r.oldest_ms }))).toEqual(windows);
  expect(grouped.rows.at(-1)).toMatchObject({ n: null, oldest_ms: null });
  return checked;
}

describe("recent denies counted from ordinals (migration 013)", () => {
  it("count exactly what counting every row counts, for generated histories at every boundary", async () => {
    let run = 0;
    let checked = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40, size: "max" }), async (ops) => {
        const name = `g${run++}`;
        const actors = await apply(db.pool, schema, name, ops);
        for (const actor of actors) checked += await expectSameCounts(schema, actor);
      }),
      { seed: SEED, numRuns: 60 },
    );
    expect(checked).toBeGreaterThan(500);
  });

  it("number the denies written before the migration, in time order, and count them the same", async () => {
    const older = db.schema("ordinals_012");
    await migrateWith(
      db.pool,
      older,
      migrations.filter((m) => m.version <= 12),
    );
    const ops = fc.sample(fc.array(op, { minLength: 20, maxLength: 60 }), { numRuns: 12, seed: SEED + 1 });
    const actors = (await Promise.all(ops.map((o, i) => apply(db.pool, older, `m${i}`, o)))).flat();
    const before = await Promise.all(
      actors.map(async (a) => Number((await db.pool.query<{ n: string }>(naiveCount(older), [a, "acme", 0])).rows[0]?.n)),
    );
    await migrateWith(db.pool, older, migrations);
    for (const [i, actor] of actors.entries()) {
      await expectSameCounts(older, actor);
      const { rows } = await db.pool.query<{ n: string }>(`SELECT "${older}".recent_denies($1, 'acme', 0) AS n`, [actor]);
      expect(Number(rows[0]?.n)).toBe(before[i]);
    }
    // Each key's counted denies are numbered 1..n in (time, id) order.
    const { rows } = await db.pool.query<{ ok: boolean }>(
      `SELECT bool_and(deny_ordinal = n) AS ok FROM (
         SELECT deny_ordinal, row_number() OVER (PARTITION BY actor_id, tenant_id ORDER BY at_ms, id) AS n
           FROM "${older}".decisions WHERE action = 'deny' AND counts_towards_escalation) x`,
    );
    expect(rows[0]?.ok).toBe(true);
  });

  it("give no two denies one ordinal when writers that hold no lock insert at once", async () => {
    const writers = 8;
    const each = 25;
    const actor = "agent:racing";
    await Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        const client = await db.pool.connect();
        try {
          for (let i = 0; i < each; i++) {
            await client.query("BEGIN");
            await client.query(
              `INSERT INTO "${schema}".decisions (id, action, escalated, actor_id, tenant_id, at_ms, approvers, counts_towards_escalation)
               VALUES ($1, 'deny', false, $2, 'acme', $3, '{}', true)`,
              [`race-${w}-${i}`, actor, 5_000 + i * writers + w],
            );
            await new Promise((r) => setTimeout(r, 1));
            await client.query("COMMIT");
          }
        } finally {
          client.release();
        }
      }),
    );
    const { rows } = await db.pool.query<{ numbered: string; distinct_n: string; late: string }>(
      `SELECT count(deny_ordinal) AS numbered, count(DISTINCT deny_ordinal) AS distinct_n, count(*) FILTER (WHERE deny_ordinal IS NULL) AS late
         FROM "${schema}".decisions WHERE actor_id = $1`,
      [actor],
    );
    expect(Number(rows[0]?.numbered)).toBe(Number(rows[0]?.distinct_n));
    expect(Number(rows[0]?.numbered) + Number(rows[0]?.late)).toBe(writers * each);
    await expectSameCounts(schema, actor);
  });

  it("count exactly while writers insert and an owner deletes rows of the same keys at once", async () => {
    const actors = ["agent:churn-0", "agent:churn-1"];
    // Seeded: each writer's times and each deletion's choice come from the seed (the interleaving does not).
    const plan = fc.sample(
      fc.record({
        writes: fc.array(
          fc.array(
            fc.record({ key: fc.integer({ min: 0, max: 1 }), back: fc.integer({ min: 0, max: 9 }).map((n) => Math.max(0, n - 7)) }),
            {
              minLength: 30,
              maxLength: 30,
            },
          ),
          {
            minLength: 4,
            maxLength: 4,
          },
        ),
        deletes: fc.array(
          fc.record({
            key: fc.integer({ min: 0, max: 1 }),
            pick: fc.integer({ min: 0, max: 999 }).map((n) => n / 1000),
            prefix: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
          }),
          {
            minLength: 40,
            maxLength: 40,
          },
        ),
      }),
      { numRuns: 1, seed: SEED + 2 },
    )[0]!;
    const writers = plan.writes.map(async (writes, w) => {
      const client = await db.pool.connect();
      try {
        for (const [i, { key, back }] of writes.entries()) {
          await client.query(
            `INSERT INTO "${schema}".decisions (id, action, escalated, actor_id, tenant_id, at_ms, approvers, counts_towards_escalation)
             VALUES ($1, 'deny', false, $2, 'acme', $3, '{}', true)`,
            [`churn-${w}-${i}`, actors[key], 20_000 + i * 10 - back * 15 + w],
          );
        }
      } finally {
        client.release();
      }
    });
    const owner = (async () => {
      const client = await db.pool.connect();
      try {
        // Deleting once the keys have a history: from its middle as well as its ends.
        const count = `SELECT count(*) AS n FROM "${schema}".decisions WHERE actor_id = ANY($1)`;
        while (Number((await client.query<{ n: string }>(count, [actors])).rows[0]?.n) < 40) await new Promise((r) => setTimeout(r, 2));
        for (const [d, { key, pick, prefix }] of plan.deletes.entries()) {
          const { rows } = await client.query<{ id: string; at_ms: string }>(
            `SELECT id, at_ms FROM "${schema}".decisions WHERE actor_id = $1 ORDER BY at_ms, id`,
            [actors[key]],
          );
          const row = rows[Math.floor(pick * rows.length)];
          await new Promise((r) => setTimeout(r, 2));
          if (row === undefined) continue;
          // Retention's cuts in the first half, single rows after them too.
          if (prefix && d < 20)
            await client.query(`DELETE FROM "${schema}".decisions WHERE actor_id = $1 AND at_ms < $2`, [actors[key], row.at_ms]);
          else await client.query(`DELETE FROM "${schema}".decisions WHERE id = $1`, [row.id]);
        }
      } finally {
        client.release();
      }
    })();
    await Promise.all([...writers, owner]);
    for (const actor of actors) await expectSameCounts(schema, actor);
  });

  it("number no deny read from an older snapshot, and count it all the same", async () => {
    for (const isolation of ["REPEATABLE READ", "SERIALIZABLE"]) {
      const actor = `agent:snapshot-${isolation.split(" ")[0]!.toLowerCase()}`;
      const insert = (c: pg.PoolClient | pg.Pool, id: string, at: number) =>
        c.query(
          `INSERT INTO "${schema}".decisions (id, action, escalated, actor_id, tenant_id, at_ms, approvers, counts_towards_escalation)
           VALUES ($1, 'deny', false, $2, 'acme', $3, '{}', true)`,
          [id, actor, at],
        );
      await insert(db.pool, `${actor}-0`, 1_000);
      const client = await db.pool.connect();
      try {
        // This transaction's snapshot is taken before another writer numbers a deny of the key.
        await client.query(`BEGIN ISOLATION LEVEL ${isolation}`);
        await client.query(`SELECT count(*) FROM "${schema}".decisions WHERE actor_id = $1`, [actor]);
        await insert(db.pool, `${actor}-1`, 1_001);
        await insert(client, `${actor}-2`, 1_002);
        await insert(client, `${actor}-3`, 1_003);
        await client.query("COMMIT");
      } finally {
        client.release();
      }
      await insert(db.pool, `${actor}-4`, 1_004);
      const { rows } = await db.pool.query<{ id: string; deny_ordinal: string | null }>(
        `SELECT id, deny_ordinal FROM "${schema}".decisions WHERE actor_id = $1 ORDER BY id`,
        [actor],
      );
      expect(rows.map((r) => r.deny_ordinal)).toEqual(["1", "2", null, null, "3"]);
      await expectSameCounts(schema, actor);
    }
  });

  it("take no lock for a deny without its actor or tenant, which no count reads", async () => {
    const insert = (c: pg.PoolClient, id: string, actor: string | null, tenant: string | null) =>
      c.query(
        `INSERT INTO "${schema}".decisions (id, action, escalated, actor_id, tenant_id, at_ms, approvers, counts_towards_escalation)
         VALUES ($1, 'deny', false, $2, $3, 7000, '{}', true)`,
        [id, actor, tenant],
      );
    const [first, second] = [await db.pool.connect(), await db.pool.connect()];
    try {
      for (const [i, [actor, tenant]] of (
        [
          [null, "acme"],
          ["agent:untenanted", null],
          [null, null],
        ] as const
      ).entries()) {
        await first.query("BEGIN");
        await insert(first, `keyless-${i}-a`, actor, tenant);
        // Another process's deny of the same incomplete key does not wait for the first to commit.
        await second.query("BEGIN");
        await second.query("SET LOCAL lock_timeout = '500ms'");
        await insert(second, `keyless-${i}-b`, actor, tenant);
        await second.query("COMMIT");
        await first.query("COMMIT");
      }
    } finally {
      first.release();
      second.release();
    }
    const { rows } = await db.pool.query<{ numbered: string }>(
      `SELECT count(deny_ordinal) AS numbered FROM "${schema}".decisions WHERE id LIKE 'keyless-%'`,
    );
    expect(Number(rows[0]?.numbered)).toBe(0);
    const counted = await db.pool.query<{ n: string }>(`SELECT "${schema}".recent_denies('agent:untenanted', NULL, 0) AS n`);
    expect(Number(counted.rows[0]?.n)).toBe(0);
  });

  it("number from this schema's tables whatever temporary tables the writer's session has", async () => {
    const actor = "agent:shadowed";
    const client = await db.pool.connect();
    try {
      await client.query(`CREATE TEMP TABLE decisions (actor_id text, tenant_id text, at_ms bigint, deny_ordinal bigint)`);
      await client.query(`CREATE TEMP TABLE deny_ordinal_gaps (actor_id text, tenant_id text, deny_ordinal bigint)`);
      await client.query(`INSERT INTO pg_temp.decisions VALUES ($1, 'acme', 0, 1000000)`, [actor]);
      await client.query(`INSERT INTO pg_temp.deny_ordinal_gaps VALUES ($1, 'acme', 2000000)`, [actor]);
      for (const i of [1, 2]) {
        await client.query(
          `INSERT INTO "${schema}".decisions (id, action, escalated, actor_id, tenant_id, at_ms, approvers, counts_towards_escalation)
           VALUES ($1, 'deny', false, $2, 'acme', $3, '{}', true)`,
          [`shadowed-${i}`, actor, 8_000 + i],
        );
      }
      const { rows } = await client.query<{ n: string }>(`SELECT "${schema}".recent_denies($1, 'acme', 0) AS n`, [actor]);
      expect(Number(rows[0]?.n)).toBe(2);
    } finally {
      await client.query("DISCARD TEMP").catch(() => {});
      client.release();
    }
    const { rows } = await db.pool.query<{ deny_ordinal: string }>(
      `SELECT deny_ordinal FROM "${schema}".decisions WHERE actor_id = $1 ORDER BY id`,
      [actor],
    );
    expect(rows.map((r) => r.deny_ordinal)).toEqual(["1", "2"]);
    await expectSameCounts(schema, actor);
  });

  it("never change an ordinal, and number only denies that count", async () => {
    const actor = "agent:fixed";
    const insert = (id: string, action: string, counts: boolean, ordinal: number | null) =>
      db.pool.query(
        `INSERT INTO "${schema}".decisions (id, action, escalated, actor_id, tenant_id, at_ms, approvers, counts_towards_escalation, deny_ordinal)
         VALUES ($1, $2, false, $3, 'acme', 9000, '{}', $4, $5)`,
        [id, action, actor, counts, ordinal],
      );
    await insert("fixed-1", "deny", true, 999);
    await insert("fixed-2", "allow", true, 7);
    await insert("fixed-3", "deny", false, 8);
    const { rows } = await db.pool.query<{ id: string; deny_ordinal: string | null }>(
      `SELECT id, deny_ordinal FROM "${schema}".decisions WHERE actor_id = $1 ORDER BY id`,
      [actor],
    );
    expect(rows).toEqual([
      { id: "fixed-1", deny_ordinal: "1" },
      { id: "fixed-2", deny_ordinal: null },
      { id: "fixed-3", deny_ordinal: null },
    ]);
    for (const [id, to] of [
      ["fixed-1", "2"],
      ["fixed-1", "NULL"],
      ["fixed-2", "1"],
    ] as const) {
      await expect(db.pool.query(`UPDATE "${schema}".decisions SET deny_ordinal = ${to} WHERE id = $1`, [id])).rejects.toMatchObject({
        code: "42501",
        message: expect.stringContaining("never changes"),
      });
    }
    // A deny that stops counting keeps its ordinal, and is no longer counted.
    await db.pool.query(`UPDATE "${schema}".decisions SET counts_towards_escalation = false WHERE id = 'fixed-1'`);
    const { rows: after } = await db.pool.query<{ n: string }>(`SELECT "${schema}".recent_denies($1, 'acme', 0) AS n`, [actor]);
    expect(Number(after[0]?.n)).toBe(0);
    await expectSameCounts(schema, actor);
  });

  it("count a long history of one key from a few index entries, not from each deny", async () => {
    const actor = "agent:long";
    await db.pool.query(
      `INSERT INTO "${schema}".decisions (id, action, escalated, actor_id, tenant_id, at_ms, approvers, counts_towards_escalation)
       SELECT 'long-' || g, 'deny', false, $1, 'acme', 100000 + g, '{}', true FROM generate_series(1, 20000) g`,
      [actor],
    );
    await db.pool.query(`ANALYZE "${schema}".decisions`);
    const plan = async (sql: string) =>
      (await db.pool.query<{ "QUERY PLAN": unknown }>(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`, [actor, "acme", 100_001]))
        .rows[0]?.["QUERY PLAN"] as [{ Plan: { "Shared Hit Blocks": number; "Shared Read Blocks": number } }];
    const buffers = (p: Awaited<ReturnType<typeof plan>>) => p[0].Plan["Shared Hit Blocks"] + p[0].Plan["Shared Read Blocks"];
    const naive = buffers(await plan(naiveCount(schema)));
    const counted = buffers(await plan(`SELECT "${schema}".recent_denies($1, $2, $3)`));
    // Counting each of 20,000 denies reads every index page holding them (and their heap pages);
    // the ordinals read a handful.
    expect(naive).toBeGreaterThan(50);
    expect(counted).toBeLessThan(30);
    const { rows } = await db.pool.query<{ n: string }>(`SELECT "${schema}".recent_denies($1, 'acme', 100001) AS n`, [actor]);
    expect(Number(rows[0]?.n)).toBe(20_000);
  });
});

describe("the counting functions and other roles (migration 015)", () => {
  it("let another role count with recent_denies, and not call key_window, which reads the gaps as the owner", async () => {
    const role = `veto_reader_${process.pid}`;
    await db.pool.query(`DROP ROLE IF EXISTS ${role}`);
    await db.pool.query(`CREATE ROLE ${role} NOLOGIN`);
    const client = await db.pool.connect();
    try {
      await client.query(`GRANT USAGE ON SCHEMA "${schema}" TO ${role}`);
      await client.query(`GRANT SELECT ON "${schema}".decisions TO ${role}`);
      await client.query("BEGIN");
      await client.query(`SET LOCAL ROLE ${role}`);
      const { rows } = await client.query<{ n: string }>(`SELECT "${schema}".recent_denies('agent:long', 'acme', 100001) AS n`);
      expect(Number(rows[0]?.n)).toBe(20_000);
      await client.query("SAVEPOINT s");
      await expect(client.query(`SELECT * FROM "${schema}".key_window('agent:long', 'acme', 0)`)).rejects.toMatchObject({ code: "42501" });
      await client.query("ROLLBACK TO SAVEPOINT s");
      await expect(client.query(`SELECT * FROM "${schema}".deny_ordinal_gaps`)).rejects.toMatchObject({ code: "42501" });
      await client.query("ROLLBACK");
    } finally {
      await client.query(`REVOKE ALL ON ALL TABLES IN SCHEMA "${schema}" FROM ${role}`).catch(() => undefined);
      await client.query(`REVOKE ALL ON SCHEMA "${schema}" FROM ${role}`).catch(() => undefined);
      client.release();
      await db.pool.query(`DROP ROLE IF EXISTS ${role}`);
    }
  });
});
