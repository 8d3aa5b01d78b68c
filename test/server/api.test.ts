// The approval service's JSON API (docs/approvals.md) on a real PostgreSQL
// and the real bundle, with bearer JWTs signed and verified for real.
import { generateKeyPairSync } from "node:crypto";
import { SignJWT, UnsecuredJWT, importPKCS8 } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStore } from "../../adapter/postgres/store.js";
import { createApprovalServer } from "../../adapter/server/index.js";
import type { Veto } from "../../adapter/index.js";
import { ACTOR, APPROVER, OTHER_APPROVER, makeVeto, write } from "../helpers/index.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";

const db = testDatabase();
const ISS = "https://idp.test";
const AUD = "veto-approvals";
const pair = () =>
  generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
const KEY = pair();
const OTHER_KEY = pair();

async function token(
  claims: Record<string, unknown> = {},
  o: { key?: string; iss?: string; aud?: string; exp?: number | null; nbf?: number } = {},
): Promise<string> {
  const jwt = new SignJWT({ sub: APPROVER, ...claims })
    .setProtectedHeader({ alg: "RS256" })
    .setIssuer(o.iss ?? ISS)
    .setAudience(o.aud ?? AUD)
    .setIssuedAt();
  if (o.exp !== null) jwt.setExpirationTime(o.exp ?? Math.floor(Date.now() / 1000) + 300);
  if (o.nbf !== undefined) jwt.setNotBefore(o.nbf);
  return await jwt.sign(await importPKCS8(o.key ?? KEY.privateKey, "RS256"));
}

let store: PostgresStore;
let veto: Veto;
let app: Awaited<ReturnType<typeof createApprovalServer>>;

beforeAll(async () => {
  store = await PostgresStore.connect({ connectionString: pgUrl(), schema: db.schema("api"), migrate: true });
  ({ veto } = await makeVeto({ store, recordSink: store.recordSink() }));
  app = await createApprovalServer({
    veto,
    store,
    auth: { jwt: { publicKey: KEY.publicKey, issuer: ISS, audience: AUD, groupsClaim: "groups" } },
  });
});
afterAll(async () => {
  await app.close();
  await veto.close();
  await store.close();
  await db.dropSchemas();
});

async function pending(): Promise<string> {
  const d = await veto.protect(write({ amount: 9000 }));
  expect(d.action).toBe("require_approval");
  return d.id;
}

const auth = async (claims?: Record<string, unknown>) => ({ authorization: `Bearer ${await token(claims)}` });

