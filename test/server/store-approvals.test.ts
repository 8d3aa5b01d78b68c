// What the store keeps for a reviewer, listApprovals and watchApprovals,
// on the in-memory store and a real PostgreSQL (docs/contract.md §6).
import { afterAll, describe, expect, it } from "vitest";
import { PostgresStore } from "../../adapter/postgres/store.js";
import { InMemoryStore, type VetoStore } from "../../adapter/history/store.js";
import { APPROVER, OTHER_APPROVER, makeVeto, write } from "../helpers/index.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";

const db = testDatabase();
afterAll(() => db.dropSchemas());

const backends: [string, () => Promise<VetoStore>][] = [
  ["in-memory", async () => new InMemoryStore()],
  ["postgres", () => PostgresStore.connect({ connectionString: pgUrl(), schema: db.schema("review"), migrate: true })],
];

describe.each(backends)("the store keeps what a reviewer sees (%s)", (_name, makeStore) => {
  it("keeps tool, environment, masked arguments, reasons, bundle, recentDenies; lists and watches approvals", async () => {
    const reader = await makeStore();
    const { veto } = await makeVeto({ store: reader });
    const seen: (string | undefined)[] = [];
    const decision = await veto.protect(write({ amount: 9000, changes: { close_date: "2026-12-01", email: "jane@acme.example" } }));
    expect(decision.action).toBe("require_approval");
    await veto.close();
    const stop = reader.watchApprovals!((id) => seen.push(id));
    const [item] = await reader.listApprovals!({ approverIds: [APPROVER], status: ["pending"] });
    expect(item?.id).toBe(decision.id);
    expect(item?.review).toMatchObject({
      tool: "crm.update",
      environment: "production",
      reasons: decision.reasons.map((r) => ({ ...r })),
      bundle: { ...decision.bundle },
      recentDenies: 0,
    });
    const args = item!.review!.arguments as Record<string, unknown>;
    expect(args["amount"]).toBe(9000);
    expect(await reader.listApprovals!({ approverIds: ["user:nobody"] })).toEqual([]);
    expect(await reader.listApprovals!({ status: ["approved"] })).toEqual([]);
    expect((await reader.listApprovals!({ approverIds: [OTHER_APPROVER, APPROVER] })).map((d) => d.id)).toContain(decision.id);
    // Once listening (PostgreSQL announces it as undefined: "re-read everything", which covers any
    // change made before), a change by anyone is announced with its id.
    if (reader instanceof PostgresStore) await expect.poll(() => seen.includes(undefined), { timeout: 10_000 }).toBe(true);
    await reader.transitionApproval(decision.id, { from: "pending", to: "answering", reviewerId: APPROVER, atMs: item!.atMs + 1 });
    await expect.poll(() => seen.includes(decision.id), { timeout: 5000 }).toBe(true);
    stop();
    await reader.close();
  });
});
