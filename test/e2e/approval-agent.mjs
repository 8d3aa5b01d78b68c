// A child of serve.test.ts: an agent's application, as built (dist/index.js),
// on the PostgreSQL store with its records in the same schema, deciding with
// the test bundle. Requests over IPC ({id, cmd, ...}) are answered with
// {id, ok, value} or {id, ok: false, error: {name, code, message}}.
//
//   init    {url, schema, data?, ttlMs?}   createVeto on the shared schema
//   protect {call}                          the decision
//   guard   {call}                          a guarded tool run on the call; the runs so far
//   claim   {decisionId, call}              waitForApproval with the call (the use-once claim)
//   runs                                    how often the tool ran in this process
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";

const root = resolve(fileURLToPath(new URL(".", import.meta.url)), "../..");
const { createVeto } = await import(resolve(root, "dist/index.js"));
const { postgres } = await import(resolve(root, "dist/postgres.js"));

let veto;
let runs = 0;

const commands = {
  async init({ url, schema, data, ttlMs }) {
    veto = await createVeto({
      bundle: resolve(root, ".build/test-bundles/crm.tar.gz"),
      ...(data === undefined ? {} : { data }),
      logger: pino({ level: "error" }, pino.destination(2)),
      approvalPollMs: 200,
      ...(ttlMs === undefined ? {} : { approvalTtlMs: ttlMs }),
      store: postgres({ connectionString: url, schema, records: true }),
    });
    return process.pid;
  },
  protect: ({ call }) => veto.protect(call),
  async guard({ call }) {
    const tool = veto.guard(call.tool, () => ++runs);
    await tool(call.arguments, call.context);
    return runs;
  },
  claim: ({ decisionId, call }) => veto.waitForApproval({ decisionId, call }),
  runs: () => runs,
  async close() {
    await veto?.close();
    setImmediate(() => process.exit(0));
  },
};

process.on("message", async ({ id, cmd, ...body }) => {
  try {
    const value = await commands[cmd](body);
    process.send({ id, ok: true, value });
  } catch (error) {
    process.send({ id, ok: false, error: { name: error?.name, code: error?.code, message: String(error?.message ?? error) } });
  }
});
process.send({ event: "ready" });
