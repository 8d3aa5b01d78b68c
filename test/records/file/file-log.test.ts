/** The writer: chain across reopen and rotation, recovery on open, the lock, refused records. */
import { spawnSync } from "node:child_process";
import { appendFile, readdir, readFile, rename, stat, truncate, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  DecisionLogError,
  GENESIS_HASH,
  LogCorruptError,
  LogLockedError,
  RecordUnavailableError,
  logFiles,
  openFileLog,
  readLog,
  verifyLog,
  type WrittenRecord,
} from "../../../adapter/audit/index.js";
import { readLines, sampleRecord, tempDir } from "../../helpers/file-log.js";

let dir: string;
let cleanup: () => Promise<void>;
let log: string;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  log = join(dir, "decisions.jsonl");
});
afterEach(() => cleanup());

/** Log lines as a pino logger would hand them on: parsed objects with their message. */
function captureLogger() {
  const lines: { level: string; msg: string; [key: string]: unknown }[] = [];
  const at = (level: string) => (fields: object, msg: string) => lines.push({ level, msg, ...fields });
  return { lines, logger: { info: at("info"), warn: at("warn"), error: at("error") } };
}

describe("writing and reopening", () => {
  it("creates the log, chains from the genesis hash and acknowledges with seq and hash", async () => {
    const sink = await openFileLog(log);
    expect(sink.recovery).toEqual({ files: [log], records: 0, head: GENESIS_HASH, tornTail: null, staleLockFrom: null });
    const first = await sink.write(sampleRecord(1));
    const second = await sink.write(sampleRecord(2));
    expect(first).toMatchObject({ seq: 1, file: log });
    expect(second).toMatchObject({ seq: 2, file: log });
    expect(sink.head).toBe(second.hash);
    expect(sink.stats).toMatchObject({ records: 2, dataSyncs: 2, directorySyncs: 1 });
    await sink.close();
    const [line1, line2] = (await readLines(log)).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(line1).toMatchObject({ seq: 1, prev_hash: GENESIS_HASH, hash: first.hash });
    expect(line2).toMatchObject({ seq: 2, prev_hash: first.hash, hash: second.hash });
  });

  it("continues the chain after a reopen", async () => {
    let sink = await openFileLog(log);
    await sink.write(sampleRecord(1));
    const { hash } = await sink.write(sampleRecord(2));
    await sink.close();
    sink = await openFileLog(log);
    expect(sink.recovery).toMatchObject({ records: 2, head: hash, tornTail: null });
    expect(await sink.write(sampleRecord(3))).toMatchObject({ seq: 3 });
    await sink.close();
    expect(await verifyLog([log])).toMatchObject({ ok: true, count: 3 });
    expect((await readLog([log])).map((r) => [r.line, r.record.seq, r.record.decision_id])).toEqual([
      [1, 1, sampleRecord(1).decision_id],
      [2, 2, sampleRecord(2).decision_id],
      [3, 3, sampleRecord(3).decision_id],
    ]);
  });

  it("refuses a record it cannot hash (record_invalid) and stays usable", async () => {
    const sink = await openFileLog(log);
    await sink.write(sampleRecord(1));
    for (const bad of [{ ...sampleRecord(2), hash: "x" }, { ...sampleRecord(2), seq: 9 }, { a: undefined }, { n: Number.NaN }]) {
      const writing = sink.write(bad);
      await expect(writing).rejects.toBeInstanceOf(RecordUnavailableError);
      await expect(writing).rejects.toMatchObject({ code: "record_invalid", cause: { code: "not_canonical_json" } });
    }
    await expect(sink.write([])).rejects.toMatchObject({ code: "record_invalid" });
    const hostile = Object.defineProperty({}, "boom", {
      enumerable: true,
      get() {
        throw new Error("getter threw");
      },
    });
    await expect(sink.write(hostile)).rejects.toMatchObject({ code: "record_invalid", cause: { message: "getter threw" } });
    expect(await sink.write(sampleRecord(2))).toMatchObject({ seq: 2 });
    expect(sink.failure).toBeNull();
    await sink.close();
    expect(await verifyLog([log])).toMatchObject({ ok: true, count: 2 });
  });

  it("keeps a caller's __proto__ key as a field", async () => {
    const sink = await openFileLog(log);
    const record = JSON.parse('{"decision_id":"d1","arguments":{"__proto__":{"isAdmin":true}}}') as object;
    await sink.write(record);
    await sink.close();
    const [read] = await readLog([log]);
    expect(Object.keys(read?.record.arguments ?? {})).toEqual(["__proto__"]);
  });

  it("rejects writes after close with record_unavailable; close is idempotent and waits for writes in flight", async () => {
    const sink = await openFileLog(log);
    const inFlight = sink.write(sampleRecord(1));
    const closing = sink.close();
    await expect(sink.write(sampleRecord(2))).rejects.toMatchObject({ code: "record_unavailable" });
    await expect(inFlight).resolves.toMatchObject({ seq: 1 });
    await closing;
    await sink.close();
    expect(await verifyLog([log])).toMatchObject({ ok: true, count: 1 });
  });

  it("refuses bad options", async () => {
    for (const maxBytes of [0, -1, 1.5, Number.NaN]) {
      await expect(openFileLog(log, { maxBytes })).rejects.toMatchObject({ code: "invalid_options" });
    }
    await expect(openFileLog(log, { maxBytes: 0 })).rejects.toBeInstanceOf(DecisionLogError);
  });
});

