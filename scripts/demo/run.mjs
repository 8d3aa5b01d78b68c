#!/usr/bin/env node
// The demo: a scripted CRM agent session governed by Veto, walking every row of
// the risk table. Uses only the built package (dist/), as an app would.
//
//   node scripts/demo/run.mjs [--json] [--dir DIR]
//
// The agent's tools are ordinary functions over a real local CRM
// (scripts/demo/crm.mjs), each wrapped with veto.guard: a denied call never
// reaches the CRM, an approval-required call waits for the system owner.
// Every decision, approval and rejection goes to a durable, hash-chained
// decision log whose checkpoints are signed with a development Ed25519 key
// (.build/keys, made by scripts/dev-keys.sh), and which is verified at the
// end with the public key.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createVeto, openFileLog, VetoDeniedError, ApprovalError } from "../../dist/index.js";
import { verifyLog } from "../../dist/audit.js";
import { LocalCrm, crmPathIn } from "./crm.mjs";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const args = process.argv.slice(2);
const json = args.includes("--json");
const dirArg = args.indexOf("--dir");
const dir = resolve(dirArg >= 0 ? args[dirArg + 1] : join(root, ".build", "demo"));

rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const crm = new LocalCrm(crmPathIn(dir), { reset: true });
const before = crm.snapshot();
const logPath = join(dir, "decisions.jsonl");
// A development key only: a real deployment keeps the signing key out of the log's reach (docs/decision-log.md).
const signingKeyPath = join(root, ".build", "keys", "dev-ed25519-private.pem");
const publicKeyPath = join(root, ".build", "keys", "dev-ed25519-public.pem");
if (!existsSync(signingKeyPath) || !existsSync(publicKeyPath)) {
  execFileSync("bash", [join(root, "scripts", "dev-keys.sh")], { stdio: ["ignore", "ignore", "inherit"] });
}

// Approval requests reach the system owner through the record stream, as they
// would through a ticket or chat integration.
const reviewQueue = [];
const waiting = [];
const log = await openFileLog(logPath, { checkpointKey: readFileSync(signingKeyPath) });
const sink = {
  async write(record) {
    await log.write(record);
    // An amended call's own decision is answered by its amendment, not queued for the owner again.
    if (record.type === "decision" && record.result.action === "require_approval" && record.amended_from === undefined) {
      // The owner looks a moment later, once protect() has returned.
      setTimeout(() => {
        const next = waiting.shift();
        if (next) next(record);
        else reviewQueue.push(record);
      }, 25);
    }
  },
  close: () => log.close(),
};
const nextReview = () => (reviewQueue.length ? Promise.resolve(reviewQueue.shift()) : new Promise((r) => waiting.push(r)));

const incidents = [];
const silent = {
  info() {},
  warn() {},
  error() {},
  debug() {},
  child() {
    return silent;
  },
};
// The shipped policy with the demo's own data document (scripts/demo/data.json),
// as an application replaces the data; the demo's story stays the same when a
// security team changes policy/data.json.
const veto = await createVeto({
  bundle: join(root, "bundles", "crm.tar.gz"),
  data: JSON.parse(readFileSync(join(root, "scripts", "demo", "data.json"), "utf8")),
  recordSink: sink,
  logger: silent,
  onEscalation: (e) =>
    incidents.push({ decisionId: e.decision.id, actorId: e.actorId, tenantId: e.tenantId, recentDenies: e.recentDenies }),
  // An approval is bound to the version of the record it changes (docs/contract.md §6):
  // a record written between approval and execution refuses the call (record_changed).
  recordState: (call) => crm.version({ ...call.arguments, tenantId: call.arguments.tenantId ?? call.context.tenantId }),
});

// The agent's tools: plain functions over the CRM, each behind veto.guard.
const tenantOf = (a, ctx) => a.tenantId ?? ctx.tenantId;
const tools = {
  "crm.read": veto.guard("crm.read", (a, ctx) => crm.read({ ...a, tenantId: tenantOf(a, ctx) })),
  "crm.search": veto.guard("crm.search", (a, ctx) => crm.search({ ...a, tenantId: tenantOf(a, ctx) })),
  "crm.update": veto.guard("crm.update", (a, ctx) => crm.update({ ...a, tenantId: tenantOf(a, ctx) })),
  "crm.export": veto.guard("crm.export", (a, ctx) => crm.export({ ...a, tenantId: tenantOf(a, ctx) })),
};

