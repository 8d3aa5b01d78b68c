/**
 * Verifying a log without writing to it: every line canonical JSON, every
 * hash right, every prev_hash the hash before it, seq 1, 2, 3 ... across all
 * the log's files, files numbered without gaps, and every file ending in a
 * newline. With public keys, also every checkpoint's signature, and what the
 * checkpoints cover (see checkpoint.ts and docs/decision-log.md).
 */
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { checkEntryLine } from "../chain.js";
import {
  checkpointPublicKeys,
  checkpointSignatureValid,
  coverageProblem,
  parseSavedCheckpoint,
  type CheckpointKeyInput,
  type CheckpointSummary,
  type SavedCheckpoint,
  type SeenCheckpoint,
} from "../checkpoint.js";
import { DecisionLogError, LogCorruptError } from "../errors.js";
import { expandLogPaths, walkChain, type ChainBreak, type WalkedRecord } from "./segments.js";

export interface VerifyOk {
  readonly ok: true;
  /** Entries in the chain: records, and checkpoints when the log has them. */
  readonly count: number;
  /** `hash` of the last entry ("sha256:" + 64 zeros for an empty log). */
  readonly head: string;
  /** The files verified, in chain order. */
  readonly files: readonly string[];
  /** Present when the log holds checkpoints or public keys were given. */
  readonly checkpoints?: CheckpointReport;
}

/** What verify found out about a log's checkpoints. */
export interface CheckpointReport {
  readonly records: number;
  readonly checkpoints: number;
  /** The log id its checkpoints name (null: none). */
  readonly logId: string | null;
  /** The last checkpoint: where it is, what it covers (seq 1..seq-1), and its line. */
  readonly last: SeenCheckpoint | null;
  /** Entries after the last checkpoint, which no signature covers yet, and where the first is. */
  readonly uncovered: CheckpointSummary["uncovered"];
  /** "verified": every checkpoint's signature checked with the keys given; "unchecked": no keys were given. */
  readonly signatures: "verified" | "unchecked";
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
  /**
   * Ed25519 public keys (PEM, bytes or KeyObject) the checkpoints must be
   * signed with, any one per checkpoint (picked by key id). With keys, a
   * checkpoint that does not verify, or a log with no checkpoint at all,
   * fails. Default: none (checkpoints are checked for consistency only).
   */
  readonly publicKeys?: CheckpointKeyInput | readonly CheckpointKeyInput[];
  /** Fail when records follow the last checkpoint. Needs publicKeys. Default false. */
  readonly requireCheckpointed?: boolean;
  /**
   * A checkpoint saved earlier (readSavedCheckpoint): the log must reach it
   * and hold it unchanged. Needs publicKeys (its signature is checked too).
   */
  readonly expectCheckpoint?: SavedCheckpoint;
}

/** The checks a verifier of a file or a table shares: keys, and a saved checkpoint's own signature. */
export function checkpointOptions(
  options: Pick<VerifyOptions, "publicKeys" | "requireCheckpointed" | "expectCheckpoint">,
  where: string,
): {
  keys: ReturnType<typeof checkpointPublicKeys> | undefined;
  expect: SavedCheckpoint | undefined;
  requireCheckpointed: boolean;
  savedProblem: string | null;
} {
  const keys = options.publicKeys === undefined ? undefined : checkpointPublicKeys(options.publicKeys, `${where}: publicKeys`);
  const requireCheckpointed = options.requireCheckpointed === true;
  const expect = options.expectCheckpoint;
  if (keys === undefined && (requireCheckpointed || expect !== undefined)) {
    throw new DecisionLogError("invalid_options", `${where}: requireCheckpointed and expectCheckpoint need publicKeys`);
  }
  let savedProblem: string | null = null;
  if (expect !== undefined && keys !== undefined) {
    const key = keys.get(expect.checkpoint.key_id);
    if (key === undefined)
      savedProblem = `the saved checkpoint is signed by key ${expect.checkpoint.key_id}, which is not among the public keys given`;
    else if (!checkpointSignatureValid(expect.checkpoint, key)) savedProblem = "the saved checkpoint's signature does not verify";
  }
  return { keys, expect, requireCheckpointed, savedProblem };
}

