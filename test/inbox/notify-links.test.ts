// The webhook notifier hands each listed approver a one-time sign-in link to
// the inbox (docs/approvals.md "Notifications", docs/inbox.md "Sign-in"): a
// real local receiver takes the notification; a real HTTP client follows
// each link, which signs that reviewer in for that decision only, once. Both
// as a library (createApprovalServer + webhookNotifier + notifyApprovals) and
// as `veto serve` in a process of its own on a real PostgreSQL.
import { spawn, type ChildProcess } from "node:child_process";
import { request as httpRequest } from "node:http";
import { createServer } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { InMemoryStore, type VetoStore } from "../../adapter/history/store.js";
import { PostgresStore } from "../../adapter/postgres/store.js";
import { approvalLink, createApprovalServer, notifyApprovals, webhookNotifier } from "../../adapter/server/index.js";
import { ACTOR, APPROVER, OTHER_APPROVER, makeVeto, requireBundle, requireCli } from "../helpers/index.js";
import { pending } from "../helpers/inbox.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";
import { startReceiver, type Receiver } from "../helpers/webhook-receiver.js";

const db = testDatabase();
const SECRET = "a test secret that is long enough to sign with";
const cleanup: (() => unknown)[] = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f();
  await db.dropSchemas();
});

interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A plain HTTP client (node:http): no browser, no cookie jar; cookies as given. */
function http(url: string, o: { method?: string; cookie?: string; form?: Record<string, string> } = {}): Promise<Response> {
  const body = o.form === undefined ? undefined : new URLSearchParams(o.form).toString();
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: o.method ?? "GET",
        headers: {
          ...(o.cookie === undefined ? {} : { cookie: o.cookie }),
          ...(body === undefined ? {} : { "content-type": "application/x-www-form-urlencoded", "content-length": Buffer.byteLength(body) }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const cookieOf = (r: Response): string => String(r.headers["set-cookie"]).split(";")[0]!;

/** Follow a sign-in link as a person would: open it, press "Sign in". */
async function follow(link: string): Promise<{ page: Response; signIn: Response }> {
  const page = await http(link);
  if (page.status !== 200) return { page, signIn: page };
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)![1]!;
  const token = new URL(link).searchParams.get("token")!;
  const signIn = await http(new URL("/sign-in/link", link).href, {
    method: "POST",
    cookie: cookieOf(page),
    form: { token, _csrf: csrf },
  });
  return { page, signIn };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Notification {
  type: string;
  link: string;
  approval: { decisionId: string; approvers: string[] };
  signInLinks: Record<string, string>;
}

async function notificationOf(receiver: Receiver, id: string): Promise<Notification> {
  await expect.poll(() => receiver.received.some((r) => r.headers["x-veto-decision-id"] === id), { timeout: 15_000 }).toBe(true);
  return JSON.parse(receiver.received.find((r) => r.headers["x-veto-decision-id"] === id)!.body) as Notification;
}

/** Every link of a notification: it signs in its own reviewer for its own decision, once. */
async function expectLinksWork(n: Notification, id: string, origin: string, other: string): Promise<void> {
  expect(n.link).toBe(`${origin}/approvals/${id}`);
  // One per person who may answer: the listed approvers but groups and the actor.
  const people = n.approval.approvers.filter((a) => !a.startsWith("group:") && a !== ACTOR).sort();
  expect(people).toEqual([APPROVER, OTHER_APPROVER].sort());
  expect(Object.keys(n.signInLinks).sort()).toEqual(people);
  for (const [reviewer, link] of Object.entries(n.signInLinks)) {
    expect(link.startsWith(`${origin}/sign-in/link?token=`), link).toBe(true);
    const { page, signIn } = await follow(link);
    expect(page.body).toContain(reviewer.replace(/&/g, "&#38;"));
    expect(signIn.status, reviewer).toBe(303);
    expect(signIn.headers.location).toBe(`/approvals/${id}`);
    const session = cookieOf(signIn);
    // The item link opens the card for this reviewer, who may answer it.
    const card = await http(n.link, { cookie: session });
    expect(card.status).toBe(200);
    expect(card.body).toContain(`data-decision-id="${id}"`);
    expect(card.body).toContain(reviewer.replace(/&/g, "&#38;"));
    // Bound to that decision: another pending approval is not this session's to see.
    expect((await http(`${origin}/approvals/${other}`, { cookie: session })).status).toBe(404);
    // Usable once: a second use is refused, and opens no session.
    const again = await follow(link);
    expect(again.signIn.status, `${reviewer} again`).toBe(410);
    expect(again.signIn.body).toContain("used already");
    expect(again.signIn.headers["set-cookie"]).toBeUndefined();
  }
}

describe("webhook notifications carry one-time sign-in links", () => {
  it("library: app.signInLinks through webhookNotifier, under the inbox's publicUrl", async () => {
    const receiver = await startReceiver(200);
    cleanup.push(() => receiver.close());
    const store: VetoStore = new InMemoryStore();
    const { veto } = await makeVeto({ store, clock: () => Date.now() });
    cleanup.push(() => veto.close());
    const port = await freePort();
    const origin = `http://127.0.0.1:${port}`;
    const app = await createApprovalServer({
      veto,
      store,
      auth: { devLogin: { approverIds: [APPROVER, OTHER_APPROVER] } },
      inbox: { secret: SECRET, publicUrl: origin },
    });
    await app.listen({ host: "127.0.0.1", port });
    cleanup.push(() => app.close());
    const notifier = webhookNotifier({
      url: receiver.url,
      link: approvalLink(origin, (id) => `/approvals/${id}`),
      signInLinks: app.signInLinks!,
      attempts: 1,
    });
    const watching = notifyApprovals({ store, notify: notifier.notify, sweepMs: 200 });
    cleanup.push(() => watching.close());
    await watching.ready;
    const id = await pending(veto);
    const other = await pending(veto, { recordId: "opp_456" });
    const n = await notificationOf(receiver, id);
    expect(n.type).toBe("approval.required");
    await expectLinksWork(n, id, origin, other);
  });

  it("refuses sign-in links with the Slack format (a channel is shared) and a signInLinks without linksFor", () => {
    const link = approvalLink("http://127.0.0.1:1");
    expect(() =>
      webhookNotifier({ url: "http://127.0.0.1:1/hook", link, format: "slack", signInLinks: { linksFor: async () => ({}) } }),
    ).toThrow(/signInLinks need format "json"/);
    expect(() => webhookNotifier({ url: "http://127.0.0.1:1/hook", link, signInLinks: {} as never })).toThrow(/linksFor/);
  });

  it("a link for an approval gone from the store is not sent: the notification is not built, and says why", async () => {
    const receiver = await startReceiver(200);
    cleanup.push(() => receiver.close());
    const notifier = webhookNotifier({
      url: receiver.url,
      link: approvalLink("http://127.0.0.1:1"),
      signInLinks: { linksFor: async (id) => Promise.reject(new Error(`no approval ${id}`)) },
    });
    const delivery = await notifier.notify({
      decisionId: "01GONE",
      status: "pending",
      tool: "crm.update",
      actorId: ACTOR,
      tenantId: "acme",
      environment: "production",
      arguments: {},
      reasons: [],
      approvers: [APPROVER],
      bundle: null,
      recentDenies: null,
      createdAt: new Date().toISOString(),
      expiresAt: new Date(Date.now() + 60_000).toISOString(),
    });
    expect(delivery).toMatchObject({ delivered: false, attempts: 0, error: "no approval 01GONE" });
    expect(receiver.received).toHaveLength(0);
  });

  for (const publicUrl of [undefined, "own"] as const) {
    it(`veto serve${publicUrl === undefined ? " (links under the listen address)" : " --public-url"} on PostgreSQL, the approval made in another process`, async () => {
      const receiver = await startReceiver(200);
      cleanup.push(() => receiver.close());
      const schema = db.schema("notify_links");
      const store = await PostgresStore.connect({ connectionString: pgUrl(), schema, migrate: true });
      cleanup.push(() => store.close());
      const { veto } = await makeVeto({ store, recordSink: store.recordSink(), clock: () => Date.now() });
      cleanup.push(() => veto.close());
      const port = await freePort();
      const origin = `http://127.0.0.1:${port}`;
      const child: ChildProcess = spawn(
        process.execPath,
        [
          requireCli(),
          "serve",
          ...["--bundle", requireBundle(), "--postgres", pgUrl(), "--schema", schema, "--listen", `127.0.0.1:${port}`, "--dev-login"],
          ...["--webhook-url", receiver.url],
          ...(publicUrl === undefined ? [] : ["--public-url", `${origin}/`]),
        ],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      cleanup.push(() => child.kill("SIGTERM"));
      let err = "";
      child.stderr!.on("data", (c: Buffer) => (err += c.toString("utf8")));
      await expect.poll(() => err.includes("veto serve: notifying"), { timeout: 20_000 }).toBe(true);
      const id = await pending(veto);
      const other = await pending(veto, { recordId: "opp_456" });
      await expectLinksWork(await notificationOf(receiver, id), id, origin, other);
    });
  }
});