const OWNER = "user:crm-owner@acme.example";
const sales = { actorId: "agent:sales-assistant", tenantId: "acme", environment: "production", sourceSystem: "demo-crm" };
const support = { actorId: "agent:support-triage", tenantId: "acme", environment: "production", sourceSystem: "demo-crm" };
const globexBot = { actorId: "agent:globex-ops", tenantId: "globex", environment: "production", sourceSystem: "demo-crm" };

const steps = [
  {
    label: "read a contact's name and company",
    tool: "crm.read",
    context: sales,
    arguments: { object: "contact", recordId: "c_ana", fields: ["name", "company"] },
  },
  { label: "search opportunities", tool: "crm.search", context: sales, arguments: { object: "opportunity", query: "acme" } },
  {
    label: "move a close date (low value)",
    tool: "crm.update",
    context: { ...sales, reason: "Customer asked to move the close date" },
    arguments: { object: "opportunity", recordId: "opp_1", tenantId: "acme", changes: { close_date: "2026-12-20" } },
  },
  {
    label: "close a 48,000 deal in production",
    tool: "crm.update",
    review: "approve",
    context: { ...sales, reason: "Signed order form received" },
    arguments: { object: "opportunity", recordId: "opp_2", tenantId: "acme", changes: { stage: "closed_won" }, amount: 48000 },
  },
  {
    label: "raise a credit limit (sensitive field)",
    tool: "crm.update",
    review: "self-then-reject",
    context: { ...sales, reason: "Customer asked for more credit" },
    arguments: { object: "account", recordId: "acc_1", tenantId: "acme", changes: { credit_limit: 90000 } },
  },
  {
    label: "write another tenant's record",
    tool: "crm.update",
    context: { ...sales, reason: "Update the website" },
    arguments: { object: "account", recordId: "acc_9", tenantId: "globex", changes: { website: "https://evil.example" } },
  },
  {
    label: "write without a reason",
    tool: "crm.update",
    context: support,
    arguments: { object: "opportunity", recordId: "opp_3", tenantId: "acme", changes: { close_date: "2026-12-01" } },
  },
  {
    label: "export contacts to pastebin",
    tool: "crm.export",
    context: { ...support, reason: "Backup" },
    arguments: { object: "contact", fields: ["name", "company"], destination: "https://pastebin.com/raw/q1" },
  },
  {
    label: "amount sent as a string",
    tool: "crm.update",
    context: { ...globexBot, reason: "Pilot pricing" },
    arguments: { object: "opportunity", recordId: "opp_9", tenantId: "globex", amount: "9000", changes: { amount: 9000 } },
  },
  {
    label: "retry the other tenant's record",
    tool: "crm.update",
    context: { ...sales, reason: "Update the website, again" },
    arguments: { object: "account", recordId: "acc_9", tenantId: "globex", changes: { website: "https://evil.example" } },
  },
  {
    label: "retry once more",
    tool: "crm.update",
    context: { ...sales, reason: "Update the website, third try" },
    arguments: { object: "account", recordId: "acc_9", tenantId: "globex", changes: { website: "https://evil.example" } },
  },
  {
    label: "then a harmless read",
    tool: "crm.read",
    context: sales,
    arguments: { object: "contact", recordId: "c_raj", fields: ["name"] },
  },
  {
    label: "push out a 12,000 close date; a colleague edits the record first",
    tool: "crm.update",
    review: "edited-then-approve",
    context: { ...support, reason: "Customer moved the kickoff" },
    arguments: { object: "opportunity", recordId: "opp_3", tenantId: "acme", changes: { close_date: "2027-03-31" }, amount: 12000 },
  },
  {
    label: "reprice a 9,000 renewal; the owner amends it to 7,500",
    tool: "crm.update",
    review: "amend",
    context: { ...support, reason: "Customer asked for a renewal quote" },
    arguments: { object: "opportunity", recordId: "opp_1", tenantId: "acme", changes: { amount: 9000 }, amount: 9000 },
    amended: { object: "opportunity", recordId: "opp_1", tenantId: "acme", changes: { amount: 7500 }, amount: 7500 },
  },
];

