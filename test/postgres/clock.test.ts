/**
 * One clock (docs/contract.md §6): instances on one PostgreSQL store whose
 * own clocks (createVeto's `clock`) are far apart decide by the database's.
 * None approves after the approval expired by the database's clock, none
 * expires an approval early, and the deny history counts the same from
 * every instance. Clock offsets are drawn from a seed (printed on failure)
 * as well as the fixed plus and minus one hour.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { ApprovalError, createVeto, type Decision, type Veto } from "../../adapter/index.js";
import { migrate, postgres } from "../../adapter/postgres/index.js";
import { encodeTime } from "../../adapter/common/ids.js";
import { seededRandom } from "../helpers/generate-calls.js";
import { requireBundle } from "../helpers/index.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";

const APPROVER = "user:sysadmin@globex.example";
const HOUR = 3_600_000;
const SEED = Number(process.env.VETO_CLOCK_SEED ?? 4_242);
const db = testDatabase();
let schema: string;

beforeAll(async () => {
  requireBundle();
  schema = db.schema("clock");
  await migrate({ connectionString: pgUrl(), schema });
});

const opened: Veto[] = [];
afterAll(async () => {
  await Promise.all(opened.map((v) => v.close()));
  await db.dropSchemas();
});

/** An instance whose clock runs `offsetMs` from the real one, on the shared schema, records in the database. */
async function skewed(offsetMs: number, approvalTtlMs = HOUR): Promise<Veto> {
  const veto = await createVeto({
    bundle: requireBundle(),
    logger: pino({ level: "silent" }),
    clock: () => Date.now() + offsetMs,
    approvalTtlMs,
    approvalPollMs: 50,
    store: postgres({ connectionString: pgUrl(), schema, records: true }),
  });
  opened.push(veto);
  return veto;
}

async function dbNow(): Promise<number> {
  const { rows } = await db.pool.query<{ ms: string }>("SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms");
  return Number(rows[0]!.ms);
}

let actors = 0;
function globex(args: Record<string, unknown>, actorId = `agent:clock-${++actors}`): Record<string, unknown> {
  return {
    tool: "crm.update",
    arguments: { object: "opportunity", recordId: "opp_9", tenantId: "globex", changes: { close_date: "2026-12-01" }, ...args },
    context: { actorId, tenantId: "globex", environment: "production", reason: "clock test" },
  };
}

async function refusal(p: Promise<unknown>): Promise<string> {
  return await p.then(
    () => "resolved",
    (e: unknown) => (e instanceof ApprovalError ? e.code : `raw:${String(e)}`),
  );
}

/** The fixed offsets, and seeded ones in [-2 h, 2 h]. */
function offsetPairs(): [number, number][] {
  const random = seededRandom(SEED);
  const drawn = (): number => Math.round((random() * 4 - 2) * HOUR);
  return [
    [HOUR, -HOUR],
    [-HOUR, HOUR],
    [drawn(), drawn()],
    [drawn(), drawn()],
  ];
}

