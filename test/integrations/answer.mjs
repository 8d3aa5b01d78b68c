// Another process answers an approval on the shared PostgreSQL schema, as a
// reviewer's approval service would: the built library (dist/), the test
// bundle, the store's records.
//   node answer.mjs URL SCHEMA DECISION_ID REVIEWER approve|reject
//   node answer.mjs URL SCHEMA DECISION_ID REVIEWER amend ARGUMENTS_JSON
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";

const root = resolve(fileURLToPath(new URL(".", import.meta.url)), "../..");
const { createVeto } = await import(resolve(root, "dist/index.js"));
const { postgres } = await import(resolve(root, "dist/postgres.js"));
const [url, schema, decisionId, reviewerId, how, amended] = process.argv.slice(2);
const veto = await createVeto({
  bundle: resolve(root, ".build/test-bundles/crm.tar.gz"),
  logger: pino({ level: "error" }, pino.destination(2)),
  store: postgres({ connectionString: url, schema, records: true }),
});
try {
  const answer =
    how === "amend"
      ? await veto.amend({ decisionId, reviewerId, arguments: JSON.parse(amended) })
      : await veto[how === "reject" ? "reject" : "approve"]({ decisionId, reviewerId });
  process.stdout.write(JSON.stringify({ pid: process.pid, answer }));
} finally {
  await veto.close();
}