const rows = [];
for (const step of steps) {
  const row = {
    label: step.label,
    actor: step.context.actorId,
    tenant: step.context.tenantId,
    tool: step.tool,
    executed: false,
    review: [],
  };
  const pending = tools[step.tool](step.arguments, step.context).then(
    (result) => ({ ok: true, result }),
    (error) => ({ ok: false, error }),
  );
  if (step.review) {
    const request = await nextReview();
    row.decision = request.decision_id;
    if (step.review === "self-then-reject") {
      try {
        await veto.approve({ decisionId: request.decision_id, reviewerId: step.context.actorId });
        row.review.push("self-approval accepted?!");
      } catch (error) {
        row.review.push(`self-approval refused (${error.code})`);
      }
      await veto.reject({ decisionId: request.decision_id, reviewerId: OWNER, note: "Credit changes go through finance" });
      row.review.push(`rejected by ${OWNER}`);
      row.rejected = true;
    } else if (step.review === "amend") {
      // The owner fixes the call rather than rejecting it: a new decision, approved by the amendment.
      const amended = await veto.amend({
        decisionId: request.decision_id,
        reviewerId: OWNER,
        arguments: step.amended,
        note: "7,500, not 9,000",
      });
      row.review.push(`amended by ${OWNER} (${amended.decision.action}${amended.approval ? ", approved" : ""})`);
      row.amendedTo = amended.decision.id;
    } else if (step.review === "edited-then-approve") {
      // Another user writes the record in the CRM (not through the agent) while the approval is open:
      // the owner approves what they saw, but the record is no longer in that state.
      crm.update({
        tenantId: "acme",
        object: "opportunity",
        recordId: step.arguments.recordId,
        changes: { name: "Acme services (renamed)" },
      });
      row.review.push("record edited by a colleague");
      await veto.approve({ decisionId: request.decision_id, reviewerId: OWNER, note: "Fine as shown" });
      row.review.push(`approved by ${OWNER}`);
    } else {
      await veto.approve({ decisionId: request.decision_id, reviewerId: OWNER, note: "Order form checked" });
      row.review.push(`approved by ${OWNER}`);
    }
  }
  const outcome = await pending;
  if (outcome.ok) {
    row.executed = true;
    row.effect = describe(step, outcome.result);
  } else if (outcome.error instanceof VetoDeniedError) {
    row.effect = "denied before execution";
    row.decisionObject = outcome.error.decision;
  } else if (outcome.error instanceof ApprovalError) {
    // A rejected approval counts towards escalation as a deny does (docs/contract.md §9).
    row.effect = `not executed (${outcome.error.code}${row.rejected ? "; counts as a deny towards escalation" : ""})`;
  } else {
    throw outcome.error;
  }
  rows.push(row);
}

function describe(step, result) {
  if (step.amended && result?.amount === step.amended.changes.amount) {
    return `${step.arguments.recordId}: amount → ${result.amount} (as amended)`;
  }
  if (step.tool === "crm.read") return `read ${Object.keys(result).length - 1} field(s)`;
  if (step.tool === "crm.search") return `found ${result.length} record(s)`;
  if (step.tool === "crm.export") return `exported ${result.exported} row(s)`;
  return `${step.arguments.recordId}: ${Object.entries(step.arguments.changes)
    .map(([k, v]) => `${k} → ${v}`)
    .join(", ")}`;
}

await veto.close();
await log.close(); // signs the close checkpoint
const after = crm.snapshot();

// Attach each row's decision as recorded (the log is the evidence).
const entries = readFileSync(logPath, "utf8")
  .trim()
  .split("\n")
  .map((l) => JSON.parse(l));
const records = entries.filter((e) => !("checkpoint" in e));
// One decision per row: an amended call's own decision (amended_from) belongs to the row it amends.
const decisions = records.filter((r) => r.type === "decision" && r.amended_from === undefined);
rows.forEach((row, i) => {
  const d = decisions[i];
  row.decision = d.decision_id;
  row.action = d.result.action;
  row.escalated = d.result.escalated;
  row.reasons = d.result.reasons.map((r) => r.code);
});
// Which earlier rows each incident's count is made of: the same actor and
// tenant's denies and rejected approvals (docs/contract.md §9: a rejected
// approval counts as a deny). Checked against the count the adapter gave.
for (const incident of incidents) {
  const at = rows.findIndex((r) => r.decision === incident.decisionId);
  incident.row = at + 1;
  incident.countedRows = rows
    .slice(0, at)
    .flatMap((r, i) =>
      r.actor === incident.actorId && r.tenant === incident.tenantId && (r.action === "deny" || r.rejected) ? [i + 1] : [],
    );
  incident.rejectedRows = incident.countedRows.filter((n) => rows[n - 1].rejected);
}
const verified = await verifyLog([logPath], { publicKeys: readFileSync(publicKeyPath, "utf8"), requireCheckpointed: true });

