#!/usr/bin/env node
// The demo CRM as an MCP server on stdio: the tools crm.read, crm.search,
// crm.update, crm.create, crm.delete and crm.export over the demo's local CRM
// (scripts/demo/crm.mjs), with the contract's argument shape (docs/contract.md
// §1). It governs nothing itself: put `veto mcp-proxy` in front of it
// (docs/mcp.md, README "Any MCP server").
//
//   node scripts/demo/mcp-server.mjs [--crm PATH]   (default .build/mcp-demo/crm.json; created from the seed when absent)
//
// stdout is the MCP channel: diagnostics go to stderr.
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";
import { LocalCrm } from "./crm.mjs";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const args = process.argv.slice(2);
const at = args.indexOf("--crm");
const crm = new LocalCrm(at >= 0 ? resolve(args[at + 1]) : join(root, ".build", "mcp-demo", "crm.json"));

const object = z.enum(["account", "contact", "opportunity"]).describe("CRM object type");
const recordId = z.string().describe("The record's id, e.g. opp_1");
const tenantId = z.string().describe("The tenant that owns the record, e.g. acme");
const fields = z.array(z.string()).describe("Fields to read or export");
const changes = z.record(z.string(), z.unknown()).describe("Field -> new value");

const server = new McpServer({ name: "veto-demo-crm", version: "0.1.0" });
const answer = (value) => ({ content: [{ type: "text", text: JSON.stringify(value) }] });
// A CRM error (no such record) is the tool's error, not a crash.
const run = (fn) => async (input) => {
  try {
    return answer(fn(input));
  } catch (error) {
    return { isError: true, content: [{ type: "text", text: error instanceof Error ? error.message : String(error) }] };
  }
};

server.registerTool(
  "crm.read",
  {
    description: "Read one CRM record",
    inputSchema: { object, recordId, tenantId, fields: fields.optional() },
    annotations: { readOnlyHint: true },
  },
  run((a) => crm.read(a)),
);
server.registerTool(
  "crm.search",
  {
    description: "Search a tenant's records of one object type",
    inputSchema: { object, tenantId, query: z.string().optional(), fields: fields.optional() },
    annotations: { readOnlyHint: true },
  },
  run((a) => crm.search(a)),
);
server.registerTool(
  "crm.update",
  {
    description: "Change fields of one CRM record",
    inputSchema: { object, recordId, tenantId, changes, amount: z.number().optional().describe("Monetary value of the change") },
    annotations: { destructiveHint: true },
  },
  run((a) => crm.update(a)),
);
server.registerTool(
  "crm.create",
  {
    description: "Create a CRM record",
    inputSchema: { object, tenantId, recordId: recordId.optional(), changes, amount: z.number().optional() },
  },
  run((a) => crm.create(a)),
);
server.registerTool(
  "crm.delete",
  { description: "Delete one CRM record", inputSchema: { object, recordId, tenantId }, annotations: { destructiveHint: true } },
  run((a) => crm.delete(a)),
);
server.registerTool(
  "crm.export",
  {
    description: "Export a tenant's records of one object type to a destination",
    inputSchema: { object, tenantId, fields: fields.optional(), destination: z.string().describe("Where the rows are sent") },
    annotations: { openWorldHint: true },
  },
  run((a) => crm.export(a)),
);

await server.connect(new StdioServerTransport());
process.stderr.write(`veto-demo-crm: serving ${crm.path}\n`);
