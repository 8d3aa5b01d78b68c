/**
 * What is kept of a data document once loaded (adapter/policy/data.ts):
 * only its text, deflated when large, never the caller's objects; and the
 * depth limit (MAX_DATA_DEPTH) read from the serialized text says what the
 * walk over the objects says.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createVeto } from "../../adapter/index.js";
import { loadBundle } from "../../adapter/policy/bundle.js";
import { DataText, MAX_DATA_DEPTH, jsonNestsDeeperThan, jsonStringEnd, nestsDeeperThan, readPolicyData } from "../../adapter/policy/data.js";
import { PolicyEvaluator } from "../../adapter/policy/evaluator.js";
import { BundleLoadError } from "../../adapter/common/errors.js";
import { bundleData, captureLogger, requireBundle, write } from "../helpers/index.js";

const SEED = Number(process.env["VETO_TEST_SEED"] ?? Date.now() % 2 ** 31);

/** A full collection (the flag set at run time, as --expose-gc would). */
function collect(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

/** A document with `n` generated tenants (about 140 bytes of JSON each). */
function withTenants(n: number): Record<string, unknown> {
  const data = bundleData();
  const tenants = data.veto.config["tenants"] as Record<string, unknown>;
  for (let i = 0; i < n; i++) {
    tenants[`t${String(i).padStart(6, "0")}`] = {
      approvers: [`user:owner@t${i}.example`, `user:revops@t${i}.example`],
      approval_threshold: 1000 + (i % 50) * 500,
      max_amount: 250_000,
    };
  }
  return data;
}

const nested = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: "medium" }, fc.jsonValue({ maxDepth: 0 }), tie("array"), tie("object")),
  array: fc.array(tie("value"), { maxLength: 3 }),
  object: fc.dictionary(fc.string({ maxLength: 3 }), tie("value"), { maxKeys: 3 }),
})).value;

