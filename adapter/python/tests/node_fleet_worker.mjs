// A Node application instance for the mixed-fleet tests (tests/test_postgres_fleet.py): the built
// library (dist/) on the PostgreSQL store, driven by pytest over JSON lines. Each request on stdin,
// {id, cmd, ...}, is answered on stdout with {id, ok, value} or {id, ok: false, error: {name, code,
// message}}; requests run concurrently. It prints {event: "ready"} first, and exits when stdin ends.
//
//   init     {url, schema, migrate?, pollMs?, ttlMs?, checkpointKey?, checkpointEvery?}
//   migrate  {url, schema}                  the TypeScript migrator alone
//   protect  {calls}                        all calls at once; the decisions
//   approve / reject {decisionId, reviewerId}
//   wait     {decisionId, timeoutMs?, call?} waitForApproval (given the call: the use-once claim)
//   amend    {decisionId, reviewerId, arguments, note?}  veto.amend
//   follow   {decisionId, call, timeoutMs?}  what a guard does with a decision needing approval: wait
//            with the call, following amended calls; answers {decisionId, call} of the call that runs
//   (init's recordStateTable names a table (record_id, state) recordState reads the target's state from)
import { createInterface } from "node:readline";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";

const ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");
const { createVeto } = await import(resolve(ROOT, "dist/index.js"));
const { postgres, migrate } = await import(resolve(ROOT, "dist/postgres.js"));
const BUNDLE = resolve(ROOT, ".build/test-bundles/crm.tar.gz");

let veto;
let crm;

const commands = {
  async init({ url, schema, migrate: apply, pollMs, ttlMs, checkpointKey, checkpointEvery, recordStateTable }) {
    let recordState;
    if (recordStateTable !== undefined) {
      const { default: pg } = await import("pg");
      crm = new pg.Pool({ connectionString: url, max: 4 });
      recordState = async (call) => {
        const { rows } = await crm.query(`SELECT state FROM ${recordStateTable} WHERE record_id = $1`, [call.arguments.recordId]);
        return rows[0]?.state ?? undefined;
      };
    }
    veto = await createVeto({
      bundle: BUNDLE,
      ...(recordState === undefined ? {} : { recordState }),
      ...(ttlMs === undefined ? {} : { approvalTtlMs: ttlMs }),
      logger: pino({ level: "error" }, pino.destination(2)),
      approvalPollMs: pollMs ?? 60_000,
      store: postgres({
        connectionString: url,
        schema,
        migrate: apply === true,
        records: true,
        pool: { max: 20 },
        ...(checkpointKey === undefined ? {} : { checkpointKey, checkpointEvery }),
      }),
    });
    return process.pid;
  },
  migrate: ({ url, schema }) => migrate({ connectionString: url, schema }),
  protect: ({ calls }) => Promise.all(calls.map((call) => veto.protect(call))),
  approve: ({ decisionId, reviewerId }) => veto.approve({ decisionId, reviewerId }),
  reject: ({ decisionId, reviewerId }) => veto.reject({ decisionId, reviewerId }),
  wait: ({ decisionId, timeoutMs, call }) =>
    veto.waitForApproval({ decisionId, ...(timeoutMs === undefined ? {} : { timeoutMs }), ...(call === undefined ? {} : { call }) }),
  amend: ({ decisionId, reviewerId, arguments: args, note }) =>
    veto.amend({ decisionId, reviewerId, arguments: args, ...(note === undefined ? {} : { note }) }),
  async follow({ decisionId, call, timeoutMs }) {
    for (let hops = 0; hops < 16; hops++) {
      try {
        await veto.waitForApproval({ decisionId, call, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
        return { decisionId, call };
      } catch (error) {
        if (error?.code !== "amended" || error.amended === undefined) throw error;
        const { decision, call: next } = error.amended;
        if (decision.action === "allow") return { decisionId: decision.id, call: next };
        if (decision.action !== "require_approval") throw Object.assign(new Error(`denied: ${decision.reason}`), { code: "denied" });
        decisionId = decision.id;
        call = next;
      }
    }
    throw new Error("too many amendments");
  },
  async close() {
    await veto?.close();
    await crm?.end();
    crm = undefined;
    veto = undefined;
    return true;
  },
};

const send = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
const describeError = (error) => ({ name: error?.name, code: error?.code, message: String(error?.message ?? error) });

createInterface({ input: process.stdin })
  .on("line", (line) => {
    const { id, cmd, ...body } = JSON.parse(line);
    Promise.resolve()
      .then(() => commands[cmd](body))
      .then(
        (value) => send({ id, ok: true, value: value ?? null }),
        (error) => send({ id, ok: false, error: describeError(error) }),
      );
  })
  .on("close", () => {
    Promise.resolve(veto?.close()).finally(() => process.exit(0));
  });
send({ event: "ready" });
