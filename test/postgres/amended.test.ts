// Amended calls on PostgreSQL (docs/contract.md §6, amend; §9, what counts
// towards escalation), on the real server: nothing that becomes of an amended
// call (its deny, the rejection of its approval) counts towards the agent's
// escalation, which the table holds too (migration 010, also for rows written
// before it); an allowed amended call is claimed once (claimExecution), with
// its execution record, and the trigger refuses any other execution time.
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVeto, type Veto } from "../../adapter/index.js";
import { PostgresStore, migrate, postgres } from "../../adapter/postgres/index.js";
import { defaultMigrationsDir, loadMigrations } from "../../adapter/postgres/migrations.js";
import { resumeApproval } from "../../adapter/veto.js";
import { ACTOR, APPROVER, OTHER_APPROVER, bundleData, requireBundle, write } from "../helpers/index.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";

/** FC_SEED=<n> reproduces a failing run; fast-check prints the seed of every failure. */
const SEED = Number(process.env["FC_SEED"] ?? 20261130);
const THIRD_APPROVER = "user:cfo@acme.example";
const db = testDatabase();
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "veto-amended-"));
});
afterAll(async () => {
  await db.dropSchemas();
  await rm(dir, { recursive: true, force: true });
});

/** `same`: the test data; `other`: acme's approvers changed to [OTHER_APPROVER, THIRD_APPROVER], so an amendment by APPROVER made there waits for an answer. */
async function instances(schema: string): Promise<{ same: Veto; other: Veto; close: () => Promise<unknown> }> {
  const base = {
    bundle: requireBundle(),
    logger: pino({ level: "silent" }),
    approvalPollMs: 20,
  };
  const moved = structuredClone(bundleData()) as { veto: { config: { tenants: Record<string, Record<string, unknown>> } } };
  moved.veto.config.tenants["acme"]!["approvers"] = [OTHER_APPROVER, THIRD_APPROVER];
  const same = await createVeto({ ...base, store: postgres({ connectionString: pgUrl(), schema, records: true, migrate: true }) });
  const other = await createVeto({ ...base, data: moved, store: postgres({ connectionString: pgUrl(), schema, records: true }) });
  return { same, other, close: () => Promise.all([same.close(), other.close()]) };
}

const NEEDS_APPROVAL = write({ amount: 9000 });
const argsWith = (amount: number, recordId: string) => ({ ...(NEEDS_APPROVAL["arguments"] as object), recordId, amount });

