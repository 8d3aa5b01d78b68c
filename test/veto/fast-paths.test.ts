// The hot path's shortcuts against what they stand in for: each
// may only ever agree with, or defer to, the slower original.
//  - checkCall's canonical JSON is canonicalJson of its copy, byte for byte;
//  - quickCallCheck never accepts a call callSchema refuses;
//  - isWellFormedAnswer never accepts an answer policyAnswerSchema refuses;
//  - decision ids are ULIDs, strictly increasing, even within a millisecond
//    or when the clock steps back.
import { encodeTime } from "ulid";
import { describe, expect, it } from "vitest";
import { loadBundle } from "../../adapter/policy/bundle.js";
import { policyAnswerSchema } from "../../adapter/common/decision.js";
import { canonicalJson } from "../../adapter/common/canonical-json.js";
import { PolicyEvaluator, isWellFormedAnswer } from "../../adapter/policy/evaluator.js";
import { monotonicUlid } from "../../adapter/common/ids.js";
import { DEFAULT_INPUT_LIMITS, callSchema, checkCall, quickCallCheck } from "../../adapter/call/input.js";
import { generateCases, seededRandom } from "../helpers/generate-calls.js";
import { requireBundle } from "../helpers/index.js";

const AMOUNT_FIELDS = ["amount", "discount_amount", "credit_amount", "refund_amount"];

/** Awkward objects for the canonical text: unsorted and array-index keys, escapes, surrogates, -0, nesting. */
const awkward: unknown[] = [
  { tool: "crm.update", arguments: { b: 1, a: 2, "10": "x", "9": "y", "01": 0, "": -0 }, context: { z: [{ y: 1, x: 2 }], a: null } },
  { tool: "t", arguments: { é: "\u2028", e: '\u0000\u001f"\\', "😀": "\ud83d\ude00", lone: "\ud800" }, context: {} },
  { context: { actorId: "a" }, arguments: { fields: ["b", "a"], nested: { deep: { deeper: [1, 2.5, 1e21, -1e-7] } } }, tool: "x" },
  {
    tool: "x",
    arguments: { toString: "shadowed", constructor_: 1, valueOf: { hasOwnProperty: true } },
    context: { "4294967295": 1, "4294967294": 2 },
  },
];

