/**
 * `make bench`: every case in one run on this machine, results to
 * bench/results.json and a table on the terminal. See BENCHMARKS.md.
 *
 *   node bench/run.mjs [--quick] [--only case,case]
 *
 * Environment: VETO_BENCH_PG_URL, a PostgreSQL URL for the protect_postgres
 * and approval_api cases; without it the throwaway server of scripts/postgres.sh is used
 * (started, and stopped afterwards, when it is not running: it installs
 * PostgreSQL from Debian's packages when missing). VETO_BENCH_PG=skip skips
 * those cases.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { loadBundle } from "../dist/bundle.js";
import {
  approvalApi,
  durableAndFloor,
  opaGoEval,
  pgCommitFloorConcurrent,
  pgDenyCount,
  postgresAndFloor,
  protectAfterSync,
  opaServerHttp,
  protectDurable,
  protectMemory,
  protectPostgres,
  wasmEvaluate,
  wasmEvaluatePreserialized,
} from "./cases.mjs";
import { mcpDirect, mcpProxied } from "./mcp.mjs";
import { round } from "./measure.mjs";
import { SEED, buildMix, dataWithTenants, policyInput } from "./mix.mjs";

const ROOT = resolve(import.meta.dirname, "..");
const BUNDLE = resolve(ROOT, "bundles/crm.tar.gz");
// The bundle as committed before the policy was made cheaper (bench/baseline/README.md).
const BASELINE_BUNDLE = resolve(ROOT, "bench/baseline/crm.tar.gz");
const REGO_BUNDLE = resolve(ROOT, "bundles/crm-rego.tar.gz");
const OPA = resolve(ROOT, ".tools/bin/opa");
const OUT = resolve(ROOT, "bench/results.json");
/** bench/alloc-point.mjs on the adapter before the allocation work (commit 2931348), for the before/after figure. */
const ALLOC_BEFORE_BYTES_PER_CALL = 19_641;

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const onlyArg = args[args.indexOf("--only") + 1];
const only = args.includes("--only") && onlyArg !== undefined ? new Set(onlyArg.split(",")) : null;
const want = (name) => only === null || only.has(name);
const opts = (o = {}) => (quick ? { ...o, minMs: 500, minOps: 2000 } : o);

const loaded = await loadBundle(BUNDLE);
const baseline = await loadBundle(BASELINE_BUNDLE);
const mix = buildMix(loaded.data, { seed: SEED, count: 2000 });
const kinds = {};
for (const e of mix) kinds[e.kind] = (kinds[e.kind] ?? 0) + 1;

const results = {};
const log = (msg) => process.stderr.write(`bench: ${msg}\n`);
const run = async (name, fn) => {
  if (!want(name)) return;
  log(`${name} ...`);
  try {
    results[name] = await fn();
  } catch (error) {
    log(`${name} FAILED: ${error instanceof Error ? error.stack : String(error)}`);
    results[name] = { error: String(error instanceof Error ? error.message : error) };
  }
};

// The Python adapter (adapter/python) on the same bundle and mix, in its own process: its compiled
// build (the wheel of adapter/python/hatch_build.py, unpacked in .build/pyc by make python-compiled)
// for the target, in the rounds beside protect_memory, and the pure Python build once after them
// (a diagnostic: what compiling bought).
const PYTHON = resolve(ROOT, ".build/venv/bin/python");
const COMPILED_PYTHON = resolve(ROOT, ".build/pyc");
const hasPython = existsSync(PYTHON);
if (!hasPython && want("python_protect_memory")) log(`${PYTHON} missing (make python): python_protect_memory skipped`);
/**
 * Run a script of bench/ with .build/venv's Python: `files` (name: value) written as JSON in a
 * folder of its own and passed first, then `args`; PYTHONPATH is `pythonPath` or none (the pure
 * build). Returns its last line of output, parsed.
 */
