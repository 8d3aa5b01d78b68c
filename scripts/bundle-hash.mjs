#!/usr/bin/env node
// Prints a bundle's version hash (CONTRACT.md section 5): SHA-256 over the
// bundle's extracted files, never over the .tar.gz bytes (gzip and tar headers
// vary between packers). For each regular file, sorted by name (names without
// a leading "/" or "./"; ".signatures.json" excluded, so signing a bundle does
// not change its version), the digest takes: name, "\n", byte length in
// decimal, "\n", the raw bytes. The adapter computes the same value
// (adapter/policy/bundle.ts); test/bundle-hash.test.ts checks that the two agree.
//
// usage: node scripts/bundle-hash.mjs BUNDLE.tar.gz
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const bundle = process.argv[2];
if (!bundle) {
  console.error("usage: node scripts/bundle-hash.mjs BUNDLE.tar.gz");
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), "veto-bundle-"));
try {
  execFileSync("tar", ["-xzf", bundle, "-C", dir], { stdio: ["ignore", "ignore", "pipe"] });
  const files = readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)).split("\\").join("/"))
    .filter((name) => name !== ".signatures.json")
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const hash = createHash("sha256");
  for (const name of files) {
    const content = readFileSync(join(dir, name));
    hash.update(`${name}\n${content.length}\n`);
    hash.update(content);
  }
  console.log(`sha256:${hash.digest("hex")}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
