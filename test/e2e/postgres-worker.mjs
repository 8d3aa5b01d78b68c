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
import { pino } from "pino";
import { TEST_BUNDLE, answerCommands, globex as globexCall, loadDist, serve } from "../helpers/instance-child.mjs";

const { createVeto, postgres } = await loadDist();

let veto;

const globex = (actorId, args) => globexCall(actorId, args, "multi-process test");

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

serve({
  async init({ url, schema, name, pollMs }) {
    veto = await createVeto({
      bundle: TEST_BUNDLE,
      logger: pino({ level: "error" }, pino.destination(2)),
      approvalPollMs: pollMs,
      store: postgres({ connectionString: url, schema, records: true, pool: { max: 20, application_name: name } }),
    });
    return process.pid;
  },
  protect: ({ calls }) => Promise.all(calls.map((call) => veto.protect(call))),
  ...answerCommands(() => veto),
  loop,
});
