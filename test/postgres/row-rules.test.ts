/**
 * Migration 012 moved the decisions table's CHECK constraints and the
 * record-state trigger into the guard trigger (docs/postgres.md, "Row
 * rules"). The table must refuse exactly what it refused before, with the
 * same error: generated inserts and updates run on a schema migrated to 011
 * and on one migrated to 012, side by side, and every statement must end
 * the same way in both (applied, or refused with the same SQLSTATE,
 * constraint name and message).
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadMigrations, migrateWith } from "../../adapter/postgres/migrations.js";
import { seededRandom } from "../helpers/generate-calls.js";
import { testDatabase } from "../helpers/postgres.js";

const SEED = 20261201;
const CASES = 400;

const db = testDatabase();
let before: string;
let after: string;

beforeAll(async () => {
  const migrations = await loadMigrations();
  expect(migrations.some((m) => m.version === 12)).toBe(true);
  before = db.schema("rules_011");
  after = db.schema("rules_012");
  await migrateWith(
    db.pool,
    before,
    migrations.filter((m) => m.version <= 11),
  );
  await migrateWith(db.pool, after, migrations);
});

afterAll(async () => {
  await db.dropSchemas();
});

type Random = () => number;
const pick = <T>(random: Random, values: readonly T[]): T => values[Math.floor(random() * values.length)] as T;

/** Each column's values: the ones the rules tell apart, and a few they must refuse. */
const DOMAIN: Readonly<Record<string, readonly (string | number | boolean | null)[]>> = {
  action: ["allow", "deny", "require_approval", "require_approval", "bogus"],
  escalated: [true, false],
  actor_id: ["agent:a", "agent:b", null],
  tenant_id: ["acme", null],
  at_ms: [1_000, 2_000],
  call_digest: ["sha256:d1", "sha256:d2", null],
  approvers: ["{}", "{alice}"],
  approval_status: [null, null, "pending", "pending", "answering", "approved", "rejected", "expired", "executed", "amended", "bogus"],
  expires_at_ms: [null, 5_000, 6_000],
  reviewer_id: [null, "bob"],
  note: [null, "ok"],
  answered_at_ms: [null, 3_000],
  counts_towards_escalation: [true, false],
  review: [null, '{"tool":"x"}'],
  executed_at_ms: [null, 4_000],
  record_state: [null, "state-1", "state-2"],
  amended_to: [null, "dec_other"],
  amendment: [null, '{"from":"dec_x"}'],
};
const COLUMNS = Object.keys(DOMAIN);
/** An approval's moves (the guard's transitions), and the columns an answer, claim or amendment sets. */
const NEXT: Readonly<Record<string, readonly string[]>> = {
  pending: ["answering", "expired"],
  answering: ["pending", "approved", "rejected", "amended"],
  approved: ["executed"],
};
const ANSWER = ["reviewer_id", "answered_at_ms", "executed_at_ms", "amended_to", "note"];
const NEEDS: Readonly<Record<string, Readonly<Record<string, string | number>>>> = {
  approved: { reviewer_id: "bob", answered_at_ms: 3_000 },
  rejected: { reviewer_id: "bob", answered_at_ms: 3_000 },
  amended: { reviewer_id: "bob", answered_at_ms: 3_000, amended_to: "dec_other" },
  executed: { executed_at_ms: 4_000 },
};

/** Mostly rows the adapter writes (so updates have rows to start from), some anything. */
function row(random: Random): Record<string, string | number | boolean | null> {
  const r: Record<string, string | number | boolean | null> = {};
  for (const c of COLUMNS) r[c] = pick(random, DOMAIN[c] as readonly (string | number | boolean | null)[]);
  if (random() < 0.7) {
    const approval = r["action"] === "require_approval";
    Object.assign(r, {
      approval_status: approval ? "pending" : null,
      call_digest: approval ? "sha256:d1" : r["call_digest"],
      expires_at_ms: approval ? 5_000 : null,
      reviewer_id: null,
      answered_at_ms: null,
      executed_at_ms: null,
      amended_to: null,
      review: approval ? r["review"] : null,
      counts_towards_escalation: r["amendment"] === null ? r["counts_towards_escalation"] : false,
    });
  }
  return r;
}

type Outcome = string;

