/**
 * Reading a log's files: which files make up a log, and their lines as bytes.
 *
 * A log at PATH is the file PATH followed by its rotated continuations
 * PATH.1, PATH.2, ... in numeric order (the writer never renames a file: the
 * highest-numbered file is the one being appended to). The chain runs
 * through them in that order.
 */
import { constants } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { NotRegularFileError, openRegularFile } from "../../common/files.js";
import { ChainChecker } from "../chain.js";
import { CheckpointTracker, type CheckpointPolicy, type CheckpointSummary, type EntryPlace, type SegmentPlace } from "../checkpoint.js";

const READ_CHUNK = 1 << 20;

/** PATH and its existing continuations PATH.1, PATH.2, ... in chain order. */
export async function logFiles(path: string): Promise<string[]> {
  const base = basename(path);
  const dir = dirname(path);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [path];
  }
  const continuations: { index: number; file: string }[] = [];
  for (const name of names) {
    if (!name.startsWith(`${base}.`)) continue;
    const suffix = name.slice(base.length + 1);
    if (/^[1-9][0-9]*$/.test(suffix)) continuations.push({ index: Number(suffix), file: join(dir, name) });
  }
  continuations.sort((a, b) => a.index - b.index);
  return [path, ...continuations.map((c) => c.file)];
}

/**
 * Each path expanded with logFiles, duplicates (by resolved path) dropped. A
 * continuation PATH.N given beside its PATH is folded into PATH's set, so a
 * shell glob (which sorts PATH.10 before PATH.2) still yields chain order.
 */
export async function expandLogPaths(paths: readonly string[]): Promise<string[]> {
  const given = new Set(paths.map((p) => resolve(p)));
  const seen = new Set<string>();
  const files: string[] = [];
  for (const path of paths) {
    const continuation = /^(.*)\.[1-9][0-9]*$/.exec(path);
    const base = continuation?.[1] !== undefined && given.has(resolve(continuation[1])) ? continuation[1] : path;
    for (const file of await logFiles(base)) {
      const key = resolve(file);
      if (seen.has(key)) continue;
      seen.add(key);
      files.push(file);
    }
  }
  return files;
}

/**
 * Longest line a log may hold, in bytes without its newline: the writer
 * refuses a longer record (record_invalid), and readers stop at a longer line
 * without holding it, so no log file can make a reader use more memory than this.
 */
export const MAX_RECORD_LINE_BYTES = 64 * 1024 * 1024;

export interface ScannedLine {
  /** The line's bytes without its newline; null when it is longer than the limit (not held). */
  readonly bytes: Buffer | null;
  /** The line's length in bytes, without its newline. */
  readonly length: number;
  /** 1-based. */
  readonly line: number;
  /** Byte offset of the line's first byte. */
  readonly offset: number;
  /** False for bytes after the file's last newline. */
  readonly terminated: boolean;
}

/**
 * The lines of a file, split on "\n" only (a "\r" is part of the line). A
 * line is held only up to `maxLineBytes`; beyond that it is counted, not kept.
 */
export async function* scanLines(file: string, maxLineBytes = MAX_RECORD_LINE_BYTES): AsyncGenerator<ScannedLine> {
  const handle = await openRegularFile(file, constants.O_RDONLY);
  try {
    // The start of the current line, from earlier chunks (none once it is over the limit).
    let held: Buffer[] = [];
    let length = 0;
    let offset = 0;
    let position = 0;
    let line = 0;
    const lineOf = (tail: Buffer, terminated: boolean): ScannedLine => {
      const total = length + tail.length;
      let bytes: Buffer | null = null;
      if (total <= maxLineBytes) bytes = held.length === 0 ? tail : Buffer.concat([...held, tail], total);
      return { bytes, length: total, line, offset, terminated };
    };
    for (;;) {
      const chunk = Buffer.allocUnsafe(READ_CHUNK);
      const { bytesRead } = await handle.read(chunk, 0, READ_CHUNK, null);
      if (bytesRead === 0) break;
      const data = chunk.subarray(0, bytesRead);
      let start = 0;
      for (let nl = data.indexOf(0x0a, start); nl !== -1; nl = data.indexOf(0x0a, start)) {
        line += 1;
        yield lineOf(data.subarray(start, nl), true);
        held = [];
        length = 0;
        start = nl + 1;
        offset = position + start;
      }
      const rest = data.subarray(start);
      if (rest.length > 0) {
        length += rest.length;
        // Copied: the rest of a chunk must not keep the whole chunk alive.
        if (length <= maxLineBytes) held.push(Buffer.from(rest));
        else held = [];
      }
      position += bytesRead;
    }
    if (length > 0) {
      line += 1;
      yield lineOf(Buffer.alloc(0), false);
    }
  } finally {
    await handle.close();
  }
}

