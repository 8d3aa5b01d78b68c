/**
 * Tampering with a closed log: every kind of edit is found by verify, which
 * names the line, and stops the writer from opening the log.
 */
import { createHash } from "node:crypto";
import { readFile, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { GENESIS_HASH, LogCorruptError, canonicalJson, openFileLog, verifyLog } from "../../../adapter/audit/index.js";
import { readLines, sampleRecord, tempDir, writeLines } from "../../helpers/file-log.js";

let dir: string;
let cleanup: () => Promise<void>;
let log: string;
let head: string;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  log = join(dir, "decisions.jsonl");
  const sink = await openFileLog(log);
  for (let n = 1; n <= 10; n++) head = (await sink.write(sampleRecord(n))).hash;
  await sink.close();
});
afterEach(() => cleanup());

async function expectRefused(file: string, line: number, reason: string): Promise<void> {
  expect(await verifyLog([log])).toEqual({ ok: false, file, line, reason });
  const opening = openFileLog(log);
  await expect(opening).rejects.toBeInstanceOf(LogCorruptError);
  await expect(opening).rejects.toMatchObject({ code: "log_corrupt", file, line, reason, message: `${file}: ${reason}` });
}

describe("an untouched log", () => {
  it("verifies, with the count and the head hash the writer returned", async () => {
    expect(await verifyLog([log])).toEqual({ ok: true, count: 10, head, files: [log] });
  });

  it("holds canonical lines whose hash anyone can recompute from the line alone", async () => {
    const lines = await readLines(log);
    let prev = GENESIS_HASH;
    lines.forEach((line, i) => {
      const record = JSON.parse(line) as Record<string, unknown>;
      expect(canonicalJson(record)).toBe(line);
      expect(record).toMatchObject({ ...sampleRecord(i + 1), seq: i + 1, prev_hash: prev });
      const { hash, ...withoutHash } = record;
      expect(hash).toBe(`sha256:${createHash("sha256").update(canonicalJson(withoutHash)).digest("hex")}`);
      prev = hash as string;
    });
    expect(prev).toBe(head);
  });
});

describe("tampering is detected, naming the line", () => {
  it("flipping any single byte of a middle line (line 5)", async () => {
    const original = await readFile(log);
    const lines = await readLines(log);
    const start = lines.slice(0, 4).reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
    const end = start + Buffer.byteLength(lines[4] as string) + 1; // its newline too
    const reasons = new Set<string>();
    for (let at = start; at < end; at++) {
      const copy = Buffer.from(original);
      copy[at] = (copy[at] as number) ^ 0x01;
      await writeFile(log, copy);
      const result = await verifyLog([log]);
      expect(result, `byte ${at - start} of line 5`).toMatchObject({ ok: false, file: log, line: 5 });
      if (!result.ok) reasons.add(result.reason);
    }
    // Different bytes break different things; all of them point at line 5.
    expect([...reasons].sort()).toEqual(
      expect.arrayContaining(["line 5: hash mismatch", "line 5: not valid JSON", "line 5: not canonical JSON"]),
    );
  });

  it("flipping a byte of the last record", async () => {
    const copy = await readFile(log);
    const at = copy.length - 20;
    copy[at] = (copy[at] as number) ^ 0x01;
    await writeFile(log, copy);
    const result = await verifyLog([log]);
    expect(result).toMatchObject({ ok: false, file: log, line: 10 });
  });

  it("deleting a line", async () => {
    const lines = await readLines(log);
    lines.splice(3, 1);
    await writeLines(log, lines);
    await expectRefused(log, 4, "line 4: prev_hash does not match line 3");
  });

  it("deleting the first line", async () => {
    await writeLines(log, (await readLines(log)).slice(1));
    await expectRefused(log, 1, "line 1: prev_hash is not the start of the chain");
  });

  it("swapping two lines", async () => {
    const lines = await readLines(log);
    [lines[2], lines[3]] = [lines[3] as string, lines[2] as string];
    await writeLines(log, lines);
    await expectRefused(log, 3, "line 3: prev_hash does not match line 2");
  });

  it("editing one field, keeping the line canonical", async () => {
    const lines = await readLines(log);
    const record = JSON.parse(lines[6] as string) as { result: { action: string } };
    record.result.action = "deny";
    lines[6] = canonicalJson(record);
    await writeLines(log, lines);
    await expectRefused(log, 7, "line 7: hash mismatch");
  });

  it("editing one field and recomputing its hash: the next line no longer chains", async () => {
    const lines = await readLines(log);
    const { hash: _old, ...record } = JSON.parse(lines[6] as string) as Record<string, unknown> & {
      result: { action: string };
    };
    record.result.action = "deny";
    const forged = { ...record, hash: `sha256:${createHash("sha256").update(canonicalJson(record)).digest("hex")}` };
    lines[6] = canonicalJson(forged);
    await writeLines(log, lines);
    await expectRefused(log, 8, "line 8: prev_hash does not match line 7");
  });

  it("re-serializing a line non-canonically (white space, key order)", async () => {
    const lines = await readLines(log);
    lines[1] = JSON.stringify(JSON.parse(lines[1] as string), null, 1).replaceAll("\n", "");
    await writeLines(log, lines);
    await expectRefused(log, 2, "line 2: not canonical JSON");
  });

  it("inserting an empty line", async () => {
    const lines = await readLines(log);
    lines.splice(5, 0, "");
    await writeLines(log, lines);
    await expectRefused(log, 6, "line 6: empty line");
  });

  it("duplicating a line", async () => {
    const lines = await readLines(log);
    lines.splice(5, 0, lines[4] as string);
    await writeLines(log, lines);
    await expectRefused(log, 6, "line 6: prev_hash does not match line 5");
  });

  it("truncating mid-line in the middle of the log (verify: torn final line)", async () => {
    const lines = await readLines(log);
    const cut = lines.slice(0, 4).reduce((n, l) => n + Buffer.byteLength(l) + 1, 0) + 30;
    await truncate(log, cut);
    expect(await verifyLog([log])).toEqual({ ok: false, file: log, line: 5, reason: "line 5: torn final line" });
  });

  it("truncating mid-line in the last record (verify: torn final line)", async () => {
    const size = (await readFile(log)).length;
    await truncate(log, size - 10);
    expect(await verifyLog([log])).toEqual({ ok: false, file: log, line: 10, reason: "line 10: torn final line" });
  });

  it("invalid UTF-8", async () => {
    const copy = await readFile(log);
    const lines = await readLines(log);
    const at = Buffer.byteLength(lines[0] as string) + 10;
    copy[at] = 0xff;
    await writeFile(log, copy);
    await expectRefused(log, 2, "line 2: not valid UTF-8");
  });
});

