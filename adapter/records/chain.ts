/**
 * The hash chain: how a record becomes a sealed line, and how a line is
 * checked against the line before it. Shared by the writer (sealing, and the
 * check it runs on open) and by verify, so both read the format one way.
 *
 * A sealed record is the caller's record plus `seq` (1, 2, ... across every
 * file of the log), `prev_hash` (the previous record's `hash`, or
 * GENESIS_HASH for seq 1) and `hash` = "sha256:" + hex SHA-256 of the
 * canonical JSON of the sealed record without `hash`. The line is the
 * canonical JSON of the whole sealed record, so every byte of every field is
 * covered by the chain.
 *
 * A checkpoint entry (checkpoint.ts) is sealed the same way from
 * `{checkpoint: {...}}`: it takes a seq and is chained like any record.
 *
 * Lines are read strictly: only what the writer produces is accepted. A byte
 * order mark, a carriage return or any other control byte, invalid or
 * overlong UTF-8, or JSON that is not in canonical form is a failure naming
 * the line, never silently dropped or normalized.
 */
import * as crypto from "node:crypto";
import { canonicalMembers, canonicalSplit, joinMembers, type CanonicalMember } from "../common/canonical-json.js";
import { HASH_PATTERN, parseCheckpoint, type Checkpoint } from "./checkpoint.js";
import { CanonicalJsonError } from "./errors.js";

export const GENESIS_HASH = `sha256:${"0".repeat(64)}`;
export const RESERVED_FIELDS = ["seq", "prev_hash", "hash", "checkpoint"] as const;

// ignoreBOM: a leading U+FEFF stays in the text (the default would drop it unseen).
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
// The writer escapes every control character inside strings and writes no white space outside them.
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u001f]/;

// crypto.hash (Node >= 20.12): one call, no Hash object per digest; createHash on older ones.
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: "hex") => string }).hash;
function sha256(text: string): string {
  return `sha256:${oneShot === undefined ? crypto.createHash("sha256").update(text, "utf8").digest("hex") : oneShot("sha256", text, "hex")}`;
}

/** A null-prototype copy, so a key such as "__proto__" stays an ordinary field. */
function copyFields(source: object): Record<string, unknown> {
  const copy = Object.create(null) as Record<string, unknown>;
  for (const key of Object.keys(source)) copy[key] = (source as Record<string, unknown>)[key];
  return copy;
}

export interface SealedLine {
  readonly seq: number;
  readonly hash: string;
  /** Canonical JSON of the sealed record, without the newline. */
  readonly text: string;
}

/**
 * Seal `record` as number `seq` after `prevHash`. Throws CanonicalJsonError
 * when the record has no canonical JSON form or already uses a field the
 * chain reserves.
 */
export function sealRecord(record: object, seq: number, prevHash: string): SealedLine {
  if (record === null || typeof record !== "object" || Array.isArray(record)) {
    throw new CanonicalJsonError("", "a record must be a JSON object");
  }
  for (const field of RESERVED_FIELDS) {
    if (Object.prototype.hasOwnProperty.call(record, field)) {
      throw new CanonicalJsonError(`/${field}`, "field is reserved for the log's hash chain");
    }
  }
  return sealEntry(record, seq, prevHash);
}

/** A record checked and canonicalized once, to be sealed later at the place the chain gives it. */
export interface PreparedRecord {
  /** The same line as sealRecord(record, seq, prevHash) gives, without canonicalizing the record again. */
  seal(seq: number, prevHash: string): SealedLine;
  /**
   * The canonical members of the record around the three the chain adds, in
   * order: the line is `{` + [before_hash, "hash":…, before_prev_hash,
   * "prev_hash":…, before_seq, "seq":…, after_seq] joined by commas, each
   * part left out when null (no members there), + `}`; the hash is taken over
   * the same without the hash member. For a writer that seals where the chain
   * is (a statement in the database).
   */
  readonly parts: readonly [string | null, string | null, string | null, string | null];
}

/**
 * Check and canonicalize `record` now (throwing CanonicalJsonError as
 * sealRecord does), seal it later: for a writer that learns the record's
 * place in the chain only when it writes a group of records at once.
 */
export function prepareRecord(record: object): PreparedRecord {
  if (record === null || typeof record !== "object" || Array.isArray(record)) {
    throw new CanonicalJsonError("", "a record must be a JSON object");
  }
  for (const field of RESERVED_FIELDS) {
    if (Object.prototype.hasOwnProperty.call(record, field)) {
      throw new CanonicalJsonError(`/${field}`, "field is reserved for the log's hash chain");
    }
  }
  const parts = plainParts(record) ?? checkedParts(record);
  return { parts, seal: (seq, prevHash) => sealParts(parts, seq, prevHash) };
}

type Parts = PreparedRecord["parts"];

