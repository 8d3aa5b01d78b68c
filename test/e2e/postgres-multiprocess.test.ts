/**
 * Many application instances, one truth: worker processes
 * (worker.mjs, the built dist/index.js) share one PostgreSQL schema, with
 * the decision records in the same database.
 */
import { fork, type ChildProcess } from "node:child_process";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { migrate, verifyPostgresLog } from "../../adapter/postgres/index.js";
import { type Decision } from "../../adapter/index.js";
import { requireBundle } from "../helpers/index.js";
import { WORKER, expectDecisionsRecorded, pgUrl, requireDist, testDatabase } from "../helpers/postgres.js";

const GLOBEX_APPROVER = "user:sysadmin@globex.example";
const db = testDatabase();
let schema: string;

beforeAll(async () => {
  requireBundle();
  requireDist();
  schema = db.schema("multi");
  await migrate({ connectionString: pgUrl(), schema });
});
afterAll(() => db.dropSchemas());

type Reply = { ok: true; value: unknown } | { ok: false; error: { name: string; code?: string; message: string } };

class Worker {
  readonly child: ChildProcess;
  readonly name: string;
  readonly ready: Promise<void>;
  readonly exited: Promise<NodeJS.Signals | number | null>;
  progress = 0;
  #next = 0;
  readonly #waiting = new Map<number, (reply: Reply) => void>();

  constructor(name: string) {
    this.name = name;
    this.child = fork(WORKER, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    let ready = (): void => {};
    this.ready = new Promise((resolve) => (ready = resolve));
    this.exited = new Promise((resolve) => this.child.on("exit", (code, signal) => resolve(signal ?? code)));
    this.child.on("message", (m: { event?: string; id?: number; n?: number } & Reply) => {
      if (m.event === "ready") ready();
      else if (m.event === "progress") this.progress = m.n ?? 0;
      else if (m.id !== undefined) {
        this.#waiting.get(m.id)?.(m);
        this.#waiting.delete(m.id);
      }
    });
  }

  static async start(name: string, pollMs = 60_000): Promise<Worker> {
    const worker = new Worker(name);
    await worker.ready;
    await worker.call("init", { url: pgUrl(), schema, name, pollMs });
    return worker;
  }

  /** Resolves with the reply (ok or not); never rejects, so a refused answer can be inspected. */
  request(cmd: string, body: Record<string, unknown> = {}): Promise<Reply> {
    const id = ++this.#next;
    return new Promise((resolve) => {
      this.#waiting.set(id, resolve);
      this.child.send({ id, cmd, ...body });
    });
  }

  async call<T = unknown>(cmd: string, body: Record<string, unknown> = {}): Promise<T> {
    const reply = await this.request(cmd, body);
    if (!reply.ok) throw new Error(`${this.name} ${cmd}: ${reply.error.code ?? reply.error.name}: ${reply.error.message}`);
    return reply.value as T;
  }

  async kill(): Promise<void> {
    this.child.kill("SIGKILL");
    expect(await this.exited).toBe("SIGKILL");
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    void this.request("close");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}

const started: Worker[] = [];
async function workers(...names: string[]): Promise<Worker[]> {
  const list = await Promise.all(names.map((n) => Worker.start(n)));
  started.push(...list);
  return list;
}
afterEach(async () => {
  await Promise.all(started.splice(0).map((w) => w.stop()));
});

function globex(actorId: string, args: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    tool: "crm.update",
    arguments: { object: "opportunity", recordId: "opp_9", tenantId: "globex", changes: { close_date: "2026-12-01" }, ...args },
    context: { actorId, tenantId: "globex", environment: "production", reason: "multi-process test" },
  };
}

async function records(where: string, values: unknown[]): Promise<Record<string, unknown>[]> {
  const { rows } = await db.pool.query<{ line: string }>(`SELECT line FROM "${schema}".records WHERE ${where} ORDER BY seq`, values);
  return rows.map((r) => JSON.parse(r.line) as Record<string, unknown>);
}

/** Until the server has ended every session of `name` (a killed process's transactions are rolled back by then). */
async function sessionsGone(name: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [name]);
    if (rows[0].n === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`sessions of ${name} still open after 10 s`);
}

