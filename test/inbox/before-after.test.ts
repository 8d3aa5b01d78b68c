// Before and after, and amending in the inbox (docs/inbox.md), without a
// browser: the server's readRecord beside the new values and the bound
// record state, every way the hook can fail, hostile current values, and
// the amend form's outcomes and refusals, on the real bundle and store.
// browser.test.ts drives the same in Chromium.
import { afterEach, describe, expect, it } from "vitest";
import { InMemoryStore } from "../../adapter/history/store.js";
import { createApprovalServer, type ReadRecord, type ReadRecordCall } from "../../adapter/server/index.js";
import type { Veto } from "../../adapter/index.js";
import { VetoOptionsError } from "../../adapter/common/errors.js";
import { ACTOR, APPROVER, OTHER_APPROVER, makeVeto } from "../helpers/index.js";
import { FORM, csrfOf, devLogin, form, pending, type InboxApp as App } from "../helpers/inbox.js";
import { OWN_TAGS, hostileStrings, seedOf, tagsIn } from "./hostile.js";
import fc from "fast-check";
import { cut } from "../../adapter/server/record-view.js";

const SECRET = "a test secret that is long enough to sign with";

const opened: { app: App; veto: Veto }[] = [];
afterEach(async () => {
  for (const { app, veto } of opened.splice(0)) {
    await app.close();
    await veto.close();
  }
});

/** The record's state as the app keeps it: what recordState binds and readRecord reads. */
const versions = new Map<string, string>();

async function open(
  o: { readRecord?: ReadRecord; readRecordTimeoutMs?: number; ttlMs?: number; recordState?: boolean } = {},
): Promise<{ app: App; veto: Veto; store: InMemoryStore }> {
  const store = new InMemoryStore();
  const { veto } = await makeVeto({
    store,
    clock: () => Date.now(),
    ...(o.ttlMs === undefined ? {} : { approvalTtlMs: o.ttlMs }),
    ...(o.recordState === false ? {} : { recordState: (call) => versions.get((call.arguments as { recordId?: string }).recordId ?? "") }),
  });
  const app = await createApprovalServer({
    veto,
    store,
    auth: { devLogin: { approverIds: [APPROVER, OTHER_APPROVER, ACTOR] } },
    inbox: { secret: SECRET, publicUrl: "http://127.0.0.1:8787" },
    ...(o.readRecord === undefined ? {} : { readRecord: o.readRecord }),
    ...(o.readRecordTimeoutMs === undefined ? {} : { readRecordTimeoutMs: o.readRecordTimeoutMs }),
  });
  opened.push({ app, veto });
  return { app, veto, store };
}

/** The card of `id` in a page. */
function cardIn(html: string, id: string): string {
  const start = html.indexOf(`<article class="card`, html.indexOf(`id="approval-${id}"`) - 60);
  expect(start, `card ${id}`).toBeGreaterThanOrEqual(0);
  return html.slice(start, html.indexOf("</article>", start) + 10);
}

const CURRENT = { close_date: "2026-10-01", next_step: "legal review", amount: 45_000 };
const reader =
  (fields: Record<string, unknown> = CURRENT): ReadRecord =>
  (call) => {
    const id = (call.arguments as { recordId?: string }).recordId ?? "";
    const state = versions.get(id);
    return { fields, ...(state === undefined ? {} : { state }) };
  };

