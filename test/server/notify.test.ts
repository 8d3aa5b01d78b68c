// Notifications (docs/approvals.md, "Notifications"): the onApprovalRequired
// hook and the webhook notifier against a real local HTTP receiver; the
// approval service's notifications from several instances on a real
// PostgreSQL, each approval announced once.
import { createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import fc from "fast-check";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { InMemoryStore } from "../../adapter/history/store.js";
import { PostgresStore } from "../../adapter/postgres/store.js";
import { PostgresNotificationLedger } from "../../adapter/postgres/notifications.js";
import { migrate } from "../../adapter/postgres/migrations.js";
import {
  approvalLink,
  itemOfEvent,
  notifyApprovals,
  signWebhook,
  verifyWebhookSignature,
  webhookNotifier,
  type ApprovalItem,
} from "../../adapter/server/index.js";
import type { ApprovalRequiredEvent } from "../../adapter/index.js";
import { APPROVAL_HOOK_WARN_MS } from "../../adapter/veto.js";
import { ACTOR, APPROVER, ROOT, captureLogger, makeVeto, write } from "../helpers/index.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";
import { startReceiver, type Receiver } from "../helpers/webhook-receiver.js";

const SECRET = "a-webhook-secret-of-32-bytes-len";
const LINK = approvalLink("https://veto.example.com/reviews/");
const receivers: Receiver[] = [];
afterEach(async () => {
  for (const r of receivers.splice(0)) await r.close();
});
const db = testDatabase();
afterAll(() => db.dropSchemas());

async function receiver(...statuses: number[]): Promise<Receiver> {
  const r = await startReceiver(...statuses);
  receivers.push(r);
  return r;
}

/** A veto whose require_approval decisions are announced to `url`; its events kept. */
async function notifyingVeto(url: string, extra: { attempts?: number; format?: "json" | "slack" } = {}) {
  const { logger, lines } = captureLogger();
  const notifier = webhookNotifier({ url, secret: SECRET, link: LINK, backoffMs: 5, logger, ...extra });
  const store = new InMemoryStore();
  const deliveries: Promise<void>[] = [];
  const made = await makeVeto({
    store,
    logger,
    onApprovalRequired: (event) => {
      const p = notifier.onApprovalRequired(event);
      deliveries.push(p);
      return p;
    },
  });
  return { ...made, store, notifier, lines, deliveries };
}

describe("signatures", () => {
  it("the documented recipe (HMAC-SHA-256 of `<t>.<body>`, hex) verifies; any change to body, time or secret does not", () => {
    const seed = Number(process.env.VETO_SEED ?? Date.now() % 2 ** 31);
    fc.assert(
      fc.property(
        fc.string({ minLength: 16, maxLength: 64 }),
        fc.string({ maxLength: 400 }),
        fc.integer({ min: 1_600_000_000, max: 2_000_000_000 }),
        fc.nat({ max: 399 }),
        (secret, body, t, flip) => {
          const header = signWebhook(secret, body, t);
          const recipe = createHmac("sha256", secret).update(`${t}.${body}`).digest("hex");
          expect(header).toBe(`t=${t},v1=${recipe}`);
          expect(verifyWebhookSignature({ secret, header, body, nowS: t + 10 })).toBe(true);
          expect(verifyWebhookSignature({ secret, header, body, nowS: t + 301 })).toBe(false);
          expect(verifyWebhookSignature({ secret: `${secret}x`, header, body, nowS: t })).toBe(false);
          expect(verifyWebhookSignature({ secret, header: `t=${t + 1},v1=${recipe}`, body, nowS: t })).toBe(false);
          const at = flip % Math.max(1, body.length);
          const changed = body.length === 0 ? "x" : body.slice(0, at) + String.fromCharCode(body.charCodeAt(at) ^ 1) + body.slice(at + 1);
          expect(verifyWebhookSignature({ secret, header, body: changed, nowS: t })).toBe(false);
        },
      ),
      { seed, numRuns: 200 },
    );
    for (const header of [undefined, "", "t=1", "v1=00", "t=x,v1=00", `t=1,t=2,v1=${"0".repeat(64)}`]) {
      expect(verifyWebhookSignature({ secret: SECRET, header, body: "{}", nowS: 1 })).toBe(false);
    }
  });
});

/** The verification recipe of docs/approvals.md, as printed there. */
function documentedVerify(): (secret: string, header: string | undefined, rawBody: string | Buffer) => boolean {
  const doc = readFileSync(resolve(ROOT, "docs/approvals.md"), "utf8");
  const block = [...doc.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes("function verify"));
  expect(block, "docs/approvals.md has the verification recipe").toBeDefined();
  const body = block!.replace(/^import .*$/m, "");
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- the documented snippet, run as printed
  return new Function("createHmac", "timingSafeEqual", `${body}\nreturn verify;`)(createHmac, timingSafeEqual) as never;
}

describe("webhook notifier", () => {
  it("deliveries verify with the recipe printed in docs/approvals.md, and a changed body does not", async () => {
    const r = await receiver(200);
    const notifier = webhookNotifier({ url: r.url, secret: SECRET, link: LINK });
    await notifier.notify(await someItem());
    const verify = documentedVerify();
    const [got] = r.received;
    expect(verify(SECRET, got!.headers["x-veto-signature"] as string, Buffer.from(got!.body))).toBe(true);
    expect(verify(SECRET, got!.headers["x-veto-signature"] as string, got!.body.replace("pending", "approved"))).toBe(false);
    expect(verify("another-secret-of-16-bytes", got!.headers["x-veto-signature"] as string, got!.body)).toBe(false);
    expect(verify(SECRET, undefined, got!.body)).toBe(false);
  });

  it("announces a require_approval decision once recorded: JSON with the item and its link, signed", async () => {
    const r = await receiver(200);
    const { veto, store, deliveries } = await notifyingVeto(r.url);
    const decision = await veto.protect(write({ amount: 9000 }));
    expect(decision.action).toBe("require_approval");
    await Promise.all(deliveries);
    expect(r.received).toHaveLength(1);
    const [got] = r.received;
    expect(got!.headers["content-type"]).toBe("application/json");
    expect(got!.headers["x-veto-event"]).toBe("approval.required");
    expect(got!.headers["x-veto-decision-id"]).toBe(decision.id);
    expect(verifyWebhookSignature({ secret: SECRET, header: got!.headers["x-veto-signature"] as string, body: got!.body })).toBe(true);
    const body = JSON.parse(got!.body);
    expect(body).toMatchObject({
      type: "approval.required",
      link: `https://veto.example.com/reviews/api/approvals/${decision.id}`,
      approval: {
        decisionId: decision.id,
        status: "pending",
        tool: "crm.update",
        actorId: ACTOR,
        tenantId: "acme",
        environment: "production",
        approvers: [...decision.approvers],
        reasons: decision.reasons.map((x) => ({ ...x })),
        bundle: { ...decision.bundle },
        createdAt: decision.timestamp,
      },
    });
    expect(body.approval.arguments.amount).toBe(9000);
    expect(body.approval.expiresAt).toBe(new Date((await store.getDecision(decision.id))!.approval!.expiresAtMs).toISOString());
    await veto.close();
  });

  it("retries on 500 with backoff, then succeeds: one delivery id, each attempt signed afresh", async () => {
    const r = await receiver(500, 503, 200);
    const { veto, deliveries, lines } = await notifyingVeto(r.url);
    const decision = await veto.protect(write({ amount: 9000 }));
    await Promise.all(deliveries);
    expect(r.received).toHaveLength(3);
    expect(new Set(r.received.map((x) => x.headers["x-veto-delivery"])).size).toBe(1);
    for (const x of r.received) {
      expect(verifyWebhookSignature({ secret: SECRET, header: x.headers["x-veto-signature"] as string, body: x.body })).toBe(true);
    }
    expect(lines.filter((l) => l["msg"] === "webhook attempt failed").map((l) => l["status"])).toEqual([500, 503]);
    expect(lines.some((l) => l["msg"] === "webhook notification delivered" && l["decision_id"] === decision.id)).toBe(true);
    await veto.close();
  });

  it("gives up after N attempts and logs it; the decision and approval are unchanged and still answerable", async () => {
    const r = await receiver(500);
    const { veto, store, deliveries, lines, sink } = await notifyingVeto(r.url, { attempts: 3 });
    const decision = await veto.protect(write({ amount: 9000 }));
    expect(decision.action).toBe("require_approval");
    await Promise.all(deliveries);
    expect(r.received).toHaveLength(3);
    const gaveUp = lines.filter((l) => l["msg"] === "webhook notification failed; giving up (the approval is unchanged)");
    expect(gaveUp).toHaveLength(1);
    expect(gaveUp[0]).toMatchObject({ decision_id: decision.id, attempts: 3, status: 500 });
    expect((await store.getDecision(decision.id))?.approval?.status).toBe("pending");
    expect(sink.records.map((x) => x.type)).toEqual(["decision"]);
    await expect(veto.approve({ decisionId: decision.id, reviewerId: APPROVER })).resolves.toMatchObject({ status: "approved" });
    await veto.close();
  });

  it("the delays double from backoffMs up to maxBackoffMs, jittered between half and all of each", async () => {
    for (const [jitter, expected] of [
      [0, [50, 75, 75]],
      [0.999, [100, 150, 150]],
    ] as const) {
      const r = await receiver(500, 500, 500, 200);
      const notifier = webhookNotifier({ url: r.url, link: LINK, backoffMs: 100, maxBackoffMs: 150, random: () => jitter });
      await expect(notifier.notify(await someItem())).resolves.toMatchObject({ delivered: true, attempts: 4 });
      const gaps = r.received.slice(1).map((x, i) => x.at - r.received[i]!.at);
      for (const [i, gap] of gaps.entries()) {
        expect(gap, `gap ${i} of ${JSON.stringify(gaps)}`).toBeGreaterThanOrEqual(expected[i]! - 5);
        expect(gap, `gap ${i} of ${JSON.stringify(gaps)}`).toBeLessThan(expected[i]! + 1_000);
      }
    }
  });

  it("a 4xx other than 408/429 is not retried; a redirect is not followed", async () => {
    const r = await receiver(404);
    const notifier = webhookNotifier({ url: r.url, secret: SECRET, link: LINK, backoffMs: 5 });
    const item = await someItem();
    await expect(notifier.notify(item)).resolves.toMatchObject({ delivered: false, attempts: 1, status: 404 });
    r.respond(302);
    await expect(notifier.notify(item)).resolves.toMatchObject({ delivered: false, attempts: 1, status: 302 });
    r.respond(429, 408, 204);
    await expect(notifier.notify(item)).resolves.toMatchObject({ delivered: true, attempts: 3, status: 204 });
    expect(r.received).toHaveLength(5);
  });

  it("an unreachable receiver: bounded attempts, never a rejection", async () => {
    const r = await receiver(200);
    const url = r.url;
    await r.close();
    receivers.length = 0;
    const { logger, lines } = captureLogger();
    const notifier = webhookNotifier({ url, secret: SECRET, link: LINK, attempts: 2, backoffMs: 5, timeoutMs: 500, logger });
    await expect(notifier.notify(await someItem())).resolves.toMatchObject({ delivered: false, attempts: 2 });
    expect(lines.some((l) => l["level"] === 50)).toBe(true);
  });

  it("Slack format: { text } with the link, values escaped so nothing is a mention or a link of its own", async () => {
    const r = await receiver(200);
    const notifier = webhookNotifier({ url: r.url, format: "slack", link: LINK });
    const item = { ...(await someItem()), actorId: "agent:<!channel>&co", tool: "crm.update" };
    await expect(notifier.notify(item)).resolves.toMatchObject({ delivered: true });
    const body = JSON.parse(r.received[0]!.body) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(["text"]);
    const text = body["text"] as string;
    expect(text).toContain(`<https://veto.example.com/reviews/api/approvals/${item.decisionId}|Review ${item.decisionId}>`);
    expect(text).toContain("agent:&lt;!channel&gt;&amp;co");
    expect(text).not.toContain("<!channel>");
    expect(text).toContain("crm.update");
    expect(text).toContain(item.expiresAt);
    // Unsigned without a secret (a Slack incoming webhook checks none).
    expect(r.received[0]!.headers["x-veto-signature"]).toBeUndefined();
  });

  it("refuses bad options with a VetoOptionsError", () => {
    for (const o of [
      { url: "ftp://x", link: LINK },
      { url: "not a url", link: LINK },
      { url: "http://x", link: LINK, secret: "short" },
      { url: "http://x", link: LINK, format: "xml" },
      { url: "http://x", link: LINK, attempts: 0 },
      { url: "http://x", link: LINK, attempts: 11 },
      { url: "http://x" },
    ]) {
      expect(() => webhookNotifier(o as never)).toThrow(/webhookNotifier/);
    }
    for (const u of ["javascript:alert(1)", "https://a.example/?q=1", "https://u:p@a.example/"]) {
      expect(() => approvalLink(u)).toThrow(/approvalLink/);
    }
    expect(approvalLink("https://a.example")({ decisionId: "01X" } as ApprovalItem)).toBe("https://a.example/api/approvals/01X");
  });
});

describe("onApprovalRequired", () => {
  it("a throwing hook, a rejecting hook and a hook that never ends change and delay no decision; failures are logged", async () => {
    for (const [hook, failures] of [
      [
        () => {
          throw new Error("hook exploded");
        },
        1,
      ],
      [
        async () => {
          throw new Error("hook rejected");
        },
        1,
      ],
      [() => new Promise<void>(() => {}), 0],
    ] as const) {
      const events: ApprovalRequiredEvent[] = [];
      const store = new InMemoryStore();
      const { veto, logLines } = await makeVeto({
        store,
        onApprovalRequired: (e) => {
          events.push(e);
          return hook();
        },
      });
      const started = performance.now();
      const decision = await veto.protect(write({ amount: 9000 }));
      expect(performance.now() - started).toBeLessThan(2_000);
      expect(decision.action).toBe("require_approval");
      await expect.poll(() => events.length).toBe(1);
      expect(itemOfEvent(events[0]!)).toMatchObject({ decisionId: decision.id, status: "pending", actorId: ACTOR, tenantId: "acme" });
      await new Promise((r) => setTimeout(r, 20));
      expect(logLines.filter((l) => l["msg"] === "onApprovalRequired hook failed")).toHaveLength(failures);
      expect((await store.getDecision(decision.id))?.approval?.status).toBe("pending");
      // Other verdicts do not call it.
      await veto.protect(write({ amount: 10 }));
      expect(events).toHaveLength(1);
      await veto.close();
    }
  });

  it("a hook still running after 10 s is logged; the decision had long been returned", async () => {
    const { veto, logLines } = await makeVeto({ onApprovalRequired: () => new Promise<void>(() => {}) });
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      const decision = await veto.protect(write({ amount: 9000 }));
      expect(decision.action).toBe("require_approval");
      await vi.advanceTimersByTimeAsync(APPROVAL_HOOK_WARN_MS - 1);
      expect(logLines.filter((l) => l["msg"] === "onApprovalRequired hook is still running")).toEqual([]);
      await vi.advanceTimersByTimeAsync(2);
      expect(logLines.filter((l) => l["msg"] === "onApprovalRequired hook is still running")).toMatchObject([
        { decision_id: decision.id, after_ms: APPROVAL_HOOK_WARN_MS },
      ]);
    } finally {
      vi.useRealTimers();
    }
    await veto.close();
  });

  it("logs the failing hook's error with the decision id", async () => {
    const { veto, logLines } = await makeVeto({
      onApprovalRequired: () => {
        throw new Error("hook exploded");
      },
    });
    const decision = await veto.protect(write({ amount: 9000 }));
    await expect
      .poll(() => logLines.find((l) => l["msg"] === "onApprovalRequired hook failed"))
      .toMatchObject({ decision_id: decision.id, err: { message: "hook exploded" } });
    await veto.close();
  });

  it("is not called when the decision could not be recorded (it was superseded by a deny)", async () => {
    const events: unknown[] = [];
    const { veto, sink } = await makeVeto({ onApprovalRequired: (e) => void events.push(e) });
    sink.failing = new Error("disk full");
    const decision = await veto.protect(write({ amount: 9000 }));
    expect(decision.action).toBe("deny");
    await new Promise((r) => setTimeout(r, 20));
    expect(events).toEqual([]);
    await veto.close();
  });
});