describe("recovery on open", () => {
  async function writeTen(): Promise<string[]> {
    const sink = await openFileLog(log);
    const hashes: string[] = [];
    for (let n = 1; n <= 10; n++) hashes.push((await sink.write(sampleRecord(n))).hash);
    await sink.close();
    return hashes;
  }

  it("cuts off a torn final line, syncs, reports it, and continues the chain", async () => {
    const hashes = await writeTen();
    const sizeOfNine = (await readLines(log)).slice(0, 9).reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
    await truncate(log, sizeOfNine + 57);
    const { lines, logger } = captureLogger();
    const sink = await openFileLog(log, { logger });
    expect(sink.recovery).toEqual({
      files: [log],
      records: 9,
      head: hashes[8],
      tornTail: { file: log, line: 10, offset: sizeOfNine, length: 57, action: "truncated" },
      staleLockFrom: null,
    });
    expect(lines.filter((l) => l.level === "warn")).toEqual([
      {
        level: "warn",
        msg: "decision log: cut off a torn final line (crash mid-write)",
        log,
        file: log,
        line: 10,
        bytes: 57,
        action: "truncated",
      },
    ]);
    expect((await stat(log)).size).toBe(sizeOfNine);
    expect(await sink.write(sampleRecord(99))).toMatchObject({ seq: 10 });
    await sink.close();
    expect(await verifyLog([log])).toMatchObject({ ok: true, count: 10 });
  });

  it("keeps a whole final record that only lacks its newline, adding the newline", async () => {
    const hashes = await writeTen();
    const size = (await stat(log)).size;
    await truncate(log, size - 1);
    expect(await verifyLog([log])).toMatchObject({ ok: false, line: 10, reason: "line 10: torn final line" });
    const sink = await openFileLog(log);
    expect(sink.recovery).toMatchObject({ records: 10, head: hashes[9], tornTail: { line: 10, action: "completed" } });
    await sink.close();
    expect((await stat(log)).size).toBe(size);
    expect(await verifyLog([log])).toMatchObject({ ok: true, count: 10, head: hashes[9] });
  });

  it("treats a final line that is newline-terminated but damaged as damage, not as torn", async () => {
    await writeTen();
    const lines = await readLines(log);
    await writeFile(log, [...lines.slice(0, 9), (lines[9] as string).slice(0, 40)].map((l) => `${l}\n`).join(""));
    await expect(openFileLog(log)).rejects.toMatchObject({ file: log, line: 10, reason: "line 10: not valid JSON" });
    expect((await readLines(log)).length).toBe(10); // nothing cut
  });

  it("a torn line alone in a fresh log leaves an empty log", async () => {
    await writeFile(log, '{"decision_id":"d1","has');
    const sink = await openFileLog(log);
    expect(sink.recovery).toMatchObject({ records: 0, head: GENESIS_HASH, tornTail: { line: 1, offset: 0, action: "truncated" } });
    await sink.close();
    expect((await stat(log)).size).toBe(0);
  });

  it("refuses to open a log damaged in the middle, naming file and line, and releases the lock", async () => {
    await writeTen();
    const lines = await readLines(log);
    lines[4] = (lines[4] as string).replace('"allow"', '"deny"');
    await writeFile(log, lines.map((l) => `${l}\n`).join(""));
    const opening = openFileLog(log);
    await expect(opening).rejects.toBeInstanceOf(LogCorruptError);
    await expect(opening).rejects.toThrow(`${log}: line 5: hash mismatch`);
    expect(await readdir(dir)).toEqual(["decisions.jsonl"]);
  });
});

