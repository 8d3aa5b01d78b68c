/**
 * What counts towards escalation (docs/contract.md §3, §9), as a seeded model
 * test any store can run: a random sequence of calls and outages for one
 * (actor, tenant), each decision checked against a model that counts policy
 * denies, invalid_input and rejected approvals, and never the adapter's own
 * fail-closed denies (evaluation_error, record_unavailable).
 *
 * Faults are injected at the store's and the sink's interfaces only: the
 * bundle, the evaluator and the store underneath are the real ones.
 */
import fc from "fast-check";
import { expect } from "vitest";
import type { Decision, StoreUnit, StoredDecision, Veto, VetoStore } from "../../adapter/index.js";
import type { FakeClock, MemorySink } from "./index.js";

/** Tenant globex lists no actors (any actor id may act for it): every run takes an actor of its own. */
export const TENANT = "globex";
export const APPROVER = "user:sysadmin@globex.example";
const WINDOW_MS = 900_000;
const THRESHOLD = 3;

/**
 * A store whose deny count fails while `failCount` is set (the history is
 * unavailable: evaluation_error), otherwise exactly the store it wraps.
 */
export class CountFaultStore implements VetoStore {
  failCount = false;
  readonly inner: VetoStore;

  constructor(inner: VetoStore) {
    this.inner = inner;
  }

