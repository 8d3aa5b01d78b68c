// The default record sink (createVeto with no recordSink): records on the
// process's standard output, each acknowledged only once written, and every
// failure a record_unavailable deny (docs/contract.md §7). Real child
// processes whose stdout is /dev/full, /dev/null, a regular file, a closed
// descriptor, or a pipe that is read, broken, or no longer read; close()
// must return at once in every case and the process must exit by itself.
import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Readable, Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seededRandom } from "../helpers/generate-calls.js";
import { ROOT, read, requireBundle, requireCli, write } from "../helpers/index.js";

const CHILD = resolve(ROOT, "test/records/default-sink-child.mjs");
const DIST = resolve(ROOT, "dist/index.js");
const SEED = Number(process.env["VETO_SINK_SEED"] ?? 20260511);
/** Far above what any case needs (a child takes well under a second): a hang fails the test, it does not stall it. */
const KILL_AFTER_MS = 20_000;

interface Event {
  event: "decision" | "closing" | "closed" | "exit" | "threw";
  atMs: number;
  id?: string;
  action?: string;
  codes?: string[];
  reason?: string;
  code?: string;
}

interface Run {
  events: Event[];
  decisions: Event[];
  stdout: string;
  stderr: string;
  status: number | null;
  signal: NodeJS.Signals | null;
  /** Milliseconds from "closing" to the process's exit (its own clock). */
  closeToExitMs: number;
}

let dir: string;
beforeAll(() => {
  requireBundle();
  requireCli();
  dir = mkdtempSync(join(tmpdir(), "veto-default-sink-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A seeded mix of calls the policy allows, sends for approval and denies. */
function calls(n: number, seed = SEED): Record<string, unknown>[] {
  const random = seededRandom(seed);
  // Tenant globex lists no actors: one actor per call, so no deny history and every verdict is the policy's own.
  const kinds: ((context: Record<string, unknown>) => Record<string, unknown>)[] = [
    (context) => read({ tenantId: "globex" }, context),
    (context) => write({ tenantId: "globex" }, context),
    (context) => write({ tenantId: "globex", amount: 30_000 }, context),
    (context) => write({ tenantId: "globex", destination: "https://pastebin.com/x" }, context),
  ];
  return Array.from({ length: n }, (_, i) => {
    const kind = kinds[Math.floor(random() * kinds.length)] as (typeof kinds)[number];
    return kind({ tenantId: "globex", actorId: `agent:sink-${seed}-${i}` });
  });
}

/**
 * Run the child with `stdout` as its fd 1. `onStart` gets the child's stdout
 * (when it is a pipe) and stdin, to read, break or ignore them.
 */
async function runChild(
  stdout: "pipe" | number,
  callList: unknown[],
  mode = "",
  onStart?: (io: { stdout: Readable | null; stdin: Writable }) => void,
): Promise<Run> {
  const child = spawn(process.execPath, [CHILD, DIST, requireBundle(), JSON.stringify(callList), mode], {
    stdio: ["pipe", stdout, "pipe", "pipe"],
  });
  const fd3 = child.stdio[3] as Readable;
  let events = "";
  let stderr = "";
  let out = "";
  fd3.on("data", (chunk: Buffer) => (events += chunk.toString("utf8")));
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const stdin = child.stdin as Writable;
  stdin.on("error", () => {});
  onStart?.({ stdout: child.stdout, stdin });
  if (onStart === undefined) child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString("utf8")));
  const killer = setTimeout(() => child.kill("SIGKILL"), KILL_AFTER_MS);
  const [status, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done) =>
    child.on("close", (code, sig) => done([code, sig])),
  );
  clearTimeout(killer);
  const parsed =
    events.trim() === ""
      ? []
      : events
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l) as Event);
  const closing = parsed.find((e) => e.event === "closing");
  const exit = parsed.find((e) => e.event === "exit");
  return {
    events: parsed,
    decisions: parsed.filter((e) => e.event === "decision"),
    stdout: out,
    stderr,
    status,
    signal,
    closeToExitMs: closing !== undefined && exit !== undefined ? exit.atMs - closing.atMs : Number.NaN,
  };
}

function expectExitedPromptly(run: Run): void {
  expect(run.signal, `killed after ${KILL_AFTER_MS} ms: the child hung; stderr: ${run.stderr}`).toBeNull();
  expect(run.status, run.stderr).toBe(0);
  expect(run.events.map((e) => e.event)).toEqual(expect.arrayContaining(["closing", "closed", "exit"]));
  expect(run.closeToExitMs).toBeLessThan(1_000);
}

function expectAllUnrecorded(run: Run, cause: RegExp): void {
  expect(run.decisions.length).toBeGreaterThan(0);
  for (const d of run.decisions) {
    expect([d.action, d.codes]).toEqual(["deny", ["record_unavailable"]]);
    expect(d.reason).toMatch(cause);
  }
}