// Stand-ins for the chain's values while a record is split around them: a raw control character never
// occurs in canonical JSON (escaped inside strings, absent outside), so each member is found exactly once.
const PREV_MEMBER = '"prev_hash":\u0000';
const SEQ_MEMBER = '"seq":\u0001';

/** A record of plain JSON data split around the chain's members in one pass (canonicalSplit), or undefined. */
function plainParts(record: object): Parts | undefined {
  const around = canonicalSplit(record, "hash", [
    ["prev_hash", "\u0000"],
    ["seq", "\u0001"],
  ]);
  if (around === undefined) return undefined;
  const [before, after] = around;
  const i = after.indexOf(PREV_MEMBER);
  const j = after.indexOf(SEQ_MEMBER, i);
  const cFrom = i + PREV_MEMBER.length + 1;
  const dFrom = j + SEQ_MEMBER.length + 1;
  return [
    before === "" ? null : before,
    i === 0 ? null : after.slice(0, i - 1),
    j === cFrom ? null : after.slice(cFrom, j - 1),
    dFrom > after.length ? null : after.slice(dFrom),
  ];
}

/** Any record, through the checked writer, which names what is not canonical JSON (CanonicalJsonError). */
function checkedParts(record: object): Parts {
  const body = copyFields(record);
  body.seq = 0;
  body.prev_hash = GENESIS_HASH;
  body.hash = GENESIS_HASH;
  const members = canonicalMembers(body);
  const at = (key: string): number => members.findIndex((m) => m.key === key);
  const seqAt = at("seq");
  const prevAt = at("prev_hash");
  const hashAt = at("hash");
  const join = (from: number, to: number): string | null =>
    to > from
      ? members
          .slice(from, to)
          .map((m) => m.text)
          .join(",")
      : null;
  // Code-unit order puts "hash" before "prev_hash" before "seq", whatever else the record holds.
  return [join(0, hashAt), join(hashAt + 1, prevAt), join(prevAt + 1, seqAt), join(seqAt + 1, members.length)];
}

/** The line of a prepared record as entry `seq` after `prevHash`: what append_records computes in the database. */
function sealParts([a, b, c, d]: Parts, seq: number, prevHash: string): SealedLine {
  const prev = `"prev_hash":${JSON.stringify(prevHash)}`;
  const at = `"seq":${JSON.stringify(seq)}`;
  const hash = sha256(`{${[a, b, prev, c, at, d].filter((p) => p !== null).join(",")}}`);
  return { seq, hash, text: `{${[a, `"hash":"${hash}"`, b, prev, c, at, d].filter((p) => p !== null).join(",")}}` };
}

/** Seal a checkpoint (checkpoint.ts) as entry `seq` after `prevHash`. */
export function sealCheckpoint(checkpoint: Checkpoint, seq: number, prevHash: string): SealedLine {
  const body = Object.create(null) as Record<string, unknown>;
  body.checkpoint = { ...checkpoint };
  return sealEntry(body, seq, prevHash);
}

function sealEntry(entry: object, seq: number, prevHash: string): SealedLine {
  // The chain's members in their sorted place among the entry's, written in one pass without a copy of the entry.
  const around = canonicalSplit(entry, "hash", [
    ["prev_hash", JSON.stringify(prevHash)],
    ["seq", JSON.stringify(seq)],
  ]);
  if (around !== undefined) {
    // Plain JSON data: the members before and after the hash's place, written once.
    const [before, after] = around;
    const comma = before !== "" && after !== "" ? "," : "";
    const unsealed = `{${before}${comma}${after}}`;
    const hash = sha256(unsealed);
    // The line is cut from that one text (flattened once, by the hash), not made from the members' pieces again.
    const at = 1 + before.length;
    const head = unsealed.slice(0, at);
    const tail = unsealed.slice(at + comma.length);
    return { seq, hash, text: `${head}${before === "" ? "" : ","}"hash":"${hash}"${after === "" ? "" : ","}${tail}` };
  }
  // A null-prototype copy: a key such as "__proto__" stays an ordinary field.
  const body = copyFields(entry);
  body.seq = seq;
  body.prev_hash = prevHash;
  // Placeholder of the final length and form; replaced below once the hash is known.
  body.hash = GENESIS_HASH;
  const members = canonicalMembers(body);
  const hash = sha256(joinMembers(members, "hash"));
  const withHash = members.map((m) => (m.key === "hash" ? { key: "hash", text: `"hash":"${hash}"` } : m));
  return { seq, hash, text: joinMembers(withHash) };
}

/** Where a record sits: file and 1-based line. */
export interface LinePlace {
  readonly file: string;
  readonly line: number;
}

