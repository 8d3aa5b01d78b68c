/**
 * What the slow calls of the protect_memory loop are, in a process of its
 * own: `node [--expose-gc] bench/tail-point.mjs [CALLS] [BUNDLE]`. Each call
 * is timed by wall clock and by the process's CPU time, tagged with the mix
 * kind it came from and the verdict it got, and with whether a garbage
 * collection (perf_hooks gc entries) or a growth of the module's memory fell
 * inside it. Prints one JSON object: p50/p99 overall and per verdict kind
 * (by CPU time, which leaves out time the process was not running), what the
 * slowest 1% are made of, and scavenges per 10,000 calls.
 *
 * And whether the slow calls keep time with the kernel's timer tick: the
 * local timer interrupts this process's CPUs took per second while the loop
 * ran (/proc/interrupts, "LOC"; a busy CPU takes one per 1/CONFIG_HZ s), and
 * where in the tick period each call slower than 2 x the p50 of its verdict
 * (wall clock) fell: the share in the fullest twentieth of the period,
 * beside the 5% that chance gives (a periodic interruption puts them in one
 * narrow phase; the stretch is measured on performance.now()).
 */
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { PerformanceObserver, constants as perfConstants, performance } from "node:perf_hooks";
import { resolve } from "node:path";
import { pino } from "pino";
import { createVeto } from "../dist/index.js";
import { loadBundle } from "../dist/bundle.js";
import { RingSink, steppingClock } from "./cases.mjs";
import { round } from "./measure.mjs";
import { SEED, buildMix } from "./mix.mjs";

const N = Number(process.argv[2] ?? 60_000);
const bundle = resolve(process.argv[3] ?? resolve(import.meta.dirname, "../bundles/crm.tar.gz"));
const mix = buildMix((await loadBundle(bundle)).data, { seed: SEED, count: 2000 });
const veto = await createVeto({
  bundle,
  logger: pino({ level: "silent" }),
  recordSink: new RingSink(process.env.RING === undefined ? undefined : Number(process.env.RING)),
  clock: steppingClock(),
});

let i = 0;
for (let w = 0; w < 20_000; w++) {
  await veto.protect(mix[i].call);
  if (++i === mix.length) i = 0;
}

const gcs = [];
const observer = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcs.push({ start: e.startTime, end: e.startTime + e.duration, kind: e.detail?.kind ?? e.kind });
});
observer.observe({ entryTypes: ["gc"] });

/** Local timer interrupts so far, per CPU (null where /proc/interrupts cannot be read). */
const timerInterrupts = () => {
  try {
    const line = readFileSync("/proc/interrupts", "utf8")
      .split("\n")
      .find((l) => l.trimStart().startsWith("LOC:"));
    return line === undefined
      ? null
      : line
          .trim()
          .split(/\s+/)
          .slice(1)
          .filter((x) => /^\d+$/.test(x))
          .map(Number);
  } catch {
    return null;
  }
};

