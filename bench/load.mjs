/**
 * `make load`: several processes deciding on one PostgreSQL schema at once,
 * then every deny count checked (BENCHMARKS.md, "Load").
 *
 *   node bench/load.mjs [--workers 4] [--concurrency 64] [--seconds 60] [--tenants N]
 *
 * Each worker (bench/load-worker.mjs) is a process with its own createVeto()
 * on the PostgreSQL store with records in the same transaction (pool of 10),
 * calling protect() from `concurrency` loops over the benchmark mix for
 * `seconds`. Afterwards, in the chain's order, each decision's recorded
 * count of recent denies must equal the counted denies of its (actor,
 * tenant) in its window before it (docs/contract.md §3), each record must
 * have its row, the callers' verdicts must be those recorded, and the chain
 * must verify. Prints one JSON line and writes bench/load-results.json.
 *
 * Environment: VETO_BENCH_PG_URL, else the server of scripts/postgres.sh
 * (started when it is not running).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { resolve } from "node:path";
import pg from "pg";
import { migrate, verifyPostgresLog } from "../dist/postgres.js";
import { round } from "./measure.mjs";

const ROOT = resolve(import.meta.dirname, "..");
const args = process.argv.slice(2);
const opt = (name, fallback) => (args.includes(`--${name}`) ? Number(args[args.indexOf(`--${name}`) + 1]) : fallback);
const workers = opt("workers", 4);
const concurrency = opt("concurrency", 64);
const seconds = opt("seconds", 60);
const tenants = opt("tenants", 0);

function postgresUrl() {
  if (process.env.VETO_BENCH_PG_URL) return process.env.VETO_BENCH_PG_URL;
  const script = resolve(ROOT, "scripts/postgres.sh");
  const status = spawnSync("bash", [script, "status"], { encoding: "utf8" });
  if (status.stdout.trim() !== "running") {
    const started = spawnSync("bash", [script, "start"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
    if (started.status !== 0) throw new Error("scripts/postgres.sh start failed");
  }
  return readFileSync(resolve(ROOT, ".build/pg/url"), "utf8").trim();
}

const url = postgresUrl();
const schema = `veto_load_${process.pid}`;
await migrate({ connectionString: url, schema });
const admin = new pg.Pool({ connectionString: url, max: 2 });

function runWorker(index) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(
      process.execPath,
      [resolve(ROOT, "bench/load-worker.mjs"), url, schema, String(index), String(concurrency), String(seconds), String(tenants)],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    child.stdout.on("data", (c) => (out += c));
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code !== 0) reject(new Error(`load worker ${index} exited ${code}`));
      else resolvePromise(JSON.parse(out.trim().split("\n").pop()));
    });
  });
}

try {
  const started = Date.now();
  const results = await Promise.all(Array.from({ length: workers }, (_, i) => runWorker(i)));
  const wallS = (Date.now() - started) / 1000;

  // Exact counts, in chain order: for each key, the counted denies in the window before each decision.
  const { rows } = await admin.query(
    `SELECT r.seq, r.line, d.action, d.escalated, d.at_ms, d.counts_towards_escalation AS counts
       FROM "${schema}".records r LEFT JOIN "${schema}".decisions d ON d.id = r.decision_id
      WHERE r.type = 'decision' ORDER BY r.seq`,
  );
  const windowMs = results[0].window_ms;
  const denies = new Map();
  const problems = [];
  const verdicts = new Map();
  for (const row of rows) {
    const line = JSON.parse(row.line);
    const key = JSON.stringify([line.actor_id, line.tenant_id]);
    const atMs = Number(row.at_ms);
    if (row.action === null) {
      problems.push(`seq ${row.seq}: no decision row`);
      continue;
    }
    if (row.action !== line.result.action || row.escalated !== line.result.escalated)
      problems.push(`seq ${row.seq}: row and record differ`);
    verdicts.set(line.decision_id, `${line.result.action}/${line.result.escalated}`);
    if (line.history !== null) {
      const list = denies.get(key) ?? [];
      const inWindow = list.filter((t) => t >= atMs - windowMs).length;
      if (line.history.recent_denies !== inWindow) {
        problems.push(`seq ${row.seq} ${key}: recorded ${line.history.recent_denies} recent denies, ${inWindow} before it`);
      }
    }
    if (row.action === "deny" && row.counts) {
      const list = denies.get(key) ?? [];
      list.push(atMs);
      denies.set(key, list);
    }
  }
  let heardDiffers = 0;
  let heard = 0;
  for (const r of results) {
    for (const [id, verdict] of r.sample) {
      heard += 1;
      if (verdicts.get(id) !== verdict) heardDiffers += 1;
    }
  }
  if (heardDiffers > 0) problems.push(`${heardDiffers} of ${heard} sampled decisions were heard otherwise than recorded`);
  const decided = results.reduce((n, r) => n + r.decisions, 0);
  const acknowledged = results.reduce((n, r) => n + r.decisions_total, 0);
  if (acknowledged !== rows.length) problems.push(`${acknowledged} decisions acknowledged (with the warm-up), ${rows.length} records`);
  const verify = await verifyPostgresLog({ connectionString: url, schema });
  if (!verify.ok) problems.push(`chain: ${verify.reason}`);

  const latencies = Float64Array.from(results.flatMap((r) => r.latencies_us)).sort();
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  const measuredS = Math.max(...results.map((r) => r.seconds));
  const summary = {
    workers,
    concurrency_per_worker: concurrency,
    seconds,
    tenants: tenants || "benchmark mix",
    decisions: decided,
    decisions_per_s: Math.round(decided / measuredS),
    p50_us: round(at(0.5)),
    p99_us: round(at(0.99)),
    record_unavailable: results.reduce((n, r) => n + r.record_unavailable, 0),
    denies: results.reduce((n, r) => n + r.denies, 0),
    escalated: results.reduce((n, r) => n + r.escalated, 0),
    keys: denies.size,
    counts_checked: rows.length,
    exact: problems.length === 0,
    problems: problems.slice(0, 10),
    wall_s: round(wallS, 1),
    machine: { node: process.version, cpus: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`, date: new Date().toISOString() },
  };
  if (!existsSync(resolve(ROOT, "bench"))) throw new Error("run from the repository");
  if (!args.includes("--no-write")) writeFileSync(resolve(ROOT, "bench/load-results.json"), `${JSON.stringify(summary, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  if (problems.length > 0) process.exitCode = 1;
} finally {
  if (!args.includes("--keep")) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
  else process.stderr.write(`kept schema ${schema}\n`);
  await admin.end();
}
