/**
 * Crash test: a child process writes records under concurrent load
 * and is killed with SIGKILL at a random moment, trial after trial on the same
 * log. After each kill the log opens (a torn tail repaired), verifies, and
 * holds every record the child was told had been written.
 *
 * The same with signed checkpoints on: after each kill the log reopens with
 * the key (signing what the crash left uncovered), and every checkpoint in it
 * verifies with the public key.
 *
 * The child runs the real module, bundled by esbuild into a temp dir (plain
 * Node cannot import the TypeScript source). VETO_SOAK_TRIALS sets the number
 * of trials (default 50; `make soak` raises it). Each run prints its totals:
 * acknowledged records, lost ones (always 0, or the test fails), torn tails
 * repaired (truncated or completed), stale locks taken over, trials a minute.
 */
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openFileLog, readLog, verifyLog } from "../../adapter/audit/index.js";
import { ed25519 } from "../helpers/checkpoint.js";
import { tempDir } from "../helpers/file-log.js";

const TRIALS = Number(process.env.VETO_SOAK_TRIALS ?? 50);
const MAX_BYTES = 128 * 1024;
const CONCURRENCY = 16;
/** Start a fresh log after this many trials, so reopening stays quick. */
const TRIALS_PER_LOG = 10;

const here = fileURLToPath(new URL(".", import.meta.url));
let dir: string;
let cleanup: () => Promise<void>;
let modulePath: string;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
  modulePath = join(dir, "decision-log.mjs");
  await build({
    entryPoints: [join(here, "../../adapter/records/file/file-log.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile: modulePath,
    logLevel: "silent",
  });
});
afterAll(() => cleanup());

/** Seeded, so a failing run can be repeated with VETO_SOAK_SEED. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

interface Trial {
  acknowledged: Map<number, string>;
  ready: boolean;
  signal: NodeJS.Signals | null;
}

/**
 * Run the child and SIGKILL it: `during: "start-up"` at `afterMs` after the
 * spawn (often while it opens and recovers the log), `during: "load"` at
 * `afterMs` after it reports ready.
 */
function runAndKill(
  logPath: string,
  trial: number,
  during: "start-up" | "load",
  afterMs: number,
  signing: readonly string[] = [],
): Promise<Trial> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [join(here, "crash-child.mjs"), modulePath, logPath, String(MAX_BYTES), String(CONCURRENCY), String(trial), ...signing],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    let timer: NodeJS.Timeout | undefined;
    const killLater = () => (timer = setTimeout(() => child.kill("SIGKILL"), afterMs));
    if (during === "start-up") killLater();
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      if (during === "load" && timer === undefined && stdout.includes("\n") === false && chunk.includes("\n")) killLater();
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    // A child that never gets going is killed all the same (and fails the trial below).
    const watchdog = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.on("error", reject);
    // "close": the child is reaped (its pid is dead, so its lock is stale) and stdout is drained.
    child.on("close", (_code, signal) => {
      clearTimeout(timer);
      clearTimeout(watchdog);
      if (signal !== "SIGKILL") {
        reject(new Error(`child ended by itself (signal ${signal}): ${stderr}`));
        return;
      }
      const acknowledged = new Map<number, string>();
      const lines = stdout.split("\n").slice(0, -1); // a line cut by the kill proves nothing
      for (const line of lines) {
        const [seq, id] = line.split(" ");
        if (seq !== "ready") acknowledged.set(Number(seq), id as string);
      }
      resolve({ acknowledged, ready: lines[0]?.startsWith("ready") ?? false, signal });
    });
  });
}

/** Small enough that checkpoints and rotations happen many times a trial. */
const CHECKPOINT_EVERY = 40;

