// Another process restores a paused run from its serialized RunState, waits
// for the reviewer's answer on PostgreSQL, then resumes the run.
//   node resume-child.mjs URL SCHEMA < state     prints "restored <decisionId>", then the outcome as JSON
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { RunState, run } from "@openai/agents";
import { pino } from "pino";
import { buildAgent } from "./agent.mjs";

const root = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");
const { createVeto } = await import(resolve(root, "dist/index.js"));
const { postgres } = await import(resolve(root, "dist/postgres.js"));
const { vetoAgents } = await import(resolve(root, "dist/openai-agents.js"));
const [url, schema] = process.argv.slice(2);
const veto = await createVeto({
  bundle: resolve(root, ".build/test-bundles/crm.tar.gz"),
  logger: pino({ level: "silent" }),
  approvalPollMs: 50,
  store: postgres({ connectionString: url, schema, records: true }),
});
try {
  const agents = vetoAgents({ veto, context: (rc) => rc.context.app, toolNames: { crm_update: "crm.update" } });
  const { agent, runs } = buildAgent(agents);
  const state = await RunState.fromString(agent, readFileSync(0, "utf8"));
  const [pending] = agents.pendingApprovals(state);
  process.stdout.write(`restored ${pending.decisionId}\n`);
  // Waits (observing, not claiming) for the reviewer's answer, given from yet another process.
  await veto.waitForApproval({ decisionId: pending.decisionId, timeoutMs: 30_000 });
  state.approve(pending.item);
  const result = await run(agent, state);
  process.stdout.write(JSON.stringify({ pid: process.pid, finalOutput: result.finalOutput, runs }) + "\n");
} finally {
  await veto.close();
}
