/**
 * Verifying a log without writing to it: every line canonical JSON, every
 * hash right, every prev_hash the hash before it, seq 1, 2, 3 ... across all
 * the log's files, and every file ending in a newline.
 */
import { LogCorruptError } from "./errors.js";
import { expandLogPaths, walkChain, type ChainBreak, type WalkedRecord } from "./segments.js";

export interface VerifyOk {
  readonly ok: true;
  /** Records in the chain. */
  readonly count: number;
  /** `hash` of the last record ("sha256:" + 64 zeros for an empty log). */
  readonly head: string;
  /** The files verified, in chain order. */
  readonly files: readonly string[];
}

export type VerifyFailure = ChainBreak;
export type VerifyResult = VerifyOk | VerifyFailure;

export interface VerifyOptions {
  /**
   * Expand each path to the path and its rotated continuations PATH.1,
   * PATH.2, ... (see logFiles). Default true; false verifies exactly the files
   * given, in the order given, as one chain.
   */
  readonly expand?: boolean;
}

/**
 * Verify the log at `paths` as one chain from its first record. Never throws
 * for a damaged or missing file: the result names the first bad file and line
 * and says why ("line 7: hash mismatch", "line 9: torn final line",
 * "line 4: prev_hash does not match line 3", "cannot read file: ENOENT").
 * A hash chain cannot show that records were cut off the end: compare `head`
 * and `count` with a copy kept elsewhere for that.
 */
export async function verifyLog(paths: readonly string[], options: VerifyOptions = {}): Promise<VerifyResult> {
  const files = options.expand === false ? [...paths] : await expandLogPaths(paths);
  const walk = await walkChain(files);
  if (!walk.ok) return walk;
  if (walk.torn !== null) {
    return { ok: false, file: walk.torn.file, line: walk.torn.line, reason: `line ${walk.torn.line}: torn final line` };
  }
  return { ok: true, count: walk.count, head: walk.head, files: walk.files };
}

/**
 * Every record of a log, in order, after verifying the whole chain (what
 * replay reads). Rejects with LogCorruptError when verify would fail. Holds
 * the records in memory.
 */
export async function readLog(paths: readonly string[], options: VerifyOptions = {}): Promise<WalkedRecord[]> {
  const files = options.expand === false ? [...paths] : await expandLogPaths(paths);
  const records: WalkedRecord[] = [];
  const walk = await walkChain(files, (record) => records.push(record));
  if (!walk.ok) throw new LogCorruptError(walk.file, walk.line, walk.reason);
  if (walk.torn !== null) {
    throw new LogCorruptError(walk.torn.file, walk.torn.line, `line ${walk.torn.line}: torn final line`);
  }
  return records;
}
