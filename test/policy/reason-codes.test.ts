// The adapter's own reason messages (decision.ts) are copies of the ones the
// policy defines once (policy/veto/crm/reasons.rego): checked against the
// policy source through the real opa, so neither can drift from the other.
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ADAPTER_REASON_CODES, ADAPTER_REASON_MESSAGES } from "../../adapter/common/decision.js";
import { ROOT, requireOpa } from "../helpers/index.js";

interface ReasonCode {
  readonly action: string;
  readonly class: number;
  readonly message: string;
  readonly source: string;
}

function policyReasonCodes(): Record<string, ReasonCode> {
  const run = spawnSync(requireOpa(), ["eval", "-d", resolve(ROOT, "policy"), "-f", "raw", "data.veto.crm.reason_codes"], { encoding: "utf8" });
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as Record<string, ReasonCode>;
}

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
});
