/**
 * Loading the data document into the module's memory in pieces
 * (adapter/policy/wasm-data.ts): the tree is the one the SDK's own setData
 * makes from the whole text (the module's dump of both is the same, and the
 * same calls get the same answers), the text no longer sits in the memory
 * beside it, and text the module does not accept fails the load (fail closed).
 */
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { BundleLoadError } from "../../adapter/common/errors.js";
import { loadBundle, type LoadedBundle } from "../../adapter/policy/bundle.js";
import { DataText, readPolicyData } from "../../adapter/policy/data.js";
import { PolicyEvaluator, setDataText, storeDerived } from "../../adapter/policy/evaluator.js";
import { PIECE_BYTES } from "../../adapter/policy/wasm-data.js";
import { bundleData, read, requireBundle, write } from "../helpers/index.js";
import { seededRandom } from "../helpers/generate-calls.js";

const SEED = Number(process.env["VETO_TEST_SEED"] ?? Date.now() % 2 ** 31);

type Policy = Awaited<ReturnType<typeof loadPolicy>>;
/** The LoadedPolicy fields the evaluator reads (the SDK keeps them public at run time). */
interface PolicyState {
  baseHeapPtr: number;
  dataAddr: number;
  dataHeapPtr: number;
  mem: WebAssembly.Memory;
  wasmInstance: WebAssembly.Instance;
}
const state = (policy: Policy): PolicyState => policy as unknown as PolicyState;

let bundle: LoadedBundle;
let module: WebAssembly.Module;
beforeAll(async () => {
  bundle = await loadBundle(requireBundle());
  module = await WebAssembly.compile(new Uint8Array(bundle.wasm));
});

/** The module's own JSON dump of the data document it holds. */
function dump(policy: Policy): string {
  const { wasmInstance, dataAddr, mem } = state(policy);
  const address = (wasmInstance.exports["opa_json_dump"] as (a: number) => number)(dataAddr);
  const bytes = new Uint8Array(mem.buffer);
  return new TextDecoder().decode(bytes.subarray(address, bytes.indexOf(0, address)));
}

/** The SDK's own setData: the whole text copied into the memory and parsed there. */
async function loadedWhole(text: string): Promise<Policy> {
  const policy = await loadPolicy(module);
  policy.setData(new TextEncoder().encode(text).buffer);
  return policy;
}

/** The document loaded in pieces, sharing repeated values between them unless `compact` is false. */
async function loadedInPieces(text: string, pieceBytes: number, compact = true): Promise<Policy> {
  const policy = await loadPolicy(module);
  setDataText(policy, new DataText(text), pieceBytes, { compact });
  return policy;
}

/** As the evaluator loads a document: in pieces (or whole), then the derived values stored. */
async function loadedForDecisions(text: string, pieceBytes: number): Promise<Policy> {
  const policy = await loadPolicy(module);
  setDataText(policy, new DataText(text), pieceBytes);
  expect(storeDerived(policy)).toBe(true);
  return policy;
}

const random = seededRandom;

/** The fixture's document with `n` generated tenants of varied shapes, and member names that need escaping. */
function withTenants(n: number, seed: number): ReturnType<typeof bundleData> {
  const next = random(seed);
  const data = bundleData();
  const tenants = data.veto.config["tenants"] as Record<string, unknown>;
  for (let i = 0; i < n; i++) {
    const id = i % 97 === 3 ? `t${i} "quoted" \\ é ${"\u{1F600}"}` : `t${String(i).padStart(6, "0")}`;
    tenants[id] = {
      ...(next() < 0.3 ? { actors: [`agent:${id}-sales`, "agent:sales-assistant"] } : {}),
      approvers: next() < 0.1 ? [] : [`user:owner@${i}.example`, `user:revops@${i}.example`],
      ...(next() < 0.9 ? { approval_threshold: Math.floor(next() * 50) * 500 } : {}),
      ...(next() < 0.8 ? { max_amount: next() < 0.5 ? 250_000 : Math.round(next() * 1e6) / 100 } : {}),
      ...(next() < 0.05 ? { allowed_destinations: ["hooks.example.com"], nested: { a: { b: [1, { c: null }] } } } : {}),
    };
  }
  // An array longer than the loader's window: never split, parsed whole from a scratch buffer grown for it.
  data.veto.config["reference_hosts"] = Array.from({ length: 1000 + Math.floor(next() * 4000) }, (_, i) => `host-${i}.example.com`);
  return data;
}