const summary = {
  bundle: veto.bundle,
  steps: rows.map(({ decisionObject: _decision, ...r }) => r),
  incidents,
  crm: { path: crm.path, before, after },
  log: { path: logPath, records: records.length, checkpoints: entries.length - records.length, publicKey: publicKeyPath, verified },
};

if (json) {
  console.log(JSON.stringify(summary, null, 2));
} else {
  printHuman(summary);
}

function printHuman(s) {
  const tty = process.stdout.isTTY && !process.env.NO_COLOR;
  const paint = (code, text) => (tty ? `\x1b[${code}m${text}\x1b[0m` : text);
  const verdictColour = { allow: 32, deny: 31, require_approval: 33 };
  const rel = (p) => relative(process.cwd(), p) || p;
  console.log(paint(1, "Veto for CRM writes — a governed agent session"));
  console.log(`bundle ${s.bundle.revision} ${s.bundle.hash}\n`);
  const table = s.steps.map((r, i) => [
    String(i + 1),
    r.actor.replace("agent:", ""),
    `${r.tool} ${r.label}`,
    r.action + (r.escalated ? " ⚠ escalated" : ""),
    r.reasons.join(", "),
    [r.review.join("; "), r.effect].filter(Boolean).join(" → "),
  ]);
  const head = ["#", "actor", "call", "verdict", "reasons", "what happened to the CRM"];
  const widths = head.map((h, c) => Math.max(h.length, ...table.map((row) => row[c].length)));
  const line = (cells, colour) =>
    cells
      .map((cell, c) => {
        const padded = c === cells.length - 1 ? cell : cell.padEnd(widths[c]);
        return c === 3 && colour ? paint(colour, padded) : padded;
      })
      .join("  ");
  console.log(paint(1, line(head)));
  for (const [i, row] of table.entries()) {
    console.log(line(row, s.steps[i].escalated ? 35 : verdictColour[s.steps[i].action]));
  }
  console.log();
  for (const incident of s.incidents) {
    const rowList = (ns) => (ns.length === 1 ? `row ${ns[0]}` : `rows ${ns.slice(0, -1).join(", ")} and ${ns.at(-1)}`);
    const counted =
      incident.countedRows.length === incident.recentDenies
        ? `: ${rowList(incident.countedRows)}${incident.rejectedRows.length > 0 ? ` (${rowList(incident.rejectedRows)}: a rejected approval, which counts as a deny)` : ""}`
        : "";
    console.log(
      paint(
        35,
        `row ${incident.row}: incident review opened for ${incident.actorId} in ${incident.tenantId} after ${incident.recentDenies} denies${counted} (decision ${incident.decisionId})`,
      ),
    );
  }
  console.log(`\nCRM (${rel(s.crm.path)}), the records the agent tried to change:`);
  const watch = [
    ["acme", "opportunity", "opp_1", "close_date"],
    ["acme", "opportunity", "opp_2", "stage"],
    ["acme", "account", "acc_1", "credit_limit"],
    ["globex", "account", "acc_9", "website"],
    ["acme", "opportunity", "opp_3", "close_date"],
    ["globex", "opportunity", "opp_9", "amount"],
    ["acme", "opportunity", "opp_3", "name"],
  ];
  for (const [t, o, id, f] of watch) {
    const b = s.crm.before.tenants[t][o][id][f];
    const a = s.crm.after.tenants[t][o][id][f];
    console.log(
      `  ${`${t}/${o}/${id}.${f}`.padEnd(36)} ${String(b).padEnd(22)} → ${String(a).padEnd(22)} ${a === b ? "unchanged" : paint(32, "changed")}`,
    );
  }
  console.log(`  exports: ${s.crm.after.exports.length}`);
  const v = s.log.verified;
  const signed = v.ok ? `, every entry covered by a checkpoint signed with ${v.checkpoints.last.checkpoint.key_id}` : "";
  console.log(
    `\ndecision log ${rel(s.log.path)}: ${s.log.records} records, ${s.log.checkpoints} checkpoints; verify with the public key: ${v.ok ? paint(32, `ok, head ${v.head}${signed}`) : paint(31, `FAILED at ${v.file}:${v.line}: ${v.reason}`)}`,
  );
  console.log(`try: node dist/cli.js log verify ${rel(s.log.path)} --public-key ${rel(s.log.publicKey)} --require-checkpointed`);
}