describe("rotation", () => {
  it("continues the chain through PATH.1, PATH.2 ... and verify follows it", async () => {
    const maxBytes = 2000;
    const sink = await openFileLog(log, { maxBytes });
    const written: WrittenRecord[] = [];
    for (let n = 1; n <= 40; n++) written.push(await sink.write(sampleRecord(n, n * 7)));
    expect(sink.stats.directorySyncs).toBe(new Set(written.map((w) => w.file)).size);
    await sink.close();
    const files = await logFiles(log);
    expect(files.length).toBeGreaterThan(5);
    expect(files).toEqual([log, ...files.slice(1).map((_, i) => `${log}.${i + 1}`)]);
    for (const file of files) {
      const size = (await stat(file)).size;
      expect(size).toBeLessThanOrEqual(maxBytes);
    }
    expect(written.map((w) => w.file)).toEqual(
      [...new Set(written.map((w) => w.file))].flatMap((f) => written.filter((w) => w.file === f).map(() => f)),
    );
    // The first record of each continuation chains to the last record of the file before it.
    for (let i = 1; i < files.length; i++) {
      const previous = (await readLines(files[i - 1] as string)).at(-1) as string;
      const first = (await readLines(files[i] as string))[0] as string;
      expect(JSON.parse(first).prev_hash).toBe(JSON.parse(previous).hash);
    }
    expect(await verifyLog([log])).toEqual({ ok: true, count: 40, head: written[39]?.hash, files });
    // Shell-glob order (PATH.1, PATH.10, PATH.2 ...) and repeats do not matter.
    expect(await verifyLog([...files].sort().reverse().concat(log))).toMatchObject({ ok: true, count: 40 });
    // Exactly the files given, in the order given:
    expect(await verifyLog([...files].sort(), { expand: false })).toMatchObject({ ok: false });
    expect(await verifyLog(files.slice(1), { expand: false })).toMatchObject({
      ok: false,
      file: files[1],
      line: 1,
      reason: "line 1: prev_hash is not the start of the chain",
    });

    const reopened = await openFileLog(log, { maxBytes });
    expect(reopened.recovery).toMatchObject({ files, records: 40 });
    expect(await reopened.write(sampleRecord(41))).toMatchObject({ seq: 41 });
    await reopened.close();
    expect(await verifyLog([log])).toMatchObject({ ok: true, count: 41 });
  });

  it("detects a removed or renamed middle file", async () => {
    const sink = await openFileLog(log, { maxBytes: 1500 });
    for (let n = 1; n <= 20; n++) await sink.write(sampleRecord(n, 200));
    await sink.close();
    const files = await logFiles(log);
    await unlink(files[2] as string);
    const expected = {
      ok: false,
      file: files[3],
      line: 1,
      reason: `line 1: prev_hash does not match ${files[1]} line ${(await readLines(files[1] as string)).length}`,
    };
    expect(await verifyLog([log])).toEqual(expected);
    await expect(openFileLog(log)).rejects.toMatchObject({ code: "log_corrupt", reason: expected.reason });
    await rename(files[1] as string, `${log}.bak`);
    expect(await verifyLog([log])).toMatchObject({ ok: false, file: files[3], line: 1 });
  });

  it("puts a record bigger than maxBytes in a file of its own", async () => {
    const sink = await openFileLog(log, { maxBytes: 500 });
    const a = await sink.write(sampleRecord(1));
    const b = await sink.write(sampleRecord(2, 2000));
    const c = await sink.write(sampleRecord(3));
    await sink.close();
    expect([a.file, b.file, c.file]).toEqual([log, `${log}.1`, `${log}.2`]);
    expect(await verifyLog([log])).toMatchObject({ ok: true, count: 3 });
  });
});

