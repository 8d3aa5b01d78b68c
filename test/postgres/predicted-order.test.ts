/**
 * A group decided on the counts its store knows (migration 014, one round
 * trip) holds none of its keys' locks while its decisions are made, and is
 * timed when it starts. Another writer of one of its keys (another process,
 * or a group of the same store started beside it) may decide that key in
 * between, timed later by the database's clock. Counts must still be the
 * counts at each decision's time (docs/contract.md §3): a deny timed before
 * another decision of its key is in that decision's count. Seeded: the
 * number of earlier denies, the writer in between, how long the group waits.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { createVeto, type Veto } from "../../adapter/index.js";
import { PostgresStore, migrate } from "../../adapter/postgres/index.js";
import { seededRandom } from "../helpers/generate-calls.js";
import { requireBundle } from "../helpers/index.js";
import { kindCall, pgUrl, testDatabase } from "../helpers/postgres.js";
import { APP_CONTEXT } from "../integrations/helpers.js";

const SEED = Number(process.env.VETO_ORDER_SEED ?? Date.now() % 2 ** 31);
const TENANT = "globex";
const db = testDatabase();

beforeAll(() => {
  requireBundle();
});
afterAll(() => db.dropSchemas());

const call = (actorId: string, kind: "allow" | "deny"): Record<string, unknown> => kindCall(actorId, TENANT, kind, "predicted order test");

/** A call that needs approval, whose record state is read (and can be held up). */
const SLOW = {
  tool: "crm.update",
  arguments: { object: "opportunity", recordId: "opp_slow", tenantId: "acme", changes: { close_date: "2026-12-01" }, amount: 9000 },
  context: { ...APP_CONTEXT, reason: "predicted order test" },
};

/**
 * For every decision of `actor`: its recorded count is the number of counted
 * denies of its key timed before it (or at its time and before it in the
 * chain), as a reader of the records counts them.
 */
async function expectCountsByTime(schema: string, actor: string, seed: number): Promise<void> {
  const { rows } = await db.pool.query<{ seq: string; at_ms: string; action: string; counts: boolean; line: string }>(
    `SELECT r.seq, d.at_ms, d.action, d.counts_towards_escalation AS counts, r.line FROM "${schema}".records r
       JOIN "${schema}".decisions d ON d.id = r.decision_id WHERE d.actor_id = $1 AND d.tenant_id = $2 ORDER BY r.seq`,
    [actor, TENANT],
  );
  for (const x of rows) {
    const before = rows.filter(
      (y) =>
        y !== x &&
        y.action === "deny" &&
        y.counts &&
        (Number(y.at_ms) < Number(x.at_ms) || (Number(y.at_ms) === Number(x.at_ms) && Number(y.seq) < Number(x.seq))),
    ).length;
    const line = JSON.parse(x.line) as { history: { recent_denies: number } | null };
    expect(line.history?.recent_denies, `seed ${seed}: seq ${x.seq} at ${x.at_ms} counts the denies timed before it`).toBe(before);
  }
}

