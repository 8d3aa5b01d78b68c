/**
 * The data document with its repeated values shared between pieces
 * (adapter/policy/wasm-data.ts, Compactor) against the same document loaded
 * unshared (`compact: false`) and parsed whole by the SDK: what policies other
 * than the bundle's do with the data (builtins that take data values apart
 * and build new ones, `with data...`, iteration over array indexes and member
 * names, builtins that read a string's text, which sits end to end with other
 * short texts when shared), documents the probe does not anticipate (number
 * texts of one value, escapes, long strings and arrays, repeated and empty
 * names, more distinct values than the shared tables hold), and many
 * thousands of the bundle's own evaluations. Each compares the answers and
 * the module's dump of the tree after evaluating: a shared value that the
 * module freed or changed would show in one or the other.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadBundle, type LoadedBundle } from "../../adapter/policy/bundle.js";
import { DataText } from "../../adapter/policy/data.js";
import { PolicyEvaluator, setDataText, storeDerived } from "../../adapter/policy/evaluator.js";
// @ts-expect-error -- plain ESM without types (bench/mix.mjs)
import { buildMix, dataWithTenants, policyInput } from "../../bench/mix.mjs";
import { ROOT, bundleData, requireBundle, requireOpa } from "../helpers/index.js";
import { seededRandom } from "../helpers/generate-calls.js";

const SEED = Number(process.env["VETO_TEST_SEED"] ?? Date.now() % 2 ** 31);

type Policy = Awaited<ReturnType<typeof loadPolicy>>;
interface PolicyState {
  dataAddr: number;
  mem: WebAssembly.Memory;
  wasmInstance: WebAssembly.Instance;
}

/** The module's own JSON dump of the data document it holds. */
function dump(policy: Policy): string {
  const { wasmInstance, dataAddr, mem } = policy as unknown as PolicyState;
  const address = (wasmInstance.exports["opa_json_dump"] as (a: number) => number)(dataAddr);
  const bytes = new Uint8Array(mem.buffer);
  return new TextDecoder().decode(bytes.subarray(address, bytes.indexOf(0, address)));
}

/** The text loaded as the SDK loads it (whole), or in pieces shared (`true`) or not (`false`). */
async function loaded(module: WebAssembly.Module, text: string, how: "whole" | boolean, pieceBytes?: number): Promise<Policy> {
  const policy = await loadPolicy(module);
  if (how === "whole") policy.setData(new TextEncoder().encode(text).buffer);
  else setDataText(policy, new DataText(text), pieceBytes, { compact: how });
  return policy;
}

/** Every entrypoint's answer (or what it threw), in one text. */
function answers(policy: Policy, input: unknown): string {
  return Object.keys(policy.entrypoints as object)
    .sort()
    .map((entrypoint) => {
      try {
        return `${entrypoint}=${JSON.stringify(policy.evaluate(input, entrypoint))}`;
      } catch (thrown) {
        return `${entrypoint} threw ${thrown instanceof Error ? thrown.message : JSON.stringify(thrown)}`;
      }
    })
    .join("\n");
}

let dir: string;
/** A WASM module built by OPA from test/fixtures/sharing/<name>.rego, one entrypoint per rule named. */
function compiled(name: string, entrypoints: readonly string[]): WebAssembly.Module {
  const out = join(dir, `${name}.tar.gz`);
  const args = ["build", "-t", "wasm", ...entrypoints.flatMap((e) => ["-e", e]), resolve(ROOT, `test/fixtures/sharing/${name}.rego`), "-o", out];
  execFileSync(requireOpa(), args, { stdio: "pipe" });
  execFileSync("tar", ["xzf", out, "-C", dir, "/policy.wasm"], { stdio: "pipe" });
  return new WebAssembly.Module(readFileSync(join(dir, "policy.wasm")));
}

