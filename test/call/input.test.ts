// Bad input from an agent (docs/contract.md §1): every
// class is a recorded invalid_input deny, never an exception, and nothing the
// caller sends can reach Object.prototype.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_INPUT_LIMITS, type Decision, type DecisionEventRecord } from "../../adapter/index.js";
import { amountTextProblem, checkCall } from "../../adapter/call/input.js";
import { codes, makeVeto, write, type TestVeto } from "../helpers/index.js";

let t: TestVeto;
beforeAll(async () => {
  t = await makeVeto();
});
afterAll(async () => {
  await t.veto.close();
});

/** Decide on a veto of its own, so deny history from other tests cannot escalate it. */
async function decideFresh(call: unknown): Promise<Decision> {
  const own = await makeVeto();
  try {
    return await own.veto.protect(call);
  } finally {
    await own.veto.close();
  }
}

async function expectInvalid(call: unknown, detail?: RegExp): Promise<Decision> {
  const before = t.sink.records.length;
  const d = await t.veto.protect(call);
  expect([d.action, d.escalated, codes(d), d.approvers]).toEqual(["deny", false, ["invalid_input"], []]);
  if (detail !== undefined) expect(d.reason).toMatch(detail);
  // Recorded before protect() returned.
  expect(t.sink.records.length).toBe(before + 1);
  expect(t.sink.last()).toMatchObject({
    type: "decision",
    decision_id: d.id,
    result: { action: "deny", reasons: [{ code: "invalid_input" }] },
  });
  return d;
}

/** A valid write padded with a note so its JSON is exactly `bytes` long. */
function callOfSize(bytes: number): Record<string, unknown> {
  const call = write({ note: "" });
  const base = Buffer.byteLength(JSON.stringify(call));
  (call["arguments"] as Record<string, unknown>)["note"] = "x".repeat(bytes - base);
  expect(Buffer.byteLength(JSON.stringify(call))).toBe(bytes);
  return call;
}

/** A valid write whose arguments nest so that the call's depth is exactly `depth`. */
function callOfDepth(depth: number): Record<string, unknown> {
  // call (1) > arguments (2) > extra (3) ...
  let nested: Record<string, unknown> = {};
  for (let d = 3; d < depth; d++) nested = { n: nested };
  return write({ extra: nested });
}

describe("size limit", () => {
  const max = DEFAULT_INPUT_LIMITS.maxInputBytes;
  it(`at the limit (${max} bytes) is decided by the policy`, async () => {
    const d = await decideFresh(callOfSize(max));
    expect(codes(d)).toEqual(["low_value"]);
  });
  it("one byte over is invalid_input", async () => {
    await expectInvalid(callOfSize(max + 1), /larger than 65536 bytes/);
  });
  it("far over (32 MiB) is invalid_input, quickly", async () => {
    const started = Date.now();
    await expectInvalid(write({ note: "x".repeat(32 * 1024 * 1024) }), /larger than/);
    expect(Date.now() - started).toBeLessThan(2000);
  });
  it("many small items far over the limit", async () => {
    await expectInvalid(write({ fields: Array.from({ length: 1_000_000 }, () => "a") }), /larger than/);
  });
  it("multi-byte characters count as UTF-8 bytes", async () => {
    const call = callOfSize(max - 3);
    (call["arguments"] as Record<string, unknown>)["note"] = `${(call["arguments"] as Record<string, string>)["note"]}é€`;
    // 2 + 3 bytes added for 2 characters: 2 bytes over.
    await expectInvalid(call, /larger than/);
  });
  it("a custom limit applies", async () => {
    const small = await makeVeto({ limits: { maxInputBytes: 300 } });
    const d = await small.veto.protect(write({ note: "x".repeat(300) }));
    expect(codes(d)).toEqual(["invalid_input"]);
    await small.veto.close();
  });
});

describe("depth limit", () => {
  const max = DEFAULT_INPUT_LIMITS.maxDepth;
  it(`at the limit (${max}) is decided by the policy`, async () => {
    expect(codes(await decideFresh(callOfDepth(max)))).toEqual(["low_value"]);
  });
  it("one over is invalid_input", async () => {
    await expectInvalid(callOfDepth(max + 1), /nests deeper than 12/);
  });
  it("far over (100,000 levels) is invalid_input without blowing the stack", async () => {
    await expectInvalid(callOfDepth(100_000), /nests deeper/);
  });
  it("a cycle is invalid_input", async () => {
    const call = write();
    (call["arguments"] as Record<string, unknown>)["self"] = call;
    await expectInvalid(call, /nests deeper/);
  });
});

