/**
 * `veto serve` end to end (docs/approvals.md): the built CLI as its own
 * process on a real PostgreSQL schema, agents in other processes
 * (approval-agent.mjs, the built dist/index.js) deciding with the real test
 * bundle, reviewers with bearer JWTs signed by a test key, a real local
 * webhook receiver. Every refusal leaves the approvals and records as they
 * were, and the server up.
 */
import { fork, spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, createSecretKey } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { SignJWT, UnsecuredJWT, importPKCS8 } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate } from "../../adapter/postgres/index.js";
import { verifyWebhookSignature } from "../../adapter/server/index.js";
import { ACTOR, APPROVER, FIXTURE_DATA, OTHER_APPROVER, ROOT, requireBundle, requireCli, runCli, write } from "../helpers/index.js";
import { pgUrl, requireDist, testDatabase } from "../helpers/postgres.js";
import { startReceiver, type Receiver } from "../helpers/webhook-receiver.js";

const AGENT = resolve(ROOT, "test/e2e/approval-agent.mjs");
const ISS = "https://idp.test";
const AUD = "veto-approvals";
const GROUP = "crm-owners";
const SECRET = "e2e-webhook-secret-0123456789abcdef";
const db = testDatabase();
let schema: string;
let dir: string;
let data: Record<string, unknown>;

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
const bearer = async (claims?: Record<string, unknown>): Promise<Record<string, string>> => ({
  authorization: `Bearer ${await token(claims)}`,
});

type Reply = { ok: true; value: unknown } | { ok: false; error: { name: string; code?: string; message: string } };

class Agent {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  #next = 0;
  readonly #waiting = new Map<number, (reply: Reply) => void>();

