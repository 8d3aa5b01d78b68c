// GET /api/approvals pages (docs/approvals.md, "The approval service"):
// generated approvals (statuses, approvers, actors, times that collide) on a
// real PostgreSQL and on the in-memory store, read page by page with random
// limits: every approval the reviewer may answer exactly once, in order,
// none of anyone else's. Reproduce a failure with VETO_SEED=<seed printed>.
import { afterAll, describe, expect, it } from "vitest";
import { InMemoryStore, statusAt, type StoredDecision, type VetoStore } from "../../adapter/history/store.js";
import { PostgresStore } from "../../adapter/postgres/store.js";
import { CredentialError, createApprovalServer } from "../../adapter/server/index.js";
import { makeVeto } from "../helpers/index.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";
import { seededRandom } from "../helpers/generate-calls.js";

const db = testDatabase();
afterAll(() => db.dropSchemas());

const prng = seededRandom;

const REVIEWER = "user:pager@acme.example";
const PEOPLE = [REVIEWER, "user:other@acme.example", "group:owners"];
const FINAL = ["pending", "lapsed", "approved", "rejected", "executed", "expired"] as const;

/** Generated approvals written through the store's own operations; returns what each ends as. */
async function generate(store: VetoStore, random: () => number, n: number, nowMs: number): Promise<StoredDecision[]> {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const base = nowMs - 60_000;
  for (let i = 0; i < n; i++) {
    const final = pick(FINAL);
    const lapsed = final === "lapsed" || final === "expired";
    const approvers = PEOPLE.filter(() => random() < 0.5);
    const id = `01PAGE${String(Math.floor(random() * 1e6)).padStart(6, "0")}${String(i).padStart(4, "0")}`;
    await store.appendDecision({
      id,
      action: "require_approval",
      escalated: false,
      // Few distinct times: many approvals share one, and the id orders them.
      atMs: base + Math.floor(random() * 8),
      actorId: random() < 0.15 ? REVIEWER : "agent:pager",
      tenantId: "acme",
      callDigest: `sha256:${"0".repeat(64)}`,
      approvers: approvers.length === 0 ? ["user:nobody"] : approvers,
      approval: { status: "pending", expiresAtMs: lapsed ? nowMs - 1_000 : nowMs + 3_600_000 },
    });
    const at = Date.now();
    if (final === "expired") await store.transitionApproval(id, { from: "pending", to: "expired", atMs: at });
    if (final === "approved" || final === "rejected" || final === "executed") {
      await store.transitionApproval(id, { from: "pending", to: "answering", reviewerId: "user:other@acme.example", atMs: at });
      const to = final === "rejected" ? "rejected" : "approved";
      await store.transitionApproval(id, { from: "answering", to, reviewerId: "user:other@acme.example", atMs: at });
      if (final === "executed") await store.transitionApproval(id, { from: "approved", to: "executed", atMs: at });
    }
  }
  return await store.listApprovals!({ limit: 1_000 });
}

const backends: [string, () => Promise<VetoStore>][] = [
  ["postgres", () => PostgresStore.connect({ connectionString: pgUrl(), schema: db.schema("paging"), migrate: true })],
  ["in-memory", async () => new InMemoryStore()],
];

