/**
 * The one canonical JSON of the package, in the style of RFC 8785 (JCS):
 * object keys sorted by UTF-16 code units, no white space, numbers in
 * ECMAScript's shortest round-trip form (what JSON.stringify prints), strings
 * escaped as JSON.stringify escapes them. Record hashes, checkpoint
 * signatures and call digests are all taken over this text, so the same value
 * always gives the same bytes whatever order its keys were built in.
 *
 * What each kind of value does:
 *   - null, booleans, finite numbers, strings, arrays, and plain objects
 *     (prototype Object.prototype or null; an own `__proto__` key is an
 *     ordinary member): written as above. -0 is written `0`.
 *   - NaN, Infinity, -Infinity: refused, or written `null` with
 *     `nonFiniteNumber: "null"` (JSON.stringify's reading).
 *   - an object member whose value is undefined: refused, or left out with
 *     `undefinedMember: "omit"` (JSON.stringify's reading). Undefined
 *     anywhere else (the value itself, an array item, an array hole) is
 *     always refused.
 *   - a string or key with a lone surrogate (no UTF-8 form, not I-JSON):
 *     refused, or written with the surrogate escaped (`"\ud800"`) with
 *     `loneSurrogate: "escape"` (JSON.stringify's reading).
 *   - functions, symbols, bigints, cycles, and objects that are not plain
 *     (Date, Map, class instances, boxed primitives): always refused. A
 *     `toJSON` method is never called.
 * Refusing throws CanonicalJsonError naming the JSON pointer of the value.
 *
 * Records use the defaults: a record must not lose or change a member
 * silently. Call and input digests use DIGEST_READING, JSON.stringify's
 * leniency for those three: a call a caller hands to waitForApproval({ call })
 * digests as the snapshot protect() decided (which leaves undefined members
 * out), and a call refused as not JSON still gets the input digest the
 * Python adapter gives it (test/conformance/vectors.json).
 */
import { CanonicalJsonError } from "./errors.js";

export interface CanonicalJsonOptions {
  /** An object member whose value is undefined: "refuse" (default) or "omit" (left out). */
  readonly undefinedMember?: "refuse" | "omit";
  /** NaN or ±Infinity: "refuse" (default) or "null" (written as null). */
  readonly nonFiniteNumber?: "refuse" | "null";
  /** A string or key with a lone surrogate: "refuse" (default) or "escape" (written as `\uXXXX`). */
  readonly loneSurrogate?: "refuse" | "escape";
}

/** How call and input digests read a value: JSON.stringify's leniency for undefined members, non-finite numbers and lone surrogates, nothing more. */
export const DIGEST_READING: CanonicalJsonOptions = Object.freeze({
  undefinedMember: "omit",
  nonFiniteNumber: "null",
  loneSurrogate: "escape",
});

// A high surrogate not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Where a string holds a lone surrogate (a code unit index), or -1: such a
 * string has no UTF-8 form, so no record (canonical JSON) can hold it.
 */
export function loneSurrogateAt(text: string): number {
  return text.search(LONE_SURROGATE);
}

interface Writer {
  readonly omitUndefined: boolean;
  readonly nullForNonFinite: boolean;
  readonly escapeLoneSurrogates: boolean;
  readonly ancestors: Set<object>;
  readonly parts: string[];
}

function writerFor(options: CanonicalJsonOptions | undefined, ancestors: Set<object>): Writer {
  return {
    omitUndefined: options?.undefinedMember === "omit",
    nullForNonFinite: options?.nonFiniteNumber === "null",
    escapeLoneSurrogates: options?.loneSurrogate === "escape",
    ancestors,
    parts: [],
  };
}

/**
 * The canonical JSON text of `value`. Throws CanonicalJsonError for what has none (see above).
 *
 * Plain JSON data that every reading writes the same way is written member by
 * member (plainText); anything else by the checked writer, which writes what
 * `options` allow and refuses the rest by its JSON pointer.
 */
export function canonicalJson(value: unknown, options?: CanonicalJsonOptions): string {
  const text = plainText(value, 0);
  if (text !== NOT_PLAIN) return text;
  const writer = writerFor(options, new Set<object>());
  write(value, "", writer);
  return writer.parts.join("");
}

