// The inbox in a real browser (docs/inbox.md): Debian's Chromium driven by
// playwright-core (scripts/chromium.sh installs it), against the real
// approval service on a real PostgreSQL, with the CRM agent in another
// process (agent.mjs) whose guarded calls wait for the answers given here.
// Every page must log no console error and send no request off the
// service's origin. Screenshots go to .build/inbox-screens (docs/img has
// the committed copies).
import { execFileSync, fork, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { resolve } from "node:path";
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PostgresStore } from "../../adapter/postgres/store.js";
import { createApprovalServer } from "../../adapter/server/index.js";
import type { Veto } from "../../adapter/index.js";
import { ACTOR, APPROVER, OTHER_APPROVER, ROOT, makeVeto, write } from "../helpers/index.js";
import { pgUrl, requireDist, testDatabase } from "../helpers/postgres.js";
import { hostileStrings, seedOf } from "./hostile.js";

const SHOTS = resolve(ROOT, ".build/inbox-screens");
const SHORT_TTL_MS = 8_000;
const db = testDatabase();
const schema = db.schema("inbox_browser");

/** The CRM as the app reads it: the current values the cards show beside the new ones. */
const CRM: Record<string, Record<string, unknown>> = {
  opp_approve: { close_date: "2026-11-15", next_step: "legal review" },
  opp_reject: { close_date: "2026-10-01" },
  opp_changed: { close_date: "2026-11-01", next_step: "pricing call" },
  opp_amend: { close_date: "2026-11-20", amount: 40_000 },
  opp_hostile: {},
};
/** The records' versions as the CRM reads them now (the agent binds approvals to its own copy). */
const STATES: Record<string, string> = {};
/** How the app's readRecord behaves, per record: answer, throw, or never answer. */
const READ_RECORD_TIMEOUT_MS = 600;
function readRecordOf(recordId: string): { fields: Record<string, unknown>; state?: string } | undefined {
  if (recordId === "opp_throws") throw new Error("CRM down");
  const fields = CRM[recordId];
  if (fields === undefined) return undefined;
  const state = STATES[recordId];
  return { fields, ...(state === undefined ? {} : { state }) };
}

let store: PostgresStore;
let veto: Veto;
let app: Awaited<ReturnType<typeof createApprovalServer>>;
let origin: string;
let browser: Browser;
let agent: ChildProcess;
const settled = new Map<string, { ok: boolean; value?: unknown; error?: { code?: string } }>();
const waiters = new Map<number, (m: { ok: boolean; value?: unknown; error?: unknown }) => void>();
let nextId = 0;

function ask(cmd: string, args: object = {}): Promise<unknown> {
  const id = ++nextId;
  return new Promise((resolvePromise, reject) => {
    waiters.set(id, (m) => (m.ok ? resolvePromise(m.value) : reject(new Error(JSON.stringify(m.error)))));
    agent.send({ id, cmd, ...args });
  });
}

async function freePort(): Promise<number> {
  return await new Promise((resolvePort) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolvePort(port));
    });
  });
}

function chromiumPath(): string {
  if (process.env.VETO_CHROMIUM) return process.env.VETO_CHROMIUM;
  return execFileSync("bash", [resolve(ROOT, "scripts/chromium.sh"), "path"], { encoding: "utf8" }).trim();
}

