// Child of crash-postgres.test.ts: one application instance (the built
// dist/) on the PostgreSQL store with its records in the same database,
// deciding under concurrent load until it is killed. For each decision whose
// protect() resolved (acknowledged) it prints "d <decision_id> <action>", and
// for each approval or rejection whose call resolved "a <decision_id>
// <approved|rejected>". stdout is a pipe, which Node writes synchronously on
// Linux, so every printed line reaches the parent even when SIGKILL follows.
//
// usage: node crash-postgres-child.mjs <url> <schema> <application name> <concurrency> <trial>
import { pino } from "pino";
import { TEST_BUNDLE, globex, loadDist } from "../helpers/instance-child.mjs";

const [url, schema, name, concurrency, trial] = process.argv.slice(2);
const { createVeto, postgres } = await loadDist();
const APPROVER = "user:sysadmin@globex.example";

const veto = await createVeto({
  bundle: TEST_BUNDLE,
  logger: pino({ level: "fatal" }),
  store: postgres({ connectionString: url, schema, migrate: false, records: true, pool: { max: 8, application_name: name } }),
});
process.stdout.write("ready\n");

const pending = [];
async function lane(i) {
  for (let k = 0; ; k++) {
    // Actors repeat within a trial and across trials, so deny histories (and escalations) build up.
    const actor = `agent:t${Number(trial) % 7}-l${i}-${k % 5}`;
    const kind = k % 5;
    if (kind === 1) {
      const id = pending.shift();
      if (id === undefined) continue;
      const answer = k % 10 === 1 ? "approve" : "reject";
      const ok = await veto[answer]({ decisionId: id, reviewerId: APPROVER }).then(
        () => true,
        () => false,
      );
      if (ok) process.stdout.write(`a ${id} ${answer === "approve" ? "approved" : "rejected"}\n`);
      continue;
    }
    // Needs approval, (answer), allowed, denied for the destination, denied above max_amount.
    const args = [{ amount: 30_000 }, undefined, { amount: 100 }, { destination: "https://gmail.com/x" }, { amount: 10_000_000 }][kind];
    const decision = await veto.protect(globex(actor, args, "crash soak"));
    const unrecorded = decision.reasons.some((r) => r.code === "record_unavailable");
    process.stdout.write(`d ${decision.id} ${unrecorded ? "unrecorded" : decision.action}\n`);
    if (decision.action === "require_approval") pending.push(decision.id);
  }
}
await Promise.all(Array.from({ length: Number(concurrency) }, (_, i) => lane(i)));