async function soak(trials: number, signed: boolean): Promise<void> {
  const seed = Number(process.env.VETO_SOAK_SEED ?? Date.now() % 2 ** 31);
  const next = random(seed);
  const key = ed25519();
  const keyFile = join(dir, `signing-${seed}.pem`);
  await writeFile(keyFile, key.privatePem);
  const signing = signed ? [keyFile, String(CHECKPOINT_EVERY)] : [];
  const openOptions = signed
    ? { maxBytes: MAX_BYTES, checkpointKey: key.privateKey, checkpointEvery: CHECKPOINT_EVERY }
    : { maxBytes: MAX_BYTES };
  const totals = {
    acknowledged: 0,
    recordsInLastLog: 0,
    tornTruncated: 0,
    tornCompleted: 0,
    staleLocks: 0,
    killedBeforeReady: 0,
    checkpointsVerified: 0,
    lost: 0,
  };
  const started = performance.now();
  let logPath = "";
  for (let trial = 0; trial < trials; trial++) {
    if (trial % TRIALS_PER_LOG === 0) logPath = join(dir, `crash-${signed ? "signed-" : ""}${trial}.jsonl`);
    // One kill in five lands during start-up (often mid-recovery), the rest mid-load.
    const during = next() < 0.2 ? "start-up" : "load";
    const killAfterMs = Math.floor(next() * (during === "start-up" ? 150 : 200));
    const { acknowledged, ready } = await runAndKill(logPath, trial, during, killAfterMs, signing);
    if (!ready) totals.killedBeforeReady += 1;
    if (during === "load") expect(ready, `trial ${trial}: the child never reported ready`).toBe(true);

    const log = await openFileLog(logPath, openOptions);
    const { tornTail, staleLockFrom, records } = log.recovery;
    if (tornTail?.action === "truncated") totals.tornTruncated += 1;
    if (tornTail?.action === "completed") totals.tornCompleted += 1;
    if (staleLockFrom !== null) totals.staleLocks += 1;
    await log.close();

    const context = `${signed ? "signed, " : ""}seed ${seed}, trial ${trial}, kill during ${during} after ${killAfterMs} ms`;
    if (signed) {
      // Reopened and closed with the key: every entry covered, every checkpoint's signature good.
      const verified = await verifyLog([logPath], { publicKeys: key.publicKey, requireCheckpointed: true });
      expect(verified, context).toMatchObject({ ok: true, checkpoints: { signatures: "verified", uncovered: null } });
      if (verified.ok) totals.checkpointsVerified = verified.checkpoints?.checkpoints ?? 0;
    } else {
      const verified = await verifyLog([logPath]);
      expect(verified, context).toMatchObject({ ok: true, count: records });
    }
    const present = new Map((await readLog([logPath])).map(({ record }) => [record.seq as number, record.decision_id]));
    const lost = [...acknowledged].filter(([seq, id]) => present.get(seq) !== id).map(([seq]) => seq);
    totals.lost += lost.length;
    expect(lost, `${context}: acknowledged records missing (seq)`).toEqual([]);
    totals.acknowledged += acknowledged.size;
    totals.recordsInLastLog = present.size;
  }
  const trialsPerMinute = Math.round(trials / ((performance.now() - started) / 60_000));
  console.info(
    `crash test${signed ? " with checkpoints" : ""} (seed ${seed}): ${JSON.stringify({ trials, ...totals, trials_per_minute: trialsPerMinute })}`,
  );
  expect(totals.acknowledged).toBeGreaterThan(trials); // the load really ran
  if (signed) expect(totals.checkpointsVerified).toBeGreaterThan(TRIALS_PER_LOG);
}

describe("crash test: SIGKILL under concurrent load", () => {
  // About 0.5 s a trial here; room for a loaded CI machine running other test files beside it.
  it(`loses no acknowledged record across ${TRIALS} kills`, { timeout: Math.max(120_000, TRIALS * 3_000) }, async () => {
    await soak(TRIALS, false);
  });

  const signedTrials = Math.max(TRIALS_PER_LOG, Math.floor(TRIALS / 2));
  it(
    `with signed checkpoints: loses no acknowledged record across ${signedTrials} kills, and every checkpoint verifies after recovery`,
    {
      timeout: Math.max(120_000, signedTrials * 3_000),
    },
    async () => {
      await soak(signedTrials, true);
    },
  );
});
