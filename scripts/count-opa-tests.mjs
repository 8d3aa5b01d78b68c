#!/usr/bin/env node
// Reads `opa test --format json` on stdin, prints a one-line summary and
// records {passed, failed} in .build/results/NAME.json for the closing
// "N passed, N failed" line of `make test` (scripts/test-summary.mjs).
// Exits 1 when any test failed or errored, or when no test ran.
//
// usage: opa test --format json ... | node scripts/count-opa-tests.mjs NAME
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";

const name = process.argv[2] ?? "opa";
const raw = readFileSync(0, "utf8");
let results;
try {
  results = JSON.parse(raw);
} catch {
  console.error(raw);
  console.error(`${name}: opa test did not produce JSON (see above)`);
  process.exit(1);
}
const failures = results.filter((r) => r.fail || r.error);
for (const r of failures) {
  console.error(`FAIL ${r.package}.${r.name} (${r.location?.file}:${r.location?.row})${r.error ? `: ${JSON.stringify(r.error)}` : ""}`);
}
const passed = results.length - failures.length;
mkdirSync(".build/results", { recursive: true });
writeFileSync(`.build/results/${name}.json`, JSON.stringify({ passed, failed: failures.length }));
console.log(`${name}: ${passed} passed, ${failures.length} failed`);
process.exit(failures.length > 0 || results.length === 0 ? 1 : 0);
