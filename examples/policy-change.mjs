// A security team's policy change, checked before it ships: record what the
// agents did under the policy in force, then replay those calls against the
// same bundle with the proposed data (acme's approval threshold lowered from
// 5,000 to 2,000) and see exactly which verdicts would change.
// The command line does the same: npx veto replay --bundle BUNDLE --data new-data.json LOG
// Run: node policy-change.mjs  (in a project where veto-crm is installed)
import { mkdirSync, rmSync } from "node:fs";
import { createVeto, openFileLog, packagedBundlePath } from "veto-crm";
import { readLog, replayRecords } from "veto-crm/audit";
import { loadBundle } from "veto-crm/bundle";

// 1. A day of agent calls under the policy in force, recorded.
mkdirSync("./var", { recursive: true });
rmSync("./var/policy-change.jsonl", { force: true });
const log = await openFileLog("./var/policy-change.jsonl");
const veto = await createVeto({ bundle: packagedBundlePath, recordSink: log });
const context = { actorId: "agent:sales-assistant", tenantId: "acme", environment: "production", reason: "Quarter-end updates" };
const amounts = [500, 3000, 4500, 9000];
const amountOf = new Map(); // decision id → amount, to show the changes below
for (const [i, amount] of amounts.entries()) {
  const decision = await veto.protect({
    tool: "crm.update",
    arguments: { object: "opportunity", recordId: `opp_${i + 1}`, tenantId: "acme", changes: { amount } },
    context,
  });
  amountOf.set(decision.id, amount);
  console.log(`recorded: amount ${amount} → ${decision.action}`);
}
await veto.close();
await log.close();

// 2. The proposed change: the bundle's data document, with acme's threshold lowered.
// The document given as data replaces the bundle's whole, so start from it.
const { data } = await loadBundle(packagedBundlePath);
const proposed = structuredClone(data);
proposed.veto.config.tenants.acme.approval_threshold = 2000;

// 3. Replay the recorded calls against it.
const report = await replayRecords(await readLog(["./var/policy-change.jsonl"]), { bundle: packagedBundlePath, data: proposed });
console.log(`replayed ${report.decisions} decisions: ${report.changed.length} changed, ${report.unchanged} unchanged`);
for (const change of report.changed) {
  console.log(
    `  changed: amount ${amountOf.get(change.decision_id)}: ${change.old.action} (${change.old.codes.join(", ")}) → ${change.new.action} (${change.new.codes.join(", ")})`,
  );
}
console.log("summary:", JSON.stringify(report.summary));