describe("PostgresStore: amended calls", () => {
  it(`generated: no deny or rejection of an amended call counts; the agent's own rejections do (seed ${SEED})`, async () => {
    const outcome = fc.record({
      amount: fc.oneof(fc.integer({ min: 5000, max: 250_000 }), fc.integer({ min: 250_001, max: 20_000_000 })),
      rejectedBy: fc.constantFrom(OTHER_APPROVER, THIRD_APPROVER),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(outcome, { minLength: 3, maxLength: 5 }), async (outcomes) => {
        const schema = db.schema("amended_counts");
        const t = await instances(schema);
        try {
          for (const [i, o] of outcomes.entries()) {
            const original = await t.same.protect(write({ amount: 9000, recordId: `opp_${i}` }));
            const { decision } = await t.other.amend({
              decisionId: original.id,
              reviewerId: APPROVER,
              arguments: argsWith(o.amount, `opp_${i}`),
            });
            if (decision.action === "require_approval") await t.other.reject({ decisionId: decision.id, reviewerId: o.rejectedBy });
            else expect(decision.reasons.map((r) => r.code)).toContain("amount_over_limit");
          }
          const { rows } = await db.pool.query(
            `SELECT count(*)::int AS n FROM "${schema}".decisions WHERE amendment IS NOT NULL AND counts_towards_escalation`,
          );
          expect(rows[0].n).toBe(0);
          const next = await t.same.protect(write({ amount: 10 }));
          expect(next).toMatchObject({ action: "allow", escalated: false });
          // The control: the agent's own calls, rejected three times, escalate it.
          for (let i = 0; i < 3; i++) {
            const own = await t.same.protect(write({ amount: 9000, recordId: `own_${i}` }));
            await t.same.reject({ decisionId: own.id, reviewerId: APPROVER });
          }
          expect((await t.same.protect(write({ amount: 10 }))).escalated).toBe(true);
        } finally {
          await t.close();
        }
      }),
      { seed: SEED, numRuns: 4 },
    );
  });

  it("an allowed amended call is claimed once across instances; the table refuses any other execution time", async () => {
    const schema = db.schema("amended_claim");
    const t = await instances(schema);
    try {
      const original = await t.same.protect(NEEDS_APPROVAL);
      const { decision } = await t.same.amend({ decisionId: original.id, reviewerId: APPROVER, arguments: argsWith(100, "opp_123") });
      expect(decision.action).toBe("allow");
      // Two instances resume the paused call at once: one claims the amended call, the other is refused.
      const results = await Promise.allSettled(
        [t.same, t.other].map((veto) => resumeApproval(veto, { decisionId: original.id, call: NEEDS_APPROVAL as never, timeoutMs: 0 })),
      );
      expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
      const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
      expect(refused.reason).toMatchObject({ code: "already_executed" });
      const won = results.find((r) => r.status === "fulfilled") as PromiseFulfilledResult<{
        decisionId: string;
        call: { arguments: unknown };
      }>;
      expect(won.value.decisionId).toBe(decision.id);
      expect(won.value.call.arguments).toEqual(argsWith(100, "opp_123"));
      const { rows } = await db.pool.query(
        `SELECT type, line::jsonb -> 'result' ->> 'execution' AS execution, line::jsonb ->> 'reviewer_id' AS reviewer FROM "${schema}".records WHERE decision_id = $1 ORDER BY seq`,
        [decision.id],
      );
      expect(rows).toEqual([
        { type: "decision", execution: null, reviewer: null },
        { type: "execution", execution: "claimed", reviewer: APPROVER },
        { type: "execution", execution: "refused", reviewer: APPROVER },
      ]);
      const store = await PostgresStore.connect({ connectionString: pgUrl(), schema });
      try {
        expect((await store.getDecision(decision.id))?.executedAtMs).toEqual(expect.any(Number));
        expect(await store.claimExecution(decision.id)).toBe(false);
        // An allow that is not an amended call has nothing to claim; the trigger refuses the time written by hand.
        const plain = await t.same.protect(write({ amount: 10 }));
        expect(await store.claimExecution(plain.id)).toBe(false);
        await expect(db.pool.query(`UPDATE "${schema}".decisions SET executed_at_ms = 1 WHERE id = $1`, [plain.id])).rejects.toThrow(
          /only an allowed amended call's claim sets the execution time/,
        );
        await expect(
          db.pool.query(`UPDATE "${schema}".decisions SET counts_towards_escalation = true WHERE id = $1`, [decision.id]),
        ).rejects.toThrow(/counts towards escalation changes only when a deny replaces it/);
        // The table's own check says so too, for whoever got around the trigger.
        const client = await db.pool.connect();
        try {
          await client.query("BEGIN");
          await client.query(`ALTER TABLE "${schema}".decisions DISABLE TRIGGER decisions_counting_guard`);
          await expect(
            client.query(`UPDATE "${schema}".decisions SET counts_towards_escalation = true WHERE id = $1`, [decision.id]),
          ).rejects.toThrow(/amended_calls_never_count/);
        } finally {
          await client.query("ROLLBACK");
          client.release();
        }
      } finally {
        await store.close();
      }
    } finally {
      await t.close();
    }
  });

  it("migration 010 stops amended rows written before it from counting", async () => {
    const schema = db.schema("amended_before");
    const nine = join(dir, "nine");
    await cp(defaultMigrationsDir(), nine, { recursive: true });
    const later = (await loadMigrations()).filter((m) => m.version >= 10);
    for (const m of later) await rm(join(nine, m.name));
    expect(await migrate({ connectionString: pgUrl(), schema, migrationsDir: nine })).toMatchObject({ version: 9 });
    const now = Date.now();
    // As the adapter wrote them before: an amended call's rejected approval, counted.
    await db.pool.query(
      `INSERT INTO "${schema}".decisions (id, action, escalated, actor_id, tenant_id, at_ms, call_digest, approvers, approval_status, expires_at_ms, amendment)
       VALUES ('01AMENDED', 'require_approval', false, $1, 'acme', $2, 'digest', $3, 'pending', $4, '{"from":"01ORIGINAL","by":"x"}'::jsonb)`,
      [ACTOR, now, [APPROVER], now + 3_600_000],
    );
    await db.pool.query(`UPDATE "${schema}".decisions SET approval_status = 'answering', reviewer_id = $1 WHERE id = '01AMENDED'`, [
      APPROVER,
    ]);
    await db.pool.query(`UPDATE "${schema}".decisions SET approval_status = 'rejected', answered_at_ms = $1 WHERE id = '01AMENDED'`, [now]);
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM "${schema}".decisions WHERE approval_status = 'rejected' AND answered_at_ms >= $1`,
      [now - 60_000],
    );
    expect(rows[0].n).toBe(1); // what the count before 010 counted
    expect(await migrate({ connectionString: pgUrl(), schema })).toMatchObject({
      applied: later.map((m) => m.name),
      version: later.at(-1)!.version,
    });
    expect(later[0]!.name).toBe("010_amended_calls.sql");
    const store = await PostgresStore.connect({ connectionString: pgUrl(), schema });
    try {
      expect(await store.countRecentDenies(ACTOR, "acme", now - 60_000)).toBe(0);
      expect((await store.getDecision("01AMENDED"))?.countsTowardsEscalation).toBe(false);
    } finally {
      await store.close();
    }
  });
});