describe("before and after", () => {
  it("the card shows each changed field's current value beside the new one, and the state both were read at", async () => {
    versions.set("opp_ba1", "v7");
    const seen: ReadRecordCall[] = [];
    const { app, veto, store } = await open({
      readRecord: (call) => {
        seen.push(call);
        return reader()(call);
      },
    });
    const id = await pending(veto, { recordId: "opp_ba1", changes: { close_date: "2026-12-01", stage_note: "x" } });
    expect((await store.getDecision(id))?.recordState).toBe("v7");
    const cookie = await devLogin(app);
    const card = cardIn((await app.inject({ method: "GET", url: "/", headers: { cookie } })).body, id);
    expect(card).toMatch(/<th scope="row">close_date<\/th><td class="current">2026-10-01<\/td><td class="new">2026-12-01<\/td>/);
    expect(card).toMatch(/<th scope="row">stage_note<\/th><td class="current"><em>not set<\/em><\/td><td class="new">x<\/td>/);
    // Only the changed fields: the record's others are not shown.
    expect(card).not.toContain("legal review");
    expect(card).toMatch(/Record state at the request<\/dt><dd><code>v7<\/code>/);
    expect(card).toContain("Current values read at state <code>v7</code>, the state the approval is bound to.");
    expect(card).not.toContain("data-record-changed");
    // The hook got the call as stored, frozen: it cannot change what was decided.
    expect(seen[0]).toMatchObject({ decisionId: id, tool: "crm.update", arguments: { recordId: "opp_ba1" }, context: { actorId: ACTOR } });
    expect(Object.isFrozen(seen[0]!.arguments)).toBe(true);

    // The record moves on: the card warns, and says what an approval would meet.
    versions.set("opp_ba1", "v8");
    const changed = cardIn((await app.inject({ method: "GET", url: `/approvals/${id}`, headers: { cookie } })).body, id);
    expect(changed).toContain(
      "Record changed since the request: the approval is bound to state <code>v7</code>, the current values were read at <code>v8</code>.",
    );
    expect(changed).toContain("record_changed");
    // The JSON API's item carries the same view.
    const item = await app.inject({ method: "GET", url: `/api/approvals/${id}`, headers: { "x-veto-dev-reviewer": APPROVER } });
    expect(item.json()).toMatchObject({
      recordState: "v7",
      current: { available: true, fields: { close_date: "2026-10-01" }, state: "v8", stateChanged: true, masked: [], truncated: [] },
    });
    expect(item.json().current.fields).not.toHaveProperty("stage_note");
    // Answered: no current side, the hook is not asked.
    seen.length = 0;
    await veto.reject({ decisionId: id, reviewerId: APPROVER });
    const after = await app.inject({ method: "GET", url: `/api/approvals/${id}`, headers: { "x-veto-dev-reviewer": APPROVER } });
    expect(after.json()).not.toHaveProperty("current");
    await app.inject({ method: "GET", url: `/approvals/${id}`, headers: { cookie } });
    expect(seen).toEqual([]);
  });

  it("a state but none bound, none read, a sensitive field, a prototype-named field: said as they are", async () => {
    versions.delete("opp_ba2");
    const { app, veto } = await open({
      readRecord: () => ({ fields: { close_date: "2026-10-01", discount_pct: 40 }, state: "etag-1" }),
    });
    const id = await pending(veto, {
      recordId: "opp_ba2",
      changes: { close_date: "2026-12-01", discount_pct: 10, toString: 1, hasOwnProperty: 2 },
    });
    const cookie = await devLogin(app);
    const card = cardIn((await app.inject({ method: "GET", url: `/approvals/${id}`, headers: { cookie } })).body, id);
    expect(card).toContain("Current values read at state <code>etag-1</code> (the approval is bound to no state).");
    expect(card).not.toContain("Record state at the request");
    // discount_pct is sensitive on opportunities: its new value is masked, and so is its current one.
    expect(card).toMatch(
      /<th scope="row">discount_pct<\/th><td class="current"><span class="masked">masked \(sensitive field\)<\/span><\/td>/,
    );
    expect(card).not.toContain(">40<");
    // Names an object has by its prototype are not the record's fields.
    for (const field of ["toString", "hasOwnProperty"]) {
      expect(card).toMatch(new RegExp(`<th scope="row">${field}</th><td class="current"><em>not set</em></td>`));
    }
    const item = await app.inject({ method: "GET", url: `/api/approvals/${id}`, headers: { "x-veto-dev-reviewer": APPROVER } });
    expect(item.json().current).toEqual({
      available: true,
      fields: { close_date: "2026-10-01" },
      masked: ["discount_pct"],
      truncated: [],
      state: "etag-1",
    });
  });

  it("a hook that throws, hangs, or answers the wrong shape: 'current values unavailable', and the page and answers still work", async () => {
    const cyclic: Record<string, unknown> = {};
    cyclic["self"] = cyclic;
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    const answers: [string, () => unknown][] = [
      [
        "throws",
        () => {
          throw new Error("CRM down <script>");
        },
      ],
      ["rejects", () => Promise.reject(new Error("no"))],
      ["hangs", () => new Promise(() => {})],
      ["undefined", () => undefined],
      ["null", () => null],
      ["a number", () => 5],
      ["a string", () => "<b>fields</b>"],
      ["an array", () => [CURRENT]],
      ["fields only, not wrapped", () => CURRENT],
      ["fields null", () => ({ fields: null })],
      ["fields an array", () => ({ fields: [1] })],
      ["a state that is a number", () => ({ fields: CURRENT, state: 7 })],
      ["a revoked proxy", () => revoked.proxy],
      [
        "a getter that throws",
        () => ({
          get fields() {
            throw new Error("getter");
          },
        }),
      ],
      [
        "a thenable whose then throws",
        () => ({
          get then() {
            throw new Error("then");
          },
        }),
      ],
    ];
    let answer: () => unknown = () => undefined;
    const { app, veto, store } = await open({ readRecord: () => answer() as never, readRecordTimeoutMs: 150 });
    const cookie = await devLogin(app);
    for (const [name, a] of answers) {
      answer = a;
      const id = await pending(veto, { recordId: "opp_ba3" });
      const started = Date.now();
      const page = await app.inject({ method: "GET", url: "/", headers: { cookie } });
      expect(Date.now() - started, name).toBeLessThan(1_500);
      expect(page.statusCode, name).toBe(200);
      const card = cardIn(page.body, id);
      expect(card, name).toContain("(current values unavailable: ");
      expect(card, name).toContain('<td class="new">2026-12-01</td>');
      expect(card, name).not.toContain('<td class="current">');
      expect(card, name).not.toContain("<script>");
      const item = await app.inject({ method: "GET", url: `/api/approvals/${id}`, headers: { "x-veto-dev-reviewer": APPROVER } });
      expect(item.statusCode, name).toBe(200);
      expect(item.json().current, name).toMatchObject({ available: false });
      // Answering never waits on it or fails by it.
      const answered = await app.inject({
        method: "POST",
        url: `/approvals/${id}/approve`,
        headers: { ...FORM, cookie },
        payload: form({ _csrf: csrfOf(page.body) }),
      });
      expect(answered.statusCode, name).toBe(303);
      expect((await store.getDecision(id))?.approval?.status, name).toBe("approved");
    }
  });

  it("a slow hook delays a page of many cards once, by its timeout, not once per card", async () => {
    const { app, veto } = await open({ readRecord: () => new Promise(() => {}), readRecordTimeoutMs: 300 });
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await pending(veto, { recordId: `opp_slow${i}` }));
    const cookie = await devLogin(app);
    const started = Date.now();
    const page = await app.inject({ method: "GET", url: "/", headers: { cookie } });
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(1_500);
    for (const id of ids) expect(cardIn(page.body, id)).toContain("current values unavailable: readRecord did not answer within 300 ms");
  });

  it(`hostile current values and states (generated, VETO_SEED) are escaped and cut; the page keeps its own markup`, async () => {
    const seed = seedOf();
    const values = hostileStrings(seed, 60);
    let i = 0;
    const { app, veto } = await open({
      readRecord: () => {
        const v = values[i++ % values.length]!;
        const w = values[i++ % values.length]!;
        return { fields: { close_date: v, next_step: { nested: w, list: [v] } }, state: values[i++ % values.length]! };
      },
    });
    versions.set("opp_hostile", "v1");
    const cookie = await devLogin(app);
    for (let n = 0; n < 20; n++) {
      const id = await pending(veto, { recordId: "opp_hostile", changes: { close_date: "2026-12-01", next_step: "sign" } });
      const html = (await app.inject({ method: "GET", url: `/approvals/${id}`, headers: { cookie } })).body;
      const context = `seed ${seed} (VETO_SEED=${seed} to repeat), page ${n}`;
      for (const tag of tagsIn(html)) expect(OWN_TAGS.has(tag), `${context}: <${tag}> from a value`).toBe(true);
      expect(html.match(/<script/g)?.length, context).toBe(1);
      expect(html, context).not.toMatch(/<[a-z][^>]*\son[a-z]+\s*=/i);
      // Each current cell is bounded: at most 1,000 characters of value, escaped (an entity is at most 8).
      for (const m of html.matchAll(/<td class="current">([\s\S]*?)<\/td>/g)) {
        expect(m[1]!.length, context).toBeLessThan(1_000 * 8 + 200);
      }
      // A state longer than the bound is cut too.
      for (const m of html.matchAll(/read at (?:state )?<code>([\s\S]*?)<\/code>/g))
        expect(m[1]!.length, context).toBeLessThan(200 * 8 + 1);
      const item = await app.inject({ method: "GET", url: `/api/approvals/${id}`, headers: { "x-veto-dev-reviewer": APPROVER } });
      const current = item.json().current;
      expect(current.available, context).toBe(true);
      expect(Array.from(current.fields.close_date as string).length, context).toBeLessThanOrEqual(1_000);
    }
  });

  it("cut: the first N code points, never half a pair (generated)", () => {
    const seed = seedOf();
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 60 }), fc.integer({ min: 0, max: 70 }), (text, max) => {
        const points = Array.from(text);
        const c = cut(text, max);
        expect(c.text).toBe(points.slice(0, max).join(""));
        expect(c.cut).toBe(points.length > max);
      }),
      { seed, numRuns: 500 },
    );
    expect(cut("🙂".repeat(5_000), 1_000)).toEqual({ text: "🙂".repeat(1_000), cut: true });
  });

  it("options: readRecord must be a function on the server, not the inbox; the timeout is bounded", async () => {
    const store = new InMemoryStore();
    const { veto } = await makeVeto({ store });
    const base = { veto, store, auth: { devLogin: { approverIds: [APPROVER] } } };
    await expect(createApprovalServer({ ...base, readRecord: "yes" as never })).rejects.toThrow(VetoOptionsError);
    for (const readRecordTimeoutMs of [0, -1, 1.5, 60_001, Number.NaN]) {
      await expect(createApprovalServer({ ...base, readRecord: () => undefined, readRecordTimeoutMs })).rejects.toThrow(
        /readRecordTimeoutMs/,
      );
    }
    await expect(createApprovalServer({ ...base, inbox: { secret: SECRET, readRecord: (() => undefined) as never } })).rejects.toThrow(
      /option of createApprovalServer itself/,
    );
    await veto.close();
  });
});

