#!/usr/bin/env node
// Generates the Unicode tables behind the contract's "one case-folding rule"
// and "one idea of blank" (docs/contract.md §9), for the policy and the
// adapter alike, from the engines themselves:
//   - Rego's lower() as OPA's Go evaluator runs it (`opa eval`) and as OPA's
//     WASM evaluator runs it (a probe module built by the same `opa build -t
//     wasm`, run with @open-policy-agent/opa-wasm, as the adapter runs bundles),
//     on every code point;
//   - JavaScript's String.prototype.toLowerCase() on every code point, alone
//     and after a cased letter (Final_Sigma is the one contextual mapping);
//   - Unicode simple case folding, read from Node's regular expressions: with
//     the `iu` flags ECMA-262 matches two characters exactly when their simple
//     case foldings (CaseFolding.txt, statuses C and S) are equal
//     (Canonicalize, §22.2.2.7.3), so the classes come from Node's own Unicode
//     data without shipping a copy of CaseFolding.txt;
//   - White_Space, Default_Ignorable_Code_Point, Cc and Cf from Node's
//     property escapes.
//
// Writes (or, with --check, compares against what is committed and exits 1 on
// any difference):
//   policy/veto/crm/unicode.rego       _fold_table, _plain_key, _blank_character
//   policy/veto/crm/unicode_test.rego  the whole lists, for the Rego tests
//   adapter/common/unicode-tables.ts   the same tables for the adapter
//   adapter/python/veto_crm/unicode_tables.py  and for the Python adapter
//   test/fixtures/case-folding.json    every code point where the foldings differ
//
// usage: node scripts/unicode-tables.mjs <opa> --write | --check
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import * as prettier from "prettier";

const [opa, mode] = process.argv.slice(2);
if (!opa || (mode !== "--write" && mode !== "--check")) {
  console.error("usage: node scripts/unicode-tables.mjs <opa> --write | --check");
  process.exit(2);
}

const OUT = {
  rego: "policy/veto/crm/unicode.rego",
  regoTest: "policy/veto/crm/unicode_test.rego",
  ts: "adapter/common/unicode-tables.ts",
  python: "adapter/python/veto_crm/unicode_tables.py",
  fixture: "test/fixtures/case-folding.json",
};

const fail = (message) => {
  console.error(`unicode-tables: ${message}`);
  process.exit(1);
};
const hex = (cp) => cp.toString(16).toUpperCase().padStart(4, "0");
const chr = (cp) => String.fromCodePoint(cp);
const cpsOf = (s) => [...s].map((ch) => ch.codePointAt(0));

// Every code point a JSON string can carry (no surrogates).
const codePoints = [];
for (let cp = 0; cp <= 0x10ffff; cp++) if (cp < 0xd800 || cp > 0xdfff) codePoints.push(cp);
const CHUNK = 4096;
const chunks = [];
for (let i = 0; i < codePoints.length; i += CHUNK)
  chunks.push(
    codePoints
      .slice(i, i + CHUNK)
      .map(chr)
      .join(""),
  );
const allText = chunks.join("");

