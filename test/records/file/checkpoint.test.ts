/**
 * Signed checkpoints in the file log: what the writer signs, and every
 * forgery someone who can write the log's files (but lacks the signing key)
 * can make, each caught by verify with the public key and named by line or
 * file. Forgeries with many variants are generated (every line, every cut).
 */
import { generateKeyPairSync } from "node:crypto";
import { readFile, rename, stat, truncate, unlink, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  DecisionLogError,
  LogCorruptError,
  RecordUnavailableError,
  logFiles,
  openFileLog,
  readLog,
  readSavedCheckpoint,
  verifyLog,
  type VerifyOptions,
} from "../../../adapter/audit/index.js";
import { ed25519, isCheckpointLine, parseEntry, rechain, resign, seal } from "../../helpers/checkpoint.js";
import { readLines, sampleRecord, tempDir, writeLines } from "../../helpers/file-log.js";

const key = ed25519();
const other = ed25519();
const EVERY = 4;

let dir: string;
let cleanup: () => Promise<void>;
let log: string;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  log = join(dir, "decisions.jsonl");
});
afterEach(() => cleanup());

/** A closed log of `records` records signed with `key`, checkpoint every 4; its lines. */
async function signedLog(records = 10, options: { maxBytes?: number; padding?: number } = {}): Promise<string[]> {
  const sink = await openFileLog(log, { checkpointKey: key.privatePem, checkpointEvery: EVERY, ...options });
  for (let n = 1; n <= records; n++) await sink.write(sampleRecord(n, options.padding ?? 0));
  await sink.close();
  return readLines(log);
}

const withKey = (options: VerifyOptions = {}) => verifyLog([log], { publicKeys: key.publicPem, ...options });

/** An approval record as the adapter writes one, forged. */
function forgedApproval(n: number): Record<string, unknown> {
  return {
    type: "approval",
    decision_id: `01J${String(n).padStart(23, "0")}`,
    timestamp: "2026-01-01T00:10:00.000Z",
    reviewer_id: "user:attacker@example.com",
    result: { action: "allow", escalated: false, reasons: [] },
  };
}

