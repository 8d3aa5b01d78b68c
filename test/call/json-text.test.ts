// numberTexts (adapter/call/json-text.ts): the text of each number near the top
// of a call, as JSON.parse would resolve the call, for judging amounts by
// their text (docs/contract.md §9 "Amount precision").
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { numberTexts } from "../../adapter/call/json-text.js";

/** The numbers of a parsed value down to `depth` keys, by JSON pointer, as JSON.stringify writes them. */
function expected(value: unknown, depth: number, pointer = "", out = new Map<string, string>()): Map<string, string> {
  if (typeof value === "number") out.set(pointer, JSON.stringify(value));
  else if (value !== null && typeof value === "object" && depth > 0) {
    for (const [key, child] of Object.entries(value)) {
      expected(child, depth - 1, `${pointer}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`, out);
    }
  }
  return out;
}

describe("numberTexts", () => {
  it("finds every number down to the depth, by JSON pointer, for any JSON (seeded)", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), fc.integer({ min: 0, max: 4 }), fc.boolean(), (value, depth, pretty) => {
        const text = pretty ? JSON.stringify(value, null, 2) : JSON.stringify(value);
        expect(numberTexts(text, depth)).toEqual(expected(JSON.parse(text), depth));
      }),
      { seed: Number(process.env["VETO_JSON_TEXT_SEED"] ?? 7_2026), numRuns: 2000 },
    );
  });

  it("ends on any text, JSON or not: a misplaced closer is an error, not a loop (seeded)", () => {
    expect(() => numberTexts("[}", 3)).toThrow(/not JSON text at offset 1/);
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), fc.nat(), fc.constantFrom("}", "]", ",", ":", "{", "["), (value, at, inserted) => {
        const text = JSON.stringify(value);
        const cut = at % (text.length + 1);
        const broken = `${text.slice(0, cut)}${inserted}${text.slice(cut)}`;
        // Returns or throws: either way it returns to the caller (a loop would time the test out).
        try {
          numberTexts(broken, 3);
        } catch (error) {
          expect(error).toBeInstanceOf(Error);
        }
      }),
      { seed: Number(process.env["VETO_JSON_TEXT_SEED"] ?? 7_2026), numRuns: 3000 },
    );
  });

  it("keeps the number as written, and resolves duplicate keys as JSON.parse does: the last wins, with all under it", () => {
    const text = `{"arguments":{"amount":1,"changes":{"Amount":2}},"arguments":{"amount":250000.00000000001,"changes":{"x":1E+400}},"x":[1e-400,-0]}`;
    expect(numberTexts(text, 3)).toEqual(
      new Map([
        ["/arguments/amount", "250000.00000000001"],
        ["/arguments/changes/x", "1E+400"],
        ["/x/0", "1e-400"],
        ["/x/1", "-0"],
      ]),
    );
  });

  it("decodes escaped keys and skips strings that look like JSON", () => {
    const text = ` { "a\\u006dount" : 12.50 , "s" : "{\\"amount\\": 9e999, \\"]\\": [" , "deep" : {"a":{"b":{"c":{"d":1}}}}, "a/b~c": 3 } `;
    expect(numberTexts(text, 2)).toEqual(
      new Map([
        ["/amount", "12.50"],
        ["/a~1b~0c", "3"],
      ]),
    );
  });
});
