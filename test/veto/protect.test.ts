// Every reason code and precedence edge of docs/contract.md §4, through
// protect() on the real WASM bundle with its shipped data document.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Decision } from "../../adapter/index.js";
import { APPROVER, OTHER_APPROVER, codes, makeVeto, read, write, type TestVeto } from "../helpers/index.js";

let t: TestVeto;
beforeAll(async () => {
  t = await makeVeto();
});
afterAll(async () => {
  await t.veto.close();
});

async function decide(call: Record<string, unknown>): Promise<Decision> {
  // Each case runs on a new veto so deny history never accumulates between cases.
  const own = await makeVeto();
  try {
    return await own.veto.protect(call);
  } finally {
    await own.veto.close();
  }
}

const ACME_APPROVERS = [APPROVER, OTHER_APPROVER];

describe("class 3: deny codes", () => {
  const cases: [string, Record<string, unknown>][] = [
    ["unknown_tool", write({}, {}, "crm.merge")],
    ["unknown_tenant", write({ tenantId: "umbrella" }, { tenantId: "umbrella" })],
    ["wrong_tenant", write({ tenantId: "globex" })],
    ["actor_not_allowed", write({}, { actorId: "agent:rogue" })],
    ["unknown_environment", write({}, { environment: "qa" })],
    ["missing_reason", write({}, { reason: "   " })],
    ["blocked_destination", write({ destination: "https://sub.PasteBin.com./raw/1" })],
    ["amount_over_limit", write({ amount: 250_001 })],
    ["no_approver", write({ tenantId: "initech", amount: 1000 }, { tenantId: "initech", actorId: "agent:billing-bot" })],
  ];
  it.each(cases)("%s", async (code, call) => {
    const d = await decide(call);
    expect({ action: d.action, escalated: d.escalated, codes: codes(d), approvers: d.approvers }).toEqual({
      action: "deny",
      escalated: false,
      codes: [code],
      approvers: [],
    });
  });

  it("missing reason when the field is absent entirely", async () => {
    const call = write();
    delete (call["context"] as Record<string, unknown>)["reason"];
    expect(codes(await decide(call))).toEqual(["missing_reason"]);
  });

  it("lists every deny reason of the class, sorted by code", async () => {
    const d = await decide(
      write({ tenantId: "globex", destination: "user@gmail.com", amount: 300_000 }, { environment: "qa", reason: "" }),
    );
    expect(codes(d)).toEqual(["amount_over_limit", "blocked_destination", "missing_reason", "unknown_environment", "wrong_tenant"]);
    expect(d.reason).toBe(d.reasons[0]?.message);
  });
});

describe("class 4: require_approval", () => {
  it("sensitive_field on a write", async () => {
    const d = await decide(write({ changes: { stage: "closed_won" } }));
    expect({ action: d.action, codes: codes(d), approvers: d.approvers }).toEqual({
      action: "require_approval",
      codes: ["sensitive_field"],
      approvers: ACME_APPROVERS,
    });
  });

  it("sensitive_field on a read, case-insensitively", async () => {
    const d = await decide(read({ fields: ["name", "SSN"] }));
    expect([d.action, codes(d)]).toEqual(["require_approval", ["sensitive_field"]]);
  });

  it("production_amount exactly at the threshold, not one below", async () => {
    const at = await decide(write({ changes: { amount: 5000 } }));
    const below = await decide(write({ changes: { amount: 4999.99 } }));
    expect([at.action, codes(at)]).toEqual(["require_approval", ["production_amount"]]);
    expect([below.action, codes(below)]).toEqual(["allow", ["low_value"]]);
  });

  it("amount is the largest absolute value among amount fields", async () => {
    const d = await decide(write({ amount: 10, changes: { refund_amount: -6000 } }));
    expect(codes(d)).toEqual(["production_amount"]);
  });

  it("no production_amount outside production", async () => {
    expect(codes(await decide(write({ amount: 9000 }, { environment: "staging" })))).toEqual(["low_value"]);
  });

  it("both approval reasons together, sorted", async () => {
    const d = await decide(write({ amount: 9000, changes: { discount_pct: 20 } }));
    expect([d.action, codes(d)]).toEqual(["require_approval", ["production_amount", "sensitive_field"]]);
  });
});