const pythonJson = (script, files, args, pythonPath) => {
  const dir = mkdtempSync(join(tmpdir(), "veto-bench-py-"));
  try {
    const paths = Object.entries(files).map(([name, value]) => {
      const path = join(dir, name);
      writeFileSync(path, JSON.stringify(value));
      return path;
    });
    const env = { ...process.env };
    delete env.PYTHONPATH;
    if (pythonPath !== undefined) env.PYTHONPATH = pythonPath;
    const child = spawnSync(PYTHON, [resolve(ROOT, script), ...paths, ...args], {
      encoding: "utf8",
      maxBuffer: 1 << 20,
      stdio: ["ignore", "pipe", "inherit"],
      env,
    });
    if (child.status !== 0) throw new Error(`${script} exited ${child.status}`);
    return JSON.parse(child.stdout.trim().split("\n").pop());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};
const pythonProtect = (build) => {
  if (build === "compiled" && !existsSync(join(COMPILED_PYTHON, ".stamp")))
    throw new Error(`${COMPILED_PYTHON} missing (make python-compiled)`);
  const result = pythonJson(
    "bench/python_protect.py",
    { "mix.json": mix.map((e) => e.call) },
    [BUNDLE, quick ? "500" : "3000", quick ? "2000" : "20000"],
    build === "compiled" ? COMPILED_PYTHON : undefined,
  );
  if (result.build !== build) throw new Error(`bench/python_protect.py ran the ${result.build} build, not the ${build} one`);
  // The same bundle and mix must give the same verdicts in both adapters.
  const ts = rounds.protect_memory[0]?.verdicts_per_pass;
  return {
    ...result,
    same_verdicts_as_protect_memory: ts === undefined ? null : JSON.stringify(ts) === JSON.stringify(result.verdicts_per_pass),
  };
};

// The floor and protect_memory alternate, three rounds each, and each reports its median round:
// on a shared machine a burst of other work then lands in one round of one case, not in a
// whole case, and the ratio of the two compares like with like.
const rounds = {
  wasm_evaluate: [],
  wasm_evaluate_preserialized: [],
  protect_memory: [],
  protect_memory_shadow: [],
  wasm_evaluate_baseline: [],
  python_protect_memory: [],
};
for (let r = 0; r < 3; r++) {
  // --- policy cost: the baseline bundle's module on the same data and mix, in the same rounds.
  await run(
    "wasm_evaluate_baseline",
    async () => (rounds.wasm_evaluate_baseline[r] = await wasmEvaluate(baseline.wasm, loaded.data, mix, opts({ minMs: 1500 }))),
  );
  // --- end policy cost
  await run(
    "wasm_evaluate",
    async () => (rounds.wasm_evaluate[r] = await wasmEvaluate(loaded.wasm, loaded.data, mix, opts({ minMs: 1500 }))),
  );
  await run(
    "wasm_evaluate_preserialized",
    async () =>
      (rounds.wasm_evaluate_preserialized[r] = await wasmEvaluatePreserialized(loaded.wasm, loaded.data, mix, opts({ minMs: 1000 }))),
  );
  await run(
    "protect_memory",
    async () => (rounds.protect_memory[r] = await protectMemory(BUNDLE, mix, opts({ minMs: 1500, minOps: 20_000 }))),
  );
  // Shadow mode's cost: the same bundle again as the candidate, one more evaluation per call.
  await run(
    "protect_memory_shadow",
    async () =>
      (rounds.protect_memory_shadow[r] = await protectMemory(BUNDLE, mix, opts({ minMs: 1500, minOps: 20_000 }), {
        shadow: { bundle: BUNDLE },
      })),
  );
  if (hasPython) await run("python_protect_memory", () => (rounds.python_protect_memory[r] = pythonProtect("compiled")));
}
for (const [name, list] of Object.entries(rounds)) {
  const done = list.filter((x) => x !== undefined && x.error === undefined);
  if (done.length === 0) continue;
  const median = [...done].sort((a, b) => a.p50_us - b.p50_us)[Math.floor(done.length / 2)];
  results[name] = { ...median, rounds_p50_us: done.map((x) => x.p50_us) };
}
// --- allocation: bytes allocated per protect() (bench/alloc-point.mjs, a process of its own).
await run("protect_memory_alloc", () => {
  const child = spawnSync(
    process.execPath,
    ["--expose-gc", "--min-semi-space-size=64", "--max-semi-space-size=64", resolve(ROOT, "bench/alloc-point.mjs"), BUNDLE],
    { encoding: "utf8", maxBuffer: 1 << 20, stdio: ["ignore", "pipe", "inherit"] },
  );
  if (child.status !== 0) throw new Error(`bench/alloc-point.mjs exited ${child.status}`);
  // Measured the same way on the adapter as it stood before the allocation work (BENCHMARKS.md).
  return { ...JSON.parse(child.stdout.trim().split("\n").pop()), before_bytes_per_call: ALLOC_BEFORE_BYTES_PER_CALL };
});
// The same calls timed by CPU time as well as wall time (a diagnostic of the tail on a shared machine).
await run("protect_memory_cpu", () => {
  const child = spawnSync(process.execPath, [resolve(ROOT, "bench/alloc-point.mjs"), "--cpu", BUNDLE], {
    encoding: "utf8",
    maxBuffer: 1 << 20,
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (child.status !== 0) throw new Error(`bench/alloc-point.mjs --cpu exited ${child.status}`);
  return JSON.parse(child.stdout.trim().split("\n").pop());
});
// What the slowest calls are and whether they keep time with the kernel's timer tick
// (bench/tail-point.mjs, a process of its own; a diagnostic, not a target).
await run("protect_memory_tail", () => {
  const child = spawnSync(process.execPath, [resolve(ROOT, "bench/tail-point.mjs"), quick ? "20000" : "60000", BUNDLE], {
    encoding: "utf8",
    maxBuffer: 4 << 20,
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (child.status !== 0) throw new Error(`bench/tail-point.mjs exited ${child.status}`);
  const out = JSON.parse(child.stdout);
  return {
    calls: out.calls,
    wall_p50_us: out.wall.p50_us,
    wall_p99_us: out.wall.p99_us,
    wall_p99_over_p50: out.wall.p99_over_p50,
    cpu_p99_over_p50: out.cpu.p99_over_p50,
    slowest_1pct_with_gc: out.wall.slowest_1pct_with_gc,
    collections: out.collections,
    ...out.tick,
  };
});
if (results.protect_memory !== undefined && results.protect_memory_alloc?.bytes_per_call !== undefined) {
  results.protect_memory.bytes_per_call = results.protect_memory_alloc.bytes_per_call;
}
// --- end allocation

// ---- Durable floors (file log): protect_durable_c1 beside fsync_floor, interleaved in one run.
if (want("protect_durable_c1") || want("fsync_floor")) {
  log("protect_durable_c1 + fsync_floor ...");
  try {
    Object.assign(results, await durableAndFloor(BUNDLE, mix, quick ? { minMs: 2000 } : {}));
  } catch (error) {
    log(`protect_durable_c1 + fsync_floor FAILED: ${error instanceof Error ? error.stack : String(error)}`);
    results.protect_durable_c1 = results.fsync_floor = { error: String(error instanceof Error ? error.message : error) };
  }
}
// A diagnostic, not a target: protect() on an in-memory sink after a floor-sized sync, against back to back.
await run("protect_memory_after_sync", () =>
  protectAfterSync(BUNDLE, mix, {
    ...(quick ? { minMs: 1500 } : {}),
    ...(typeof results.fsync_floor?.line_bytes === "number" ? { lineBytes: results.fsync_floor.line_bytes } : {}),
  }),
);
// ---- end of durable floors (file log)
await run("protect_durable_c64", () => protectDurable(BUNDLE, mix, 64, quick ? { minMs: 1500 } : {}));
// The same with the 1,000-tenant document: ~3,000 (actor, tenant) keys instead of ~56, of which 3
// carry 59% of the calls above. Calls of one key run one after another (exact deny counts), so
// key diversity, not the log, sets how many records share an fdatasync.
const manyTenants = dataWithTenants(loaded.data, 1000);
await run("protect_durable_c64_1000_tenants", () =>
  protectDurable(BUNDLE, buildMix(manyTenants, { seed: SEED, count: 4000 }), 64, quick ? { minMs: 1500 } : {}, { data: manyTenants }),
);

const PG_CASES = [
  "protect_postgres",
  "pg_commit_floor",
  "protect_postgres_c64",
  "protect_postgres_c64_1000_tenants",
  "pg_commit_floor_c64",
  "approval_api",
  "pg_deny_count",
];
const pgUrl = PG_CASES.some(want) ? postgresUrl() : { url: null, why: "not selected" };
if (pgUrl.url !== null) {
  // ---- Durable floors (PostgreSQL): protect_postgres beside pg_commit_floor (c1, interleaved in one
  // run), then at concurrency 64 (the floor on a pool as large as the store's default, 10).
  if (want("protect_postgres") || want("pg_commit_floor")) {
    log("protect_postgres + pg_commit_floor ...");
    try {
      Object.assign(results, await postgresAndFloor(BUNDLE, mix, pgUrl.url, quick ? { minMs: 2000 } : {}));
    } catch (error) {
      log(`protect_postgres + pg_commit_floor FAILED: ${error instanceof Error ? error.stack : String(error)}`);
      results.protect_postgres = results.pg_commit_floor = { error: String(error instanceof Error ? error.message : error) };
    }
  }
  await run("pg_commit_floor_c64", () => pgCommitFloorConcurrent(pgUrl.url, 64, quick ? { minMs: 1500 } : {}));
  await run("protect_postgres_c64_1000_tenants", () =>
    protectPostgres(BUNDLE, buildMix(manyTenants, { seed: SEED, count: 4000 }), pgUrl.url, 64, quick ? { minMs: 1500 } : {}, {
      data: manyTenants,
    }),
  );
  // ---- end of durable floors (PostgreSQL)
  await run("protect_postgres_c64", () => protectPostgres(BUNDLE, mix, pgUrl.url, 64, quick ? { minMs: 1000 } : {}));
  await run("pg_deny_count", () => pgDenyCount(pgUrl.url, quick ? { rounds: 500 } : {}));
  await run("approval_api", () => approvalApi(BUNDLE, mix, pgUrl.url, quick ? { maxOps: 300, warmupOps: 30 } : {}));
  if (pgUrl.stop) spawnSync("bash", [resolve(ROOT, "scripts/postgres.sh"), "stop"], { stdio: "ignore" });
} else if (PG_CASES.some(want)) {
  log(`${PG_CASES.join(", ")} skipped: ${pgUrl.why}`);
}

if (hasPython) await run("python_protect_memory_pure", () => pythonProtect("pure"));

// A diagnostic beside the policy-cost target: the WebAssembly instructions each module executes per
// decision on the mix (wasmtime's fuel, bench/wasm_fuel.py): the same count on every run and machine.
if (hasPython) {
  await run("wasm_fuel", () => {
    // The pure Python build: the script swaps the evaluator's engine and stores for counting ones.
    const { bundles, same_verdicts } = pythonJson(
      "bench/wasm_fuel.py",
      { "mix.json": mix.map((e) => ({ kind: e.kind, input: policyInput(e) })), "data.json": loaded.data },
      [BASELINE_BUNDLE, BUNDLE],
    );
    const shipped = bundles[BUNDLE];
    const base = bundles[BASELINE_BUNDLE];
    return {
      fuel_per_eval: shipped.fuel_per_eval,
      baseline_fuel_per_eval: base.fuel_per_eval,
      by_kind: Object.fromEntries(
        Object.keys(shipped.fuel_per_eval_by_kind).map((k) => [
          k,
          { fuel_per_eval: shipped.fuel_per_eval_by_kind[k], baseline_fuel_per_eval: base.fuel_per_eval_by_kind[k] },
        ]),
      ),
      same_verdicts,
    };
  });
}

if (!existsSync(OPA)) {
  log(`${OPA} missing (make tools): OPA cases skipped`);
} else {
  await run("opa_go_eval", () => opaGoEval(OPA, REGO_BUNDLE, mix));
  await run("opa_server_http", () => opaServerHttp(OPA, REGO_BUNDLE, mix, quick ? { minMs: 1000, minOps: 1000 } : {}));
}

// The MCP proxy's overhead per tools/call: the same calls straight to an upstream and through the proxy.
await run("mcp_direct", () => mcpDirect(quick ? { minMs: 1000, minOps: 500 } : {}));
await run("mcp_proxied", () => mcpProxied(BUNDLE, quick ? { minMs: 1000, minOps: 500 } : {}));

const scaling = [];
if (want("scaling")) {
  const points = [
    ["tenants", 10],
    ["tenants", 1000],
    ["tenants", 100_000],
    ["arg_bytes", 1024],
    ["arg_bytes", 16 * 1024],
    ["arg_bytes", 256 * 1024],
  ];
  for (const [kind, value] of points) {
    log(`scaling ${kind}=${value} ...`);
    const child = spawnSync(process.execPath, ["--expose-gc", resolve(ROOT, "bench/scale-point.mjs"), kind, String(value)], {
      encoding: "utf8",
      maxBuffer: 1 << 20,
      stdio: ["ignore", "pipe", "inherit"],
    });
    if (child.status !== 0) {
      scaling.push({ [kind]: value, error: `exit ${child.status}` });
      continue;
    }
    scaling.push(JSON.parse(child.stdout.trim().split("\n").pop()));
  }
}

const p50 = (name) => results[name]?.p50_us;
const point = (kind, value) => scaling.find((s) => s[kind] === value);
const ratio = (a, b) => (typeof a === "number" && typeof b === "number" && b > 0 ? round(a / b, 2) : null);
const ratios = {
  protect_memory_over_wasm_evaluate_p50: ratio(p50("protect_memory"), p50("wasm_evaluate")),
  protect_memory_shadow_over_protect_memory_p50: ratio(p50("protect_memory_shadow"), p50("protect_memory")),
  opa_server_http_over_protect_memory_p50: ratio(p50("opa_server_http"), p50("protect_memory")),
  opa_go_eval_over_protect_memory_p50: ratio(p50("opa_go_eval"), p50("protect_memory")),
  python_protect_memory_over_protect_memory_p50: ratio(p50("python_protect_memory"), p50("protect_memory")),
  // A diagnostic: the pure Python build against the same protect_memory (the target is the compiled build's).
  python_protect_memory_pure_over_protect_memory_p50: ratio(p50("python_protect_memory_pure"), p50("protect_memory")),
  // --- policy cost and tail
  wasm_evaluate_over_wasm_evaluate_baseline_p50: ratio(p50("wasm_evaluate"), p50("wasm_evaluate_baseline")),
  // A diagnostic of that target: the modules' instructions per decision, a count rather than a time.
  wasm_fuel_over_baseline: ratio(results.wasm_fuel?.fuel_per_eval, results.wasm_fuel?.baseline_fuel_per_eval),
  protect_memory_p99_over_p50: ratio(results.protect_memory?.p99_us, p50("protect_memory")),
  protect_memory_p99_over_wasm_evaluate_baseline_p50: ratio(results.protect_memory?.p99_us, p50("wasm_evaluate_baseline")),
  protect_memory_over_wasm_evaluate_baseline_p50: ratio(p50("protect_memory"), p50("wasm_evaluate_baseline")),
  // --- end policy cost and tail
  tenants_100000_over_10_p50: ratio(point("tenants", 100_000)?.p50_us, point("tenants", 10)?.p50_us),
  // Durable floors: what protect() costs beyond the one sync or commit it must wait for.
  protect_durable_c1_over_fsync_floor_p50: ratio(p50("protect_durable_c1"), p50("fsync_floor")),
  // Diagnostics of that ratio: the durable path's time above the floor, and what a sync's sleep does to protect()'s CPU work.
  protect_durable_c1_minus_fsync_floor_p50_us:
    typeof p50("protect_durable_c1") === "number" && typeof p50("fsync_floor") === "number"
      ? round(p50("protect_durable_c1") - p50("fsync_floor"))
      : null,
  protect_memory_after_sync_over_back_to_back_p50: ratio(
    p50("protect_memory_after_sync"),
    results.protect_memory_after_sync?.back_to_back_p50_us,
  ),
  protect_postgres_over_pg_commit_floor_p50: ratio(p50("protect_postgres"), p50("pg_commit_floor")),
  protect_postgres_c64_1000_tenants_over_pg_commit_floor_c64_ops: ratio(
    results.protect_postgres_c64_1000_tenants?.ops_per_s,
    results.pg_commit_floor_c64?.ops_per_s,
  ),
  // A diagnostic: the deny count's cost does not grow with the key's history.
  pg_deny_count_large_over_small_p50: ratio(results.pg_deny_count?.large_p50_us, results.pg_deny_count?.small_p50_us),
  mcp_proxy_overhead_p50_us:
    typeof p50("mcp_proxied") === "number" && typeof p50("mcp_direct") === "number" ? round(p50("mcp_proxied") - p50("mcp_direct")) : null,
  mcp_proxy_overhead_p99_us:
    typeof results.mcp_proxied?.p99_us === "number" && typeof results.mcp_direct?.p99_us === "number"
      ? round(results.mcp_proxied.p99_us - results.mcp_direct.p99_us)
      : null,
};

const targets = [
  // --- policy cost and tail (the baseline bundle is the yardstick: bench/baseline/README.md)
  [
    "wasm_evaluate p50 <= 0.6 x wasm_evaluate_baseline p50",
    ratios.wasm_evaluate_over_wasm_evaluate_baseline_p50,
    (v) => v <= 0.6,
    (v) => `${v}x`,
  ],
  ["protect_memory p99 <= 2 x its p50", ratios.protect_memory_p99_over_p50, (v) => v <= 2, (v) => `${v}x`],
  [
    "protect_memory p99 <= 2.3 x wasm_evaluate_baseline p50",
    ratios.protect_memory_p99_over_wasm_evaluate_baseline_p50,
    (v) => v <= 2.3,
    (v) => `${v}x`,
  ],
  [
    "protect_memory p50 <= 1.5 x wasm_evaluate_baseline p50",
    ratios.protect_memory_over_wasm_evaluate_baseline_p50,
    (v) => v <= 1.5,
    (v) => `${v}x`,
  ],
  [
    "python_protect_memory p50 <= 2 x protect_memory p50",
    ratios.python_protect_memory_over_protect_memory_p50,
    (v) => v <= 2,
    (v) => `${v}x`,
  ],
  // --- end policy cost and tail
  [
    "protect_memory >= 10x faster than opa_server_http (p50)",
    ratios.opa_server_http_over_protect_memory_p50,
    (v) => v >= 10,
    (v) => `${v}x`,
  ],
  ["protect_memory no slower than opa_go_eval (p50)", ratios.opa_go_eval_over_protect_memory_p50, (v) => v >= 1, (v) => `${v}x`],
  ["protect_durable_c64 >= 5,000/s", results.protect_durable_c64?.ops_per_s, (v) => v >= 5000, (v) => `${v}/s`],
  // Durable floors (file log, PostgreSQL).
  ["protect_durable_c1 p50 <= 1.3 x fsync_floor p50", ratios.protect_durable_c1_over_fsync_floor_p50, (v) => v <= 1.3, (v) => `${v}x`],
  ["protect_postgres p50 <= 1.5 x pg_commit_floor p50", ratios.protect_postgres_over_pg_commit_floor_p50, (v) => v <= 1.5, (v) => `${v}x`],
  [
    "protect_postgres_c64_1000_tenants >= 50% of pg_commit_floor_c64 (ops/s)",
    ratios.protect_postgres_c64_1000_tenants_over_pg_commit_floor_c64_ops,
    (v) => v >= 0.5,
    (v) => `${Math.round(v * 100)}%`,
  ],
  ["100k tenants: load < 1 s", point("tenants", 100_000)?.load_ms, (v) => v < 1000, (v) => `${v} ms`],
  ["100k tenants: RSS < 300 MB", point("tenants", 100_000)?.rss_mb, (v) => v < 300, (v) => `${v} MB`],
  ["100k tenants: p50 <= 1.2 x 10 tenants", ratios.tenants_100000_over_10_p50, (v) => v <= 1.2, (v) => `${v}x`],
].map(([target, value, ok, show]) => ({
  target,
  value: value ?? null,
  met: typeof value === "number" ? ok(value) : null,
  shown: typeof value === "number" ? show(value) : "n/a",
}));

const machine = {
  node: process.version,
  cpus: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`,
  memory_gb: round(totalmem() / 2 ** 30, 1),
  opa: existsSync(OPA) ? execFileSync(OPA, ["version"], { encoding: "utf8" }).split("\n")[0] : null,
  date: new Date().toISOString(),
  quick,
};
const output = {
  machine,
  mix: { seed: SEED, calls: mix.length, kinds },
  results,
  scaling,
  ratios,
  targets: Object.fromEntries(targets.map((t) => [t.target, { value: t.value, met: t.met }])),
};
if (only === null) writeFileSync(OUT, `${JSON.stringify(output, null, 2)}\n`);
else log(`--only given: ${OUT} not written`);

// The table.
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const lines = [];
lines.push(`${pad("case", 28)}${lpad("p50 us", 10)}${lpad("p99 us", 10)}${lpad("ops/s", 10)}`);
for (const [name, r] of Object.entries(results)) {
  if (r.error !== undefined) lines.push(`${pad(name, 28)}  error: ${r.error}`);
  else if (r.cpu_p50_us !== undefined)
    lines.push(`${pad(name, 28)}${lpad(r.cpu_p50_us, 10)}${lpad(r.cpu_p99_us, 10)}  (CPU time; wall ${r.wall_p50_us} / ${r.wall_p99_us})`);
  else if (r.slow_in_one_twentieth_of_the_tick_pct !== undefined)
    lines.push(
      `${pad(name, 28)}${lpad(r.wall_p50_us, 10)}${lpad(r.wall_p99_us, 10)}  (${r.calls_over_2x_their_verdicts_p50_pct}% of calls over 2 x their verdict's p50; ` +
        `${r.slow_in_one_twentieth_of_the_tick_pct}% of them in one twentieth of the ${r.tick_period_ms} ms tick, ${r.if_random_pct}% by chance)`,
    );
  else if (r.bytes_per_call !== undefined && r.p50_us === undefined)
    lines.push(`${pad(name, 28)}  ${r.bytes_per_call} bytes/call (before: ${r.before_bytes_per_call})`);
  else if (r.baseline_fuel_per_eval !== undefined)
    lines.push(
      `${pad(name, 28)}  ${r.fuel_per_eval} instructions/decision (baseline ${r.baseline_fuel_per_eval}; same verdicts: ${r.same_verdicts})`,
    );
  else if (r.large_denies !== undefined)
    lines.push(
      `${pad(name, 28)}  p50 ${r.small_p50_us} us at ${r.small_denies} denies, ${r.large_p50_us} us at ${r.large_denies} (one key's window)`,
    );
  else if (r.back_to_back_p50_us !== undefined)
    lines.push(
      `${pad(name, 28)}${lpad(r.p50_us, 10)}${lpad(r.p99_us, 10)}  (back to back: ${r.back_to_back_p50_us} / ${r.back_to_back_p99_us})`,
    );
  else lines.push(`${pad(name, 28)}${lpad(r.p50_us, 10)}${lpad(r.p99_us, 10)}${lpad(r.ops_per_s, 10)}`);
}
if (scaling.length > 0) {
  lines.push("");
  lines.push(`${pad("scaling", 28)}${lpad("load ms", 10)}${lpad("rss MB", 10)}${lpad("p50 us", 10)}`);
  for (const s of scaling) {
    const label = s.tenants !== undefined ? `tenants=${s.tenants}` : `arg_bytes=${s.arg_bytes}`;
    lines.push(
      s.error !== undefined
        ? `${pad(label, 28)}  error: ${s.error}`
        : `${pad(label, 28)}${lpad(s.load_ms, 10)}${lpad(s.rss_mb, 10)}${lpad(s.p50_us, 10)}`,
    );
  }
}
lines.push("");
if (ratios.protect_memory_after_sync_over_back_to_back_p50 !== null) {
  lines.push(
    `protect_memory after a sync / back to back (p50): ${ratios.protect_memory_after_sync_over_back_to_back_p50}x; protect_durable_c1 - fsync_floor (p50): ${ratios.protect_durable_c1_minus_fsync_floor_p50_us ?? "n/a"} us`,
  );
  lines.push("");
}
for (const t of targets) lines.push(`${t.met === null ? "  n/a " : t.met ? "  met " : "MISSED"}  ${pad(t.target, 58)} ${t.shown}`);
process.stdout.write(`${lines.join("\n")}\n`);

function postgresUrl() {
  if (process.env.VETO_BENCH_PG === "skip") return { url: null, why: "VETO_BENCH_PG=skip" };
  if (process.env.VETO_BENCH_PG_URL) return { url: process.env.VETO_BENCH_PG_URL, stop: false };
  const script = resolve(ROOT, "scripts/postgres.sh");
  const status = spawnSync("bash", [script, "status"], { encoding: "utf8" });
  if (status.stdout.trim() === "running") {
    return { url: readFileSync(resolve(ROOT, ".build/pg/url"), "utf8").trim(), stop: false };
  }
  const started = spawnSync("bash", [script, "start"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  if (started.status === 0) return { url: started.stdout.trim().split("\n").pop(), stop: true };
  return { url: null, why: "scripts/postgres.sh start failed" };
}