// ---------------------------------------------------------------- lower()
const work = mkdtempSync(join(tmpdir(), "veto-unicode-"));
let lowerGo;
let lowerWasm;
let opaVersion;
try {
  writeFileSync(join(work, "probe.rego"), "package probe\n\nlowered := [lower(s) | some s in input.chunks]\n");
  writeFileSync(join(work, "input.json"), JSON.stringify({ chunks }));
  opaVersion = /^Version: (.*)$/m.exec(execFileSync(opa, ["version"], { encoding: "utf8" }))?.[1] ?? "?";
  const go = JSON.parse(
    execFileSync(opa, ["eval", "-f", "raw", "-d", join(work, "probe.rego"), "-i", join(work, "input.json"), "data.probe.lowered"], {
      encoding: "utf8",
      maxBuffer: 1 << 28,
    }),
  );
  execFileSync(opa, ["build", "-t", "wasm", "-e", "probe/lowered", "-o", join(work, "probe.tar.gz"), join(work, "probe.rego")]);
  execFileSync("tar", ["-xzf", join(work, "probe.tar.gz"), "-C", work, "/policy.wasm"], { stdio: "ignore" });
  const policy = await loadPolicy(readFileSync(join(work, "policy.wasm")), { initial: 512 });
  const wasm = policy.evaluate({ chunks }, "probe/lowered")[0].result;
  const mapOf = (lowered, engine) => {
    const map = new Map();
    if (!Array.isArray(lowered) || lowered.length !== chunks.length) fail(`${engine} lower() gave no answer for every chunk`);
    lowered.forEach((text, i) => {
      const out = cpsOf(text);
      const inp = cpsOf(chunks[i]);
      // lower() maps each code point to exactly one code point on both engines.
      if (out.length !== inp.length) fail(`${engine} lower() changed the number of code points of chunk ${i}`);
      inp.forEach((cp, j) => {
        if (out[j] !== cp) map.set(cp, out[j]);
      });
    });
    return map;
  };
  lowerGo = mapOf(go, "Go");
  lowerWasm = mapOf(wasm, "WASM");
} finally {
  rmSync(work, { recursive: true, force: true });
}
const goLower = (cp) => lowerGo.get(cp) ?? cp;
const wasmLower = (cp) => lowerWasm.get(cp) ?? cp;

// ---------------------------------------------------------- toLowerCase()
const jsLower = (cp) => cpsOf(chr(cp).toLowerCase());
// After a cased letter, Σ lowers to ς (Final_Sigma); "A" + c lowered, minus the "a".
const jsLowerInContext = (cp) => cpsOf(`A${chr(cp)}`.toLowerCase()).slice(1);

// ------------------------------------------------- simple case folding (/iu)
const esc = (cp) => `\\u{${cp.toString(16)}}`;
// Every member of a class of two or more: the characters that change when case
// folded, and whatever /iu matches to them (the folding targets).
const foldable = [...allText.matchAll(/\p{Changes_When_Casefolded}/giu)].map((m) => m[0].codePointAt(0));
const foldableSet = new Set(foldable);
const foldableText = foldable.map(chr).join("");
const scfClasses = [];
const scfSeen = new Set();
for (const cp of foldable) {
  if (scfSeen.has(cp)) continue;
  const members = [...foldableText.matchAll(new RegExp(`[${esc(cp)}]`, "giu"))].map((m) => m[0].codePointAt(0));
  for (const m of members) scfSeen.add(m);
  scfClasses.push(members);
}
// No character outside that list folds like one in it.
const outside = [...allText.matchAll(new RegExp(`[${foldable.map(esc).join("")}]`, "giu"))]
  .map((m) => m[0].codePointAt(0))
  .filter((cp) => !foldableSet.has(cp));
if (outside.length > 0) fail(`simple case folding reaches beyond Changes_When_Casefolded: ${outside.map(hex).join(" ")}`);
const scfClassOf = new Map();
for (const members of scfClasses) for (const m of members) scfClassOf.set(m, members);
const sameScf = (a, b) => a === b || (scfClassOf.get(a)?.includes(b) ?? false);