describe("a signed log", () => {
  it("without a key, the lines are exactly the records, as before", async () => {
    const sink = await openFileLog(log);
    for (let n = 1; n <= 5; n++) await sink.write(sampleRecord(n));
    await sink.close();
    const lines = await readLines(log);
    expect(lines.map((l) => parseEntry(l).decision_id)).toEqual([1, 2, 3, 4, 5].map((n) => sampleRecord(n)["decision_id"]));
    expect(lines.some(isCheckpointLine)).toBe(false);
    expect(await verifyLog([log])).toEqual({ ok: true, count: 5, head: parseEntry(lines[4] as string).hash, files: [log] });
  });

  it("holds a checkpoint at open, every N records and at close, each covering every entry before it", async () => {
    const lines = await signedLog(10);
    const kinds = lines.map((l) => (isCheckpointLine(l) ? (parseEntry(l)["checkpoint"] as { reason: string }).reason : "record"));
    expect(kinds).toEqual([
      "open",
      ...Array(4).fill("record"),
      "interval",
      ...Array(4).fill("record"),
      "interval",
      "record",
      "record",
      "close",
    ]);
    const logIds = new Set<unknown>();
    lines.forEach((line, i) => {
      const entry = parseEntry(line);
      if (!("checkpoint" in entry)) return;
      const c = entry["checkpoint"] as Record<string, unknown>;
      expect(c).toMatchObject({ seq: i, head: entry.prev_hash, key_id: key.keyId, segment: { index: 0, after_seq: 0 } });
      logIds.add(c["log_id"]);
    });
    expect(logIds.size).toBe(1);
    const result = await withKey({ requireCheckpointed: true });
    expect(result).toMatchObject({
      ok: true,
      count: 14,
      checkpoints: { records: 10, checkpoints: 4, logId: [...logIds][0], uncovered: null, signatures: "verified" },
    });
    if (result.ok) expect(result.checkpoints?.last).toMatchObject({ file: log, line: 14, seq: 14, verified: true, text: lines[13] });
    // Without a key: consistent, but nothing vouched for.
    expect(await verifyLog([log])).toMatchObject({
      ok: true,
      count: 14,
      checkpoints: { signatures: "unchecked", last: { verified: false } },
    });
    // readLog hands on the records only.
    expect((await readLog([log])).map((r) => r.record["seq"])).toEqual([2, 3, 4, 5, 7, 8, 9, 10, 12, 13]);
  });

  it("every session with the key starts with an open checkpoint and ends with a close one", async () => {
    const before = await signedLog(3);
    const sink = await openFileLog(log, { checkpointKey: key.privateKey, checkpointEvery: EVERY });
    await sink.close();
    const after = await readLines(log);
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.slice(before.length).map((l) => (parseEntry(l)["checkpoint"] as { reason: string }).reason)).toEqual(["open", "close"]);
    expect(await withKey({ requireCheckpointed: true })).toMatchObject({ ok: true, checkpoints: { records: 3 } });
  });

  it("a key list: a log signed by one key, then another, verifies with both keys and not with one", async () => {
    await signedLog(3);
    const sink = await openFileLog(log, { checkpointKey: other.privateKey, checkpointEvery: EVERY });
    await sink.write(sampleRecord(4));
    await sink.close();
    expect(await verifyLog([log], { publicKeys: [key.publicPem, other.publicKey], requireCheckpointed: true })).toMatchObject({ ok: true });
    const lines = await readLines(log);
    const firstOfOther =
      lines.findIndex((l) => isCheckpointLine(l) && (parseEntry(l)["checkpoint"] as { key_id: string }).key_id === other.keyId) + 1;
    expect(await withKey()).toEqual({
      ok: false,
      file: log,
      line: firstOfOther,
      reason: `line ${firstOfOther}: checkpoint signed by key ${other.keyId}, which is not among the public keys given`,
    });
  });

  it("refuses a record that uses the reserved field checkpoint", async () => {
    const sink = await openFileLog(log, { checkpointKey: key.privatePem });
    await expect(sink.write({ type: "decision", checkpoint: {} })).rejects.toMatchObject({ code: "record_invalid" });
    await sink.close();
    expect(await withKey({ requireCheckpointed: true })).toMatchObject({ ok: true });
  });
});

describe("the writer", () => {
  it("without the key, refuses to open a signed log (it would leave records no signature covers)", async () => {
    await signedLog(2);
    const opening = openFileLog(log);
    await expect(opening).rejects.toBeInstanceOf(DecisionLogError);
    await expect(opening).rejects.toMatchObject({ code: "checkpoint_key_required", message: expect.stringContaining(key.keyId) });
  });

  it("refuses records after the close checkpoint: a writer with the key writes nothing there", async () => {
    const lines = await signedLog(5);
    const last = parseEntry(lines.at(-1) as string);
    await writeLines(log, [...lines, seal({ ...forgedApproval(1), seq: last.seq + 1, prev_hash: last.hash })]);
    const opening = openFileLog(log, { checkpointKey: key.privatePem });
    await expect(opening).rejects.toBeInstanceOf(LogCorruptError);
    await expect(opening).rejects.toMatchObject({
      file: log,
      line: lines.length + 1,
      reason: expect.stringContaining("1 record after the last checkpoint (the log was closed at"),
    });
  });

  it("after a crash, signs the records the last checkpoint does not cover when it reopens", async () => {
    const lines = await signedLog(6);
    // As a crash leaves it: records after an interval checkpoint, no close checkpoint.
    await writeLines(log, lines.slice(0, -1));
    expect(await withKey({ requireCheckpointed: true })).toMatchObject({
      ok: false,
      line: 7,
      reason: "line 7: 2 records after the last checkpoint (line 6), not covered by a signature",
    });
    const sink = await openFileLog(log, { checkpointKey: key.privatePem, checkpointEvery: EVERY });
    await sink.close();
    const after = await readLines(log);
    expect((parseEntry(after[8] as string)["checkpoint"] as { reason: string }).reason).toBe("open");
    expect(await withKey({ requireCheckpointed: true })).toMatchObject({ ok: true, checkpoints: { records: 6 } });
  });

  it("refuses keys it cannot sign with", async () => {
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    await expect(openFileLog(log, { checkpointKey: ec })).rejects.toMatchObject({
      code: "invalid_options",
      message: expect.stringContaining("must be an Ed25519 key"),
    });
    await expect(openFileLog(log, { checkpointKey: key.publicKey })).rejects.toMatchObject({
      code: "invalid_options",
      message: expect.stringContaining("must be a private key"),
    });
    await expect(openFileLog(log, { checkpointKey: "not a pem" })).rejects.toMatchObject({ code: "invalid_options" });
    await expect(openFileLog(log, { checkpointKey: key.privatePem, checkpointEvery: 0 })).rejects.toMatchObject({
      code: "invalid_options",
    });
    await expect(verifyLog([log], { publicKeys: [] })).rejects.toMatchObject({ code: "invalid_options" });
    await expect(verifyLog([log], { requireCheckpointed: true })).rejects.toMatchObject({ code: "invalid_options" });
  });
});