  appendDecision(decision: StoredDecision): Promise<void> {
    return this.inner.appendDecision(decision);
  }
  countRecentDenies(actorId: string, tenantId: string, sinceMs: number): Promise<number> {
    if (this.failCount) return Promise.reject(new Error("deny history unavailable (injected)"));
    return this.inner.countRecentDenies(actorId, tenantId, sinceMs);
  }
  getDecision(id: string): Promise<StoredDecision | undefined> {
    return this.inner.getDecision(id);
  }
  transitionApproval(...args: Parameters<VetoStore["transitionApproval"]>): Promise<boolean> {
    return this.inner.transitionApproval(...args);
  }
  watchDecision(id: string, listener: () => void): () => void {
    return this.inner.watchDecision(id, listener);
  }
  unit<T>(history: Parameters<NonNullable<VetoStore["unit"]>>[0], fn: (unit: StoreUnit) => Promise<T>): Promise<T> {
    const run = (unit: StoreUnit): Promise<T> =>
      fn({
        ...unit,
        countRecentDenies: (actorId, tenantId, sinceMs) =>
          this.failCount
            ? Promise.reject(new Error("deny history unavailable (injected)"))
            : unit.countRecentDenies(actorId, tenantId, sinceMs),
        appendDecision: (d) => unit.appendDecision(d),
        getDecision: (id) => unit.getDecision(id),
        transitionApproval: (id, t) => unit.transitionApproval(id, t),
        commit: () => unit.commit(),
        rollback: () => unit.rollback(),
      });
    if (this.inner.unit === undefined) throw new Error("the wrapped store has no units");
    return this.inner.unit(history, run);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export type Step =
  | { kind: "policy_deny" }
  | { kind: "allow" }
  | { kind: "invalid_input" }
  | { kind: "invalid_anonymous" }
  | { kind: "record_unavailable"; deny: boolean }
  | { kind: "evaluation_error" }
  | { kind: "rejected" }
  | { kind: "approved" }
  | { kind: "wait"; ms: number };

export const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  fc.constant<Step>({ kind: "policy_deny" }),
  fc.constant<Step>({ kind: "allow" }),
  fc.constant<Step>({ kind: "invalid_input" }),
  fc.constant<Step>({ kind: "invalid_anonymous" }),
  fc.boolean().map<Step>((deny) => ({ kind: "record_unavailable", deny })),
  fc.constant<Step>({ kind: "evaluation_error" }),
  fc.constant<Step>({ kind: "rejected" }),
  fc.constant<Step>({ kind: "approved" }),
  fc.integer({ min: 1, max: 600_000 }).map<Step>((ms) => ({ kind: "wait", ms })),
);

export interface ModelVeto {
  readonly veto: Veto;
  readonly sink: MemorySink;
  readonly clock: FakeClock;
  readonly store: CountFaultStore;
}

function call(actorId: string, args: Record<string, unknown>, tool = "crm.update"): Record<string, unknown> {
  return {
    tool,
    arguments: { object: "opportunity", recordId: "opp_1", tenantId: TENANT, ...args },
    context: { actorId, tenantId: TENANT, environment: "production", reason: "model test" },
  };
}

const codesOf = (d: Decision): string[] => d.reasons.map((r) => r.code);

/**
 * Run `steps` against a fresh veto for `actorId` and check every decision
 * against the model. Returns the number of decisions checked.
 */
export async function runSteps(m: ModelVeto, actorId: string, steps: readonly Step[]): Promise<number> {
  const counted: number[] = [];
  const recent = (): number => counted.filter((t) => t >= m.clock.nowMs - WINDOW_MS).length;
  let checked = 0;
  const expectPolicy = (d: Decision, plain: { action: string; codes: string[] }, where: string): void => {
    const escalated = recent() >= THRESHOLD;
    const want = escalated ? { action: "deny", escalated: true, codes: ["repeated_denies"] } : { ...plain, escalated: false };
    expect({ action: d.action, escalated: d.escalated, codes: codesOf(d) }, `${where}: ${recent()} counted denies in the window`).toEqual(
      want,
    );
    checked += 1;
  };
  for (const [i, step] of steps.entries()) {
    const where = `step ${i} (${JSON.stringify(step)})`;
    switch (step.kind) {
      case "wait":
        m.clock.advance(step.ms);
        break;
      case "policy_deny": {
        const d = await m.veto.protect(call(actorId, { destination: "https://pastebin.com/x" }));
        expectPolicy(d, { action: "deny", codes: ["blocked_destination"] }, where);
        counted.push(m.clock.nowMs);
        break;
      }
      case "allow": {
        const d = await m.veto.protect(call(actorId, {}, "crm.read"));
        expectPolicy(d, { action: "allow", codes: ["read_only"] }, where);
        if (d.action === "deny") counted.push(m.clock.nowMs);
        break;
      }
      case "invalid_input": {
        // Names its actor and tenant: counts, and is never escalated (invalid_input comes first).
        const d = await m.veto.protect(call(actorId, { amount: "9000" }));
        expect([d.action, d.escalated, codesOf(d)], where).toEqual(["deny", false, ["invalid_input"]]);
        checked += 1;
        counted.push(m.clock.nowMs);
        break;
      }
      case "invalid_anonymous": {
        const d = await m.veto.protect({ tool: "crm.read", arguments: {}, context: { tenantId: TENANT } });
        expect([d.action, codesOf(d)], where).toEqual(["deny", ["invalid_input"]]);
        checked += 1;
        break;
      }
      case "record_unavailable": {
        m.sink.failing = new Error("records destination full (injected)");
        const d = await m.veto.protect(
          step.deny ? call(actorId, { destination: "https://pastebin.com/x" }) : call(actorId, {}, "crm.read"),
        );
        m.sink.failing = undefined;
        expect([d.action, d.escalated, codesOf(d)], where).toEqual(["deny", false, ["record_unavailable"]]);
        checked += 1;
        break;
      }
      case "evaluation_error": {
        m.store.failCount = true;
        const d = await m.veto.protect(call(actorId, {}, "crm.read")).finally(() => {
          m.store.failCount = false;
        });
        expect([d.action, d.escalated, codesOf(d)], where).toEqual(["deny", false, ["evaluation_error"]]);
        checked += 1;
        break;
      }
      case "rejected":
      case "approved": {
        const d = await m.veto.protect(call(actorId, { amount: 30_000 }));
        expectPolicy(d, { action: "require_approval", codes: ["production_amount"] }, where);
        if (d.action === "deny") {
          counted.push(m.clock.nowMs);
          break;
        }
        if (step.kind === "rejected") {
          await m.veto.reject({ decisionId: d.id, reviewerId: APPROVER, note: "no" });
          counted.push(m.clock.nowMs);
        } else {
          await m.veto.approve({ decisionId: d.id, reviewerId: APPROVER });
        }
        break;
      }
    }
  }
  return checked;
}
