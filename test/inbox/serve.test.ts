// `veto serve` serves the inbox (docs/inbox.md): the built CLI in a process
// of its own, with dev login on loopback and a secret from a file.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { APPROVER, requireBundle, requireCli, runCli } from "../helpers/index.js";

const dir = mkdtempSync(join(tmpdir(), "veto-serve-inbox-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("veto serve: the inbox", () => {
  it("signs in by /dev-login with the secret from --inbox-secret-file, and serves / with its headers", async () => {
    const secret = join(dir, "inbox-secret");
    writeFileSync(secret, "a secret of at least thirty-two bytes for the inbox\n");
    const server = spawn(
      process.execPath,
      [
        requireCli(),
        "serve",
        "--bundle",
        requireBundle(),
        "--log",
        join(dir, "log.jsonl"),
        "--listen",
        "127.0.0.1:0",
        "--dev-login",
        "--inbox-secret-file",
        secret,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let err = "";
    server.stderr.on("data", (c: Buffer) => (err += c.toString("utf8")));
    try {
      await expect.poll(() => /inbox at (http:\/\/127\.0\.0\.1:\d+)\//.exec(err)?.[1], { timeout: 20_000 }).toBeDefined();
      const origin = /inbox at (http:\/\/127\.0\.0\.1:\d+)\//.exec(err)![1]!;
      expect(err).toContain(`(sign in: ${origin}/dev-login?reviewer=ID)`);
      const login = await fetch(`${origin}/dev-login?reviewer=${encodeURIComponent(APPROVER)}`, { redirect: "manual" });
      expect(login.status).toBe(303);
      const cookie = login.headers.get("set-cookie")!.split(";")[0]!;
      const page = await fetch(`${origin}/`, { headers: { cookie } });
      expect(page.status).toBe(200);
      expect(await page.text()).toContain("Pending approvals");
      expect(page.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
      expect(page.headers.get("cache-control")).toBe("no-store");
    } finally {
      server.kill("SIGTERM");
    }
  });

  it("refuses a secret shorter than 32 bytes, saying so", () => {
    const short = join(dir, "short-secret");
    writeFileSync(short, "too short");
    const run = runCli([
      "serve",
      "--bundle",
      requireBundle(),
      "--log",
      join(dir, "log2.jsonl"),
      "--listen",
      "127.0.0.1:0",
      "--dev-login",
      "--inbox-secret-file",
      short,
    ]);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/secret must be at least 32 bytes/);
  });
});
