// guard() (docs/contract.md §6b).
import { describe, expect, it } from "vitest";
import { ApprovalError, VetoDeniedError, VetoOptionsError } from "../../adapter/index.js";
import { APPROVER, makeVeto, write } from "../helpers/index.js";

type Args = Record<string, unknown>;

function parts(call: Record<string, unknown>): [Args, never] {
  return [call["arguments"] as Args, call["context"] as never];
}

describe("guard", () => {
  it("on allow, runs the tool with a frozen copy of exactly the decided arguments", async () => {
    const { veto } = await makeVeto();
    const seen: unknown[] = [];
    const update = veto.guard("crm.update", (args: Args, context, decision) => {
      seen.push(args, context, decision.action);
      return "done";
    });
    const [args, context] = parts(write({ amount: 10 }));
    const running = update(args, context);
    // The caller changes its object after the call started: the tool must not see it.
    (args["changes"] as Args)["close_date"] = "1999-01-01";
    await expect(running).resolves.toBe("done");
    const [frozenArgs, frozenContext, action] = seen as [Args, Args, string];
    expect(action).toBe("allow");
    expect(frozenArgs).toEqual({ ...(write({ amount: 10 })["arguments"] as Args) });
    expect(frozenArgs).not.toBe(args);
    expect(Object.isFrozen(frozenArgs)).toBe(true);
    expect(Object.isFrozen(frozenArgs["changes"])).toBe(true);
    expect(Object.isFrozen(frozenContext)).toBe(true);
    expect(() => {
      frozenArgs["amount"] = 1e9;
    }).toThrow(TypeError);
    await veto.close();
  });

  it("on deny, throws VetoDeniedError carrying the decision and never runs the tool", async () => {
    const { veto } = await makeVeto();
    let ran = false;
    const update = veto.guard("crm.update", () => {
      ran = true;
    });
    const error = await update(...parts(write({ destination: "ana@gmail.com" }))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VetoDeniedError);
    const denied = error as VetoDeniedError;
    expect(denied.code).toBe("denied");
    expect(denied.decision.reasons.map((r) => r.code)).toEqual(["blocked_destination"]);
    expect(ran).toBe(false);
    await veto.close();
  });

  it("on invalid input, throws VetoDeniedError too", async () => {
    const { veto } = await makeVeto();
    const update = veto.guard("crm.update", () => "ran");
    await expect(update("not an object" as never, {} as never)).rejects.toBeInstanceOf(VetoDeniedError);
    await veto.close();
  });

  it("on require_approval, waits; runs after approval", async () => {
    const { veto, sink } = await makeVeto();
    const update = veto.guard("crm.update", (args: Args) => `updated ${String(args["amount"])}`);
    const running = update(...parts(write({ amount: 9000 })));
    await new Promise((r) => setTimeout(r, 20));
    const decisionId = sink.last().decision_id;
    await veto.approve({ decisionId, reviewerId: APPROVER });
    await expect(running).resolves.toBe("updated 9000");
    await veto.close();
  });

  it("on require_approval then rejection, throws and never runs the tool", async () => {
    const { veto, sink } = await makeVeto();
    let ran = false;
    const update = veto.guard("crm.update", () => {
      ran = true;
    });
    const running = update(...parts(write({ amount: 9000 })));
    await new Promise((r) => setTimeout(r, 20));
    await veto.reject({ decisionId: sink.last().decision_id, reviewerId: APPROVER });
    const error = await running.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApprovalError);
    expect((error as ApprovalError).code).toBe("approval_rejected");
    expect(ran).toBe(false);
    await veto.close();
  });

  it("misuse throws VetoOptionsError at guard time", async () => {
    const { veto } = await makeVeto();
    expect(() => veto.guard("", () => 1)).toThrow(VetoOptionsError);
    expect(() => veto.guard("crm.update", "nope" as never)).toThrow(/fn must be/);
    await veto.close();
  });
});