beforeAll(async () => {
  requireDist();
  mkdirSync(SHOTS, { recursive: true });
  store = await PostgresStore.connect({ connectionString: pgUrl(), schema, migrate: true });
  ({ veto } = await makeVeto({ store, recordSink: store.recordSink() }));
  origin = `http://127.0.0.1:${await freePort()}`;
  app = await createApprovalServer({
    veto,
    store,
    auth: { devLogin: { approverIds: [APPROVER, OTHER_APPROVER] } },
    inbox: { secret: "the browser tests' inbox secret, 32+ bytes", publicUrl: origin },
    readRecord: async (call) => {
      const recordId = (call.arguments as { recordId?: string }).recordId ?? "";
      if (recordId === "opp_slow") return await new Promise(() => {});
      return readRecordOf(recordId);
    },
    readRecordTimeoutMs: READ_RECORD_TIMEOUT_MS,
  });
  await app.listen({ host: "127.0.0.1", port: Number(new URL(origin).port) });
  agent = fork(resolve(ROOT, "test/inbox/agent.mjs"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  await new Promise<void>((ready) => {
    agent.on("message", (m: { id?: number; event?: string; key?: string; ok: boolean; value?: unknown; error?: { code?: string } }) => {
      if (m.event === "ready") ready();
      else if (m.event === "settled") settled.set(m.key!, m);
      else if (m.id !== undefined) waiters.get(m.id)?.(m);
    });
  });
  await ask("init", { url: pgUrl(), schema, shortTtlMs: SHORT_TTL_MS });
  browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    // As root Chromium refuses its sandbox: Playwright then passes --no-sandbox.
    chromiumSandbox: process.getuid?.() !== 0,
    args: ["--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
  });
});

afterAll(async () => {
  await browser?.close();
  if (agent?.connected) await ask("close").catch(() => {});
  await app?.close();
  await veto?.close();
  await store?.close();
  await db.dropSchemas();
});

interface Tab {
  readonly page: Page;
  readonly context: BrowserContext;
  /** Console errors and uncaught exceptions. */
  readonly errors: string[];
  /** Requests to anywhere but the service (blocked before they leave). */
  readonly offOrigin: string[];
  /** Main-frame navigations after the first page. */
  navigations: number;
}

const tabs: Tab[] = [];

async function newTab(viewport = { width: 1100, height: 900 }, context?: BrowserContext): Promise<Tab> {
  const ctx = context ?? (await browser.newContext({ serviceWorkers: "block", viewport }));
  const page = await ctx.newPage();
  const tab: Tab = { page, context: ctx, errors: [], offOrigin: [], navigations: 0 };
  await page.route("**/*", async (route) => {
    const url = route.request().url();
    if (url === origin || url.startsWith(`${origin}/`)) return await route.continue();
    tab.offOrigin.push(url);
    return await route.abort("blockedbyclient");
  });
  page.on("console", (m) => {
    if (m.type() === "error") tab.errors.push(m.text());
  });
  page.on("pageerror", (e) => tab.errors.push(`uncaught: ${e.message}`));
  page.on("framenavigated", (f) => {
    if (f === page.mainFrame()) tab.navigations += 1;
  });
  tabs.push(tab);
  return tab;
}

async function signIn(tab: Tab, reviewer: string): Promise<void> {
  const res = await tab.page.goto(`${origin}/dev-login?reviewer=${encodeURIComponent(reviewer)}`);
  expect(res?.status()).toBe(200);
  expect(new URL(tab.page.url()).pathname).toBe("/");
}

/** Decision `id`'s card on the tab's page, once it is there (one card). */
async function cardOn(tab: Tab, id: string): Promise<Locator> {
  const card = tab.page.locator(`[data-decision-id="${id}"]`);
  await expect.poll(() => card.count()).toBe(1);
  return card;
}

afterEach(async () => {
  for (const tab of tabs.splice(0)) {
    expect(tab.errors, "console errors").toEqual([]);
    expect(tab.offOrigin, "requests off the origin").toEqual([]);
    await tab.context.close().catch(() => {});
  }
});

/** Start a guarded call in the agent process; resolves with its decision id once it waits for approval. */
async function agentCall(
  recordId: string,
  changes: Record<string, unknown>,
  o: { short?: boolean; amount?: number } = {},
): Promise<string> {
  const call = write({ recordId, changes, amount: o.amount ?? 48_000 }, { reason: "Signed order form received" });
  await ask("call", { call, short: o.short === true });
  let id: string | undefined;
  await expect
    .poll(
      async () => {
        const found = await store.listApprovals({ status: ["pending"] });
        id = found.find((d) => (d.review?.arguments as { recordId?: string } | undefined)?.recordId === recordId)?.id;
        return id;
      },
      { timeout: 30_000 },
    )
    .toBeDefined();
  return id!;
}

async function runs(recordId: string): Promise<number> {
  const all = (await ask("runs")) as Record<string, number>;
  return all[recordId] ?? 0;
}

describe("the inbox in Chromium", () => {
  it("shows the pending card with every field; approve with a comment: the waiting guard() runs the tool exactly once", async () => {
    // The record is at version 3 when the agent asks, and still when the reviewer looks.
    await ask("version", { recordId: "opp_approve", state: "v3" });
    STATES["opp_approve"] = "v3";
    const id = await agentCall("opp_approve", { close_date: "2026-12-20", next_step: "countersign" });
    const tab = await newTab();
    await signIn(tab, APPROVER);
    const card = await cardOn(tab, id);
    const text = await card.innerText();
    for (const expected of [
      ACTOR,
      "acme",
      "production",
      "crm.update",
      "opportunity",
      "opp_approve",
      "close_date",
      "2026-11-15", // current
      "2026-12-20", // new
      "next_step",
      "legal review",
      "countersign",
      "48000",
      "Current values read at state v3, the state the approval is bound to.",
      veto.bundle.revision,
      veto.bundle.hash,
      "Recent denies",
    ]) {
      expect(text, expected).toContain(expected);
    }
    const stored = await store.getDecision(id);
    for (const reason of stored!.review!.reasons) expect(text).toContain(reason.message);
    await expect.poll(async () => await card.locator("[data-countdown]").innerText()).toMatch(/^in 59 min \d\d s$/);
    await tab.page.screenshot({ path: resolve(SHOTS, "inbox.png"), fullPage: true });
    // Every control has an accessible name: a label, or its own text.
    const unnamed = await tab.page.locator("a, button, textarea, select, input:not([type=hidden])").evaluateAll((els) =>
      els
        .filter((el) => {
          const labelled = (el as HTMLInputElement).labels?.length ?? 0;
          return labelled === 0 && (el.getAttribute("aria-label") ?? "").trim() === "" && (el.textContent ?? "").trim() === "";
        })
        .map((el) => el.outerHTML),
    );
    expect(unnamed).toEqual([]);

    await card.getByRole("textbox", { name: "Comment" }).fill("Order form checked");
    await card.getByRole("button", { name: "Approve" }).click();
    await expect
      .poll(async () => await tab.page.locator(`[data-decision-id="${id}"] .result`).innerText())
      .toMatch(/^Approved by you \(user:crm-owner@acme\.example\) at /);
    await expect.poll(() => settled.get("opp_approve"), { timeout: 30_000 }).toMatchObject({ ok: true, value: { updated: "opp_approve" } });
    expect(await runs("opp_approve")).toBe(1);
    await expect
      .poll(async () => (await store.getDecision(id))?.approval)
      .toMatchObject({ status: "executed", reviewerId: APPROVER, note: "Order form checked" });
    await tab.page.screenshot({ path: resolve(SHOTS, "approved.png") });
    // Still once, a moment later.
    await new Promise((r) => setTimeout(r, 500));
    expect(await runs("opp_approve")).toBe(1);
  });

  it("reject, by keyboard alone: the guard never runs the tool; history filters by status", async () => {
    const id = await agentCall("opp_reject", { close_date: "2027-01-15" });
    const tab = await newTab();
    await signIn(tab, OTHER_APPROVER);
    await cardOn(tab, id);
    // Tab to the card's Comment box, type, tab to Reject, press Enter.
    const noteId = `note-${id}`;
    for (let i = 0; i < 60 && (await tab.page.evaluate(() => document.activeElement?.id)) !== noteId; i++)
      await tab.page.keyboard.press("Tab");
    expect(await tab.page.evaluate(() => document.activeElement?.id)).toBe(noteId);
    await tab.page.keyboard.type("Not this quarter");
    await tab.page.keyboard.press("Tab");
    await tab.page.keyboard.press("Tab");
    expect(await tab.page.evaluate(() => document.activeElement?.textContent)).toBe("Reject");
    await tab.page.keyboard.press("Enter");
    await expect.poll(async () => await tab.page.locator(`[data-decision-id="${id}"] .result`).innerText()).toMatch(/^Rejected by you/);
    await expect
      .poll(() => settled.get("opp_reject"), { timeout: 30_000 })
      .toMatchObject({ ok: false, error: { code: "approval_rejected" } });
    expect(await runs("opp_reject")).toBe(0);
    expect((await store.getDecision(id))?.approval).toMatchObject({ status: "rejected", note: "Not this quarter" });

    await tab.page.getByRole("link", { name: "History" }).click();
    await tab.page.getByRole("combobox", { name: "Status" }).selectOption("rejected");
    await tab.page.getByRole("button", { name: "Filter" }).click();
    await expect.poll(() => new URL(tab.page.url()).search).toBe("?status=rejected");
    const rows = tab.page.locator("table.history tbody tr[data-decision-id]");
    expect(await rows.evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.status))).toEqual(["rejected"]);
    await expect.poll(async () => await rows.first().innerText()).toContain("Not this quarter");
    await tab.page.screenshot({ path: resolve(SHOTS, "history.png") });
  });

  it("before and after: the record changed since the request is a warning on the card; approved anyway, the call is refused", async () => {
    await ask("version", { recordId: "opp_changed", state: "v4" });
    STATES["opp_changed"] = "v4";
    const id = await agentCall("opp_changed", { close_date: "2026-12-18", next_step: "countersign" });
    const tab = await newTab();
    await signIn(tab, APPROVER);
    const card = await cardOn(tab, id);
    expect(await card.locator("[data-record-state]").innerText()).toBe(
      "Current values read at state v4, the state the approval is bound to.",
    );
    expect(await card.locator("[data-record-changed]").count()).toBe(0);
    // Someone edits the record in the CRM: version 5.
    CRM["opp_changed"] = { close_date: "2026-11-05", next_step: "pricing call, again" };
    STATES["opp_changed"] = "v5";
    await ask("version", { recordId: "opp_changed", state: "v5" });
    await tab.page.reload();
    const warning = card.locator("[data-record-changed]");
    await expect.poll(() => warning.count()).toBe(1);
    expect(await warning.innerText()).toMatch(
      /^Record changed since the request: the approval is bound to state v4, the current values were read at v5\. An approval would be refused when the call runs \(record_changed\)/,
    );
    expect(await warning.getAttribute("role")).toBe("alert");
    const row = card.locator("table.changes tr", { hasText: "close_date" });
    expect(await row.locator("td.current").innerText()).toBe("2026-11-05");
    expect(await row.locator("td.new").innerText()).toBe("2026-12-18");
    await tab.page.screenshot({ path: resolve(SHOTS, "record-changed.png"), fullPage: true });
    // The warning informs; it decides nothing: approved, the call meets the changed record and never runs.
    await card.getByRole("button", { name: "Approve" }).click();
    await expect.poll(async () => await tab.page.locator(`[data-decision-id="${id}"] .result`).innerText()).toMatch(/^Approved by you/);
    await expect
      .poll(() => settled.get("opp_changed"), { timeout: 30_000 })
      .toMatchObject({ ok: false, error: { code: "record_changed" } });
    expect(await runs("opp_changed")).toBe(0);
  });

  it("a readRecord that throws or never answers: 'current values unavailable' in time, and the card still answers", async () => {
    const throws = await agentCall("opp_throws", { close_date: "2026-12-17" });
    const slow = await agentCall("opp_slow", { close_date: "2026-12-16" });
    const tab = await newTab();
    const started = Date.now();
    await signIn(tab, APPROVER);
    expect(Date.now() - started).toBeLessThan(READ_RECORD_TIMEOUT_MS + 3_000);
    for (const [id, why] of [
      [throws, "readRecord failed"],
      [slow, `readRecord did not answer within ${READ_RECORD_TIMEOUT_MS} ms`],
    ] as const) {
      const card = await cardOn(tab, id);
      expect(await card.locator("table.changes caption").innerText()).toBe(`Changed fields (current values unavailable: ${why})`);
      expect(await card.locator("td.current").count()).toBe(0);
    }
    // (Approved, not rejected: rejections count towards the agent's escalation, docs/contract.md §9.)
    for (const [id, key] of [
      [slow, "opp_slow"],
      [throws, "opp_throws"],
    ] as const) {
      await tab.page.locator(`[data-decision-id="${id}"]`).getByRole("button", { name: "Approve" }).click();
      await expect.poll(async () => await tab.page.locator(`[data-decision-id="${id}"] .result`).innerText()).toMatch(/^Approved by you/);
      await expect.poll(() => settled.get(key), { timeout: 30_000 }).toMatchObject({ ok: true });
      expect(await runs(key)).toBe(1);
    }
  });

  it("hostile current values (generated, VETO_SEED) are shown as text: no element, script or request from them", async () => {
    const seed = seedOf();
    const values = hostileStrings(seed, 8);
    CRM["opp_hostile"] = { close_date: values[0]!, next_step: values[1]!, note: values.slice(2) };
    STATES["opp_hostile"] = values[2]!.slice(0, 60);
    const id = await agentCall("opp_hostile", { close_date: "2026-12-15", next_step: "sign", note: "ok" });
    const tab = await newTab();
    const dialogs: string[] = [];
    tab.page.on("dialog", async (d) => {
      dialogs.push(d.message());
      await d.dismiss();
    });
    await signIn(tab, APPROVER);
    const card = await cardOn(tab, id);
    const context = `seed ${seed} (VETO_SEED=${seed} to repeat)`;
    const current = card.locator("td.current");
    expect(await current.count(), context).toBe(3);
    // Each cell holds the value as text (cut to its bound; then a note saying so), as the HTML parser reads text.
    for (const [i, field] of ["close_date", "next_step"].entries()) {
      const cell = card.locator("table.changes tr", { hasText: field }).locator("td.current");
      const points = Array.from(values[i]!);
      expect(await cell.evaluate((td) => td.children.length), context).toBe(points.length > 1_000 ? 1 : 0);
      const want = points
        .slice(0, 1_000)
        .join("")
        // What the server's UTF-8 makes of a lone surrogate.
        .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd")
        .replace(/\r\n?/g, "\n")
        .replaceAll("\u0000", "");
      // (A cut value is followed by a space and the note.)
      expect(await cell.evaluate((td) => td.firstChild?.textContent ?? ""), context).toBe(points.length > 1_000 ? `${want} ` : want);
    }
    expect(await tab.page.locator("main img, main svg, main iframe, main style, main script, main base, main meta").count(), context).toBe(
      0,
    );
    expect(dialogs, context).toEqual([]);
    await card.getByRole("button", { name: "Approve" }).click();
    await expect.poll(() => settled.get("opp_hostile"), { timeout: 30_000 }).toMatchObject({ ok: true });
  });

  it("amend in the card: the amended call is approved by the amendment and runs once with the amended arguments; the original never", async () => {
    const id = await agentCall("opp_amend", { close_date: "2026-12-14", discount_note: "25% off" }, { amount: 48_000 });
    const tab = await newTab();
    await signIn(tab, APPROVER);
    const card = await cardOn(tab, id);
    await card.getByText("Amend the arguments").click();
    const box = card.getByRole("textbox", { name: "Arguments (JSON object)" });
    const prefilled = JSON.parse(await box.inputValue());
    expect(prefilled).toMatchObject({ recordId: "opp_amend", amount: 48_000, changes: { discount_note: "25% off" } });
    const amended = { ...prefilled, amount: 43_200, changes: { ...prefilled.changes, discount_note: "10% off" } };
    await box.fill(JSON.stringify(amended, null, 2));
    await card.getByRole("textbox", { name: "Note for the amendment" }).fill("10%, not 25%");
    await tab.page.screenshot({ path: resolve(SHOTS, "amend.png"), fullPage: true });
    // Invalid JSON first: refused in place, the form open with the text and the note, nothing changed.
    await box.fill("{ amount: 43200 }");
    await card.getByRole("button", { name: "Amend" }).click();
    await expect
      .poll(async () => await tab.page.locator(`[data-decision-id="${id}"] .result`).innerText())
      .toMatch(/^Not amended: the arguments are not valid JSON/);
    const again = tab.page.locator(`[data-decision-id="${id}"]`);
    expect(await again.getByRole("textbox", { name: "Arguments (JSON object)" }).inputValue()).toBe("{ amount: 43200 }");
    expect(await again.getByRole("textbox", { name: "Note for the amendment" }).inputValue()).toBe("10%, not 25%");
    expect((await store.getDecision(id))?.approval?.status).toBe("pending");
    await again.getByRole("textbox", { name: "Arguments (JSON object)" }).fill(JSON.stringify(amended, null, 2));
    await again.getByRole("button", { name: "Amend" }).click();
    const line = tab.page.locator(`[data-decision-id="${id}"] .amended-to`);
    await expect
      .poll(async () => (await line.count()) === 1 && (await line.innerText()))
      .toMatch(/^Amended → decision \w+: approved by the amendment/);
    expect(await tab.page.locator(`[data-decision-id="${id}"] .result`).innerText()).toBe("Amended by you.");
    const nextId = (await line.getAttribute("data-amended-to"))!;
    const nextCard = tab.page.locator(`[data-decision-id="${nextId}"]`);
    await expect.poll(() => nextCard.count()).toBe(1);
    expect(await nextCard.getAttribute("data-status")).toMatch(/^(approved|executed)$/);
    expect(await nextCard.innerText()).toContain("10% off");
    await tab.page.screenshot({ path: resolve(SHOTS, "amended.png"), fullPage: true });
    await expect.poll(() => settled.get("opp_amend"), { timeout: 30_000 }).toMatchObject({ ok: true });
    expect(await runs("opp_amend")).toBe(1);
    expect(((await ask("ran")) as Record<string, unknown>)["opp_amend"]).toMatchObject({
      amount: 43_200,
      changes: { discount_note: "10% off" },
    });
    expect((await store.getDecision(id))?.approval).toMatchObject({
      status: "amended",
      reviewerId: APPROVER,
      note: "10%, not 25%",
      amendedTo: nextId,
    });
    await expect.poll(async () => (await store.getDecision(nextId))?.approval?.status).toBe("executed");
  });

  it("amend: over the limit is denied by the policy and nothing runs; a second amendment and one without the CSRF token are refused", async () => {
    const id = await agentCall("opp_amend_deny", { close_date: "2026-12-13" });
    const a = await newTab();
    const b = await newTab();
    await signIn(a, APPROVER);
    await signIn(b, OTHER_APPROVER);
    const csrfB = await b.page.locator(`[data-decision-id="${id}"] form.amend input[name="_csrf"]`).inputValue();
    const args = (await store.getDecision(id))!.review!.arguments as Record<string, unknown>;
    // Without the token: refused, nothing changed.
    const forged = await a.page.request.post(`${origin}/approvals/${id}/amend`, {
      form: { arguments: JSON.stringify({ ...args, amount: 1 }) },
      maxRedirects: 0,
    });
    expect(forged.status()).toBe(403);
    expect((await store.getDecision(id))?.approval?.status).toBe("pending");
    const card = a.page.locator(`[data-decision-id="${id}"]`);
    await card.getByText("Amend the arguments").click();
    await card.getByRole("textbox", { name: "Arguments (JSON object)" }).fill(JSON.stringify({ ...args, amount: 900_000 }));
    await card.getByRole("button", { name: "Amend" }).click();
    await expect
      .poll(
        async () =>
          await a.page
            .locator(`[data-decision-id="${id}"] .amended-to`)
            .innerText()
            .catch(() => ""),
      )
      .toMatch(/: denied by the policy \(.*amount_over_limit.*\); nothing runs\.$/);
    await expect.poll(() => settled.get("opp_amend_deny"), { timeout: 30_000 }).toMatchObject({ ok: false });
    expect(await runs("opp_amend_deny")).toBe(0);
    // The other reviewer's form, sent after: already answered (their page shows it too).
    const twice = await b.page.evaluate(
      async ({ url, body }) => {
        const r = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded", "x-veto-fragment": "1" },
          body,
        });
        return { status: r.headers.get("x-veto-status"), html: await r.text() };
      },
      {
        url: `/approvals/${id}/amend`,
        body: new URLSearchParams({ _csrf: csrfB, arguments: JSON.stringify({ ...args, amount: 7000 }) }).toString(),
      },
    );
    expect(twice.status).toBe("409");
    expect(twice.html).toContain("Not amended: already answered.");
    await expect
      .poll(async () => await b.page.locator(`[data-decision-id="${id}"]`).getAttribute("data-status"), { timeout: 10_000 })
      .toBe("amended");
  });

  it("two tabs answer the same card: one wins, the other shows 'already answered' without a reload", async () => {
    const id = await agentCall("opp_race", { close_date: "2026-12-31" });
    const a = await newTab();
    const b = await newTab();
    await signIn(a, APPROVER);
    await signIn(b, OTHER_APPROVER);
    for (const tab of [a, b]) await expect.poll(() => tab.page.locator(`[data-decision-id="${id}"] form.answer`).count()).toBe(1);
    // Each page says when its event stream is open.
    for (const tab of [a, b]) await expect.poll(() => tab.page.locator("body[data-live]").count()).toBe(1);
    const navigationsBefore = b.navigations;
    await a.page.locator(`[data-decision-id="${id}"]`).getByRole("button", { name: "Approve" }).click();
    await expect.poll(async () => await a.page.locator(`[data-decision-id="${id}"] .result`).innerText()).toMatch(/^Approved by you/);
    await expect
      .poll(async () => await b.page.locator(`[data-decision-id="${id}"] .result`).innerText(), { timeout: 10_000 })
      .toMatch(/^Already answered: Approved by user:crm-owner@acme\.example at /);
    expect(await b.page.locator(`[data-decision-id="${id}"] form.answer`).count()).toBe(0);
    expect(b.navigations).toBe(navigationsBefore);
    await b.page.screenshot({ path: resolve(SHOTS, "already-answered.png") });
    await expect.poll(() => settled.get("opp_race"), { timeout: 30_000 }).toMatchObject({ ok: true });
    expect(await runs("opp_race")).toBe(1);
  });

  it("two answers posted at the same moment: exactly one is taken, the other is told it was already answered", async () => {
    const id = await agentCall("opp_tie", { close_date: "2026-12-30" });
    const a = await newTab();
    const b = await newTab();
    await signIn(a, APPROVER);
    await signIn(b, OTHER_APPROVER);
    // Both forms' tokens first: once one answer lands, the other page's card changes and its form goes.
    const csrfOf = async (tab: Tab) => await tab.page.locator(`[data-decision-id="${id}"] form.answer input[name="_csrf"]`).inputValue();
    const tokens = { a: await csrfOf(a), b: await csrfOf(b) };
    const post = async (tab: Tab, kind: string, csrf: string) =>
      await tab.page.evaluate(
        async ({ url, body }) => {
          const r = await fetch(url, {
            method: "POST",
            headers: { "content-type": "application/x-www-form-urlencoded", "x-veto-fragment": "1" },
            body,
          });
          return { status: r.headers.get("x-veto-status"), html: await r.text() };
        },
        { url: `/approvals/${id}/${kind}`, body: new URLSearchParams({ _csrf: csrf }).toString() },
      );
    const results = await Promise.all([post(a, "approve", tokens.a), post(b, "reject", tokens.b)]);
    expect(results.map((r) => r.status).sort()).toEqual(["200", "409"]);
    expect(results.find((r) => r.status === "409")!.html).toContain("Already answered");
    await expect.poll(() => settled.get("opp_tie"), { timeout: 30_000 }).toBeDefined();
    const ran = await runs("opp_tie");
    expect(ran).toBe(settled.get("opp_tie")!.ok ? 1 : 0);
  });

  it("a short expiry counts down to 'expired'; the waiting call never runs", async () => {
    const id = await agentCall("opp_expiring", { close_date: "2026-12-29" }, { short: true });
    const tab = await newTab();
    await signIn(tab, APPROVER);
    const card = tab.page.locator(`[data-decision-id="${id}"]`);
    await expect.poll(async () => await card.locator("[data-countdown]").innerText()).toMatch(/^in [1-8] s$/);
    await expect.poll(async () => await card.locator("[data-status-text]").innerText(), { timeout: SHORT_TTL_MS + 5_000 }).toBe("Expired");
    expect(await card.locator("[data-countdown]").innerText()).toBe("expired");
    expect(await card.getByRole("button", { name: "Approve" }).count()).toBe(0);
    await expect.poll(() => settled.get("opp_expiring"), { timeout: 30_000 }).toMatchObject({ ok: false });
    expect(await runs("opp_expiring")).toBe(0);
  });

  it("a form post without the CSRF token is refused and changes nothing", async () => {
    const id = await agentCall("opp_csrf", { close_date: "2026-12-28" });
    const tab = await newTab();
    await signIn(tab, APPROVER);
    const res = await tab.page.request.post(`${origin}/approvals/${id}/approve`, { form: { note: "forged" }, maxRedirects: 0 });
    expect(res.status()).toBe(403);
    // And a cross-site form: the browser says where it came from.
    const cross = await tab.page.request.post(`${origin}/approvals/${id}/approve`, {
      form: { note: "forged", _csrf: await tab.page.locator(`[data-decision-id="${id}"] form.answer input[name="_csrf"]`).inputValue() },
      headers: { origin: "https://evil.example", "sec-fetch-site": "cross-site" },
      maxRedirects: 0,
    });
    expect(cross.status()).toBe(403);
    expect((await store.getDecision(id))?.approval?.status).toBe("pending");
    expect(await runs("opp_csrf")).toBe(0);
  });

  it("sign in by a one-time link: it opens that approval; a used link, and one changed to another reviewer or decision, are refused", async () => {
    const id = await agentCall("opp_link", { close_date: "2026-12-27" });
    const other = await agentCall("opp_link_other", { close_date: "2026-12-26" });
    const link = await app.signInLinks!.linkFor(APPROVER, id);
    const tab = await newTab({ width: 390, height: 844 });
    await tab.page.goto(link);
    await tab.page.screenshot({ path: resolve(SHOTS, "sign-in-link.png") });
    await tab.page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => new URL(tab.page.url()).pathname).toBe(`/approvals/${id}`);
    const card = await cardOn(tab, id);
    // Readable on a phone: nothing wider than the screen.
    expect(await tab.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    await tab.page.screenshot({ path: resolve(SHOTS, "phone.png"), fullPage: true });
    // The link's session sees only its approval.
    const elsewhere = await tab.page.request.get(`${origin}/approvals/${other}/card`);
    expect(elsewhere.status()).toBe(404);

    // Used: refused in any browser.
    const again = await browser.newContext({ serviceWorkers: "block" });
    const page2 = await again.newPage();
    await page2.goto(link);
    const used = await page2.request.post(`${origin}/sign-in/link`, {
      form: { token: new URL(link).searchParams.get("token")!, _csrf: await page2.locator('input[name="_csrf"]').inputValue() },
      maxRedirects: 0,
    });
    expect(used.status()).toBe(410);
    // Changed to name another reviewer or decision: the signature no longer matches.
    const token = new URL(link).searchParams.get("token")!;
    const [h, p, s] = token.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, "base64url").toString("utf8"));
    for (const changed of [
      { ...claims, sub: OTHER_APPROVER },
      { ...claims, dec: other },
    ]) {
      const forged = `${h}.${Buffer.from(JSON.stringify(changed)).toString("base64url")}.${s}`;
      const res = await page2.goto(`${origin}/sign-in/link?token=${forged}`);
      expect(res?.status()).toBe(403);
      expect(await page2.locator("main").innerText()).toContain("Sign-in refused");
    }
    // A genuine link for the other reviewer is no key to this reviewer's session.
    const theirs = await app.signInLinks!.linkFor(OTHER_APPROVER, other);
    await page2.goto(theirs);
    await page2.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => new URL(page2.url()).pathname).toBe(`/approvals/${other}`);
    expect((await page2.request.get(`${origin}/approvals/${id}/card`)).status()).toBe(404);
    await again.close();

    // Answer through the link's session.
    await card.getByRole("button", { name: "Approve" }).click();
    await expect.poll(async () => await tab.page.locator(`[data-decision-id="${id}"] .result`).innerText()).toMatch(/^Approved by you/);
    await expect.poll(() => settled.get("opp_link"), { timeout: 30_000 }).toMatchObject({ ok: true });
    expect(await runs("opp_link")).toBe(1);
  });
});

