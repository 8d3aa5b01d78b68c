import { describe, expect, it } from "vitest";
import { CanonicalJsonError, canonicalJson } from "../../adapter/audit/index.js";

describe("canonicalJson (RFC 8785 style)", () => {
  it("matches RFC 8785's own example (section 3.2.2)", () => {
    const input = String.raw`{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }`;
    expect(canonicalJson(JSON.parse(input))).toBe(
      String.raw`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
    );
  });

  it("sorts keys by UTF-16 code units, not code points (RFC 8785 section 3.2.3)", () => {
    const input = {
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis",
    };
    // "\ud83d\ude00" (U+1F600) sorts before "\ufb33" by code unit, after it by code point.
    expect(canonicalJson(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign","😀":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it.each([
    [0, "0"],
    [-0, "0"],
    [1, "1"],
    [-1.5, "-1.5"],
    [4.5, "4.5"],
    [0.002, "0.002"],
    [0.000001, "0.000001"],
    [1e-7, "1e-7"],
    [1e20, "100000000000000000000"],
    [1e21, "1e+21"],
    [9007199254740991, "9007199254740991"],
    [5e-324, "5e-324"],
    [1.7976931348623157e308, "1.7976931348623157e+308"],
    // eslint-disable-next-line no-loss-of-precision -- the literal is rounded on purpose: its text is not its value
    [333333333.33333329, "333333333.3333333"],
    [0.1 + 0.2, "0.30000000000000004"],
  ])("prints the number %s as %s", (value, text) => {
    expect(canonicalJson(value)).toBe(text);
  });

  it("nests, writes no white space and keeps arrays in order", () => {
    expect(canonicalJson({ b: [3, { z: 1, a: [] }, "x"], a: { y: null, x: true } })).toBe(
      '{"a":{"x":true,"y":null},"b":[3,{"a":[],"z":1},"x"]}',
    );
    expect(canonicalJson({})).toBe("{}");
    expect(canonicalJson([])).toBe("[]");
  });

  it("escapes strings as JSON.stringify does, keeping non-ASCII as is", () => {
    expect(canonicalJson('a"b\\c\u0001\u001f\u007f\u2028é')).toBe('"a\\"b\\\\c\\u0001\\u001f\u007f\u2028é"');
  });

  it("treats own __proto__ keys and null-prototype objects as ordinary fields", () => {
    const parsed = JSON.parse('{"__proto__":{"polluted":1},"a":1}') as object;
    expect(canonicalJson(parsed)).toBe('{"__proto__":{"polluted":1},"a":1}');
    const bare = Object.create(null) as Record<string, unknown>;
    bare.k = "v";
    expect(canonicalJson(bare)).toBe('{"k":"v"}');
  });

  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = { back: cyclic };
  class Money {
    amount = 1;
  }
  it.each([
    ["NaN", { a: [1, Number.NaN] }, "/a/1", "NaN is not a JSON number"],
    ["Infinity", { a: Number.POSITIVE_INFINITY }, "/a", "Infinity is not a JSON number"],
    ["-Infinity", Number.NEGATIVE_INFINITY, "", "-Infinity is not a JSON number"],
    ["undefined in an object", { a: { b: undefined } }, "/a/b", "undefined has no JSON form"],
    ["undefined in an array", [1, undefined], "/1", "undefined has no JSON form"],
    ["an array hole", [1, , 3], "/1", "undefined has no JSON form"], // eslint-disable-line no-sparse-arrays -- the hole is the point
    ["undefined itself", undefined, "", "undefined has no JSON form"],
    ["a function", { f: () => 1 }, "/f", "function has no JSON form"],
    ["a symbol", { s: Symbol("s") }, "/s", "symbol has no JSON form"],
    ["a bigint", { n: 10n }, "/n", "bigint has no JSON form"],
    ["a cycle", cyclic, "/self/back", "cycle"],
    ["a Date", { at: new Date(0) }, "/at", "Date is not a plain object"],
    ["a Map", { m: new Map() }, "/m", "Map is not a plain object"],
    ["a class instance", { m: new Money() }, "/m", "Money is not a plain object"],
    ["a lone high surrogate", { "a/b~": "x\ud800y" }, "/a~1b~0", "string contains a lone surrogate (not I-JSON)"],
    ["a lone low surrogate in a key", { "\udc00": 1 }, "/\udc00", "string contains a lone surrogate (not I-JSON)"],
  ])("refuses %s with a CanonicalJsonError naming its pointer", (_name, value, pointer, problem) => {
    let thrown: unknown;
    try {
      canonicalJson(value);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(CanonicalJsonError);
    expect(thrown).toMatchObject({ code: "not_canonical_json", pointer, name: "CanonicalJsonError" });
    expect((thrown as Error).message).toBe(`${pointer === "" ? "value" : pointer}: ${problem}`);
  });

  it("accepts the same object twice when it is shared, not cyclic", () => {
    const shared = { x: 1 };
    expect(canonicalJson({ a: shared, b: [shared] })).toBe('{"a":{"x":1},"b":[{"x":1}]}');
  });
});