describe("PostgreSQL: a one-round-trip group and a writer of its key in between", () => {
  it(`the deny timed first is in the later decision's count (seeds from ${SEED})`, { timeout: 120_000 }, async () => {
    for (let k = 0; k < 4; k++) {
      const seed = SEED + k;
      const random = seededRandom(seed);
      const schema = db.schema("predicted_order");
      await migrate({ connectionString: pgUrl(), schema });
      const stores = [
        await PostgresStore.connect({ connectionString: pgUrl(), schema }),
        await PostgresStore.connect({ connectionString: pgUrl(), schema }),
      ];
      let hold: Promise<void> | undefined;
      let release = (): void => {};
      const vetoA = await createVeto({
        bundle: requireBundle(),
        logger: pino({ level: "silent" }),
        store: stores[0]!,
        recordSink: stores[0]!.recordSink(),
        recordStateTimeoutMs: 30_000,
        recordState: async () => {
          if (hold !== undefined) await hold;
          return "v1";
        },
      });
      const vetoB = await createVeto({
        bundle: requireBundle(),
        logger: pino({ level: "silent" }),
        store: stores[1]!,
        recordSink: stores[1]!.recordSink(),
      });
      const actor = `agent:predicted-order-${seed}`;
      try {
        // Below the threshold (3) with the group's deny: the later call is allowed and not escalated.
        const earlier = Math.floor(random() * 2);
        for (let i = 0; i < earlier; i++) await vetoA.protect(call(actor, "deny"));
        // Store A learns both keys (and the database's clock) in one counted group.
        await Promise.all([vetoA.protect(call(actor, "allow")), vetoA.protect(SLOW)]);
        const before = stores[0]!.groupStats();
        hold = new Promise<void>((resolve) => (release = resolve));
        // A group A predicts: the key's deny, beside a decision that waits for its record's state.
        const group = Promise.all([vetoA.protect(call(actor, "deny")), vetoA.protect(SLOW)]);
        await new Promise((resolve) => setTimeout(resolve, 20 + Math.floor(random() * 60)));
        // In between, the key decided elsewhere: by another process, or by a group of A's own started beside
        // the stalled one (after STALLED_MS).
        const writer: Veto = k % 2 === 0 ? vetoB : vetoA;
        if (writer === vetoA) await new Promise((resolve) => setTimeout(resolve, 250));
        const between = await writer.protect(call(actor, "allow"));
        release();
        const [denied] = await group;
        expect(stores[0]!.groupStats().predicted, `seed ${seed}: A predicted`).toBeGreaterThan(before.predicted);
        expect(denied.action, `seed ${seed}`).toBe("deny");
        expect(between.action, `seed ${seed}`).toBe("allow");
        await expectCountsByTime(schema, actor, seed);
      } finally {
        release();
        await Promise.all([vetoA.close(), vetoB.close()]);
        await Promise.all(stores.map((s) => s.close()));
      }
    }
  });
});

/**
 * A refused prediction makes its decisions again (UnitRetry): the caller
 * still asks the record's state once per call (docs/contract.md §6: asked
 * once, when the call needed approval) and hears its hooks once.
 */
describe("PostgreSQL: a decision made again after a refused prediction", () => {
  it(`asks recordState once and fires onApprovalRequired once (seeds from ${SEED})`, { timeout: 120_000 }, async () => {
    for (let k = 0; k < 3; k++) {
      const seed = SEED + 20 + k;
      const random = seededRandom(seed);
      const schema = db.schema("predicted_retry");
      await migrate({ connectionString: pgUrl(), schema });
      const stores = [
        await PostgresStore.connect({ connectionString: pgUrl(), schema }),
        await PostgresStore.connect({ connectionString: pgUrl(), schema }),
      ];
      let asked = 0;
      let hooked = 0;
      const vetoA = await createVeto({
        bundle: requireBundle(),
        logger: pino({ level: "silent" }),
        store: stores[0]!,
        recordSink: stores[0]!.recordSink(),
        recordState: () => {
          asked += 1;
          return `v${asked}`;
        },
        onApprovalRequired: () => {
          hooked += 1;
        },
      });
      const vetoB = await createVeto({
        bundle: requireBundle(),
        logger: pino({ level: "silent" }),
        store: stores[1]!,
        recordSink: stores[1]!.recordSink(),
      });
      try {
        // A learns the key (and the clock).
        expect((await vetoA.protect(SLOW)).action, `seed ${seed}`).toBe("require_approval");
        // Another process's denies of the key (below the threshold): A's next prediction is refused.
        const denies = 1 + Math.floor(random() * 2);
        for (let i = 0; i < denies; i++) {
          const d = await vetoB.protect({
            ...SLOW,
            arguments: { object: "opportunity", recordId: "opp_1", tenantId: "acme", destination: "https://pastebin.com/x" },
          });
          expect(d.action, `seed ${seed}`).toBe("deny");
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
        asked = 0;
        hooked = 0;
        const before = stores[0]!.groupStats();
        const decided = await vetoA.protect(SLOW);
        expect(decided.action, `seed ${seed}`).toBe("require_approval");
        expect(stores[0]!.groupStats().refused, `seed ${seed}: the prediction was refused`).toBe(before.refused + 1);
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect({ asked, hooked }, `seed ${seed}: once each for one call`).toEqual({ asked: 1, hooked: 1 });
        const { rows } = await db.pool.query<{ record_state: string | null }>(
          `SELECT record_state FROM "${schema}".decisions WHERE id = $1`,
          [decided.id],
        );
        expect(rows[0]?.record_state, `seed ${seed}`).toBe("v1");
      } finally {
        await Promise.all([vetoA.close(), vetoB.close()]);
        await Promise.all(stores.map((s) => s.close()));
      }
    }
  });
});
