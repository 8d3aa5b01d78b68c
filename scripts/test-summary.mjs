#!/usr/bin/env node
// Sums every .build/results/*.json ({passed, failed}) written by this run of
// `make test` and prints the closing line: "N passed, N failed".
import { existsSync, readdirSync, readFileSync } from "node:fs";

const dir = ".build/results";
let passed = 0;
let failed = 0;
for (const file of existsSync(dir) ? readdirSync(dir).sort() : []) {
  if (!file.endsWith(".json")) continue;
  const counts = JSON.parse(readFileSync(`${dir}/${file}`, "utf8"));
  passed += counts.passed;
  failed += counts.failed;
}
console.log(`${passed} passed, ${failed} failed`);
