/**
 * The MCP proxy's overhead per tools/call (BENCHMARKS.md): one MCP client
 * over stdio calling an upstream that answers at once (bench/mcp-upstream.mjs),
 * directly and through `veto mcp-proxy` as docs/mcp.md starts it (the shipped
 * bundle, the demo's data, records to a durable --log, each fdatasync'ed).
 * One call at a time: a host waits for each tool result.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport, getDefaultEnvironment } from "@modelcontextprotocol/sdk/client/stdio.js";
import { measureSequential } from "./measure.mjs";

const ROOT = resolve(import.meta.dirname, "..");
const UPSTREAM = resolve(ROOT, "bench/mcp-upstream.mjs");

/** Allowed calls (read_only, low_value), varied so nothing is cached by accident. */
function calls(count) {
  return Array.from({ length: count }, (_, i) =>
    i % 2 === 0
      ? { name: "crm.read", arguments: { object: "contact", recordId: `c_${i}`, tenantId: "acme", fields: ["name"] } }
      : {
          name: "crm.update",
          arguments: {
            object: "opportunity",
            recordId: `opp_${i}`,
            tenantId: "acme",
            changes: { close_date: "2027-01-31" },
            reason: "bench",
          },
        },
  );
}

async function measure(command, args, opts) {
  const client = new Client({ name: "bench-host", version: "1.0.0" });
  await client.connect(new StdioClientTransport({ command, args, cwd: ROOT, env: getDefaultEnvironment(), stderr: "ignore" }));
  try {
    const result = await measureSequential(
      calls(500),
      async (call) => {
        const r = await client.callTool(call);
        if (r.isError) throw new Error(`bench call refused: ${JSON.stringify(r.content)}`);
      },
      { warmupOps: 300, minOps: 2000, minMs: 3000, maxOps: 50_000, ...opts },
    );
    return result;
  } finally {
    await client.close();
  }
}

/** tools/call straight to the upstream. */
export function mcpDirect(opts = {}) {
  return measure(process.execPath, [UPSTREAM], opts);
}

/** tools/call through `veto mcp-proxy` (records to a durable file log). */
export async function mcpProxied(bundle, opts = {}) {
  const dir = mkdtempSync(join(tmpdir(), "veto-bench-mcp-"));
  try {
    return await measure(
      process.execPath,
      [
        resolve(ROOT, "dist/cli.js"),
        "mcp-proxy",
        "--bundle",
        bundle,
        "--data",
        resolve(ROOT, "scripts/demo/data.json"),
        "--log",
        join(dir, "decisions.jsonl"),
        "--actor",
        "agent:sales-assistant",
        "--tenant",
        "acme",
        "--environment",
        "production",
        "--",
        process.execPath,
        UPSTREAM,
      ],
      opts,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
