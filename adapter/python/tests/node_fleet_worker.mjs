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
import { createInterface } from "node:readline";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";

const ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");
const { createVeto } = await import(resolve(ROOT, "dist/index.js"));
const { postgres, migrate } = await import(resolve(ROOT, "dist/postgres.js"));
const BUNDLE = resolve(ROOT, ".build/test-bundles/crm.tar.gz");

let veto;

const commands = {
  async init({ url, schema, migrate: apply, pollMs, ttlMs, checkpointKey, checkpointEvery }) {
    veto = await createVeto({
      bundle: BUNDLE,
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
  async close() {
    await veto?.close();
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
