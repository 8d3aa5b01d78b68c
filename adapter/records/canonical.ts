/**
 * Canonical JSON in the style of RFC 8785 (JCS): object keys sorted by UTF-16
 * code units, no white space, numbers in ECMAScript's shortest round-trip form
 * (what JSON.stringify prints; -0 prints as 0), strings escaped as
 * JSON.stringify escapes them. A record's hash is taken over this text, so the
 * same record always hashes the same whatever order its keys were built in.
 *
 * Unlike JSON.stringify it never drops or converts anything silently: a value
 * with no JSON form (undefined, a function, a symbol, a bigint, NaN or
 * ±Infinity, a string with a lone surrogate, a cycle, a Date, Map or other
 * class instance) throws a CanonicalJsonError naming its JSON pointer.
 */
import { CanonicalJsonError } from "./errors.js";

// A high surrogate not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function canonicalJson(value: unknown): string {
  const parts: string[] = [];
  write(value, "", new Set<object>(), parts);
  return parts.join("");
}

/** One member of a canonical JSON object: its key and its `"key":value` text. */
export interface CanonicalMember {
  readonly key: string;
  readonly text: string;
}

/**
 * The members of a plain object in canonical order, each already in
 * canonical form, so that the object can be written with and without some
 * members (a record with and without its hash) canonicalizing each value once.
 */
export function canonicalMembers(value: object): CanonicalMember[] {
  if (Array.isArray(value)) throw new CanonicalJsonError("", "an array has no members");
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) throw new CanonicalJsonError("", "not a plain object");
  const ancestors = new Set<object>([value]);
  return Object.keys(value)
    .sort()
    .map((key) => {
      const parts: string[] = [];
      const pointer = `/${escapePointerToken(key)}`;
      writeString(key, pointer, parts);
      parts.push(":");
      write((value as Record<string, unknown>)[key], pointer, ancestors, parts);
      return { key, text: parts.join("") };
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

function writeString(text: string, pointer: string, parts: string[]): void {
  if (LONE_SURROGATE.test(text)) {
    throw new CanonicalJsonError(pointer, "string contains a lone surrogate (not I-JSON)");
  }
  parts.push(JSON.stringify(text));
}

function write(value: unknown, pointer: string, ancestors: Set<object>, parts: string[]): void {
  switch (typeof value) {
    case "string":
      writeString(value, pointer, parts);
      return;
    case "number":
      if (!Number.isFinite(value)) throw new CanonicalJsonError(pointer, `${value} is not a JSON number`);
      // ECMAScript Number::toString is RFC 8785's number serialization.
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
  if (ancestors.has(value)) throw new CanonicalJsonError(pointer, "cycle");
  ancestors.add(value);
  if (Array.isArray(value)) {
    parts.push("[");
    for (let i = 0; i < value.length; i++) {
      if (i > 0) parts.push(",");
      // Holes read as undefined and are refused like any undefined.
      write(value[i], `${pointer}/${i}`, ancestors, parts);
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
    keys.forEach((key, i) => {
      const childPointer = `${pointer}/${escapePointerToken(key)}`;
      if (i > 0) parts.push(",");
      writeString(key, childPointer, parts);
      parts.push(":");
      write((value as Record<string, unknown>)[key], childPointer, ancestors, parts);
    });
    parts.push("}");
  }
  ancestors.delete(value);
}
