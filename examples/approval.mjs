// Approvals: a production write above the tenant's approval_threshold waits
// for the system owner. A record-sink wrapper hands each pending approval to
// the owner (here a stub that approves; in your app a ticket or a chat message),
// and the guarded tool runs once the owner has approved.
// Run: node approval.mjs  (in a project where veto-crm is installed)
import { mkdirSync } from "node:fs";
import { createVeto, openFileLog, packagedBundlePath } from "veto-crm";

mkdirSync("./var", { recursive: true });
const log = await openFileLog("./var/approval-decisions.jsonl");

// The system owner's inbox. A decision record that requires approval names
// its decision_id and result.approvers; the owner answers with veto.approve
// (or veto.reject) as one of those approvers.
const owner = {
  notify(record) {
    console.log(`owner notified: ${record.decision_id} needs one of ${record.result.approvers.join(", ")}`);
    setTimeout(() => {
      const reviewerId = record.result.approvers[0];
      console.log(`owner approves as ${reviewerId}`);
      veto
        .approve({ decisionId: record.decision_id, reviewerId, note: "Discount agreed with the customer" })
        .catch((error) => console.error(`approval failed: ${error.message}`));
    }, 100);
  },
};

// Every record still goes to the log first: the approval is checked against it.
const recordSink = {
  async write(record) {
    await log.write(record);
    if (record.type === "decision" && record.result.action === "require_approval") owner.notify(record);
  },
};

const veto = await createVeto({ bundle: packagedBundlePath, recordSink });

// The tool, guarded: it runs only when allowed or approved, with exactly the decided arguments.
const update = veto.guard(
  "crm.update",
  async (args) => {
    console.log(`crm.update ran: ${args.recordId} amount ${args.changes.amount}`);
    return { ok: true };
  },
  { timeoutMs: 60_000 }, // wait at most a minute for the owner
);

const context = { actorId: "agent:sales-assistant", tenantId: "acme", environment: "production", reason: "Customer accepted the quote" };
await update({ object: "opportunity", recordId: "opp_456", tenantId: "acme", changes: { amount: 9000 } }, context);

await veto.close();
await log.close();
console.log("decision log: ./var/approval-decisions.jsonl (decision, approval)");