describe("class 5: allow", () => {
  it("read_only", async () => {
    const d = await decide(read());
    expect([d.action, d.escalated, codes(d), d.approvers]).toEqual(["allow", false, ["read_only"], []]);
  });
  it("read_only for search too", async () => {
    expect(codes(await decide(read({}, {}, "crm.search")))).toEqual(["read_only"]);
  });
  it("low_value", async () => {
    const d = await decide(write());
    expect([d.action, codes(d)]).toEqual(["allow", ["low_value"]]);
  });
  it("amount just at max_amount is not over it", async () => {
    expect(codes(await decide(write({ amount: 250_000 }, { environment: "development" })))).toEqual(["low_value"]);
  });
});

describe("precedence", () => {
  it("invalid_input beats every other class", async () => {
    const d = await decide(write({ amount: "9000", tenantId: "globex" }, { environment: "qa" }, "crm.merge"));
    expect([d.action, d.escalated, codes(d)]).toEqual(["deny", false, ["invalid_input"]]);
  });

  it("a class-3 deny beats require_approval", async () => {
    const d = await decide(write({ changes: { ssn: "x" } }, { environment: "qa" }));
    expect([d.action, codes(d), d.approvers]).toEqual(["deny", ["unknown_environment"], []]);
  });

  it("no_approver is a deny, only when approval would be required", async () => {
    const initech = { tenantId: "initech", actorId: "agent:billing-bot" };
    expect(codes(await decide(write({ tenantId: "initech", amount: 10 }, initech)))).toEqual(["low_value"]);
    expect(codes(await decide(write({ tenantId: "initech", changes: { ssn: "1" } }, initech)))).toEqual(["no_approver"]);
  });

  it("require_approval beats allow", async () => {
    expect((await decide(write({ amount: 5000 }))).action).toBe("require_approval");
  });
});

describe("the decision object (docs/contract.md §5)", () => {
  it("has exactly the contract's fields", async () => {
    const d = await t.veto.protect(write());
    expect(Object.keys(d).sort()).toEqual(["action", "approvers", "bundle", "escalated", "id", "reason", "reasons", "timestamp"]);
    expect(d.bundle).toEqual(t.veto.bundle);
    expect(d.bundle.hash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(d.bundle.revision).toMatch(/^crm-/);
    expect(d.timestamp).toBe(new Date(t.clock.nowMs).toISOString());
    expect(d.reason).toBe("Low-value write");
  });

  it("ids are unique and sort in decision order, even within one millisecond", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) ids.push((await t.veto.protect(read())).id);
    expect(new Set(ids).size).toBe(50);
    expect([...ids].sort()).toEqual(ids);
    t.clock.advance(1);
    const later = (await t.veto.protect(read())).id;
    expect(later > ids.at(-1)!).toBe(true);
  });

  it("is frozen", async () => {
    const d = await t.veto.protect(read());
    expect(Object.isFrozen(d)).toBe(true);
    expect(Object.isFrozen(d.reasons)).toBe(true);
  });

  it("the contract's snippet runs as written", async () => {
    const veto = t.veto;
    const input = write({ changes: { stage: "closed_won", amount: 48000 } });
    const executeTool = (call: unknown): string => `executed ${JSON.stringify(call).length}`;
    const run = async (): Promise<string> => {
      const decision = await veto.protect(input);
      if (decision.action === "deny") throw new Error(decision.reason);
      if (decision.action === "require_approval") await veto.waitForApproval({ decisionId: decision.id });
      return executeTool(input);
    };
    const running = run();
    // A reviewer answers while the caller waits.
    await new Promise((r) => setTimeout(r, 30));
    const pending = t.sink.records.filter((r) => r.type === "decision").at(-1)!;
    await veto.approve({ decisionId: pending.decision_id, reviewerId: APPROVER });
    await expect(running).resolves.toMatch(/^executed/);
  });
});
