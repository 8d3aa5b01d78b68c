// The values the policy derives from the data document alone
// (policy/veto/crm/derived.rego), stored once at data.veto.derived as the
// adapters load a document, or derived on every call without that step, give
// the same answers, whole, on generated data documents and calls: sensitive
// and amount field lists by object, names respelled (case, surrounding space,
// "ſ", "İ", the Kelvin sign), blocked destination lists (entries written as
// hosts, URLs, addresses, respelled, blank, not text) and calls with
// destinations, lists of the wrong shape, left out. Each
// document is also given a value of its own at data.veto.derived (left from
// other names, or made up), which must change nothing: the evaluator replaces
// it, and the policy reads a stored value only when its "from" holds the
// configured lists.
//
// Seeded: VETO_DERIVED_SEED and VETO_DERIVED_RUNS override; the seed is printed.
import fc from "fast-check";
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import { beforeAll, describe, expect, it } from "vitest";
import { DECISION_ENTRYPOINT, DERIVED_ENTRYPOINT, loadBundle } from "../../adapter/policy/bundle.js";
import { PolicyEvaluator, storeDerived } from "../../adapter/policy/evaluator.js";
import { ACTOR, bundleData, requireBundle } from "../helpers/index.js";

const SEED = Number(process.env["VETO_DERIVED_SEED"] ?? 20261201);
const RUNS = Number(process.env["VETO_DERIVED_RUNS"] ?? 120);
const CALLS_PER_DOCUMENT = 24;

type Policy = Awaited<ReturnType<typeof loadPolicy>>;

let wasm: Uint8Array;
let module: WebAssembly.Module;

beforeAll(async () => {
  wasm = (await loadBundle(requireBundle())).wasm;
  module = await WebAssembly.compile(new Uint8Array(wasm));
});

const FIELD_NAMES = [
  "ssn", "SSN", " ssn", "\u017fsn", "\u017f\u017fn", "tax_id", "TAX_\u0130D", "tax_\u0131d", "stage", "Stage", "\u017ftage",
  "email", "e-mail", "amount", "Amount", "AMOUNT", "d\u0130scount_amount", "discount_amount", "refund_amount",
  "\u212aey", "key", "note", "name", "",
];
const OBJECT_NAMES = ["*", "account", "Account", " ACCOUNT ", "opportunity", "OPPORTUN\u0130TY", "contact", "\u212aontact", "lead", " "];

const nameArb = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...FIELD_NAMES) }, { weight: 1, arbitrary: fc.string({ maxLength: 6 }) });
const listEntryArb = fc.oneof({ weight: 8, arbitrary: nameArb }, { weight: 1, arbitrary: fc.constantFrom<unknown>(7, null, true, ["ssn"]) });
const objectNameArb = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...OBJECT_NAMES) }, { weight: 1, arbitrary: fc.string({ maxLength: 5 }) });

