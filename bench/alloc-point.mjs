/**
 * Bytes allocated on the JavaScript heap per protect() (the protect_memory
 * setup: memory store, a ring sink, the stepping clock), in a process of its
 * own: `node --expose-gc --min-semi-space-size=64 --max-semi-space-size=64 bench/alloc-point.mjs [BUNDLE]`.
 * Prints one JSON line: {bytes_per_call, windows, calls_per_window, ...}.
 *
 * After a warm-up, each window starts from a full collection, runs
 * `calls_per_window` calls and reads the used heap again; with a 64 MB
 * semi-space no collection runs inside a window (each window checks that with
 * a gc PerformanceObserver and is dropped when one did), so the growth is what
 * the calls allocated: garbage and what the store keeps alike. The figure is
 * the median window's. WASM memory is not on this heap: the module's own
 * allocations are reset per evaluation.
 *
 * `node bench/alloc-point.mjs --cpu [BUNDLE]` (default heap settings) instead
 * times each call by the process's CPU time (process.cpuUsage: every thread,
 * garbage collection included) beside its wall time, and prints the p50 and
 * p99 of both: on a machine shared with other work the wall-clock tail is
 * mostly time the process was not running, which CPU time leaves out.
 */
import { PerformanceObserver } from "node:perf_hooks";
import { resolve } from "node:path";
import { getHeapStatistics } from "node:v8";
import { pino } from "pino";
import { createVeto } from "../dist/index.js";
import { loadBundle } from "../dist/bundle.js";
import { RingSink, steppingClock } from "./cases.mjs";
import { round } from "./measure.mjs";
import { SEED, buildMix } from "./mix.mjs";

const cpuMode = process.argv[2] === "--cpu";
const bundleArg = cpuMode ? process.argv[3] : process.argv[2];
if (!cpuMode && typeof globalThis.gc !== "function") throw new Error("run with --expose-gc");
const bundle = resolve(bundleArg ?? resolve(import.meta.dirname, "../bundles/crm.tar.gz"));
const mix = buildMix((await loadBundle(bundle)).data, { seed: SEED, count: 2000 });
const calls = mix.map((e) => e.call);
const veto = await createVeto({ bundle, logger: pino({ level: "silent" }), recordSink: new RingSink(), clock: steppingClock() });

let i = 0;
const next = () => {
  const call = calls[i];
  if (++i === calls.length) i = 0;
  return call;
};
for (let w = 0; w < 20_000; w++) await veto.protect(next());

if (cpuMode) {
  const N = 40_000;
  const wall = new Float64Array(N);
  const cpu = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await veto.protect(next());
    const t1 = process.hrtime.bigint();
    const c1 = process.cpuUsage(c0);
    wall[n] = Number(t1 - t0) / 1000;
    cpu[n] = c1.user + c1.system;
  }
  await veto.close();
  const at = (a, q) => a.sort()[Math.min(N - 1, Math.floor(q * N))];
  process.stdout.write(
    `${JSON.stringify({
      calls: N,
      wall_p50_us: round(at(wall, 0.5)),
      wall_p99_us: round(at(wall, 0.99)),
      cpu_p50_us: round(at(cpu, 0.5)),
      cpu_p99_us: round(at(cpu, 0.99)),
    })}\n`,
  );
  process.exit(0);
}

let collections = 0;
const observer = new PerformanceObserver((list) => (collections += list.getEntries().length));
observer.observe({ entryTypes: ["gc"] });

const CALLS = 2000;
const perCall = [];
let dropped = 0;
for (let window = 0; window < 15; window++) {
  globalThis.gc();
  await new Promise((r) => setTimeout(r, 5)); // let the observer report the collection above
  const seen = collections;
  const before = getHeapStatistics().used_heap_size;
  for (let n = 0; n < CALLS; n++) await veto.protect(next());
  const after = getHeapStatistics().used_heap_size;
  await new Promise((r) => setTimeout(r, 5));
  if (collections !== seen) {
    dropped += 1;
    continue;
  }
  perCall.push((after - before) / CALLS);
}
observer.disconnect();
await veto.close();
perCall.sort((a, b) => a - b);
process.stdout.write(
  `${JSON.stringify({
    bytes_per_call: perCall.length === 0 ? null : Math.round(perCall[Math.floor(perCall.length / 2)]),
    windows: perCall.length,
    windows_dropped_for_gc: dropped,
    calls_per_window: CALLS,
    min_bytes_per_call: perCall.length === 0 ? null : round(perCall[0], 0),
  })}\n`,
);
