#!/usr/bin/env node
// Reads vitest's JSON report and records {passed, failed} in
// .build/results/NAME.json for the closing line of `make test`.
// usage: node scripts/count-vitest.mjs REPORT.json NAME
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";

const [report, name = "vitest"] = process.argv.slice(2);
const r = JSON.parse(readFileSync(report, "utf8"));
const passed = r.numPassedTests;
// A suite that failed to load counts as a failure even though it ran no test.
const failed = r.numFailedTests + (r.numFailedTestSuites > 0 && r.numFailedTests === 0 ? r.numFailedTestSuites : 0);
mkdirSync(".build/results", { recursive: true });
writeFileSync(`.build/results/${name}.json`, JSON.stringify({ passed, failed }));
console.log(`${name}: ${passed} passed, ${failed} failed${r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""}`);