describe("make inbox", () => {
  it("the demo agent waits for answers given in the inbox: approve one, reject the next (added live), then it finishes", async () => {
    const dir = resolve(ROOT, ".build/inbox-test-demo");
    // Without --exit: the page is closed before the inbox goes away (a page whose server
    // vanished would log its event stream's failed reconnects).
    const demo = spawn(process.execPath, [resolve(ROOT, "scripts/demo/inbox.mjs"), "--port", "0", "--dir", dir], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    demo.stdout.on("data", (chunk: Buffer) => (out += chunk.toString("utf8")));
    const exited = new Promise<number | null>((done) => demo.on("exit", (code) => done(code)));
    try {
      await expect.poll(() => /sign in as the acme owner: (\S+)/.exec(out)?.[1], { timeout: 60_000 }).toBeDefined();
      const devLink = /sign in as the acme owner: (\S+)/.exec(out)![1]!;
      const demoOrigin = new URL(devLink).origin;
      const tab = await newTab();
      // This tab's requests must stay on the demo's origin.
      await tab.page.unroute("**/*");
      await tab.page.route("**/*", async (route) => {
        const url = route.request().url();
        if (url === demoOrigin || url.startsWith(`${demoOrigin}/`)) return await route.continue();
        tab.offOrigin.push(url);
        return await route.abort("blockedbyclient");
      });
      await tab.page.goto(devLink);
      const deal = tab.page.locator("article.card", { hasText: "opp_2" });
      await expect.poll(() => deal.count(), { timeout: 60_000 }).toBe(1);
      // Before and after from the demo CRM: its current close date beside the new one, at its version.
      const closeDate = deal.locator("table.changes tr", { hasText: "close_date" });
      expect(await closeDate.locator("td.current").innerText()).toBe("2026-12-15");
      expect(await closeDate.locator("td.new").innerText()).toBe("2026-12-01");
      expect(await deal.locator("[data-record-state]").innerText()).toBe(
        "Current values read at state v1, the state the approval is bound to.",
      );
      await deal.getByRole("textbox", { name: "Comment" }).fill("Order form checked");
      await deal.getByRole("button", { name: "Approve" }).click();
      await expect.poll(async () => await deal.locator(".result").innerText()).toMatch(/^Approved by you/);
      // The next approval appears without a reload (the event stream adds its card).
      const credit = tab.page.locator('article.card[data-status="pending"]', { hasText: "acc_1" });
      await expect.poll(() => credit.count(), { timeout: 60_000 }).toBe(1);
      expect(await credit.innerText()).toContain("masked (sensitive field)");
      await credit.getByRole("button", { name: "Reject" }).click();
      await expect.poll(() => out, { timeout: 60_000 }).toContain("the agent is done");
      await tab.context.close();
      demo.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(out).toMatch(/close a 48,000 deal in production +done: opp_2/);
      expect(out).toMatch(/raise a credit limit \(sensitive field\) +not run: approval_rejected/);
      expect(out).toMatch(/export contacts to pastebin +denied: /);
      const crm = JSON.parse(readFileSync(resolve(dir, "crm.json"), "utf8"));
      expect(crm.tenants.acme.opportunity.opp_2.close_date).toBe("2026-12-01");
      expect(crm.tenants.acme.account.acc_1.credit_limit).toBe(50000);
    } finally {
      demo.kill();
    }
  });
});