async function run(client: pg.PoolClient, sql: string, values: unknown[]): Promise<Outcome> {
  await client.query("SAVEPOINT s");
  try {
    const result = await client.query(sql, values);
    await client.query("RELEASE SAVEPOINT s");
    return `ok ${result.rowCount}`;
  } catch (error) {
    await client.query("ROLLBACK TO SAVEPOINT s");
    const e = error as { code?: string; constraint?: string; message: string };
    return `${e.code} ${e.constraint ?? "-"} ${e.message}`;
  }
}

describe("the decisions table's row rules after migration 012", () => {
  it(`refuse what the schema of 011 refused, with the same errors (seed ${SEED}, ${CASES} rows)`, { timeout: 120_000 }, async () => {
    const random = seededRandom(SEED);
    const clients = { before: await db.pool.connect(), after: await db.pool.connect() };
    const tally = { inserted: 0, refusedInserts: 0, updates: 0, refusedUpdates: 0, states: new Set<string>() };
    try {
      for (const c of Object.values(clients)) await c.query("BEGIN");
      for (let i = 0; i < CASES; i++) {
        const id = `dec_${i}`;
        const r = row(random);
        const names = ["id", ...COLUMNS];
        const insert = (schema: string): string =>
          `INSERT INTO "${schema}".decisions (${names.join(", ")}) VALUES (${names.map((_, k) => `$${k + 1}`).join(", ")})`;
        const values = [id, ...COLUMNS.map((c) => r[c])];
        const a = await run(clients.before, insert(before), values);
        const b = await run(clients.after, insert(after), values);
        expect(b, `seed ${SEED}, row ${i}: INSERT ${JSON.stringify(r)}`).toBe(a);
        if (!a.startsWith("ok")) {
          tally.refusedInserts += 1;
          continue;
        }
        tally.inserted += 1;
        for (let u = 0; u < 6; u++) {
          // Half the time the approval's next move (so rows reach every state), with answer columns or not; else anything.
          const next = NEXT[String(r["approval_status"])];
          const move = next !== undefined && random() < 0.5;
          const to = move ? pick(random, next) : undefined;
          const changed = move ? ["approval_status", ...ANSWER.filter(() => random() < 0.3)] : COLUMNS.filter(() => random() < 0.25);
          if (changed.length === 0) changed.push(pick(random, COLUMNS));
          const set: Record<string, string | number | boolean | null> = Object.fromEntries(
            changed.map((c) => [c, pick(random, DOMAIN[c] as readonly (string | number | boolean | null)[])]),
          );
          if (to !== undefined) set["approval_status"] = to;
          // A move mostly sets what its state needs (an answer its reviewer and time, a claim its time).
          if (to !== undefined && random() < 0.8) {
            for (const [c, v] of Object.entries(NEEDS[to] ?? {})) {
              if (!changed.includes(c)) changed.push(c);
              set[c] = v;
            }
          }
          const update = (schema: string): string =>
            `UPDATE "${schema}".decisions SET ${changed.map((c, k) => `${c} = $${k + 2}`).join(", ")} WHERE id = $1`;
          const args = [id, ...changed.map((c) => set[c])];
          const ua = await run(clients.before, update(before), args);
          const ub = await run(clients.after, update(after), args);
          expect(ub, `seed ${SEED}, row ${i}, update ${u}: ${JSON.stringify(set)} on ${JSON.stringify(r)}`).toBe(ua);
          tally.updates += 1;
          if (!ua.startsWith("ok")) tally.refusedUpdates += 1;
          else {
            Object.assign(r, set);
            tally.states.add(String(r["approval_status"]));
          }
        }
      }
    } finally {
      for (const c of Object.values(clients)) {
        await c.query("ROLLBACK").catch(() => {});
        c.release();
      }
    }
    // The generator reaches both sides of the rules.
    expect(tally.inserted).toBeGreaterThan(CASES / 2);
    expect(tally.refusedInserts).toBeGreaterThan(20);
    expect(tally.refusedUpdates).toBeGreaterThan(100);
    expect(tally.updates - tally.refusedUpdates).toBeGreaterThan(20);
    expect([...tally.states].sort()).toEqual(["amended", "answering", "approved", "executed", "expired", "null", "pending", "rejected"]);
  });
});
