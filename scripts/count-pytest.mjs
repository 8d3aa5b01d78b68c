#!/usr/bin/env node
// Reads pytest's JUnit XML report and records {passed, failed} in
// .build/results/NAME.json for the closing line of `make test`.
// A report that is missing or unreadable (pytest did not run) counts as one failure.
// usage: node scripts/count-pytest.mjs REPORT.xml NAME
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";

const [report, name = "pytest"] = process.argv.slice(2);
let passed = 0;
let failed = 1;
let skipped = 0;
if (report !== undefined && existsSync(report)) {
  const xml = readFileSync(report, "utf8");
  const suites = [...xml.matchAll(/<testsuite\b([^>]*)>/g)].map((m) => m[1]);
  if (suites.length > 0) {
    const total = (attr) => suites.reduce((sum, s) => sum + Number(new RegExp(`\\b${attr}="(\\d+)"`).exec(s)?.[1] ?? 0), 0);
    const tests = total("tests");
    skipped = total("skipped");
    failed = total("failures") + total("errors");
    passed = tests - failed - skipped;
    if (tests === 0) failed = 1; // no test ran: not a green run
  }
}
mkdirSync(".build/results", { recursive: true });
writeFileSync(`.build/results/${name}.json`, JSON.stringify({ passed, failed }));
console.log(`${name}: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
