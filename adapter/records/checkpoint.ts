/**
 * Signed checkpoints: a statement "log L holds seq 1..N, and entry N has
 * hash H", signed with Ed25519 by the log's writer and written into the log
 * itself as a chain entry (see chain.ts), so a reader holding the public key
 * can tell a log that was cut short, extended or rewritten by someone without
 * the private key. The statement's shape follows the transparency-log
 * checkpoints of Certificate Transparency and Sigstore: origin (log id), size
 * (seq), root (here the chain head), a key id to pick the key by, and a
 * signature over a domain-separated message.
 *
 * A checkpoint line is an entry `{"checkpoint":{...},"hash":...,"prev_hash":...,"seq":...}`
 * whose `checkpoint.seq` is the entry's own seq minus one and whose
 * `checkpoint.head` is its own prev_hash: it vouches for every entry before it.
 * The field name `checkpoint` is reserved (records cannot use it).
 */
import { createHash, createPrivateKey, createPublicKey, KeyObject, sign, verify } from "node:crypto";
import { canonicalJson } from "../common/canonical-json.js";
import { DecisionLogError } from "./errors.js";

/** An Ed25519 key: PEM text or bytes, or a KeyObject. */
export type CheckpointKeyInput = string | Uint8Array | KeyObject;

export type CheckpointReason = "open" | "interval" | "rotation" | "close";
const REASONS: ReadonlySet<string> = new Set<CheckpointReason>(["open", "interval", "rotation", "close"]);

/** Where a file log's segment (PATH, PATH.1, ...) starts: after this seq and hash. */
export interface SegmentPlace {
  /** 0 for PATH, k for PATH.k. */
  readonly index: number;
  /** Seq of the last entry of the segments before it (0 for the first). */
  readonly after_seq: number;
  /** Its hash (the genesis hash for the first segment). */
  readonly after_hash: string;
}

/** What is signed. Member names are the JSON names. */
export interface CheckpointStatement {
  /** Random id chosen when the log got its first checkpoint; every later checkpoint repeats it. */
  readonly log_id: string;
  /** Entries covered: seq 1..seq. */
  readonly seq: number;
  /** Hash of entry `seq` (the genesis hash when seq is 0). */
  readonly head: string;
  /** File logs only: the segment the checkpoint is written in. */
  readonly segment?: SegmentPlace;
  readonly reason: CheckpointReason;
  /** ISO 8601 UTC, milliseconds. The writer's clock: informative, not ordered. */
  readonly time: string;
  /** "ed25519:" + hex SHA-256 of the public key's DER (SubjectPublicKeyInfo). */
  readonly key_id: string;
}

export interface Checkpoint extends CheckpointStatement {
  /** Base64 Ed25519 signature of CHECKPOINT_CONTEXT + canonical JSON of the statement. */
  readonly signature: string;
}

/** Prefix of every signed message, so a checkpoint signature can never be taken for another kind of signature. */
export const CHECKPOINT_CONTEXT = "veto-checkpoint/1\n";

export const HASH_PATTERN = /^sha256:[0-9a-f]{64}$/;
const LOG_ID_PATTERN = /^[0-9a-f]{32}$/;
const KEY_ID_PATTERN = /^ed25519:[0-9a-f]{64}$/;
const TIME_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const SIGNATURE_PATTERN = /^[A-Za-z0-9+/]{86}==$/;

/** The signer of a writer: the private key, and the key id verifiers pick its public key by. */
export interface CheckpointSigner {
  readonly keyId: string;
  readonly publicKey: KeyObject;
  sign(statement: CheckpointStatement): Checkpoint;
}

function toKeyObject(input: CheckpointKeyInput, kind: "private" | "public", what: string): KeyObject {
  let key: KeyObject;
  try {
    if (input instanceof KeyObject) {
      key = kind === "public" && input.type === "private" ? createPublicKey(input) : input;
    } else if (typeof input === "string" || input instanceof Uint8Array) {
      const pem = typeof input === "string" ? input : Buffer.from(input);
      key = kind === "private" ? createPrivateKey(pem) : createPublicKey(pem);
    } else {
      throw new TypeError("not a PEM string, bytes or a KeyObject");
    }
  } catch (error) {
    throw new DecisionLogError("invalid_options", `${what}: not a usable ${kind} key: ${(error as Error).message}`, { cause: error });
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new DecisionLogError("invalid_options", `${what}: must be an Ed25519 key, got ${key.asymmetricKeyType ?? key.type}`);
  }
  if (key.type !== kind) throw new DecisionLogError("invalid_options", `${what}: must be a ${kind} key, got a ${key.type} key`);
  return key;
}