  constructor() {
    this.child = fork(AGENT, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    let ready = (): void => {};
    this.ready = new Promise((r) => (ready = r));
    this.child.on("message", (m: { event?: string; id?: number } & Reply) => {
      if (m.event === "ready") ready();
      else if (m.id !== undefined) {
        this.#waiting.get(m.id)?.(m);
        this.#waiting.delete(m.id);
      }
    });
  }

  static async start(ttlMs?: number): Promise<Agent> {
    const agent = new Agent();
    agents.push(agent);
    await agent.ready;
    await agent.call("init", { url: pgUrl(), schema, data, ...(ttlMs === undefined ? {} : { ttlMs }) });
    return agent;
  }

  request(cmd: string, body: Record<string, unknown> = {}): Promise<Reply> {
    const id = ++this.#next;
    return new Promise((r) => {
      this.#waiting.set(id, r);
      this.child.send({ id, cmd, ...body });
    });
  }

  async call<T = unknown>(cmd: string, body: Record<string, unknown> = {}): Promise<T> {
    const reply = await this.request(cmd, body);
    if (!reply.ok) throw new Error(`agent ${cmd}: ${reply.error.code ?? reply.error.name}: ${reply.error.message}`);
    return reply.value as T;
  }
}
const agents: Agent[] = [];

let serve: ChildProcess;
let secondServe: ChildProcess;
let base: string;

/** `veto serve` as its own process; resolves once it listens and notifies. */
async function startServe(): Promise<[ChildProcess, string]> {
  const child = spawn(
    process.execPath,
    [
      requireCli(),
      "serve",
      ...["--bundle", requireBundle(), "--data", join(dir, "data.json")],
      ...["--postgres", pgUrl(), "--schema", schema, "--listen", "127.0.0.1:0"],
      ...["--jwt-public-key", join(dir, "jwt.pem"), "--jwt-issuer", ISS, "--jwt-audience", AUD, "--groups-claim", "groups"],
      ...["--webhook-url", receiver.url, "--webhook-secret-file", join(dir, "webhook-secret")],
      ...["--public-url", "https://veto.example.com/review"],
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  const address = await new Promise<string>((resolvePromise, reject) => {
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(stderr);
      if (m !== null && stderr.includes("veto serve: notifying")) resolvePromise(m[1]!);
    });
    child.on("exit", (code) => reject(new Error(`veto serve exited ${code}: ${stderr}`)));
  });
  return [child, address];
}
let receiver: Receiver;

beforeAll(async () => {
  requireBundle();
  requireDist();
  requireCli();
  schema = db.schema("serve");
  await migrate({ connectionString: pgUrl(), schema });
  dir = mkdtempSync(join(tmpdir(), "veto-serve-"));
  // The fixture's data with a group among acme's approvers.
  data = JSON.parse(readFileSync(FIXTURE_DATA, "utf8")) as Record<string, unknown>;
  const acme = (data as { veto: { config: { tenants: { acme: { approvers: string[]; actors: string[] } } } } }).veto.config.tenants.acme;
  acme.approvers = [...acme.approvers, `group:${GROUP}`];
  // An actor per approval: rejections count towards escalation, and must not deny the next test's call.
  acme.actors = [...acme.actors, ...Array.from({ length: 50 }, (_, i) => `agent:e2e-${i}`)];
  writeFileSync(join(dir, "data.json"), JSON.stringify(data));
  writeFileSync(join(dir, "jwt.pem"), KEY.publicKey);
  writeFileSync(join(dir, "webhook-secret"), `${SECRET}\n`);
  receiver = await startReceiver(200);
  // Two services on the schema: answers and notifications must stay single.
  [serve, base] = await startServe();
  [secondServe] = await startServe();
}, 60_000);

afterAll(async () => {
  for (const a of agents) await a.request("close").catch(() => {});
  for (const child of [serve, secondServe]) {
    if (child === undefined || child.exitCode !== null) continue;
    const exited = new Promise((r) => child.on("exit", r));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  }
  await receiver?.close();
  await db.dropSchemas();
});

/** A raw HTTP request on a connection of its own: the path is sent byte for byte, never normalized. */
function raw(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string | Buffer,
): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolvePromise, reject) => {
    // A body always with its length: Node's client sends one of a GET without any, which the server then reads as a request of its own.
    const length = body === undefined ? {} : { "content-length": String(Buffer.byteLength(body)) };
    const req = httpRequest(
      { host: url.hostname, port: url.port, method, path, headers: { ...headers, ...length }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolvePromise({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      },
    );
    req.on("error", reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

const json = (headers: Record<string, string>, body: unknown = {}): [Record<string, string>, string] => [
  { ...headers, "content-type": "application/json" },
  JSON.stringify(body),
];

/** What any refusal must leave as it was: the schema's approvals and records. */
async function snapshot(): Promise<unknown> {
  const decisions = await db.pool.query(
    `SELECT id, approval_status, reviewer_id, note, answered_at_ms, executed_at_ms FROM "${schema}".decisions ORDER BY id`,
  );
  const records = await db.pool.query(`SELECT count(*)::int AS n FROM "${schema}".records`);
  return { decisions: decisions.rows, records: records.rows[0] };
}

let actors = 0;

/** A pending approval of a fresh actor; its id and the actor. */
async function pendingOf(agent: Agent, amount: number): Promise<string> {
  const actorId = `agent:e2e-${actors++}`;
  const d = await agent.call<{ id: string; action: string }>("protect", { call: write({ amount }, { actorId }) });
  expect(d.action).toBe("require_approval");
  lastActor = actorId;
  return d.id;
}
let lastActor = "";

async function expectUp(): Promise<void> {
  expect(serve.exitCode).toBeNull();
  expect((await raw("GET", "/api/approvals", await bearer())).status).toBe(200);
}

describe("veto serve with agents in other processes", () => {
  it("a waiting guard() is released by an API approval and runs once; a second claim is already_executed", async () => {
    const agent = await Agent.start();
    const other = await Agent.start();
    const call = write({ amount: 9101 });
    const guarded = agent.request("guard", { call });
    let item: { decisionId: string; status: string } | undefined;
    await expect
      .poll(
        async () => {
          const list = JSON.parse((await raw("GET", "/api/approvals?status=pending", await bearer())).body) as {
            approvals: { decisionId: string; status: string; arguments: { amount: number } }[];
          };
          item = list.approvals.find((a) => a.arguments.amount === 9101);
          return item !== undefined;
        },
        { timeout: 15_000 },
      )
      .toBe(true);
    const id = item!.decisionId;
    expect(await agent.call("runs")).toBe(0);
    // The service announced it, signed, with a link to its inbox page under --public-url and a
    // one-time sign-in link there for each listed approver.
    await expect.poll(() => receiver.received.some((r) => r.headers["x-veto-decision-id"] === id), { timeout: 15_000 }).toBe(true);
    const note = receiver.received.find((r) => r.headers["x-veto-decision-id"] === id)!;
    expect(verifyWebhookSignature({ secret: SECRET, header: note.headers["x-veto-signature"] as string, body: note.body })).toBe(true);
    expect(JSON.parse(note.body)).toMatchObject({
      link: `https://veto.example.com/review/approvals/${id}`,
      approval: { decisionId: id, status: "pending", actorId: ACTOR },
    });
    const signInLinks = (JSON.parse(note.body) as { signInLinks: Record<string, string> }).signInLinks;
    expect(Object.keys(signInLinks).sort()).toEqual([APPROVER, OTHER_APPROVER].sort());
    for (const link of Object.values(signInLinks))
      expect(link).toMatch(/^https:\/\/veto\.example\.com\/review\/sign-in\/link\?token=[\w.-]+$/);

    // A reviewer id in the body is ignored: the token names the reviewer.
    const res = await raw(
      "POST",
      `/api/approvals/${id}/approve`,
      ...json(await bearer(), { note: "go ahead", reviewerId: OTHER_APPROVER, reviewer_id: OTHER_APPROVER, sub: OTHER_APPROVER }),
    );
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ decisionId: id, status: "approved", reviewerId: APPROVER, note: "go ahead" });
    expect(await guarded).toMatchObject({ ok: true, value: 1 });
    // A resumed run, here and in another process, claims the same approval: refused, never run.
    for (const a of [agent, other]) {
      const again = await a.request("claim", { decisionId: id, call });
      expect(again).toMatchObject({ ok: false, error: { name: "ApprovalError", code: "already_executed" } });
    }
    expect(await agent.call("runs")).toBe(1);
    expect(await other.call("runs")).toBe(0);
    const shown = JSON.parse((await raw("GET", `/api/approvals/${id}`, await bearer())).body);
    expect(shown).toMatchObject({ status: "executed", reviewerId: APPROVER });
    expect(shown.executedAt).toBeTypeOf("string");
    const { rows } = await db.pool.query<{ type: string; result: unknown }>(
      `SELECT type, line::jsonb -> 'result' AS result FROM "${schema}".records WHERE decision_id = $1 ORDER BY seq`,
      [id],
    );
    expect(rows.map((r) => r.type)).toEqual(["decision", "approval", "execution", "execution", "execution"]);
    const approval = await db.pool.query(
      `SELECT line::jsonb ->> 'reviewer_id' AS reviewer FROM "${schema}".records WHERE decision_id = $1 AND type = 'approval'`,
      [id],
    );
    expect(approval.rows).toEqual([{ reviewer: APPROVER }]);
    expect(rows.slice(2).map((r) => r.result)).toEqual([{ execution: "claimed" }, { execution: "refused" }, { execution: "refused" }]);
    // Announced once, though the approval changed three times since.
    await new Promise((r) => setTimeout(r, 500));
    expect(receiver.received.filter((r) => r.headers["x-veto-decision-id"] === id)).toHaveLength(1);
  });

  it("two reviewers answering at once: one 200, one 409 with the answer", async () => {
    const agent = await Agent.start();
    for (let round = 0; round < 5; round++) {
      const id = await pendingOf(agent, 9200 + round);
      const [a, b] = await Promise.all([
        raw("POST", `/api/approvals/${id}/approve`, ...json(await bearer({ sub: APPROVER }))),
        raw("POST", `/api/approvals/${id}/reject`, ...json(await bearer({ sub: OTHER_APPROVER }))),
      ]);
      expect([a.status, b.status].sort()).toEqual([200, 409]);
      const lost = JSON.parse((a.status === 409 ? a : b).body);
      const won = JSON.parse((a.status === 200 ? a : b).body);
      expect(lost.error.code).toBe("already_answered");
      expect(lost.error.approval).toMatchObject({ status: won.status, reviewerId: won.reviewerId });
      const { rows } = await db.pool.query(`SELECT type FROM "${schema}".records WHERE decision_id = $1 ORDER BY seq`, [id]);
      expect(rows.map((r) => r.type)).toEqual(["decision", a.status === 200 ? "approval" : "rejection"]);
    }
  });

  it("410 for an expired approval, and nothing changes", async () => {
    const agent = await Agent.start(1_000);
    const id = await pendingOf(agent, 9300);
    await new Promise((r) => setTimeout(r, 1_300));
    const before = await snapshot();
    for (const kind of ["approve", "reject"]) {
      const res = await raw("POST", `/api/approvals/${id}/${kind}`, ...json(await bearer()));
      expect(res.status).toBe(410);
      expect(JSON.parse(res.body).error.code).toBe("approval_expired");
    }
    const after = (await snapshot()) as { decisions: { id: string; approval_status: string }[] };
    // The refusal may write down the expiry the clock already decided; nothing else.
    const expired = after.decisions.find((d) => d.id === id)!;
    expect(["pending", "expired"]).toContain(expired.approval_status);
    expect({ ...after, decisions: after.decisions.filter((d) => d.id !== id) }).toEqual({
      ...(before as object),
      decisions: (before as { decisions: { id: string }[] }).decisions.filter((d) => d.id !== id),
    });
    expect(JSON.parse((await raw("GET", `/api/approvals/${id}`, await bearer())).body).status).toBe("expired");
  });

  it("groups: a group claim answers as group:<name>; without it, or as a string, 403", async () => {
    const agent = await Agent.start();
    const id = await pendingOf(agent, 9400);
    const before = await snapshot();
    for (const claims of [{ sub: "user:grouped" }, { sub: "user:grouped", groups: GROUP }, { sub: "user:grouped", groups: ["other"] }]) {
      const res = await raw("POST", `/api/approvals/${id}/approve`, ...json(await bearer(claims)));
      expect(res.status).toBe(403);
      expect(JSON.parse(res.body).error.code).toBe("not_an_approver");
    }
    expect(await snapshot()).toEqual(before);
    const res = await raw("POST", `/api/approvals/${id}/approve`, ...json(await bearer({ sub: "user:grouped", groups: [GROUP] })));
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ status: "approved", reviewerId: `group:${GROUP}` });
  });

  it("every refusal: 4xx with an error code, nothing changed, the server stays up", async () => {
    const agent = await Agent.start();
    const id = await pendingOf(agent, 9500);
    const now = Math.floor(Date.now() / 1000);
    const hs256 = await new SignJWT({ sub: APPROVER })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer(ISS)
      .setAudience(AUD)
      .setExpirationTime("5m")
      .sign(createSecretKey(Buffer.from(KEY.publicKey)));
    const credentials: [string, Record<string, string>][] = [
      ["none", {}],
      ["expired", { authorization: `Bearer ${await token({}, { exp: now - 120 })}` }],
      ["not yet valid", { authorization: `Bearer ${await token({}, { nbf: now + 600 })}` }],
      ["no exp", { authorization: `Bearer ${await token({}, { exp: null })}` }],
      ["wrong issuer", { authorization: `Bearer ${await token({}, { iss: "https://evil.test" })}` }],
      ["wrong audience", { authorization: `Bearer ${await token({}, { aud: "other" })}` }],
      ["re-signed with another key", { authorization: `Bearer ${await token({}, { key: OTHER_KEY.privateKey })}` }],
      [
        "alg none",
        { authorization: `Bearer ${new UnsecuredJWT({ sub: APPROVER }).setIssuer(ISS).setAudience(AUD).setExpirationTime("5m").encode()}` },
      ],
      ["HS256 keyed with the public key", { authorization: `Bearer ${hs256}` }],
      ["not a bearer", { authorization: `Basic ${Buffer.from("a:b").toString("base64")}` }],
      ["dev header", { "x-veto-dev-reviewer": APPROVER }],
    ];
    const before = await snapshot();
    for (const [name, headers] of credentials) {
      for (const [method, path] of [
        ["GET", "/api/approvals"],
        ["GET", `/api/approvals/${id}`],
        ["POST", `/api/approvals/${id}/approve`],
        ["POST", `/api/approvals/${id}/reject`],
      ] as const) {
        const res = method === "POST" ? await raw(method, path, ...json(headers)) : await raw(method, path, headers);
        expect(res.status, `${name} ${method} ${path}`).toBe(401);
        expect(JSON.parse(res.body).error.code).toBe("unauthenticated");
      }
    }

    const h = await bearer();
    const refusals: [string, Promise<{ status: number; body: string }>, number, string?][] = [
      ["the actor", raw("POST", `/api/approvals/${id}/approve`, ...json(await bearer({ sub: lastActor }))), 403, "self_approval"],
      [
        "not an approver",
        raw("POST", `/api/approvals/${id}/approve`, ...json(await bearer({ sub: "user:mallory" }))),
        403,
        "not_an_approver",
      ],
      ["not an approver reads", raw("GET", `/api/approvals/${id}`, await bearer({ sub: "user:mallory" })), 404, "unknown_decision"],
      ["unknown", raw("POST", "/api/approvals/01UNKNOWNUNKNOWN/approve", ...json(h)), 404, "unknown_decision"],
      ["oversized note", raw("POST", `/api/approvals/${id}/approve`, ...json(h, { note: "x".repeat(20_000) })), 413, "body_too_large"],
      [
        "oversized body",
        raw("POST", `/api/approvals/${id}/approve`, { ...h, "content-type": "application/json" }, Buffer.alloc(2_000_000, 0x20)),
        413,
      ],
      ["long note", raw("POST", `/api/approvals/${id}/approve`, ...json(h, { note: "x".repeat(2_001) })), 400, "malformed_request"],
      ["text/plain", raw("POST", `/api/approvals/${id}/approve`, { ...h, "content-type": "text/plain" }, "ok"), 415],
      ["xml", raw("POST", `/api/approvals/${id}/approve`, { ...h, "content-type": "application/xml" }, "<a/>"), 415],
      ["form", raw("POST", `/api/approvals/${id}/approve`, { ...h, "content-type": "application/x-www-form-urlencoded" }, "note=x"), 415],
      ["multipart", raw("POST", `/api/approvals/${id}/approve`, { ...h, "content-type": "multipart/form-data; boundary=x" }, "--x--"), 415],
      ["bad JSON", raw("POST", `/api/approvals/${id}/approve`, { ...h, "content-type": "application/json" }, "{bad"), 400],
      ["array", raw("POST", `/api/approvals/${id}/approve`, ...json(h, [1])), 400],
      ["note not a string", raw("POST", `/api/approvals/${id}/approve`, ...json(h, { note: 5 })), 400],
      [
        "__proto__",
        raw("POST", `/api/approvals/${id}/approve`, { ...h, "content-type": "application/json" }, '{"__proto__":{"x":1}}'),
        400,
      ],
      ["unknown route", raw("GET", "/api/nothing", h), 404, "not_found"],
      // "/" is the inbox (docs/inbox.md); a path neither it nor the API serves is refused.
      ["unknown path", raw("GET", "/nothing", h), 404, "not_found"],
      ["unknown inbox action", raw("POST", `/approvals/${id}/delete`, ...json(h)), 404, "not_found"],
      ["DELETE", raw("DELETE", `/api/approvals/${id}`, h), 404],
      ["PUT", raw("PUT", `/api/approvals/${id}/approve`, ...json(h)), 404],
      ["GET approve", raw("GET", `/api/approvals/${id}/approve`, h), 404],
      ["trailing segment", raw("POST", `/api/approvals/${id}/approve/x`, ...json(h)), 404],
    ];
    for (const path of [
      `/api/approvals/..%2F${id}/approve`,
      `/api/approvals/%2e%2e/approvals/${id}/approve`,
      `/api/approvals/../approvals/${id}/approve`,
      `/api/approvals/${id}%00/approve`,
      `/api/approvals/${id}%20/approve`,
      `/api/approvals/${id}%2Fapprove`,
      `/api/approvals/${id.toLowerCase()}x/approve`,
      `/api/approvals/${"a".repeat(500)}/approve`,
      `/api/approvals/%F0%9F%98%80/approve`,
      `/api/approvals/%ZZ/approve`,
      `/api/approvals/${id};x=1/approve`,
    ]) {
      refusals.push([`path ${path}`, raw("POST", path, ...json(h)), -1]);
    }
    for (const [name, response, status, code] of await Promise.all(
      refusals.map(async ([name, p, status, code]) => [name, await p, status, code] as const),
    )) {
      if (status === -1) {
        expect(response.status, name).toBeGreaterThanOrEqual(400);
        expect(response.status, name).toBeLessThan(500);
      } else expect(response.status, name).toBe(status);
      // Always the service's error shape, whoever refused (the router, the body parser, a route).
      expect(JSON.parse(response.body).error.code, name).toMatch(/^[a-z_]+$/);
      if (code !== undefined) expect(JSON.parse(response.body).error.code, name).toBe(code);
    }
    // "/" is the inbox: the bearer token signs the reviewer in; without one, the sign-in page.
    const inbox = await raw("GET", "/", h);
    expect(inbox.status).toBe(200);
    expect(inbox.body).toContain(`data-decision-id="${id}"`);
    const anonymous = await raw("GET", "/", {});
    expect(anonymous.status).toBe(401);
    expect(anonymous.body).toContain("Sign in");
    expect(await snapshot()).toEqual(before);
    await expectUp();
    // After all that, the approval is still answerable.
    const res = await raw("POST", `/api/approvals/${id}/reject`, ...json(h, { note: "no" }));
    expect(res.status).toBe(200);
  });

  it("with two services on the schema, every approval was announced at most once, each signed", async () => {
    await new Promise((r) => setTimeout(r, 1_000));
    const announced = receiver.received.map((r) => r.headers["x-veto-decision-id"] as string);
    expect(announced.length).toBeGreaterThanOrEqual(5);
    expect(new Set(announced).size).toBe(announced.length);
    for (const r of receiver.received) {
      expect(verifyWebhookSignature({ secret: SECRET, header: r.headers["x-veto-signature"] as string, body: r.body })).toBe(true);
    }
    const { rows } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${schema}".approval_notifications WHERE delivered AND claims = 1`,
    );
    expect(rows[0]!.n).toBe(announced.length);
  });

  it("generated requests around a pending approval: never a 5xx, never an answer without a valid credential", async () => {
    const agent = await Agent.start();
    const id = await pendingOf(agent, 9600);
    const seed = Number(process.env.VETO_SEED ?? Math.floor(Math.random() * 2 ** 31));
    let a = seed >>> 0;
    const random = (): number => {
      a = (a * 1664525 + 1013904223) >>> 0;
      return a / 2 ** 32;
    };
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const good = await bearer();
    const before = await snapshot();
    const pieces = [id, id.toLowerCase(), "..", "%2e%2e", "%2F", "%00", "approve", "reject", "", "x".repeat(200), "%C0%AE", "?status=x"];
    for (let i = 0; i < 120; i++) {
      const path = `/api/approvals/${Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick(pieces)).join(pick(["/", "", "%2F"]))}`;
      const method = pick(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
      const headers: Record<string, string> = {
        ...pick<Record<string, string>>([{}, { authorization: "Bearer a.b.c" }, { authorization: good.authorization!.slice(0, -2) }]),
        ...pick<Record<string, string>>([
          {},
          { "content-type": "application/json" },
          { "content-type": "text/plain" },
          { "content-type": "application/json; charset=latin1" },
        ]),
      };
      const body = pick([undefined, "", "{}", '{"note":"x"}', "\u0000", "[".repeat(2_000)]);
      const res = await raw(method, path, headers, body).catch((e: Error) => {
        throw new Error(`seed ${seed}: ${method} ${path} ${JSON.stringify(headers)} ${JSON.stringify(body)}: ${e.message}`);
      });
      expect(res.status, `seed ${seed}: ${method} ${path}`).toBeGreaterThanOrEqual(400);
      expect(res.status, `seed ${seed}: ${method} ${path}`).toBeLessThan(500);
      expect(JSON.parse(res.body).error.code, `seed ${seed}: ${method} ${path}`).toMatch(/^[a-z_]+$/);
    }
    expect(await snapshot(), `seed ${seed}`).toEqual(before);
    await expectUp();
  });
});

