// Every path a `veto` command takes (docs/contract.md §8: exit 2 with one
// line on stderr when an input is unusable) given something that is not a
// regular file: a directory, a FIFO, /dev/zero (never ends), /dev/full and
// /dev/null (take records, keep none), and symlinks to each. Each is refused
// at once, in a real child process with a short timeout: nothing is read
// forever, nothing waits on a FIFO, no record goes where it cannot be kept.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUNDLE, CLI, jsonLines, read, requireBundle, requireCli } from "../helpers/index.js";

/** A command given a bad path is answered well within this (a hang is killed at KILL_MS and fails). */
const ANSWER_MS = 8_000;
const KILL_MS = 15_000;

let dir: string;
let goodLog: string;
let goodData: string;
const kinds: [string, () => string][] = [
  ["a directory", () => join(dir, "a-directory")],
  ["a FIFO", () => join(dir, "a-fifo")],
  ["/dev/zero", () => "/dev/zero"],
  ["/dev/full", () => "/dev/full"],
  ["/dev/null", () => "/dev/null"],
  ["a symlink to a directory", () => join(dir, "to-directory")],
  ["a symlink to a FIFO", () => join(dir, "to-fifo")],
  ["a symlink to /dev/zero", () => join(dir, "to-zero")],
  ["a symlink to /dev/full", () => join(dir, "to-full")],
  ["a symlink to /dev/null", () => join(dir, "to-null")],
];