// ------------------------------------------- the classes: all four foldings
const parent = new Map();
const find = (x) => {
  let root = x;
  while (parent.has(root) && parent.get(root) !== root) root = parent.get(root);
  return root;
};
const union = (a, b) => {
  const ra = find(a);
  const rb = find(b);
  if (!parent.has(ra)) parent.set(ra, ra);
  if (!parent.has(rb)) parent.set(rb, rb);
  if (ra !== rb) parent.set(Math.max(ra, rb), Math.min(ra, rb));
};
for (const members of scfClasses) for (const m of members) union(members[0], m);
for (const [cp, l] of lowerGo) union(cp, l);
for (const [cp, l] of lowerWasm) union(cp, l);
// toLowerCase may give more than one code point (İ gives i + U+0307): the
// first joins the class, the rest must fold to nothing.
const dropped = new Set();
for (const cp of codePoints) {
  for (const lowered of [jsLower(cp), jsLowerInContext(cp)]) {
    if (lowered.length === 0) fail(`toLowerCase() of U+${hex(cp)} is empty`);
    if (lowered[0] !== cp) union(cp, lowered[0]);
    for (const extra of lowered.slice(1)) dropped.add(extra);
  }
}
function groupClasses() {
  const classes = new Map();
  for (const cp of parent.keys()) {
    const root = find(cp);
    if (!classes.has(root)) classes.set(root, []);
    classes.get(root).push(cp);
  }
  for (const members of classes.values()) members.sort((a, b) => a - b);
  return classes;
}
const classes = [...groupClasses().values()].filter((m) => m.length > 1).sort((a, b) => a[0] - b[0]);
for (const d of dropped)
  if (classes.some((members) => members.includes(d))) fail(`U+${hex(d)}, which toLowerCase() adds, has a case of its own`);

// The fold key of a class: the member that both lower()s leave alone and most
// members lower to (Go's lower(), then the smallest code point, decides ties).
const foldTable = new Map(); // code point -> replacement string
for (const members of classes) {
  const fixed = members.filter((m) => goLower(m) === m && wasmLower(m) === m);
  if (fixed.length === 0) fail(`no member of {${members.map(hex).join(" ")}} is its own lower case on both engines`);
  const votes = new Map(fixed.map((m) => [m, 0]));
  for (const m of members) if (votes.has(goLower(m))) votes.set(goLower(m), votes.get(goLower(m)) + 1);
  const rep = [...votes].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0][0];
  for (const m of members) {
    if (goLower(m) !== rep || wasmLower(m) !== rep) foldTable.set(m, chr(rep));
  }
}
for (const d of dropped) foldTable.set(d, "");

// The fold key, as the policy computes it: the table, then lower(); per code point.
const foldOf = (cp) => (foldTable.has(cp) ? foldTable.get(cp) : chr(goLower(cp)));
const foldWasmOf = (cp) =>
  foldTable.has(cp)
    ? cpsOf(foldTable.get(cp))
        .map((c) => chr(wasmLower(c)))
        .join("")
    : chr(wasmLower(cp));
const foldText = (text) => cpsOf(text).map(foldOf).join("");

// Proof obligations, on every code point.
for (const cp of codePoints) {
  const key = foldOf(cp);
  if (foldWasmOf(cp) !== key) fail(`U+${hex(cp)}: the fold key differs between OPA's Go and WASM evaluators`);
  if (foldTable.has(cp) && cpsOf(foldTable.get(cp)).some((c) => goLower(c) !== c || wasmLower(c) !== c)) {
    fail(`U+${hex(cp)}: its replacement is not its own lower case`);
  }
  for (const [how, other] of [
    ["Go lower()", chr(goLower(cp))],
    ["WASM lower()", chr(wasmLower(cp))],
    ["toLowerCase()", chr(cp).toLowerCase()],
    ["toLowerCase() after a letter", jsLowerInContext(cp).map(chr).join("")],
  ]) {
    if (foldText(other) !== key) fail(`U+${hex(cp)} and its ${how} have different fold keys`);
  }
  for (const other of scfClassOf.get(cp) ?? []) {
    if (foldOf(other) !== key) fail(`U+${hex(cp)} and U+${hex(other)} fold alike (simple case folding) but have different fold keys`);
  }
  if (foldText(key) !== key) fail(`U+${hex(cp)}: the fold key is not its own fold key`);
}

