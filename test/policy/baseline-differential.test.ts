// The cheaper policy decides exactly as the baseline did. bench/baseline/ holds
// the bundle as committed before the policy was made cheaper (its README gives
// the version hash); `make bench` times it as wasm_evaluate_baseline. Both WASM
// modules get the same data documents (the test fixture's, an unlike one, and
// the fixture's with no actor lists) and the same seeded stream of calls, valid
// and invalid, every destination form, respelled names and amounts written as
// JSON text, and must give the same result set, whole: verdict, escalation,
// every reason code and message, approvers, destination hosts, anything else
// the answer carries. The `visible` entrypoint (docs/contract.md §4b) too.
// The shipped module runs both ways: with the values it derives from the data
// document stored once (storeDerived, as the adapters load it) and without
// them (derived on every call, as for a host that skips that step).
//
// The seed is printed on failure; VETO_BASELINE_SEED and VETO_BASELINE_COUNT
// replay or widen a run.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import { beforeAll, describe, expect, it } from "vitest";
import { DECISION_ENTRYPOINT, VISIBLE_ENTRYPOINT, loadBundle } from "../../adapter/policy/bundle.js";
import { storeDerived } from "../../adapter/policy/evaluator.js";
import {
  ALT_CONFIG,
  DESTINATION_CASES,
  RESPELLING_CASES,
  generateAmountTextCases,
  generateCases,
  openConfig,
  type GeneratedCase,
} from "../helpers/generate-calls.js";
import { ROOT, requireBundle } from "../helpers/index.js";

const SEED = Number(process.env["VETO_BASELINE_SEED"] ?? 20261130);
const COUNT = Number(process.env["VETO_BASELINE_COUNT"] ?? 12_000);
const BASELINE = resolve(ROOT, "bench/baseline/crm.tar.gz");
const BASELINE_HASH = "sha256:0f4f7a2c727bf5fe62abb22683b98451c82ebf3b436b4c5dfda502aa0cf21ca6";

type Policy = Awaited<ReturnType<typeof loadPolicy>>;
type Config = GeneratedCase["config"];

const cases: GeneratedCase[] = [
  ...generateCases(SEED, COUNT),
  ...generateAmountTextCases(SEED, Math.ceil(COUNT / 6)),
  ...DESTINATION_CASES,
  ...RESPELLING_CASES,
];

/** The policy input as JSON text: the case's own text, when it has one, with the history added. */
function inputText(c: GeneratedCase): string {
  if (c.text === undefined) return JSON.stringify({ ...c.call, history: { recentDenies: c.recentDenies } });
  return `${c.text.slice(0, -1)},"history":{"recentDenies":${c.recentDenies}}}`;
}

function bytes(text: string): ArrayBuffer {
  const b = new TextEncoder().encode(text);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
}

/** The whole result set, or the error the module threw (as a string: the SDK throws strings). */
function run(policy: Policy, input: string, entrypoint: string): unknown {
  try {
    return policy.evaluate(bytes(input), entrypoint);
  } catch (thrown) {
    return { threw: String(thrown) };
  }
}

let baseline: Record<Config, Policy>;
let shipped: Record<Config, Policy>;
let unstored: Record<Config, Policy>;

beforeAll(async () => {
  const current = await loadBundle(requireBundle());
  const frozen = await loadBundle(BASELINE);
  expect(frozen.version.hash, "bench/baseline/crm.tar.gz is frozen: never rebuild it").toBe(BASELINE_HASH);
  expect(readFileSync(resolve(ROOT, "bench/baseline/README.md"), "utf8")).toContain(BASELINE_HASH);
  const fixture = (current.data as { veto: { config: Record<string, unknown> } }).veto.config;
  const data: Record<Config, unknown> = {
    bundle: current.data,
    alt: { veto: { config: ALT_CONFIG } },
    open: { veto: { config: openConfig(fixture) } },
  };
  const instances = async (wasm: Uint8Array, derived: boolean): Promise<Record<Config, Policy>> => {
    const out = {} as Record<Config, Policy>;
    for (const config of ["bundle", "alt", "open"] as const) {
      const policy = await loadPolicy(wasm, { initial: 32, maximum: 4096 });
      policy.setData(data[config] as object);
      if (derived) expect(storeDerived(policy), "the shipped module stores its derived values").toBe(true);
      out[config] = policy;
    }
    return out;
  };
  baseline = await instances(frozen.wasm, false);
  shipped = await instances(current.wasm, true);
  unstored = await instances(current.wasm, false);
});

describe(`the shipped policy against the baseline bundle (seed ${SEED}, ${cases.length} calls)`, () => {
  it("gives the same decision, whole, for every call", () => {
    const differences: string[] = [];
    const seen = { actions: new Set<string>(), codes: new Set<string>() };
    for (const c of cases) {
      const input = inputText(c);
      const before = run(baseline[c.config], input, DECISION_ENTRYPOINT);
      const after = run(shipped[c.config], input, DECISION_ENTRYPOINT);
      const derivedEachCall = run(unstored[c.config], input, DECISION_ENTRYPOINT);
      if (JSON.stringify(before) !== JSON.stringify(after) || JSON.stringify(before) !== JSON.stringify(derivedEachCall)) {
        differences.push(
          `config ${c.config} input ${input}\n  baseline ${JSON.stringify(before)}\n  shipped  ${JSON.stringify(after)}\n  shipped, derived each call ${JSON.stringify(derivedEachCall)}`,
        );
      }
      const answer = (after as { result?: { action: string; reasons: { code: string }[] } }[])[0]?.result;
      if (answer !== undefined) {
        seen.actions.add(answer.action);
        for (const r of answer.reasons) seen.codes.add(r.code);
      }
    }
    expect(differences.slice(0, 5), `seed ${SEED}: ${differences.length} of ${cases.length} decisions differ`).toEqual([]);
    // The stream reaches every verdict and the reasons that cost the most to decide.
    expect([...seen.actions].sort()).toEqual(["allow", "deny", "require_approval"]);
    for (const code of ["invalid_input", "repeated_denies", "blocked_destination", "sensitive_field", "production_amount", "no_approver"]) {
      expect(seen.codes, `seed ${SEED}: no call reached ${code}`).toContain(code);
    }
  });

  it("gives the same visibility for every tool and context", () => {
    const differences: string[] = [];
    for (const c of cases) {
      const input = JSON.stringify({ tool: c.call.tool, context: c.call.context });
      const before = run(baseline[c.config], input, VISIBLE_ENTRYPOINT);
      const after = run(shipped[c.config], input, VISIBLE_ENTRYPOINT);
      const derivedEachCall = run(unstored[c.config], input, VISIBLE_ENTRYPOINT);
      if (JSON.stringify(before) !== JSON.stringify(after) || JSON.stringify(before) !== JSON.stringify(derivedEachCall)) {
        differences.push(`config ${c.config} input ${input}\n  baseline ${JSON.stringify(before)}\n  shipped  ${JSON.stringify(after)}`);
      }
    }
    expect(differences.slice(0, 5), `seed ${SEED}: ${differences.length} of ${cases.length} visibilities differ`).toEqual([]);
  });
});