/** Calls over `tenants`: writes and reads, with amounts around the thresholds, some for unknown tenants. */
function calls(tenants: readonly string[], count: number, seed: number): string[] {
  const next = random(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const tenant = next() < 0.05 ? "nobody" : pick(tenants);
    const actor = next() < 0.5 ? "agent:sales-assistant" : `agent:${tenant}-sales`;
    const call =
      next() < 0.7
        ? write({ tenantId: tenant, amount: Math.floor(next() * 60_000) }, { tenantId: tenant, actorId: actor })
        : read({ tenantId: tenant }, { tenantId: tenant, actorId: actor });
    out.push(JSON.stringify({ ...call, history: { recentDenies: Math.floor(next() * 3) } }));
  }
  return out;
}

function evaluateAll(policy: Policy, inputs: readonly string[]): unknown[] {
  return inputs.map((input) => policy.evaluate(new TextEncoder().encode(input).buffer, "veto/crm/decision"));
}

describe("the data document loaded in pieces", () => {
  it(`holds the tree the whole text parses to, and answers the same calls the same (seed ${SEED})`, async () => {
    const next = random(SEED);
    for (const pieceBytes of [2, 40, 300, 4096, PIECE_BYTES]) {
      const data = withTenants(300 + Math.floor(next() * 1500), Math.floor(next() * 2 ** 31));
      const text = JSON.stringify(data);
      const whole = await loadedWhole(text);
      const pieces = await loadedInPieces(text, pieceBytes);
      const dumped = dump(pieces);
      expect(dumped).toBe(dump(whole));
      expect(JSON.parse(dumped)).toEqual(data);
      const tenants = Object.keys(data.veto.config["tenants"] as object);
      const inputs = calls(tenants, 300, Math.floor(next() * 2 ** 31));
      const answers = evaluateAll(pieces, inputs);
      expect(answers).toEqual(evaluateAll(whole, inputs));
      // Not a vacuous comparison: the calls get each kind of verdict.
      const actions = new Set(answers.map((a) => (a as [{ result: { action: string } }])[0].result.action));
      expect([...actions].sort()).toEqual(["allow", "deny", "require_approval"]);
    }
  });

  it(`holds the same tree for arbitrary JSON documents, split at any size (seed ${SEED})`, async () => {
    const member = fc.oneof(fc.string({ unit: "binary", maxLength: 6 }), fc.constantFrom("", "__proto__", "a\"b", "\\", "ü", "\u{1F600}"));
    const document = fc.dictionary(member, fc.jsonValue({ maxDepth: 4 }), { maxKeys: 8 });
    // Members repeated (the last one wins), here and there in the document.
    const repeated = fc.array(fc.tuple(member, fc.jsonValue({ maxDepth: 3 })), { maxLength: 3 });
    await fc.assert(
      fc.asyncProperty(document, repeated, fc.integer({ min: 2, max: 200 }), fc.boolean(), async (doc, again, pieceBytes, spaced) => {
        let text = JSON.stringify(doc, null, spaced ? 1 : undefined);
        for (const [name, value] of again) {
          const names = Object.keys(doc);
          const target = names.length > 0 && value !== null ? names[name.length % names.length]! : name;
          text = text === "{}" ? `{${JSON.stringify(target)}:${JSON.stringify(value)}}` : `${text.slice(0, -1)},${JSON.stringify(target)}:${JSON.stringify(value)}}`;
        }
        const expected = dump(await loadedWhole(text));
        expect(dump(await loadedInPieces(text, pieceBytes))).toBe(expected);
        expect(dump(await loadedInPieces(text, pieceBytes, false))).toBe(expected);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it("does not keep the text in the module's memory, and shares what repeats: the heap holds the tree, or less, and one scratch buffer", async () => {
    const data = withTenants(20_000, SEED);
    // Without the long array: the scratch buffer would grow to hold it.
    delete data.veto.config["reference_hosts"];
    const text = JSON.stringify(data);
    const whole = state(await loadedWhole(text));
    const pieces = state(await loadedInPieces(text, PIECE_BYTES, false));
    const shared = state(await loadedInPieces(text, PIECE_BYTES));
    const wholeBytes = whole.dataHeapPtr - whole.baseHeapPtr;
    const piecesBytes = pieces.dataHeapPtr - pieces.baseHeapPtr;
    const sharedBytes = shared.dataHeapPtr - shared.baseHeapPtr;
    const textBytes = Buffer.byteLength(text);
    expect(textBytes).toBeGreaterThan(2 * 1024 * 1024);
    // The whole load holds the text and the tree; the pieces hold the tree and a scratch buffer of at most a piece.
    expect(piecesBytes).toBeLessThanOrEqual(wholeBytes - textBytes + PIECE_BYTES);
    expect(piecesBytes).toBeGreaterThan(wholeBytes - textBytes - PIECE_BYTES);
    // Shared member names, numbers and array indexes, arrays' storage trimmed, short texts packed: under half the tree.
    expect(sharedBytes).toBeLessThan((wholeBytes - textBytes) / 2);
  });

  it(`keeps the shared tree whole through what storeDerived replaces, repeated member names and many evaluations (seed ${SEED})`, async () => {
    const next = random(SEED ^ 0x5a5a);
    for (let round = 0; round < 4; round++) {
      const data = withTenants(500 + Math.floor(next() * 1500), Math.floor(next() * 2 ** 31));
      const config = data.veto.config;
      // What storeDerived removes and replaces holds the same names, numbers and arrays as the tenants do.
      const tenants = config["tenants"] as Record<string, Record<string, unknown>>;
      const some = Object.values(tenants).slice(0, 50);
      (data.veto as Record<string, unknown>)["derived"] = { from: { approvers: some.map((t) => t["approvers"]), max_amount: 250_000 }, stale: some };
      config["sensitive_fields"] = { ...(config["sensitive_fields"] as object), approvers: ["approvers", "max_amount"], max_amount: [] };
      config["amount_fields"] = ["amount", "max_amount", "approval_threshold"];
      let text = JSON.stringify(data);
      if (round % 2 === 1) {
        // A tenant named twice in the large object, the second one winning (as the module's parser decides).
        const [name, value] = Object.entries(tenants)[Math.floor(next() * 400)]!;
        const again = JSON.stringify({ ...value, max_amount: 1, approvers: ["user:again@example.com"] });
        text = `${text.slice(0, -3)},${JSON.stringify(name)}:${again}}}}`;
      }
      const pieceBytes = [PIECE_BYTES, 4096, 300][round % 3]!;
      const expected = await loadedForDecisions(text, Infinity);
      const policy = await loadedForDecisions(text, pieceBytes);
      const dumped = dump(policy);
      expect(dumped).toBe(dump(expected));
      const names = Object.keys(tenants);
      const inputs = calls(names, 400, Math.floor(next() * 2 ** 31));
      const answers = inputs.map((input) => policy.evaluate(new TextEncoder().encode(input).buffer, "veto/crm/decision"));
      expect(answers).toEqual(inputs.map((input) => expected.evaluate(new TextEncoder().encode(input).buffer, "veto/crm/decision")));
      // Evaluations leave the tree as it was.
      expect(dump(policy)).toBe(dumped);
    }
  });

  it("fails the load when a piece is not JSON the module accepts: create() throws BundleLoadError, a fresh evaluator is not made", async () => {
    const good = JSON.stringify(withTenants(2000, SEED));
    const at = good.indexOf('"t001000"');
    const broken = [
      good.slice(0, at) + good.slice(at).replace("approvers", "approvers\u0001"), // a control character inside a member name
      good.slice(0, at) + good.slice(at).replace(/:\[/, ":[tru,"), // a bad literal inside a piece
      good.slice(0, -1), // the document never closes
      good + "x", // text after the document
      good.slice(0, at) + good.slice(at + 10), // a member without its name
    ];
    for (const text of broken) {
      expect(() => JSON.parse(text)).toThrow();
      let error: unknown;
      try {
        await PolicyEvaluator.create(bundle.wasm, new DataText(text), undefined, bundle.entrypoints);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(BundleLoadError);
      expect((error as BundleLoadError).code).toBe("bundle_unusable");
    }
    // The good document loads through the same path and decides from its tenants.
    const evaluator = await PolicyEvaluator.create(bundle.wasm, readPolicyData(JSON.parse(good), "under test").text, undefined, bundle.entrypoints);
    const input = JSON.stringify(write({ tenantId: "acme", amount: 10 }));
    const answer = await evaluator.evaluateCall(input, 0);
    expect(answer.ok && answer.answer.action).toBe("allow");
  });
});
