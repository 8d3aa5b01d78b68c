// veto-crm/mcp's governedTool (docs/mcp.md, "In your own MCP server"): a
// real McpServer and Client (the SDK's in-memory transport), the test bundle,
// a handler that counts its calls.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { describe, expect, it } from "vitest";
import { governedTool, withReason, type GovernedToolOptions } from "../../adapter/mcp/index.js";
import { ACTOR, APPROVER, makeVeto } from "../helpers/index.js";
import { textOf, vetoMeta } from "./helpers.js";

const context = { actorId: ACTOR, tenantId: "acme", environment: "production" };

async function serve(options: Partial<GovernedToolOptions> = {}) {
  const { veto } = await makeVeto();
  const received: Record<string, unknown>[] = [];
  const server = new McpServer({ name: "own-crm", version: "1.0.0" });
  server.registerTool(
    "crm.update",
    {
      description: "update",
      inputSchema: withReason({
        object: z.string(),
        recordId: z.string(),
        tenantId: z.string(),
        changes: z.record(z.string(), z.unknown()),
      }),
    },
    governedTool(
      veto,
      "crm.update",
      (args) => {
        expect(Object.isFrozen(args)).toBe(true);
        received.push(args);
        return { content: [{ type: "text", text: "updated" }] };
      },
      { context, ...options },
    ),
  );
  const client = new Client({ name: "host", version: "1.0.0" });
  const [a, b] = InMemoryTransport.createLinkedPair();
  await Promise.all([server.connect(a), client.connect(b)]);
  return { veto, client, received, close: async () => (await client.close(), await veto.close()) };
}

const args = { object: "opportunity", recordId: "opp_1", tenantId: "acme", changes: { close_date: "2027-01-31" } };

describe("governedTool", () => {
  it("runs an allowed call once with the decided arguments, without reason", async () => {
    const t = await serve();
    const result = await t.client.callTool({ name: "crm.update", arguments: { ...args, reason: "Customer asked" } });
    expect(textOf(result)).toBe("updated");
    expect(t.received).toEqual([args]);
    await t.close();
  });

  it("denies arguments nested deeper than the stack invalid_input, recorded; the handler never runs", async () => {
    const { veto, sink } = await makeVeto();
    const received: unknown[] = [];
    const handler = governedTool(veto, "crm.update", (a) => (received.push(a), { content: [{ type: "text", text: "updated" }] }), {
      context,
    });
    for (const depth of [13, 1_000, 20_000, 100_000]) {
      for (const container of ["array", "object"] as const) {
        let deep: unknown = 1;
        for (let i = 0; i < depth; i++) deep = container === "array" ? [deep] : { x: deep };
        const before = sink.records.length;
        const result = await handler({ ...args, changes: { deep }, reason: "Customer asked" }, {} as never);
        expect(result.isError, `${container} ${depth}`).toBe(true);
        expect(vetoMeta(result)?.["code"] ?? textOf(result), `${container} ${depth}`).toMatch(/invalid_input/);
        expect(sink.records.length, `${container} ${depth}: recorded`).toBe(before + 1);
        expect(sink.last()).toMatchObject({ type: "decision", result: { action: "deny", reasons: [{ code: "invalid_input" }] } });
      }
    }
    expect(received).toEqual([]);
    await veto.close();
  });

  it("answers a deny with isError naming the code; the handler never runs", async () => {
    const t = await serve();
    const result = await t.client.callTool({ name: "crm.update", arguments: args });
    expect(result.isError).toBe(true);
    expect(vetoMeta(result).code).toBe("missing_reason");
    expect(t.received).toEqual([]);
    await t.close();
  });

  it("waits for an approval, then runs once; refuses approval_unavailable when told no one can answer", async () => {
    const t = await serve({ approvalTimeoutMs: 10_000 });
    const big = { ...args, changes: { amount: 9000 }, reason: "upsell" };
    let answered: Promise<unknown> | undefined;
    const result = await t.client.callTool({ name: "crm.update", arguments: big }, CallToolResultSchema, {
      onprogress: (p) => {
        const id = /decision (\S+)/.exec(p.message ?? "")?.[1];
        if (id !== undefined && answered === undefined) answered = t.veto.approve({ decisionId: id, reviewerId: APPROVER });
      },
    });
    await answered;
    expect(result.isError, textOf(result)).toBeFalsy();
    expect(t.received).toHaveLength(1);
    await t.close();

    const u = await serve({ approvals: "unavailable" });
    const refused = await u.client.callTool({ name: "crm.update", arguments: big });
    expect(vetoMeta(refused).code).toBe("approval_unavailable");
    expect(u.received).toEqual([]);
    await u.close();
  });

  it("refuses bad options with a VetoOptionsError saying what to fix", async () => {
    const { veto } = await makeVeto();
    expect(() => governedTool(veto, "", () => ({ content: [] }), { context })).toThrow(/name must be/);
    expect(() => governedTool(veto, "x", () => ({ content: [] }), {} as never)).toThrow(/options.context/);
    expect(() => governedTool(veto, "x", () => ({ content: [] }), { context, map: { tool: "" } })).toThrow(/options.map is not a tool map/);
    await veto.close();
  });
});