beforeAll(() => {
  requireBundle();
  requireCli();
  dir = mkdtempSync(join(tmpdir(), "veto-cli-paths-"));
  mkdirSync(join(dir, "a-directory"));
  const fifo = spawnSync("mkfifo", [join(dir, "a-fifo")]);
  if (fifo.status !== 0) throw new Error(`mkfifo failed: ${String(fifo.stderr)}`);
  symlinkSync(join(dir, "a-directory"), join(dir, "to-directory"));
  symlinkSync(join(dir, "a-fifo"), join(dir, "to-fifo"));
  symlinkSync("/dev/zero", join(dir, "to-zero"));
  symlinkSync("/dev/full", join(dir, "to-full"));
  symlinkSync("/dev/null", join(dir, "to-null"));
  goodLog = join(dir, "good.jsonl");
  const made = spawnSync("node", [CLI, "eval", "--bundle", BUNDLE, "--log", goodLog], { input: jsonLines(read()), encoding: "utf8" });
  if (made.status !== 0) throw new Error(`could not make a log: ${made.stderr}`);
  goodData = join(dir, "data.json");
  writeFileSync(
    goodData,
    JSON.stringify(JSON.parse(spawnSync("tar", ["-xOzf", BUNDLE, "data.json"], { encoding: "utf8" }).stdout || "{}")),
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every path option of every command, with P where the bad path goes. */
const commands: [string, (p: string) => string[]][] = [
  ["eval --bundle", (p) => ["eval", "--bundle", p]],
  ["eval --data", (p) => ["eval", "--bundle", BUNDLE, "--data", p]],
  ["eval --log", (p) => ["eval", "--bundle", BUNDLE, "--log", p]],
  ["eval --records", (p) => ["eval", "--bundle", BUNDLE, "--records", p]],
  ["eval --verification-key", (p) => ["eval", "--bundle", BUNDLE, "--verification-key", p]],
  ["hash BUNDLE", (p) => ["hash", p]],
  ["hash --verification-key", (p) => ["hash", BUNDLE, "--verification-key", p]],
  ["log verify PATH", (p) => ["log", "verify", p]],
  ["log verify GOOD PATH", (p) => ["log", "verify", goodLog, p]],
  ["replay --bundle", (p) => ["replay", "--bundle", p, goodLog]],
  ["replay --data", (p) => ["replay", "--bundle", BUNDLE, "--data", p, goodLog]],
  ["replay LOG", (p) => ["replay", "--bundle", BUNDLE, p]],
  ["replay --verification-key", (p) => ["replay", "--bundle", BUNDLE, "--verification-key", p, goodLog]],
];

interface Answer {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function run(args: string[], stdin = jsonLines(read())): Promise<Answer> {
  const started = performance.now();
  const child = spawn("node", [CLI, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
  child.stdin.on("error", () => {});
  child.stdin.end(stdin);
  const killer = setTimeout(() => child.kill("SIGKILL"), KILL_MS);
  return new Promise((resolve) =>
    child.on("close", (status, signal) => {
      clearTimeout(killer);
      resolve({ status, signal, stdout, stderr, ms: performance.now() - started });
    }),
  );
}

/** Run `jobs` a few at a time (the machine is shared). */
async function pooled<T>(jobs: (() => Promise<T>)[], width = 4): Promise<T[]> {
  const results: T[] = new Array<T>(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < jobs.length) {
        const i = next++;
        results[i] = await (jobs[i] as () => Promise<T>)();
      }
    }),
  );
  return results;
}

function expectRefused(label: string, answer: Answer): void {
  expect(answer.signal, `${label}: hung (killed after ${KILL_MS} ms)`).toBeNull();
  expect(answer.status, `${label}: ${answer.stderr}`).toBe(2);
  expect(answer.stdout, label).toBe("");
  expect(answer.stderr, label).toMatch(/^veto: [^\n]+\n$/);
  expect(answer.ms, `${label}: took ${Math.round(answer.ms)} ms`).toBeLessThan(ANSWER_MS);
}

describe("paths that are not regular files", () => {
  // One test per path option (each within the test timeout on a loaded machine), every kind in each.
  it.each(commands)(`%s: each of ${kinds.length} kinds of path gets exit 2, one line on stderr, at once`, async (command, args) => {
    const cases = kinds.map(([kind, path]) => ({ label: `${command} ${kind}`, args: args(path()) }));
    const answers = await pooled(cases.map((c) => () => run(c.args)));
    cases.forEach((c, i) => expectRefused(c.label, answers[i] as Answer));
    // The message says what the path is (a FIFO opened for writing has no reader: ENXIO says so).
    const named = answers.filter((a) => /is not a regular file \(it is (a directory|a FIFO|a character device)\)|ENXIO/.test(a.stderr));
    expect(named.map((a) => a.stderr)).toHaveLength(kinds.length);
  });

  it("a log whose continuation (PATH.1) or lock (PATH.lock) is not a regular file is refused too", async () => {
    const log = join(dir, "continued.jsonl");
    const made = await run(["eval", "--bundle", BUNDLE, "--log", log]);
    expect(made.status, made.stderr).toBe(0);
    spawnSync("mkfifo", [`${log}.1`]);
    const locked = join(dir, "locked.jsonl");
    spawnSync("mkfifo", [`${locked}.lock`]);
    const answers = await pooled([
      () => run(["log", "verify", log]),
      () => run(["replay", "--bundle", BUNDLE, log]),
      () => run(["eval", "--bundle", BUNDLE, "--log", log]),
      () => run(["eval", "--bundle", BUNDLE, "--log", locked]),
    ]);
    answers.forEach((a, i) => expectRefused(`case ${i}`, a));
    expect(answers[0]?.stderr).toMatch(/continued\.jsonl\.1 is not a regular file \(it is a FIFO\)/);
    expect(answers[3]?.stderr).toMatch(/locked\.jsonl\.lock exists but holds no pid/);
  });

  it("regular files and symlinks to them still work", async () => {
    const link = join(dir, "to-bundle.tar.gz");
    symlinkSync(BUNDLE, link);
    const records = join(dir, "records", "r.jsonl");
    const answers = await pooled([
      () => run(["eval", "--bundle", link, "--data", goodData, "--records", records]),
      () => run(["hash", link]),
      () => run(["log", "verify", goodLog]),
      () => run(["replay", "--bundle", link, goodLog]),
    ]);
    for (const a of answers) expect([a.status, a.signal], a.stderr).toEqual([0, null]);
  });
});
