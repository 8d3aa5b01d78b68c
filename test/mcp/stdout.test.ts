// stdout is the MCP channel (docs/mcp.md): the proxy, spoken to in raw
// JSON-RPC lines, writes nothing else there, whatever happens (allowed,
// denied, refused, malformed, an upstream crash); its own log and the
// upstream's diagnostics go to stderr, records to --log.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { startRawProxy } from "./helpers.js";

describe("veto mcp-proxy's stdout", () => {
  it("carries only JSON-RPC messages; the log goes to stderr and records to --log", { timeout: 60_000 }, async () => {
    const proxy = await startRawProxy();
    const read = { object: "contact", recordId: "c_1", tenantId: "acme" };
    const requests: object[] = [
      { method: "tools/list", params: {} },
      { method: "tools/call", params: { name: "crm.read", arguments: { ...read, reason: "look" } } },
      { method: "tools/call", params: { name: "crm.export", arguments: { ...read, destination: "gmail.com", reason: "x" } } },
      { method: "tools/call", params: { name: "crm.update", arguments: { ...read, changes: { amount: 9000 }, reason: "x" } } },
      { method: "tools/call", params: { name: "crm.read", arguments: "not an object" } },
      { method: "tools/call", params: { name: "crm.read", arguments: { ...read, recordId: "crash" } } },
      { method: "nonexistent/method", params: {} },
    ];
    for (const [i, request] of requests.entries()) {
      proxy.send({ id: i + 2, ...request });
      await proxy.answer(i + 2);
    }
    expect(await proxy.end()).toBe(0);

    const stdout = proxy.stdout();
    expect(stdout.endsWith("\n")).toBe(true);
    const messages = proxy.messages();
    expect(messages.every((m) => m["jsonrpc"] === "2.0")).toBe(true);
    expect(messages.map((m) => m["id"])).toEqual(["init", 2, 3, 4, 5, 6, 7, 8]);
    // The proxy's pino lines and the upstream's line are on stderr.
    const pinoLines = proxy
      .stderr()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { name?: string; msg?: string });
    expect(
      pinoLines.some((l) => l.name === "veto" && l.msg === "upstream MCP server exited; it is started again on the next request"),
    ).toBe(true);
    expect(proxy.stderr()).toMatch(/counting-upstream \d+ ready/);
    // Every call's decision is in the log, none on stdout.
    const records = readFileSync(proxy.log, "utf8")
      .split("\n")
      .filter((l) => l !== "");
    expect(records.length).toBeGreaterThanOrEqual(5);
    expect(stdout).not.toMatch(/"type":"decision"/);
  });
});
