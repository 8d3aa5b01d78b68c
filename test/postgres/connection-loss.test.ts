/**
 * Connections lost under a running instance: a DBA's pg_terminate_backend,
 * a failover, idle_in_transaction_session_timeout. Each instance runs in a
 * child process (fault-child.mjs, the built dist/index.js) with no handler
 * for uncaught errors, so an 'error' nobody listens to would end it. Every
 * call in flight settles as a record_unavailable deny or refusal
 * (docs/contract.md §5, fail closed), the process lives, and the same
 * instance goes on serving.
 */
import { spawn } from "node:child_process";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createVeto, type Decision, type Veto } from "../../adapter/index.js";
import { migrate, verifyPostgresLog, postgres } from "../../adapter/postgres/index.js";
import { historyLockKey, migrateLockKey, recordsLockKey } from "../../adapter/postgres/connection.js";
import { seededRandom } from "../helpers/generate-calls.js";
import { CLI, requireBundle, requireCli } from "../helpers/index.js";
import { Child, backendWhere, backends, terminate, terminatedGone, until, type Reply } from "./children.js";
import { pgUrl, requireDist, testDatabase } from "../helpers/postgres.js";

const APPROVER = "user:sysadmin@globex.example";
const db = testDatabase();
let schema: string;
/** An instance in this process, on the same schema: the other application instance. */
let peer: Veto;

beforeAll(async () => {
  requireBundle();
  requireDist();
  schema = db.schema("loss");
  await migrate({ connectionString: pgUrl(), schema });
  peer = await createVeto({
    bundle: requireBundle(),
    logger: (await import("pino")).pino({ level: "silent" }),
    store: postgres({ connectionString: pgUrl(), schema }),
  });
});
afterAll(async () => {
  await peer.close();
  await db.dropSchemas();
});

const started: Child[] = [];
let counter = 0;
async function child(options: Record<string, unknown> = {}): Promise<Child> {
  const c = new Child(`veto-loss-${process.pid}-${++counter}`);
  started.push(c);
  await c.ready;
  await c.call("init", { url: pgUrl(), schema, name: c.name, ...options });
  return c;
}
afterEach(async () => {
  await Promise.all(started.splice(0).map((c) => c.stop()));
});

function globex(actorId: string, args: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    tool: "crm.update",
    arguments: { object: "opportunity", recordId: "opp_9", tenantId: "globex", changes: { close_date: "2026-12-01" }, ...args },
    context: { actorId, tenantId: "globex", environment: "production", reason: "connection-loss test" },
  };
}

const decisionOf = (reply: Reply): Decision => {
  expect(reply).toMatchObject({ ok: true });
  return (reply as { value: Decision }).value;
};

/**
 * The child lived through it and, once the server has ended the sessions it
 * was told to (pg_terminate_backend only signals them), serves the next
 * calls as if nothing happened. A call that takes a pooled connection whose
 * backend is still on its way out fails closed like any other that loses
 * its connection; "later" is after that.
 */
async function stillServing(c: Child): Promise<void> {
  expect(c.alive).toBe(true);
  await terminatedGone(db.pool);
  await new Promise((r) => setTimeout(r, 50));
  const d = decisionOf(await c.request("protect", { call: globex(`agent:after-${counter}`, { amount: 100 }) }));
  expect([d.action, d.reasons.map((r) => r.code)]).toEqual(["allow", ["low_value"]]);
  const asked = decisionOf(await c.request("protect", { call: globex(`agent:after-ask-${counter}`, { amount: 30000 }) }));
  expect(asked.action).toBe("require_approval");
  expect(await c.request("approve", { decisionId: asked.id, reviewerId: APPROVER })).toMatchObject({
    ok: true,
    value: { status: "approved" },
  });
}

