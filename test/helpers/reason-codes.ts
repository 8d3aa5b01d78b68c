/**
 * The reason codes as the policy defines them (policy/veto/crm/reasons.rego),
 * read through the real opa, so that no test keeps its own list: a rule and a
 * reason code added in policy/ alone reach every test that lists codes.
 */
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { ROOT, requireOpa } from "./index.js";

export interface ReasonCode {
  readonly action: string;
  readonly class: number;
  readonly message: string;
  readonly source: string;
}

function opaEval(policyDir: string, query: string): unknown {
  const run = spawnSync(requireOpa(), ["eval", "-d", policyDir, "-f", "raw", query], { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`opa eval ${query} on ${policyDir} failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as unknown;
}

/** data.veto.crm.reason_codes of the policy in `policyDir` (default: this repository's policy/). */
export function policyReasonCodes(policyDir = resolve(ROOT, "policy")): Record<string, ReasonCode> {
  return opaEval(policyDir, "data.veto.crm.reason_codes") as Record<string, ReasonCode>;
}

/** The codes the policy itself answers (`source: "policy"`), sorted. */
export function policyAnswerCodes(policyDir?: string): string[] {
  return Object.entries(policyReasonCodes(policyDir))
    .filter(([, r]) => r.source === "policy")
    .map(([code]) => code)
    .sort();
}

/**
 * The codes policy/veto/crm/decision_test.rego decides one call for each
 * (its deny, approval and allow cases, plus invalid_input and
 * repeated_denies, which it tests by precedence). `make test-rego` runs those
 * tests on OPA's evaluator and on WASM, and a Rego test requires a case for
 * every policy code.
 */
export function regoCaseCodes(policyDir = resolve(ROOT, "policy")): string[] {
  const query =
    'sort(array.concat(array.concat(array.concat(["invalid_input", "repeated_denies"], [k | some k, _ in data.veto.crm_test.deny_cases]), [k | some k, _ in data.veto.crm_test.approval_cases]), [k | some k, _ in data.veto.crm_test.allow_cases]))';
  return opaEval(policyDir, query) as string[];
}

/**
 * What a suite built to reach a known set of codes (`targets`) must show
 * against the policy: every code it saw is one the policy answers; every
 * target is still a policy code and was reached; and every policy code it
 * does not target (one added to the policy since, in policy/ alone) is
 * decided by the policy's own cases on both engines (regoCaseCodes).
 * Returns the problems, empty when there are none.
 */
export function reachProblems(
  seen: Iterable<string>,
  targets: readonly string[],
  policyCodes: readonly string[],
  regoCases: readonly string[],
): string[] {
  const seenSet = new Set(seen);
  const policy = new Set(policyCodes);
  const problems: string[] = [];
  for (const code of seenSet) if (!policy.has(code)) problems.push(`${code} was answered but is not a policy code in reasons.rego`);
  for (const code of targets) {
    if (!policy.has(code)) problems.push(`${code} is a target of the suite but no longer a policy code: remove it from the targets`);
    else if (!seenSet.has(code)) problems.push(`${code} is a target of the suite but was never reached`);
  }
  for (const code of policy) {
    if (!targets.includes(code) && !seenSet.has(code) && !regoCases.includes(code)) {
      problems.push(`${code} is neither reached here nor decided by a case in policy/veto/crm/decision_test.rego`);
    }
  }
  return problems;
}