describe("amending in the inbox", () => {
  const argsOf = (o: Record<string, unknown>): string =>
    JSON.stringify({ object: "opportunity", recordId: "opp_123", tenantId: "acme", changes: { close_date: "2026-12-01" }, ...o });

  async function amendForm(app: App, cookie: string, id: string, fields: Record<string, string>, headers: Record<string, string> = {}) {
    return await app.inject({
      method: "POST",
      url: `/approvals/${id}/amend`,
      headers: { ...FORM, cookie, ...headers },
      payload: form(fields),
    });
  }

  it("the pending card has the form, prefilled; amending approves the amended call as the session's reviewer", async () => {
    const { app, veto, store } = await open({ recordState: false });
    const id = await pending(veto);
    const cookie = await devLogin(app);
    const page = (await app.inject({ method: "GET", url: `/approvals/${id}`, headers: { cookie } })).body;
    const card = cardIn(page, id);
    expect(card).toMatch(new RegExp(`<form class="amend" method="post" action="/approvals/${id}/amend">`));
    expect(card).toMatch(/<label for="amend-arguments-[^"]+">Arguments \(JSON object\)<\/label>/);
    expect(card).toContain("&#34;recordId&#34;: &#34;opp_123&#34;");
    // A reviewerId in the form is ignored: the session says who amends.
    const res = await amendForm(app, cookie, id, {
      _csrf: csrfOf(page),
      arguments: argsOf({ amount: 7000 }),
      note: "7,000, not 9,000",
      reviewerId: OTHER_APPROVER,
    });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe(`/approvals/${id}`);
    const original = await store.getDecision(id);
    expect(original?.approval).toMatchObject({ status: "amended", reviewerId: APPROVER, note: "7,000, not 9,000" });
    const next = await store.getDecision(original!.approval!.amendedTo!);
    expect(next?.approval).toMatchObject({ status: "approved", reviewerId: APPROVER });
    expect(next?.amendment).toMatchObject({ from: id, by: APPROVER });
    expect((next?.review?.arguments as { amount?: number }).amount).toBe(7000);
    // The original's page: "Amended → decision X", and the amended call's card below it.
    const shown = (await app.inject({ method: "GET", url: `/approvals/${id}`, headers: { cookie } })).body;
    expect(cardIn(shown, id)).toContain(
      `Amended → decision <a href="/approvals/${next!.id}"><code>${next!.id}</code></a>: approved by the amendment; the waiting agent runs it.`,
    );
    const nextCard = cardIn(shown, next!.id);
    expect(nextCard).toContain(`data-status="approved"`);
    expect(nextCard).toMatch(
      new RegExp(`Amends</dt><dd>decision <a href="/approvals/${id}"><code>${id}</code></a>, amended by ${APPROVER}`),
    );
    // The script's request gets both cards at once.
    const id2 = await pending(veto);
    const page2 = (await app.inject({ method: "GET", url: `/approvals/${id2}`, headers: { cookie } })).body;
    const frag = await amendForm(
      app,
      cookie,
      id2,
      { _csrf: csrfOf(page2), arguments: argsOf({ amount: 6000 }) },
      { "x-veto-fragment": "1" },
    );
    expect(frag.statusCode).toBe(200);
    expect(frag.headers["x-veto-status"]).toBe("200");
    expect(frag.body.match(/<article /g)?.length).toBe(2);
    expect(frag.body).toContain(`data-outcome="amended"`);
    expect(frag.body).toMatch(/Amended → decision <a href="\/approvals\/[\w-]+"><code>[\w-]+<\/code><\/a>: approved by the amendment/);
    expect(frag.body).toContain('<p class="result" role="status" aria-live="polite" tabindex="-1">Amended by you.</p>');
  });

  it("an amended call the policy denies: the original ends amended, nothing is approved, the reason codes are shown", async () => {
    const { app, veto, store } = await open({ recordState: false });
    const id = await pending(veto);
    const cookie = await devLogin(app);
    const page = (await app.inject({ method: "GET", url: `/approvals/${id}`, headers: { cookie } })).body;
    const res = await amendForm(
      app,
      cookie,
      id,
      { _csrf: csrfOf(page), arguments: argsOf({ amount: 900_000 }) },
      { "x-veto-fragment": "1" },
    );
    expect(res.headers["x-veto-status"]).toBe("200");
    expect(res.body).toMatch(/denied by the policy \([^)]*amount_over_limit[^)]*\); nothing runs\./);
    // A denied call has no approval card: the original's alone.
    expect(res.body.match(/<article /g)?.length).toBe(1);
    const original = await store.getDecision(id);
    expect(original?.approval?.status).toBe("amended");
    expect((await store.getDecision(original!.approval!.amendedTo!))?.action).toBe("deny");
  });

  it("invalid JSON, a non-object, a masked value sent back, a long note: 400, the form again with what was sent, nothing changed", async () => {
    const { app, veto, store } = await open({ recordState: false });
    const id = await pending(veto, { object: "account", recordId: "acc_1", changes: { credit_limit: 90_000 } });
    const cookie = await devLogin(app);
    const page = (await app.inject({ method: "GET", url: `/approvals/${id}`, headers: { cookie } })).body;
    const csrf = csrfOf(page);
    const stored = (await store.getDecision(id))!.review!.arguments as { changes: { credit_limit: string } };
    const digest = stored.changes.credit_limit;
    expect(digest).toMatch(/^(hmac-)?sha256:/);
    expect(cardIn(page, id)).toContain("A masked value is refused.");
    const cases: [string, string, RegExp][] = [
      ["{ not json", "", /the arguments are not valid JSON \(.+\)\. Fix them and amend again; nothing was changed\./],
      ["", "", /not valid JSON/],
      ["[1,2]", "", /must be a JSON object .*not an array/],
      ['"x"', "", /not a string/],
      ["null", "", /not null/],
      ["42", "", /not a number/],
      [
        JSON.stringify({ object: "account", recordId: "acc_1", tenantId: "acme", changes: { credit_limit: digest } }),
        "",
        /arguments\.changes\.credit_limit still holds the masked value of a sensitive field/,
      ],
      [argsOf({}), "n".repeat(2_001), /note is longer than 2000 characters/],
    ];
    for (const [text, note, why] of cases) {
      const res = await amendForm(app, cookie, id, { _csrf: csrf, arguments: text, note });
      expect(res.statusCode, text).toBe(400);
      expect(res.body, text).toMatch(why);
      // The form again, open, holding what was sent (escaped).
      const card = cardIn(res.body, id);
      expect(card, text).toContain('<details class="amend" open>');
      expect(card, text).toContain(`>${text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)}</textarea>`);
      expect((await store.getDecision(id))?.approval?.status, text).toBe("pending");
    }
    // The JSON API refuses a masked value alike.
    const api = await app.inject({
      method: "POST",
      url: `/api/approvals/${id}/amend`,
      headers: { "x-veto-dev-reviewer": APPROVER },
      payload: { arguments: { object: "account", recordId: "acc_1", tenantId: "acme", changes: { credit_limit: digest } } },
    });
    expect(api.statusCode).toBe(400);
    expect(api.json().error.code).toBe("masked_value");
    expect((await store.getDecision(id))?.approval?.status).toBe("pending");
  });

  it("refused: without the CSRF token or from another origin (403), by the actor or a non-approver (404), twice (409), expired (410)", async () => {
    const { app, veto, store } = await open({ recordState: false, ttlMs: 60 * 60 * 1000 });
    const id = await pending(veto);
    const cookie = await devLogin(app);
    const csrf = csrfOf((await app.inject({ method: "GET", url: `/approvals/${id}`, headers: { cookie } })).body);
    const body = { arguments: argsOf({ amount: 7000 }) };
    expect((await amendForm(app, cookie, id, body)).statusCode).toBe(403);
    expect((await amendForm(app, cookie, id, { ...body, _csrf: "x" })).statusCode).toBe(403);
    const other = await devLogin(app, OTHER_APPROVER);
    expect(
      (
        await amendForm(app, cookie, id, {
          ...body,
          _csrf: csrfOf((await app.inject({ method: "GET", url: "/", headers: { cookie: other } })).body),
        })
      ).statusCode,
    ).toBe(403);
    for (const headers of [{ origin: "https://evil.example" }, { "sec-fetch-site": "cross-site" }] as Record<string, string>[]) {
      expect((await amendForm(app, cookie, id, { ...body, _csrf: csrf }, headers)).statusCode).toBe(403);
    }
    expect(
      (
        await app.inject({
          method: "POST",
          url: `/approvals/${id}/amend`,
          headers: { "content-type": "application/json", cookie },
          payload: { ...body, _csrf: csrf },
        })
      ).statusCode,
    ).toBe(403);
    // The actor (signed in, as the dev login lets it) and another tenant's approver never see it.
    const actor = await devLogin(app, ACTOR);
    const actorCsrf = csrfOf((await app.inject({ method: "GET", url: "/", headers: { cookie: actor } })).body);
    expect((await amendForm(app, actor, id, { ...body, _csrf: actorCsrf })).statusCode).toBe(404);
    expect((await store.getDecision(id))?.approval?.status).toBe("pending");

    expect((await amendForm(app, cookie, id, { ...body, _csrf: csrf })).statusCode).toBe(303);
    const twice = await amendForm(app, other, id, {
      ...body,
      _csrf: csrfOf((await app.inject({ method: "GET", url: "/", headers: { cookie: other } })).body),
    });
    expect(twice.statusCode).toBe(409);
    expect(twice.body).toContain("Not amended: already answered. Amended by user:crm-owner@acme.example");
    expect(twice.body).not.toContain('<form class="amend"');

    const short = await open({ recordState: false, ttlMs: 50 });
    const late = await pending(short.veto);
    const lateCookie = await devLogin(short.app);
    const lateCsrf = csrfOf((await short.app.inject({ method: "GET", url: `/approvals/${late}`, headers: { cookie: lateCookie } })).body);
    await new Promise((r) => setTimeout(r, 80));
    const expired = await amendForm(short.app, lateCookie, late, { ...body, _csrf: lateCsrf });
    expect(expired.statusCode).toBe(410);
    expect(expired.body).toContain("Not amended: this approval has expired.");
    expect((await short.store.getDecision(late))?.approval?.status).toBe("expired");
  });

  it("a session opened by a link amends; the amended call's card, outside the link's scope, is not shown, its outcome is", async () => {
    const { app, veto, store } = await open({ recordState: false });
    const id = await pending(veto);
    // A reviewer signed in by a link, limited to this decision, sees the original only.
    const link = new URL(await app.signInLinks!.linkFor(OTHER_APPROVER, id));
    const linkPage = await app.inject({ method: "GET", url: link.pathname + link.search });
    const linkCookie = String(linkPage.headers["set-cookie"]).split(";")[0]!;
    const signedIn = await app.inject({
      method: "POST",
      url: "/sign-in/link",
      headers: { ...FORM, cookie: linkCookie },
      payload: form({ token: link.searchParams.get("token")!, _csrf: csrfOf(linkPage.body) }),
    });
    const cookie = String(signedIn.headers["set-cookie"]).split(";")[0]!;
    const csrf = csrfOf((await app.inject({ method: "GET", url: `/approvals/${id}`, headers: { cookie } })).body);
    const res = await amendForm(app, cookie, id, { _csrf: csrf, arguments: argsOf({ amount: 8000 }) }, { "x-veto-fragment": "1" });
    expect(res.headers["x-veto-status"]).toBe("200");
    const original = await store.getDecision(id);
    const next = await store.getDecision(original!.approval!.amendedTo!);
    // The amender is an approver of the amended call too, so it is approved; the link's session does not see its card.
    expect(next?.approval?.status).toBe("approved");
    expect(res.body.match(/<article /g)?.length).toBe(1);
    expect(res.body).toContain(`Amended → decision <code>${next!.id}</code>: approved by the amendment`);
  });
});