/** A deep copy of `value` that nothing has remembered a text for, own `__proto__` keys kept as members. */
function unfrozen(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(unfrozen);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    Object.defineProperty(out, key, {
      value: unfrozen((value as Record<string, unknown>)[key]),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

describe("checkCall's canonical JSON", () => {
  it("equals canonicalJson of the copy, for generated calls and awkward ones", () => {
    const calls = [...generateCases(7, 1500).map((c) => c.call), ...awkward];
    let compared = 0;
    for (const call of calls) {
      const checked = checkCall(call, DEFAULT_INPUT_LIMITS, AMOUNT_FIELDS);
      const copy = checked.ok ? checked.call : checked.partial;
      const json = checked.json;
      if (json === undefined) continue;
      // A fresh copy: canonicalJson takes a remembered text for the frozen copy itself (checkCall remembers `json`).
      expect(json).toBe(canonicalJson(unfrozen(copy)));
      expect(JSON.parse(json)).toEqual(JSON.parse(JSON.stringify(call)));
      compared++;
    }
    expect(compared).toBeGreaterThan(1400);
  });

  it("keeps the order the keys arrived in, frozen, and no key reaches a setter", () => {
    const checked = checkCall(awkward[3], DEFAULT_INPUT_LIMITS, AMOUNT_FIELDS);
    expect(checked.ok).toBe(false); // context lacks actorId: partial is still the copy
    const copy = (checked.ok ? checked.call : checked.partial) as { arguments: Record<string, unknown> };
    expect(Object.keys(copy.arguments)).toEqual(["toString", "constructor_", "valueOf"]);
    expect(Object.hasOwn(copy.arguments, "toString")).toBe(true);
    expect(Object.isFrozen(copy) && Object.isFrozen(copy.arguments)).toBe(true);
  });
});

describe("quickCallCheck", () => {
  it("never accepts what callSchema refuses, and accepts the common valid call", () => {
    let accepted = 0;
    for (const { call } of generateCases(11, 4000)) {
      const checked = checkCall(call, DEFAULT_INPUT_LIMITS, []);
      const copy = checked.ok ? checked.call : checked.partial;
      if (copy === undefined || copy === null || typeof copy !== "object") continue;
      if (quickCallCheck(copy)) {
        accepted++;
        expect(callSchema.safeParse(copy).success).toBe(true);
      }
    }
    expect(accepted).toBeGreaterThan(1000);
  });

  it("defers on each kind of defect", () => {
    const good = {
      tool: "crm.update",
      arguments: { object: "opportunity", changes: { amount: 5 }, fields: ["a"], amount: 1 },
      context: { actorId: "a", tenantId: "t", environment: "production", reason: "r" },
    };
    expect(quickCallCheck(good)).toBe(true);
    const bad: unknown[] = [
      { ...good, extra: 1 },
      { ...good, tool: " " },
      { ...good, arguments: [] },
      { ...good, arguments: { ...good.arguments, recordId: 5 } },
      { ...good, arguments: { ...good.arguments, changes: ["x"] } },
      { ...good, arguments: { ...good.arguments, fields: ["a", 1] } },
      { ...good, arguments: { ...good.arguments, amount: "1" } },
      { ...good, context: { ...good.context, actorId: "" } },
      { ...good, context: { ...good.context, sessionId: 3 } },
      { tool: "x", arguments: {} },
    ];
    for (const call of bad) {
      expect(quickCallCheck(call)).toBe(false);
      expect(callSchema.safeParse(call).success).toBe(false);
    }
  });
});

describe("isWellFormedAnswer", () => {
  const valid = { action: "require_approval", escalated: false, reasons: [{ code: "sensitive_field", message: "m" }], approvers: ["u"] };
  it("accepts a decision and never what policyAnswerSchema refuses", () => {
    expect(isWellFormedAnswer(valid)).toBe(true);
    const random = seededRandom(3);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
    const variants: unknown[] = [];
    for (let i = 0; i < 3000; i++) {
      const a: Record<string, unknown> = {
        action: pick(["allow", "deny", "require_approval", "maybe", 1]),
        escalated: pick([true, false, "false"]),
        reasons: pick([
          [],
          [{ code: "c", message: "m" }],
          [{ code: "", message: "m" }],
          [{ code: "c" }],
          [{ code: "c", message: "m", x: 1 }],
          "r",
        ]),
        approvers: pick([[], ["u"], [""], [1], null]),
      };
      if (random() < 0.1) a["extra"] = 1;
      if (random() < 0.2) a["destination_hosts"] = pick([[], ["hooks.example.com"], [""], [1], "h", null, {}]);
      if (random() < 0.1) delete a["escalated"];
      variants.push(a);
    }
    let accepted = 0;
    for (const a of variants) {
      if (isWellFormedAnswer(a)) {
        accepted++;
        expect(policyAnswerSchema.safeParse(a).success).toBe(true);
      }
    }
    expect(accepted).toBeGreaterThan(10);
    expect(isWellFormedAnswer({ ...valid, destination_hosts: ["a.example", ""] })).toBe(true);
    expect(isWellFormedAnswer({ ...valid, destination_hosts: ["a.example", 1] })).toBe(false);
    expect(isWellFormedAnswer({ ...valid, destination_hosts: null })).toBe(false);
    expect(isWellFormedAnswer({ ...valid, approvers: [] })).toBe(false);
    expect(isWellFormedAnswer({ ...valid, action: "allow", escalated: true, approvers: [] })).toBe(false);
    expect(
      isWellFormedAnswer(
        JSON.parse('{"action":"allow","escalated":false,"reasons":[{"code":"c","message":"m"}],"approvers":[],"__proto__":{}}'),
      ),
    ).toBe(false);
  });
});

describe("monotonicUlid", () => {
  const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
  it("gives time-prefixed ULIDs that strictly increase within a millisecond and when the clock steps back", () => {
    const next = monotonicUlid();
    const times = [1_700_000_000_000, 1_700_000_000_000, 1_700_000_000_000, 1_699_999_999_000, 1_700_000_000_001, 1_700_000_000_001];
    const ids = times.map((t) => next(t));
    for (const id of ids) expect(id).toMatch(ULID);
    for (let i = 1; i < ids.length; i++) expect((ids[i] as string) > (ids[i - 1] as string)).toBe(true);
    // The time prefix as the ulid package writes it.
    expect(ids[0]?.slice(0, 10)).toBe(encodeTime(1_700_000_000_000, 10));
    expect(new Set(Array.from({ length: 10_000 }, () => next(Date.now()))).size).toBe(10_000);
  });
});

describe("PolicyEvaluator.evaluateCall", () => {
  it("decides like evaluate() on the same input, and fails closed on a history that is not a count", async () => {
    const loaded = await loadBundle(requireBundle());
    const evaluator = await PolicyEvaluator.create(loaded.wasm, loaded.data);
    for (const { call, recentDenies } of generateCases(5, 300)) {
      const checked = checkCall(call, DEFAULT_INPUT_LIMITS, AMOUNT_FIELDS);
      if (!checked.ok) continue;
      const fast = await evaluator.evaluateCall(checked.json, recentDenies);
      const slow = await evaluator.evaluate({ ...checked.call, history: { recentDenies } });
      expect(fast.ok && slow.ok && fast.answer).toEqual(slow.ok && slow.answer);
    }
    for (const bad of [Number.NaN, -1, 1.5, undefined, "3", 2n]) {
      const result = await evaluator.evaluateCall('{"tool":"crm.read"}', bad as unknown as number);
      expect(result.ok).toBe(false);
    }
  });
});

describe("PolicyEvaluator after an input its JSON parser refuses", () => {
  it("keeps its instance (no instantiate + setData per such call) and goes on deciding", async () => {
    const loaded = await loadBundle(requireBundle());
    const evaluator = await PolicyEvaluator.create(loaded.wasm, loaded.data);
    expect(evaluator.instantiations).toBe(1);
    const call = {
      tool: "crm.read",
      arguments: { object: "\ud800" },
      context: { actorId: "agent:sales-assistant", tenantId: "acme", environment: "production" },
    };
    for (let i = 0; i < 3; i++) {
      // JSON.stringify writes the lone surrogate as the escape \ud800, which the module's parser aborts on.
      const failed = await evaluator.evaluateCall(JSON.stringify(call), 0);
      expect(failed.ok).toBe(false);
      expect(failed.ok ? "" : failed.error.message).toBe("illegal string escape character");
    }
    expect(evaluator.instantiations).toBe(1);
    const fine = await evaluator.evaluateCall(JSON.stringify({ ...call, arguments: { object: "account" } }), 0);
    expect(fine.ok && fine.answer.action).toBe("allow");
    expect(evaluator.instantiations).toBe(1);
  });
});