/** "ed25519:" + hex SHA-256 of the public key's SubjectPublicKeyInfo DER. */
export function checkpointKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: "spki", format: "der" });
  return `ed25519:${createHash("sha256").update(der).digest("hex")}`;
}

function signedMessage(statement: CheckpointStatement): Buffer {
  return Buffer.from(CHECKPOINT_CONTEXT + canonicalJson(statement), "utf8");
}

/** A signer for `key` (Ed25519 private key). Throws DecisionLogError("invalid_options") for anything else. */
export function checkpointSigner(key: CheckpointKeyInput, what = "checkpointKey"): CheckpointSigner {
  const privateKey = toKeyObject(key, "private", what);
  const publicKey = createPublicKey(privateKey);
  const keyId = checkpointKeyId(publicKey);
  return {
    keyId,
    publicKey,
    sign(statement) {
      if (statement.key_id !== keyId)
        throw new DecisionLogError("invalid_options", `statement names key ${statement.key_id}, signer is ${keyId}`);
      const signature = sign(null, signedMessage(statement), privateKey).toString("base64");
      return { ...statement, signature };
    },
  };
}

/**
 * Public keys by key id, for verifying. Each input is an Ed25519 public key
 * (PEM SPKI, bytes or KeyObject; a private key is reduced to its public half).
 */
export function checkpointPublicKeys(
  keys: CheckpointKeyInput | readonly CheckpointKeyInput[],
  what = "publicKeys",
): ReadonlyMap<string, KeyObject> {
  const list = Array.isArray(keys) ? (keys as readonly CheckpointKeyInput[]) : [keys as CheckpointKeyInput];
  if (list.length === 0) throw new DecisionLogError("invalid_options", `${what}: give at least one key`);
  const map = new Map<string, KeyObject>();
  list.forEach((input, i) => {
    const key = toKeyObject(input, "public", list.length === 1 ? what : `${what}[${i}]`);
    map.set(checkpointKeyId(key), key);
  });
  return map;
}

