/**
 * Reading a log's files: which files make up a log, and their lines as bytes.
 *
 * A log at PATH is the file PATH followed by its rotated continuations
 * PATH.1, PATH.2, ... in numeric order (the writer never renames a file: the
 * highest-numbered file is the one being appended to). The chain runs
 * through them in that order.
 */
import { constants } from "node:fs";
import { readdir } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { NotRegularFileError, openRegularFile } from "../files.js";
import { ChainChecker } from "./chain.js";

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

export interface ScannedLine {
  /** The line's bytes without its newline. */
  readonly bytes: Buffer;
  /** 1-based. */
  readonly line: number;
  /** Byte offset of the line's first byte. */
  readonly offset: number;
  /** False for bytes after the file's last newline. */
  readonly terminated: boolean;
}

/**
 * The lines of a file, split on "\n" only (a "\r" is part of the line). A
 * regular file only: /dev/zero would never end, a FIFO never open.
 */
export async function* scanLines(file: string): AsyncGenerator<ScannedLine> {
  const handle = await openRegularFile(file, constants.O_RDONLY);
  try {
    let carry = Buffer.alloc(0);
    let carryOffset = 0;
    let line = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(READ_CHUNK);
      const { bytesRead } = await handle.read(chunk, 0, READ_CHUNK, null);
      if (bytesRead === 0) break;
      const data = carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
      let start = 0;
      for (let nl = data.indexOf(0x0a, start); nl !== -1; nl = data.indexOf(0x0a, start)) {
        line += 1;
        yield { bytes: data.subarray(start, nl), line, offset: carryOffset + start, terminated: true };
        start = nl + 1;
      }
      carryOffset += start;
      carry = Buffer.from(data.subarray(start));
    }
    if (carry.length > 0) yield { bytes: carry, line: line + 1, offset: carryOffset, terminated: false };
  } finally {
    await handle.close();
  }
}

/** Bytes after the last newline of the last file: what a crash mid-write leaves. */
export interface TornTail {
  readonly file: string;
  readonly line: number;
  readonly offset: number;
  readonly length: number;
  /**
   * True when the bytes are a whole, valid next record that only lacks its
   * newline (the crash hit between the record and its "\n"): the writer then
   * keeps the record and adds the newline instead of cutting it off.
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
  readonly count: number;
  readonly head: string;
  readonly torn: TornTail | null;
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

/**
 * Check the chain through `files` in order. Bytes after the last newline of
 * the last file are reported as `torn` rather than as a break (in any other
 * file they are a break); whether that is acceptable is the caller's call.
 */
export async function walkChain(
  files: readonly string[],
  onRecord?: (record: WalkedRecord) => void,
): Promise<ChainWalk | ChainBreak> {
  const checker = new ChainChecker();
  let torn: TornTail | null = null;
  for (const [index, file] of files.entries()) {
    const isLast = index === files.length - 1;
    let lines = 0;
    try {
      for await (const scanned of scanLines(file)) {
        lines = scanned.line;
        const place = { file, line: scanned.line };
        if (!scanned.terminated) {
          if (!isLast) return { ok: false, file, line: scanned.line, reason: `line ${scanned.line}: torn final line` };
          const result = checker.accept(scanned.bytes, place);
          if (result.ok) onRecord?.({ ...place, record: result.record });
          torn = { ...place, offset: scanned.offset, length: scanned.bytes.length, complete: result.ok };
          break;
        }
        const result = checker.accept(scanned.bytes, place);
        if (!result.ok) return { ok: false, file, line: scanned.line, reason: `line ${scanned.line}: ${result.problem}` };
        onRecord?.({ ...place, record: result.record });
      }
    } catch (error) {
      return { ok: false, file, line: 0, reason: `cannot read file: ${errorCode(error)}` };
    }
    if (lines === 0 && !isLast) return { ok: false, file, line: 0, reason: "file is empty" };
  }
  return { ok: true, files, count: checker.count, head: checker.head, torn };
}
