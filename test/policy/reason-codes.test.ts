// The adapter's own reason messages (decision.ts) are copies of the ones the
// policy defines once (policy/veto/crm/reasons.rego): checked against the
// policy source through the real opa, so neither can drift from the other.
import { describe, expect, it } from "vitest";
import { ADAPTER_REASON_CODES, ADAPTER_REASON_MESSAGES, OUTAGE_REASON_CODES } from "../../adapter/common/decision.js";
import { policyReasonCodes, reachProblems } from "../helpers/reason-codes.js";

describe("reason codes: adapter and policy agree", () => {
  const policy = policyReasonCodes();

  it("every code the adapter answers has a message, and the policy defines it with that message", () => {
    for (const code of Object.values(ADAPTER_REASON_CODES)) expect(ADAPTER_REASON_MESSAGES[code], code).toBeDefined();
    for (const [code, message] of Object.entries(ADAPTER_REASON_MESSAGES)) {
      expect(policy[code], `${code} is not in reasons.rego`).toBeDefined();
      expect(policy[code]?.message, code).toBe(message);
    }
  });

  it("every code the policy marks as the adapter's is one the adapter knows, with the same message", () => {
    const adapterCodes = Object.entries(policy).filter(([, r]) => r.source === "adapter");
    expect(adapterCodes.length).toBeGreaterThan(0);
    for (const [code, r] of adapterCodes) expect(ADAPTER_REASON_MESSAGES[code], code).toBe(r.message);
  });

  it("every code the policy marks as the adapter's is an outage deny, which does not count towards escalation (docs/contract.md §7b)", () => {
    const adapterCodes = Object.entries(policy).filter(([, r]) => r.source === "adapter");
    for (const [code, r] of adapterCodes) {
      expect(OUTAGE_REASON_CODES.has(code), code).toBe(true);
      expect([r.action, r.class], code).toEqual(["deny", 0]);
    }
  });
});

// The check the suites built to reach a set of codes (the differential test,
// test/helpers/generate-calls.ts) apply to what they saw, against the policy.
describe("reachProblems", () => {
  const policy = ["a_code", "b_code", "new_code"];
  it("passes when every target is reached and a code added since is decided by the policy's own cases", () => {
    expect(reachProblems(["a_code", "b_code"], ["a_code", "b_code"], policy, ["a_code", "b_code", "new_code"])).toEqual([]);
  });
  it("names a code the policy does not define, a target not reached, a target the policy dropped, and a new code with no case", () => {
    expect(reachProblems(["a_code", "stray"], ["a_code", "b_code", "gone"], policy, ["a_code", "b_code"])).toEqual([
      "stray was answered but is not a policy code in reasons.rego",
      "b_code is a target of the suite but was never reached",
      "gone is a target of the suite but no longer a policy code: remove it from the targets",
      "new_code is neither reached here nor decided by a case in policy/veto/crm/decision_test.rego",
    ]);
  });
});