/** Whether `checkpoint.signature` is `key`'s signature of its statement. */
export function checkpointSignatureValid(checkpoint: Checkpoint, key: KeyObject): boolean {
  const { signature, ...statement } = checkpoint;
  try {
    return verify(null, signedMessage(statement), key, Buffer.from(signature, "base64"));
  } catch {
    return false;
  }
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

function exactKeys(value: Record<string, unknown>, required: readonly string[], optional: readonly string[] = []): string | null {
  for (const key of required) if (!Object.prototype.hasOwnProperty.call(value, key)) return `lacks ${key}`;
  for (const key of Object.keys(value))
    if (!required.includes(key) && !optional.includes(key)) return `has an unknown member ${JSON.stringify(key)}`;
  return null;
}

const CHECKPOINT_MEMBERS = ["head", "key_id", "log_id", "reason", "seq", "signature", "time"] as const;

/** The checkpoint in `value`, or what is wrong with it (for "line N: checkpoint ..."). */
export function parseCheckpoint(value: unknown): Checkpoint | string {
  if (!isPlainObject(value)) return "checkpoint is not an object";
  const shape = exactKeys(value, CHECKPOINT_MEMBERS, ["segment"]);
  if (shape !== null) return `checkpoint ${shape}`;
  const c = value;
  if (typeof c.log_id !== "string" || !LOG_ID_PATTERN.test(c.log_id)) return "checkpoint log_id malformed";
  if (!isCount(c.seq)) return "checkpoint seq malformed";
  if (typeof c.head !== "string" || !HASH_PATTERN.test(c.head)) return "checkpoint head malformed";
  if (typeof c.reason !== "string" || !REASONS.has(c.reason)) return "checkpoint reason malformed";
  if (typeof c.time !== "string" || !TIME_PATTERN.test(c.time)) return "checkpoint time malformed";
  if (typeof c.key_id !== "string" || !KEY_ID_PATTERN.test(c.key_id)) return "checkpoint key_id malformed";
  if (typeof c.signature !== "string" || !SIGNATURE_PATTERN.test(c.signature)) return "checkpoint signature malformed";
  if (c.segment !== undefined) {
    const s = c.segment;
    if (!isPlainObject(s) || exactKeys(s, ["after_hash", "after_seq", "index"]) !== null) return "checkpoint segment malformed";
    if (!isCount(s.index) || !isCount(s.after_seq) || typeof s.after_hash !== "string" || !HASH_PATTERN.test(s.after_hash)) {
      return "checkpoint segment malformed";
    }
  }
  return c as unknown as Checkpoint;
}

/** A checkpoint an auditor saved (`veto log checkpoint --out`): the checkpoint entry's line, parsed. */
export interface SavedCheckpoint {
  /** Seq of the checkpoint entry itself (it covers 1..seq-1). */
  readonly seq: number;
  /** Hash of the checkpoint entry. */
  readonly hash: string;
  readonly checkpoint: Checkpoint;
}

/** Where a line is: file (or table) and 1-based line (or seq). */
export interface EntryPlace {
  readonly file: string;
  readonly line: number;
}

/** A checkpoint met while reading a log. */
export interface SeenCheckpoint extends EntryPlace {
  /** Seq of the checkpoint entry (it covers 1..seq-1). */
  readonly seq: number;
  /** Hash of the checkpoint entry. */
  readonly hash: string;
  readonly checkpoint: Checkpoint;
  /** True when its signature was checked against a key given to the reader. */
  readonly verified: boolean;
  /** The entry's line (canonical JSON, no newline): what `veto log checkpoint --out` saves. */
  readonly text: string;
}

/** What a reader learnt about a log's checkpoints. */
export interface CheckpointSummary {
  readonly records: number;
  readonly checkpoints: number;
  readonly logId: string | null;
  readonly last: SeenCheckpoint | null;
  /** Entries after the last checkpoint (all entries when there is none), and where the first of them is. */
  readonly uncovered: { readonly entries: number; readonly file: string; readonly line: number } | null;
}

export interface CheckpointPolicy {
  /** Public keys by key id (checkpointPublicKeys). None: signatures are not checked. */
  readonly keys?: ReadonlyMap<string, KeyObject>;
  /**
   * A checkpoint signed by a key not in `keys`: "fail" (verify) or "accept"
   * unchecked (the writer, which knows only its own key). Default "fail".
   */
  readonly unknownKeys?: "fail" | "accept";
  /** The log must reach this checkpoint and hold it unchanged. */
  readonly expect?: SavedCheckpoint;
}

/**
 * Follows the entries of one chain, in order, and checks each checkpoint
 * against the chain, the log's other checkpoints, the segment it is in, the
 * keys and a saved checkpoint. Shared by the file log and the PostgreSQL table.
 */
export class CheckpointTracker {
  readonly #keys: ReadonlyMap<string, KeyObject> | undefined;
  readonly #unknownKeys: "fail" | "accept";
  readonly #expect: SavedCheckpoint | undefined;
  #records = 0;
  #checkpoints = 0;
  #logId: string | null = null;
  #last: SeenCheckpoint | null = null;
  #uncovered = 0;
  #firstUncovered: EntryPlace | null = null;

  constructor(policy: CheckpointPolicy = {}) {
    this.#keys = policy.keys !== undefined && policy.keys.size > 0 ? policy.keys : undefined;
    this.#unknownKeys = policy.unknownKeys ?? "fail";
    this.#expect = policy.expect;
    if (this.#expect !== undefined) this.#logId = this.#expect.checkpoint.log_id;
  }

  get keysGiven(): boolean {
    return this.#keys !== undefined;
  }

  /**
   * One accepted chain entry. `segment`: where a file log's current file
   * starts (null for a table). Returns what is wrong, or null.
   */
  entry(
    entry: { readonly seq: number; readonly hash: string; readonly checkpoint: Checkpoint | null; readonly text: () => string },
    place: EntryPlace,
    segment: SegmentPlace | null,
  ): string | null {
    const expect = this.#expect;
    if (expect !== undefined && entry.seq === expect.seq && entry.hash !== expect.hash) {
      return `seq ${entry.seq} is not the saved checkpoint: hash ${entry.hash}, the saved checkpoint's ${expect.hash}`;
    }
    const c = entry.checkpoint;
    if (c === null) {
      this.#records += 1;
      this.#uncovered += 1;
      this.#firstUncovered ??= place;
      return null;
    }
    if (this.#logId !== null && c.log_id !== this.#logId) {
      const whose = this.#checkpoints === 0 && expect !== undefined ? "the saved checkpoint's" : "the log's earlier checkpoints'";
      return `checkpoint names log ${c.log_id}, ${whose} ${this.#logId}`;
    }
    if (segment === null && c.segment !== undefined) return "checkpoint names a segment, but this log has none";
    if (segment !== null) {
      if (c.segment === undefined) return "checkpoint names no segment";
      if (c.segment.index !== segment.index) {
        return `checkpoint names segment ${c.segment.index}, but it is in segment ${segment.index} (renamed or moved)`;
      }
      if (c.segment.after_seq !== segment.after_seq || c.segment.after_hash !== segment.after_hash) {
        return `checkpoint says segment ${segment.index} starts after seq ${c.segment.after_seq}, it starts after seq ${segment.after_seq}`;
      }
    }
    let verified = false;
    if (this.#keys !== undefined) {
      const key = this.#keys.get(c.key_id);
      if (key === undefined) {
        if (this.#unknownKeys === "fail") return `checkpoint signed by key ${c.key_id}, which is not among the public keys given`;
      } else {
        if (!checkpointSignatureValid(c, key)) return `checkpoint signature does not verify with key ${c.key_id}`;
        verified = true;
      }
    }
    this.#logId = c.log_id;
    this.#checkpoints += 1;
    this.#uncovered = 0;
    this.#firstUncovered = null;
    this.#last = { ...place, seq: entry.seq, hash: entry.hash, checkpoint: c, verified, text: entry.text() };
    return null;
  }

  summary(): CheckpointSummary {
    const first = this.#firstUncovered;
    return {
      records: this.#records,
      checkpoints: this.#checkpoints,
      logId: this.#logId !== null && this.#checkpoints > 0 ? this.#logId : null,
      last: this.#last,
      uncovered: first === null ? null : { entries: this.#uncovered, file: first.file, line: first.line },
    };
  }
}

/**
 * What is wrong with a whole log once read to its end, given what verify was
 * asked to hold it to; null when nothing. `count`: the log's entries.
 * `atUncovered`: the problem is the first uncovered entry (else the log's end).
 */
export function coverageProblem(
  summary: CheckpointSummary,
  count: number,
  options: { readonly keysGiven: boolean; readonly requireCheckpointed: boolean; readonly expect: SavedCheckpoint | undefined },
): { readonly reason: string; readonly atUncovered: boolean } | null {
  if (options.expect !== undefined && count < options.expect.seq) {
    return { reason: `the log ends at seq ${count}, below the saved checkpoint at seq ${options.expect.seq}`, atUncovered: false };
  }
  if (options.keysGiven && summary.checkpoints === 0) {
    return {
      reason: count === 0 ? "no signed checkpoint: the log is empty" : `no signed checkpoint: none of its ${count} entries is covered`,
      atUncovered: false,
    };
  }
  if (options.requireCheckpointed && summary.uncovered !== null) {
    const last = summary.last;
    const where = last === null ? "" : ` (${last.file === summary.uncovered.file ? "" : `${last.file} `}line ${last.line})`;
    return { reason: `${uncoveredText(summary.uncovered.entries)}${where}, not covered by a signature`, atUncovered: true };
  }
  return null;
}

/** "1 record after the last checkpoint", "3 records after the last checkpoint". */
export function uncoveredText(entries: number): string {
  return `${entries} record${entries === 1 ? "" : "s"} after the last checkpoint`;
}

/** Check a saved checkpoint's own integrity (hash, shape) from its line; its signature is checked against the log's keys later. */
export function parseSavedCheckpoint(
  text: string,
  parseLine: (bytes: Uint8Array) => { ok: true; seq: number; hash: string; checkpoint: Checkpoint | null } | { ok: false; problem: string },
): SavedCheckpoint | string {
  const line = text.endsWith("\n") ? text.slice(0, -1) : text;
  if (line.includes("\n")) return "not a single checkpoint line (save one with veto log checkpoint --out)";
  const result = parseLine(Buffer.from(line, "utf8"));
  if (!result.ok) return result.problem;
  if (result.checkpoint === null) return "not a checkpoint line";
  return { seq: result.seq, hash: result.hash, checkpoint: result.checkpoint };
}