/**
 * The canonical members of the plain object `value`, with the members `added`
 * added (each a key `value` does not have and its value's canonical text, in
 * sorted key order: the hash chain's `prev_hash` and `seq`), that sort before
 * `key` and those that sort after it, each as comma-joined text (empty when
 * there are none): `{before,"key":…,after}` is the canonical JSON of that
 * object with `key` added and `{before,after}` that of it as it is. Written
 * member by member in one pass (plainText), without a copy of `value`.
 * Undefined when `value` already has `key` or an added key, or is not plain
 * JSON data that every reading writes the same way: then canonicalMembers
 * writes it, or says what is wrong.
 */
export function canonicalSplit(
  value: object,
  key: string,
  added: readonly (readonly [key: string, text: string])[],
): [before: string, after: string] | undefined {
  if (Array.isArray(value)) return undefined;
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return undefined;
  const keys = sortedKeys(value);
  let before = "";
  let after = "";
  let next = 0;
  for (let i = 0; i <= keys.length; i++) {
    const k = i < keys.length ? (keys[i] as string) : null;
    // The added members that sort before k (all that are left, after the last key).
    for (; next < added.length && (k === null || (added[next] as readonly [string, string])[0] < k); next++) {
      const [name, text] = added[next] as readonly [string, string];
      const member = `${JSON.stringify(name)}:${text}`;
      if (name < key) before = before === "" ? member : `${before},${member}`;
      else after = after === "" ? member : `${after},${member}`;
    }
    if (k === null) break;
    if (k === key || (next < added.length && (added[next] as readonly [string, string])[0] === k)) return undefined;
    const name = plainString(k);
    if (name === NOT_PLAIN) return undefined;
    const text = plainText((value as Record<string, unknown>)[k], 1);
    if (text === NOT_PLAIN) return undefined;
    const member = `${name}:${text}`;
    if (k < key) before = before === "" ? member : `${before},${member}`;
    else after = after === "" ? member : `${after},${member}`;
  }
  return [before, after];
}

/** Canonical texts of deep-frozen values that many records share (rememberCanonical), which plainText takes instead of walking the value. */
const knownTexts = new WeakMap<object, string>();

/**
 * Remember `text` as the canonical JSON of `value`, so that a record holding
 * `value` is written without walking it again: for a value many records
 * share (a sealed answer's result, the bundle's version). Only for a value
 * that can never change (deep-frozen: a frozen value whose members are all
 * frozen) and only with the text canonicalJson(value) gives with the default
 * options. Such a value holds no undefined member, no non-finite number and
 * no lone surrogate (the default options refuse them), the only things an
 * option changes, so every reading gives that same text: canonicalJson takes
 * it whatever options it is called with. `value` itself must be frozen, or
 * nothing is remembered.
 */
export function rememberCanonical(value: object, text: string): void {
  if (Object.isFrozen(value)) knownTexts.set(value, text);
}

/** How many values rememberRecent keeps: enough for the records written in the turn their calls were checked in. */
const RECENT = 8;
const recentValues: (object | undefined)[] = new Array<object | undefined>(RECENT).fill(undefined);
const recentTexts: string[] = new Array<string>(RECENT).fill("");
let recentAt = 0;

/**
 * rememberCanonical for a value made for one call (a call's snapshot, recorded
 * as its record's `input`), on the same terms: kept among the last RECENT
 * values remembered so, found by identity, with no weak-map entry to make and
 * collect on every call (the last RECENT are held, no more). A record written
 * later than that walks the value as any other.
 */
export function rememberRecent(value: object, text: string): void {
  if (!Object.isFrozen(value)) return;
  recentValues[recentAt] = value;
  recentTexts[recentAt] = text;
  recentAt = recentAt === RECENT - 1 ? 0 : recentAt + 1;
}

/** The remembered canonical text of the object `value`, or undefined. */
function knownText(value: object): string | undefined {
  for (let i = 0; i < RECENT; i++) if (recentValues[i] === value) return recentTexts[i];
  return knownTexts.get(value);
}