describe("veto serve refuses notification flags that cannot work", () => {
  it.each([
    [["--webhook-format", "xml"], "--webhook-format must be json or slack"],
    [["--webhook-secret-file", "/nonexistent"], "needs --webhook-url"],
    [["--public-url", "ftp://x.example"], "publicUrl must be http(s)"],
    [["--webhook-url", "http://127.0.0.1:9/hook", "--public-url", "ftp://x.example"], "publicUrl must be http(s)"],
    [["--webhook-url", "gopher://x.example/hook"], "url must be http(s)"],
    [["--webhook-url", "http://127.0.0.1:9/hook", "--webhook-secret-file", "SHORT"], "at least 16 bytes"],
  ])("%j", (flags, message) => {
    if (flags.includes("SHORT")) writeFileSync(join(dir, "short-secret"), "short\n");
    flags = flags.map((f) => (f === "SHORT" ? join(dir, "short-secret") : f));
    const run = runCli(["serve", "--bundle", requireBundle(), "--log", join(dir, "answers.log"), "--dev-login", ...flags]);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(message);
  });

  it("--schema without --postgres", () => {
    const run = runCli(["serve", "--bundle", requireBundle(), "--log", join(dir, "answers.log"), "--dev-login", "--schema", "s"]);
    expect(run).toMatchObject({ status: 2, stderr: expect.stringContaining("--schema needs --postgres") });
  });
});
