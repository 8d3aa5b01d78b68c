#!/usr/bin/env node
// Sums every .build/results/*.json ({passed, failed}) written by this run of
// `make test` and prints the closing line: "N passed, N failed".
// usage: node scripts/test-summary.mjs [MAKE_STATUS]
// A non-zero MAKE_STATUS with no failed test counted means a step that counts
// no tests (format, lint, stale bundles, a suite that did not start) failed:
// it is counted as one failure, so the line never reads "0 failed" for a red run.
import { existsSync, readdirSync, readFileSync } from "node:fs";

const dir = ".build/results";
const status = Number(process.argv[2] ?? 0);
let passed = 0;
let failed = 0;
for (const file of existsSync(dir) ? readdirSync(dir).sort() : []) {
  if (!file.endsWith(".json")) continue;
  const counts = JSON.parse(readFileSync(`${dir}/${file}`, "utf8"));
  passed += counts.passed;
  failed += counts.failed;
}
if (status !== 0 && failed === 0) {
  console.log(`make test failed (exit ${status}) in a step that counts no tests: see above`);
  failed = 1;
}
console.log(`${passed} passed, ${failed} failed`);
