/**
 * Group commit (concurrent writes share one write and one fdatasync) and fail
 * closed (a failed write or sync fails the sink for good). The fault-injecting
 * file system wraps the real one: real files, with chosen calls failing.
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RecordUnavailableError, openFileLog, verifyLog } from "../../../adapter/audit/index.js";
import { faultyFs, sampleRecord, tempDir, type Fault } from "../../helpers/file-log.js";

let dir: string;
let cleanup: () => Promise<void>;
let log: string;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  log = join(dir, "decisions.jsonl");
});
afterEach(() => cleanup());

describe("group commit", () => {
  it("commits 64 concurrent writes with far fewer syncs, all acknowledged, in order, present", async () => {
    const sink = await openFileLog(log);
    const written = await Promise.all(Array.from({ length: 64 }, (_, i) => sink.write(sampleRecord(i + 1))));
    expect(written.map((w) => w.seq)).toEqual(Array.from({ length: 64 }, (_, i) => i + 1));
    // The first is appended and its sync started within its write() call; the 63 issued while
    // that sync runs share the next commit: one write(2), one fdatasync(2).
    expect(sink.stats).toMatchObject({ records: 64, commits: 2, dataSyncs: 2 });
    await sink.close();
    expect(await verifyLog([log])).toMatchObject({ ok: true, count: 64, head: written[63]?.hash });
  });

  it("keeps syncs per record well under one under sustained concurrent load, and reports throughput", async () => {
    const measure = async (concurrency: number, total: number) => {
      const file = join(dir, `load-${concurrency}.jsonl`);
      const sink = await openFileLog(file);
      let next = 0;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < total) await sink.write(sampleRecord(++next));
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      const { records, dataSyncs } = sink.stats;
      await sink.close();
      expect(await verifyLog([file])).toMatchObject({ ok: true, count: total });
      return { concurrency, records, dataSyncs, syncsPerRecord: dataSyncs / records, perSecond: Math.round(records / seconds) };
    };
    const one = await measure(1, 300);
    const many = await measure(64, 6400);
    console.info(`decision log throughput: ${JSON.stringify([one, many])}`);
    expect(one.syncsPerRecord).toBe(1);
    // 64 writers that each write again as soon as acknowledged: one sync per 64 records.
    expect(many.syncsPerRecord).toBeLessThan(0.05);
    expect(many.perSecond).toBeGreaterThan(one.perSecond * 2);
  });
});

describe("fail closed", () => {
  it.each<[Fault, number, boolean]>([
    ["datasync", 3, false],
    ["write", 3, false],
    ["short-write-then-fail", 3, false],
    ["datasync", 3, true],
    ["write", 3, true],
    ["short-write-then-fail", 3, true],
  ])(
    "a failing %s fails the sink for good: the write in flight and every later one reject (appending at once: %s)",
    async (fault, after, appendNow) => {
      const { fs, calls } = faultyFs(fault, after, { appendNow });
      const sink = await openFileLog(log, { fs });
      for (let n = 1; n <= 3; n++) await sink.write(sampleRecord(n));
      const inFlight = await Promise.allSettled([1, 2, 3].map((i) => sink.write(sampleRecord(3 + i))));
      for (const outcome of inFlight) {
        expect(outcome.status).toBe("rejected");
        const error = (outcome as PromiseRejectedResult).reason as RecordUnavailableError;
        expect(error).toBeInstanceOf(RecordUnavailableError);
        expect(error.code).toBe("record_unavailable");
        expect(error.cause).toMatchObject({ code: "EIO" });
      }
      expect(sink.failure).toBeInstanceOf(RecordUnavailableError);
      const sizeAfterFailure = (await stat(log)).size;
      const callsAfterFailure = { ...calls };
      // Never retried: later writes reject at once without touching the file.
      for (let n = 7; n <= 10; n++) {
        await expect(sink.write(sampleRecord(n))).rejects.toBe(sink.failure);
      }
      expect(calls).toEqual(callsAfterFailure);
      expect((await stat(log)).size).toBe(sizeAfterFailure);
      expect(sink.stats.records).toBe(3);
      await sink.close();
      // Whatever reached the file, the three acknowledged records are there and the log reopens.
      const reopened = await openFileLog(log);
      expect(reopened.recovery.records).toBeGreaterThanOrEqual(3);
      await reopened.close();
      expect(await verifyLog([log])).toMatchObject({ ok: true });
    },
  );

  it("a failing directory sync when the log is created refuses to open it", async () => {
    const { fs } = faultyFs("sync", 0);
    await expect(openFileLog(log, { fs })).rejects.toMatchObject({ code: "EIO" });
    // The lock was released: a healthy writer can open it.
    await (await openFileLog(log)).close();
  });

  it("a failing directory sync on rotation fails the sink", async () => {
    const { fs } = faultyFs("sync", 1); // the first sync is the one on create
    const sink = await openFileLog(log, { fs, maxBytes: 600 });
    await sink.write(sampleRecord(1));
    const rotating = sink.write(sampleRecord(2, 300));
    await expect(rotating).rejects.toMatchObject({ code: "record_unavailable", cause: { code: "EIO" } });
    await expect(sink.write(sampleRecord(3))).rejects.toMatchObject({ code: "record_unavailable" });
    await sink.close();
    expect((await readFile(log, "utf8")).split("\n").length).toBe(2);
  });

  it("reports the failure through the logger once", async () => {
    const errors: object[] = [];
    const logger = { info: () => undefined, warn: () => undefined, error: (fields: object) => errors.push(fields) };
    const { fs } = faultyFs("datasync", 0);
    const sink = await openFileLog(log, { fs, logger });
    await Promise.allSettled([sink.write(sampleRecord(1)), sink.write(sampleRecord(2))]);
    await expect(sink.write(sampleRecord(3))).rejects.toMatchObject({ code: "record_unavailable" });
    expect(errors).toEqual([expect.objectContaining({ log, err: expect.objectContaining({ code: "EIO" }) })]);
    await sink.close();
  });
});