async function someItem(): Promise<ApprovalItem> {
  const events: ApprovalRequiredEvent[] = [];
  const { veto } = await makeVeto({ onApprovalRequired: (e) => void events.push(e) });
  await veto.protect(write({ amount: 9000 }));
  await expect.poll(() => events.length).toBe(1);
  await veto.close();
  return itemOfEvent(events[0]!);
}

describe("the approval service's notifications on PostgreSQL", () => {
  it("approvals opened by other instances are announced once, with three services on one schema", async () => {
    const schema = db.schema("notify");
    await migrate({ connectionString: pgUrl(), schema });
    const r = await receiver(200);
    const services = await Promise.all(
      Array.from({ length: 3 }, async () => {
        const store = await PostgresStore.connect({ connectionString: pgUrl(), schema });
        const notifier = webhookNotifier({ url: r.url, secret: SECRET, link: LINK, backoffMs: 5 });
        const watching = notifyApprovals({ store, notify: notifier.notify, ledger: new PostgresNotificationLedger(store), sweepMs: 200 });
        await watching.ready;
        return { store, watching };
      }),
    );
    const apps = await Promise.all(
      Array.from({ length: 2 }, async () => {
        const store = await PostgresStore.connect({ connectionString: pgUrl(), schema });
        return { store, ...(await makeVeto({ store, recordSink: store.recordSink() })) };
      }),
    );
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const d = await apps[i % 2]!.veto.protect(write({ amount: 9000 + i }, { requestId: `r${i}` }));
      expect(d.action).toBe("require_approval");
      ids.push(d.id);
    }
    // Allowed calls and answers announce nothing.
    await apps[0]!.veto.protect(write({ amount: 10 }));
    await apps[1]!.veto.approve({ decisionId: ids[0]!, reviewerId: APPROVER });
    await expect.poll(() => r.received.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(11);
    await new Promise((resolve) => setTimeout(resolve, 800));
    const announced = r.received.map((x) => (JSON.parse(x.body) as { approval: { decisionId: string } }).approval.decisionId);
    // The first may have been approved before any service saw it pending.
    const expected = announced.includes(ids[0]!) ? ids : ids.slice(1);
    expect([...announced].sort()).toEqual([...expected].sort());
    const { rows } = await db.pool.query(`SELECT decision_id, delivered, claims FROM "${schema}".approval_notifications`);
    expect(rows.filter((x) => x.delivered === true)).toHaveLength(expected.length);
    for (const s of services) {
      await s.watching.close();
      await s.store.close();
    }
    for (const a of apps) {
      await a.veto.close();
      await a.store.close();
    }
  });

  it("a service stopped mid-delivery leaves its claim to lapse; another service sends the notification", async () => {
    const schema = db.schema("handover");
    await migrate({ connectionString: pgUrl(), schema });
    const failing = await receiver(500);
    const working = await receiver(200);
    const service = async (url: string, backoffMs: number) => {
      const store = await PostgresStore.connect({ connectionString: pgUrl(), schema });
      const notifier = webhookNotifier({ url, secret: SECRET, link: LINK, backoffMs, attempts: 3 });
      const watching = notifyApprovals({
        store,
        notify: notifier.notify,
        ledger: new PostgresNotificationLedger(store, { leaseMs: 400 }),
        sweepMs: 200,
      });
      await watching.ready;
      return {
        stop: async () => {
          const closing = watching.close();
          notifier.close();
          await closing;
          await store.close();
        },
      };
    };
    const first = await service(failing.url, 60_000);
    const app = await PostgresStore.connect({ connectionString: pgUrl(), schema });
    const { veto } = await makeVeto({ store: app, recordSink: app.recordSink() });
    const d = await veto.protect(write({ amount: 9000 }));
    await expect.poll(() => failing.received.length, { timeout: 10_000 }).toBe(1);
    await first.stop();
    const { rows } = await db.pool.query(`SELECT delivered FROM "${schema}".approval_notifications WHERE decision_id = $1`, [d.id]);
    expect(rows).toEqual([{ delivered: null }]);
    const second = await service(working.url, 5);
    await expect.poll(() => working.received.length, { timeout: 10_000 }).toBe(1);
    expect(working.received[0]!.headers["x-veto-decision-id"]).toBe(d.id);
    await expect
      .poll(async () => (await db.pool.query(`SELECT delivered FROM "${schema}".approval_notifications`)).rows)
      .toEqual([{ delivered: true }]);
    await second.stop();
    await veto.close();
    await app.close();
  });

  it("the ledger: one claimant wins; a lapsed claim is taken again; a settled one never is", async () => {
    const schema = db.schema("ledger");
    await migrate({ connectionString: pgUrl(), schema });
    const store = await PostgresStore.connect({ connectionString: pgUrl(), schema });
    const { veto } = await makeVeto({ store, recordSink: store.recordSink() });
    const d = await veto.protect(write({ amount: 9000 }));
    const a = new PostgresNotificationLedger(store, { leaseMs: 300 });
    const b = new PostgresNotificationLedger(store, { leaseMs: 300 });
    const first = await Promise.all([a.claim(d.id), b.claim(d.id), a.claim(d.id), b.claim(d.id)]);
    expect(first.filter(Boolean)).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await b.claim(d.id)).toBe(true);
    await a.settle(d.id, true);
    const { rows } = await db.pool.query(`SELECT delivered FROM "${schema}".approval_notifications`);
    expect(rows).toEqual([{ delivered: null }]);
    await b.settle(d.id, false);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await a.claim(d.id)).toBe(false);
    await veto.close();
    await store.close();
  });
});
