#!/usr/bin/env node
// The repository explains itself: every path a comment or doc names must
// exist in the repository (paths under dist/ and .build/, and any path git
// ignores, count as existing: they are built), nothing may point outside it
// (../, absolute paths, a contract file other than docs/contract.md), and
// nothing may cite an issue
// tracker's numbers, which a user of the package never sees.
//
//   node scripts/check-refs.mjs            check the tree; exit 1 listing each problem
//   node scripts/check-refs.mjs FILE...    check only these files (used by its own test)
//
// Migrations are checked too: a comment-only fix to an applied one lists its
// earlier checksum in adapter/postgres/migrations.ts (COMMENT_ONLY_EDITS).
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const BUILT = ["dist/", ".build/", "node_modules/", ".tools/"];
const SKIP = [
  /^bundles\//,
  /^test\/cases\//,
  /^test\/fixtures\//,
  /package-lock\.json$/,
  /^bench\/results\.json$/,
  /^bench\/baseline\//,
  /\.(tar\.gz|wasm|png|pem)$/,
];
const TOP = ["adapter", "policy", "test", "bundles", "scripts", "docs", "bench", "examples", "web", ".ci", ".build", "dist"];
const PATH_RE = new RegExp(
  String.raw`(?<![\w./@-])((?:\.\.?/)?(?:${TOP.map((t) => t.replace(".", "\\.")).join("|")})/[\w./*{}-]*[\w*}])`,
  "g",
);
const ROOT_FILES =
  /(?<![\w./-])(README\.md|BENCHMARKS\.md|CONTRIBUTING\.md|LICENSE|Makefile|package\.json|tsconfig(?:\.build)?\.json)(?![\w.-])/g;

function files(args) {
  if (args.length > 0) return args.map((f) => relative(root, resolve(process.cwd(), f)));
  return execFileSync("git", ["ls-files", "-co", "--exclude-standard"], { cwd: root, encoding: "utf8" })
    .split("\n")
    .filter((f) => f !== "" && existsSync(join(root, f)) && !SKIP.some((re) => re.test(f)));
}

/** The parts of a file that are prose: comments for code, everything for docs. */
function prose(file, text) {
  if (/\.(md|txt)$/.test(file) || file === "Makefile" || /\.(sh|rego|ya?ml|sql)$/.test(file) || file.startsWith(".ci/")) return text;
  if (/\.(ts|mts|mjs|js|cjs)$/.test(file)) {
    // Comments and test names (strings passed to it/test/describe).
    const out = [];
    for (const m of text.matchAll(/\/\/[^\n]*|\/\*[\s\S]*?\*\//g)) out.push({ index: m.index, text: m[0] });
    for (const m of text.matchAll(/\b(?:it|test|describe)(?:\.\w+)*\(\s*(["'`])((?:\\.|(?!\1)[^\\])*)\1/g))
      out.push({ index: m.index, text: m[2] });
    return out;
  }
  return "";
}

/** A path git ignores is built output (a signed bundle, a key pair): it exists once built. */
function ignored(ref) {
  try {
    execFileSync("git", ["check-ignore", "-q", "--no-index", ref], { cwd: root });
    return true;
  } catch {
    return false;
  }
}

function lineOf(text, index) {
  return text.slice(0, index).split("\n").length;
}

const problems = [];
for (const file of files(process.argv.slice(2))) {
  const full = join(root, file);
  let text;
  try {
    text = readFileSync(full, "utf8");
  } catch {
    continue;
  }
  const parts = prose(file, text);
  const chunks = typeof parts === "string" ? [{ index: 0, text: parts }] : parts;
  for (const chunk of chunks) {
    const report = (offset, message) => problems.push(`${file}:${lineOf(text, chunk.index + offset)}: ${message}`);
    for (const m of chunk.text.matchAll(/\b(?:issues?|tasks?)\s+#?\d+\b|(?<![\w&/-])#\d{1,4}\b(?![\w-])/gi)) {
      if (/^#\d/.test(m[0]) && /\.(md)$/.test(file) === false && !/^\s*(\/\/|\*|#)/.test(chunk.text)) continue;
      report(m.index, `names an issue number ("${m[0]}"); say what the code does and why instead`);
    }
    for (const m of chunk.text.matchAll(/(?<![\w/])(?:\.\.\/shared\/|\/work\/|CONTRACT\.md)/g)) {
      report(m.index, `points outside the repository ("${m[0]}"); cite docs/contract.md §N`);
    }
    for (const m of chunk.text.matchAll(PATH_RE)) {
      let ref = m[1].replace(/[.,:;)]+$/, "");
      if (/[*{}]/.test(ref)) ref = ref.slice(0, ref.search(/[*{}]/)).replace(/\/[^/]*$/, "/");
      if (ref.startsWith("./") || ref.startsWith("../")) ref = relative(root, normalize(join(dirname(full), ref)));
      if (ref.startsWith("..")) {
        report(m.index, `points outside the repository ("${m[1]}")`);
        continue;
      }
      if (BUILT.some((b) => ref.startsWith(b))) continue;
      if (!existsSync(join(root, ref)) && !ignored(ref)) report(m.index, `names ${m[1]}, which does not exist`);
    }
    for (const m of chunk.text.matchAll(ROOT_FILES)) {
      if (!existsSync(join(root, m[1])) && !(m[1] === "package.json" || m[1] === "LICENSE"))
        report(m.index, `names ${m[1]}, which does not exist`);
    }
  }
}

if (problems.length > 0) {
  console.error(problems.join("\n"));
  console.error(`check-refs: ${problems.length} reference(s) to fix`);
  process.exit(1);
}
console.log("check-refs: every path named in comments and docs exists; no issue numbers");
