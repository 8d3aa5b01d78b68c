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
 */
import { createHash } from "node:crypto";
import { canonicalMembers, joinMembers, type CanonicalMember } from "./canonical.js";
import { CanonicalJsonError } from "./errors.js";

export const GENESIS_HASH = `sha256:${"0".repeat(64)}`;
export const RESERVED_FIELDS = ["seq", "prev_hash", "hash"] as const;

const HASH_PATTERN = /^sha256:[0-9a-f]{64}$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

function sha256(text: string): string {
  return `sha256:${createHash("sha256").update(text, "utf8").digest("hex")}`;
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
  const body = copyFields(record);
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
  | { readonly ok: true; readonly record: Record<string, unknown>; readonly seq: number; readonly hash: string }
  | { readonly ok: false; readonly problem: string };

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

  /** Check without moving the chain on. */
  peek(bytes: Uint8Array, place: LinePlace): LineCheck {
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      return { ok: false, problem: "not valid UTF-8" };
    }
    if (text === "") return { ok: false, problem: "empty line" };
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
    if (prevHash !== this.#head) {
      const last = this.#lastPlace;
      if (last === null) return { ok: false, problem: "prev_hash is not the start of the chain" };
      const where = last.file === place.file ? `line ${last.line}` : `${last.file} line ${last.line}`;
      return { ok: false, problem: `prev_hash does not match ${where}` };
    }
    if (seq !== this.#count + 1) {
      return { ok: false, problem: `seq ${seq}, expected ${this.#count + 1}` };
    }
    return { ok: true, record, seq, hash };
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