describe("approval API", () => {
  it("lists, shows and approves with a verified reviewer; the body's reviewer id is ignored", async () => {
    const id = await pending();
    const list = await app.inject({ method: "GET", url: "/api/approvals?status=pending", headers: await auth() });
    expect(list.statusCode).toBe(200);
    const item = list.json().approvals.find((a: { decisionId: string }) => a.decisionId === id);
    expect(item).toMatchObject({ status: "pending", tool: "crm.update", actorId: ACTOR, tenantId: "acme", environment: "production" });
    expect(item.arguments.amount).toBe(9000);
    const got = await app.inject({ method: "GET", url: `/api/approvals/${id}`, headers: await auth() });
    expect(got.json().decisionId).toBe(id);
    const res = await app.inject({
      method: "POST",
      url: `/api/approvals/${id}/approve`,
      headers: await auth(),
      payload: { note: "ok", reviewerId: OTHER_APPROVER },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: "approved", reviewerId: APPROVER, note: "ok" });
    const again = await app.inject({ method: "POST", url: `/api/approvals/${id}/reject`, headers: await auth({ sub: OTHER_APPROVER }) });
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe("already_answered");
    expect(again.json().error.approval.reviewerId).toBe(APPROVER);
  });

  it("amend: the verified reviewer amends; the original ends amended, the new decision is the policy's; bad bodies change nothing", async () => {
    const id = await pending();
    const url = `/api/approvals/${id}/amend`;
    const amended = { ...(write({ amount: 7000 })["arguments"] as Record<string, unknown>) };
    for (const payload of [{}, { arguments: [] }, { arguments: "x" }, { arguments: amended, note: 5 }]) {
      const bad = await app.inject({ method: "POST", url, headers: await auth(), payload });
      expect(bad.statusCode).toBe(400);
    }
    expect(
      (await app.inject({ method: "POST", url, headers: await auth({ sub: ACTOR }), payload: { arguments: amended } })).statusCode,
    ).toBe(403);
    expect(
      (await app.inject({ method: "POST", url, headers: await auth({ sub: "user:mallory" }), payload: { arguments: amended } })).statusCode,
    ).toBe(403);
    expect((await store.getDecision(id))!.approval!.status).toBe("pending");
    const res = await app.inject({ method: "POST", url, headers: await auth(), payload: { arguments: amended, note: "7,000" } });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.amended).toMatchObject({ decisionId: id, status: "amended", reviewerId: APPROVER, amendedTo: body.decision.id });
    expect(body.decision.action).toBe("require_approval");
    expect(body.approval).toMatchObject({ decisionId: body.decision.id, status: "approved", reviewerId: APPROVER });
    const shown = await app.inject({ method: "GET", url: `/api/approvals/${body.decision.id}`, headers: await auth() });
    expect(shown.json()).toMatchObject({ amendedFrom: id, amendedBy: APPROVER, status: "approved" });
    const twice = await app.inject({ method: "POST", url, headers: await auth({ sub: OTHER_APPROVER }), payload: { arguments: amended } });
    expect(twice.statusCode).toBe(409);
    expect(twice.json().error.code).toBe("already_answered");
  });

  it.each([
    ["no credential", async () => ({})],
    ["expired", async () => ({ authorization: `Bearer ${await token({}, { exp: Math.floor(Date.now() / 1000) - 120 })}` })],
    ["not yet valid", async () => ({ authorization: `Bearer ${await token({}, { nbf: Math.floor(Date.now() / 1000) + 600 })}` })],
    ["no exp", async () => ({ authorization: `Bearer ${await token({}, { exp: null })}` })],
    ["wrong issuer", async () => ({ authorization: `Bearer ${await token({}, { iss: "https://evil.test" })}` })],
    ["wrong audience", async () => ({ authorization: `Bearer ${await token({}, { aud: "other" })}` })],
    ["re-signed with another key", async () => ({ authorization: `Bearer ${await token({}, { key: OTHER_KEY.privateKey })}` })],
    [
      "alg none",
      async () => ({
        authorization: `Bearer ${new UnsecuredJWT({ sub: APPROVER }).setIssuer(ISS).setAudience(AUD).setExpirationTime("5m").encode()}`,
      }),
    ],
    ["dev header without dev login", async () => ({ "x-veto-dev-reviewer": APPROVER })],
  ])("401 and nothing changed: %s", async (_name, headers) => {
    const id = await pending();
    for (const [method, url] of [
      ["GET", "/api/approvals"],
      ["GET", `/api/approvals/${id}`],
      ["POST", `/api/approvals/${id}/approve`],
    ] as const) {
      const res = await app.inject({ method, url, headers: await headers(), ...(method === "POST" ? { payload: {} } : {}) });
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe("unauthenticated");
    }
    expect((await store.getDecision(id))?.approval?.status).toBe("pending");
  });

  it("403 for the actor and a non-approver, 404 unknown, 400/413/415 bodies, path tricks; nothing changes", async () => {
    const id = await pending();
    const post = async (headers: Record<string, string>, url = `/api/approvals/${id}/approve`, extra: object = { payload: {} }) =>
      await app.inject({ method: "POST", url, headers, ...extra });
    expect((await post(await auth({ sub: ACTOR, groups: ["crm-owners"] }))).json().error.code).toBe("self_approval");
    expect((await post(await auth({ sub: "user:mallory" }))).statusCode).toBe(403);
    expect(
      (await app.inject({ method: "GET", url: `/api/approvals/${id}`, headers: await auth({ sub: "user:mallory" }) })).statusCode,
    ).toBe(404);
    expect((await post(await auth(), "/api/approvals/01UNKNOWN/approve")).statusCode).toBe(404);
    for (const url of [
      `/api/approvals/..%2F${id}/approve`,
      `/api/approvals/${id}%00/approve`,
      `/api/approvals/${"a".repeat(500)}/approve`,
      "/api/nothing",
      `/api/approvals/${id}/approve/x`,
    ]) {
      expect((await post(await auth(), url)).statusCode).toBeGreaterThanOrEqual(400);
    }
    const h = await auth();
    expect((await post({ ...h, "content-type": "text/plain" }, undefined, { payload: "note" })).statusCode).toBe(415);
    expect((await post({ ...h, "content-type": "application/xml" }, undefined, { payload: "<a/>" })).statusCode).toBe(415);
    expect((await post({ ...h, "content-type": "application/json" }, undefined, { payload: "{bad" })).statusCode).toBe(400);
    expect((await post(h, undefined, { payload: { note: 5 } })).statusCode).toBe(400);
    expect((await post(h, undefined, { payload: [1] })).statusCode).toBe(400);
    expect((await post({ ...h, "content-type": "application/json" }, undefined, { payload: '{"__proto__":{"x":1}}' })).statusCode).toBe(
      400,
    );
    expect((await post(h, undefined, { payload: { note: "x".repeat(100_000) } })).statusCode).toBe(413);
    expect((await store.getDecision(id))?.approval?.status).toBe("pending");
    expect((await app.inject({ method: "GET", url: "/api/approvals", headers: h })).statusCode).toBe(200);
  });

  it("groups map to group:<name> approver ids", async () => {
    const id = await pending();
    const d = await store.getDecision(id);
    const group = d!.approvers.find((a) => a.startsWith("group:"));
    if (group === undefined) {
      // The fixture lists people only: a group claim alone must not grant anything.
      const res = await app.inject({
        method: "POST",
        url: `/api/approvals/${id}/approve`,
        headers: await auth({ sub: "user:grouped", groups: ["crm-owners"] }),
        payload: {},
      });
      expect(res.statusCode).toBe(403);
      return;
    }
    const res = await app.inject({
      method: "POST",
      url: `/api/approvals/${id}/approve`,
      headers: await auth({ sub: "user:grouped", groups: [group.slice(6)] }),
      payload: {},
    });
    expect(res.statusCode).toBe(200);
  });

  it("two reviewers at once over a real socket: one 200, one 409; a waiting guard runs once", async () => {
    let runs = 0;
    const tool = veto.guard("crm.update", () => ++runs);
    const call = write({ amount: 9000 });
    // Earlier tests leave approvals pending: the guard's is the one that was not there before it ran.
    const earlier = new Set((await store.listApprovals({ status: ["pending"] })).map((d) => d.id));
    const running = tool(call["arguments"] as never, call["context"] as never);
    let guarded: string | undefined;
    await expect
      .poll(async () => (guarded = (await store.listApprovals({ status: ["pending"] })).map((d) => d.id).find((x) => !earlier.has(x))), {
        timeout: 10_000,
      })
      .toBeDefined();
    const id = guarded!;
    const address = await app.listen({ host: "127.0.0.1", port: 0 });
    const answer = async (sub: string) =>
      await fetch(`${address}/api/approvals/${id}/approve`, {
        method: "POST",
        headers: { authorization: `Bearer ${await token({ sub })}`, "content-type": "application/json" },
        body: "{}",
      });
    const [a, b] = await Promise.all([answer(APPROVER), answer(OTHER_APPROVER)]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    await expect(running).resolves.toBe(1);
    await expect(veto.waitForApproval({ decisionId: id, call: call as never })).rejects.toMatchObject({ code: "already_executed" });
    expect(runs).toBe(1);
    const shown = await (await fetch(`${address}/api/approvals/${id}`, { headers: { authorization: `Bearer ${await token()}` } })).json();
    expect(shown.status).toBe("executed");
    expect(shown.executedAt).toBeTypeOf("string");
  });
});
