/**
 * One process of `make load` (bench/load.mjs):
 *
 *   node bench/load-worker.mjs URL SCHEMA INDEX CONCURRENCY SECONDS TENANTS
 *
 * createVeto() on the PostgreSQL store (records in the same transaction,
 * pool of 10), `concurrency` loops calling protect() over the benchmark mix
 * (from offset INDEX, so workers interleave differently) for SECONDS after a
 * 2 s warm-up. Prints one JSON line: decisions, latencies, verdict counts, a
 * sample of (decision id, verdict) for the parent to check against the table.
 */
import { resolve } from "node:path";
import { pino } from "pino";
import { loadBundle } from "../dist/bundle.js";
import { createVeto } from "../dist/index.js";
import { postgres } from "../dist/postgres.js";
import { buildMix, dataWithTenants, SEED } from "./mix.mjs";

const [url, schema, index, concurrency, seconds, tenants] = process.argv.slice(2);
const bundle = resolve(import.meta.dirname, "../bundles/crm.tar.gz");
const loaded = await loadBundle(bundle);
const data = Number(tenants) > 0 ? dataWithTenants(loaded.data, Number(tenants)) : undefined;
const mix = buildMix(data ?? loaded.data, { seed: SEED, count: 4000 });
const calls = mix.map((e) => e.call);
const veto = await createVeto({
  bundle,
  logger: pino({ level: "silent" }),
  ...(data === undefined ? {} : { data }),
  store: postgres({ connectionString: url, schema, records: true }),
});

let next = Number(index) * 997;
const latencies = [];
const sample = [];
const counts = { decisions: 0, denies: 0, escalated: 0, record_unavailable: 0 };
const loop = async (endNs, measure) => {
  while (process.hrtime.bigint() < endNs) {
    const call = calls[next++ % calls.length];
    const t0 = process.hrtime.bigint();
    const d = await veto.protect(call);
    if (!measure) continue;
    latencies.push(Number(process.hrtime.bigint() - t0) / 1000);
    counts.decisions += 1;
    if (d.action === "deny") counts.denies += 1;
    if (d.escalated) counts.escalated += 1;
    if (d.reasons[0]?.code === "record_unavailable") counts.record_unavailable += 1;
    if (counts.decisions % 7 === 0) sample.push([d.id, `${d.action}/${d.escalated}`]);
  }
};
const warm = process.hrtime.bigint() + 2_000_000_000n;
await Promise.all(Array.from({ length: Number(concurrency) }, () => loop(warm, false)));
// Warm-up decisions are in the table too: counted apart, so the parent compares like with like.
const warmupDecisions = next - Number(index) * 997;
const started = process.hrtime.bigint();
const end = started + BigInt(Number(seconds) * 1e9);
await Promise.all(Array.from({ length: Number(concurrency) }, () => loop(end, true)));
const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
await veto.close();
process.stdout.write(
  `${JSON.stringify({
    ...counts,
    decisions_total: counts.decisions + warmupDecisions,
    seconds: elapsed,
    latencies_us: latencies,
    sample,
    window_ms: ((data ?? loaded.data).veto.config.escalation?.window_seconds ?? 900) * 1000,
  })}\n`,
);
