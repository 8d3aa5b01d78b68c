#!/usr/bin/env node
// Prints the seeded differential calls of test/generate-calls.ts (the same
// generator the vitest differential test uses) as JSON lines, for tests in
// other languages: {config, call, recentDenies} per line.
//
// usage: node scripts/generate-calls.mjs SEED COUNT
import { build } from "esbuild";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const [seed, count] = process.argv.slice(2).map(Number);
if (!Number.isInteger(seed) || !Number.isInteger(count)) {
  console.error("usage: node scripts/generate-calls.mjs SEED COUNT");
  process.exit(2);
}
const source = fileURLToPath(new URL("../test/generate-calls.ts", import.meta.url));
const out = await build({ entryPoints: [source], bundle: true, format: "esm", platform: "node", write: false, logLevel: "error" });
const dir = mkdtempSync(join(tmpdir(), "veto-generate-calls-"));
try {
  const file = join(dir, "generate-calls.mjs");
  writeFileSync(file, out.outputFiles[0].text);
  const { generateCases, ALT_CONFIG } = await import(pathToFileURL(file).href);
  const lines = [JSON.stringify({ altConfig: ALT_CONFIG })];
  for (const c of generateCases(seed, count)) lines.push(JSON.stringify(c));
  process.stdout.write(`${lines.join("\n")}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
