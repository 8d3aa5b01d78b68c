// `veto mcp-proxy` end to end (docs/mcp.md): a real MCP client over stdio,
// the proxy started as the docs start it, a real upstream MCP server process
// that counts its calls, the test bundle, the file log. Approvals through
// `veto serve` on PostgreSQL are in approvals.test.ts.
import { CallToolResultSchema, McpError, ResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterEach, describe, expect, it } from "vitest";
import { seededRandom } from "../helpers/generate-calls.js";
import { ACTOR, dealToolMap, startProxy, textOf, vetoMeta, type Host, decisionRecords } from "./helpers.js";

const hosts: Host[] = [];
afterEach(async () => {
  for (const host of hosts.splice(0)) await host.close();
});

/** A proxy with its --log in a directory of its own. */
async function proxy(flags: string[] = [], options: Parameters<typeof startProxy>[1] = {}): Promise<Host> {
  const host = await startProxy(flags, options);
  hosts.push(host);
  return host;
}

async function proxyWithLog(flags: string[] = []): Promise<{ host: Host; log: string }> {
  const host = await proxy(flags);
  return { host, log: host.log };
}

const read = { object: "contact", recordId: "c_1", tenantId: "acme", fields: ["name", "company"] };
const update = { object: "opportunity", recordId: "opp_1", tenantId: "acme", changes: { close_date: "2027-01-31" } };

describe("tools/list", () => {
  it("lists the upstream's tools the policy offers, each with an optional reason; hides the rest", async () => {
    const { host } = await proxyWithLog();
    const { tools } = await host.client.listTools();
    const names = tools.map((t) => t.name).sort();
    // crm.merge is no tool of the policy (unknown_tool whatever the arguments): hidden.
    expect(names).toEqual(["crm.create", "crm.delete", "crm.export", "crm.read", "crm.search", "crm.update"]);
    const updateTool = tools.find((t) => t.name === "crm.update")!;
    expect(updateTool.inputSchema.properties?.["reason"]).toMatchObject({ type: "string" });
    expect(updateTool.inputSchema.required ?? []).not.toContain("reason");
    // A tool with a reason of its own keeps it as it is.
    // The upstream's instructions are passed on to the host.
    expect(host.client.getInstructions()).toBe("Counting upstream: every call is appended to a file.");
    const create = tools.find((t) => t.name === "crm.create")!;
    expect(create.inputSchema.properties?.["reason"]).toEqual({ type: "string", description: "the tool's own reason" });
  });

  it("hides every tool from an actor the tenant does not admit, and from an unknown environment", async () => {
    for (const flags of [
      ["--actor", "agent:rogue", "--tenant", "acme", "--environment", "production"],
      ["--actor", ACTOR, "--tenant", "acme", "--environment", "prod"],
      ["--actor", ACTOR, "--tenant", "umbrella", "--environment", "production"],
    ]) {
      const host = await proxy(flags, { withContext: false });
      expect((await host.client.listTools()).tools).toEqual([]);
      const refused = await host.client.callTool({ name: "crm.read", arguments: read });
      expect(refused.isError).toBe(true);
      expect(["actor_not_allowed", "unknown_environment", "unknown_tenant"]).toContain(vetoMeta(refused).code);
      expect(host.calls()).toEqual([]);
    }
  });
});