describe("verify's other answers", () => {
  it("a missing file", async () => {
    const missing = join(dir, "nope.jsonl");
    expect(await verifyLog([missing])).toEqual({
      ok: false,
      file: missing,
      line: 0,
      reason: "cannot read file: ENOENT",
    });
  });

  it("an empty file is an empty, valid log", async () => {
    const empty = join(dir, "empty.jsonl");
    await writeFile(empty, "");
    expect(await verifyLog([empty])).toEqual({ ok: true, count: 0, head: GENESIS_HASH, files: [empty] });
  });

  it("a forged record that chains and hashes right but skips a seq", async () => {
    const lines = await readLines(log);
    const { hash: _hash, ...ninth } = JSON.parse(lines[8] as string) as Record<string, unknown>;
    const forged: Record<string, unknown> = { ...ninth, seq: 12 };
    forged.hash = `sha256:${createHash("sha256").update(canonicalJson(forged)).digest("hex")}`;
    await writeLines(log, [...lines.slice(0, 8), canonicalJson(forged)]);
    await expectRefused(log, 9, "line 9: seq 12, expected 9");
  });

  it("a line that is JSON but not an object, or lacks the chain fields", async () => {
    const lines = await readLines(log);
    await writeLines(log, [...lines.slice(0, 2), "[1,2]"]);
    expect(await verifyLog([log])).toMatchObject({ line: 3, reason: "line 3: not a JSON object" });
    await writeLines(log, [...lines.slice(0, 2), canonicalJson({ seq: 3, prev_hash: "x" })]);
    expect(await verifyLog([log])).toMatchObject({ line: 3, reason: "line 3: prev_hash missing or malformed" });
    await writeLines(log, [...lines.slice(0, 2), "{}"]);
    expect(await verifyLog([log])).toMatchObject({ line: 3, reason: "line 3: seq missing or not a positive integer" });
    await writeLines(log, [...lines.slice(0, 2), '{"a":"\\udc00"}']);
    expect(await verifyLog([log])).toMatchObject({ line: 3, reason: "line 3: not canonical JSON" });
    await writeLines(log, [...lines.slice(0, 2), canonicalJson({ a: 1 })]);
    expect(await verifyLog([log])).toMatchObject({ line: 3, reason: "line 3: seq missing or not a positive integer" });
  });
});