/** Hold a lock of the test's own on `key` (session-level) until the returned function is called. */
async function holdLock(key: string): Promise<() => Promise<void>> {
  const client = await db.pool.connect();
  await client.query("SELECT pg_advisory_lock(hashtextextended($1, 0))", [key]);
  return async () => {
    await client.query("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [key]);
    client.release();
  };
}

const waitingOnLock = (b: { wait_event_type: string | null }): boolean => b.wait_event_type === "Lock";

describe("a backend terminated at each point where protect() holds or waits for its connection", () => {
  it("waiting for the history lock: a record_unavailable deny, and the process serves on", async () => {
    const c = await child({ records: true });
    const actor = "agent:loss-history";
    const unlock = await holdLock(historyLockKey(schema, actor, "globex"));
    try {
      const deciding = c.request("protect", { call: globex(actor, { amount: 100 }) });
      const stuck = await backendWhere(db.pool, c.name, "protect waiting for the history lock", waitingOnLock);
      expect(await terminate(db.pool, [stuck.pid])).toBe(1);
      const d = decisionOf(await deciding);
      expect([d.action, d.reasons.map((r) => r.code)]).toEqual(["deny", ["record_unavailable"]]);
    } finally {
      await unlock();
    }
    await stillServing(c);
  });

  it("holding the unit while its record waits for the chain lock: a record_unavailable deny, nothing half-written", async () => {
    const c = await child({ records: true });
    const actor = "agent:loss-chain";
    const unlock = await holdLock(recordsLockKey(schema));
    let d: Decision;
    try {
      const deciding = c.request("protect", { call: globex(actor, { amount: 100 }) });
      const stuck = await backendWhere(db.pool, c.name, "protect waiting for the record chain", waitingOnLock);
      expect(stuck.xact_start).not.toBeNull();
      expect(await terminate(db.pool, [stuck.pid])).toBe(1);
      // The superseding deny's record needs the chain too: let it through.
      await new Promise((r) => setTimeout(r, 100));
      await unlock();
      d = decisionOf(await deciding);
    } catch (error) {
      await unlock().catch(() => {});
      throw error;
    }
    expect([d.action, d.reasons.map((r) => r.code)]).toEqual(["deny", ["record_unavailable"]]);
    // What is stored is the deny, with its own record (the allow was rolled back with its connection).
    const { rows } = await db.pool.query(`SELECT action FROM "${schema}".decisions WHERE id = $1`, [d.id]);
    expect(rows).toEqual([{ action: "deny" }]);
    const records = await db.pool.query<{ line: string }>(`SELECT line FROM "${schema}".records WHERE decision_id = $1`, [d.id]);
    expect(records.rows.map((r) => (JSON.parse(r.line) as { result: { action: string } }).result.action)).toEqual(["deny"]);
    await stillServing(c);
  });

  it("idle in transaction between statements (a custom record sink that takes its time): the decision settles", async () => {
    const c = await child({ gated: true });
    await c.call("hold");
    const deciding = c.request("protect", { call: globex("agent:loss-sink", { amount: 100 }) });
    await until("the record write to be held", async () => (c.events.some((e) => e.event === "held") ? true : undefined));
    expect(
      await terminate(
        db.pool,
        (await backends(db.pool, c.name)).map((b) => b.pid),
      ),
    ).toBeGreaterThan(0);
    await c.call("release");
    const d = decisionOf(await deciding);
    // The unit may have committed before the terminate: allow; else the deny that replaced it.
    expect(d.action === "allow" || d.reasons[0]?.code === "record_unavailable").toBe(true);
    await stillServing(c);
  });
});

describe("a backend terminated while an answer holds its unit", () => {
  it("idle in transaction while a custom record sink takes the approval record: a record_unavailable refusal; the approval stays open", async () => {
    const c = await child({ gated: true });
    const asked = decisionOf(await c.request("protect", { call: globex("agent:loss-approve", { amount: 30000 }) }));
    await c.call("hold");
    const answering = c.request("approve", { decisionId: asked.id, reviewerId: APPROVER });
    await until("the approval record to be held", async () => (c.events.some((e) => e.type === "approval") ? true : undefined));
    const idle = await backendWhere(db.pool, c.name, "the answer idle in transaction", (b) => b.state === "idle in transaction");
    expect(await terminate(db.pool, [idle.pid])).toBe(1);
    await c.call("release");
    expect(await answering).toMatchObject({ ok: false, error: { name: "ApprovalError", code: "record_unavailable" } });
    // Rolled back with its connection: still pending, so the same instance can answer it now.
    expect(await c.request("approve", { decisionId: asked.id, reviewerId: APPROVER })).toMatchObject({
      ok: true,
      value: { status: "approved" },
    });
    await stillServing(c);
  });

  it("waiting for the record chain (records: true): a record_unavailable refusal; the approval stays open", async () => {
    const c = await child({ records: true });
    const asked = decisionOf(await c.request("protect", { call: globex("agent:loss-approve-chain", { amount: 30000 }) }));
    const unlock = await holdLock(recordsLockKey(schema));
    let answer: Reply;
    try {
      const answering = c.request("reject", { decisionId: asked.id, reviewerId: APPROVER });
      const stuck = await backendWhere(db.pool, c.name, "the answer waiting for the record chain", waitingOnLock);
      expect(await terminate(db.pool, [stuck.pid])).toBe(1);
      answer = await answering;
    } finally {
      await unlock();
    }
    expect(answer).toMatchObject({ ok: false, error: { name: "ApprovalError", code: "record_unavailable" } });
    expect(await c.request("reject", { decisionId: asked.id, reviewerId: APPROVER })).toMatchObject({
      ok: true,
      value: { status: "rejected" },
    });
    await stillServing(c);
  });

  it("idle_in_transaction_session_timeout ends the answer's session: a record_unavailable refusal, and the process serves on", async () => {
    const c = await child({ gated: true, pool: { options: "-c idle_in_transaction_session_timeout=300" } });
    const asked = decisionOf(await c.request("protect", { call: globex("agent:loss-idle-timeout", { amount: 30000 }) }));
    await c.call("hold");
    const answering = c.request("approve", { decisionId: asked.id, reviewerId: APPROVER });
    await until("the approval record to be held", async () => (c.events.some((e) => e.type === "approval") ? true : undefined));
    // The server ends the session after 300 ms idle in its transaction.
    await until("the server to end the idle session", async () =>
      (await backends(db.pool, c.name)).some((b) => b.state === "idle in transaction") ? undefined : true,
    );
    await new Promise((r) => setTimeout(r, 200));
    await c.call("release");
    expect(await answering).toMatchObject({ ok: false, error: { name: "ApprovalError", code: "record_unavailable" } });
    expect(c.alive).toBe(true);
    expect(await c.request("approve", { decisionId: asked.id, reviewerId: APPROVER })).toMatchObject({
      ok: true,
      value: { status: "approved" },
    });
  });
});

describe("a backend terminated while a waiter listens", () => {
  it("the LISTEN connection comes back, and the wait resolves when another instance approves", async () => {
    const c = await child({ pollMs: 60_000 });
    const asked = decisionOf(await c.request("protect", { call: globex("agent:loss-wait", { amount: 30000 }) }));
    const waiting = c.request("wait", { decisionId: asked.id });
    const listening = await backendWhere(db.pool, c.name, "the LISTEN connection", (b) => b.query.startsWith("LISTEN"));
    // Every session of the instance: the LISTEN one and the pool's idle ones.
    expect(
      await terminate(
        db.pool,
        (await backends(db.pool, c.name)).map((b) => b.pid),
      ),
    ).toBeGreaterThan(0);
    await backendWhere(db.pool, c.name, "a new LISTEN connection", (b) => b.query.startsWith("LISTEN") && b.pid !== listening.pid);
    await peer.approve({ decisionId: asked.id, reviewerId: APPROVER });
    expect(await waiting).toMatchObject({ ok: true, value: { decisionId: asked.id, status: "approved" } });
    await stillServing(c);
  });
});

/** Kinds of outcome (fault-child.mjs's storm) other than answers and fail-closed refusals: raw errors, anything unsettled. */
function unexpectedOutcomes(outcomes: Record<string, number>): string[] {
  const allowed = new Set([
    "allow:low_value",
    "deny:blocked_destination",
    "deny:record_unavailable",
    "require_approval:production_amount",
    "approve:ok",
    "reject:ok",
    "wait:ok",
  ]);
  // Not approval_unverified: nothing in a storm forges a row, and records
  // that cannot be read for a moment are read again (docs/contract.md §9).
  const refusals = /^(approve|reject|wait):ApprovalError:(record_unavailable|approval_rejected|approval_timeout|already_answered)$/;
  return Object.keys(outcomes).filter((k) => !allowed.has(k) && !refusals.test(k));
}

interface StormResult {
  outcomes: Record<string, number>;
  /** Decisions the child was told were allow. */
  allowed: string[];
  /** Approvals a wait resolved with. */
  approved: string[];
  /** Approvals and rejections the child was told were given. */
  answered: string[];
}

const STORM = { lanes: 6, rounds: 6 };

/**
 * What a storm must leave, whatever the faults: every call settled exactly
 * once as an answer or a fail-closed refusal; no allow and no approval
 * without its record (docs/contract.md §7); no answer half-done; one intact
 * chain.
 */
async function checkStorm(reply: Reply, prefix: string, seed: number): Promise<StormResult> {
  const why = `seed ${seed} (VETO_LOSS_SEED=${seed} reproduces the faults' schedule)`;
  expect(reply, why).toMatchObject({ ok: true });
  const result = (reply as { value: StormResult }).value;
  const { outcomes } = result;
  const n = (pattern: RegExp): number => Object.entries(outcomes).reduce((sum, [k, v]) => sum + (pattern.test(k) ? v : 0), 0);
  const detail = `${why}: ${JSON.stringify(outcomes)}`;
  expect(unexpectedOutcomes(outcomes), detail).toEqual([]);
  // Exact counts: three decisions a round, and one answer and one wait for each approval asked.
  expect(n(/^(allow|deny|require_approval):/), detail).toBe(3 * STORM.lanes * STORM.rounds);
  const asked = outcomes["require_approval:production_amount"] ?? 0;
  expect([n(/^(approve|reject):/), n(/^wait:/)], detail).toEqual([asked, asked]);
  expect(result.allowed.length, detail).toBe(outcomes["allow:low_value"] ?? 0);
  expect(result.approved.length, detail).toBe(outcomes["wait:ok"] ?? 0);
  expect(result.answered.length, detail).toBe((outcomes["approve:ok"] ?? 0) + (outcomes["reject:ok"] ?? 0));

  const ids = [...new Set([...result.allowed, ...result.approved, ...result.answered])];
  const { rows } = await db.pool.query<{
    id: string;
    action: string;
    approval_status: string | null;
    reviewer_id: string | null;
    records: { type: string; line: string }[] | null;
  }>(
    `SELECT d.id, d.action, d.approval_status, d.reviewer_id,
       (SELECT json_agg(json_build_object('type', r.type, 'line', r.line) ORDER BY r.seq) FROM "${schema}".records r WHERE r.decision_id = d.id) AS records
     FROM "${schema}".decisions d WHERE d.id = ANY($1::text[])`,
    [ids],
  );
  const byId = new Map(rows.map((r) => [r.id, r]));
  const recorded = (id: string, type: string): { result: Record<string, unknown>; reviewer_id?: string }[] =>
    (byId.get(id)?.records ?? []).filter((r) => r.type === type).map((r) => JSON.parse(r.line) as { result: Record<string, unknown> });
  for (const id of result.allowed) {
    expect([id, byId.get(id)?.action, recorded(id, "decision").map((r) => r.result["action"])], why).toEqual([id, "allow", ["allow"]]);
  }
  for (const id of result.approved) {
    expect([id, byId.get(id)?.approval_status, recorded(id, "approval").map((r) => r.reviewer_id)], why).toEqual([
      id,
      "approved",
      [APPROVER],
    ]);
  }
  for (const id of result.answered) {
    const row = byId.get(id);
    const type = row?.approval_status === "approved" ? "approval" : "rejection";
    expect(
      [id, row?.reviewer_id, recorded(id, type).length, recorded(id, type === "approval" ? "rejection" : "approval").length],
      why,
    ).toEqual([id, APPROVER, 1, 0]);
  }
  // Nothing half-done: no approval left reserved, every answer with exactly its record, one intact chain.
  const q = async (sql: string): Promise<unknown[]> =>
    (await db.pool.query(sql.replaceAll("$S", `"${schema}"`), [`agent:storm-${prefix}-%`])).rows;
  expect(await q(`SELECT id FROM $S.decisions WHERE approval_status = 'answering' AND actor_id LIKE $1`), why).toEqual([]);
  expect(
    await q(`SELECT d.id FROM $S.decisions d WHERE d.approval_status IN ('approved', 'rejected') AND d.actor_id LIKE $1
      AND (SELECT count(*) FROM $S.records r WHERE r.decision_id = d.id
           AND r.type = CASE d.approval_status WHEN 'approved' THEN 'approval' ELSE 'rejection' END) <> 1`),
    why,
  ).toEqual([]);
  expect(await verifyPostgresLog({ connectionString: pgUrl(), schema }), why).toMatchObject({ ok: true });
  return result;
}

/**
 * A TCP proxy to the test server whose connections the test can reset (an
 * RST to the application, as a network blip or a load balancer would send).
 */
async function resettingProxy(): Promise<{
  url: string;
  open: () => number;
  reset: (pick: number) => boolean;
  close: () => Promise<void>;
}> {
  const target = new URL(pgUrl());
  const pairs: [Socket, Socket][] = [];
  const server = createServer((down) => {
    const up = connect(Number(target.port), target.hostname);
    const pair: [Socket, Socket] = [down, up];
    pairs.push(pair);
    const drop = (): void => {
      const at = pairs.indexOf(pair);
      if (at >= 0) pairs.splice(at, 1);
      down.destroy();
      up.destroy();
    };
    for (const socket of pair) {
      socket.on("error", drop);
      socket.on("close", drop);
    }
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = new URL(pgUrl());
  url.port = String((server.address() as AddressInfo).port);
  return {
    url: url.toString(),
    open: () => pairs.length,
    reset: (pick) => {
      const pair = pairs[Math.floor(pick * pairs.length)];
      if (pair === undefined) return false;
      pair[0].resetAndDestroy();
      pair[1].destroy();
      return true;
    },
    close: async () => {
      for (const [down, up] of pairs.splice(0)) {
        down.destroy();
        up.destroy();
      }
      await new Promise((r) => server.close(r));
    },
  };
}

describe("a seeded storm of connection resets under load", () => {
  const SEED = Number(process.env.VETO_LOSS_SEED ?? 20261201);

  it(`every call settles as an answer or a record_unavailable one, and the process serves on (seed ${SEED})`, async () => {
    const random = seededRandom(SEED);
    const proxy = await resettingProxy();
    try {
      const c = await child({ url: proxy.url, records: true, pollMs: 50 });
      const prefix = `resets-${SEED}`;
      const storm = c.request("storm", { ...STORM, approver: APPROVER, prefix });
      let resets = 0;
      let done = false;
      void storm.then(() => (done = true));
      while (!done && c.alive) {
        await new Promise((r) => setTimeout(r, 5 + Math.floor(random() * 60)));
        if (proxy.reset(random())) resets += 1;
      }
      const reply = await storm;
      expect(c.alive, `the child died (seed ${SEED})`).toBe(true);
      if (process.env.VETO_LOSS_VERBOSE)
        console.log(`storm seed ${SEED}: ${resets} resets ${JSON.stringify((reply as { value?: StormResult }).value?.outcomes)}`);
      await checkStorm(reply, prefix, SEED);
      expect(resets, `seed ${SEED}`).toBeGreaterThan(3);
      // Later calls go through the proxy on new connections.
      await new Promise((r) => setTimeout(r, 100));
      const d = decisionOf(await c.request("protect", { call: globex("agent:after-resets", { amount: 100 }) }));
      expect(d.action).toBe("allow");
    } finally {
      await proxy.close();
    }
  });
});

describe("a seeded storm of terminations under load", () => {
  const SEED = Number(process.env.VETO_LOSS_SEED ?? 20261130);

  it(`every call settles as an answer or a record_unavailable one, and the process serves on (seed ${SEED})`, async () => {
    const random = seededRandom(SEED);
    const c = await child({ records: true, pollMs: 50 });
    const prefix = `terminations-${SEED}`;
    const storm = c.request("storm", { ...STORM, approver: APPROVER, prefix });
    let terminated = 0;
    let done = false;
    void storm.then(() => (done = true));
    while (!done && c.alive) {
      await new Promise((r) => setTimeout(r, 5 + Math.floor(random() * 60)));
      const sessions = await backends(db.pool, c.name);
      // Any one of them, in whatever state it is: idle, in a statement, idle in transaction, LISTEN.
      const victim = sessions[Math.floor(random() * sessions.length)];
      if (victim !== undefined) terminated += await terminate(db.pool, [victim.pid]);
    }
    const reply = await storm;
    expect(c.alive, `the child died (seed ${SEED})`).toBe(true);
    if (process.env.VETO_LOSS_VERBOSE)
      console.log(`storm seed ${SEED}: ${terminated} terminated ${JSON.stringify((reply as { value?: StormResult }).value?.outcomes)}`);
    await checkStorm(reply, prefix, SEED);
    expect(terminated, `seed ${SEED}`).toBeGreaterThan(3);
    await stillServing(c);
  });
});

/** Run the veto CLI: its exit code and what it wrote to stderr. */
function cliRun(args: string[]): { exited: Promise<number | null>; stderr: () => string; kill: () => void } {
  const cli = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  cli.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  return { exited: new Promise((r) => cli.on("exit", (code) => r(code))), stderr: () => stderr, kill: () => cli.kill("SIGKILL") };
}

function namedUrl(name: string): string {
  const url = new URL(pgUrl());
  url.searchParams.set("application_name", name);
  return url.toString();
}

describe("the CLI", () => {
  it("veto log verify --postgres whose connection is terminated mid-read exits 2 with the reason", async () => {
    requireCli();
    const c = await child({ records: true });
    await stillServing(c);
    const name = `veto-verify-${process.pid}`;
    // Readers wait behind a lock of the test's: the read is in flight when its backend goes.
    const locker = await db.pool.connect();
    await locker.query("BEGIN");
    await locker.query(`LOCK TABLE "${schema}".records IN ACCESS EXCLUSIVE MODE`);
    const run = cliRun(["log", "verify", "--postgres", namedUrl(name), "--schema", schema]);
    try {
      const stuck = await backendWhere(db.pool, name, "verify waiting to read the records", waitingOnLock);
      expect(await terminate(db.pool, [stuck.pid])).toBe(1);
      expect(await run.exited).toBe(2);
      expect(run.stderr()).toMatch(new RegExp(`log verify on ${schema}\\.records: .*terminat`, "i"));
    } finally {
      await locker.query("ROLLBACK");
      locker.release();
      run.kill();
    }
  });

  it("veto db migrate whose connection is terminated exits 2 with the reason, not with a crash", async () => {
    requireCli();
    const target = db.schema("loss_migrate");
    const unlock = await holdLock(migrateLockKey(target));
    const name = `veto-migrate-${process.pid}`;
    const run = cliRun(["db", "migrate", "--postgres", namedUrl(name), "--schema", target]);
    try {
      const stuck = await backendWhere(db.pool, name, "the migrator waiting for the migration lock", waitingOnLock);
      expect(await terminate(db.pool, [stuck.pid])).toBe(1);
      expect(await run.exited).toBe(2);
      expect(run.stderr()).toMatch(new RegExp(`db migrate on schema ${target}: .*terminat`, "i"));
    } finally {
      await unlock();
      run.kill();
    }
  });
});
