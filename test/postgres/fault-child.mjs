// A child of connection-loss.test.ts: one application instance, as built
// (dist/index.js), on the PostgreSQL store, whose connections the test
// terminates. It installs no handler of its own for uncaught errors: an
// 'error' nobody listens to ends it, which is what the test looks for.
// Requests over IPC ({id, cmd, ...}) are answered with {id, ok, value} or
// {id, ok: false, error: {name, code, message}}.
//
//   init     {url, schema, name, records, gated, pool, pollMs, ttlMs}
//   protect  {call}                        the decision
//   approve / reject {decisionId, reviewerId}
//   wait     {decisionId, timeoutMs?}
//   hold     {}   the next record writes of the custom sink wait (sends
//                 {event: "held", type} for each) until
//   release  {}
//   storm    {lanes, rounds, approver, prefix}  decide, answer and wait in
//                                           parallel lanes (actors agent:storm-<prefix>-...);
//                                           {outcomes by kind, allowed, approved, answered}
import { pino } from "pino";
import { TEST_BUNDLE, answerCommands, globex as globexCall, loadDist, serve } from "../helpers/instance-child.mjs";

const { createVeto, postgres } = await loadDist();

let veto;
let holding = false;
let released = Promise.resolve();
let release = () => {};

/** A record sink that keeps records in memory and, while held, waits before each write. */
const gatedSink = {
  records: [],
  async write(record) {
    if (holding) {
      process.send({ event: "held", type: record.type });
      await released;
    }
    this.records.push(record);
  },
};

const globex = (actorId, args) => globexCall(actorId, args, "connection-loss test");

/**
 * Every call settles; the outcomes are counted by kind ("allow:low_value",
 * "deny:record_unavailable", "approve:ApprovalError:already_answered", ...),
 * with the ids of what let a call run (an allow, a wait that resolved) and
 * of the answers given, for the test to find their records.
 */
async function storm({ lanes, rounds, approver, prefix }) {
  const outcomes = {};
  const allowed = [];
  const approved = [];
  const answered = [];
  const count = (key) => (outcomes[key] = (outcomes[key] ?? 0) + 1);
  const settle = async (kind, promise) => {
    try {
      const value = await promise;
      if (kind === "protect") count(`${value.action}:${value.reasons[0]?.code ?? ""}`);
      else count(`${kind}:ok`);
      return value;
    } catch (error) {
      count(`${kind}:${error?.name}:${error?.code}`);
      return undefined;
    }
  };
  const lane = async (i) => {
    for (let k = 0; k < rounds; k++) {
      const actor = `agent:storm-${prefix}-${i}-${k}`;
      const low = await settle("protect", veto.protect(globex(actor, { amount: 100 })));
      if (low?.action === "allow") allowed.push(low.id);
      const asked = await settle("protect", veto.protect(globex(actor, { amount: 30000 })));
      await settle("protect", veto.protect(globex(actor, { destination: "https://gmail.com/x" })));
      if (asked?.action === "require_approval") {
        const waiting = settle("wait", veto.waitForApproval({ decisionId: asked.id, timeoutMs: 3_000 }));
        const kind = k % 2 === 0 ? "approve" : "reject";
        const answer = await settle(kind, veto[kind]({ decisionId: asked.id, reviewerId: approver }));
        if (answer !== undefined) answered.push(asked.id);
        if ((await waiting) !== undefined) approved.push(asked.id);
      }
    }
  };
  await Promise.all(Array.from({ length: lanes }, (_, i) => lane(i)));
  return { outcomes, allowed, approved, answered };
}

serve({
  async init({ url, schema, name, records, gated, pool, pollMs, ttlMs }) {
    veto = await createVeto({
      bundle: TEST_BUNDLE,
      logger: pino({ level: "fatal" }, pino.destination(2)),
      approvalPollMs: pollMs ?? 100,
      approvalTtlMs: ttlMs ?? 3_600_000,
      ...(gated ? { recordSink: gatedSink } : {}),
      store: postgres({
        connectionString: url,
        schema,
        ...(records === undefined ? {} : { records }),
        pool: { application_name: name, ...pool },
      }),
    });
    return process.pid;
  },
  protect: ({ call }) => veto.protect(call),
  ...answerCommands(() => veto),
  hold() {
    holding = true;
    released = new Promise((r) => (release = r));
    return true;
  },
  release() {
    holding = false;
    release();
    return true;
  },
  storm,
  globex: ({ actorId, args }) => globex(actorId, args),
});