describe("four processes, one deny history", () => {
  it("24 concurrent denies of one actor: each decision saw every deny before it; escalation starts exactly at the threshold", async () => {
    const four = await workers("deny-1", "deny-2", "deny-3", "deny-4");
    const actor = "agent:burst";
    const calls = Array.from({ length: 6 }, () => globex(actor, { destination: "https://gmail.com/x" }));
    const decided = await Promise.all(four.map((w) => w.call<Decision[]>("protect", { calls })));
    const all = decided.flat();
    expect(all).toHaveLength(24);
    expect(all.every((d) => d.action === "deny")).toBe(true);

    // In commit order (the record chain), decision i saw exactly i denies before it.
    const chain = await records("type = 'decision' AND line::jsonb ->> 'actor_id' = $1", [actor]);
    expect(chain.map((r) => (r["history"] as { recent_denies: number }).recent_denies)).toEqual(Array.from({ length: 24 }, (_, i) => i));
    // deny_threshold is 3: the first three are plain denies, every later one is escalated.
    expect(chain.map((r) => (r["result"] as { escalated: boolean }).escalated)).toEqual(Array.from({ length: 24 }, (_, i) => i >= 3));
    expect(all.filter((d) => !d.escalated).map((d) => d.reasons[0]?.code)).toEqual(Array(3).fill("blocked_destination"));
    expect(all.filter((d) => d.escalated)).toHaveLength(21);
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM "${schema}".decisions WHERE actor_id = $1 AND action = 'deny'`, [
      actor,
    ]);
    expect(rows[0].n).toBe(24);

    // The processes really raced: in commit order, decisions of different workers interleave.
    const byId = new Map(decided.flatMap((list, w) => list.map((d) => [d.id, w] as const)));
    const order = chain.map((r) => byId.get(r["decision_id"] as string));
    const switches = order.filter((w, i) => i > 0 && w !== order[i - 1]).length;
    expect(switches).toBeGreaterThanOrEqual(3);
  });
});

describe("approvals across processes", () => {
  it("an approval given in process B resolves the wait in process A at once (LISTEN/NOTIFY; A polls only every 60 s)", async () => {
    const [a, b] = await workers("notify-a", "notify-b");
    const [asked] = await a!.call<Decision[]>("protect", { calls: [globex("agent:notify", { amount: 30000 })] });
    expect(asked).toMatchObject({ action: "require_approval", approvers: [GLOBEX_APPROVER] });
    const waiting = a!.call<{ status: string; reviewerId: string }>("wait", { decisionId: asked!.id });
    await new Promise((r) => setTimeout(r, 300));
    const approvedAt = Date.now();
    await b!.call("approve", { decisionId: asked!.id, reviewerId: GLOBEX_APPROVER });
    expect(await waiting).toMatchObject({ decisionId: asked!.id, status: "approved", reviewerId: GLOBEX_APPROVER });
    expect(Date.now() - approvedAt).toBeLessThan(5_000);
  });

  it("two processes answering at once: exactly one answer wins, the other is refused as already answered", async () => {
    const [a, b, c] = await workers("race-a", "race-b", "race-c");
    for (let round = 0; round < 6; round++) {
      const [asked] = await a!.call<Decision[]>("protect", { calls: [globex(`agent:race-${round}`, { amount: 30000 })] });
      const waiting = a!.request("wait", { decisionId: asked!.id });
      const [approve, reject] = await Promise.all([
        b!.request("approve", { decisionId: asked!.id, reviewerId: GLOBEX_APPROVER }),
        c!.request("reject", { decisionId: asked!.id, reviewerId: GLOBEX_APPROVER }),
      ]);
      expect([approve, reject].filter((r) => r.ok)).toHaveLength(1);
      const refused = [approve, reject].find((r) => !r.ok);
      expect(refused).toMatchObject({ ok: false, error: { code: "already_answered" } });
      const answers = await records("decision_id = $1 AND type <> 'decision'", [asked!.id]);
      expect(answers.map((r) => r["type"])).toEqual([approve.ok ? "approval" : "rejection"]);
      expect(await waiting).toMatchObject(
        approve.ok ? { ok: true, value: { status: "approved" } } : { ok: false, error: { code: "approval_rejected" } },
      );
    }
  });

  it("a waiting process killed mid-wait and started again waits on the same decision and gets the answer", async () => {
    const [a, b] = await workers("restart-a", "restart-b");
    const [asked] = await a!.call<Decision[]>("protect", { calls: [globex("agent:restart", { amount: 30000 })] });
    void a!.request("wait", { decisionId: asked!.id });
    await new Promise((r) => setTimeout(r, 200));
    await a!.kill();
    const [again] = await workers("restart-a2");
    const waiting = again!.call<{ status: string }>("wait", { decisionId: asked!.id });
    await new Promise((r) => setTimeout(r, 200));
    await b!.call("approve", { decisionId: asked!.id, reviewerId: GLOBEX_APPROVER });
    expect(await waiting).toMatchObject({ decisionId: asked!.id, status: "approved" });
  });
});

describe("a process killed mid-call", () => {
  it("leaves no half-written decision, approval or record (SIGKILL under load, 4 trials)", async () => {
    let inFlightAtKill = 0;
    for (let trial = 0; trial < 4; trial++) {
      const name = `kill-${trial}`;
      const [worker] = await workers(name);
      void worker!.request("loop", { lanes: 12, approver: GLOBEX_APPROVER });
      const target = 40 + Math.floor(Math.random() * 80);
      while (worker!.progress < target) await new Promise((r) => setTimeout(r, 5));
      // Killed as soon as one of its transactions is seen open: most decisions are one round trip
      // (docs/postgres.md, "One round trip"), whose transaction is open only while the server runs
      // it, so a kill at a random moment seldom lands inside one.
      let open = 0;
      for (let look = 0; look < 500 && open === 0; look++) {
        const { rows } = await db.pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND xact_start IS NOT NULL",
          [name],
        );
        open = rows[0]!.n;
      }
      await worker!.kill();
      inFlightAtKill += open;
      await sessionsGone(name);
    }
    // The kills did land inside transactions.
    expect(inFlightAtKill).toBeGreaterThan(0);

    const q = async (sql: string): Promise<unknown[]> => (await db.pool.query(sql.replaceAll("$S", `"${schema}"`))).rows;
    await expectDecisionsRecorded(q);
    // Every answer has its record and every answer record its answer.
    expect(
      await q(`SELECT d.id FROM $S.decisions d WHERE d.approval_status IN ('approved', 'rejected')
      AND (SELECT count(*) FROM $S.records r WHERE r.decision_id = d.id
           AND r.type = CASE d.approval_status WHEN 'approved' THEN 'approval' ELSE 'rejection' END) <> 1`),
    ).toEqual([]);
    expect(
      await q(`SELECT r.decision_id FROM $S.records r LEFT JOIN $S.decisions d ON d.id = r.decision_id
      WHERE r.type IN ('approval', 'rejection')
      AND d.approval_status IS DISTINCT FROM CASE r.type WHEN 'approval' THEN 'approved' ELSE 'rejected' END`),
    ).toEqual([]);
    const answered = await q(`SELECT count(*)::int AS n FROM $S.records WHERE type IN ('approval', 'rejection')`);
    expect((answered[0] as { n: number }).n).toBeGreaterThan(0);
    expect(await verifyPostgresLog({ connectionString: pgUrl(), schema })).toMatchObject({ ok: true });
  });
});
