/**
 * `node bench/report.mjs [--records N] [--keep DIR]`: how long `veto report`
 * takes over a decision log of N records (default 100,000) the real adapter
 * wrote (the shipped bundle, the demo's data, a file log, owners approving
 * and rejecting), with and without a candidate replayed. Prints one JSON
 * line; BENCHMARKS.md quotes it. A figure, not a timed test.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createVeto } from "../dist/index.js";
import { openFileLog } from "../dist/audit.js";
import { seededRandom } from "../scripts/seeded-random.mjs";

const ROOT = resolve(import.meta.dirname, "..");
const args = process.argv.slice(2);
const flag = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const target = Number(flag("--records") ?? 100_000);
const dir = flag("--keep") ?? mkdtempSync(join(tmpdir(), "veto-report-bench-"));
const logPath = join(dir, "decisions.jsonl");
const data = JSON.parse(readFileSync(join(ROOT, "scripts/demo/data.json"), "utf8"));

const log = await openFileLog(logPath);
let nowMs = Date.parse("2026-03-01T00:00:00Z");
const silent = { info() {}, warn() {}, error() {}, debug() {}, child: () => silent };
const veto = await createVeto({ bundle: join(ROOT, "bundles/crm.tar.gz"), data, recordSink: log, logger: silent, clock: () => nowMs });
const random = seededRandom(2107);
const actors = ["agent:sales-assistant", "agent:support-triage"];
const OWNERS = ["user:crm-owner@acme.example", "user:revops-lead@acme.example"];
let records = 0;
const started = performance.now();
while (records < target) {
  // A batch at a time: the log commits concurrent writes together.
  const batch = [];
  for (let i = 0; i < 256 && records + batch.length < target; i += 1) {
    nowMs += Math.floor(random() * 30_000);
    const amount = random() < 0.5 ? Math.floor(random() * 60_000) : undefined;
    const tenantId = random() < 0.05 ? "globex" : "acme";
    batch.push({
      tool: random() < 0.2 ? "crm.read" : "crm.update",
      arguments: {
        object: "opportunity",
        recordId: `opp_${i}`,
        tenantId,
        changes: { close_date: "2026-12-01" },
        ...(amount === undefined ? {} : { amount }),
      },
      context: { actorId: actors[Math.floor(random() * 2)], tenantId: "acme", environment: "production", reason: "bench" },
    });
  }
  const decisions = await Promise.all(batch.map((call) => veto.protect(call)));
  records += decisions.length;
  const answers = [];
  for (const d of decisions) {
    if (d.action !== "require_approval" || records + answers.length >= target || random() < 0.1) continue;
    const reviewerId = OWNERS[Math.floor(random() * 2)];
    answers.push(
      random() < 0.8 ? veto.approve({ decisionId: d.id, reviewerId }) : veto.reject({ decisionId: d.id, reviewerId, note: "no" }),
    );
  }
  await Promise.all(answers);
  records += answers.length;
}
await veto.close();
await log.close();
const writeSeconds = (performance.now() - started) / 1000;

const relaxed = structuredClone(data);
relaxed.veto.config.tenants.acme.approval_threshold = 20_000;
const candidateData = join(dir, "relaxed.json");
writeFileSync(candidateData, JSON.stringify(relaxed));

function timed(extra) {
  const t = performance.now();
  const run = spawnSync("node", [join(ROOT, "dist/cli.js"), "report", "--log", logPath, "--json", ...extra], {
    encoding: "utf8",
    maxBuffer: 1 << 28,
  });
  if (run.status !== 0) throw new Error(`veto report failed: ${run.stderr}`);
  return { seconds: Math.round(performance.now() - t) / 1000, report: JSON.parse(run.stdout) };
}
const plain = timed([]);
const candidate = timed(["--candidate", join(ROOT, "bundles/crm.tar.gz"), "--candidate-data", candidateData]);
console.log(
  JSON.stringify({
    records,
    log_bytes: readdirSync(dir)
      .filter((name) => name.startsWith("decisions.jsonl"))
      .reduce((n, name) => n + statSync(join(dir, name)).size, 0),
    decisions: plain.report.decisions.total,
    write_seconds: Math.round(writeSeconds * 10) / 10,
    report_seconds: plain.seconds,
    report_with_candidate_seconds: candidate.seconds,
    allows_rejected: candidate.report.candidate.allows_rejected,
  }),
);
if (flag("--keep") === undefined) rmSync(dir, { recursive: true, force: true });
