// A child of multiprocess.test.ts: one application instance, as built
// (dist/index.js), on the PostgreSQL store with its records in the same
// database. It takes requests over IPC ({id, cmd, ...}) and answers each with
// {id, ok, value} or {id, ok: false, error: {name, code, message}}.
//
//   init     {url, schema, name, pollMs}    createVeto on the shared schema
//   protect  {calls}                        all calls at once; the decisions
//   wait     {decisionId, timeoutMs?}       waitForApproval
//   approve / reject {decisionId, reviewerId}
//   loop     {lanes, approver}              decide and answer until killed;
//                                           sends {event: "progress", n}
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";

const root = resolve(fileURLToPath(new URL(".", import.meta.url)), "../..");
const { createVeto } = await import(resolve(root, "dist/index.js"));
const { postgres } = await import(resolve(root, "dist/postgres.js"));

let veto;

function globex(actorId, args) {
  return {
    tool: "crm.update",
    arguments: { object: "opportunity", recordId: "opp_9", tenantId: "globex", changes: { close_date: "2026-12-01" }, ...args },
    context: { actorId, tenantId: "globex", environment: "production", reason: "multi-process test" },
  };
}

async function loop({ lanes, approver }) {
  const pending = [];
  let n = 0;
  const lane = async (i) => {
    for (let k = 0; ; k++) {
      const actor = `agent:l${i}-${k}`;
      switch (k % 4) {
        case 0:
          await veto.protect(globex(actor, { amount: 100 }));
          break;
        case 1: {
          const d = await veto.protect(globex(actor, { amount: 30000 }));
          if (d.action === "require_approval") pending.push(d.id);
          break;
        }
        case 2:
          await veto.protect(globex(actor, { destination: "https://gmail.com/x" }));
          break;
        default: {
          const id = pending.shift();
          if (id !== undefined) {
            await veto[k % 8 === 3 ? "approve" : "reject"]({ decisionId: id, reviewerId: approver }).catch(() => {});
          }
        }
      }
      n += 1;
      if (n % 10 === 0) process.send({ event: "progress", n });
    }
  };
  await Promise.all(Array.from({ length: lanes }, (_, i) => lane(i)));
}

const commands = {
  async init({ url, schema, name, pollMs }) {
    veto = await createVeto({
      bundle: resolve(root, ".build/test-bundles/crm.tar.gz"),
      logger: pino({ level: "error" }, pino.destination(2)),
      approvalPollMs: pollMs,
      store: postgres({ connectionString: url, schema, records: true, pool: { max: 20, application_name: name } }),
    });
    return process.pid;
  },
  protect: ({ calls }) => Promise.all(calls.map((call) => veto.protect(call))),
  wait: ({ decisionId, timeoutMs }) => veto.waitForApproval({ decisionId, ...(timeoutMs === undefined ? {} : { timeoutMs }) }),
  approve: ({ decisionId, reviewerId }) => veto.approve({ decisionId, reviewerId }),
  reject: ({ decisionId, reviewerId }) => veto.reject({ decisionId, reviewerId }),
  loop,
  async close() {
    await veto?.close();
    setImmediate(() => process.exit(0));
  },
};

process.on("message", (message) => {
  const { id, cmd } = message;
  Promise.resolve()
    .then(() => commands[cmd](message))
    .then(
      (value) => process.send({ id, ok: true, value }),
      (error) => process.send({ id, ok: false, error: { name: error?.name, code: error?.code, message: String(error?.message ?? error) } }),
    );
});
process.send({ event: "ready" });
