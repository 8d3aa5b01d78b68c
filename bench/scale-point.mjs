/**
 * One scaling point, in a process of its own so its resident memory is its
 * own: `node bench/scale-point.mjs tenants N` or `... arg_bytes N`.
 * Prints one JSON line: {tenants|arg_bytes, load_ms, rss_mb, p50_us, ...}.
 *
 * load_ms: createVeto() with the data document given as options.data (bundle
 * read, data checked, WASM compiled, data loaded into the instance, probe
 * evaluation). The data document is generated before the clock starts.
 * rss_mb: resident set size after the measured protect() calls and a full
 * garbage collection (run.mjs starts this with --expose-gc); the data
 * document is not kept by the harness once given to createVeto, as an
 * application parsing it from a file would not keep it either.
 */
import { resolve } from "node:path";
import { createVeto } from "../dist/index.js";
import { loadBundle } from "../dist/bundle.js";
import { RingSink, steppingClock } from "./cases.mjs";
import { measureSequential, round } from "./measure.mjs";
import { buildMix, dataWithTenants } from "./mix.mjs";
import { pino } from "pino";

const [kind, value] = [process.argv[2], Number(process.argv[3])];
const bundle = resolve(import.meta.dirname, "../bundles/crm.tar.gz");
const base = (await loadBundle(bundle)).data;

let data;
let limits;
let mix;
if (kind === "tenants") {
  // As an application would have it: parsed from a JSON file.
  data = JSON.parse(JSON.stringify(dataWithTenants(base, value)));
  mix = buildMix(data, { count: 2000 });
} else if (kind === "arg_bytes") {
  data = base;
  // The default input limit is 64 KiB; the 256 KiB point needs a higher one.
  limits = { maxInputBytes: 1024 * 1024 };
  mix = buildMix(data, { count: value >= 65536 ? 200 : 1000, argBytes: value });
} else {
  throw new Error("usage: scale-point.mjs tenants|arg_bytes N");
}

const started = process.hrtime.bigint();
const veto = await createVeto({
  bundle,
  data,
  logger: pino({ level: "silent" }),
  recordSink: new RingSink(1024),
  clock: steppingClock(),
  ...(limits === undefined ? {} : { limits }),
});
const loadMs = Number(process.hrtime.bigint() - started) / 1e6;
// As an application would: the document, once given to createVeto, is not kept.
// eslint-disable-next-line no-useless-assignment -- the reference is dropped so that the collector may take the document
data = undefined;

const big = kind === "arg_bytes" && value >= 65536;
const calls = mix.map((e) => e.call);
const r = await measureSequential(calls, (call) => veto.protect(call), {
  warmupOps: big ? 100 : 2000,
  minOps: big ? 300 : 10_000,
  minMs: 1500,
  maxOps: 100_000,
});
// Resident memory at rest: after a full collection when --expose-gc is on (run.mjs passes it).
globalThis.gc?.();
const { rss, heapUsed, heapTotal, external } = process.memoryUsage();
// ---- Memory breakdown (informative, beside rss_mb) ----
// heap_*: V8's JS heap (used, and committed); external_mb: memory outside
// it, mostly the WASM memory's committed size (pages never touched are not
// resident). rss_rest_mb: the resident set again after a second at rest and
// another collection: V8 returns freed heap pages to the system lazily.
await new Promise((r) => setTimeout(r, 1000));
globalThis.gc?.();
const rssRest = process.memoryUsage().rss;
const mb = (bytes) => round(bytes / 2 ** 20, 1);
const breakdown = { heap_used_mb: mb(heapUsed), heap_total_mb: mb(heapTotal), external_mb: mb(external), rss_rest_mb: mb(rssRest) };
// ---- end of the memory breakdown ----
await veto.close();
process.stdout.write(
  `${JSON.stringify({ [kind]: value, load_ms: round(loadMs, 1), rss_mb: mb(rss), p50_us: r.p50_us, p99_us: r.p99_us, ops_per_s: r.ops_per_s, ...breakdown, ...(limits === undefined ? {} : { max_input_bytes: limits.maxInputBytes }) })}\n`,
);
