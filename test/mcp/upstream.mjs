// A real upstream MCP server for the proxy's tests, on stdio, that counts
// its calls: every tools/call it receives is appended, as it arrived (no
// schema parsing: unknown keys such as `reason` would show), as one JSON line
// to $VETO_MCP_CALLS before it answers. recordId "crash" exits the process
// mid-call, "hang" never answers, "slow" answers after progress notifications.
import { appendFileSync } from "node:fs";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const calls = process.env.VETO_MCP_CALLS;
if (!calls) throw new Error("VETO_MCP_CALLS must name the file calls are counted in");

const contract = {
  object: { type: "string" },
  recordId: { type: "string" },
  tenantId: { type: "string" },
  changes: { type: "object" },
  amount: { type: "number" },
  fields: { type: "array", items: { type: "string" } },
  destination: { type: "string" },
};
const tool = (name, extra = {}) => ({
  name,
  description: `test ${name}`,
  inputSchema: { type: "object", properties: { ...contract, ...extra } },
});
const TOOLS = [
  tool("crm.read"),
  tool("crm.search"),
  tool("crm.update"),
  tool("crm.export"),
  tool("crm.delete"),
  // Has a `reason` of its own: the proxy neither adds nor strips it.
  tool("crm.create", { reason: { type: "string", description: "the tool's own reason" } }),
  // Not a tool of the policy: hidden.
  tool("crm.merge"),
  // Mapped by the tests' tool map to crm.update.
  {
    name: "deal_update",
    description: "test mapped",
    inputSchema: { type: "object", properties: { deal: { type: "object" }, note: { type: "string" } } },
  },
];

const server = new Server(
  { name: "counting-upstream", version: "1.0.0" },
  { capabilities: { tools: {} }, instructions: "Counting upstream: every call is appended to a file." },
);
server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: TOOLS }));
server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
  const { name, arguments: args = {} } = request.params;
  appendFileSync(calls, `${JSON.stringify({ name, arguments: args, pid: process.pid })}\n`);
  if (args.recordId === "crash") process.exit(3);
  if (args.recordId === "hang") await new Promise(() => {});
  if (args.recordId === "slow") {
    const token = request.params._meta?.progressToken;
    for (let i = 1; i <= 3; i++) {
      await new Promise((r) => setTimeout(r, 50));
      if (token !== undefined)
        await extra.sendNotification({ method: "notifications/progress", params: { progressToken: token, progress: i, total: 3 } });
    }
  }
  return { content: [{ type: "text", text: JSON.stringify({ done: name, arguments: args }) }] };
});
await server.connect(new StdioServerTransport());
process.stderr.write(`counting-upstream ${process.pid} ready\n`);