describe("the depth limit, read from the text", () => {
  it(`jsonNestsDeeperThan(JSON.stringify(v), max) is nestsDeeperThan(v, max) (seed ${SEED})`, () => {
    fc.assert(
      fc.property(nested, fc.string({ maxLength: 4 }), fc.integer({ min: 1, max: 8 }), (value, padding, max) => {
        // Brackets and quotes inside strings must not count.
        const withText = Array.isArray(value) ? [...value, `[{"${padding}\\`] : value;
        expect(jsonNestsDeeperThan(JSON.stringify(withText), max)).toBe(nestsDeeperThan(withText, max));
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });

  it(`jsonStringEnd finds the quote a character-by-character scan finds, on any text (seed ${SEED})`, () => {
    /** The scan it replaces: a backslash skips the character after it. */
    const scanned = (text: string, start: number): number => {
      for (let i = start + 1; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c === 0x5c) i++;
        else if (c === 0x22) return i + 1;
      }
      return -1;
    };
    const text = fc.array(fc.constantFrom('"', "\\", "a", "{", "]", "é"), { maxLength: 24 }).map((parts) => parts.join(""));
    fc.assert(
      fc.property(text, fc.nat(), (body, at) => {
        const quoted = `x"${body}`;
        const starts = [...quoted].flatMap((c, i) => (c === '"' ? [i] : []));
        const start = starts[at % starts.length]!;
        expect(jsonStringEnd(quoted, start)).toBe(scanned(quoted, start));
      }),
      { seed: SEED, numRuns: 3000 },
    );
  });

  it("refuses a document nesting deeper than the limit, one that refers to itself, and one too deep to serialize, as the walk did", () => {
    /** The fixture's document with a member nesting it `levels` deep in all (the document itself is level 1). */
    const deep = (levels: number): Record<string, unknown> => {
      let inner: Record<string, unknown> = {};
      for (let level = 2; level < levels; level++) inner = { x: inner };
      return { ...(bundleData() as unknown as Record<string, unknown>), extra: inner };
    };
    const message = `it nests objects and arrays deeper than ${MAX_DATA_DEPTH} levels (the limit), or refers to itself`;
    expect(() => readPolicyData(deep(MAX_DATA_DEPTH), "under test")).not.toThrow();
    expect(() => readPolicyData(deep(MAX_DATA_DEPTH + 1), "under test")).toThrow(message);
    expect(() => readPolicyData(deep(200_000), "under test")).toThrow(message);
    const cyclic = bundleData() as unknown as Record<string, unknown>;
    cyclic["self"] = cyclic;
    expect(() => readPolicyData(cyclic, "under test")).toThrow(message);
    const bigint = bundleData() as unknown as Record<string, unknown>;
    bigint["n"] = 1n;
    let error: unknown;
    try {
      readPolicyData(bigint, "under test");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(BundleLoadError);
    expect((error as Error).message).toMatch(/unusable: .*BigInt/);
  });
});

describe("what is kept of a data document", () => {
  it("createVeto keeps none of the caller's objects: the document is collected while the instance decides", async () => {
    const given: { data?: Record<string, unknown> } = { data: withTenants(1000) };
    const kept = new WeakRef(given.data!);
    const tenants = new WeakRef(given.data!["veto"] as object);
    const veto = await createVeto({ bundle: requireBundle(), data: given.data!, logger: captureLogger().logger, recordSink: { write: async () => {} } });
    delete given.data;
    try {
      // Across turns of the event loop: nothing of createVeto's own is still on a stack.
      for (let i = 0; i < 3 && kept.deref() !== undefined; i++) {
        await new Promise((r) => setTimeout(r, 10));
        collect();
      }
      expect(kept.deref()).toBeUndefined();
      expect(tenants.deref()).toBeUndefined();
      const decision = await veto.protect(write({ tenantId: "t000007", amount: 5000 }, { tenantId: "t000007" }));
      expect({ action: decision.action, approvers: decision.approvers }).toEqual({
        action: "require_approval",
        approvers: ["user:owner@t7.example", "user:revops@t7.example"],
      });
      expect((await veto.protect(write({ amount: 100 }))).action).toBe("allow");
    } finally {
      await veto.close();
    }
  });

  it("a large document's text is kept deflated, and a fresh instance loaded from it decides as the first did", async () => {
    const data = withTenants(12_000);
    const text = readPolicyData(data, "under test").text;
    expect(text.byteLength).toBeGreaterThan(1024 * 1024);
    const loaded = await loadBundle(requireBundle());
    const evaluator = await PolicyEvaluator.create(loaded.wasm, text, undefined, loaded.entrypoints);
    expect(text.compacted).toBe(true);
    const call = (tenant: string, amount: number): string =>
      JSON.stringify({
        tool: "crm.update",
        arguments: { object: "opportunity", recordId: "o", tenantId: tenant, amount },
        context: { actorId: "agent:x", tenantId: tenant, environment: "production", reason: "r" },
      });
    const inputs = [call("t000003", 3000), call("t011999", 1), call("t000049", 26_000), call("acme", 10)];
    const before = await Promise.all(inputs.map((input) => evaluator.evaluateCall(input, 0)));
    // An input nested past the module's stack fails the evaluation and discards the instance; the next one is loaded from the deflated text.
    expect((await evaluator.evaluateJson("[".repeat(100_000) + "]".repeat(100_000))).ok).toBe(false);
    const after = [];
    for (const input of inputs) after.push(await evaluator.evaluateCall(input, 0));
    expect(evaluator.instantiations).toBe(2);
    expect(after.map((e) => e.ok && e.answer)).toEqual(before.map((e) => e.ok && e.answer));
    expect(before.map((e) => e.ok && e.answer.action)).toEqual(["require_approval", "allow", "require_approval", "deny"]);
  });

  it("DataText gives back the bytes it was made from, deflated or not", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 200 }), fc.integer({ min: 0, max: 3 }), (s, times) => {
        const source = s.repeat(1 + Math.floor((1024 * 1024) / Math.max(1, s.length)) * times);
        const text = new DataText(source);
        const plain = Buffer.from(source, "utf8");
        text.compact();
        expect(text.compacted).toBe(source.length > 1024 * 1024);
        const bytes = new Uint8Array(text.byteLength);
        text.writeTo(bytes);
        expect(Buffer.from(bytes).equals(plain)).toBe(true);
      }),
      { seed: SEED, numRuns: 30 },
    );
  });
});
