// What the PostgreSQL tests' application-instance children share
// (test/e2e/postgres-worker.mjs, test/postgres/fault-child.mjs): the built
// library (dist/), a globex call, and the command loop. Each child takes
// requests over IPC ({id, cmd, ...}) and answers each with {id, ok, value}
// or {id, ok: false, error: {name, code, message}}; it sends {event:
// "ready"} once it listens. No handler for uncaught errors is installed
// here: an 'error' nobody listens to still ends the child, which the
// connection-loss tests look for.
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "../..");
export const TEST_BUNDLE = resolve(ROOT, ".build/test-bundles/crm.tar.gz");

/** createVeto and postgres, as built (dist/index.js, dist/postgres.js). */
export async function loadDist() {
  const { createVeto } = await import(resolve(ROOT, "dist/index.js"));
  const { postgres } = await import(resolve(ROOT, "dist/postgres.js"));
  return { createVeto, postgres };
}

/** A crm.update of globex's opportunity by `actorId` in production, with `args` merged into its arguments. */
export function globex(actorId, args, reason) {
  return {
    tool: "crm.update",
    arguments: { object: "opportunity", recordId: "opp_9", tenantId: "globex", changes: { close_date: "2026-12-01" }, ...args },
    context: { actorId, tenantId: "globex", environment: "production", reason },
  };
}

/** An error as a reply carries it. */
export const describeError = (error) => ({ name: error?.name, code: error?.code, message: String(error?.message ?? error) });

/** The commands both children answer the same way, on the instance `instance()` gives. */
export function answerCommands(instance) {
  return {
    approve: ({ decisionId, reviewerId }) => instance().approve({ decisionId, reviewerId }),
    reject: ({ decisionId, reviewerId }) => instance().reject({ decisionId, reviewerId }),
    wait: ({ decisionId, timeoutMs }) => instance().waitForApproval({ decisionId, ...(timeoutMs === undefined ? {} : { timeoutMs }) }),
    async close() {
      await instance()?.close();
      setImmediate(() => process.exit(0));
    },
  };
}

/** Answer every request with `commands[cmd](request)`; then tell the parent this child is ready. */
export function serve(commands) {
  process.on("message", (message) => {
    const { id, cmd } = message;
    Promise.resolve()
      .then(() => commands[cmd](message))
      .then(
        (value) => process.send({ id, ok: true, value }),
        (error) => process.send({ id, ok: false, error: describeError(error) }),
      );
  });
  process.send({ event: "ready" });
}
