// The upstream of the MCP benchmark: the demo CRM's tool names, answering at
// once without touching anything, so that what is measured is the path.
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const server = new Server({ name: "bench-upstream", version: "1.0.0" }, { capabilities: { tools: {} } });
server.setRequestHandler(ListToolsRequestSchema, async () => ({
  tools: ["crm.read", "crm.update"].map((name) => ({ name, inputSchema: { type: "object", properties: {} } })),
}));
server.setRequestHandler(CallToolRequestSchema, async (request) => ({ content: [{ type: "text", text: request.params.name }] }));
await server.connect(new StdioServerTransport());