// A string that JSON.stringify writes as it is between quotes has none of these.
// eslint-disable-next-line no-control-regex -- control characters are what JSON escapes
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string's JSON text, or NOT_PLAIN when it holds a lone surrogate. */
function plainString(text: string): string | typeof NOT_PLAIN {
  if (!NEEDS_ESCAPE.test(text)) return `"${text}"`;
  // JSON.stringify escapes quotes, backslashes and control characters as the checked writer does.
  return (text as unknown as WellFormed).isWellFormed() ? JSON.stringify(text) : NOT_PLAIN;
}

/**
 * The canonical JSON of `value` written member by member, or NOT_PLAIN.
 * Only plain JSON data that every reading writes the same way is written:
 * no undefined member or item, no non-finite number, no lone surrogate, only
 * plain objects (an own `__proto__` or array-index key is a member like any
 * other) and arrays, nested less than PLAIN_DEPTH deep. Anything else is
 * NOT_PLAIN, and the caller hands the whole value to the checked writer,
 * which writes what an option allows and refuses the rest by its JSON
 * pointer; a cycle recurses only to PLAIN_DEPTH first. A value remembered by
 * rememberCanonical or rememberRecent is its remembered text, which is the
 * same under every reading (rememberCanonical says why).
 */
function plainText(value: unknown, depth: number): string | typeof NOT_PLAIN {
  switch (typeof value) {
    case "string":
      return plainString(value);
    case "number":
      // Number::toString, as JSON.stringify writes a finite number (-0 as 0).
      return Number.isFinite(value) ? String(value) : NOT_PLAIN;
    case "boolean":
      return value ? "true" : "false";
    case "object":
      break;
    default:
      return NOT_PLAIN;
  }
  if (value === null) return "null";
  const known = knownText(value);
  if (known !== undefined) return known;
  if (depth >= PLAIN_DEPTH) return NOT_PLAIN;
  if (Array.isArray(value)) {
    const length = value.length;
    let out = "[";
    for (let i = 0; i < length; i++) {
      // A hole reads as undefined: NOT_PLAIN like any undefined item.
      const item = plainText(value[i], depth + 1);
      if (item === NOT_PLAIN) return NOT_PLAIN;
      out = i === 0 ? `${out}${item}` : `${out},${item}`;
    }
    return `${out}]`;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return NOT_PLAIN;
  const keys = sortedKeys(value);
  let out = "{";
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    const name = plainString(key);
    if (name === NOT_PLAIN) return NOT_PLAIN;
    const child = plainText((value as Record<string, unknown>)[key], depth + 1);
    if (child === NOT_PLAIN) return NOT_PLAIN;
    out = i === 0 ? `${out}${name}:${child}` : `${out},${name}:${child}`;
  }
  return `${out}}`;
}

/**
 * An object's own enumerable keys in UTF-16 code-unit order (RFC 8785
 * section 3.2.3). Objects the adapter builds list their keys in that order
 * already, and a few members added at the end are moved into place: an
 * insertion sort, linear on such input, for small objects.
 */
function sortedKeys(value: object): string[] {
  const keys = Object.keys(value);
  const n = keys.length;
  if (n > 32) return keys.sort();
  for (let i = 1; i < n; i++) {
    const key = keys[i] as string;
    let j = i - 1;
    if ((keys[j] as string) <= key) continue;
    for (; j >= 0 && (keys[j] as string) > key; j--) keys[j + 1] = keys[j] as string;
    keys[j + 1] = key;
  }
  return keys;
}

// String.prototype.isWellFormed: ES2024, in every Node this package runs on (>= 20); the lib here is ES2022.
type WellFormed = { isWellFormed(): boolean };
const NOT_PLAIN: unique symbol = Symbol("not plain JSON data");
/** Past this depth plainText gives up and the checked writer takes the value (and names a cycle). */
const PLAIN_DEPTH = 100;

/** One member of a canonical JSON object: its key and its `"key":value` text. */
export interface CanonicalMember {
  readonly key: string;
  readonly text: string;
}

