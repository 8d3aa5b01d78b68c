// Answers that could not be recorded or decided as given, over HTTP and in
// code: refused with what to fix, and nothing changes (no answer, no
// amendment, no record, no new decision). A server failure's details stay in
// its log. Dev login's header only from this machine. One reviewer cannot
// hold every live-update stream. Real bundle, in-memory store.
import fc from "fast-check";
import { request as httpRequest, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { VetoOptionsError, type Veto } from "../../adapter/index.js";
import { InMemoryStore } from "../../adapter/history/store.js";
import { createApprovalServer } from "../../adapter/server/index.js";
import { MAX_STREAMS_PER_REVIEWER } from "../../adapter/server/inbox/events.js";
import { APPROVER, OTHER_APPROVER, makeVeto, write, type MemorySink } from "../helpers/index.js";
import { devLogin, pending, type InboxApp } from "../helpers/inbox.js";

const SEED = 20261202;
const AS_APPROVER = { "x-veto-dev-reviewer": APPROVER, "content-type": "application/json" };

interface Opened {
  app: InboxApp;
  veto: Veto;
  store: InMemoryStore;
  sink: MemorySink;
  logLines: Record<string, unknown>[];
}
const opened: Opened[] = [];
afterEach(async () => {
  for (const o of opened.splice(0)) {
    await o.app.close();
    await o.veto.close();
  }
});

async function open(): Promise<Opened> {
  const store = new InMemoryStore();
  const { veto, sink, logLines } = await makeVeto({ store, clock: () => Date.now() });
  const app = await createApprovalServer({
    veto,
    store,
    auth: { devLogin: { approverIds: [APPROVER, OTHER_APPROVER] } },
    inbox: { secret: "a test secret that is long enough to sign with", publicUrl: "http://127.0.0.1:8787" },
  });
  const o = { app, veto, store, sink, logLines };
  opened.push(o);
  return o;
}

/** What an approval and the records look like, to compare before and after a refusal. */
async function state(o: Opened, id: string): Promise<unknown> {
  const pendingNow = (await o.store.listApprovals({ status: ["pending"] })).map((d) => [d.id, d.approval?.status]);
  return { decision: await o.store.getDecision(id), pendingNow, records: o.sink.records.length };
}

/** A JSON text escape of one UTF-16 code unit. */
const escape = (unit: number): string => `\\u${unit.toString(16).padStart(4, "0")}`;
const plain = fc.string({ unit: fc.constantFrom(..."abc xyz-_.,0123456789"), maxLength: 12 });
const loneUnit = fc.integer({ min: 0xd800, max: 0xdfff });
/** A JSON string literal holding one lone surrogate among ASCII text. */
const loneText = fc.tuple(plain, loneUnit, plain).map(([a, u, b]) => `"${a}${escape(u)}${b}"`);

const BASE = write({ amount: 7000 })["arguments"] as Record<string, unknown>;
/** The amended arguments as JSON text with one thing that breaks the input contract. */
const badArguments: fc.Arbitrary<{ kind: string; text: string }> = fc.oneof(
  loneText.map((s) => ({ kind: "lone surrogate in a value", text: JSON.stringify(BASE).replace('"2026-12-01"', s) })),
  fc.tuple(plain, loneUnit).map(([a, u]) => ({
    kind: "lone surrogate in a key",
    text: JSON.stringify(BASE).replace('"close_date"', `"${a}${escape(u)}"`),
  })),
  fc.integer({ min: 12, max: 40 }).map((depth) => ({
    kind: `nesting ${depth} deep`,
    text: JSON.stringify({ ...BASE, changes: { close_date: "2026-12-01", deep: "{}" } }).replace(
      '"{}"',
      `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`,
    ),
  })),
  fc.constantFrom("__proto__", "constructor", "prototype").chain((key) =>
    fc.boolean().map((top) => ({
      kind: `a ${key} key`,
      text: top
        ? JSON.stringify(BASE).replace("{", `{"${key}":{"x":1},`)
        : JSON.stringify(BASE).replace('"changes":{', `"changes":{"${key}":{"x":1},`),
    })),
  ),
  fc.constantFrom("1e400", "-1e400", '"7000"', "4999.999999999999", "null", "[7000]").map((amount) => ({
    kind: `amount ${amount}`,
    text: JSON.stringify(BASE).replace('"amount":7000', `"amount":${amount}`),
  })),
);

describe("bad input to an answer changes nothing", () => {
  it(`an amended call that breaks the input contract: 400 invalid_input, the approval still pending (generated, seed ${SEED})`, async () => {
    const o = await open();
    await fc.assert(
      fc.asyncProperty(badArguments, fc.option(plain, { nil: undefined }), async ({ kind, text }, note) => {
        const id = await pending(o.veto);
        const before = await state(o, id);
        const payload = `{"arguments":${text}${note === undefined ? "" : `,"note":${JSON.stringify(note)}`}}`;
        const res = await o.app.inject({ method: "POST", url: `/api/approvals/${id}/amend`, headers: AS_APPROVER, payload });
        expect(res.statusCode, `${kind}: ${res.body}`).toBe(400);
        if (kind === "a __proto__ key") {
          // Fastify's JSON parser refuses the body itself.
          expect(res.json().error.code, kind).toBe("malformed_request");
        } else {
          expect(res.json().error.code, kind).toBe("invalid_input");
          expect(res.json().error.message, kind).toMatch(/^amend: the amended call is not valid input: /);
        }
        expect(await state(o, id), kind).toEqual(before);
        // The approval can still be answered.
        const approved = await o.app.inject({ method: "POST", url: `/api/approvals/${id}/approve`, headers: AS_APPROVER, payload: "{}" });
        expect(approved.statusCode, kind).toBe(200);
      }),
      { seed: SEED, numRuns: 60 },
    );
  });

  it(`a note that is not well-formed text: 400 over HTTP, VetoOptionsError in code, nothing changed (generated, seed ${SEED + 1})`, async () => {
    const o = await open();
    const amended = JSON.stringify(BASE);
    await fc.assert(
      fc.asyncProperty(loneText, fc.constantFrom("approve", "reject", "amend"), async (note, kind) => {
        const id = await pending(o.veto);
        const before = await state(o, id);
        const payload = kind === "amend" ? `{"arguments":${amended},"note":${note}}` : `{"note":${note}}`;
        const res = await o.app.inject({ method: "POST", url: `/api/approvals/${id}/${kind}`, headers: AS_APPROVER, payload });
        expect(res.statusCode, `${kind} ${note}: ${res.body}`).toBe(400);
        expect(res.json().error).toMatchObject({
          code: "malformed_request",
          message: expect.stringMatching(/^note must be well-formed text/),
        });
        expect(await state(o, id)).toEqual(before);
        // The same note through the library: a typed error naming it, and nothing changed either.
        const text = JSON.parse(note) as string;
        const call =
          kind === "amend"
            ? o.veto.amend({ decisionId: id, reviewerId: APPROVER, arguments: BASE, note: text })
            : kind === "approve"
              ? o.veto.approve({ decisionId: id, reviewerId: APPROVER, note: text })
              : o.veto.reject({ decisionId: id, reviewerId: APPROVER, note: text });
        const error = await call.then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(VetoOptionsError);
        expect((error as Error).message).toMatch(new RegExp(`^${kind}: note holds a lone surrogate \\(code unit \\d+\\)`));
        expect(await state(o, id)).toEqual(before);
      }),
      { seed: SEED + 1, numRuns: 45 },
    );
  });

  it("an amendment refused in code for a call that breaks the input contract: VetoOptionsError, the approval pending", async () => {
    const o = await open();
    const id = await pending(o.veto);
    const before = await state(o, id);
    await expect(o.veto.amend({ decisionId: id, reviewerId: APPROVER, arguments: { ...BASE, amount: "7000" } })).rejects.toThrow(
      /^amend: the amended call is not valid input: .*arguments\.amount/,
    );
    expect(await state(o, id)).toEqual(before);
  });

  it("arguments that change between the check and the decision (a getter): refused all the same, the approval pending", async () => {
    const o = await open();
    const id = await pending(o.veto);
    let reads = 0;
    const args = {
      ...BASE,
      get amount(): unknown {
        return reads++ === 0 ? 7000 : "7000";
      },
    };
    await expect(o.veto.amend({ decisionId: id, reviewerId: APPROVER, arguments: args })).rejects.toThrow(
      /^amend: the amended call is not valid input: .*arguments\.amount/,
    );
    expect(reads).toBe(2);
    expect((await o.store.getDecision(id))?.approval?.status).toBe("pending");
    expect((await o.veto.approve({ decisionId: id, reviewerId: APPROVER })).status).toBe("approved");
  });
});

describe("a server failure's details stay in its log", () => {
  it("503 record_unavailable names no path; the log has the cause", async () => {
    const o = await open();
    const id = await pending(o.veto);
    o.sink.failing = new Error("/var/lib/veto/secret-place/decisions.log: ENOSPC, no space left on device");
    for (const kind of ["approve", "reject"]) {
      const res = await o.app.inject({ method: "POST", url: `/api/approvals/${id}/${kind}`, headers: AS_APPROVER, payload: "{}" });
      expect(res.statusCode).toBe(503);
      expect(res.json().error.code).toBe("record_unavailable");
      expect(res.body).not.toContain("secret-place");
      expect(res.json().error.message).toBe(`${id}: the answer could not be stored or recorded (the server's log says why)`);
    }
    const amend = await o.app.inject({
      method: "POST",
      url: `/api/approvals/${id}/amend`,
      headers: AS_APPROVER,
      payload: JSON.stringify({ arguments: BASE }),
    });
    expect(amend.statusCode).toBe(503);
    expect(amend.body).not.toContain("secret-place");
    expect(JSON.stringify(o.logLines)).toContain("secret-place");
    o.sink.failing = undefined;
    expect((await o.store.getDecision(id))?.approval?.status).toBe("pending");
  });
});

describe("dev login", () => {
  it("takes its header only from this machine: from any other address the API answers 401 and nothing changes", async () => {
    const o = await open();
    const id = await pending(o.veto);
    for (const remoteAddress of ["192.0.2.2", "10.0.0.7", "::ffff:203.0.113.9", "2001:db8::1", "127.0.0.1.evil"]) {
      const res = await o.app.inject({
        method: "POST",
        url: `/api/approvals/${id}/approve`,
        headers: AS_APPROVER,
        payload: "{}",
        remoteAddress,
      });
      expect(res.statusCode, remoteAddress).toBe(401);
      expect(res.json().error.code).toBe("unauthenticated");
      const list = await o.app.inject({ method: "GET", url: "/api/approvals", headers: AS_APPROVER, remoteAddress });
      expect(list.statusCode, remoteAddress).toBe(401);
    }
    expect((await o.store.getDecision(id))?.approval?.status).toBe("pending");
    for (const remoteAddress of ["127.0.0.1", "::1", "::ffff:127.0.0.1"]) {
      const list = await o.app.inject({ method: "GET", url: "/api/approvals", headers: AS_APPROVER, remoteAddress });
      expect(list.statusCode, remoteAddress).toBe(200);
    }
  });

  it("takes it only for a loopback Host too: a page whose name resolves to 127.0.0.1 (DNS rebinding) is refused", async () => {
    const o = await open();
    for (const host of ["evil.example", "evil.example:8787", "127.0.0.1.nip.io", "localhost.evil.example", "[::2]:80"]) {
      const api = await o.app.inject({ method: "GET", url: "/api/approvals", headers: { ...AS_APPROVER, host } });
      expect(api.statusCode, host).toBe(401);
      const page = await o.app.inject({ method: "GET", url: `/dev-login?reviewer=${encodeURIComponent(APPROVER)}`, headers: { host } });
      expect(page.statusCode, host).toBe(403);
    }
    for (const host of ["localhost", "localhost:8787", "LOCALHOST:1", "127.0.0.1:8787", "127.1.2.3", "[::1]:8787", "[::1]"]) {
      const api = await o.app.inject({ method: "GET", url: "/api/approvals", headers: { ...AS_APPROVER, host } });
      expect(api.statusCode, host).toBe(200);
    }
  });
});

describe("live-update streams", () => {
  it(`one reviewer holds at most ${MAX_STREAMS_PER_REVIEWER}: a new one ends their oldest, and other reviewers still get theirs`, async () => {
    const o = await open();
    await o.app.listen({ host: "127.0.0.1", port: 0 });
    const { port } = o.app.server.address() as AddressInfo;
    const mine = await devLogin(o.app, APPROVER);
    const theirs = await devLogin(o.app, OTHER_APPROVER);
    const stream = (cookie: string) =>
      new Promise<{ res: IncomingMessage; ended: Promise<string> }>((resolve, reject) => {
        const req = httpRequest({ host: "127.0.0.1", port, path: "/events", headers: { cookie } }, (res) => {
          let text = "";
          res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
          const ended = new Promise<string>((done) => res.on("end", () => done(text)).on("close", () => done(text)));
          resolve({ res, ended });
        });
        req.on("error", reject);
        req.end();
      });
    const opens = [];
    for (let i = 0; i < MAX_STREAMS_PER_REVIEWER + 4; i++) opens.push(await stream(mine));
    expect(opens.every((s) => s.res.statusCode === 200)).toBe(true);
    // The first four were ended by the server when the later ones opened, told why (their pages stop listening).
    for (const text of await Promise.all(opens.slice(0, 4).map((s) => s.ended))) expect(text).toMatch(/event: evicted\ndata: \{\}\n\n$/);
    const other = await stream(theirs);
    expect(other.res.statusCode).toBe(200);
    // The later ones are still open.
    expect(opens.slice(4).some((s) => s.res.complete)).toBe(false);
    for (const s of [...opens, other]) s.res.destroy();
  });
});
