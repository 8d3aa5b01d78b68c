/**
 * When a record is acknowledged, and what shares a commit: generated
 * interleavings of writes and sync completions against a file system whose
 * fdatasync returns only when the test lets it (the real one, held). A
 * record is acknowledged only after a sync that started once its bytes were
 * appended; acknowledgments come in the log's order; at most one sync is in
 * flight; a record written while nothing is in flight has its sync started
 * within its write() call, and a commit takes every record written before it.
 */
import { writeSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openFileLog, verifyLog, type LogFileHandle, type LogFileSystem } from "../../../adapter/audit/index.js";
import { readLines, sampleRecord, tempDir } from "../../helpers/file-log.js";

const SEED = Number(process.env["VETO_TEST_SEED"] ?? 20261130);

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(() => cleanup());

/** The real file system with every fdatasync held until release() (oldest first). */
function heldSyncs(appendNow: boolean) {
  const state = {
    /** Records (lines) appended to the log so far. */
    appendedLines: 0,
    /** Lines appended when each sync started, for the syncs that have returned. */
    durableLines: 0,
    held: [] as { lines: number; release: () => Promise<void> }[],
    maxInFlight: 0,
    fs: undefined as unknown as LogFileSystem,
  };
  const count = (buffer: Uint8Array, offset: number, n: number): number => {
    let lines = 0;
    for (let i = offset; i < offset + n; i++) if (buffer[i] === 0x0a) lines += 1;
    return lines;
  };
  state.fs = {
    open: async (path, flags) => {
      const real = await open(path, flags);
      const handle: LogFileHandle = {
        write: async (buffer, offset, length, position) => {
          const result = await real.write(buffer, offset, length, position);
          state.appendedLines += count(buffer, offset, result.bytesWritten);
          return result;
        },
        datasync: () =>
          new Promise<void>((resolve, reject) => {
            const lines = state.appendedLines;
            state.held.push({
              lines,
              release: () =>
                real.datasync().then(() => {
                  state.durableLines = Math.max(state.durableLines, lines);
                  resolve();
                }, reject),
            });
            state.maxInFlight = Math.max(state.maxInFlight, state.held.length);
          }),
        sync: () => real.sync(),
        truncate: (length) => real.truncate(length),
        close: () => real.close(),
      };
      if (appendNow) {
        handle.appendNow = (buffer, offset, length) => {
          const n = writeSync(real.fd, buffer, offset, length);
          state.appendedLines += count(buffer, offset, n);
          return n;
        };
      }
      return handle;
    },
  };
  return state;
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

type Step = { readonly write: number } | "sync" | "tick";
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ write: fc.integer({ min: 1, max: 5 }) }),
  fc.constant("sync" as const),
  fc.constant("tick" as const),
);

describe("commit order", () => {
  it.each([true, false])(
    "acknowledges each record only after a sync started once it was appended, in order, one sync at a time (appending at once: %s)",
    async (appendNow) => {
      let run = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 40 }), async (steps) => {
          const path = join(dir, `order-${appendNow}-${run++}.jsonl`);
          const state = heldSyncs(appendNow);
          const sink = await openFileLog(path, { fs: state.fs });
          const acks: { seq: number; durableLines: number }[] = [];
          const writes: Promise<unknown>[] = [];
          let issued = 0;
          const write = () => {
            const idle = state.held.length === 0 && issued === acks.length;
            const before = state.held.length;
            issued += 1;
            writes.push(
              sink.write(sampleRecord(issued)).then((w) => {
                acks.push({ seq: w.seq, durableLines: state.durableLines });
              }),
            );
            // With nothing in flight the sync starts within write() when the handle appends at once.
            if (appendNow && idle) expect(state.held.length).toBe(before + 1);
          };
          const release = async () => {
            const next = state.held.shift();
            if (next === undefined) return;
            // A commit's sync starts only once every record written before it is appended.
            expect(next.lines).toBeLessThanOrEqual(issued);
            await next.release();
            await settle();
          };
          for (const s of steps) {
            if (s === "sync") await release();
            else if (s === "tick") await settle();
            else for (let k = 0; k < s.write; k++) write();
          }
          // Then let every sync return as it comes (a commit's write may still be on the thread pool).
          const deadline = Date.now() + 10_000;
          while (acks.length < issued && Date.now() < deadline) {
            if (state.held.length > 0) await release();
            else await new Promise((resolve) => setTimeout(resolve, 1));
          }
          await Promise.all(writes);
          await sink.close();
          expect(state.maxInFlight).toBeLessThanOrEqual(1);
          expect(acks.map((a) => a.seq)).toEqual(Array.from({ length: issued }, (_, i) => i + 1));
          // Line seq of the log is record seq: acknowledged only once a sync covering its line returned.
          for (const a of acks) expect(a.seq).toBeLessThanOrEqual(a.durableLines);
          expect(await readLines(path)).toHaveLength(issued);
          if (issued > 0) expect(await verifyLog([path])).toMatchObject({ ok: true, count: issued });
        }),
        { seed: SEED, numRuns: 60 },
      );
    },
    60_000,
  );

  it("starts a lone record's sync within write() and acknowledges it only when that sync returns", async () => {
    const state = heldSyncs(true);
    const sink = await openFileLog(join(dir, "lone.jsonl"), { fs: state.fs });
    let acknowledged = false;
    const written = sink.write(sampleRecord(1)).then(() => (acknowledged = true));
    expect(state.appendedLines).toBe(1);
    expect(state.held).toHaveLength(1);
    await settle();
    expect(acknowledged).toBe(false);
    // Written while that sync is held: they wait for the next commit, all three in one.
    const later = [2, 3, 4].map((n) => sink.write(sampleRecord(n)));
    await settle();
    expect(state.held).toHaveLength(1);
    await state.held.shift()!.release();
    await written;
    expect(acknowledged).toBe(true);
    await settle();
    expect(state.held).toHaveLength(1);
    expect(state.held[0]!.lines).toBe(4);
    await state.held.shift()!.release();
    expect((await Promise.all(later)).map((w) => w.seq)).toEqual([2, 3, 4]);
    expect(sink.stats).toMatchObject({ records: 4, commits: 2, dataSyncs: 2 });
    await sink.close();
  });
});