describe("forgeries, each caught with the public key and named by line", () => {
  it("the tail cut at every line boundary: a saved checkpoint catches every cut; --require-checkpointed every cut that is not back to a checkpoint", async () => {
    const lines = await signedLog(10);
    const saved = readSavedCheckpoint(lines.at(-1) as string);
    let caughtWithoutSaved = 0;
    for (let keep = 0; keep < lines.length; keep++) {
      await writeLines(log, lines.slice(0, keep));
      const context = `cut to ${keep} of ${lines.length} lines`;
      expect(await withKey({ expectCheckpoint: saved }), context).toEqual({
        ok: false,
        file: log,
        line: 0,
        reason: `the log ends at seq ${keep}, below the saved checkpoint at seq ${lines.length}`,
      });
      const strict = await withKey({ requireCheckpointed: true });
      if (keep === 0) {
        expect(strict, context).toEqual({ ok: false, file: log, line: 0, reason: "no signed checkpoint: the log is empty" });
      } else if (isCheckpointLine(lines[keep - 1] as string)) {
        // Cut back to a checkpoint, it looks like a writer that stopped there: only a saved checkpoint shows the cut.
        expect(strict, context).toMatchObject({ ok: true, count: keep });
        continue;
      } else {
        const lastCheckpoint = lines.slice(0, keep).map(isCheckpointLine).lastIndexOf(true) + 1;
        const uncovered = keep - lastCheckpoint;
        expect(strict, context).toEqual({
          ok: false,
          file: log,
          line: lastCheckpoint + 1,
          reason: `line ${lastCheckpoint + 1}: ${uncovered} record${uncovered === 1 ? "" : "s"} after the last checkpoint (line ${lastCheckpoint}), not covered by a signature`,
        });
      }
      caughtWithoutSaved += 1;
      // Reported (not failed) without --require-checkpointed.
      if (keep > 0)
        expect(await withKey(), context).toMatchObject({ ok: true, checkpoints: { uncovered: { entries: expect.any(Number) } } });
    }
    expect(caughtWithoutSaved).toBe(lines.length - 3); // all but the cuts back to the 3 earlier checkpoints
  });

  it("the last record edited and resealed: the close checkpoint no longer chains, and cannot be re-signed", async () => {
    const lines = await signedLog(10);
    const n = lines.length;
    // The last decision turned into an export to somewhere else, its hash redone.
    const edited = { ...parseEntry(lines[n - 2] as string), tool: "crm.export", arguments: { destination: "https://attacker.example" } };
    const resealed = [...lines.slice(0, n - 2), seal(edited), lines[n - 1] as string];
    await writeLines(log, resealed);
    expect(await withKey()).toEqual({ ok: false, file: log, line: n, reason: `line ${n}: prev_hash does not match line ${n - 1}` });
    // The close checkpoint re-chained and re-signed: with the forger's key, or under the real key's id.
    await writeLines(log, rechain(resealed, n - 2, other.privateKey, other.keyId));
    expect(await withKey()).toEqual({
      ok: false,
      file: log,
      line: n,
      reason: `line ${n}: checkpoint signed by key ${other.keyId}, which is not among the public keys given`,
    });
    await writeLines(log, rechain(resealed, n - 2, other.privateKey, key.keyId));
    expect(await withKey()).toEqual({
      ok: false,
      file: log,
      line: n,
      reason: `line ${n}: checkpoint signature does not verify with key ${key.keyId}`,
    });
    // The close checkpoint dropped instead: the edited record is not covered.
    await writeLines(log, resealed.slice(0, -1));
    expect(await withKey({ requireCheckpointed: true })).toMatchObject({
      ok: false,
      line: n - 2,
      reason: expect.stringContaining("2 records after the last checkpoint"),
    });
    // Dropped, and the log made as long again with more forged records: the saved checkpoint's seq holds another entry.
    const saved = readSavedCheckpoint(lines[n - 1] as string);
    const forged = rechain(
      [...resealed.slice(0, -1), seal({ ...forgedApproval(11), seq: 0, prev_hash: "" })],
      n - 2,
      other.privateKey,
      other.keyId,
    );
    await writeLines(log, forged);
    expect(await withKey({ expectCheckpoint: saved })).toMatchObject({
      ok: false,
      line: n,
      reason: expect.stringMatching(new RegExp(`^line ${n}: seq ${n} is not the saved checkpoint: hash sha256:`)),
    });
  });

  it("any record edited and the rest of the log re-chained: caught at the next checkpoint, whatever the record", async () => {
    const lines = await signedLog(10);
    for (let i = 0; i < lines.length; i++) {
      if (isCheckpointLine(lines[i] as string)) continue;
      const edited = { ...parseEntry(lines[i] as string), tool: "crm.export" };
      const next = lines.findIndex((l, j) => j > i && isCheckpointLine(l)) + 1;
      for (const keyId of [other.keyId, key.keyId]) {
        await writeLines(log, rechain([...lines.slice(0, i), seal(edited), ...lines.slice(i + 1)], i, other.privateKey, keyId));
        const result = await withKey();
        expect(result, `record on line ${i + 1}, re-signed as ${keyId}`).toMatchObject({ ok: false, file: log, line: next });
        expect(keyless(await verifyLog([log])), `line ${i + 1}: consistent without a key`).toBe(true);
      }
    }
  });

  it("a forged approval appended with a correct hash: reported, an error with requireCheckpointed, refused by the writer", async () => {
    const lines = await signedLog(6);
    const last = parseEntry(lines.at(-1) as string);
    const approval = seal({ ...forgedApproval(3), seq: last.seq + 1, prev_hash: last.hash });
    await writeLines(log, [...lines, approval]);
    const line = lines.length + 1;
    expect(await verifyLog([log])).toMatchObject({ ok: true, count: line }); // a correct hash: consistent
    expect(await withKey()).toMatchObject({ ok: true, checkpoints: { uncovered: { entries: 1, file: log, line } } });
    expect(await withKey({ requireCheckpointed: true })).toEqual({
      ok: false,
      file: log,
      line,
      reason: `line ${line}: 1 record after the last checkpoint (line ${lines.length}), not covered by a signature`,
    });
    // Covered by a checkpoint the forger signed: not with the real key.
    const covered = rechain([...lines, approval, lines.at(-1) as string], lines.length, other.privateKey, other.keyId);
    await writeLines(log, covered);
    expect(await withKey()).toMatchObject({
      ok: false,
      line: line + 1,
      reason: expect.stringContaining("not among the public keys given"),
    });
    // Slipped in before the close checkpoint instead: the checkpoint no longer chains.
    await writeLines(log, [
      ...lines.slice(0, -1),
      seal({ ...forgedApproval(3), seq: last.seq, prev_hash: last.prev_hash }),
      lines.at(-1) as string,
    ]);
    expect(await withKey()).toEqual({
      ok: false,
      file: log,
      line: line,
      reason: `line ${line}: prev_hash does not match line ${line - 1}`,
    });
  });

  it("the whole file emptied (or removed)", async () => {
    await signedLog(4);
    await writeFile(log, "");
    expect(await withKey()).toEqual({ ok: false, file: log, line: 0, reason: "no signed checkpoint: the log is empty" });
    expect(await verifyLog([log])).toMatchObject({ ok: true, count: 0 }); // without a key, an empty log is a valid one
    await unlink(log);
    expect(await withKey()).toEqual({ ok: false, file: log, line: 0, reason: "cannot read file: ENOENT" });
  });

  it("a byte order mark on any one line, and on every line", async () => {
    const lines = await signedLog(4);
    for (let i = 0; i < lines.length; i++) {
      await writeLines(
        log,
        lines.map((l, j) => (j === i ? `\uFEFF${l}` : l)),
      );
      const expected = { ok: false, file: log, line: i + 1, reason: `line ${i + 1}: byte order mark (U+FEFF) at the start of the line` };
      expect(await withKey(), `BOM on line ${i + 1}`).toEqual(expected);
      expect(await verifyLog([log]), `BOM on line ${i + 1}, no key`).toEqual(expected);
    }
    await writeLines(
      log,
      lines.map((l) => `\uFEFF${l}`),
    );
    expect(await withKey()).toEqual({ ok: false, file: log, line: 1, reason: "line 1: byte order mark (U+FEFF) at the start of the line" });
    await expect(openFileLog(log, { checkpointKey: key.privatePem })).rejects.toMatchObject({ code: "log_corrupt", line: 1 });
  });

  it("a carriage return ending any one line, and CRLF line ends throughout", async () => {
    const lines = await signedLog(4);
    for (let i = 0; i < lines.length; i++) {
      await writeLines(
        log,
        lines.map((l, j) => (j === i ? `${l}\r` : l)),
      );
      const column = (lines[i] as string).length + 1;
      expect(await withKey(), `CR on line ${i + 1}`).toEqual({
        ok: false,
        file: log,
        line: i + 1,
        reason: `line ${i + 1}: carriage return (CR) at column ${column}`,
      });
    }
    await writeFile(log, lines.map((l) => `${l}\r\n`).join(""));
    expect(await withKey()).toMatchObject({ ok: false, line: 1, reason: expect.stringContaining("carriage return (CR)") });
  });

  it("any control byte, BOM or CR put anywhere in any line is named (generated)", async () => {
    const lines = await signedLog(3);
    const original = Buffer.from(lines.map((l) => `${l}\n`).join(""));
    const starts = lines.map((_, i) => lines.slice(0, i).reduce((n, l) => n + Buffer.byteLength(l) + 1, 0));
    const control = fc.integer({ min: 0, max: 0x1f }).filter((b) => b !== 0x0a);
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: lines.length - 1 }),
        fc.nat(),
        fc.option(control, { nil: "BOM" as const }),
        async (lineIndex, at, byte) => {
          const line = lines[lineIndex] as string;
          const column = (at % Buffer.byteLength(line)) + 1;
          const offset = (starts[lineIndex] as number) + column - 1;
          const bytes = byte === "BOM" ? Buffer.from([0xef, 0xbb, 0xbf]) : Buffer.from([byte]);
          await writeFile(log, Buffer.concat([original.subarray(0, offset), bytes, original.subarray(offset)]));
          const result = await withKey();
          expect(result).toMatchObject({ ok: false, file: log, line: lineIndex + 1 });
          if (byte === "BOM") {
            // At the start it is a BOM; inside a string it is a character the writer could have written, so the hash catches it.
            if (column === 1)
              expect(result).toMatchObject({ reason: `line ${lineIndex + 1}: byte order mark (U+FEFF) at the start of the line` });
          } else {
            const what = byte === 0x0d ? "carriage return (CR)" : `control character 0x${byte.toString(16).padStart(2, "0")}`;
            expect(result).toMatchObject({ reason: `line ${lineIndex + 1}: ${what} at column ${column}` });
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it("a checkpoint whose signature was made with another key", async () => {
    const lines = await signedLog(10);
    const at = lines.findIndex((l) => isCheckpointLine(l) && (parseEntry(l)["checkpoint"] as { reason: string }).reason === "interval");
    // Re-signed in place (its hash redone, the rest re-chained), with the other key under either key id.
    await writeLines(
      log,
      rechain(
        [...lines.slice(0, at), seal(resign(parseEntry(lines[at] as string), other.privateKey, other.keyId)), ...lines.slice(at + 1)],
        at,
        other.privateKey,
        other.keyId,
      ),
    );
    expect(await withKey()).toEqual({
      ok: false,
      file: log,
      line: at + 1,
      reason: `line ${at + 1}: checkpoint signed by key ${other.keyId}, which is not among the public keys given`,
    });
    await writeLines(log, rechain(lines, at, other.privateKey, key.keyId));
    expect(await withKey()).toEqual({
      ok: false,
      file: log,
      line: at + 1,
      reason: `line ${at + 1}: checkpoint signature does not verify with key ${key.keyId}`,
    });
    // Its statement changed but its signature kept (a checkpoint claiming another time).
    const changed = parseEntry(lines[at] as string);
    (changed["checkpoint"] as Record<string, unknown>)["time"] = "2030-01-01T00:00:00.000Z";
    await writeLines(log, [...lines.slice(0, at), seal(changed), ...lines.slice(at + 1)]);
    expect(await withKey()).toMatchObject({
      ok: false,
      line: at + 1,
      reason: `line ${at + 1}: checkpoint signature does not verify with key ${key.keyId}`,
    });
  });

  it("a log shorter than a checkpoint saved earlier, or forked from before it", async () => {
    const first = await signedLog(5);
    const saved = readSavedCheckpoint(`${first.at(-1) as string}\n`);
    const sink = await openFileLog(log, { checkpointKey: key.privatePem, checkpointEvery: EVERY });
    for (let n = 6; n <= 9; n++) await sink.write(sampleRecord(n));
    await sink.close();
    const grown = await readLines(log);
    // The log grew past the saved checkpoint: it still holds it.
    expect(await withKey({ expectCheckpoint: saved, requireCheckpointed: true })).toMatchObject({ ok: true, count: grown.length });
    await writeLines(log, grown.slice(0, first.length - 2));
    expect(await withKey({ expectCheckpoint: saved })).toEqual({
      ok: false,
      file: log,
      line: 0,
      reason: `the log ends at seq ${first.length - 2}, below the saved checkpoint at seq ${first.length}`,
    });
    // Rewritten from seq 3 on, re-signed by another key that the verifier also trusts: still not the saved history.
    await writeLines(
      log,
      rechain(
        [...grown.slice(0, 2), seal({ ...parseEntry(grown[2] as string), tool: "crm.export" }), ...grown.slice(3)],
        2,
        other.privateKey,
        other.keyId,
      ),
    );
    expect(await verifyLog([log], { publicKeys: [key.publicPem, other.publicPem], expectCheckpoint: saved })).toMatchObject({
      ok: false,
      line: first.length,
      reason: expect.stringContaining(`seq ${first.length} is not the saved checkpoint`),
    });
  });

  it("a saved checkpoint that was itself tampered with, or signed by another key", async () => {
    const lines = await signedLog(3);
    const text = lines.at(-1) as string;
    expect(() => readSavedCheckpoint(text.replace('"close"', '"interval"'))).toThrow(/hash mismatch/);
    expect(() => readSavedCheckpoint(lines[1] as string)).toThrow(/not a checkpoint line/);
    const forged = readSavedCheckpoint(seal(resign(parseEntry(text), other.privateKey, other.keyId)));
    expect(await withKey({ expectCheckpoint: forged })).toMatchObject({
      ok: false,
      reason: expect.stringContaining("the saved checkpoint is signed by key"),
    });
    const misnamed = readSavedCheckpoint(seal(resign(parseEntry(text), other.privateKey, key.keyId)));
    expect(await withKey({ expectCheckpoint: misnamed })).toMatchObject({
      ok: false,
      reason: "the saved checkpoint's signature does not verify",
    });
  });
});

function keyless(result: Awaited<ReturnType<typeof verifyLog>>): boolean {
  return result.ok;
}

describe("segments", () => {
  const MAX = 1500;

  async function rotatedLog(): Promise<string[]> {
    await signedLog(24, { maxBytes: MAX, padding: 200 });
    const files = await logFiles(log);
    expect(files.length).toBeGreaterThanOrEqual(4);
    return files;
  }

  it("each file but the last ends with a rotation checkpoint naming its segment; each stays within maxBytes plus that line", async () => {
    const files = await rotatedLog();
    let after = { seq: 0, hash: `sha256:${"0".repeat(64)}` };
    for (const [index, file] of files.entries()) {
      const lines = await readLines(file);
      const checkpoints = lines.filter(isCheckpointLine).map((l) => parseEntry(l)["checkpoint"] as Record<string, unknown>);
      for (const c of checkpoints) expect(c["segment"]).toEqual({ index, after_seq: after.seq, after_hash: after.hash });
      if (index < files.length - 1) {
        expect((parseEntry(lines.at(-1) as string)["checkpoint"] as { reason: string }).reason).toBe("rotation");
        expect((await stat(file)).size - Buffer.byteLength(lines.at(-1) as string) - 1).toBeLessThanOrEqual(MAX);
      }
      const last = parseEntry(lines.at(-1) as string);
      after = { seq: last.seq, hash: last.hash };
    }
    expect(await withKey({ requireCheckpointed: true })).toMatchObject({ ok: true, files });
  });

  it("the newest files deleted, one, two, ... all but the first: named by the file before them", async () => {
    const files = await rotatedLog();
    for (let k = files.length - 1; k >= 1; k--) {
      await unlink(files[k] as string);
      const previous = files[k - 1] as string;
      const line = (await readLines(previous)).length;
      const expected = {
        ok: false,
        file: previous,
        line,
        reason: `line ${line}: rotation checkpoint, but ${basename(files[k] as string)}, the file it continues the log in, is missing`,
      };
      expect(await withKey(), `files ${k}.. deleted`).toEqual(expected);
      expect(await verifyLog([log]), "without a key too: the rotation checkpoint is in the chain").toEqual(expected);
      await expect(openFileLog(log, { checkpointKey: key.privatePem })).rejects.toMatchObject({ code: "log_corrupt", file: previous });
    }
  });

  it("the newest file emptied", async () => {
    const files = await rotatedLog();
    const newest = files.at(-1) as string;
    await truncate(newest, 0);
    const previous = files.at(-2) as string;
    expect(await withKey()).toEqual({
      ok: false,
      file: newest,
      line: 0,
      reason: `file is empty, but ${basename(previous)} line ${(await readLines(previous)).length} is a rotation checkpoint that continues the log in it`,
    });
  });

  it("a file renamed: the newest given a later number, a middle one moved out or swapped", async () => {
    const files = await rotatedLog();
    const k = files.length - 1;
    await rename(files[k] as string, `${log}.${k + 1}`);
    expect(await withKey()).toEqual({
      ok: false,
      file: `${log}.${k + 1}`,
      line: 0,
      reason: `segment ${log}.${k} is missing (${basename(log)}.${k + 1} follows ${basename(files[k - 1] as string)})`,
    });
    await rename(`${log}.${k + 1}`, files[k] as string);
    await rename(files[1] as string, `${log}.old`);
    expect(await withKey()).toMatchObject({
      ok: false,
      file: files[2],
      line: 1,
      reason: expect.stringContaining("prev_hash does not match"),
    });
    await rename(`${log}.old`, files[1] as string);
    const [a, b] = [files[1] as string, files[2] as string];
    await rename(a, `${a}.tmp`);
    await rename(b, a);
    await rename(`${a}.tmp`, b);
    expect(await withKey()).toMatchObject({ ok: false, file: a, line: 1 });
    await rename(a, `${a}.tmp`);
    await rename(b, a);
    await rename(`${a}.tmp`, b);
    expect(await withKey({ requireCheckpointed: true })).toMatchObject({ ok: true });
  });

  it("a crash between creating the next file and the rotation checkpoint: the torn checkpoint is cut off on reopen", async () => {
    const files = await rotatedLog();
    const newest = files.at(-1) as string;
    const previous = files.at(-2) as string;
    // As the crash leaves it: the next file exists but is empty, the checkpoint half written.
    await truncate(newest, 0);
    await truncate(previous, (await stat(previous)).size - 40);
    expect(await withKey()).toMatchObject({ ok: false, file: previous, reason: expect.stringContaining("torn final line") });
    const sink = await openFileLog(log, { checkpointKey: key.privatePem, checkpointEvery: EVERY, maxBytes: MAX });
    expect(sink.recovery.tornTail).toMatchObject({ file: previous, action: "truncated" });
    expect((await sink.write(sampleRecord(99))).file).toBe(newest);
    await sink.close();
    expect(await withKey({ requireCheckpointed: true })).toMatchObject({ ok: true });
  });

  it("a crash after the rotation checkpoint, before the first entry of the next file: verify fails until the writer reopens", async () => {
    const files = await rotatedLog();
    await truncate(files.at(-1) as string, 0);
    const sink = await openFileLog(log, { checkpointKey: key.privatePem, checkpointEvery: EVERY, maxBytes: MAX });
    await sink.close();
    const lines = await readLines(files.at(-1) as string);
    expect(lines.map((l) => (parseEntry(l)["checkpoint"] as { reason: string } | undefined)?.reason)).toEqual(["open", "close"]);
    expect(await withKey({ requireCheckpointed: true })).toMatchObject({ ok: true });
  });

  it("a write error on the rotation checkpoint fails the log for good; it reopens and verifies", async () => {
    const { faultyFs } = await import("../../helpers/file-log.js");
    const control = faultyFs();
    const sink = await openFileLog(log, { checkpointKey: key.privatePem, maxBytes: MAX, fs: control.fs });
    await sink.write(sampleRecord(1, 600));
    await sink.write(sampleRecord(2, 600));
    control.fault = "write";
    control.after = control.calls.write; // the next write(2): the rotation checkpoint
    await expect(sink.write(sampleRecord(3, 600))).rejects.toBeInstanceOf(RecordUnavailableError);
    await sink.close();
    const reopened = await openFileLog(log, { checkpointKey: key.privatePem, maxBytes: MAX });
    await reopened.write(sampleRecord(4));
    await reopened.close();
    expect(await withKey({ requireCheckpointed: true })).toMatchObject({ ok: true });
    expect((await readLog([log])).map((r) => r.record["decision_id"])).toEqual([1, 2, 4].map((n) => sampleRecord(n)["decision_id"]));
  });
});

it("the saved checkpoint file round-trips the line verify reports", async () => {
  await signedLog(2);
  const result = await withKey();
  if (!result.ok) throw new Error(result.reason);
  const text = result.checkpoints?.last?.text as string;
  expect(text).toBe((await readFile(log, "utf8")).trimEnd().split("\n").at(-1));
  expect(await withKey({ expectCheckpoint: readSavedCheckpoint(`${text}\n`) })).toMatchObject({ ok: true });
});