let bundle: LoadedBundle;
let builtins: WebAssembly.Module;
let walk: WebAssembly.Module;
let strings: WebAssembly.Module;
beforeAll(async () => {
  bundle = await loadBundle(requireBundle());
  dir = mkdtempSync(join(tmpdir(), "veto-sharing-"));
  builtins = compiled("builtins", ["sharing/builtins/out"]);
  walk = compiled("walk", ["sharing/walk/out"]);
  const rules = [...readFileSync(resolve(ROOT, "test/fixtures/sharing/strings.rego"), "utf8").matchAll(/^(r_\w+) :=/gm)].map((m) => `sharing/strings/${m[1]!}`);
  strings = compiled("strings", rules);
});
afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe("the shared data tree", () => {
  it(`answers a policy's builtins and \`with data\` as the unshared tree does, and is left as loaded (seed ${SEED})`, async () => {
    const data = dataWithTenants(bundleData(), 600) as { veto: { config: { tenants: Record<string, unknown> } } };
    const text = JSON.stringify(data);
    const shared = await loaded(builtins, text, true, 300);
    const plain = await loaded(builtins, text, false, 300);
    const loadedTree = dump(plain);
    expect(dump(shared)).toBe(loadedTree);
    const names = Object.keys(data.veto.config.tenants);
    const next = seededRandom(SEED);
    let defined = 0;
    for (let i = 0; i < 150; i++) {
      const input = { tenant: next() < 0.05 ? "nobody" : names[Math.floor(next() * names.length)] };
      const answer = answers(plain, input);
      expect(answers(shared, input)).toBe(answer);
      if (answer.includes('"union_n"')) defined++;
    }
    // Not vacuous: the builtins answered for most tenants.
    expect(defined).toBeGreaterThan(100);
    expect(dump(shared)).toBe(loadedTree);
    expect(dump(plain)).toBe(loadedTree);
  });

  it("answers builtins that read a string's text as the unshared tree does, with short texts packed end to end", async () => {
    const docs = [
      { a: ["12", "34", "5", "1.5", "1e3", "7"], b: { x: "1", y: "2", z: "33" } },
      { a: ["aGVs", "bG8=", "10", "B", "1"], c: ["2", "nul", "0", "3"] },
      { a: ["1.2.3", "-beta", "10.0.0.0/8", "1", "[a-", "z]", "^1", "2$"] },
    ];
    for (const doc of docs) {
      const text = JSON.stringify({ doc, pad: Array.from({ length: 50 }, (_, i) => ({ k: `v${i}`, n: i % 3 })) });
      const expected = answers(await loaded(strings, text, "whole"), {});
      expect(expected).not.toMatch(/threw/);
      expect(answers(await loaded(strings, text, false, 20), {})).toBe(expected);
      expect(answers(await loaded(strings, text, true, 20), {})).toBe(expected);
    }
  });

  // Raw JSON texts: numbers of one value written differently, strings around
  // the packed length (64 bytes) with escapes, arrays past the shared indexes (256).
  const numberText = fc.oneof(
    fc.constantFrom("1", "1.0", "1e0", "1E0", "1e+0", "-0", "0", "-0.0", "0.1", "12345678901234567890123", "-98765432109876543210", "1e400", "5e-324", "9007199254740993"),
    fc.integer({ min: -3, max: 300 }).map(String),
  );
  const stringText = fc.oneof(
    fc.string({ unit: "binary", maxLength: 130 }).map((s) => JSON.stringify(s)),
    fc.integer({ min: 0, max: 140 }).map((n) => JSON.stringify("x".repeat(n))),
    fc.constantFrom('"\\u0041\\u00e9\\ud83d\\ude00"', '"a\\"b\\\\c\\/d\\n"', '""', '"é"', '"\\u0000"'),
  );
  const nameText = fc.oneof(stringText, fc.constantFrom('"a"', '"b"', '"approvers"', '""', '"\\u0061"'));
  const { value } = fc.letrec((tie) => ({
    value: fc.oneof({ depthSize: "small" }, numberText, stringText, fc.constantFrom("true", "false", "null", "[]", "{}"), tie("array"), tie("object")),
    array: fc.oneof(fc.array(tie("value"), { maxLength: 6 }), fc.array(numberText, { minLength: 250, maxLength: 300 })).map((xs) => `[${xs.join(",")}]`),
    object: fc.array(fc.tuple(nameText, tie("value")), { maxLength: 6 }).map((ms) => `{${ms.map(([k, v]) => `${k}:${String(v)}`).join(",")}}`),
  }));

  it(`holds and answers as the whole text does for documents the probe does not anticipate (seed ${SEED})`, async () => {
    const members = fc.array(fc.tuple(nameText, value as fc.Arbitrary<string>), { minLength: 1, maxLength: 10 });
    await fc.assert(
      fc.asyncProperty(members, fc.integer({ min: 2, max: 400 }), async (doc, pieceBytes) => {
        const text = `{"doc":{${doc.map(([k, v]) => `${k}:${v}`).join(",")}},"pad":[${"1,".repeat(20)}1]}`;
        const whole = await loaded(walk, text, "whole");
        const expected = dump(whole);
        const answer = answers(whole, {});
        for (const compact of [true, false]) {
          const policy = await loaded(walk, text, compact, pieceBytes);
          expect(dump(policy)).toBe(expected);
          expect(answers(policy, {})).toBe(answer);
          expect(answers(policy, {})).toBe(answer);
          expect(dump(policy)).toBe(expected);
        }
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  it("holds and answers as the whole text does with more distinct names and numbers than are shared, and deep nesting", async () => {
    const doc: Record<string, unknown> = {};
    for (let i = 0; i < 12_000; i++) doc[`name-${i}`] = [i * 7 + 0.5, `v${i % 500}`, { [`inner-${i % 9000}`]: i }];
    let deep: unknown = { end: [1, "x"] };
    for (let i = 0; i < 60; i++) deep = { [`level${i % 3}`]: [deep, i] };
    const text = JSON.stringify({ doc, deep });
    const whole = await loaded(walk, text, "whole");
    const expected = dump(whole);
    const shared = await loaded(walk, text, true, 256);
    expect(dump(shared)).toBe(expected);
    expect(answers(shared, {})).toBe(answers(whole, {}));
    expect(dump(shared)).toBe(expected);
  });

  it("keeps the tree whole when what storeDerived replaces is itself split and holds the tenants' names and numbers", async () => {
    const module = await WebAssembly.compile(new Uint8Array(bundle.wasm));
    for (const pieceBytes of [undefined, 300]) {
      const data = dataWithTenants(bundleData(), 5000) as { veto: { config: Record<string, Record<string, unknown>>; derived?: unknown } };
      const tenants = Object.values(data.veto.config["tenants"]!);
      // Larger than a piece: split, with shared values around it but none in it.
      data.veto.derived = { from: { sensitive_fields: tenants.slice(0, 2000) }, stale: tenants.slice(0, 3000), big: { ...data.veto.config["tenants"] } };
      const fields = data.veto.config["sensitive_fields"]!;
      for (let i = 0; i < 300; i++) fields[`obj${i}`] = ["approvers", "max_amount", `f${i % 50}`];
      (data.veto.config as Record<string, unknown>)["amount_fields"] = Array.from({ length: 300 }, (_, i) => (i % 2 ? "max_amount" : `amount_${i % 40}`));
      const text = JSON.stringify(data);
      const shared = await loadPolicy(module);
      setDataText(shared, new DataText(text), pieceBytes);
      expect(storeDerived(shared)).toBe(true);
      const plain = await loadPolicy(module);
      setDataText(plain, new DataText(text), Infinity, { compact: false });
      expect(storeDerived(plain)).toBe(true);
      const loadedTree = dump(plain);
      expect(dump(shared)).toBe(loadedTree);
      for (const entry of buildMix(data, { seed: SEED, count: 300 }) as unknown[]) {
        const input = policyInput(entry) as Record<string, unknown>;
        expect(JSON.stringify(shared.evaluate(input, "veto/crm/decision"))).toBe(JSON.stringify(plain.evaluate(input, "veto/crm/decision")));
      }
      expect(dump(shared)).toBe(loadedTree);
    }
  });

  it(`gives the bundle's answers for thousands of varied calls as the unshared tree does, through input the module refuses (seed ${SEED})`, async () => {
    const module = await WebAssembly.compile(new Uint8Array(bundle.wasm));
    const data = dataWithTenants(bundleData(), 20_000) as object;
    const text = JSON.stringify(data);
    const shared = await loadPolicy(module);
    setDataText(shared, new DataText(text));
    expect(storeDerived(shared)).toBe(true);
    const plain = await loadPolicy(module);
    setDataText(plain, new DataText(text), undefined, { compact: false });
    expect(storeDerived(plain)).toBe(true);
    const loadedTree = dump(plain);
    expect(dump(shared)).toBe(loadedTree);
    // The adapter's own path: the shared tree, evaluated with opa_eval directly.
    const evaluator = await PolicyEvaluator.create(bundle.wasm, new DataText(text));
    const actions: Record<string, number> = {};
    const next = seededRandom(SEED);
    for (const argBytes of [0, 3000]) {
      const mix = buildMix(data, { seed: Math.floor(next() * 2 ** 31), count: 2500, argBytes }) as unknown[];
      for (const [i, entry] of mix.entries()) {
        const input = policyInput(entry) as Record<string, unknown>;
        const expected = JSON.stringify(plain.evaluate(input, "veto/crm/decision"));
        expect(JSON.stringify(shared.evaluate(input, "veto/crm/decision"))).toBe(expected);
        const evaluation = await evaluator.evaluate(input as never);
        if (!evaluation.ok) throw evaluation.error;
        const { action } = (JSON.parse(expected) as [{ result: { action: string } }])[0].result;
        expect(evaluation.answer.action).toBe(action);
        actions[action] = (actions[action] ?? 0) + 1;
        // Now and then an input the module's parser aborts on (a lone surrogate): the instance is kept.
        if (i % 400 === 7) expect((await evaluator.evaluateJson('{"tool":"\\ud800"}')).ok).toBe(false);
      }
    }
    expect(Object.keys(actions).sort()).toEqual(["allow", "deny", "require_approval"]);
    expect(dump(shared)).toBe(loadedTree);
    expect(dump(plain)).toBe(loadedTree);
  });
});