describe.each(backends)("approval list paging (%s)", (_name, open) => {
  it("pages with random limits hold every approval the reviewer may answer exactly once, newest first", async () => {
    const seed = Number(process.env.VETO_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const random = prng(seed);
    const store = await open();
    const { veto } = await makeVeto({ store });
    const app = await createApprovalServer({
      veto,
      store,
      auth: {
        authenticate: async (headers) => {
          if (headers["x-test-reviewer"] !== REVIEWER) throw new CredentialError("who?");
          return { id: REVIEWER, approverIds: [REVIEWER, "group:owners"] };
        },
      },
    });
    const nowMs = store.now === undefined ? Date.now() : await store.now();
    const all = await generate(store, random, 160, nowMs);
    const mine = all.filter((d) => d.actorId !== REVIEWER && d.approvers.some((a) => a === REVIEWER || a === "group:owners"));
    const order = (a: StoredDecision, b: StoredDecision): number => b.atMs - a.atMs || (a.id < b.id ? 1 : -1);
    for (const wanted of ["answered", "pending"] as const) {
      const expected = mine
        .filter((d) => {
          const s = statusAt(d.approval!, Date.now());
          return wanted === "pending" ? s === "pending" || s === "answering" : !(s === "pending" || s === "answering");
        })
        .sort(order)
        .map((d) => d.id);
      for (let round = 0; round < 3; round++) {
        const seen: string[] = [];
        let cursor: string | undefined;
        for (let pages = 0; pages < 200; pages++) {
          const limit = 1 + Math.floor(random() * 25);
          const res = await app.inject({
            method: "GET",
            url: `/api/approvals?status=${wanted}&limit=${limit}${cursor === undefined ? "" : `&cursor=${cursor}`}`,
            headers: { "x-test-reviewer": REVIEWER },
          });
          expect(res.statusCode, `seed ${seed}`).toBe(200);
          const body = res.json<{ approvals: { decisionId: string; status: string }[]; nextCursor?: string }>();
          expect(body.approvals.length, `seed ${seed}`).toBeLessThanOrEqual(limit);
          for (const item of body.approvals) {
            expect(wanted === "pending" ? item.status === "pending" : item.status !== "pending", `seed ${seed}`).toBe(true);
          }
          seen.push(...body.approvals.map((a) => a.decisionId));
          cursor = body.nextCursor;
          if (cursor === undefined) break;
          expect(body.approvals.length, `seed ${seed}: a page before the last is full`).toBe(limit);
        }
        expect(seen, `seed ${seed} ${wanted} round ${round}`).toEqual(expected);
      }
    }
    expect(mine.length, `seed ${seed}: the data covers something`).toBeGreaterThan(20);
    await app.close();
    await veto.close();
    await store.close();
  });

  it("refuses bad limits and cursors with 400, the default page is 50", async () => {
    const store = await open();
    const { veto } = await makeVeto({ store });
    const app = await createApprovalServer({
      veto,
      store,
      auth: { authenticate: async () => ({ id: REVIEWER, approverIds: [REVIEWER] }) },
    });
    const bad = [
      "limit=0",
      "limit=201",
      "limit=-1",
      "limit=1.5",
      "limit=abc",
      "limit=",
      "limit=1&limit=2",
      "cursor=%%%",
      "cursor=bm90IGpzb24",
      `cursor=${Buffer.from(JSON.stringify([1, "../x"])).toString("base64url")}`,
      `cursor=${Buffer.from(JSON.stringify([-1, "01X"])).toString("base64url")}`,
      `cursor=${Buffer.from(JSON.stringify({ atMs: 1, id: "01X" })).toString("base64url")}`,
      `cursor=${"A".repeat(2000)}`,
      "status=everything",
    ];
    for (const q of bad) {
      const res = await app.inject({ method: "GET", url: `/api/approvals?${q}` });
      expect(res.statusCode, q).toBe(400);
      expect(res.json().error.code, q).toBe("malformed_request");
    }
    const nowMs = store.now === undefined ? Date.now() : await store.now();
    await generate(store, prng(7), 0, nowMs);
    for (let i = 0; i < 55; i++) {
      await store.appendDecision({
        id: `01DEFAULT${String(i).padStart(4, "0")}`,
        action: "require_approval",
        escalated: false,
        atMs: nowMs - i,
        actorId: "agent:pager",
        tenantId: "acme",
        callDigest: `sha256:${"0".repeat(64)}`,
        approvers: [REVIEWER],
        approval: { status: "pending", expiresAtMs: nowMs + 3_600_000 },
      });
    }
    const first = (await app.inject({ method: "GET", url: "/api/approvals" })).json();
    expect(first.approvals).toHaveLength(50);
    const rest = (await app.inject({ method: "GET", url: `/api/approvals?cursor=${first.nextCursor}` })).json();
    expect(rest.approvals).toHaveLength(5);
    expect(rest.nextCursor).toBeUndefined();
    await app.close();
    await veto.close();
    await store.close();
  });
});
