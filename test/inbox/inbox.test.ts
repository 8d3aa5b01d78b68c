// The inbox's server side (docs/inbox.md) without a browser: sessions,
// CSRF, sign-in links, security headers, rendering, on the real bundle, the
// in-memory store and a real PostgreSQL. The browser tests (browser.test.ts)
// drive the same pages in Chromium.
import fc from "fast-check";
import { generateKeyPairSync } from "node:crypto";
import { SignJWT, importPKCS8 } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import { InMemoryStore, type VetoStore } from "../../adapter/history/store.js";
import { PostgresStore } from "../../adapter/postgres/store.js";
import { createApprovalServer, createSignInLinks } from "../../adapter/server/index.js";
import type { Veto } from "../../adapter/index.js";
import { deriveKeys, secretBytes } from "../../adapter/server/inbox/keys.js";
import { sealSession } from "../../adapter/server/inbox/session.js";
import { ACTOR, APPROVER, OTHER_APPROVER, makeVeto, write } from "../helpers/index.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";
import { FORM, cookieOf, csrfOf, devLogin, form, pending, type InboxApp as App } from "../helpers/inbox.js";

const db = testDatabase();
afterAll(() => db.dropSchemas());

const SECRET = "a test secret that is long enough to sign with";

async function open(
  o: { store?: VetoStore; inbox?: object; auth?: object; ttlMs?: number } = {},
): Promise<{ app: App; veto: Veto; store: VetoStore }> {
  const store = o.store ?? new InMemoryStore();
  const recordSink = store instanceof PostgresStore ? store.recordSink() : undefined;
  const { veto } = await makeVeto({
    store,
    clock: () => Date.now(),
    ...(recordSink === undefined ? {} : { recordSink }),
    ...(o.ttlMs === undefined ? {} : { approvalTtlMs: o.ttlMs }),
  });
  const app = await createApprovalServer({
    veto,
    store,
    auth: (o.auth ?? { devLogin: { approverIds: [APPROVER, OTHER_APPROVER, ACTOR] } }) as never,
    inbox: { secret: SECRET, publicUrl: "http://127.0.0.1:8787", ...o.inbox },
  });
  return { app, veto, store };
}

/** What a link's sign-in page gives the browser: its own cookie and the form's CSRF token. */
async function linkPage(app: App, token: string): Promise<{ cookie: string; csrf: string }> {
  const res = await app.inject({ method: "GET", url: `/sign-in/link?token=${token}` });
  expect(res.statusCode).toBe(200);
  expect(String(res.headers["set-cookie"])).toMatch(
    /^veto_link_csrf=[\w-]+; Path=\/sign-in\/link; HttpOnly; SameSite=Strict; Max-Age=900$/,
  );
  return { cookie: cookieOf(res), csrf: csrfOf(res.body) };
}

function postLink(app: App, token: string, from: { cookie: string; csrf: string }, headers: Record<string, string> = {}) {
  return app.inject({
    method: "POST",
    url: "/sign-in/link",
    headers: { ...FORM, cookie: from.cookie, ...headers },
    payload: form({ token, _csrf: from.csrf }),
  });
}