/** CONFIG_HZ of the running kernel (/proc/config.gz), or null. */
const kernelHz = () => {
  try {
    const m = /^CONFIG_HZ=(\d+)$/m.exec(gunzipSync(readFileSync("/proc/config.gz")).toString("utf8"));
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
};

const wall = new Float64Array(N);
const cpu = new Float64Array(N);
const startMs = new Float64Array(N);
const endMs = new Float64Array(N);
const tags = new Array(N);
const loc0 = timerInterrupts();
const loopStart = performance.now();
for (let n = 0; n < N; n++) {
  const e = mix[i];
  if (++i === mix.length) i = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const d = await veto.protect(e.call);
  const t1 = performance.now();
  const c1 = process.cpuUsage(c0);
  startMs[n] = t0;
  endMs[n] = t1;
  wall[n] = (t1 - t0) * 1000;
  cpu[n] = c1.user + c1.system;
  tags[n] = `${d.action}${d.escalated ? "+escalated" : ""}:${d.reasons[0]?.code ?? ""}`;
}
const loopMs = performance.now() - loopStart;
const loc1 = timerInterrupts();
await new Promise((r) => setTimeout(r, 200));
observer.disconnect();
await veto.close();

const pct = (arr, q) => {
  const s = Float64Array.from(arr).sort();
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const kindName = (k) =>
  k === perfConstants.NODE_PERFORMANCE_GC_MINOR
    ? "scavenge"
    : k === perfConstants.NODE_PERFORMANCE_GC_MAJOR
      ? "mark-compact"
      : k === perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL
        ? "incremental"
        : String(k);
// Which calls a collection fell in (gc entries and calls are both on performance.now()).
const inGc = new Uint8Array(N);
let g = 0;
const sortedGcs = gcs.sort((a, b) => a.start - b.start);
for (let n = 0; n < N; n++) {
  while (g < sortedGcs.length && sortedGcs[g].end < startMs[n]) g++;
  if (g < sortedGcs.length && sortedGcs[g].start <= endMs[n]) inGc[n] = 1;
}
const byMetric = (metric) => {
  const p50 = pct(metric, 0.5);
  const p99 = pct(metric, 0.99);
  const perTag = {};
  for (let n = 0; n < N; n++) (perTag[tags[n]] ??= []).push(metric[n]);
  const kinds = Object.entries(perTag)
    .map(([tag, xs]) => ({ tag, share_pct: round((100 * xs.length) / N, 2), p50_us: round(pct(xs, 0.5)), p99_us: round(pct(xs, 0.99)) }))
    .sort((a, b) => b.p50_us - a.p50_us);
  // The slowest 1%: which kinds, and how many had a collection inside.
  const order = Array.from({ length: N }, (_, n) => n).sort((a, b) => metric[b] - metric[a]);
  const slow = order.slice(0, Math.ceil(N / 100));
  const slowTags = {};
  let slowInGc = 0;
  for (const n of slow) {
    slowTags[tags[n]] = (slowTags[tags[n]] ?? 0) + 1;
    slowInGc += inGc[n];
  }
  return {
    p50_us: round(p50),
    p99_us: round(p99),
    p99_over_p50: round(p99 / p50),
    slowest_1pct_with_gc: slowInGc,
    slowest_1pct_by_verdict: slowTags,
    per_verdict: kinds,
  };
};
/**
 * The kernel's timer tick against the slow calls: ticks per second on the
 * busiest CPU while the loop ran, and how the slow calls' spacing fits it.
 */
const tick = (() => {
  const perCpu = loc0 !== null && loc1 !== null && loc0.length === loc1.length ? loc1.map((x, k) => x - (loc0[k] ?? 0)) : null;
  const ticksPerS = perCpu === null ? null : Math.max(...perCpu) / (loopMs / 1000);
  // The period: 1/CONFIG_HZ from the running kernel's configuration when it is readable, else the
  // usual HZ value nearest the measured rate (on a busy machine other timers add to that rate).
  const hz =
    kernelHz() ??
    (ticksPerS === null ? 250 : [100, 250, 300, 1000].reduce((a, b) => (Math.abs(b - ticksPerS) < Math.abs(a - ticksPerS) ? b : a)));
  const periodMs = 1000 / hz;
  // Slow for its kind: over 2 x the p50 of calls with the same verdict, so the mix's own spread
  // (some verdicts cost more in the policy) is left out.
  const byTag = {};
  for (let n = 0; n < N; n++) (byTag[tags[n]] ??= []).push(wall[n]);
  const tagP50 = Object.fromEntries(Object.entries(byTag).map(([tag, xs]) => [tag, pct(xs, 0.5)]));
  const p50 = pct(wall, 0.5);
  // Where in the tick period each slow call fell: a periodic interruption puts them in one
  // narrow phase, chance spreads them evenly. 20 bins of a period; the fullest bin's share.
  const bins = new Array(20).fill(0);
  let slow = 0;
  for (let n = 0; n < N; n++) {
    if (wall[n] <= 2 * (tagP50[tags[n]] ?? p50)) continue;
    slow += 1;
    const mid = startMs[n] + wall[n] / 2000;
    bins[Math.min(19, Math.floor(((mid % periodMs) / periodMs) * 20))] += 1;
  }
  return {
    timer_interrupts_per_s: ticksPerS === null ? null : round(ticksPerS, 0),
    kernel_hz: hz,
    tick_period_ms: round(periodMs, 2),
    calls_over_2x_their_verdicts_p50_pct: round((100 * slow) / N, 2),
    slow_in_one_twentieth_of_the_tick_pct: slow === 0 ? null : round((100 * Math.max(...bins)) / slow, 1),
    if_random_pct: 5,
    call_p50_over_tick_period_pct: round((100 * p50) / 1000 / periodMs, 2),
  };
})();
const gcKinds = {};
for (const e of gcs) gcKinds[kindName(e.kind)] = (gcKinds[kindName(e.kind)] ?? 0) + 1;
const scavengeMs = gcs.filter((e) => e.kind === perfConstants.NODE_PERFORMANCE_GC_MINOR).map((e) => e.end - e.start);
process.stdout.write(
  `${JSON.stringify(
    {
      calls: N,
      collections: gcKinds,
      scavenges_per_10k_calls: round(((gcKinds.scavenge ?? 0) * 10_000) / N, 1),
      scavenge_ms_p50: scavengeMs.length ? round(pct(scavengeMs, 0.5), 3) : null,
      calls_with_gc_inside: inGc.reduce((a, b) => a + b, 0),
      tick,
      cpu: byMetric(cpu),
      wall: byMetric(wall),
    },
    null,
    1,
  )}\n`,
);
