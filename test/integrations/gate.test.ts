// What the three integrations share (adapter/integrations/gate.ts), on
// generated calls: the call a resume rebuilds from the framework's tool call
// claims the approval of the call that was decided, whatever the order of its
// keys, and only that call: one changed value anywhere is call_mismatch; the
// context is the application's, the model's reason moves into it.
// FC_SEED=<n> reproduces a failing run; fast-check prints the seed of every failure.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ToolGate, decisionIdIn, denyMessage, pauseMessage } from "../../adapter/integrations/gate.js";
import { VetoOptionsError, type CallContext } from "../../adapter/index.js";
import { APPROVER, makeVeto } from "../helpers/index.js";
import { APP_CONTEXT, update } from "./helpers.js";

const SEED = Number(process.env["FC_SEED"] ?? 20261130);

const leaf = fc.oneof(
  fc.string({ unit: "binary-ascii", maxLength: 8 }),
  fc.string({ unit: "grapheme", maxLength: 6 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
);
const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    leaf,
    fc.array(tie("value"), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 5 }), tie("value"), { maxKeys: 3 }),
  ),
})).value;
/** Extra tool arguments a model might add (never the contract's typed fields). */
const extras = fc.dictionary(fc.constantFrom("note", "meta", "tags", "x", "ünï", "nested"), json, { maxKeys: 3 });

/** The same object with its keys in reverse order, at every depth. */
function reversed(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversed);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .reverse()
        .map(([k, v]) => [k, reversed(v)]),
    );
  }
  return value;
}

/** Every path to a leaf of an object, for changing one value. */
function leaves(value: unknown, path: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(value)) return value.flatMap((v, i) => leaves(v, [...path, i]));
  if (value !== null && typeof value === "object") return Object.entries(value).flatMap(([k, v]) => leaves(v, [...path, k]));
  return [path];
}

function changedAt(value: Record<string, unknown>, path: (string | number)[]): Record<string, unknown> {
  const copy = structuredClone(value);
  let at: Record<string | number, unknown> = copy;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>;
  const last = path.at(-1)!;
  const old = at[last];
  at[last] =
    typeof old === "string" ? `${old}!` : typeof old === "number" ? (old === 0 ? 1 : -old) : typeof old === "boolean" ? !old : "changed";
  return copy;
}

describe("the integrations' gate", () => {
  it(`a resumed call claims exactly its own approval, once (seed ${SEED})`, async () => {
    const { veto } = await makeVeto();
    const gate = new ToolGate<{ app: CallContext }>({ veto, context: (run) => run.app, toolNames: { crm_update: "crm.update" } }, "test");
    await fc.assert(
      fc.asyncProperty(extras, fc.integer({ min: 5000, max: 250000 }), async (extra, amount) => {
        const input = update({ amount, ...extra });
        const call = await gate.call("crm_update", input, { app: APP_CONTEXT });
        expect(call.tool).toBe("crm.update");
        expect(call.context).toEqual({ ...APP_CONTEXT, reason: input["reason"] });
        expect(call.arguments).not.toHaveProperty("reason");
        expect(Object.isFrozen(call.input)).toBe(true);
        const verdict = await gate.decide(call);
        expect(verdict.kind).toBe("approval");
        expect(decisionIdIn(pauseMessage(verdict.decision))).toBe(verdict.decision.id);
        const id = verdict.decision.id;
        // Before any answer: pending, not executed.
        expect(await gate.claim(id, call)).toMatchObject({ ok: false, code: "approval_pending" });
        await veto.approve({ decisionId: id, reviewerId: APPROVER });
        // One value changed anywhere in the input: another call.
        for (const path of leaves(input)) {
          const other = await gate.call("crm_update", changedAt(input, path), { app: APP_CONTEXT });
          expect(await gate.claim(id, other)).toMatchObject({ ok: false, code: "call_mismatch" });
        }
        // Another actor's context: another call.
        const elsewhere = await gate.call("crm_update", input, { app: { ...APP_CONTEXT, actorId: "agent:support-triage" } });
        expect(await gate.claim(id, elsewhere)).toMatchObject({ ok: false, code: "call_mismatch" });
        // The same call rebuilt from a tool call with its keys in another order: claimed once.
        const rebuilt = await gate.call("crm_update", reversed(input), { app: APP_CONTEXT });
        expect(await gate.claim(id, rebuilt)).toEqual({ ok: true });
        expect(await gate.claim(id, call)).toMatchObject({ ok: false, code: "already_executed" });
      }),
      { seed: SEED, numRuns: 100 },
    );
    await veto.close();
  });

  it("the application's reason wins over the model's; reasonArgument renames or turns it off", async () => {
    const { veto } = await makeVeto();
    const input = update({ amount: 100, why: "model says" });
    const named = new ToolGate<null>({ veto, context: () => APP_CONTEXT, reasonArgument: "why" }, "test");
    expect((await named.call("crm.update", input, null)).context.reason).toBe("model says");
    const off = new ToolGate<null>({ veto, context: () => APP_CONTEXT, reasonArgument: false }, "test");
    expect((await off.call("crm.update", input, null)).arguments).toHaveProperty("reason");
    expect((await off.call("crm.update", input, null)).context).not.toHaveProperty("reason");
    const app = new ToolGate<null>({ veto, context: () => ({ ...APP_CONTEXT, reason: "app says" }) }, "test");
    const call = await app.call("crm.update", input, null);
    expect(call.context.reason).toBe("app says");
    expect(call.input).toEqual(input);
    // Only the contract's context fields are taken from the application.
    const extra = new ToolGate<null>({ veto, context: () => ({ ...APP_CONTEXT, tool: "x", arguments: {} }) }, "test");
    expect(Object.keys((await extra.call("crm.update", input, null)).context).sort()).toEqual([
      "actorId",
      "environment",
      "reason",
      "tenantId",
    ]);
    await veto.close();
  });

  it("a deny's text names every code; bad options are a VetoOptionsError saying what to fix", async () => {
    const { veto } = await makeVeto();
    const gate = new ToolGate<null>({ veto, context: () => APP_CONTEXT }, "test");
    const verdict = await gate.decide(await gate.call("crm.update", update({ tenantId: "globex" }), null));
    expect(verdict.kind).toBe("deny");
    expect(denyMessage(verdict.decision)).toMatch(/^Denied by policy \[wrong_tenant\]: /);
    expect(() => new ToolGate({ veto: {} as never, context: () => APP_CONTEXT }, "x")).toThrow(VetoOptionsError);
    expect(() => new ToolGate({ veto, context: "app" as never }, "x")).toThrow(/context must be a function/);
    expect(() => new ToolGate({ veto, context: () => APP_CONTEXT, toolNames: { a: "" } }, "x")).toThrow(/toolNames/);
    expect(() => new ToolGate({ veto, context: () => APP_CONTEXT, reasonArgument: "" }, "x")).toThrow(/reasonArgument/);
    const broken = new ToolGate<null>({ veto, context: () => "nobody" as never }, "test");
    await expect(broken.call("crm.update", {}, null)).rejects.toThrow(VetoOptionsError);
    await veto.close();
  });
});