// The policy's fast path for names in plain ASCII (text.rego): only these
// non-ASCII characters have an ASCII (or empty) fold key ...
const isAscii = (s) => /^[\0-\x7f]*$/.test(s);
const plainExtras = codePoints.filter((cp) => cp > 0x7f && isAscii(foldOf(cp)));
// ... and lower() alone does not give it for these:
const plainReplaced = plainExtras.filter((cp) => chr(goLower(cp)) !== foldOf(cp) || chr(wasmLower(cp)) !== foldOf(cp));
// Every other non-ASCII character keeps a non-ASCII lower case on both engines.
for (const cp of codePoints) {
  if (cp <= 0x7f || plainExtras.includes(cp)) continue;
  if (goLower(cp) <= 0x7f || wasmLower(cp) <= 0x7f) fail(`U+${hex(cp)} lowers to ASCII but its fold key does not`);
}

// Where the foldings disagree: every member of a class on which lower() (Go
// or WASM), toLowerCase() (alone or after a letter) and simple case folding
// do not all give the same partition and the same lower cases, and every
// character toLowerCase() adds.
const sameUnder = (f, a, b) => f(a) === f(b);
const foldings = {
  go: (cp) => chr(goLower(cp)),
  wasm: (cp) => chr(wasmLower(cp)),
  js: (cp) => chr(cp).toLowerCase(),
  jsContext: (cp) => jsLowerInContext(cp).map(chr).join(""),
};
const differing = [];
for (const members of classes) {
  let agree = members.every((m) => new Set(Object.values(foldings).map((f) => f(m))).size === 1);
  for (const a of members) {
    for (const b of members) {
      const under = [...Object.values(foldings).map((f) => sameUnder(f, a, b)), sameScf(a, b)];
      if (new Set(under).size > 1) agree = false;
    }
  }
  if (!agree) differing.push(members);
}
const differingPoints = [...new Set([...differing.flat(), ...dropped])].sort((a, b) => a - b);

// ------------------------------------------------------------------- blank
const blankPattern = /^[\p{White_Space}\p{Default_Ignorable_Code_Point}\p{Cc}\p{Cf}]$/u;
const blank = codePoints.filter((cp) => blankPattern.test(chr(cp)));
const blankRanges = [];
for (const cp of blank) {
  const last = blankRanges.at(-1);
  if (last !== undefined && last[1] === cp - 1) last[1] = cp;
  else blankRanges.push([cp, cp]);
}
// The Rego clauses below test U+0000..U+0020 with one comparison and leave
// the rest of ASCII out at once: hold Node to that shape.
if (blankRanges[0][0] !== 0 || blankRanges[0][1] !== 0x20) fail("U+0000..U+0020 is no longer exactly the first blank range");
if (blank.some((cp) => cp > 0x20 && cp < 0x7f)) fail("a printable ASCII character is blank");
const blankNeighbours = [
  ...new Set(
    blankRanges
      .flatMap(([lo, hi]) => [lo - 1, hi + 1])
      .filter((cp) => cp >= 0 && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff) && !blank.includes(cp)),
  ),
].sort((a, b) => a - b);

// Ranges this long are compared as ranges rather than listed in _blank_set.
const longBlankRanges = blankRanges.filter(([lo, hi]) => hi - lo >= 64);
/** Items as lines "\tA, B, ...," of at most 100 columns. */
const packed = (items) => {
  const lines = [];
  for (const item of items) {
    const last = lines.at(-1);
    if (last !== undefined && 4 + [...last, item].join(", ").length + 1 <= 100) last.push(item);
    else lines.push([item]);
  }
  return lines.map((line) => `\t${line.join(", ")},`).join("\n");
};

