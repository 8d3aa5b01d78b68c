// A child of browser.test.ts: the CRM agent, in a process of its own, as
// built (dist/index.js), on the PostgreSQL store with its records in the same
// schema as the approval service. Its tool calls go through veto.guard, so an
// approval-needing call waits until someone answers in the browser. Requests
// over IPC ({id, cmd, ...}); answers {id, ok, value} or {id, ok: false, error}.
//
//   init   {url, schema, shortTtlMs}   two vetos: approvals last an hour, or shortTtlMs
//   call   {key, call, short?}         start a guarded call; later {event: "settled", key, ok, value | error}
//   runs   {}                          how often the tool ran, per key
//   ran    {}                          the arguments the tool last ran with, per key
//   version {recordId, state}          the record's state (recordState; undefined: none)
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";

const root = resolve(fileURLToPath(new URL(".", import.meta.url)), "../..");
const { createVeto } = await import(resolve(root, "dist/index.js"));
const { postgres } = await import(resolve(root, "dist/postgres.js"));

const vetos = {};
const runs = {};
const ran = {};
const tools = {};
/** The CRM's record versions as this process sees them: what approvals are bound to (docs/contract.md §6, record state). */
const versions = {};

const commands = {
  async init({ url, schema, shortTtlMs }) {
    for (const [name, ttl] of [
      ["normal", 60 * 60 * 1000],
      ["short", shortTtlMs],
    ]) {
      vetos[name] = await createVeto({
        bundle: resolve(root, ".build/test-bundles/crm.tar.gz"),
        logger: pino({ level: "error" }, pino.destination(2)),
        approvalPollMs: 200,
        approvalTtlMs: ttl,
        recordState: (call) => versions[call.arguments.recordId],
        store: postgres({ connectionString: url, schema, records: true, pool: { max: 4, application_name: `inbox-agent-${name}` } }),
      });
      // The CRM write the agent makes: counted, so the test sees it ran exactly once, or never.
      tools[name] = vetos[name].guard("crm.update", (args) => {
        runs[args.recordId] = (runs[args.recordId] ?? 0) + 1;
        ran[args.recordId] = args;
        process.send({ event: "ran", key: args.recordId });
        return { updated: args.recordId };
      });
    }
    return process.pid;
  },
  call({ call, short }) {
    const key = call.arguments.recordId;
    tools[short ? "short" : "normal"](call.arguments, call.context).then(
      (value) => process.send({ event: "settled", key, ok: true, value }),
      (error) => process.send({ event: "settled", key, ok: false, error: { name: error.name, code: error.code, message: error.message } }),
    );
    return key;
  },
  runs: () => runs,
  ran: () => ran,
  version({ recordId, state }) {
    if (state === undefined) delete versions[recordId];
    else versions[recordId] = state;
    return state ?? null;
  },
  async close() {
    for (const veto of Object.values(vetos)) await veto.close();
    setImmediate(() => process.exit(0));
  },
};

process.on("message", async (message) => {
  const { id, cmd, ...args } = message;
  try {
    process.send({ id, ok: true, value: await commands[cmd](args) });
  } catch (error) {
    process.send({ id, ok: false, error: { name: error.name, code: error.code, message: error.message } });
  }
});
process.send({ event: "ready" });
