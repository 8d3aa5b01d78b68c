/**
 * The one canonical JSON (adapter/common/canonical-json.ts) against the two
 * it replaced, kept below as they were: the records' strict one (record
 * hashes, checkpoint signatures) and the call digests' lenient one. On every
 * value either accepted the text is byte for byte the same, so no record hash
 * and no call digest changes; where the digests' old one wrote something for
 * a value that is not JSON data at all (a Date or Map as {}, a cycle
 * overflowing the stack, a hole as nothing), the new one refuses it by name.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import {
  DIGEST_READING,
  canonicalJson,
  canonicalMembers,
  canonicalSplit,
  joinMembers,
  rememberCanonical,
  rememberRecent,
  type CanonicalJsonOptions,
} from "../../adapter/common/canonical-json.js";
import { DEFAULT_INPUT_LIMITS, checkCall } from "../../adapter/call/input.js";
import { GENESIS_HASH, sealRecord } from "../../adapter/records/chain.js";
import { CanonicalJsonError } from "../../adapter/common/errors.js";

const SEED = Number(process.env["VETO_TEST_SEED"] ?? 20261130);
const RUNS = 600;
// fast-check prints the seed and the shrunk counterexample on failure.
const check = <T extends unknown[]>(property: fc.IProperty<T>): void => fc.assert(property, { seed: SEED, numRuns: RUNS });

// ---- The two implementations before they became one (reference only). ----

/** The call digests' canonicalJson as it was: JSON.stringify for leaves, undefined members left out. */
function oldDigestJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError(`not JSON: ${typeof value}`);
    return text;
  }
  if (Array.isArray(value)) {
    return `[${value.map((v) => oldDigestJson(v)).join(",")}]`;
  }
  const entries = Object.keys(value)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${oldDigestJson((value as Record<string, unknown>)[k])}`);
  return `{${entries.join(",")}}`;
}

const OLD_LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const oldPointerToken = (key: string): string => key.replaceAll("~", "~0").replaceAll("/", "~1");
/** The records' canonicalJson as it was: refuses whatever has no JSON form (the checked writer with no option, below). */
function oldRecordJson(value: unknown): string {
  return checkedJson(value);
}

// ---- Generated values. ----

/** Text or the error it throws, to compare two implementations on one value. */
function outcome(f: () => string): { text: string } | { error: string; pointer?: string; name: string } {
  try {
    return { text: f() };
  } catch (error) {
    const e = error as Error & { pointer?: string };
    return { error: e.message, name: e.name, ...(e.pointer === undefined ? {} : { pointer: e.pointer }) };
  }
}

// Keys and strings from the whole UTF-16 range (lone surrogates included), array-index keys, "__proto__".
const text = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 6 }),
  fc.string({ unit: "binary", maxLength: 6 }),
  fc.constantFrom("", "0", "10", "__proto__", "a/b~c", "\u20ac", "\ud83d\ude00", "\ud800", "\udc00x"),
);
const number = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(-0, 0, 1e21, 1e-7, 5e-324, Number.MAX_SAFE_INTEGER));
const leaf = fc.oneof(fc.constant(null), fc.boolean(), number, text);

/** JSON values (with -0), plus `undefined` as object members when `withUndefined`, built as plain or null-prototype objects. */
function jsonish(withUndefined: boolean): fc.Arbitrary<unknown> {
  return fc.letrec((tie) => ({
    value: fc.oneof({ depthSize: "small", withCrossShrink: true }, leaf, tie("array"), tie("object")),
    array: fc.array(tie("value"), { maxLength: 4 }),
    object: fc
      .tuple(
        fc.array(fc.tuple(text, withUndefined ? fc.oneof(tie("value"), fc.constant(undefined)) : tie("value")), { maxLength: 4 }),
        fc.boolean(),
      )
      .map(([entries, bare]) => {
        const out = (bare ? Object.create(null) : {}) as Record<string, unknown>;
        for (const [k, v] of entries) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
        return out;
      }),
  })).value;
}
const wellFormed = (v: unknown): boolean => {
  try {
    oldRecordJson(JSON.parse(JSON.stringify(v, (_k, x: unknown) => (typeof x === "number" && !Number.isFinite(x) ? null : x))));
    return true;
  } catch {
    return false;
  }
};

describe("one canonical JSON for records and digests", () => {
  it("writes records byte for byte as the records' old one did, and refuses the same values at the same pointer", () => {
    check(
      fc.property(fc.oneof(jsonish(false), jsonish(true), fc.anything()), (value) => {
        expect(outcome(() => canonicalJson(value))).toEqual(outcome(() => oldRecordJson(value)));
      }),
    );
  });

  it("digests calls byte for byte as the digests' old one did: undefined members left out, non-finite numbers as null, lone surrogates escaped", () => {
    const nonFinite = fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY);
    const withNonFinite = fc
      .tuple(jsonish(true), nonFinite, text)
      .map(([value, n, key]) =>
        value !== null && typeof value === "object" && !Array.isArray(value) ? { ...value, [key]: n } : [value, n],
      );
    check(
      fc.property(fc.oneof(jsonish(true), withNonFinite), (value) => {
        expect(canonicalJson(value, DIGEST_READING)).toBe(oldDigestJson(value));
      }),
    );
  });

  it("gives every existing record hash input the same text under both readings when it holds no undefined and no NaN", () => {
    check(
      fc.property(jsonish(false), (value) => {
        fc.pre(wellFormed(value));
        expect(canonicalJson(value, DIGEST_READING)).toBe(canonicalJson(value));
      }),
    );
  });

  class Money {
    amount = 1;
  }
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = [cyclic];
  it.each([
    ["a Date", { at: new Date(0) }, "/at", "Date is not a plain object"],
    ["a Map", { m: new Map([[1, 2]]) }, "/m", "Map is not a plain object"],
    ["a class instance", { m: new Money() }, "/m", "Money is not a plain object"],
    ["a boxed number", { n: new Number(1) }, "/n", "Number is not a plain object"],
    ["a cycle", cyclic, "/self/0", "cycle"],
    ["an array hole", { a: [1, , 2] }, "/a/1", "undefined has no JSON form"], // eslint-disable-line no-sparse-arrays -- the hole is the point
    ["undefined in an array", [undefined], "/0", "undefined has no JSON form"],
    ["undefined itself", undefined, "", "undefined has no JSON form"],
    ["a function member", { f: () => 1 }, "/f", "function has no JSON form"],
    ["a bigint", { n: 1n }, "/n", "bigint has no JSON form"],
  ])("refuses %s under the digest reading too, naming its pointer", (_name, value, pointer, problem) => {
    let thrown: unknown;
    try {
      canonicalJson(value, DIGEST_READING);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(CanonicalJsonError);
    expect(thrown).toMatchObject({ code: "not_canonical_json", pointer, message: `${pointer === "" ? "value" : pointer}: ${problem}` });
  });

  it("documents its readings of undefined, NaN and -0", () => {
    expect(canonicalJson({ b: undefined, a: -0 }, DIGEST_READING)).toBe('{"a":0}');
    expect(canonicalJson([Number.NaN, Number.NEGATIVE_INFINITY], DIGEST_READING)).toBe("[null,null]");
    expect(canonicalJson({ a: -0 })).toBe('{"a":0}');
    expect(canonicalJson({ "\udc00": "x\ud800" }, DIGEST_READING)).toBe('{"\\udc00":"x\\ud800"}');
    expect(() => canonicalJson({ s: "x\ud800" })).toThrow(new CanonicalJsonError("/s", "string contains a lone surrogate (not I-JSON)"));
    expect(() => canonicalJson({ b: undefined })).toThrow(new CanonicalJsonError("/b", "undefined has no JSON form"));
    expect(() => canonicalJson({ n: Number.NaN }, { undefinedMember: "omit" })).toThrow(
      new CanonicalJsonError("/n", "NaN is not a JSON number"),
    );
    expect(() => canonicalJson({ u: undefined }, { nonFiniteNumber: "null" })).toThrow(
      new CanonicalJsonError("/u", "undefined has no JSON form"),
    );
    // A toJSON method is data like any other member, never called.
    expect(() => canonicalJson({ toJSON: () => "x" }, DIGEST_READING)).toThrow(CanonicalJsonError);
  });

  it("is stable under key order: the same members in any order give the same text", () => {
    check(
      fc.property(
        fc.tuple(jsonish(false).filter(wellFormed), fc.integer()).map(([value, seed]) => [value, seed] as unknown),
        (pair) => {
          const [value, seed] = pair as [unknown, number];
          expect(canonicalJson(reordered(value, seed))).toBe(canonicalJson(value));
        },
      ),
    );
  });

  it("round-trips: its text parses back to the same value (-0 as 0), whose text is the same again", () => {
    check(
      fc.property(jsonish(false).filter(wellFormed), (value) => {
        const text = canonicalJson(value);
        const parsed: unknown = JSON.parse(text);
        expect(sameJson(parsed, value)).toBe(true);
        expect(canonicalJson(parsed)).toBe(text);
        // Members sorted by UTF-16 code units at every level.
        expect(sortedEverywhere(parsed)).toBe(true);
      }),
    );
  });
});

/** `depth` arrays nested in one another around `inner`. */
function nested(depth: number, inner: unknown): unknown {
  let value = inner;
  for (let i = 0; i < depth; i++) value = [value];
  return value;
}

// Plain JSON data is written member by member (plainText); everything else by
// the checked writer, which also names what is wrong. Both must give the
// records' old text, whichever of them a value takes.
describe("the member-by-member path and the checked writer's give one text", () => {
  const plainObject = jsonish(false).filter((v) => v !== null && typeof v === "object" && !Array.isArray(v)) as fc.Arbitrary<object>;
  const anyObject = fc
    .oneof(jsonish(false), jsonish(true), fc.anything())
    .filter((v) => v !== null && typeof v === "object" && !Array.isArray(v)) as fc.Arbitrary<object>;

  it("writes an object's members as the old writer wrote the object, or refuses it at the same pointer", () => {
    check(
      fc.property(anyObject, (value) => {
        expect(outcome(() => joinMembers(canonicalMembers(value)))).toEqual(outcome(() => oldRecordJson(value)));
      }),
    );
  });

  it("splits an object around a key so that both halves rebuild its text, with and without that member", () => {
    check(
      fc.property(plainObject, text, leaf, (value, key, member) => {
        const around = canonicalSplit(value, key, []);
        if (Object.prototype.hasOwnProperty.call(value, key)) {
          expect(around).toBeUndefined();
          return;
        }
        const expected = outcome(() => oldRecordJson(value));
        // Handed to the checked writer exactly when it refuses the value (array-index and __proto__ keys included).
        expect(around === undefined).toBe("error" in expected);
        if (around === undefined) return;
        const [before, after] = around;
        expect(`{${[before, after].filter((t) => t !== "").join(",")}}`).toBe((expected as { text: string }).text);
        const added = Object.create(null) as Record<string, unknown>;
        for (const k of Object.keys(value)) added[k] = (value as Record<string, unknown>)[k];
        added[key] = member;
        const withMember = outcome(() => oldRecordJson(added));
        if ("text" in withMember) {
          expect(`{${[before, `${JSON.stringify(key)}:${JSON.stringify(member)}`, after].filter((t) => t !== "").join(",")}}`).toBe(
            withMember.text,
          );
        }
      }),
    );
  });

  it("seals a record as the old writer would: the line is its canonical JSON, the hash over it without the hash", () => {
    check(
      fc.property(anyObject, fc.integer({ min: 1, max: 2 ** 40 }), (record, seq) => {
        const sealed = outcome(() => sealRecord(record, seq, GENESIS_HASH).text);
        const body = Object.create(null) as Record<string, unknown>;
        for (const k of Object.keys(record)) body[k] = (record as Record<string, unknown>)[k];
        if (["seq", "prev_hash", "hash", "checkpoint"].some((k) => k in body)) return;
        body.seq = seq;
        body.prev_hash = GENESIS_HASH;
        const unsealed = outcome(() => oldRecordJson(body));
        if ("error" in unsealed) {
          expect(sealed).toEqual(unsealed);
          return;
        }
        body.hash = `sha256:${createHash("sha256").update(unsealed.text, "utf8").digest("hex")}`;
        expect(sealed).toEqual({ text: oldRecordJson(body) });
      }),
    );
  });

  it("takes values nested past the member-by-member depth, shared objects and deep cycles as the checked writer does", () => {
    const shared = { b: [1, "x"], a: null };
    const cyclicDeep: Record<string, unknown> = { z: 1 };
    cyclicDeep.a = nested(150, cyclicDeep);
    for (const value of [
      nested(99, { k: 1 }),
      nested(100, { k: 1 }),
      nested(250, "leaf"),
      { s: shared, t: [shared, shared] },
      cyclicDeep,
    ]) {
      expect(outcome(() => canonicalJson(value))).toEqual(outcome(() => oldRecordJson(value)));
      expect(outcome(() => joinMembers(canonicalMembers({ v: value })))).toEqual(outcome(() => oldRecordJson({ v: value })));
    }
    expect(outcome(() => canonicalJson(cyclicDeep))).toMatchObject({ error: `/a${"/0".repeat(150)}: cycle` });
  });
});

/** `value` with every object's members in another order (a permutation drawn from `seed`), prototypes kept. */
function reordered(value: unknown, seed: number): unknown {
  let state = seed >>> 0;
  const next = (): number => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const walk = (v: unknown): unknown => {
    if (v === null || typeof v !== "object") return v;
    if (Array.isArray(v)) return v.map(walk);
    const keys = Object.keys(v);
    for (let i = keys.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [keys[i], keys[j]] = [keys[j]!, keys[i]!];
    }
    const out = Object.create(Object.getPrototypeOf(v) as object | null) as Record<string, unknown>;
    for (const k of keys)
      Object.defineProperty(out, k, {
        value: walk((v as Record<string, unknown>)[k]),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    return out;
  };
  return walk(value);
}

/** Equal as JSON data: same members whatever their order, -0 equal to 0. */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return a === b || (typeof a === "number" && a === b);
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return (
    ka.length === kb.length &&
    ka.every((k, i) => k === kb[i] && sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
  );
}

/** Whether the text a parse came from listed every object's members in code-unit order (JSON.parse keeps text order except for array-index keys, which sort numerically first). */
function sortedEverywhere(v: unknown): boolean {
  if (v === null || typeof v !== "object") return true;
  if (Array.isArray(v)) return v.every(sortedEverywhere);
  const keys = Object.keys(v);
  const named = keys.filter((k) => !/^(0|[1-9][0-9]*)$/.test(k) || Number(k) >= 2 ** 32 - 1);
  const ordered = named.every((k, i) => i === 0 || named[i - 1]! < k);
  return ordered && Object.values(v).every(sortedEverywhere);
}

// Records are sealed member by member in one pass (canonicalSplit), a call's
// snapshot taken as the text checkCall made of it (rememberCanonical). Every
// line must be the one the records' old writer gives the record with its chain
// members, and every refusal the same, at the same pointer.
describe("sealing writes each member once, as the checked writer would", () => {
  const sealedOrRefused = (record: object, seq: number, prevHash: string): ReturnType<typeof outcome> => {
    const body = Object.create(null) as Record<string, unknown>;
    for (const k of Object.keys(record)) body[k] = (record as Record<string, unknown>)[k];
    body.seq = seq;
    body.prev_hash = prevHash;
    const unsealed = outcome(() => oldRecordJson(body));
    if ("error" in unsealed) return unsealed;
    body.hash = `sha256:${createHash("sha256").update(unsealed.text, "utf8").digest("hex")}`;
    return { text: oldRecordJson(body) };
  };
  const prevHash = fc.oneof(
    fc.constant(GENESIS_HASH),
    fc.stringMatching(/^[0-9a-f]{64}$/).map((h) => `sha256:${h}`),
  );
  const orNull = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | null> => fc.oneof(a, fc.constant(null));
  // A decision record's members (adapter/records/schema.ts), strings drawn from the whole UTF-16 range.
  const decisionRecord = fc.record(
    {
      type: fc.constant("decision"),
      decision_id: text,
      timestamp: text,
      path: text,
      bundles: fc.dictionary(text, fc.record({ revision: text, hash: text }), { maxKeys: 2 }),
      actor_id: orNull(text),
      tenant_id: orNull(text),
      call_digest: orNull(text),
      tool: orNull(text),
      environment: orNull(text),
      source_system: orNull(text),
      request_id: orNull(text),
      session_id: orNull(text),
      on_behalf_of: orNull(text),
      input: jsonish(false),
      masked: fc.array(text, { maxLength: 3 }),
      input_digest: orNull(text),
      history: orNull(fc.record({ recent_denies: number })),
      result: fc.record({
        action: fc.constantFrom("allow", "deny", "require_approval"),
        escalated: fc.boolean(),
        reason: text,
        reasons: fc.array(fc.record({ code: text, message: text }), { maxLength: 3 }),
        approvers: fc.array(text, { maxLength: 3 }),
      }),
      metrics: fc.record({ timer_rego_query_eval_ns: number }),
      destination_hosts: fc.array(text, { maxLength: 2 }),
      expires_at: text,
      record_state: text,
      amended_from: text,
      amended_by: text,
      shadow: fc.record({ revision: text, hash: text, action: text, reasons: fc.array(text, { maxLength: 2 }) }, { requiredKeys: [] }),
    },
    { requiredKeys: ["type", "decision_id", "timestamp", "path", "bundles", "input", "masked", "result", "metrics"] },
  );
  // Members in any order (the adapter's own records list theirs sorted), some extra ones, plain or null-prototype.
  const anyRecord = fc
    .tuple(decisionRecord, fc.dictionary(text, jsonish(true), { maxKeys: 3 }), fc.integer(), fc.boolean())
    .map(([record, extra, seed, bare]) => {
      const merged = Object.create(bare ? null : Object.prototype) as Record<string, unknown>;
      for (const [k, v] of Object.entries({ ...extra, ...record })) {
        Object.defineProperty(merged, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      return seed % 3 === 0 ? merged : (reordered(merged, seed) as Record<string, unknown>);
    });

  it("seals generated decision records, in any member order, as the old writer writes them with seq, prev_hash and hash", () => {
    check(
      fc.property(anyRecord, fc.integer({ min: 1, max: 2 ** 53 - 1 }), prevHash, (record, seq, prev) => {
        if (["seq", "prev_hash", "hash", "checkpoint"].some((k) => Object.prototype.hasOwnProperty.call(record, k))) return;
        expect(outcome(() => sealRecord(record, seq, prev).text)).toEqual(sealedOrRefused(record, seq, prev));
      }),
    );
  });

  it("writes a call's snapshot as its input from checkCall's text, which is the old writer's text of it", () => {
    const call = fc.record({
      tool: text,
      arguments: fc.dictionary(text, jsonish(false), { maxKeys: 5 }),
      context: fc.record({ actorId: text, tenantId: text, environment: text }),
    });
    check(
      fc.property(call, decisionRecord, fc.integer({ min: 1, max: 2 ** 40 }), (raw, record, seq) => {
        const checked = checkCall(raw, DEFAULT_INPUT_LIMITS, []);
        if (!checked.ok) return;
        expect(checked.json).toBe(oldRecordJson(checked.call));
        const withInput = { ...record, input: checked.call };
        expect(outcome(() => sealRecord(withInput, seq, GENESIS_HASH).text)).toEqual(sealedOrRefused(withInput, seq, GENESIS_HASH));
      }),
    );
  });

  it("sorts objects of any size, nearly sorted or not, as the old writer does", () => {
    // Both sides of the insertion sort's limit (32 keys).
    const keys = fc.oneof(fc.uniqueArray(text, { maxLength: 32 }), fc.uniqueArray(text, { minLength: 33, maxLength: 60 }));
    check(
      fc.property(keys, fc.integer({ min: 0, max: 5 }), fc.integer(), (names, appended, seed) => {
        // Sorted, then a few more keys added at the end (how the adapter's records are built), or shuffled.
        const sorted = [...names].sort();
        const order = seed % 2 === 0 ? [...sorted.slice(appended), ...sorted.slice(0, appended)] : names;
        const value: Record<string, unknown> = {};
        for (const [i, k] of order.entries())
          Object.defineProperty(value, k, { value: i, enumerable: true, writable: true, configurable: true });
        expect(outcome(() => sealRecord({ v: value, ...(seed % 3 === 0 ? {} : { w: [value] }) }, 1, GENESIS_HASH).text)).toEqual(
          sealedOrRefused({ v: value, ...(seed % 3 === 0 ? {} : { w: [value] }) }, 1, GENESIS_HASH),
        );
      }),
    );
  });

  it("writes a snapshot checked long before its record by walking it, with the same bytes", () => {
    const snapshots = Array.from({ length: 12 }, (_, i) =>
      checkCall({ tool: `t${i}`, arguments: { "\u00e9": [i, -0] }, context: {} }, DEFAULT_INPUT_LIMITS, []),
    );
    for (const checked of snapshots) {
      const value = checked.ok ? checked.call : (checked.partial as object);
      expect(sealRecord({ input: value }, 1, GENESIS_HASH).text).toBe(
        (sealedOrRefused({ input: value }, 1, GENESIS_HASH) as { text: string }).text,
      );
    }
  });

  it.each([
    ["rememberCanonical", rememberCanonical],
    ["rememberRecent", rememberRecent],
  ])("%s remembers a text only for a frozen value: a value changed after it is written as it is", (_name, remember) => {
    const open = { a: 1 };
    remember(open, '{"a":2}');
    open.a = 3;
    expect(sealRecord({ input: open }, 1, GENESIS_HASH).text).toBe(
      (sealedOrRefused({ input: open }, 1, GENESIS_HASH) as { text: string }).text,
    );
    expect(sealRecord({ input: open }, 1, GENESIS_HASH).text).toContain('"input":{"a":3}');
  });

  it("refuses what the old writer refuses, at the same pointer, wherever in the record it is", () => {
    // eslint-disable-next-line no-sparse-arrays -- the hole is the point
    for (const bad of ["x\ud800", Number.NaN, undefined, new Date(0), () => 1, 1n, [1, , 2]]) {
      for (const record of [{ a: bad }, { input: { deep: [{ bad }] } }, { z: { "\u00e9": bad } }]) {
        const sealed = outcome(() => sealRecord(record, 1, GENESIS_HASH).text);
        expect(sealed).toEqual(sealedOrRefused(record, 1, GENESIS_HASH));
        expect(sealed).toHaveProperty("error");
      }
    }
  });
});

// ---- One fast writer: canonicalJson against the checked writer under every option. ----

/** The checked writer as documented (adapter/common/canonical-json.ts), with its three options: what canonicalJson must give for every value. */
function checkedJson(value: unknown, options: CanonicalJsonOptions = {}): string {
  const parts: string[] = [];
  checkedWrite(value, "", new Set<object>(), parts, options);
  return parts.join("");
}
function checkedString(text: string, pointer: string, parts: string[], options: CanonicalJsonOptions): void {
  if (options.loneSurrogate !== "escape" && OLD_LONE_SURROGATE.test(text)) {
    throw new CanonicalJsonError(pointer, "string contains a lone surrogate (not I-JSON)");
  }
  parts.push(JSON.stringify(text));
}
function checkedWrite(value: unknown, pointer: string, ancestors: Set<object>, parts: string[], options: CanonicalJsonOptions): void {
  switch (typeof value) {
    case "string":
      checkedString(value, pointer, parts, options);
      return;
    case "number":
      if (Number.isFinite(value)) parts.push(JSON.stringify(value));
      else if (options.nonFiniteNumber === "null") parts.push("null");
      else throw new CanonicalJsonError(pointer, `${value} is not a JSON number`);
      return;
    case "boolean":
      parts.push(String(value));
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
      checkedWrite(value[i], `${pointer}/${i}`, ancestors, parts, options);
    }
    parts.push("]");
  } else {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      const kind = (value as { constructor?: { name?: unknown } }).constructor?.name;
      throw new CanonicalJsonError(pointer, `${typeof kind === "string" && kind !== "" ? kind : "non-plain object"} is not a plain object`);
    }
    const members = Object.keys(value)
      .sort()
      .filter((key) => !(options.undefinedMember === "omit" && (value as Record<string, unknown>)[key] === undefined));
    parts.push("{");
    members.forEach((key, i) => {
      const childPointer = `${pointer}/${oldPointerToken(key)}`;
      if (i > 0) parts.push(",");
      checkedString(key, childPointer, parts, options);
      parts.push(":");
      checkedWrite((value as Record<string, unknown>)[key], childPointer, ancestors, parts, options);
    });
    parts.push("}");
  }
  ancestors.delete(value);
}

/** `value` and everything in it frozen. */
function deepFreeze<T>(value: T, seen = new Set<object>()): T {
  if (value === null || typeof value !== "object" || seen.has(value)) return value;
  seen.add(value);
  for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key], seen);
  return Object.freeze(value);
}

describe("canonicalJson's one fast writer gives the checked writer's text, or its refusal, under every option", () => {
  // Every combination of the three options, each also left out.
  const options: fc.Arbitrary<CanonicalJsonOptions | undefined> = fc.oneof(
    fc.constant(undefined),
    fc.constant(DIGEST_READING),
    fc.record(
      {
        undefinedMember: fc.constantFrom("refuse", "omit"),
        nonFiniteNumber: fc.constantFrom("refuse", "null"),
        loneSurrogate: fc.constantFrom("refuse", "escape"),
      },
      { requiredKeys: [] },
    ) as fc.Arbitrary<CanonicalJsonOptions>,
  );
  // Keys an object lists before the others (array indices, which "10" is and "01", "4294967295", "-1" are not), `__proto__`, lone surrogates.
  const key = fc.oneof(
    text,
    fc.constantFrom("0", "1", "2", "9", "10", "01", "-1", "1.5", "4294967294", "4294967295", "__proto__", "\ud800", "a\udfff"),
    fc.nat({ max: 2 ** 32 }).map(String),
  );
  const awkwardNumber = fc.oneof(
    number,
    fc.constantFrom(
      -0,
      1e21,
      1e-7,
      5e-324,
      -5e-324,
      1.7976931348623157e308,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
    ),
  );
  const awkwardLeaf = fc.oneof(fc.constant(null), fc.boolean(), awkwardNumber, text, fc.constantFrom("\ud800", "x\udc00", "\ud83d\ude00"));
  /** Values with everything an option reads (undefined members and items, holes, non-finite numbers, lone surrogates), plain or null-prototype objects. */
  const awkward: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
    value: fc.oneof({ depthSize: "small", withCrossShrink: true }, awkwardLeaf, tie("array"), tie("object")),
    array: fc
      .tuple(
        fc.array(fc.oneof({ weight: 6, arbitrary: tie("value") }, { weight: 1, arbitrary: fc.constant(undefined) }), { maxLength: 4 }),
        fc.nat(),
      )
      .map(([items, hole]) => {
        if (items.length === 0 || hole % 7 !== 0) return items;
        // Now and then a hole in place of an item.
        const sparse = new Array<unknown>(items.length);
        items.forEach((item, k) => {
          if (k !== hole % items.length) sparse[k] = item;
        });
        return sparse;
      }),
    object: fc
      .tuple(
        fc.array(fc.tuple(key, fc.oneof({ weight: 5, arbitrary: tie("value") }, { weight: 1, arbitrary: fc.constant(undefined) })), {
          maxLength: 5,
        }),
        fc.boolean(),
      )
      .map(([entries, bare]) => {
        const out = (bare ? Object.create(null) : {}) as Record<string, unknown>;
        for (const [k, v] of entries) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
        return out;
      }),
  })).value;
  const same = (value: unknown, opts: CanonicalJsonOptions | undefined): void => {
    expect(outcome(() => canonicalJson(value, opts))).toEqual(outcome(() => checkedJson(value, opts)));
  };

  it("on generated values: array-index and __proto__ keys, lone surrogates, -0, 1e21, 5e-324, non-finite numbers, undefined members", () => {
    check(
      fc.property(fc.oneof(awkward, jsonish(true)), options, (value, opts) => {
        same(value, opts);
      }),
    );
  });

  it("on generated plain JSON data with array-index and __proto__ keys, which it writes member by member", () => {
    const plainKeyed = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: "small" },
        fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.string()),
        tie("array"),
        tie("object"),
      ),
      array: fc.array(tie("value"), { maxLength: 3 }),
      object: fc
        .array(
          fc.tuple(
            key.filter((k) => !OLD_LONE_SURROGATE.test(k)),
            tie("value"),
          ),
          { maxLength: 5 },
        )
        .map((entries) => {
          const out: Record<string, unknown> = {};
          for (const [k, v] of entries) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
          return out;
        }),
    })).value;
    check(
      fc.property(plainKeyed, options, (value, opts) => {
        const written = canonicalJson(value, opts);
        expect(written).toBe(checkedJson(value, opts));
        expect(written).toBe(canonicalJson(value));
      }),
    );
  });

  it("on values nested up to and past its depth limit, as arrays or objects, with anything inside", () => {
    check(
      fc.property(fc.integer({ min: 95, max: 130 }), fc.boolean(), key, awkward, options, (depth, asObjects, k, inner, opts) => {
        let value = inner;
        for (let i = 0; i < depth; i++) value = asObjects ? { [k]: value } : [value];
        same(value, opts);
        same({ z: 1, deep: value }, opts);
      }),
    );
  });

  it("on cycles anywhere, shallow or past the depth limit: the checked writer's cycle at its pointer", () => {
    check(
      fc.property(awkward, fc.nat(), fc.nat(), key, fc.integer({ min: 0, max: 130 }), options, (inner, at, back, k, depth, opts) => {
        // A member or item that points back at one of its ancestors, under `depth` arrays.
        const root: unknown[] = [inner];
        const nodes: { node: object; ancestors: object[] }[] = [];
        const walk = (v: unknown, ancestors: object[]): void => {
          if (v === null || typeof v !== "object" || ancestors.includes(v)) return;
          nodes.push({ node: v, ancestors: [...ancestors, v] });
          for (const child of Object.values(v)) walk(child, [...ancestors, v]);
        };
        walk(root, []);
        const { node, ancestors } = nodes[at % nodes.length]!;
        const target = ancestors[back % ancestors.length]!;
        let loop: unknown = target;
        for (let i = 0; i < depth; i++) loop = [loop];
        if (Array.isArray(node)) node.push(loop);
        else Object.defineProperty(node, k, { value: loop, enumerable: true, writable: true, configurable: true });
        const outcomeOf = outcome(() => canonicalJson(root, opts));
        expect(outcomeOf).toEqual(outcome(() => checkedJson(root, opts)));
        expect(outcomeOf).toHaveProperty("error");
      }),
    );
  });

  it("on frozen values with remembered texts: each remembered text is its value's under every option", () => {
    check(
      fc.property(
        fc.array(fc.tuple(fc.oneof(awkward, jsonish(false)), fc.boolean()), { minLength: 1, maxLength: 10 }),
        awkward,
        options,
        (entries, other, opts) => {
          // Remembered as the adapter remembers them (veto.ts, call/input.ts): the default options' text, when they accept the value.
          const values = entries.map(([value, recent]) => {
            const frozen = deepFreeze(value);
            const strict = outcome(() => canonicalJson(frozen));
            if (frozen !== null && typeof frozen === "object" && "text" in strict)
              (recent ? rememberRecent : rememberCanonical)(frozen, strict.text);
            return frozen;
          });
          for (const value of values) {
            same(value, opts);
            same({ other, value }, opts);
            same([value, other, values], opts);
          }
        },
      ),
    );
  });
});
