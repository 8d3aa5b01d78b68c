#!/usr/bin/env node
// `make inbox`: the demo's CRM agent, governed by Veto, with the approval
// inbox (docs/inbox.md) on 127.0.0.1. Each call that needs approval waits
// until someone answers it in the browser; the script prints the inbox's
// address, a dev-login link, and a one-time sign-in link per approval.
// Uses only the built package (dist/), as an app would.
//
//   node scripts/demo/inbox.mjs [--port N] [--exit] [--dir DIR]
//
// --port 0 picks a free port; --exit ends once the agent is done (otherwise
// the inbox stays up for its history until Ctrl-C).
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createServer } from "node:net";
import { parseArgs } from "node:util";
import { createVeto, openFileLog, InMemoryStore, VetoDeniedError, ApprovalError } from "../../dist/index.js";
import { createApprovalServer } from "../../dist/server.js";
import { LocalCrm, crmPathIn } from "./crm.mjs";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const { values } = parseArgs({
  options: { port: { type: "string", default: "8787" }, exit: { type: "boolean", default: false }, dir: { type: "string" } },
});
const dir = resolve(values.dir ?? join(root, ".build", "inbox"));
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

const OWNER = "user:crm-owner@acme.example";
const crm = new LocalCrm(crmPathIn(dir), { reset: true });
const log = await openFileLog(join(dir, "decisions.jsonl"));
const silent = { info() {}, warn() {}, error() {}, debug() {}, child: () => silent };
const say = (line) => process.stdout.write(`${line}\n`);
let current = "";
const sink = {
  async write(record) {
    await log.write(record);
    // A call that needs approval: say where to answer it (a moment later, once the store has it).
    if (record.type === "decision" && record.result.action === "require_approval") setTimeout(() => void announce(record.decision_id), 25);
  },
  close: () => log.close(),
};
async function announce(id) {
  const link = await app.signInLinks.linkFor(OWNER, id).catch(() => undefined);
  say(`waiting for approval: ${current}`);
  say(`  answer it at ${origin}/approvals/${id}`);
  if (link !== undefined) say(`  or with a one-time sign-in link for ${OWNER}: ${link}`);
}
const store = new InMemoryStore();
const data = JSON.parse(readFileSync(join(root, "scripts", "demo", "data.json"), "utf8"));
// Each CRM record keeps a version (scripts/demo/crm.mjs): an approval is bound to the version the
// record had when the call asked (docs/contract.md §6, record state).
const targetOf = (call) => ({ ...call.arguments, tenantId: call.arguments.tenantId ?? call.context?.tenantId });
const veto = await createVeto({
  bundle: join(root, "bundles", "crm.tar.gz"),
  data,
  store,
  recordSink: sink,
  logger: silent,
  recordState: (call) => crm.version(targetOf(call)),
});

// The inbox in this process, on the same store: answers wake the waiting calls at once.
const port = values.port === "0" ? await freePort() : Number(values.port);
const approverIds = [...new Set(Object.values(data.veto.config.tenants).flatMap((t) => t.approvers))];
const origin = `http://127.0.0.1:${port}`;
const app = await createApprovalServer({
  veto,
  store,
  auth: { devLogin: { approverIds } },
  inbox: { publicUrl: origin },
  // Before and after: each card shows the CRM's current values beside the agent's new ones, and
  // the version they were read at beside the one the approval is bound to.
  readRecord: (call) => {
    const target = targetOf(call);
    const state = crm.version(target);
    if (state === undefined) return undefined;
    const fields = crm.read({ tenantId: target.tenantId, object: target.object, recordId: target.recordId });
    delete fields.recordId;
    return { fields, state };
  },
});
await app.listen({ host: "127.0.0.1", port });
say(`Veto inbox: ${origin}/`);
say(`sign in as the acme owner: ${origin}/dev-login?reviewer=${encodeURIComponent(OWNER)}`);
say("(development sign-in: anyone on this machine can answer as any approver; never in production)\n");

const tenantOf = (a, ctx) => a.tenantId ?? ctx.tenantId;
const tools = {
  "crm.read": veto.guard("crm.read", (a, ctx) => crm.read({ ...a, tenantId: tenantOf(a, ctx) })),
  "crm.update": veto.guard("crm.update", (a, ctx) => crm.update({ ...a, tenantId: tenantOf(a, ctx) })),
  "crm.export": veto.guard("crm.export", (a, ctx) => crm.export({ ...a, tenantId: tenantOf(a, ctx) })),
};
const sales = { actorId: "agent:sales-assistant", tenantId: "acme", environment: "production", sourceSystem: "demo-crm" };
const steps = [
  {
    label: "read a contact",
    tool: "crm.read",
    context: sales,
    arguments: { object: "contact", recordId: "c_ana", fields: ["name", "company"] },
  },
  {
    label: "move a close date (low value)",
    tool: "crm.update",
    context: { ...sales, reason: "Customer asked to move the close date" },
    arguments: { object: "opportunity", recordId: "opp_1", tenantId: "acme", changes: { close_date: "2026-12-20" } },
  },
  {
    label: "close a 48,000 deal in production",
    tool: "crm.update",
    context: { ...sales, reason: "Signed order form received" },
    arguments: {
      object: "opportunity",
      recordId: "opp_2",
      tenantId: "acme",
      changes: { close_date: "2026-12-01", name: "Acme expansion (signed)" },
      amount: 48000,
    },
  },
  {
    label: "raise a credit limit (sensitive field)",
    tool: "crm.update",
    context: { ...sales, reason: "Customer asked for more credit" },
    arguments: { object: "account", recordId: "acc_1", tenantId: "acme", changes: { credit_limit: 90000 } },
  },
  {
    label: "export contacts to pastebin",
    tool: "crm.export",
    context: { ...sales, reason: "Backup" },
    arguments: { object: "contact", fields: ["name", "company"], destination: "https://pastebin.com/raw/q1" },
  },
];

const rows = [];
for (const step of steps) {
  current = step.label;
  const running = tools[step.tool](step.arguments, step.context);
  let outcome;
  try {
    await running;
    outcome = step.arguments.changes
      ? `done: ${step.arguments.recordId} ${Object.entries(step.arguments.changes)
          .map(([k, v]) => `${k} → ${v}`)
          .join(", ")}`
      : "done";
  } catch (error) {
    if (error instanceof VetoDeniedError) outcome = `denied: ${error.decision.reasons.map((r) => r.code).join(", ")}`;
    else if (error instanceof ApprovalError) outcome = `not run: ${error.code}`;
    else throw error;
  }
  rows.push({ label: step.label, outcome });
  say(`${step.label.padEnd(40)} ${outcome}`);
}

say("\nthe agent is done; decisions in " + join(dir, "decisions.jsonl"));
const close = async () => {
  await app.close();
  await veto.close();
  await log.close();
  await store.close();
};
if (values.exit) {
  await close();
} else {
  say(`the inbox stays up for its history at ${origin}/history (Ctrl-C to stop)`);
  await new Promise((resolveStop) => {
    process.once("SIGINT", resolveStop);
    process.once("SIGTERM", resolveStop);
  });
  await close();
}

function freePort() {
  return new Promise((resolvePort) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}