describe("wrong types and missing fields", () => {
  const cases: [string, unknown][] = [
    ["no call at all", undefined],
    ["null", null],
    ["a string", "crm.update"],
    ["an array", [write()]],
    ["missing tool", { arguments: {}, context: write()["context"] }],
    ["blank tool", { ...write(), tool: " " }],
    ["non-object arguments", { ...write(), arguments: "opp_123" }],
    ["array arguments", { ...write(), arguments: [] }],
    ["missing context", { tool: "crm.read", arguments: {} }],
    ["blank actorId", write({}, { actorId: "  " })],
    ["numeric tenantId", write({}, { tenantId: 7 })],
    ["missing environment", write({}, { environment: undefined })],
    ["non-string reason", write({}, { reason: 5 })],
    ["non-string recordId", write({ recordId: 123 })],
    ["null destination", write({ destination: null })],
    ["changes as an array", write({ changes: ["stage"] })],
    ["fields with a number", write({ fields: ["name", 1] })],
    ["amount as a string", write({ amount: "9000" })],
    ["amount as null", write({ amount: null })],
    ["amount field in changes as a boolean", write({ changes: { discount_amount: true } })],
    ["Infinity", write({ amount: Number.POSITIVE_INFINITY })],
    ["-Infinity in changes", write({ changes: { amount: Number.NEGATIVE_INFINITY } })],
    ["NaN anywhere", write({ note: Number.NaN })],
    ["a function", write({ callback: () => 1 })],
    ["a BigInt", write({ amount: 10n })],
    ["a Date", write({ when: new Date() })],
    ["a Map", write({ changes: new Map([["stage", "won"]]) })],
    ["undefined inside an array", write({ fields: ["name", undefined] })],
    ["caller-supplied history", { ...write(), history: { recentDenies: 0 } }],
    ["an unknown top-level field", { ...write(), label: "x" }],
  ];
  it.each(cases)("%s", async (_name, call) => {
    await expectInvalid(call);
  });

  it.each([
    ["Amount", "9000"],
    ["DISCOUNT_AMOUNT", null],
    ["Refund_Amount", true],
  ])("an amount field spelled %s holding %j is refused by the adapter itself, naming the key as sent", (key, value) => {
    const checked = checkCall(write({ changes: { stage: "x", [key]: value } }), DEFAULT_INPUT_LIMITS, [
      "amount",
      "discount_amount",
      "refund_amount",
    ]);
    expect(checked.ok ? "" : checked.message).toBe(`arguments.changes.${key}: an amount must be a finite number`);
  });

  it("amount_fields entries match ignoring case too; other keys may hold anything", () => {
    expect(checkCall(write({ changes: { refund_AMOUNT: null } }), DEFAULT_INPUT_LIMITS, ["Refund_Amount"]).ok).toBe(false);
    expect(checkCall(write({ changes: { Amount: 10, amount_note: "x", Stage: null } }), DEFAULT_INPUT_LIMITS, ["amount"]).ok).toBe(true);
  });

  it("a getter that throws", async () => {
    const call = write();
    Object.defineProperty(call["arguments"] as object, "boom", {
      enumerable: true,
      get: () => {
        throw new Error("boom");
      },
    });
    await expectInvalid(call, /cannot be read/);
  });

  it("a proxy that throws", async () => {
    const hostile = new Proxy(
      {},
      {
        ownKeys: () => {
          throw new Error("nope");
        },
      },
    );
    await expectInvalid({ ...write(), arguments: hostile });
  });

  it("the call is read once: later changes by the caller do not change what was decided", async () => {
    const own = await makeVeto();
    const call = write({ amount: 10 });
    const pending = own.veto.protect(call);
    (call["arguments"] as Record<string, unknown>)["amount"] = 10_000_000;
    expect(codes(await pending)).toEqual(["low_value"]);
    expect((own.sink.last() as DecisionEventRecord).input).toMatchObject({ arguments: { amount: 10 } });
    await own.veto.close();
  });
});

describe("prototype pollution", () => {
  const attempts: [string, () => unknown][] = [
    [
      "__proto__ from JSON.parse at the top",
      () =>
        JSON.parse(
          `{"__proto__":{"polluted":true},"tool":"crm.read","arguments":{},"context":{"actorId":"a","tenantId":"acme","environment":"production"}}`,
        ),
    ],
    [
      "__proto__ in changes",
      () =>
        JSON.parse(
          `{"tool":"crm.update","arguments":{"changes":{"__proto__":{"polluted":true}}},"context":{"actorId":"a","tenantId":"acme","environment":"production","reason":"r"}}`,
        ),
    ],
    ["constructor.prototype in arguments", () => write({ constructor: { prototype: { polluted: true } } })],
    ["prototype key in context", () => write({}, { prototype: { polluted: true } })],
    [
      "__proto__ deep inside an array",
      () =>
        JSON.parse(
          `{"tool":"crm.read","arguments":{"fields":[{"__proto__":{"polluted":true}}]},"context":{"actorId":"a","tenantId":"acme","environment":"production"}}`,
        ),
    ],
  ];
  it.each(attempts)("%s is refused and leaves Object.prototype untouched", async (_name, make) => {
    const d = await expectInvalid(make(), /is not allowed/);
    expect(d.reason).toMatch(/__proto__|constructor|prototype/);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty("polluted");
    expect(Object.getOwnPropertyNames(Object.prototype)).not.toContain("polluted");
  });
});