// ------------------------------------------------------------------ output
const unicodeVersion = process.versions.unicode;
const source = `OPA ${opaVersion} (lower() on its Go and WASM evaluators) and Node's Unicode ${unicodeVersion}`;
/** A Rego (JSON) string literal with every character outside printable ASCII escaped. */
const regoString = (s) =>
  `"${[...s]
    .map((ch) => {
      const cp = ch.codePointAt(0);
      if (cp >= 0x20 && cp < 0x7f && ch !== '"' && ch !== "\\") return ch;
      return Array.from({ length: ch.length }, (_, i) => `\\u${ch.charCodeAt(i).toString(16).padStart(4, "0")}`).join("");
    })
    .join("")}"`;

const foldEntries = [...foldTable].sort((a, b) => a[0] - b[0]);
const plainKey = plainReplaced.reduce((expr, cp) => `replace(${expr}, ${regoString(chr(cp))}, ${regoString(foldOf(cp))})`, "name");

const rego = `package veto.crm

# GENERATED by scripts/unicode-tables.mjs (make unicode) from
# ${source}.
# Do not edit: test/common/unicode-tables.test.ts fails when this file and those
# engines drift apart. What the tables are for: text.rego, docs/contract.md §9.

# The characters a name's fold key replaces before lower(): where lower() on
# OPA's Go evaluator, lower() on its WASM evaluator, JavaScript's toLowerCase()
# and Unicode simple case folding do not all agree, each character of such a
# class becomes the one member both lower()s leave alone; U+0307, which
# toLowerCase() adds after "i", is dropped.
_fold_table := {
${foldEntries.map(([cp, to]) => `\t${regoString(chr(cp))}: ${regoString(to)},`).join("\n")}
}

# The fold key of a name whose only characters outside ASCII have an ASCII fold
# key: lower() gives it once these are replaced (looked for first: replace()
# copies the name).
_plain_key(name) := lower(name) if {
${plainReplaced.map((cp) => `\tnot contains(name, ${regoString(chr(cp))})`).join("\n")}
} else := lower(${plainKey})

# A blank character: Unicode White_Space, Default_Ignorable_Code_Point, Cc or
# Cf. Strings compare by code point (UTF-8 byte order) on both evaluators.
# Cheap for the first character of a text, which nearly always decides.
_blank_character(ch) if ch <= " "

_blank_character(ch) if {
	ch >= "\\u007f"
	_blank_beyond_ascii(ch)
}
${blankRanges
  .slice(1)
  .map(([lo, hi]) => `\n_blank_beyond_ascii(ch) if {\n\tch >= ${regoString(chr(lo))}\n\tch <= ${regoString(chr(hi))}\n}\n`)
  .join("")}
# The same characters, for the other characters of a text that starts with a
# blank one: a lookup each (in _blank_set as an object, made once per data
# document on the WASM evaluator: derived.rego), but for the long ranges,
# compared as ranges.
_blank_member(ch) if _blank_lookup[ch]
${longBlankRanges.map(([lo, hi]) => `\n_blank_member(ch) if {\n\tch >= ${regoString(chr(lo))}\n\tch <= ${regoString(chr(hi))}\n}\n`).join("")}
_blank_set := {
${packed(blank.filter((cp) => !longBlankRanges.some(([lo, hi]) => cp >= lo && cp <= hi)).map((cp) => regoString(chr(cp))))}
}
`;

const regoTest = `package veto.crm_test

# GENERATED by scripts/unicode-tables.mjs (make unicode) from
# ${source}.
# Do not edit. The lists the tests in text_test.rego run through the policy.

# Every blank code point (White_Space, Default_Ignorable_Code_Point, Cc, Cf),
# in order, but for the inside of the long ranges (only their ends): the whole
# list runs through the real bundle in test/common/unicode-tables.test.ts.
# regal ignore:line-length
blank_characters := ${regoString(
  blank
    .filter((cp) => !longBlankRanges.some(([lo, hi]) => cp > lo && cp < hi))
    .map(chr)
    .join(""),
)}

# The first and last code point of each range of blank ones.
# regal ignore:line-length
blank_range_ends := ${regoString(
  blankRanges
    .flatMap(([lo, hi]) => (lo === hi ? [lo] : [lo, hi]))
    .map(chr)
    .join(""),
)}

# The code points just outside each range of blank ones: none of them is blank.
# regal ignore:line-length
blank_neighbours := ${regoString(blankNeighbours.map(chr).join(""))}

# The classes of characters on which lower() (Go, WASM), toLowerCase() and
# simple case folding disagree; the members of each have one fold key.
case_folding_classes := [
${differing.map((members) => `\t${regoString(members.map(chr).join(""))},`).join("\n")}
]
`;

