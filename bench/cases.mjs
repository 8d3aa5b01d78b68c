/**
 * The benchmark cases. Each returns {p50_us, p99_us, ops_per_s, n, ...}.
 * They import the built library (dist/), so `make bench` builds first.
 */
import { spawn, spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request, Agent } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import { pino } from "pino";
import { createVeto, openFileLog } from "../dist/index.js";
import { storeDerived } from "../dist/bundle.js";
import { postgres } from "../dist/postgres.js";
import { createApprovalServer } from "../dist/server.js";
import { measureConcurrent, measureSequential, round, summarize } from "./measure.mjs";
import { policyInput } from "./mix.mjs";

export const ENTRYPOINT = "veto/crm/decision";

/**
 * Keeps the last `size` records, as a sink that ships them elsewhere would
 * hold them briefly. Briefly: a ring of 4,096 (as it was) kept every record
 * alive across three or four scavenges, so each was copied and then promoted
 * to the old generation, where it died: +0.6 MB promoted per scavenge (1.26
 * -> 1.85 MB, bench/tail-point.mjs under --trace-gc-nvp) and more
 * mark-compacts, a cost of the bench's sink that no sink of the package has
 * (the file log and PostgreSQL write a record and drop it).
 */
export class RingSink {
  constructor(size = 64) {
    this.records = new Array(size);
    this.size = size;
    this.written = 0;
  }
  async write(record) {
    this.records[this.written++ % this.size] = record;
  }
}

/**
 * A clock that moves 60 s per decision: with the shipped 900 s window a key
 * sees its last ~15 decisions, so denies escalate now and then (as in
 * production) instead of every key escalating for good after its third deny.
 */
export function steppingClock() {
  let now = Date.UTC(2025, 0, 1);
  return () => (now += 60_000);
}

const silent = pino({ level: "silent" });

/**
 * Raw SDK: loadPolicy + setData once (and, as the adapters do, the values the
 * policy derives from the data document stored once: storeDerived, a no-op for
 * a module without veto/crm/derived), then evaluate(inputObject, entrypoint) per call.
 */
export async function wasmEvaluate(wasm, data, mix, opts) {
  const policy = await loadPolicy(wasm, { initial: 16, maximum: 4096 });
  policy.setData(data);
  storeDerived(policy);
  const inputs = mix.map(policyInput);
  return await measureSequential(inputs, (input) => policy.evaluate(input, ENTRYPOINT), opts);
}

/** The same, with each input serialized to an ArrayBuffer beforehand (the SDK's pre-serialized form): the floor of the floor. */
export async function wasmEvaluatePreserialized(wasm, data, mix, opts) {
  const policy = await loadPolicy(wasm, { initial: 16, maximum: 4096 });
  policy.setData(data);
  storeDerived(policy);
  const enc = new TextEncoder();
  const inputs = mix.map((e) => {
    const b = enc.encode(JSON.stringify(policyInput(e)));
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  });
  return await measureSequential(inputs, (input) => policy.evaluate(input, ENTRYPOINT), opts);
}

export async function protectMemory(bundle, mix, opts, extra = {}) {
  const sink = new RingSink();
  const veto = await createVeto({ bundle, logger: silent, recordSink: sink, clock: steppingClock(), ...extra });
  const calls = mix.map((e) => e.call);
  const actions = { allow: 0, deny: 0, require_approval: 0, escalated: 0, invalid_input: 0 };
  // One untimed pass over the mix to report what the timed passes decide.
  for (const call of calls) {
    const d = await veto.protect(call);
    actions[d.action] += 1;
    if (d.escalated) actions.escalated += 1;
    if (d.reasons[0]?.code === "invalid_input") actions.invalid_input += 1;
  }
  const result = await measureSequential(calls, (call) => veto.protect(call), opts);
  await veto.close();
  return { ...result, verdicts_per_pass: actions };
}