describe("inbox sessions and pages", () => {
  it("dev login: an HttpOnly SameSite=Strict cookie, a redirect to /, and the pending card with every field", async () => {
    const { app, veto } = await open();
    const id = await pending(veto, { changes: { close_date: "2026-12-01", next_step: "<script>alert(1)</script>" } });
    const res = await app.inject({ method: "GET", url: `/dev-login?reviewer=${encodeURIComponent(APPROVER)}` });
    expect(res.statusCode).toBe(303);
    const set = String(res.headers["set-cookie"]);
    expect(set).toMatch(/^veto_session=[\w.-]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=28800$/);
    const page = await app.inject({ method: "GET", url: "/", headers: { cookie: cookieOf(res) } });
    expect(page.statusCode).toBe(200);
    const html = page.body;
    expect(html).toContain(`data-decision-id="${id}"`);
    for (const text of [ACTOR, "acme", "production", "crm.update", "opportunity", "opp_123", "close_date", "2026-12-01", "9000"]) {
      expect(html).toContain(text);
    }
    // Values are escaped, never markup.
    expect(html).not.toContain("<script>alert(1)</script>");
    expect(html).toContain("&#60;script&#62;alert(1)&#60;/script&#62;");
    expect(html).toMatch(/<label for="note-[^"]+">Comment<\/label>/);
    expect(html).toMatch(/<button type="submit" class="approve">Approve<\/button>/);
    expect(html).toMatch(/<button type="submit" class="reject" formaction="[^"]+">Reject<\/button>/);
    expect(html).not.toMatch(/<script(?![^>]*src="\/assets\/inbox\.js")/);
    await app.close();
    await veto.close();
  });

  it("every page and asset carries the security headers; the policy allows no inline script", async () => {
    const { app, veto } = await open();
    const cookie = await devLogin(app);
    for (const url of ["/", "/history", "/sign-in", "/assets/inbox.js", "/assets/inbox.css", "/dev-login?reviewer=nobody"]) {
      const res = await app.inject({ method: "GET", url, headers: { cookie } });
      expect(res.headers["content-security-policy"], url).toBe(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
      );
      expect(res.headers["cache-control"], url).toBe("no-store");
      expect(res.headers["x-frame-options"], url).toBe("DENY");
      expect(res.headers["referrer-policy"], url).toBe("same-origin");
    }
    expect((await app.inject({ method: "GET", url: "/assets/inbox.js" })).headers["content-type"]).toMatch(/^text\/javascript/);
    await app.close();
    await veto.close();
  });

  it("dev login is refused for an unknown reviewer, from a non-loopback address, and without --dev-login", async () => {
    const { app, veto } = await open();
    expect((await app.inject({ method: "GET", url: "/dev-login?reviewer=user:mallory" })).statusCode).toBe(403);
    const remote = await app.inject({ method: "GET", url: `/dev-login?reviewer=${APPROVER}`, remoteAddress: "203.0.113.9" });
    expect(remote.statusCode).toBe(403);
    expect(remote.headers["set-cookie"]).toBeUndefined();
    await app.close();
    await veto.close();
    const key = generateKeyPairSync("ec", {
      namedCurve: "P-256",
      publicKeyEncoding: { type: "spki", format: "pem" },
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
    });
    const jwt = await open({ auth: { jwt: { publicKey: key.publicKey, issuer: "https://idp.test", audience: "veto" } } });
    const none = await jwt.app.inject({ method: "GET", url: `/dev-login?reviewer=${APPROVER}` });
    expect(none.statusCode).toBe(401);
    expect(none.headers["set-cookie"]).toBeUndefined();
    await jwt.app.close();
    await jwt.veto.close();
  });

  it("over https the cookie is Secure and __Host- prefixed", async () => {
    const { app, veto } = await open({ inbox: { publicUrl: "https://veto.example.com" } });
    const res = await app.inject({ method: "GET", url: `/dev-login?reviewer=${APPROVER}` });
    expect(String(res.headers["set-cookie"])).toMatch(
      /^__Host-veto_session=[\w.-]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+; Secure$/,
    );
    await app.close();
    await veto.close();
  });

  it("the identity provider's token signs in (a proxy adds it); a bad one does not", async () => {
    const key = generateKeyPairSync("ec", {
      namedCurve: "P-256",
      publicKeyEncoding: { type: "spki", format: "pem" },
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
    });
    const { app, veto } = await open({
      auth: { jwt: { publicKey: key.publicKey, issuer: "https://idp.test", audience: "veto", groupsClaim: "groups" } },
    });
    const id = await pending(veto);
    const token = await new SignJWT({ sub: "user:someone", groups: ["x"] })
      .setProtectedHeader({ alg: "ES256" })
      .setIssuer("https://idp.test")
      .setAudience("veto")
      .setExpirationTime("5m")
      .sign(await importPKCS8(key.privateKey, "ES256"));
    const signIn = await app.inject({ method: "GET", url: "/sign-in", headers: { authorization: `Bearer ${token}` } });
    expect(signIn.statusCode).toBe(303);
    const cookie = cookieOf(signIn);
    // Not an approver of acme: signed in, but nothing to see.
    const page = await app.inject({ method: "GET", url: "/", headers: { cookie } });
    expect(page.statusCode).toBe(200);
    expect(page.body).not.toContain(id);
    const owner = await new SignJWT({ sub: APPROVER })
      .setProtectedHeader({ alg: "ES256" })
      .setIssuer("https://idp.test")
      .setAudience("veto")
      .setExpirationTime("5m")
      .sign(await importPKCS8(key.privateKey, "ES256"));
    const direct = await app.inject({ method: "GET", url: "/", headers: { authorization: `Bearer ${owner}` } });
    expect(direct.statusCode).toBe(200);
    expect(direct.body).toContain(`data-decision-id="${id}"`);
    expect(String(direct.headers["set-cookie"])).toMatch(/^veto_session=/);
    const bad = await app.inject({ method: "GET", url: "/", headers: { authorization: `Bearer ${owner.slice(0, -4)}AAAA` } });
    expect(bad.statusCode).toBe(401);
    expect(bad.headers["set-cookie"]).toBeUndefined();
    // The proxy's token decides over an older cookie: another reviewer's, or with a bad token, nobody's.
    const switched = await app.inject({ method: "GET", url: "/", headers: { cookie, authorization: `Bearer ${owner}` } });
    expect(switched.body).toContain(`data-decision-id="${id}"`);
    expect(String(switched.headers["set-cookie"])).toMatch(/^veto_session=/);
    const ownerCookie = cookieOf(switched);
    const kept = await app.inject({ method: "GET", url: "/", headers: { cookie: ownerCookie, authorization: `Bearer ${owner}` } });
    expect(kept.headers["set-cookie"]).toBeUndefined();
    const spoiled = await app.inject({ method: "GET", url: "/", headers: { cookie: ownerCookie, authorization: "Bearer x.y.z" } });
    expect(spoiled.statusCode).toBe(401);
    await app.close();
    await veto.close();
  });

  it("a form post without the CSRF token, with another session's, or from another origin is refused; nothing changes", async () => {
    const { app, veto, store } = await open();
    const id = await pending(veto);
    const cookie = await devLogin(app);
    const other = await devLogin(app, OTHER_APPROVER);
    const token = csrfOf((await app.inject({ method: "GET", url: "/", headers: { cookie } })).body);
    const otherToken = csrfOf((await app.inject({ method: "GET", url: "/", headers: { cookie: other } })).body);
    expect(otherToken).not.toBe(token);
    const post = (headers: Record<string, string>, body: string) =>
      app.inject({ method: "POST", url: `/approvals/${id}/approve`, headers: { ...FORM, cookie, ...headers }, payload: body });
    for (const [headers, body] of [
      [{}, form({ note: "x" })],
      [{}, form({ note: "x", _csrf: "" })],
      [{}, form({ note: "x", _csrf: otherToken })],
      [{}, form({ note: "x", _csrf: token.slice(1) })],
      [{ origin: "https://evil.example" }, form({ _csrf: token })],
      [{ "sec-fetch-site": "cross-site" }, form({ _csrf: token })],
      [{ "sec-fetch-site": "same-site" }, form({ _csrf: token })],
      [{ origin: "null" }, form({ _csrf: token })],
      [{ origin: "null", "sec-fetch-site": "cross-site" }, form({ _csrf: token })],
      [{ "content-type": "application/json" }, JSON.stringify({ _csrf: token })],
    ] as const) {
      const res = await post(headers, body);
      expect(res.statusCode, JSON.stringify(headers) + body).toBe(403);
    }
    // Generated tokens: none passes.
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 60 }), async (guess) => {
        const res = await post({}, form({ _csrf: guess }));
        return res.statusCode === 403;
      }),
      { numRuns: 60 },
    );
    expect((await store.getDecision(id))?.approval?.status).toBe("pending");
    const ok = await post({ origin: "http://127.0.0.1:8787", "sec-fetch-site": "same-origin" }, form({ _csrf: token, note: "checked" }));
    expect(ok.statusCode).toBe(303);
    expect((await store.getDecision(id))?.approval).toMatchObject({ status: "approved", reviewerId: APPROVER, note: "checked" });
    await app.close();
    await veto.close();
  });

  it("a cookie altered, expired, signed with another secret, or holding a link's token is no session", async () => {
    const { app, veto } = await open();
    const id = await pending(veto);
    const good = await devLogin(app);
    const value = good.slice(good.indexOf("=") + 1);
    const mine = deriveKeys(secretBytes(SECRET, "test"));
    const seal = async (keys: typeof mine, expiresAtMs: number) =>
      (await sealSession(keys, { reviewerId: APPROVER, approverIds: [APPROVER], expiresAtMs })).value;
    const link = new URL(await app.signInLinks!.linkFor(APPROVER, id)).searchParams.get("token")!;
    const [h, p, sig] = value.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, "base64url").toString("utf8"));
    const bad = [
      `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: OTHER_APPROVER, ids: [OTHER_APPROVER] })).toString("base64url")}.${sig}`,
      await seal(mine, Date.now() - 1_000),
      await seal(deriveKeys(secretBytes("yet another secret of thirty-two bytes+", "test")), Date.now() + 60_000),
      link,
      "",
      "x".repeat(5000),
    ];
    expect(
      (await app.inject({ method: "GET", url: "/", headers: { cookie: `veto_session=${await seal(mine, Date.now() + 60_000)}` } }))
        .statusCode,
    ).toBe(200);
    for (const v of bad) {
      const res = await app.inject({ method: "GET", url: `/approvals/${id}`, headers: { cookie: `veto_session=${v}` } });
      expect(res.statusCode, v.slice(0, 40)).toBe(401);
      expect(res.body).not.toContain(`data-decision-id="${id}"`);
    }
    await app.close();
    await veto.close();
  });

  it("path tricks, oversized and foreign bodies get 4xx pages; nothing changes and the server stays up", async () => {
    const { app, veto, store } = await open();
    const id = await pending(veto);
    const cookie = await devLogin(app);
    const csrf = csrfOf((await app.inject({ method: "GET", url: "/", headers: { cookie } })).body);
    for (const url of [`/approvals/..%2F${id}`, `/approvals/${id}%00`, `/approvals/${"a".repeat(300)}`, `/approvals/${id}/card/x`]) {
      const res = await app.inject({ method: "GET", url, headers: { cookie } });
      expect(res.statusCode, url).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, url).toBeLessThan(500);
    }
    const post = (payload: string, type = "application/x-www-form-urlencoded") =>
      app.inject({ method: "POST", url: `/approvals/${id}/approve`, headers: { cookie, "content-type": type }, payload });
    expect((await post(form({ _csrf: csrf, note: "x".repeat(20_000) }))).statusCode).toBe(413);
    expect((await post(form({ _csrf: csrf, note: "x".repeat(2_001) }))).statusCode).toBe(400);
    expect((await post("<a/>", "application/xml")).statusCode).toBe(415);
    expect((await post(`_csrf=${csrf}&_csrf=other&__proto__=x&constructor=y`)).statusCode).toBe(303);
    expect((await store.getDecision(id))?.approval?.status).toBe("approved");
    expect((await app.inject({ method: "GET", url: "/", headers: { cookie } })).statusCode).toBe(200);
    await app.close();
    await veto.close();
  });

  it("the actor never sees or answers its own approval; another tenant's approver neither", async () => {
    const { app, veto, store } = await open();
    const id = await pending(veto);
    const cookie = await devLogin(app, ACTOR);
    const page = await app.inject({ method: "GET", url: `/approvals/${id}`, headers: { cookie } });
    expect(page.statusCode).toBe(404);
    const token = csrfOf(page.body);
    const res = await app.inject({
      method: "POST",
      url: `/approvals/${id}/approve`,
      headers: { ...FORM, cookie },
      payload: form({ _csrf: token }),
    });
    expect(res.statusCode).toBe(404);
    expect((await store.getDecision(id))?.approval?.status).toBe("pending");
    await app.close();
    await veto.close();
  });

  it("history lists answered approvals with reviewer, note and time, filtered by status", async () => {
    const { app, veto } = await open();
    const a = await pending(veto);
    const b = await pending(veto);
    const c = await pending(veto);
    await veto.approve({ decisionId: a, reviewerId: APPROVER, note: "fine" });
    await veto.reject({ decisionId: b, reviewerId: OTHER_APPROVER, note: "no" });
    const cookie = await devLogin(app);
    const all = (await app.inject({ method: "GET", url: "/history", headers: { cookie } })).body;
    expect(all).toMatch(new RegExp(`data-decision-id="${a}" data-status="approved">.*${APPROVER}.*fine`));
    expect(all).toMatch(new RegExp(`data-decision-id="${b}" data-status="rejected">.*${OTHER_APPROVER}.*no`));
    expect(all).not.toContain(c);
    const rejected = (await app.inject({ method: "GET", url: "/history?status=rejected", headers: { cookie } })).body;
    expect(rejected).toContain(b);
    expect(rejected).not.toContain(`data-decision-id="${a}"`);
    expect((await app.inject({ method: "GET", url: "/history?status=bogus", headers: { cookie } })).statusCode).toBe(400);
    await app.close();
    await veto.close();
  });

  it("generated argument values are always escaped in the card", async () => {
    const { app, veto } = await open();
    const cookie = await devLogin(app);
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 1, maxLength: 40 }), fc.string({ maxLength: 80 }), async (field, value) => {
        const name = `f_${field.replace(/[^\w]/g, "")}`;
        const d = await veto.protect(write({ amount: 9000, changes: { [name]: `<b>${value}</b>` } }));
        if (d.action !== "require_approval") return true;
        const html = (await app.inject({ method: "GET", url: `/approvals/${d.id}`, headers: { cookie } })).body;
        return !html.includes(`<b>${value}</b>`) || value === "";
      }),
      { numRuns: 40 },
    );
    await app.close();
    await veto.close();
  });
});