/**
 * Verify the log at `paths` as one chain from its first entry. Never throws
 * for a damaged or missing file: the result names the first bad file and line
 * and says why ("line 7: hash mismatch", "line 9: torn final line",
 * "line 4: prev_hash does not match line 3", "cannot read file: ENOENT").
 * Without keys a hash chain cannot show that entries were cut off the end or
 * that the log was rewritten whole: give `publicKeys`, and `expectCheckpoint`
 * / `requireCheckpointed`, for that. Throws DecisionLogError("invalid_options")
 * for unusable options.
 */
export async function verifyLog(paths: readonly string[], options: VerifyOptions = {}): Promise<VerifyResult> {
  return await verifyWalk(paths, options);
}

async function verifyWalk(
  paths: readonly string[],
  options: VerifyOptions,
  onRecord?: (record: WalkedRecord) => void,
): Promise<VerifyResult> {
  const { keys, expect, requireCheckpointed, savedProblem } = checkpointOptions(options, "verifyLog");
  const files = options.expand === false ? [...paths] : await expandLogPaths(paths);
  const last = files[files.length - 1] ?? "";
  if (savedProblem !== null) return { ok: false, file: last, line: 0, reason: savedProblem };
  const walk = await walkChain(files, onRecord, { keys, unknownKeys: "fail", expect });
  if (!walk.ok) return walk;
  if (walk.torn !== null) {
    return { ok: false, file: walk.torn.file, line: walk.torn.line, reason: `line ${walk.torn.line}: torn final line` };
  }
  if (walk.danglingRotation !== null) {
    const { file, line, next } = walk.danglingRotation;
    return {
      ok: false,
      file: next,
      line: 0,
      reason: `file is empty, but ${basename(file)} line ${line} is a rotation checkpoint that continues the log in it`,
    };
  }
  const summary = walk.checkpoints;
  const problem = coverageProblem(summary, walk.count, { keysGiven: keys !== undefined, requireCheckpointed, expect });
  if (problem !== null) {
    const at = problem.atUncovered && summary.uncovered !== null ? summary.uncovered : { file: last, line: 0 };
    return { ok: false, file: at.file, line: at.line, reason: at.line > 0 ? `line ${at.line}: ${problem.reason}` : problem.reason };
  }
  const result: VerifyOk = { ok: true, count: walk.count, head: walk.head, files: walk.files };
  if (summary.checkpoints === 0 && keys === undefined) return result;
  return {
    ...result,
    checkpoints: {
      records: summary.records,
      checkpoints: summary.checkpoints,
      logId: summary.logId,
      last: summary.last,
      uncovered: summary.uncovered,
      signatures: keys === undefined ? "unchecked" : "verified",
    },
  };
}

/**
 * A checkpoint saved by `veto log checkpoint --out` (the checkpoint entry's
 * line), for `expectCheckpoint`. Checks its hash and shape; its signature is
 * checked by verify against the keys given there. Throws
 * DecisionLogError("invalid_options") naming what is wrong.
 */
export function readSavedCheckpoint(text: string | Uint8Array, where = "saved checkpoint"): SavedCheckpoint {
  const saved = parseSavedCheckpoint(typeof text === "string" ? text : Buffer.from(text).toString("utf8"), checkEntryLine);
  if (typeof saved === "string") throw new DecisionLogError("invalid_options", `${where}: ${saved}`);
  return saved;
}

/** readSavedCheckpoint of a file. */
export async function readSavedCheckpointFile(path: string): Promise<SavedCheckpoint> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new DecisionLogError("invalid_options", `cannot read saved checkpoint ${path}: ${(error as Error).message}`, { cause: error });
  }
  return readSavedCheckpoint(bytes, `saved checkpoint ${path}`);
}

/**
 * Every record of a log, in order, after verifying the whole chain (what
 * replay reads) as verifyLog does with the same options; checkpoint entries
 * are checked and left out. Rejects with LogCorruptError when verify would
 * fail. Holds the records in memory.
 */
export async function readLog(paths: readonly string[], options: VerifyOptions = {}): Promise<WalkedRecord[]> {
  const records: WalkedRecord[] = [];
  const result = await verifyWalk(paths, options, (record) => records.push(record));
  if (!result.ok) throw new LogCorruptError(result.file, result.line, result.reason);
  return records;
}
