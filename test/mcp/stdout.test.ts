// stdout is the MCP channel (docs/mcp.md): the proxy, spoken to in raw
// JSON-RPC lines, writes nothing else there, whatever happens (allowed,
// denied, refused, malformed, an upstream crash); its own log and the
// upstream's diagnostics go to stderr, records to --log.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, requireBundle, requireCli } from "../helpers/index.js";
import { CONTEXT_FLAGS, UPSTREAM } from "./helpers.js";

describe("veto mcp-proxy's stdout", () => {
  it("carries only JSON-RPC messages; the log goes to stderr and records to --log", { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "veto-mcp-stdout-"));
    const log = join(dir, "decisions.jsonl");
    const child = spawn(
      process.execPath,
      [requireCli(), "mcp-proxy", "--bundle", requireBundle(), "--log", log, ...CONTEXT_FLAGS, "--", process.execPath, UPSTREAM],
      { cwd: ROOT, env: { ...process.env, VETO_MCP_CALLS: join(dir, "calls.jsonl") }, stdio: ["pipe", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const answered = async (id: number): Promise<void> => {
      const until = Date.now() + 20_000;
      while (!stdout.split("\n").some((l) => l.includes(`"id":${id},`) || l.endsWith(`"id":${id}}`))) {
        if (Date.now() > until) throw new Error(`no answer to ${id}; stdout: ${stdout}; stderr: ${stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const send = (message: object): void => void child.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", ...message })}\n`);
    const read = { object: "contact", recordId: "c_1", tenantId: "acme" };
    const requests: object[] = [
      { method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } } },
      { method: "tools/list", params: {} },
      { method: "tools/call", params: { name: "crm.read", arguments: { ...read, reason: "look" } } },
      { method: "tools/call", params: { name: "crm.export", arguments: { ...read, destination: "gmail.com", reason: "x" } } },
      { method: "tools/call", params: { name: "crm.update", arguments: { ...read, changes: { amount: 9000 }, reason: "x" } } },
      { method: "tools/call", params: { name: "crm.read", arguments: "not an object" } },
      { method: "tools/call", params: { name: "crm.read", arguments: { ...read, recordId: "crash" } } },
      { method: "nonexistent/method", params: {} },
    ];
    for (const [i, request] of requests.entries()) {
      send({ id: i + 1, ...request });
      if (i === 0) send({ method: "notifications/initialized" });
      await answered(i + 1);
    }
    child.stdin.end();
    expect(await exited).toBe(0);

    const lines = stdout.split("\n");
    expect(lines.at(-1)).toBe("");
    const messages = lines.slice(0, -1).map((line) => JSON.parse(line) as { jsonrpc: string; id?: number });
    expect(messages.every((m) => m.jsonrpc === "2.0")).toBe(true);
    expect(messages.map((m) => m.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    // The proxy's pino lines and the upstream's line are on stderr.
    const pinoLines = stderr
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { name?: string; msg?: string });
    expect(
      pinoLines.some((l) => l.name === "veto" && l.msg === "upstream MCP server exited; it is started again on the next request"),
    ).toBe(true);
    expect(stderr).toMatch(/counting-upstream \d+ ready/);
    // Every call's decision is in the log, none on stdout.
    const records = readFileSync(log, "utf8")
      .split("\n")
      .filter((l) => l !== "");
    expect(records.length).toBeGreaterThanOrEqual(5);
    expect(stdout).not.toMatch(/"type":"decision"/);
  });
});