export type LineCheck =
  | {
      readonly ok: true;
      readonly record: Record<string, unknown>;
      readonly seq: number;
      readonly hash: string;
      /** Set when the entry is a checkpoint rather than a record. */
      readonly checkpoint: Checkpoint | null;
    }
  | { readonly ok: false; readonly problem: string };

/** What is wrong with a line's characters, before its JSON is looked at. */
function characterProblem(text: string): string | null {
  if (text.charCodeAt(0) === 0xfeff) return "byte order mark (U+FEFF) at the start of the line";
  const at = text.search(CONTROL);
  if (at === -1) return null;
  const code = text.charCodeAt(at);
  const what = code === 0x0d ? "carriage return (CR)" : `control character 0x${code.toString(16).padStart(2, "0")}`;
  return `${what} at column ${at + 1}`;
}

/**
 * A single line checked on its own (no chain position): canonical JSON, its
 * hash, and a checkpoint's shape. For a saved checkpoint read from a file.
 */
export function checkEntryLine(bytes: Uint8Array): LineCheck {
  return new ChainChecker().peek(bytes, { file: "", line: 0 }, { standalone: true });
}

/**
 * Checks lines in chain order. Each accepted line moves the chain on; a
 * rejected one leaves it where it was. `problem` texts are stable: verify
 * prints them after "line N: ".
 */
export class ChainChecker {
  #count = 0;
  #head = GENESIS_HASH;
  #lastPlace: LinePlace | null = null;

  /** Records accepted so far. */
  get count(): number {
    return this.#count;
  }

  /** Hash of the last accepted record (GENESIS_HASH before the first). */
  get head(): string {
    return this.#head;
  }

  get lastPlace(): LinePlace | null {
    return this.#lastPlace;
  }

  /** Check without moving the chain on. `standalone`: skip the chain position checks. */
  peek(bytes: Uint8Array, place: LinePlace, options: { readonly standalone?: boolean } = {}): LineCheck {
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      return { ok: false, problem: "not valid UTF-8" };
    }
    if (text === "") return { ok: false, problem: "empty line" };
    const characters = characterProblem(text);
    if (characters !== null) return { ok: false, problem: characters };
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return { ok: false, problem: "not valid JSON" };
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      return { ok: false, problem: "not a JSON object" };
    }
    let members: CanonicalMember[] | null;
    try {
      members = canonicalMembers(parsed);
    } catch {
      members = null; // e.g. a lone surrogate written as an escape
    }
    if (members === null || joinMembers(members) !== text) return { ok: false, problem: "not canonical JSON" };
    const record = parsed as Record<string, unknown>;
    const { seq, prev_hash: prevHash, hash } = record;
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) {
      return { ok: false, problem: "seq missing or not a positive integer" };
    }
    if (typeof prevHash !== "string" || !HASH_PATTERN.test(prevHash)) {
      return { ok: false, problem: "prev_hash missing or malformed" };
    }
    if (typeof hash !== "string" || !HASH_PATTERN.test(hash)) {
      return { ok: false, problem: "hash missing or malformed" };
    }
    if (sha256(joinMembers(members, "hash")) !== hash) {
      return { ok: false, problem: "hash mismatch" };
    }
    let checkpoint: Checkpoint | null = null;
    if (Object.prototype.hasOwnProperty.call(record, "checkpoint")) {
      if (members.length !== 4) return { ok: false, problem: "checkpoint line has members besides checkpoint, seq, prev_hash and hash" };
      const parsed = parseCheckpoint(record["checkpoint"]);
      if (typeof parsed === "string") return { ok: false, problem: parsed };
      // A checkpoint vouches for exactly the entries before it.
      if (parsed.seq !== seq - 1) return { ok: false, problem: `checkpoint covers seq ${parsed.seq}, but it is entry ${seq}` };
      if (parsed.head !== prevHash) return { ok: false, problem: "checkpoint head is not its prev_hash" };
      checkpoint = parsed;
    }
    if (options.standalone === true) return { ok: true, record, seq, hash, checkpoint };
    if (prevHash !== this.#head) {
      const last = this.#lastPlace;
      if (last === null) return { ok: false, problem: "prev_hash is not the start of the chain" };
      const where = last.file === place.file ? `line ${last.line}` : `${last.file} line ${last.line}`;
      return { ok: false, problem: `prev_hash does not match ${where}` };
    }
    if (seq !== this.#count + 1) {
      return { ok: false, problem: `seq ${seq}, expected ${this.#count + 1}` };
    }
    return { ok: true, record, seq, hash, checkpoint };
  }

  /** Check and, when the line is good, move the chain on. */
  accept(bytes: Uint8Array, place: LinePlace): LineCheck {
    const result = this.peek(bytes, place);
    if (result.ok) {
      this.#count = result.seq;
      this.#head = result.hash;
      this.#lastPlace = place;
    }
    return result;
  }
}