describe("the default record sink (stdout)", () => {
  it("stdout on /dev/full: every call is denied record_unavailable (ENOSPC), and close() and exit come at once", async () => {
    const full = openSync("/dev/full", "w");
    try {
      const run = await runChild(full, calls(12));
      expectAllUnrecorded(run, /standard output failed .*ENOSPC/);
      expectExitedPromptly(run);
    } finally {
      closeSync(full);
    }
  });

  it("stdout a pipe whose reader is gone: every call is denied record_unavailable (EPIPE)", async () => {
    const run = await runChild("pipe", calls(12), "go", ({ stdout, stdin }) => {
      stdout?.destroy();
      // Once the read end is closed, tell the child to start.
      setTimeout(() => stdin.write("go\n"), 100);
    });
    expectAllUnrecorded(run, /standard output failed .*EPIPE/);
    expectExitedPromptly(run);
  });

  it("stdout closed (EBADF): every call is denied record_unavailable", async () => {
    const run = await runChild("pipe", calls(6), "closed-fd");
    expectAllUnrecorded(run, /standard output failed .*EBADF/);
    expectExitedPromptly(run);
  });

  it("stdout on /dev/null: records would be discarded, so every call is denied", async () => {
    const devNull = openSync("/dev/null", "w");
    try {
      const run = await runChild(devNull, calls(6));
      expectAllUnrecorded(run, /null device/);
      expectExitedPromptly(run);
    } finally {
      closeSync(devNull);
    }
  });

  it("a pipe that is read: every decision is the policy's, and its record (pino line) is on stdout", async () => {
    const list = calls(40);
    const run = await runChild("pipe", list);
    expectExitedPromptly(run);
    const records = run.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.map((r) => r["decision_id"])).toEqual(run.decisions.map((d) => d.id));
    for (const r of records) expect(r).toMatchObject({ msg: "veto decision", component: "records", name: "veto", type: "decision" });
    expect(new Set(run.decisions.map((d) => d.action))).toEqual(new Set(["allow", "deny", "require_approval"]));
    expect(run.decisions.flatMap((d) => d.codes)).not.toContain("record_unavailable");
  });

  it("stdout a regular file: every record is in it (fdatasync'ed before the call returns)", async () => {
    const file = join(dir, "stdout.jsonl");
    const fd = openSync(file, "w");
    try {
      const run = await runChild(fd, calls(25));
      expectExitedPromptly(run);
      const ids = readFileSync(file, "utf8")
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { decision_id: string }).decision_id);
      expect(ids).toEqual(run.decisions.map((d) => d.id));
      expect(run.decisions.flatMap((d) => d.codes)).not.toContain("record_unavailable");
    } finally {
      closeSync(fd);
    }
  });

  it("a reader that breaks off mid-stream: from the first unrecorded call on, nothing is allowed", async () => {
    for (const breakAfter of [1, 7, 30]) {
      let seen = 0;
      const run = await runChild("pipe", calls(120, SEED + breakAfter), "go", ({ stdout, stdin }) => {
        stdin.write("go\n");
        stdout?.on("data", (chunk: Buffer) => {
          seen += chunk.toString("utf8").split("\n").length - 1;
          if (seen >= breakAfter) stdout.destroy();
        });
      });
      expectExitedPromptly(run);
      const first = run.decisions.findIndex((d) => d.codes?.includes("record_unavailable"));
      expect(first, `break after ${breakAfter} records`).toBeGreaterThanOrEqual(0);
      for (const d of run.decisions.slice(first)) expect([d.action, d.codes]).toEqual(["deny", ["record_unavailable"]]);
    }
  });

  it("a reader that stops reading: calls wait (never allowed unrecorded); close() returns at once, the waiting call is denied, the process exits", async () => {
    // Large records fill the pipe's buffer after a few dozen calls.
    const big = [write({ tenantId: "globex", note: "x".repeat(4000) }, { tenantId: "globex", actorId: "agent:sink-big" })];
    let stalled: Readable | null = null;
    const run = await runChild("pipe", big, "close-after:1500", ({ stdout }) => {
      stalled = stdout;
      stdout?.pause();
    });
    (stalled as Readable | null)?.destroy();
    expectExitedPromptly(run);
    const closing = run.events.find((e) => e.event === "closing") as Event;
    const closed = run.events.find((e) => e.event === "closed") as Event;
    expect(closed.atMs - closing.atMs).toBeLessThan(200);
    const last = run.decisions.at(-1) as Event;
    expect([last.action, last.codes]).toEqual(["deny", ["record_unavailable"]]);
    expect(last.reason).toMatch(/closed before the record was written/);
    // The pipe took a few dozen records, then nothing: the rest waited.
    const allowed = run.decisions.filter((d) => d.action !== "deny");
    expect(allowed.length).toBeGreaterThan(3);
    expect(allowed.length).toBeLessThan(60);
  });
});