const rangesTs = (pairs) => pairs.map((p) => `[0x${hex(p[0])}, 0x${hex(p[1])}]`).join(", ");
// Go's lower() outside the fold table, as runs [first, last, delta, step].
const lowerRuns = [];
for (const [cp, l] of [...lowerGo].filter(([cp]) => !foldTable.has(cp)).sort((a, b) => a[0] - b[0])) {
  const run = lowerRuns.at(-1);
  if (run !== undefined && run[2] === l - cp) {
    const gap = cp - run[1];
    if (run[0] === run[1] ? gap === 1 || gap === 2 : gap === run[3]) {
      run[3] = gap;
      run[1] = cp;
      continue;
    }
  }
  lowerRuns.push([cp, cp, l - cp, 1]);
}
const ts = `/**
 * GENERATED by scripts/unicode-tables.mjs (make unicode) from ${source}.
 * Do not edit: test/common/unicode-tables.test.ts fails when this file and those
 * engines drift apart. The same tables as policy/veto/crm/unicode.rego; what
 * they are for: adapter/common/text.ts, docs/contract.md §9.
 */

/** Characters a fold key replaces before lower-casing (unicode.rego's _fold_table), by code point. */
export const FOLD_TABLE: ReadonlyMap<number, string> = new Map<number, string>([
${foldEntries.map(([cp, to]) => `  [0x${hex(cp)}, ${JSON.stringify(to).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)}],`).join("\n")}
]);

/**
 * Rego's lower() outside FOLD_TABLE (where OPA's Go and WASM evaluators agree),
 * as runs [first, last, delta, step]: every step-th code point from first to
 * last lowers to itself plus delta.
 */
export const LOWER_RUNS: readonly (readonly [number, number, number, number])[] = [
${lowerRuns.map(([a, b, d, s]) => `  [0x${hex(a)}, 0x${hex(b)}, ${d}, ${s}],`).join("\n")}
];

/** Blank code points (White_Space, Default_Ignorable_Code_Point, Cc, Cf) as [first, last] ranges. */
export const BLANK_RANGES: readonly (readonly [number, number])[] = [${rangesTs(blankRanges)}];
`;

/** A Python string literal with every character outside printable ASCII escaped. */
const pyString = (str) =>
  `"${[...str]
    .map((ch) => {
      const cp = ch.codePointAt(0);
      if (cp >= 0x20 && cp < 0x7f && ch !== '"' && ch !== "\\") return ch;
      return cp > 0xffff ? `\\U${cp.toString(16).padStart(8, "0")}` : `\\u${cp.toString(16).padStart(4, "0")}`;
    })
    .join("")}"`;