/**
 * Bytes after the last newline of the log: what a crash mid-write leaves.
 * Usually in the last file; in the one before it when the last file is empty
 * (a crash while rotating: the next file is created before the rotation
 * checkpoint is written to the end of the current one).
 */
export interface TornTail {
  readonly file: string;
  readonly line: number;
  readonly offset: number;
  readonly length: number;
  /**
   * True when the bytes are a whole, valid next entry that only lacks its
   * newline (the crash hit between the entry and its "\n"): the writer then
   * keeps it and adds the newline instead of cutting it off.
   */
  readonly complete: boolean;
}

export interface ChainBreak {
  readonly ok: false;
  readonly file: string;
  /** 1-based; 0 for the file as a whole. */
  readonly line: number;
  /** e.g. "line 7: hash mismatch". */
  readonly reason: string;
}

export interface ChainWalk {
  readonly ok: true;
  readonly files: readonly string[];
  /** Entries in the chain (records and checkpoints): the head's seq. */
  readonly count: number;
  readonly head: string;
  readonly torn: TornTail | null;
  /** Where the last file starts in the chain (what a checkpoint written there names). */
  readonly segment: SegmentPlace;
  /**
   * The log ends with a rotation checkpoint and the file it rotated to is
   * empty: a crash between the two, or the newest file emptied. The writer
   * continues in that file; verify fails.
   */
  readonly danglingRotation: (EntryPlace & { readonly next: string }) | null;
  readonly checkpoints: CheckpointSummary;
}

export interface WalkedRecord {
  readonly file: string;
  readonly line: number;
  readonly record: Readonly<Record<string, unknown>>;
}

function errorCode(error: unknown): string {
  if (error instanceof NotRegularFileError) return error.message.slice(`${error.path} is `.length);
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : String(error);
}

/** N when `file` is `base`.N in the same directory, else null. */
function continuationIndex(base: string, file: string): number | null {
  if (resolve(dirname(file)) !== resolve(dirname(base))) return null;
  const name = basename(file);
  const prefix = `${basename(base)}.`;
  if (!name.startsWith(prefix)) return null;
  const suffix = name.slice(prefix.length);
  return /^[1-9][0-9]*$/.test(suffix) ? Number(suffix) : null;
}

async function isEmptyFile(file: string): Promise<boolean> {
  return await stat(file).then(
    (s) => s.size === 0,
    () => false,
  );
}

/**
 * Check the chain through `files` in order (files[k] is segment k), records
 * and checkpoints alike; `policy` says which keys checkpoint signatures are
 * checked with. Bytes after the log's last newline are reported as `torn`
 * rather than as a break (anywhere else they are a break); whether that is
 * acceptable is the caller's call. `onRecord` sees the records, not the
 * checkpoints.
 */