describe("one writer per log", () => {
  it("refuses a second writer while the first is open, with LogLockedError naming the holder", async () => {
    const first = await openFileLog(log);
    const second = openFileLog(log);
    await expect(second).rejects.toBeInstanceOf(LogLockedError);
    await expect(second).rejects.toMatchObject({ code: "log_locked", pid: process.pid, lockPath: `${log}.lock` });
    await first.close();
    const third = await openFileLog(log);
    await third.close();
    expect(await readdir(dir)).toEqual(["decisions.jsonl"]);
  });

  it("refuses a lock held by another live process", async () => {
    await writeFile(`${log}.lock`, `${process.ppid}\n`);
    await expect(openFileLog(log)).rejects.toMatchObject({ code: "log_locked", pid: process.ppid });
  });

  it("takes over the stale lock of a writer that died, and says so", async () => {
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
    const deadPid = Number(dead.stdout);
    await writeFile(`${log}.lock`, `${deadPid}\n`);
    const { lines, logger } = captureLogger();
    const sink = await openFileLog(log, { logger });
    expect(sink.recovery.staleLockFrom).toBe(deadPid);
    expect(lines[0]).toMatchObject({ level: "warn", pid: deadPid });
    expect(await readFile(`${log}.lock`, "utf8")).toBe(`${process.pid}\n`);
    await sink.close();
    await expect(stat(`${log}.lock`)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("refuses a lock file that holds no pid, telling the operator what to do", async () => {
    await writeFile(`${log}.lock`, "");
    await expect(openFileLog(log)).rejects.toThrow(/holds no pid; if no process writes .* remove it/);
  });

  it("refuses to start a log whose first file is gone but whose continuations exist", async () => {
    await appendFile(`${log}.1`, "");
    await expect(openFileLog(log)).rejects.toMatchObject({ code: "log_corrupt", file: log, line: 0 });
  });
});

describe("opening in a directory that does not exist", () => {
  it("says so, naming the directory, instead of failing on the lock file", async () => {
    const { openFileLog } = await import("../../../adapter/audit/index.js");
    const { dir, cleanup } = await tempDir();
    try {
      const missing = join(dir, "no-such-dir", "decisions.jsonl");
      await expect(openFileLog(missing)).rejects.toMatchObject({
        code: "invalid_options",
        message: expect.stringContaining(`directory ${join(dir, "no-such-dir")} does not exist`),
      });
    } finally {
      await cleanup();
    }
  });
});

describe("error hierarchy", () => {
  it("the decision log's and the PostgreSQL store's errors are VetoErrors", async () => {
    const { VetoError, DecisionLogError } = await import("../../../adapter/index.js");
    const { PostgresStoreError } = await import("../../../adapter/postgres/index.js");
    const log = new DecisionLogError("log_corrupt", "x");
    const pg = new PostgresStoreError("schema_not_migrated", "y");
    expect(log).toBeInstanceOf(VetoError);
    expect(pg).toBeInstanceOf(VetoError);
    expect([log.name, log.code, pg.name, pg.code]).toEqual([
      "DecisionLogError",
      "log_corrupt",
      "PostgresStoreError",
      "schema_not_migrated",
    ]);
  });
});