describe("tools/call", () => {
  it("forwards an allowed call once, with exactly the decided arguments and the reason stripped", async () => {
    const { host, log } = await proxyWithLog();
    const result = await host.client.callTool({ name: "crm.update", arguments: { ...update, reason: "Customer asked" } });
    expect(result.isError).toBeFalsy();
    expect(host.calls().map(({ name, arguments: a }) => ({ name, arguments: a }))).toEqual([{ name: "crm.update", arguments: update }]);
    const [record] = decisionRecords(log);
    expect(record).toMatchObject({ tool: "crm.update", actor_id: ACTOR, result: { action: "allow" } });
    expect((record!["input"] as { context: { reason: string } }).context.reason).toBe("Customer asked");
  });

  it("forwards generated allowed calls each exactly once and as given (seeded)", async () => {
    const seed = Number(process.env.VETO_MCP_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const random = seededRandom(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const { host } = await proxyWithLog();
    const sent: { name: string; arguments: Record<string, unknown> }[] = [];
    for (let i = 0; i < 25; i++) {
      const value = pick(["x", "ünïcödé", "", "a\nb", 7, 0.5, true, null, ["l", 1], { nested: { deep: [1, "2"] } }]);
      const key = pick(["close_date", "name", "notes", "next_step", "website", "x-y", "ключ"]);
      const call =
        random() < 0.5
          ? { name: "crm.read", arguments: { ...read, recordId: `c_${i}`, extra: value } }
          : { name: "crm.update", arguments: { ...update, recordId: `opp_${i}`, changes: { [key]: value } } };
      const result = await host.client.callTool({ ...call, arguments: { ...call.arguments, reason: `generated ${i}` } });
      expect(result.isError, `seed ${seed}: ${JSON.stringify(call)}: ${textOf(result)}`).toBeFalsy();
      sent.push(call);
    }
    expect(
      host.calls().map(({ name, arguments: a }) => ({ name, arguments: a })),
      `seed ${seed}`,
    ).toEqual(sent);
  });

  it("keeps a tool's own reason: forwarded, and read as the call's reason", async () => {
    const { host, log } = await proxyWithLog();
    const args = { object: "contact", tenantId: "acme", changes: { name: "Jo" }, reason: "New lead from the fair" };
    const result = await host.client.callTool({ name: "crm.create", arguments: args });
    expect(result.isError).toBeFalsy();
    expect(host.calls()[0]?.arguments).toEqual(args);
    expect((decisionRecords(log)[0]!["input"] as { context: { reason: string } }).context.reason).toBe("New lead from the fair");
  });

  it("answers a deny with isError naming the code; the upstream is never called", async () => {
    const host = await proxy();
    const cases: [string, Record<string, unknown>, string][] = [
      [
        "crm.export",
        { object: "contact", tenantId: "acme", destination: "https://pastebin.com/x", reason: "export" },
        "blocked_destination",
      ],
      ["crm.update", { ...update, changes: { amount: 900_000 }, reason: "big" }, "amount_over_limit"],
      ["crm.update", { ...update }, "missing_reason"],
    ];
    for (const [name, args, code] of cases) {
      const result = await host.client.callTool({ name, arguments: args });
      expect(result.isError).toBe(true);
      expect(vetoMeta(result)).toMatchObject({ code, action: "deny" });
      expect(textOf(result)).toContain(code);
    }
    expect(host.calls()).toEqual([]);
  });

  it("refuses a hidden tool called anyway, and an unknown tool: unknown_tool, never forwarded", async () => {
    const host = await proxy();
    for (const name of ["crm.merge", "no.such.tool"]) {
      const result = await host.client.callTool({ name, arguments: read });
      expect(result.isError).toBe(true);
      expect(vetoMeta(result).code).toBe("unknown_tool");
    }
    expect(host.calls()).toEqual([]);
  });

  it("without a shared store or --listen, a call that needs approval is refused approval_unavailable, never forwarded", async () => {
    const host = await proxy();
    const result = await host.client.callTool({
      name: "crm.update",
      arguments: { ...update, changes: { amount: 9000 }, reason: "upsell" },
    });
    expect(result.isError).toBe(true);
    expect(vetoMeta(result)).toMatchObject({ code: "approval_unavailable", action: "require_approval" });
    expect(host.calls()).toEqual([]);
  });

  it("escalates after repeated denies: then even an allowed call is denied repeated_denies, never forwarded", async () => {
    const host = await proxy();
    for (let i = 0; i < 3; i++) {
      const denied = await host.client.callTool({ name: "crm.update", arguments: { ...update, tenantId: "globex", reason: "x" } });
      expect(vetoMeta(denied)).toMatchObject({ code: "wrong_tenant", escalated: false });
    }
    const escalated = await host.client.callTool({ name: "crm.read", arguments: read });
    expect(escalated.isError).toBe(true);
    expect(vetoMeta(escalated)).toMatchObject({ code: "repeated_denies", escalated: true });
    expect(textOf(escalated)).toMatch(/incident review/);
    expect(host.calls()).toEqual([]);
  });

  it("answers a malformed tools/call with an error, records it as invalid_input (counted towards escalation), and stays up", async () => {
    const { host, log } = await proxyWithLog();
    for (const params of [{ name: "crm.read", arguments: ["not", "an", "object"] }, { arguments: read }, { name: 7 }]) {
      const error = await host.client.request({ method: "tools/call", params: params as never }, ResultSchema).then(
        () => undefined,
        (e: unknown) => e,
      );
      // The SDK refuses it before any handler: invalid params (-32602) or, when its own schema throws, -32603.
      expect(error).toBeInstanceOf(McpError);
      expect([-32602, -32603]).toContain((error as McpError).code);
      expect((error as McpError).message).toMatch(/invalid|expected/i);
    }
    // Still up; and the three invalid_input denies count (docs/contract.md §9): the next call is escalated.
    const next = await host.client.callTool({ name: "crm.read", arguments: read });
    expect(vetoMeta(next)).toMatchObject({ code: "repeated_denies", escalated: true });
    expect(host.calls()).toEqual([]);
    // Recorded (asynchronously beside the SDK's answer): three invalid_input denies and the escalated read.
    const until = Date.now() + 5000;
    while (decisionRecords(log).length < 4 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const invalid = decisionRecords(log).filter(
      (r) => (r["result"] as { reasons: { code: string }[] }).reasons[0]?.code === "invalid_input",
    );
    expect(invalid).toHaveLength(3);
    expect(invalid.every((r) => r["actor_id"] === ACTOR && r["tenant_id"] === "acme")).toBe(true);
  });

  it("survives an upstream that crashes mid-call: a clear error, then the upstream is started again", async () => {
    const host = await proxy();
    const crashed = await host.client.callTool({ name: "crm.read", arguments: { ...read, recordId: "crash" } });
    expect(crashed.isError).toBe(true);
    expect(vetoMeta(crashed).code).toBe("upstream_failed");
    expect(textOf(crashed)).toMatch(/closed the connection/);
    const after = await host.client.callTool({ name: "crm.read", arguments: read });
    expect(after.isError).toBeFalsy();
    const calls = host.calls();
    expect(calls.map((c) => c.arguments["recordId"])).toEqual(["crash", "c_1"]);
    expect(calls[0]!.pid).not.toBe(calls[1]!.pid);
  });

  it("survives an upstream that hangs: upstream_timeout after --upstream-timeout-ms, and the next call works", async () => {
    const host = await proxy(["--upstream-timeout-ms", "1500"]);
    const started = Date.now();
    const hung = await host.client.callTool({ name: "crm.read", arguments: { ...read, recordId: "hang" } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    expect(vetoMeta(hung).code).toBe("upstream_timeout");
    const after = await host.client.callTool({ name: "crm.read", arguments: read });
    expect(after.isError).toBeFalsy();
  });

  it("relays the upstream's progress to the host's token", async () => {
    const host = await proxy();
    const seen: number[] = [];
    const result = await host.client.callTool({ name: "crm.read", arguments: { ...read, recordId: "slow" } }, CallToolResultSchema, {
      onprogress: (p) => seen.push(p.progress),
    });
    expect(result.isError).toBeFalsy();
    expect(seen.length).toBeGreaterThanOrEqual(1);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
  });

  it("maps tools by --tool-map: the policy decides the mapped call, the upstream gets the MCP arguments", async () => {
    const map = dealToolMap();
    const { host, log } = await proxyWithLog(["--tool-map", map]);
    const small = { deal: { id: "opp_7", tenant: "acme", set: { close_date: "2027-02-01" } }, note: "n" };
    expect((await host.client.callTool({ name: "deal_update", arguments: { ...small, reason: "moved" } })).isError).toBeFalsy();
    const big = { deal: { id: "opp_7", tenant: "acme", set: { amount: 9000 } } };
    const refused = await host.client.callTool({ name: "deal_update", arguments: { ...big, reason: "upsell" } });
    expect(vetoMeta(refused)).toMatchObject({ action: "require_approval", code: "approval_unavailable" });
    const wrong = await host.client.callTool({
      name: "deal_update",
      arguments: { deal: { id: "opp_7", tenant: "globex", set: {} }, reason: "x" },
    });
    expect(vetoMeta(wrong).code).toBe("wrong_tenant");
    expect(host.calls().map((c) => c.arguments)).toEqual([small]);
    const [first] = decisionRecords(log);
    expect(first).toMatchObject({
      tool: "crm.update",
      input: {
        arguments: {
          object: "opportunity",
          recordId: "opp_7",
          tenantId: "acme",
          changes: { close_date: "2027-02-01" },
          mcp: { name: "deal_update", arguments: small },
        },
      },
    });
  });
});