/** sensitive_fields: by object, now and then of the wrong shape; undefined leaves it out. */
const sensitiveArb = fc.oneof(
  { weight: 8, arbitrary: fc.dictionary(objectNameArb, fc.array(listEntryArb, { maxLength: 5 }), { maxKeys: 5 }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(undefined, "ssn", ["ssn"], { "*": "ssn" }, { account: null }, {}) },
);
const amountArb = fc.oneof(
  { weight: 6, arbitrary: fc.array(listEntryArb, { maxLength: 5 }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(undefined, "amount", [], {}) },
);

const BLOCKED_ENTRIES = [
  "pastebin.com", "gmail.com", "Transfer.SH.", "https://Hooks.Example.com/x", "ops@files.example.net", "[::0:1]",
  "10.0.0.1:8080", "files.example.net", "", "  ", "mailto:a@x.example",
];
const blockedArb = fc.oneof(
  { weight: 6, arbitrary: fc.array(fc.oneof({ weight: 8, arbitrary: fc.constantFrom<unknown>(...BLOCKED_ENTRIES) }, { weight: 1, arbitrary: fc.constantFrom<unknown>(7, null, ["gmail.com"]) }), { maxLength: 4 }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(undefined, "pastebin.com", [], { "pastebin.com": true }) },
);
const DESTINATIONS = [
  "https://pastebin.com/raw/1", "x@gmail.com", "a.files.example.net", "https://hooks.example.com/x", "https://sub.transfer.sh/x",
  "http://[::1]/x", "10.0.0.1", "mailto:a@x.example", "https://example.org/x", "https://evil.example\\@pastebin.com/",
];

const callArb = fc.record({
  tool: fc.constantFrom("crm.update", "crm.read", "crm.export", "crm.create"),
  object: fc.option(fc.constantFrom(...OBJECT_NAMES, "opportunity", "contact", "Opportunity"), { nil: undefined }),
  changes: fc.dictionary(nameArb, fc.oneof(fc.integer({ min: -400_000, max: 400_000 }), fc.constant("x")), { maxKeys: 4 }),
  fields: fc.option(fc.array(nameArb, { maxLength: 3 }), { nil: undefined }),
  amount: fc.option(fc.integer({ min: 0, max: 300_000 }), { nil: undefined }),
  destination: fc.option(fc.constantFrom(...DESTINATIONS), { nil: undefined, freq: 3 }),
});

type Call = typeof callArb extends fc.Arbitrary<infer T> ? T : never;

function input(c: Call): Record<string, unknown> {
  const args: Record<string, unknown> = { recordId: "r_1", tenantId: "acme", changes: c.changes };
  if (c.object !== undefined) args["object"] = c.object;
  if (c.fields !== undefined) args["fields"] = c.fields;
  if (c.amount !== undefined) args["amount"] = c.amount;
  if (c.destination !== undefined) args["destination"] = c.destination;
  if (c.tool === "crm.read") delete args["changes"];
  return {
    tool: c.tool,
    arguments: args,
    context: { actorId: ACTOR, tenantId: "acme", environment: "production", reason: "Customer asked" },
    history: { recentDenies: 0 },
  };
}

function documentOf(sensitive: unknown, amounts: unknown, blocked: unknown, derived?: unknown): Record<string, unknown> {
  const config: Record<string, unknown> = { ...bundleData().veto.config };
  delete config["sensitive_fields"];
  delete config["amount_fields"];
  delete config["blocked_destinations"];
  if (sensitive !== undefined) config["sensitive_fields"] = sensitive;
  if (amounts !== undefined) config["amount_fields"] = amounts;
  if (blocked !== undefined) config["blocked_destinations"] = blocked;
  return derived === undefined ? { veto: { config } } : { veto: { config, derived } };
}

async function instance(document: Record<string, unknown>, store: boolean): Promise<Policy> {
  const policy = await loadPolicy(module, { initial: 32, maximum: 4096 });
  policy.setData(document);
  if (store) expect(storeDerived(policy)).toBe(true);
  return policy;
}

function decide(policy: Policy, call: Record<string, unknown>): unknown {
  try {
    return policy.evaluate(call, DECISION_ENTRYPOINT);
  } catch (thrown) {
    return { threw: String(thrown) };
  }
}

function derivedOf(policy: Policy): Record<string, unknown> {
  return (policy.evaluate({}, DERIVED_ENTRYPOINT) as { result: Record<string, unknown> }[])[0]?.result ?? {};
}

describe(`derived values stored or derived each call (seed ${SEED}, ${RUNS} documents × ${CALLS_PER_DOCUMENT} calls; VETO_DERIVED_SEED to replay)`, () => {
  it("give the same answers, whatever the document holds at data.veto.derived", async () => {
    console.log(`derived property: seed ${SEED}, ${RUNS} runs (VETO_DERIVED_SEED=${SEED} VETO_DERIVED_RUNS=${RUNS} to replay)`);
    const seen = new Set<string>();
    let stored = 0;
    await fc.assert(
      fc.asyncProperty(
        sensitiveArb,
        amountArb,
        blockedArb,
        sensitiveArb,
        amountArb,
        blockedArb,
        fc.constantFrom("stale", "forged", "forged_hosts", "junk", "none"),
        fc.array(callArb, { minLength: CALLS_PER_DOCUMENT, maxLength: CALLS_PER_DOCUMENT }),
        async (sensitive, amounts, blocked, otherSensitive, otherAmounts, otherBlocked, smuggled, calls) => {
          const clean = documentOf(sensitive, amounts, blocked);
          const derivedEachCall = await instance(clean, false);
          // A value left from other names; one with this document's "from" and made-up keys; not an object.
          const stale = derivedOf(await instance(documentOf(otherSensitive, otherAmounts, otherBlocked), false));
          const own = derivedOf(derivedEachCall);
          const held =
            smuggled === "stale"
              ? stale
              : smuggled === "forged"
                ? { ...own, sensitive_star: {}, sensitive_objects: {}, amount_plain: { note: true }, amount_fields_usable: false }
                : smuggled === "forged_hosts"
                  ? { ...own, blocked_hosts: { "hooks.example.com": true } }
                  : smuggled === "junk"
                  ? "derived"
                  : undefined;
          const document = documentOf(sensitive, amounts, blocked, held);
          const storedOnce = await instance(document, true);
          // The stored value is this document's own (its "from" holds the configured lists as they are).
          expect(derivedOf(storedOnce)).toEqual(own);
          const evaluator = await PolicyEvaluator.create(wasm, document);
          // Without the step, a value left from other names is not read either.
          const staleHeld = await instance(documentOf(sensitive, amounts, blocked, stale), false);
          for (const call of calls) {
            const text = JSON.stringify(input(call));
            const expected = decide(derivedEachCall, input(call));
            expect(decide(storedOnce, input(call)), `seed ${SEED}: ${JSON.stringify(document)}\n${text}`).toEqual(expected);
            expect(decide(staleHeld, input(call)), `seed ${SEED}: ${JSON.stringify(document)}\n${text}`).toEqual(expected);
            const evaluation = await evaluator.evaluateJson(text);
            const answer = (expected as { result?: unknown }[])[0]?.result;
            expect(evaluation.ok ? evaluation.answer : evaluation.error.message, `seed ${SEED}: ${JSON.stringify(document)}\n${text}`).toEqual(answer);
            for (const r of (answer as { reasons: { code: string }[] }).reasons) seen.add(r.code);
          }
          stored += 1;
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
    expect(stored).toBe(RUNS);
    // The documents and calls reach the answers the derived values decide.
    for (const code of ["sensitive_field", "production_amount", "low_value", "read_only", "amount_over_limit", "blocked_destination"]) expect(seen).toContain(code);
  });

  it("stores nothing where there is no place for it, and the policy derives the values each call", async () => {
    const policy = await loadPolicy(module, { initial: 32, maximum: 4096 });
    policy.setData({ veto: "not an object" });
    expect(storeDerived(policy)).toBe(false);
    const result = (policy.evaluate(input({ tool: "crm.update", object: "contact", changes: { ssn: "x" }, fields: undefined, amount: undefined, destination: undefined }), DECISION_ENTRYPOINT) as {
      result: { action: string };
    }[])[0]?.result;
    expect(result?.action).toBe("deny");
  });
});
