/**
 * Timing helpers. Every operation is timed on its own with
 * process.hrtime.bigint() (about 0.1 µs of overhead per sample); throughput
 * is operations over the wall time of the measured phase.
 */

export function summarize(samplesNs, count, elapsedNs) {
  const sorted = Float64Array.from(samplesNs.subarray(0, count)).sort();
  const at = (q) => sorted[Math.min(count - 1, Math.floor(q * count))] ?? 0;
  return {
    p50_us: round(at(0.5) / 1000),
    p99_us: round(at(0.99) / 1000),
    ops_per_s: Math.round(count / (Number(elapsedNs) / 1e9)),
    n: count,
  };
}

export function round(x, digits = 2) {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/**
 * Run `op(item)` over `items` (cycling) for a warm-up, then measure at
 * least `minOps` operations and at least `minMs` milliseconds (capped at
 * `maxOps`). `op` may return a promise; it is awaited only when it does.
 */
export async function measureSequential(items, op, { warmupOps = 5000, minOps = 20_000, minMs = 2000, maxOps = 400_000 } = {}) {
  let i = 0;
  for (let w = 0; w < warmupOps; w++) {
    const r = op(items[i]);
    if (r instanceof Promise) await r;
    if (++i === items.length) i = 0;
  }
  const samples = new Float64Array(maxOps);
  let n = 0;
  const started = process.hrtime.bigint();
  const minNs = BigInt(minMs) * 1_000_000n;
  for (;;) {
    const t0 = process.hrtime.bigint();
    const r = op(items[i]);
    if (r instanceof Promise) await r;
    const t1 = process.hrtime.bigint();
    samples[n++] = Number(t1 - t0);
    if (++i === items.length) i = 0;
    if (n >= maxOps || (n >= minOps && t1 - started >= minNs)) break;
  }
  return summarize(samples, n, process.hrtime.bigint() - started);
}

/**
 * `concurrency` workers, each awaiting `op(item)` in a loop, for a warm-up
 * of `warmupMs` and then `minMs` of measurement. Latency is each
 * operation's own, from its call to its settlement.
 */
export async function measureConcurrent(items, op, { concurrency, warmupMs = 1000, minMs = 4000, maxOps = 1_000_000 } = {}) {
  let next = 0;
  const run = async (durationMs, samples) => {
    let n = 0;
    const end = process.hrtime.bigint() + BigInt(durationMs) * 1_000_000n;
    const worker = async () => {
      while (process.hrtime.bigint() < end && n < maxOps) {
        const item = items[next++ % items.length];
        const t0 = process.hrtime.bigint();
        await op(item);
        if (samples !== null && n < maxOps) samples[n] = Number(process.hrtime.bigint() - t0);
        n++;
      }
    };
    const started = process.hrtime.bigint();
    await Promise.all(Array.from({ length: concurrency }, worker));
    return { n: Math.min(n, maxOps), elapsed: process.hrtime.bigint() - started };
  };
  await run(warmupMs, null);
  const samples = new Float64Array(maxOps);
  const { n, elapsed } = await run(minMs, samples);
  return summarize(samples, n, elapsed);
}