/**
 * The members of a plain object in canonical order, each already in
 * canonical form (default options), so that the object can be written with
 * and without some members (a record with and without its hash)
 * canonicalizing each value once.
 */
export function canonicalMembers(value: object): CanonicalMember[] {
  if (Array.isArray(value)) throw new CanonicalJsonError("", "an array has no members");
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) throw new CanonicalJsonError("", "not a plain object");
  const keys = sortedKeys(value);
  const members: CanonicalMember[] = [];
  for (const key of keys) {
    const name = plainString(key);
    if (name === NOT_PLAIN) break;
    const text = plainText((value as Record<string, unknown>)[key], 1);
    if (text === NOT_PLAIN) break;
    members.push({ key, text: `${name}:${text}` });
  }
  if (members.length === keys.length) return members;
  const ancestors = new Set<object>([value]);
  return keys.map((key) => {
    const writer = writerFor(undefined, ancestors);
    const pointer = `/${escapePointerToken(key)}`;
    writeString(key, pointer, writer);
    writer.parts.push(":");
    write((value as Record<string, unknown>)[key], pointer, writer);
    return { key, text: writer.parts.join("") };
  });
}

/** The canonical JSON of an object from its members, leaving out the member `omit`. */
export function joinMembers(members: readonly CanonicalMember[], omit?: string): string {
  const texts: string[] = [];
  for (const member of members) if (member.key !== omit) texts.push(member.text);
  return `{${texts.join(",")}}`;
}

function escapePointerToken(key: string): string {
  return key.replaceAll("~", "~0").replaceAll("/", "~1");
}

function writeString(text: string, pointer: string, writer: Writer): void {
  if (!writer.escapeLoneSurrogates && LONE_SURROGATE.test(text)) {
    throw new CanonicalJsonError(pointer, "string contains a lone surrogate (not I-JSON)");
  }
  // JSON.stringify escapes a lone surrogate as \uXXXX (ES2019 well-formed JSON.stringify).
  writer.parts.push(JSON.stringify(text));
}

function write(value: unknown, pointer: string, writer: Writer): void {
  const parts = writer.parts;
  switch (typeof value) {
    case "string":
      writeString(value, pointer, writer);
      return;
    case "number":
      if (!Number.isFinite(value)) {
        if (!writer.nullForNonFinite) throw new CanonicalJsonError(pointer, `${value} is not a JSON number`);
        parts.push("null");
        return;
      }
      // ECMAScript Number::toString is RFC 8785's number serialization (-0 prints as 0).
      parts.push(JSON.stringify(value));
      return;
    case "boolean":
      parts.push(value ? "true" : "false");
      return;
    case "object":
      break;
    default:
      throw new CanonicalJsonError(pointer, `${typeof value} has no JSON form`);
  }
  if (value === null) {
    parts.push("null");
    return;
  }
  const ancestors = writer.ancestors;
  if (ancestors.has(value)) throw new CanonicalJsonError(pointer, "cycle");
  ancestors.add(value);
  if (Array.isArray(value)) {
    parts.push("[");
    for (let i = 0; i < value.length; i++) {
      if (i > 0) parts.push(",");
      // Holes read as undefined and are refused like any undefined item.
      write(value[i], `${pointer}/${i}`, writer);
    }
    parts.push("]");
  } else {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      const kind = (value as { constructor?: { name?: unknown } }).constructor?.name;
      throw new CanonicalJsonError(pointer, `${typeof kind === "string" && kind !== "" ? kind : "non-plain object"} is not a plain object`);
    }
    // Default sort compares UTF-16 code units, as RFC 8785 section 3.2.3 asks.
    const keys = Object.keys(value).sort();
    parts.push("{");
    let first = true;
    for (const key of keys) {
      const child = (value as Record<string, unknown>)[key];
      if (child === undefined && writer.omitUndefined) continue;
      const childPointer = `${pointer}/${escapePointerToken(key)}`;
      if (!first) parts.push(",");
      first = false;
      writeString(key, childPointer, writer);
      parts.push(":");
      write(child, childPointer, writer);
    }
    parts.push("}");
  }
  ancestors.delete(value);
}