describe("sign-in links", () => {
  it("open a session for that reviewer and that decision only, once; GET never uses one up", async () => {
    const { app, veto } = await open();
    const id = await pending(veto);
    const other = await pending(veto);
    const url = new URL(await app.signInLinks!.linkFor(APPROVER, id));
    expect(url.origin + url.pathname).toBe("http://127.0.0.1:8787/sign-in/link");
    const path = url.pathname + url.search;
    for (let i = 0; i < 2; i++) {
      const shown = await app.inject({ method: "GET", url: path });
      expect(shown.statusCode).toBe(200);
      expect(shown.body).toContain(APPROVER);
      expect(String(shown.headers["set-cookie"])).not.toContain("veto_session");
    }
    const token = url.searchParams.get("token")!;
    const from = await linkPage(app, token);
    // The form's CSRF token and the page's cookie go together: without either, refused, and the link is not used up.
    for (const [cookie, csrf] of [
      ["", from.csrf],
      [from.cookie, ""],
      [from.cookie, csrfOf((await app.inject({ method: "GET", url: path })).body)],
    ] as const) {
      const res = await postLink(app, token, { cookie, csrf });
      expect(res.statusCode).toBe(403);
      expect(res.headers["set-cookie"]).toBeUndefined();
    }
    const redeem = () => postLink(app, token, from);
    const first = await redeem();
    expect(first.statusCode).toBe(303);
    expect(first.headers.location).toBe(`/approvals/${id}`);
    const cookie = cookieOf(first);
    const card = await app.inject({ method: "GET", url: `/approvals/${id}`, headers: { cookie } });
    expect(card.body).toContain(`data-decision-id="${id}"`);
    expect(card.body).toContain("by link, for its approvals only");
    // Only that decision: the other is not shown, nor answerable.
    expect((await app.inject({ method: "GET", url: `/approvals/${other}`, headers: { cookie } })).statusCode).toBe(404);
    expect((await app.inject({ method: "GET", url: "/", headers: { cookie } })).body).not.toContain(other);
    // Used: refused, whoever tries.
    const again = await redeem();
    expect(again.statusCode).toBe(410);
    expect(again.headers["set-cookie"]).toBeUndefined();
    await app.close();
    await veto.close();
  });

  it("are made only for an approver of the decision who is not its actor, and a changed link is refused", async () => {
    const { app, veto, store } = await open();
    const id = await pending(veto);
    const links = app.signInLinks!;
    await expect(links.linkFor("user:mallory", id)).rejects.toMatchObject({ code: "not_an_approver" });
    await expect(links.linkFor(ACTOR, id)).rejects.toMatchObject({ code: "self_approval" });
    await expect(links.linkFor("group:owners", id)).rejects.toMatchObject({ code: "not_an_approver" });
    await expect(links.linkFor(APPROVER, "01NOPE")).rejects.toMatchObject({ code: "unknown_decision" });
    // One per person who may answer: both acme approvers, each bound to themselves.
    const each = await links.linksFor(id);
    expect(Object.keys(each).sort()).toEqual([APPROVER, OTHER_APPROVER]);
    for (const [who, link] of Object.entries(each)) {
      const claims = JSON.parse(Buffer.from(new URL(link).searchParams.get("token")!.split(".")[1]!, "base64url").toString("utf8"));
      expect(claims).toMatchObject({ sub: who, dec: id });
    }
    const token = new URL(await links.linkFor(APPROVER, id)).searchParams.get("token")!;
    const [h, p, s] = token.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, "base64url").toString("utf8"));
    const other = await pending(veto);
    const forged = [
      { ...claims, sub: OTHER_APPROVER },
      { ...claims, dec: other },
      { ...claims, exp: claims.exp + 3600 },
    ].map((c) => `${h}.${Buffer.from(JSON.stringify(c)).toString("base64url")}.${s}`);
    // Made with another secret: refused.
    const foreign = createSignInLinks({ store, secret: "another secret, also long enough to sign", publicUrl: "http://127.0.0.1:8787" });
    const foreignToken = new URL(await foreign.linkFor(APPROVER, id)).searchParams.get("token")!;
    const from = await linkPage(app, token);
    for (const bad of [...forged, foreignToken, "x.y.z", "", token.slice(0, -2)]) {
      const res = await postLink(app, bad, from);
      expect(res.statusCode, bad).toBe(403);
      expect(res.headers["set-cookie"]).toBeUndefined();
    }
    // Generated single-character changes anywhere in the token: never a session.
    await fc.assert(
      fc.asyncProperty(
        fc.nat(token.length - 1),
        fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
        async (at, ch) => {
          if (token[at] === ch || token[at] === ".") return true;
          const bad = token.slice(0, at) + ch + token.slice(at + 1);
          const res = await app.inject({ method: "GET", url: `/sign-in/link?token=${bad}` });
          // The last character of a base64url part may carry unused bits: same bytes, same link.
          return (
            res.statusCode === 403 ||
            (res.statusCode === 200 &&
              Buffer.from(bad.split(".")[2]!, "base64url").equals(Buffer.from(s, "base64url")) &&
              bad.split(".")[0] === h &&
              bad.split(".")[1] === p)
          );
        },
      ),
      { numRuns: 80 },
    );
    // Still unused after all that: it works once.
    expect((await postLink(app, token, from)).statusCode).toBe(303);
    await app.close();
    await veto.close();
  });

  it("a link for another reviewer's approval, a link past its approval's expiry, and one from another site are refused", async () => {
    const { app, veto } = await open({ ttlMs: 1_500 });
    const id = await pending(veto);
    const globex = await veto.protect(write({ amount: 30000, tenantId: "globex" }, { tenantId: "globex" }));
    // A link for the globex approver cannot be made for an acme approver.
    await expect(app.signInLinks!.linkFor(APPROVER, globex.id)).rejects.toMatchObject({
      code: expect.stringMatching(/not_an_approver|approval_not_required/),
    });
    const token = new URL(await app.signInLinks!.linkFor(APPROVER, id)).searchParams.get("token")!;
    const from = await linkPage(app, token);
    const cross = await postLink(app, token, from, { origin: "https://evil.example" });
    expect(cross.statusCode).toBe(403);
    await new Promise((r) => setTimeout(r, 2_100));
    const late = await postLink(app, token, from);
    expect(late.statusCode).toBe(410);
    expect(late.body).toContain("expired");
    await app.close();
    await veto.close();
  });

  it("on PostgreSQL a used link is refused by every service on the schema, and after a restart", async () => {
    const schema = db.schema("inbox_links");
    const storeA = await PostgresStore.connect({ connectionString: pgUrl(), schema, migrate: true });
    const a = await open({ store: storeA });
    const id = await pending(a.veto);
    const token = new URL(await a.app.signInLinks!.linkFor(APPROVER, id)).searchParams.get("token")!;
    const storeB = await PostgresStore.connect({ connectionString: pgUrl(), schema });
    const b = await open({ store: storeB });
    const from = await linkPage(a.app, token);
    const redeem = (app: App) => postLink(app, token, from);
    const results = await Promise.all([redeem(a.app), redeem(b.app), redeem(a.app), redeem(b.app)]);
    expect(results.map((r) => r.statusCode).sort()).toEqual([303, 410, 410, 410]);
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM "${schema}".used_tokens`);
    expect(rows[0].n).toBe(1);
    for (const x of [a, b]) {
      await x.app.close();
      await x.veto.close();
    }
    await storeA.close();
    const storeC = await PostgresStore.connect({ connectionString: pgUrl(), schema });
    const c = await open({ store: storeC });
    expect((await redeem(c.app)).statusCode).toBe(410);
    await c.app.close();
    await c.veto.close();
    await storeB.close();
    await storeC.close();
  });
});
