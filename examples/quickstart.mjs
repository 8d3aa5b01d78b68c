// Quick start: decide one agent tool call, record it, run it if allowed.
// Run: node quickstart.mjs  (in a project where veto-crm is installed)
import { mkdirSync } from "node:fs";
import { createVeto, openFileLog, packagedBundlePath } from "veto-crm";

// Your code that writes to the CRM: a stub here.
async function executeTool(call) {
  return { ok: true, tool: call.tool, recordId: call.arguments.recordId };
}

mkdirSync("./var", { recursive: true });
const log = await openFileLog("./var/decisions.jsonl"); // durable, hash-chained
const veto = await createVeto({ bundle: packagedBundlePath, recordSink: log });

// What the agent asked for. What is decided is exactly what runs.
const call = {
  tool: "crm.update",
  arguments: { object: "opportunity", recordId: "opp_123", tenantId: "acme", changes: { close_date: "2026-12-01" } },
  context: {
    actorId: "agent:sales-assistant",
    tenantId: "acme",
    environment: "production",
    reason: "Customer asked to move the close date",
  },
};
const decision = await veto.protect(call);
console.log(`decision: ${decision.action} (${decision.reasons.map((r) => r.code).join(", ")})`);

if (decision.action === "deny") {
  console.log(`not run: ${decision.reason}`);
} else {
  if (decision.action === "require_approval") {
    // Rejects unless one of decision.approvers approves this very call within a minute.
    await veto.waitForApproval({ decisionId: decision.id, call, timeoutMs: 60_000 });
  }
  console.log("result:", JSON.stringify(await executeTool(call)));
}

await veto.close();
await log.close();
console.log("decision log: ./var/decisions.jsonl (check it with: npx veto log verify ./var/decisions.jsonl)");