const pyHex = (cp) => `0x${cp.toString(16).toUpperCase().padStart(4, "0")}`;
const python = `"""
GENERATED by scripts/unicode-tables.mjs (make unicode) from
${source}.
Do not edit: test/common/unicode-tables.test.ts fails when this file and those
engines drift apart. The same tables as policy/veto/crm/unicode.rego and
adapter/common/unicode-tables.ts; what they are for: text.py, docs/contract.md §9.
"""

from __future__ import annotations

#: Characters a fold key replaces before lower-casing (unicode.rego's _fold_table), by code point.
FOLD_TABLE: dict[int, str] = {
${foldEntries.map(([cp, to]) => `    ${pyHex(cp)}: ${pyString(to)},`).join("\n")}
}

#: Rego's lower() outside FOLD_TABLE (where OPA's Go and WASM evaluators agree), as runs
#: (first, last, delta, step): every step-th code point from first to last lowers to itself plus delta.
LOWER_RUNS: tuple[tuple[int, int, int, int], ...] = (
${lowerRuns.map(([a, b, d, st]) => `    (${pyHex(a)}, ${pyHex(b)}, ${d}, ${st}),`).join("\n")}
)

#: Blank code points (White_Space, Default_Ignorable_Code_Point, Cc, Cf) as (first, last) ranges.
BLANK_RANGES: tuple[tuple[int, int], ...] = (
${blankRanges.map(([a, b]) => `    (${pyHex(a)}, ${pyHex(b)}),`).join("\n")}
)
`;

const fixture = `${JSON.stringify(
  {
    generatedBy: "scripts/unicode-tables.mjs",
    source,
    note: "Every code point where lower() (OPA Go, OPA WASM), toLowerCase() and simple case folding differ, with what each gives.",
    codePoints: differingPoints.map((cp) => ({
      codePoint: `U+${hex(cp)}`,
      char: chr(cp),
      goLower: chr(goLower(cp)),
      wasmLower: chr(wasmLower(cp)),
      toLowerCase: chr(cp).toLowerCase(),
      toLowerCaseAfterLetter: jsLowerInContext(cp).map(chr).join(""),
      simpleCaseFoldingClass: (scfClassOf.get(cp) ?? [cp]).map(chr).join(""),
      foldKey: foldOf(cp),
    })),
  },
  null,
  1,
)}\n`;

// Check the LOWER_RUNS encoding decodes to Go's lower() outside the table.
const decoded = new Map();
for (const [a, b, d, s] of lowerRuns) for (let cp = a; cp <= b; cp += s) decoded.set(cp, cp + d);
for (const [cp, l] of lowerGo) if (!foldTable.has(cp) && decoded.get(cp) !== l) fail(`LOWER_RUNS misses U+${hex(cp)}`);
if ([...decoded.keys()].some((cp) => !lowerGo.has(cp) || foldTable.has(cp))) fail("LOWER_RUNS covers a code point it should not");

// opa fmt decides the Rego layout: format in a scratch folder first.
const scratch = mkdtempSync(join(tmpdir(), "veto-unicode-fmt-"));
const formatted = {};
try {
  for (const [key, text] of [
    ["rego", rego],
    ["regoTest", regoTest],
  ]) {
    const file = join(scratch, `${key}.rego`);
    writeFileSync(file, text);
    execFileSync(opa, ["fmt", "--write", file]);
    formatted[key] = readFileSync(file, "utf8");
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
// Prettier decides the TypeScript layout, with the repository's settings.
const tsFormatted = await prettier.format(ts, { ...(await prettier.resolveConfig(OUT.ts)), filepath: OUT.ts });
const outputs = { rego: formatted.rego, regoTest: formatted.regoTest, ts: tsFormatted, python, fixture };

if (mode === "--write") {
  for (const [key, text] of Object.entries(outputs)) writeFileSync(OUT[key], text);
  console.log(
    `unicode-tables: ${foldTable.size} fold-table entries, ${differingPoints.length} differing code points in ${differing.length} classes, ` +
      `${blank.length} blank code points in ${blankRanges.length} ranges (${source})`,
  );
} else {
  const stale = Object.entries(outputs).filter(([key, text]) => {
    try {
      return readFileSync(OUT[key], "utf8") !== text;
    } catch {
      return true;
    }
  });
  if (stale.length > 0) {
    fail(`${stale.map(([key]) => OUT[key]).join(", ")} differ from what ${source} give: run make unicode and commit`);
  }
  console.log(`unicode-tables: up to date with ${source}`);
}
