/**
 * `veto report --html FILE`: one self-contained page, rendered in Chromium
 * (Debian's, through playwright-core as the inbox tests do) with no console
 * error and no request beyond the page itself; names from the log are
 * escaped, never markup.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openFileLog } from "../../adapter/audit/index.js";
import { APPROVER, FIXTURE_DATA, ROOT, makeVeto, read, requireBundle, requireCli, runCli, write } from "../helpers/index.js";
import { tempDir } from "../helpers/file-log.js";

let dir: string;
let cleanup: () => Promise<void>;
let browser: Browser;
let logPath: string;
let candidateData: string;

function chromiumPath(): string {
  if (process.env.VETO_CHROMIUM) return process.env.VETO_CHROMIUM;
  return execFileSync("bash", [resolve(ROOT, "scripts/chromium.sh"), "path"], { encoding: "utf8" }).trim();
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
  logPath = join(dir, "decisions.jsonl");
  const log = await openFileLog(logPath);
  const { veto, clock } = await makeVeto({ recordSink: log });
  for (let i = 0; i < 30; i += 1) {
    clock.advance(3_600_000);
    const d = await veto.protect(i % 3 === 0 ? read() : write({ amount: 4000 + i * 1000 }));
    if (d.action === "require_approval" && i % 4 !== 0) {
      clock.advance(60_000 * i);
      await (i % 2 === 0
        ? veto.approve({ decisionId: d.id, reviewerId: APPROVER })
        : veto.reject({ decisionId: d.id, reviewerId: APPROVER }));
    }
  }
  // A name an agent chose: it must show as text.
  await veto.protect(write({}, {}, "<script>alert(1)</script>"));
  await veto.close();
  await log.close();
  const data = JSON.parse(readFileSync(FIXTURE_DATA, "utf8")) as { veto: { config: { tenants: Record<string, Record<string, unknown>> } } };
  data.veto.config.tenants["acme"]!["approval_threshold"] = 30_000;
  candidateData = join(dir, "relaxed.json");
  writeFileSync(candidateData, JSON.stringify(data));
  browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    chromiumSandbox: process.getuid?.() !== 0,
    args: ["--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
  });
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await cleanup();
});

describe("veto report --html", () => {
  it("renders in Chromium with its charts, no console error, no request and no script", async () => {
    requireCli();
    const html = join(dir, "report.html");
    const run = runCli(["report", "--log", logPath, "--candidate", requireBundle(), "--candidate-data", candidateData, "--html", html]);
    expect(run.status, run.stderr).toBe(0);
    const page = await browser.newPage();
    const errors: string[] = [];
    const requests: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") errors.push(m.text());
    });
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("request", (r) => requests.push(r.url()));
    const url = pathToFileURL(html).href;
    await page.goto(url, { waitUntil: "load" });
    expect(errors).toEqual([]);
    expect(requests).toEqual([url]);
    expect(await page.locator("script").count()).toBe(0);
    expect(await page.locator("svg").count()).toBeGreaterThanOrEqual(3);
    expect(await page.locator("svg rect").count()).toBeGreaterThan(5);
    const text = await page.locator("body").innerText();
    expect(text).toMatch(/allows_rejected: [1-9]\d*/);
    expect(text).toContain("<script>alert(1)</script>");
    expect(text).toContain("production_amount");
    await page.close();
  });
});