describe("strings that are not well-formed Unicode (a lone surrogate)", () => {
  const cases: [string, () => unknown, RegExp][] = [
    ["in arguments.object", () => write({ object: "\ud800" }), /arguments\.object is not well-formed Unicode/],
    ["in a change's value", () => write({ changes: { note: "x\udc00y" } }), /arguments\.changes\.note is not well-formed Unicode/],
    ["in a key of changes", () => write({ changes: { ["stage\ud800"]: "x" } }), /a key of arguments\.changes is not well-formed Unicode/],
    [
      "in context.reason, from JSON text",
      () => JSON.parse(JSON.stringify(write()).replace('"reason":"', '"reason":"\\ud83d')),
      /context\.reason is not well-formed Unicode/,
    ],
  ];
  it.each(cases)("%s is invalid_input, with a message naming where", async (_name, make, detail) => {
    const d = await expectInvalid(make(), detail);
    expect(t.sink.last()).toMatchObject({ decision_id: d.id, input: null });
  });

  it("a surrogate pair is fine", async () => {
    const d = await decideFresh(write({ changes: { note: "\ud83d\ude00" } }));
    expect(d.action).toBe("allow");
  });
});

describe("attribution of refused calls", () => {
  it("an invalid call from a known actor counts towards that actor's history", async () => {
    const own = await makeVeto();
    for (let i = 0; i < 3; i++) await own.veto.protect(write({ amount: "lots" }));
    const d = await own.veto.protect(write());
    expect([d.action, d.escalated, codes(d)]).toEqual(["deny", true, ["repeated_denies"]]);
    await own.veto.close();
  });

  it("records name the actor, tenant and tool when the call does", async () => {
    await t.veto.protect(write({ amount: "lots" }));
    expect(t.sink.last()).toMatchObject({ actor_id: "agent:sales-assistant", tenant_id: "acme", tool: "crm.update", history: null });
  });
});

describe("amount precision (docs/contract.md §9)", () => {
  it("a JavaScript amount is judged by its shortest text, the one the policy reads", async () => {
    // 0.1 + 0.2 is 0.30000000000000004: 17 significant digits.
    await expectInvalid(
      write({ amount: 0.1 + 0.2 }),
      /arguments\.amount: an amount must have at most 15 significant digits.*0\.30000000000000004 has 17/,
    );
    await expectInvalid(write({ changes: { Refund_Amount: 2 ** 53 + 2 } }), /arguments\.changes\.Refund_Amount: .*has 16/);
    await expectInvalid(write({ amount: 1e308 }), /1e\+308 is out of that range/);
    await expectInvalid(write({ amount: Number.MAX_VALUE }), /has 17/);
    await expectInvalid(write({ amount: 5e-324 }), /out of that range/);
    for (const amount of [0, -0, 0.3, 4999.99, 1e21, 123456789012345, -1e-307, 9.99999999999999e307]) {
      expect(codes(await decideFresh(write({ amount }))), String(amount)).not.toContain("invalid_input");
    }
    // A number outside the amount fields is not an amount.
    expect(codes(await decideFresh(write({ changes: { probability: 0.1 + 0.2 } })))).toEqual(["low_value"]);
  });

  it("amountTextProblem is the policy's rule: 15 significant digits, zero or 1e-307 <= |x| < 1e308", () => {
    const precise = [
      "0",
      "-0",
      "0.000",
      "0e400",
      "0E-0400",
      "250000",
      "250000.000000000000000",
      "25e4",
      "2.5E+5",
      "1e+0307",
      "1e-307",
      "999999999999999",
      "0.123456789012345",
      "-4999.99999999999",
      "9.99999999999999e307",
    ];
    const imprecise = [
      "250000.00000000001",
      "1234567890123456",
      "0.30000000000000004",
      "1e308",
      "1e400",
      "-1E+400",
      "1e-308",
      "1e-400",
      "5e-324",
      "1e10000",
      "1e-10000",
      "4999.9999999999999999999",
    ];
    for (const text of precise) expect(amountTextProblem(text), text).toBeUndefined();
    for (const text of imprecise) expect(amountTextProblem(text), text).toMatch(/^must have at most 15 significant digits/);
  });

  it("checkCall judges an amount by the text it was given rather than by its double", () => {
    const call = write({ amount: 250000, changes: { Amount: 0 } });
    const fields = ["amount"];
    expect(checkCall(call, DEFAULT_INPUT_LIMITS, fields).ok).toBe(true);
    const texts = new Map([["/arguments/amount", "250000.00000000001"]]);
    expect(checkCall(call, DEFAULT_INPUT_LIMITS, fields, texts)).toMatchObject({
      ok: false,
      message: expect.stringMatching(/^arguments\.amount: /),
    });
    const changed = new Map([["/arguments/changes/Amount", "1e-400"]]);
    expect(checkCall(call, DEFAULT_INPUT_LIMITS, fields, changed)).toMatchObject({
      ok: false,
      message: expect.stringMatching(/^arguments\.changes\.Amount: /),
    });
  });
});