describe(`instances whose clocks are far apart (seed ${SEED})`, () => {
  it.each(offsetPairs())(
    "a decision, its record and its approval are timed by the database (clocks %i and %i ms off)",
    async (offA, offB) => {
      const pair = [await skewed(offA), await skewed(offB)];
      for (const [i, veto] of pair.entries()) {
        const before = await dbNow();
        const d = await veto.protect(globex({ amount: 30000 }));
        const after = await dbNow();
        expect(d.action).toBe("require_approval");
        const at = Date.parse(d.timestamp);
        expect(at).toBeGreaterThanOrEqual(before);
        expect(at).toBeLessThanOrEqual(after);
        // The id (a ULID) is stamped with the same time, so ids sort alike from every instance.
        expect(d.id.slice(0, 10)).toBe(encodeTime(at));
        const { rows } = await db.pool.query<{ at_ms: string; expires_at_ms: string; line: string }>(
          `SELECT at_ms, expires_at_ms, r.line FROM "${schema}".decisions d JOIN "${schema}".records r ON r.decision_id = d.id WHERE d.id = $1`,
          [d.id],
        );
        expect(Number(rows[0]!.at_ms)).toBe(at);
        expect(Number(rows[0]!.expires_at_ms)).toBe(at + HOUR);
        expect((JSON.parse(rows[0]!.line) as { timestamp: string }).timestamp).toBe(d.timestamp);
        // Answered by the other instance: the answer's time is the database's too.
        const answer = await pair[1 - i]!.approve({ decisionId: d.id, reviewerId: APPROVER });
        const answeredAt = Date.parse(answer.answeredAt);
        expect(answeredAt).toBeGreaterThanOrEqual(after);
        expect(answeredAt).toBeLessThanOrEqual(await dbNow());
      }
    },
  );

  it.each(offsetPairs())("neither expires an approval early (clocks %i and %i ms off)", async (offA, offB) => {
    const [a, b] = [await skewed(offA), await skewed(offB)];
    for (const [asker, answerer] of [
      [a, b],
      [b, a],
    ] as const) {
      const d = await asker.protect(globex({ amount: 30000 }));
      const waits = [asker, answerer].map((v) => v.waitForApproval({ decisionId: d.id }));
      // A clock an hour or two ahead thought this hour-long approval over at once.
      await new Promise((r) => setTimeout(r, 300));
      await expect(answerer.approve({ decisionId: d.id, reviewerId: APPROVER })).resolves.toMatchObject({ status: "approved" });
      for (const w of waits) await expect(w).resolves.toMatchObject({ decisionId: d.id, status: "approved" });
    }
  });

  it.each(offsetPairs())(
    "neither approves after the database's expiry, and waits end at it (clocks %i and %i ms off)",
    async (offA, offB) => {
      const ttlMs = 1_500;
      const [a, b] = [await skewed(offA, ttlMs), await skewed(offB, ttlMs)];
      const d: Decision = await a.protect(globex({ amount: 30000 }));
      const expiresAt = Date.parse(d.timestamp) + ttlMs;
      const waits = [a, b].map((v) => refusal(v.waitForApproval({ decisionId: d.id })));
      while ((await dbNow()) < expiresAt) await new Promise((r) => setTimeout(r, 25));
      // A clock an hour or two behind thought there was plenty of time left.
      expect(await refusal(b.approve({ decisionId: d.id, reviewerId: APPROVER }))).toBe("approval_expired");
      expect(await refusal(a.reject({ decisionId: d.id, reviewerId: APPROVER }))).toBe("approval_expired");
      // Both waits ended at the expiry, not an hour or two later.
      const ended = await Promise.race([Promise.all(waits), new Promise<"late">((r) => setTimeout(() => r("late"), 5_000))]);
      expect(ended).toEqual(["approval_expired", "approval_expired"]);
      const { rows } = await db.pool.query(`SELECT approval_status FROM "${schema}".decisions WHERE id = $1`, [d.id]);
      expect(rows).toEqual([{ approval_status: "expired" }]);
    },
  );

  it.each(offsetPairs())("the deny history counts the same from every instance (clocks %i and %i ms off)", async (offA, offB) => {
    const random = seededRandom(SEED + offA);
    const [a, b] = [await skewed(offA), await skewed(offB)];
    const actor = `agent:clock-history-${++actors}`;
    // Denies from both, in a seeded order, plus a rejection answered through one of them.
    const order = Array.from({ length: 6 }, () => (random() < 0.5 ? a : b));
    const seen: number[] = [];
    const escalated: boolean[] = [];
    for (const [i, veto] of order.entries()) {
      if (i === 2) {
        const asked = await veto.protect(globex({ amount: 30000 }, actor));
        seen.push(-1);
        escalated.push(asked.escalated);
        await (veto === a ? b : a).reject({ decisionId: asked.id, reviewerId: APPROVER });
        continue;
      }
      const d = await veto.protect(globex({ destination: "https://gmail.com/x" }, actor));
      expect(d.action).toBe("deny");
      escalated.push(d.escalated);
      const { rows } = await db.pool.query<{ line: string }>(
        `SELECT line FROM "${schema}".records WHERE decision_id = $1 AND type = 'decision'`,
        [d.id],
      );
      seen.push((JSON.parse(rows[0]!.line) as { history: { recent_denies: number } }).history.recent_denies);
    }
    // Each saw every deny and the rejection before it: 0, 1, (asked), 3, 4, 5; escalated from the third deny on (deny_threshold 3).
    expect(seen, `order ${order.map((v) => (v === a ? "a" : "b")).join("")}`).toEqual([0, 1, -1, 3, 4, 5]);
    expect(escalated.filter((_, i) => i !== 2)).toEqual([false, false, true, true, true]);
  });
});
