/**
 * Crash test of the PostgreSQL store (docs/contract.md §7): an application
 * instance (crash-postgres-child.mjs, the built dist/) decides, approves and
 * rejects under concurrent load with its records in the same database, and is
 * killed with SIGKILL at a random moment, trial after trial on one schema.
 * After each kill (once the server has ended the child's sessions, rolling
 * back what was in flight) every decision the child was told was made is
 * stored with exactly one decision record, and every answer it was told was
 * given is stored with its record. At the end the whole schema is consistent
 * (no decision without its record or the other way round, no approval stuck
 * half-way) and the records chain verifies.
 *
 * VETO_SOAK_PG_TRIALS sets the number of trials (default 5; `make soak`
 * raises it), VETO_SOAK_SEED the seed (printed).
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate, verifyPostgresLog } from "../../adapter/postgres/index.js";
import { requireBundle } from "../helpers/index.js";
import { expectDecisionsRecorded, pgUrl, requireDist, testDatabase } from "../helpers/postgres.js";

const TRIALS = Number(process.env.VETO_SOAK_PG_TRIALS ?? 5);
const CONCURRENCY = 8;

const here = fileURLToPath(new URL(".", import.meta.url));
const db = testDatabase();
let schema: string;

beforeAll(async () => {
  requireBundle();
  requireDist();
  schema = db.schema("crash");
  await migrate({ connectionString: pgUrl(), schema });
});
afterAll(() => db.dropSchemas());

/** Seeded, so a failing run can be repeated with VETO_SOAK_SEED. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

interface Trial {
  /** decision id -> action, as protect() resolved them. */
  readonly decided: Map<string, string>;
  /** decision id -> approved | rejected, as approve()/reject() resolved them. */
  readonly answered: Map<string, string>;
  readonly ready: boolean;
}

/** Run the child and SIGKILL it `afterMs` after it reports ready (or after the spawn, during start-up). */
function runAndKill(name: string, trial: number, during: "start-up" | "load", afterMs: number): Promise<Trial> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [join(here, "crash-postgres-child.mjs"), pgUrl(), schema, name, String(CONCURRENCY), String(trial)],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    let timer: NodeJS.Timeout | undefined;
    const killLater = (): void => {
      timer = setTimeout(() => child.kill("SIGKILL"), afterMs);
    };
    if (during === "start-up") killLater();
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      if (during === "load" && timer === undefined && (stdout + chunk).includes("ready\n")) killLater();
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const watchdog = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("error", reject);
    child.on("close", (_code, signal) => {
      clearTimeout(timer);
      clearTimeout(watchdog);
      if (signal !== "SIGKILL") {
        reject(new Error(`child ended by itself (signal ${signal}): ${stderr}`));
        return;
      }
      const decided = new Map<string, string>();
      const answered = new Map<string, string>();
      const lines = stdout.split("\n").slice(0, -1); // a line cut by the kill proves nothing
      for (const line of lines) {
        const [kind, id, what] = line.split(" ") as [string, string, string];
        if (kind === "d") decided.set(id, what);
        else if (kind === "a") answered.set(id, what);
      }
      resolve({ decided, answered, ready: lines[0] === "ready" });
    });
  });
}

/** Until the server has ended every session of `name` (a killed process's transactions are rolled back by then). */
async function sessionsGone(name: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const { rows } = await db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [
      name,
    ]);
    if (rows[0]!.n === 0) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`sessions of ${name} still open after 10 s`);
}

const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []): Promise<T[]> =>
  (await db.pool.query(sql.replaceAll("$S", `"${schema}"`), values)).rows as T[];

describe("crash test: the PostgreSQL store, SIGKILL under concurrent load", () => {
  it(
    `loses no acknowledged decision or answer across ${TRIALS} kills, and the schema and records chain stay consistent`,
    { timeout: Math.max(120_000, TRIALS * 10_000) },
    async () => {
      const seed = Number(process.env.VETO_SOAK_SEED ?? Date.now() % 2 ** 31);
      const next = random(seed);
      const started = performance.now();
      const totals = {
        trials: TRIALS,
        acknowledged: 0,
        answersAcknowledged: 0,
        lost: 0,
        unrecorded: 0,
        inFlightAtKill: 0,
        killedBeforeReady: 0,
      };
      for (let trial = 0; trial < TRIALS; trial++) {
        const name = `crash-${process.pid}-${trial}`;
        // One kill in ten lands during start-up, the rest mid-load.
        const during = next() < 0.1 ? "start-up" : "load";
        const killAfterMs = Math.floor(during === "start-up" ? next() * 400 : 150 + next() * 500);
        const { decided, answered, ready } = await runAndKill(name, trial, during, killAfterMs);
        const context = `seed ${seed}, trial ${trial}, kill during ${during} after ${killAfterMs} ms`;
        if (during === "load") expect(ready, `${context}: the child never reported ready`).toBe(true);
        if (!ready) totals.killedBeforeReady += 1;
        await sessionsGone(name);

        const ids = [...decided].filter(([, action]) => action !== "unrecorded").map(([id]) => id);
        totals.unrecorded += decided.size - ids.length;
        const stored = await q<{ id: string; action: string; records: number }>(
          `SELECT d.id, d.action, (SELECT count(*)::int FROM $S.records r WHERE r.decision_id = d.id AND r.type = 'decision') AS records
         FROM $S.decisions d WHERE d.id = ANY($1)`,
          [ids],
        );
        const byId = new Map(stored.map((row) => [row.id, row]));
        const lost = ids.filter((id) => byId.get(id)?.action !== decided.get(id) || byId.get(id)?.records !== 1);
        const answers = await q<{ decision_id: string; type: string }>(
          `SELECT decision_id, type FROM $S.records WHERE decision_id = ANY($1) AND type IN ('approval', 'rejection')`,
          [[...answered.keys()]],
        );
        const recordedAnswers = new Map(answers.map((row) => [row.decision_id, row.type === "approval" ? "approved" : "rejected"]));
        const lostAnswers = [...answered].filter(([id, what]) => recordedAnswers.get(id) !== what).map(([id]) => id);
        totals.lost += lost.length + lostAnswers.length;
        expect({ lost, lostAnswers }, context).toEqual({ lost: [], lostAnswers: [] });
        totals.acknowledged += ids.length;
        totals.answersAcknowledged += answered.size;
      }
      const minutes = (performance.now() - started) / 60_000;

      // Stored but never acknowledged: decisions committed in the moment of the kill.
      const [all] = await q<{ n: number }>(`SELECT count(*)::int AS n FROM $S.decisions`);
      totals.inFlightAtKill = all!.n - totals.acknowledged;
      await expectDecisionsRecorded(q);
      // Every answer has its record and every answer record its answer.
      expect(
        await q(`SELECT r.decision_id FROM $S.records r LEFT JOIN $S.decisions d ON d.id = r.decision_id
      WHERE r.type IN ('approval', 'rejection')
      AND d.approval_status IS DISTINCT FROM CASE r.type WHEN 'approval' THEN 'approved' ELSE 'rejected' END`),
      ).toEqual([]);
      const verified = await verifyPostgresLog({ connectionString: pgUrl(), schema });
      expect(verified).toMatchObject({ ok: true });
      console.info(
        `crash test, PostgreSQL store (seed ${seed}): ${JSON.stringify({ ...totals, records: verified.ok ? verified.count : null, trials_per_minute: Math.round(TRIALS / minutes) })}`,
      );
      // The load really ran.
      expect(totals.acknowledged).toBeGreaterThan(TRIALS);
      expect(totals.answersAcknowledged).toBeGreaterThan(0);
    },
  );
});