export async function protectDurable(bundle, mix, concurrency, opts, extra = {}) {
  const dir = mkdtempSync(join(tmpdir(), "veto-bench-"));
  try {
    const log = await openFileLog(join(dir, "decisions.log"));
    const veto = await createVeto({ bundle, logger: silent, recordSink: log, clock: steppingClock(), ...extra });
    const calls = mix.map((e) => e.call);
    const result =
      concurrency === 1
        ? await measureSequential(calls, (call) => veto.protect(call), {
            warmupOps: 200,
            minOps: 1000,
            minMs: 3000,
            maxOps: 200_000,
            ...opts,
          })
        : await measureConcurrent(calls, (call) => veto.protect(call), { concurrency, warmupMs: 1000, minMs: 4000, ...opts });
    await veto.close();
    const stats = log.stats;
    await log.close();
    return { ...result, records_per_fdatasync: round(stats.records / Math.max(1, stats.dataSyncs), 1) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** protect() with the PostgreSQL store and records in the same transaction, in a schema of its own. */
export async function protectPostgres(bundle, mix, connectionString, concurrency, opts, extra = {}) {
  const schema = `veto_bench_${process.pid}`;
  const veto = await createVeto({
    bundle,
    logger: silent,
    clock: steppingClock(),
    ...extra,
    store: postgres({ connectionString, schema, migrate: true, records: true }),
  });
  const calls = mix.map((e) => e.call);
  try {
    return concurrency === 1
      ? await measureSequential(calls, (call) => veto.protect(call), { warmupOps: 200, minOps: 500, minMs: 3000, maxOps: 100_000, ...opts })
      : await measureConcurrent(calls, (call) => veto.protect(call), { concurrency, warmupMs: 1000, minMs: 3000, ...opts });
  } finally {
    await veto.close();
    const pg = await import("pg");
    const client = new pg.default.Client({ connectionString });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).finally(() => client.end());
  }
}

/**
 * `opa bench` (OPA's Go evaluator, compiled query prepared once) on the Rego
 * bundle, one run per representative input (one of each verdict class of
 * the mix). p50/p99 come from OPA's own timer_rego_query_eval_ns histogram;
 * ops/s from N/T.
 */
export function opaGoEval(opa, regoBundle, mix) {
  const dir = mkdtempSync(join(tmpdir(), "veto-bench-opa-"));
  try {
    const byClass = new Map();
    for (const entry of mix) {
      const cls = entry.recentDenies >= 3 ? "escalated" : entry.kind;
      if (!byClass.has(cls)) byClass.set(cls, entry);
    }
    const perInput = {};
    let n = 0;
    let t = 0;
    for (const [cls, entry] of byClass) {
      const file = join(dir, `${cls}.json`);
      writeFileSync(file, JSON.stringify(policyInput(entry)));
      const run = spawnSync(opa, ["bench", "--format", "json", "--count", "1", "-b", regoBundle, "-i", file, "data.veto.crm.decision"], {
        encoding: "utf8",
        maxBuffer: 16 << 20,
      });
      if (run.status !== 0) throw new Error(`opa bench failed for ${cls}: ${run.stderr}`);
      const out = JSON.parse(run.stdout);
      const h = (k) => out.Extra[`histogram_timer_rego_query_eval_ns_${k}`];
      perInput[cls] = {
        p50_us: round(h("median") / 1000),
        p99_us: round(h("99%") / 1000),
        ops_per_s: Math.round(out.N / (out.T / 1e9)),
        n: out.N,
      };
      n += out.N;
      t += out.T;
    }
    const p50s = Object.values(perInput)
      .map((r) => r.p50_us)
      .sort((a, b) => a - b);
    return {
      // The median of the per-input medians; the worst per-input p99.
      p50_us: p50s[Math.floor(p50s.length / 2)],
      p99_us: Math.max(...Object.values(perInput).map((r) => r.p99_us)),
      ops_per_s: Math.round(n / (t / 1e9)),
      n,
      per_input: perInput,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function httpCall(agent, port, method, path, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: "127.0.0.1",
        port,
        method,
        path,
        headers: {
          ...headers,
          ...(body === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(body) }),
        },
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** `opa run --server` on loopback with the Rego bundle, one keep-alive connection, one request at a time. */
export async function opaServerHttp(opa, regoBundle, mix, opts) {
  const port = await freePort();
  const server = spawn(opa, ["run", "--server", "--addr", `127.0.0.1:${port}`, "--log-level", "error", regoBundle], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  server.stderr.on("data", (c) => (stderr += c));
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        const r = await httpCall(agent, port, "GET", "/health?bundles");
        if (r.status === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline || server.exitCode !== null) throw new Error(`opa server did not become healthy: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const bodies = mix.map((e) => JSON.stringify({ input: policyInput(e) }));
    const path = `/v1/data/${ENTRYPOINT}`;
    const op = async (body) => {
      const r = await httpCall(agent, port, "POST", path, body);
      if (r.status !== 200 || JSON.parse(r.body).result === undefined) throw new Error(`opa server answered ${r.status}: ${r.body}`);
    };
    return await measureSequential(bodies, op, { warmupOps: 500, minOps: 3000, minMs: 3000, maxOps: 100_000, ...opts });
  } finally {
    agent.destroy();
    server.kill("SIGTERM");
    await new Promise((r) => (server.exitCode !== null ? r() : server.once("exit", r)));
  }
}

/**
 * One approval through the approval service's JSON API on PostgreSQL: POST
 * /api/approvals/:id/approve with a bearer JWT (ES256, verified by jose each
 * time), one keep-alive connection, one request at a time, from request to
 * the 200 (the answer recorded and committed in the store's transaction).
 * The pending approvals are made beforehand, untimed, by protect() on the
 * mix's calls that need approval.
 */
export async function approvalApi(bundle, mix, connectionString, opts = {}) {
  const { SignJWT, importPKCS8 } = await import("jose");
  const schema = `veto_bench_api_${process.pid}`;
  const veto = await createVeto({
    bundle,
    logger: silent,
    store: postgres({ connectionString, schema, migrate: true, records: true }),
  });
  const { PostgresStore } = await import("../dist/postgres.js");
  const store = await PostgresStore.connect({ connectionString, schema });
  const keys = generateKeyPairSync("ec", {
    namedCurve: "P-256",
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  const app = await createApprovalServer({
    veto,
    store,
    auth: { jwt: { publicKey: keys.publicKey, issuer: "https://idp.bench", audience: "veto", algorithms: ["ES256"] } },
  });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const address = new URL(await app.listen({ host: "127.0.0.1", port: 0 }));
    const signing = await importPKCS8(keys.privateKey, "ES256");
    const tokens = new Map();
    const tokenFor = async (sub) => {
      if (!tokens.has(sub)) {
        const jwt = await new SignJWT({ sub })
          .setProtectedHeader({ alg: "ES256" })
          .setIssuer("https://idp.bench")
          .setAudience("veto")
          .setExpirationTime("2h")
          .sign(signing);
        tokens.set(sub, `Bearer ${jwt}`);
      }
      return tokens.get(sub);
    };
    const warmupOps = opts.warmupOps ?? 100;
    const wanted = warmupOps + (opts.maxOps ?? 2000);
    const pending = [];
    for (let i = 0; pending.length < wanted && i < mix.length * 20; i++) {
      const d = await veto.protect(mix[i % mix.length].call);
      if (d.action !== "require_approval") continue;
      const actor = mix[i % mix.length].call.context?.actorId;
      const reviewer = d.approvers.find((a) => a !== actor);
      if (reviewer !== undefined) pending.push({ id: d.id, authorization: await tokenFor(reviewer) });
    }
    const op = async (p) => {
      const r = await httpCall(agent, address.port, "POST", `/api/approvals/${p.id}/approve`, "{}", { authorization: p.authorization });
      if (r.status !== 200) throw new Error(`approve answered ${r.status}: ${r.body}`);
    };
    const measured = await measureSequential(pending, op, {
      warmupOps,
      minOps: Math.min(500, pending.length - warmupOps),
      minMs: 0,
      maxOps: pending.length - warmupOps,
      ...opts,
    });
    return { ...measured, approvals_made: pending.length };
  } finally {
    agent.destroy();
    await app.close();
    await veto.close();
    await store.close();
    const pg = await import("pg");
    const client = new pg.default.Client({ connectionString });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).finally(() => client.end());
  }
}

// ---------------------------------------------------------------------------
// Durable floors: what one sync or one commit costs on its own, measured beside
// the protect() cases that must wait for one (BENCHMARKS.md, "Durable writes").
// ---------------------------------------------------------------------------

/**
 * The fsync floor's operation on a file of its own in `dir`: append a line of
 * `lineBytes` with write(2), then fdatasync(2) on libuv's thread pool.
 */
async function syncFloor(dir, lineBytes) {
  const { openSync, writeSync, fdatasync, closeSync } = await import("node:fs");
  const line = Buffer.from(`${"x".repeat(lineBytes - 1)}\n`);
  const fd = openSync(join(dir, "floor.log"), "a");
  return {
    op: () => {
      writeSync(fd, line);
      return new Promise((resolve, reject) => fdatasync(fd, (error) => (error ? reject(error) : resolve())));
    },
    close: () => closeSync(fd),
  };
}

/**
 * protect_durable_c1 and fsync_floor in one run, on one file system (the same
 * temporary folder), interleaved in blocks of `block` operations: on a shared
 * disk a burst of another process's I/O then lands in both, not in one, and
 * the ratio of their p50s compares like with like. The floor appends a line
 * as long as the log's average record line (write(2), then fdatasync(2) off
 * the event loop: the cheapest way a server may sync without stopping).
 */
export async function durableAndFloor(bundle, mix, { minMs = 6000, block = 1, warmupOps = 300 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "veto-bench-"));
  try {
    const log = await openFileLog(join(dir, "decisions.log"));
    const veto = await createVeto({ bundle, logger: silent, recordSink: log, clock: steppingClock() });
    const calls = mix.map((e) => e.call);
    let i = 0;
    for (let w = 0; w < warmupOps; w++) await veto.protect(calls[i++ % calls.length]);
    const lineBytes = Math.round(log.stats.bytes / Math.max(1, log.stats.records));
    const floor = await syncFloor(dir, lineBytes);
    const floorOp = floor.op;
    for (let w = 0; w < warmupOps; w++) await floorOp();
    const cap = 400_000;
    const a = new Float64Array(cap);
    const b = new Float64Array(cap);
    let na = 0;
    let nb = 0;
    let ta = 0n;
    let tb = 0n;
    const end = process.hrtime.bigint() + BigInt(minMs) * 1_000_000n;
    while (process.hrtime.bigint() < end && na + block <= cap) {
      const s0 = process.hrtime.bigint();
      for (let k = 0; k < block; k++) {
        const t0 = process.hrtime.bigint();
        await veto.protect(calls[i++ % calls.length]);
        a[na++] = Number(process.hrtime.bigint() - t0);
      }
      const s1 = process.hrtime.bigint();
      for (let k = 0; k < block; k++) {
        const t0 = process.hrtime.bigint();
        await floorOp();
        b[nb++] = Number(process.hrtime.bigint() - t0);
      }
      ta += s1 - s0;
      tb += process.hrtime.bigint() - s1;
    }
    await veto.close();
    const stats = log.stats;
    await log.close();
    floor.close();
    return {
      protect_durable_c1: { ...summarize(a, na, ta), records_per_fdatasync: round(stats.records / Math.max(1, stats.dataSyncs), 1) },
      fsync_floor: { ...summarize(b, nb, tb), line_bytes: lineBytes },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A diagnostic beside protect_durable_c1, not a target: what protect() costs
 * when, as on the durable path, every call starts after the process slept
 * through a sync. protect() on an in-memory sink, timed in alternating blocks
 * of `block` calls: back to back (the first of each block left out: it
 * follows a sync), and each call after an untimed append of a `lineBytes`
 * line and fdatasync on another file (what fsync_floor does). The ratio of
 * their p50s is how much a sync's sleep costs protect()'s CPU work on this
 * machine (caches, branch predictors and TLBs refilled): BENCHMARKS.md,
 * "protect_durable_c1 against fsync_floor".
 */
export async function protectAfterSync(bundle, mix, { minMs = 4000, block = 10, warmupOps = 300, lineBytes = 1386 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "veto-bench-"));
  try {
    const veto = await createVeto({ bundle, logger: silent, recordSink: new RingSink(), clock: steppingClock() });
    const calls = mix.map((e) => e.call);
    const floor = await syncFloor(dir, lineBytes);
    const floorOp = floor.op;
    let i = 0;
    for (let w = 0; w < warmupOps; w++) {
      await floorOp();
      await veto.protect(calls[i++ % calls.length]);
    }
    const cap = 200_000;
    const cold = new Float64Array(cap);
    const hot = new Float64Array(cap);
    let nc = 0;
    let nh = 0;
    let tc = 0n;
    let th = 0n;
    const end = process.hrtime.bigint() + BigInt(minMs) * 1_000_000n;
    while (process.hrtime.bigint() < end && nc + block <= cap) {
      for (let k = 0; k < block; k++) {
        const t0 = process.hrtime.bigint();
        await veto.protect(calls[i++ % calls.length]);
        const took = process.hrtime.bigint() - t0;
        if (k > 0) {
          hot[nh++] = Number(took);
          th += took;
        }
      }
      for (let k = 0; k < block; k++) {
        await floorOp();
        const t0 = process.hrtime.bigint();
        await veto.protect(calls[i++ % calls.length]);
        const took = process.hrtime.bigint() - t0;
        cold[nc++] = Number(took);
        tc += took;
      }
    }
    await veto.close();
    floor.close();
    const after = summarize(cold, nc, tc);
    const backToBack = summarize(hot, nh, th);
    return {
      ...after,
      back_to_back_p50_us: backToBack.p50_us,
      back_to_back_p99_us: backToBack.p99_us,
      back_to_back_n: backToBack.n,
      line_bytes: lineBytes,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One pg.Pool on a schema of its own with the floor's table: `id` and a small payload. */
async function floorPool(connectionString, max) {
  const pg = (await import("pg")).default;
  const schema = `veto_bench_floor_${process.pid}`;
  const pool = new pg.Pool({ connectionString, max });
  await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema};
    CREATE TABLE ${schema}.floor (id bigint PRIMARY KEY, at_ms bigint NOT NULL, note text NOT NULL)`);
  let id = 0;
  const insert = `INSERT INTO ${schema}.floor (id, at_ms, note) VALUES ($1, $2, $3)`;
  return {
    // One committed transaction doing one small insert: one round trip, one WAL flush.
    op: () => pool.query(insert, [++id, Date.now(), "allow"]),
    close: async () => {
      await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await pool.end();
    },
  };
}

/**
 * protect_postgres (c1) and pg_commit_floor in one run on one server,
 * interleaved in blocks as durableAndFloor does.
 */
export async function postgresAndFloor(bundle, mix, connectionString, { minMs = 6000, block = 50, warmupOps = 200 } = {}) {
  const schema = `veto_bench_${process.pid}`;
  const veto = await createVeto({
    bundle,
    logger: silent,
    clock: steppingClock(),
    store: postgres({ connectionString, schema, migrate: true, records: true }),
  });
  const floor = await floorPool(connectionString, 10);
  const calls = mix.map((e) => e.call);
  try {
    let i = 0;
    for (let w = 0; w < warmupOps; w++) {
      await veto.protect(calls[i++ % calls.length]);
      await floor.op();
    }
    const cap = 200_000;
    const a = new Float64Array(cap);
    const b = new Float64Array(cap);
    let na = 0;
    let nb = 0;
    let ta = 0n;
    let tb = 0n;
    const end = process.hrtime.bigint() + BigInt(minMs) * 1_000_000n;
    while (process.hrtime.bigint() < end && na + block <= cap) {
      const s0 = process.hrtime.bigint();
      for (let k = 0; k < block; k++) {
        const t0 = process.hrtime.bigint();
        await veto.protect(calls[i++ % calls.length]);
        a[na++] = Number(process.hrtime.bigint() - t0);
      }
      const s1 = process.hrtime.bigint();
      for (let k = 0; k < block; k++) {
        const t0 = process.hrtime.bigint();
        await floor.op();
        b[nb++] = Number(process.hrtime.bigint() - t0);
      }
      ta += s1 - s0;
      tb += process.hrtime.bigint() - s1;
    }
    return { protect_postgres: summarize(a, na, ta), pg_commit_floor: summarize(b, nb, tb) };
  } finally {
    await veto.close();
    await floor.close();
    await dropSchema(connectionString, schema);
  }
}

/** pg_commit_floor at `concurrency`: the floor's insert from that many callers on one pool of `max` connections. */
export async function pgCommitFloorConcurrent(connectionString, concurrency, opts = {}, max = 10) {
  const floor = await floorPool(connectionString, max);
  try {
    return { ...(await measureConcurrent([0], () => floor.op(), { concurrency, warmupMs: 1000, minMs: 4000, ...opts })), pool_max: max };
  } finally {
    await floor.close();
  }
}

/**
 * The deny count against the history it counts (migration 013): recent_denies
 * for a key with `small` denies in its window and for one with `large`, on one
 * schema, one connection, alternating call by call. Rows are inserted
 * directly (the table's trigger numbers them as it numbers the adapter's).
 */
export async function pgDenyCount(connectionString, { small = 10, large = 10_000, rounds = 3000 } = {}) {
  const pg = (await import("pg")).default;
  const { migrate } = await import("../dist/postgres.js");
  const schema = `veto_bench_count_${process.pid}`;
  await migrate({ connectionString, schema });
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    const now = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";
    for (const [actor, n] of [
      ["agent:small", small],
      ["agent:large", large],
    ]) {
      await client.query(
        `INSERT INTO ${schema}.decisions (id, action, escalated, actor_id, tenant_id, at_ms, approvers, counts_towards_escalation)
         SELECT $1 || g, 'deny', false, $1, 'acme', ${now} - $2::bigint + g, '{}', true FROM generate_series(1, $2::bigint) g`,
        [actor, n],
      );
    }
    await client.query(`ANALYZE ${schema}.decisions`);
    const count = { name: "veto_bench_count", text: `SELECT ${schema}.recent_denies($1, 'acme', ${now} - 900000) AS n` };
    const times = { small: new Float64Array(rounds), large: new Float64Array(rounds) };
    const seen = {};
    for (let r = -200; r < rounds; r++) {
      for (const key of r % 2 === 0 ? ["small", "large"] : ["large", "small"]) {
        const t0 = process.hrtime.bigint();
        const { rows } = await client.query(count, [`agent:${key}`]);
        const t = Number(process.hrtime.bigint() - t0);
        if (r >= 0) times[key][r] = t;
        seen[key] = Number(rows[0].n);
      }
    }
    if (seen.small !== small || seen.large !== large) throw new Error(`counted ${JSON.stringify(seen)}, expected ${small} and ${large}`);
    const p50 = (a) => round(Float64Array.from(a).sort()[a.length >> 1] / 1000);
    return { small_denies: small, large_denies: large, small_p50_us: p50(times.small), large_p50_us: p50(times.large) };
  } finally {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  }
}

async function dropSchema(connectionString, schema) {
  const pg = await import("pg");
  const client = new pg.default.Client({ connectionString });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).finally(() => client.end());
}