export async function walkChain(
  files: readonly string[],
  onRecord?: (record: WalkedRecord) => void,
  policy: CheckpointPolicy = { unknownKeys: "accept" },
): Promise<ChainWalk | ChainBreak> {
  const checker = new ChainChecker();
  const tracker = new CheckpointTracker(policy);
  let torn: TornTail | null = null;
  let segment: SegmentPlace = { index: 0, after_seq: 0, after_hash: checker.head };
  // The last entry when it is a rotation checkpoint: nothing may follow it in its file.
  let rotation: EntryPlace | null = null;
  const base = files[0] ?? "";
  for (const [index, file] of files.entries()) {
    const isLast = index === files.length - 1;
    const named = index === 0 ? null : continuationIndex(base, file);
    // The writer numbers files 1, 2, 3 ... without gaps: a gap is a missing or
    // renamed file. Said when the file's first line chains on all the same
    // (otherwise the chain break says it, naming the lines).
    const gap: ChainBreak | null =
      named !== null && named !== index
        ? {
            ok: false,
            file,
            line: 0,
            reason: `segment ${base}.${index} is missing (${basename(file)} follows ${basename(files[index - 1] ?? base)})`,
          }
        : null;
    segment = { index, after_seq: checker.count, after_hash: checker.head };
    if (torn !== null) {
      // Only an empty last file may follow a torn line (see TornTail).
      if (gap === null && isLast && (await isEmptyFile(file))) continue;
      return { ok: false, file: torn.file, line: torn.line, reason: `line ${torn.line}: torn final line` };
    }
    let lines = 0;
    try {
      for await (const scanned of scanLines(file)) {
        lines = scanned.line;
        const place = { file, line: scanned.line };
        if (rotation !== null && rotation.file === file) {
          return {
            ok: false,
            file,
            line: scanned.line,
            reason: `line ${scanned.line}: follows the rotation checkpoint at line ${rotation.line}, which ends its file`,
          };
        }
        if (!scanned.terminated) {
          // Only the writer's own crash states: in the last file, or in the one before an empty last file.
          const laterEmpty = isLast || (index === files.length - 2 && (await isEmptyFile(files[index + 1] as string)));
          if (!laterEmpty) return { ok: false, file, line: scanned.line, reason: `line ${scanned.line}: torn final line` };
          const bytes = scanned.bytes;
          const result = bytes === null ? undefined : checker.accept(bytes, place);
          if (gap !== null) return gap;
          if (result?.ok === true && bytes !== null) {
            const problem = tracker.entry({ ...result, text: () => bytes.toString("utf8") }, place, segment);
            if (problem !== null) return { ok: false, file, line: scanned.line, reason: `line ${scanned.line}: ${problem}` };
            if (result.checkpoint === null) onRecord?.({ ...place, record: result.record });
            rotation = result.checkpoint?.reason === "rotation" ? place : null;
          }
          torn = { ...place, offset: scanned.offset, length: scanned.length, complete: result?.ok === true };
          break;
        }
        if (scanned.bytes === null) {
          return {
            ok: false,
            file,
            line: scanned.line,
            reason: `line ${scanned.line}: longer than ${MAX_RECORD_LINE_BYTES} bytes, which no record is`,
          };
        }
        const bytes = scanned.bytes;
        const result = checker.accept(bytes, place);
        if (!result.ok) return { ok: false, file, line: scanned.line, reason: `line ${scanned.line}: ${result.problem}` };
        if (gap !== null) return gap;
        const problem = tracker.entry({ ...result, text: () => bytes.toString("utf8") }, place, segment);
        if (problem !== null) return { ok: false, file, line: scanned.line, reason: `line ${scanned.line}: ${problem}` };
        if (result.checkpoint === null) onRecord?.({ ...place, record: result.record });
        rotation = result.checkpoint?.reason === "rotation" ? place : null;
      }
    } catch (error) {
      return { ok: false, file, line: 0, reason: `cannot read file: ${errorCode(error)}` };
    }
    if (gap !== null) return gap;
    if (lines === 0 && !isLast) return { ok: false, file, line: 0, reason: "file is empty" };
  }
  let danglingRotation: ChainWalk["danglingRotation"] = null;
  if (rotation !== null) {
    const next = `${base}.${segment.index + (rotation.file === files[files.length - 1] ? 1 : 0)}`;
    if (rotation.file === files[files.length - 1]) {
      return {
        ok: false,
        file: rotation.file,
        line: rotation.line,
        reason: `line ${rotation.line}: rotation checkpoint, but ${basename(next)}, the file it continues the log in, is missing`,
      };
    }
    danglingRotation = { ...rotation, next };
  }
  return { ok: true, files, count: checker.count, head: checker.head, torn, segment, danglingRotation, checkpoints: tracker.summary() };
}
