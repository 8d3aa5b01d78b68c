// The tables behind "one case-folding rule" and "one idea of blank"
// (docs/contract.md §9), committed output of scripts/unicode-tables.mjs:
//   1. they are what the engines give today (the script's --check): a new
//      Node (Unicode data), a new OPA (its lower()) or a hand edit fails here;
//   2. adapter/common/text.ts agrees with Node's Unicode properties and case
//      mappings on every code point;
//   3. the policy's helpers, on OPA's Go evaluator (`opa eval`) and on its
//      WASM evaluator (a probe compiled from policy/ by the same `opa build -t
//      wasm`), give what adapter/common/text.ts gives, on every code point with a
//      case or a blank property, their neighbours, and a seeded sample of the
//      rest (OPA's Go evaluator takes minutes for all 1.1 million).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { foldKey, isBlank } from "../../adapter/common/text.js";
import { BLANK_RANGES, FOLD_TABLE, LOWER_RUNS } from "../../adapter/common/unicode-tables.js";
import { seededRandom } from "../helpers/generate-calls.js";
import { ROOT, requireOpa } from "../helpers/index.js";

const SEED = Number(process.env["VETO_UNICODE_SEED"] ?? 20260417);
const SAMPLE = Number(process.env["VETO_UNICODE_SAMPLE"] ?? 6000);

const CODE_POINTS: number[] = [];
for (let cp = 0; cp <= 0x10ffff; cp++) if (cp < 0xd800 || cp > 0xdfff) CODE_POINTS.push(cp);
const chr = (cp: number): string => String.fromCodePoint(cp);
const hex = (cp: number): string => `U+${cp.toString(16).toUpperCase().padStart(4, "0")}`;
const BLANK_PROPERTIES = /^[\p{White_Space}\p{Default_Ignorable_Code_Point}\p{Cc}\p{Cf}]$/u;
const ASCII = /^[\0-\x7f]*$/;

interface Fixture {
  codePoints: {
    char: string;
    goLower: string;
    wasmLower: string;
    toLowerCase: string;
    toLowerCaseAfterLetter: string;
    simpleCaseFoldingClass: string;
    foldKey: string;
  }[];
}
const FIXTURE = JSON.parse(readFileSync(resolve(ROOT, "test/fixtures/case-folding.json"), "utf8")) as Fixture;

/** The code points the policy is asked about: every one with a case or a blank property, their neighbours, ASCII and a seeded sample. */
function probedCodePoints(): number[] {
  const picked = new Set<number>();
  for (let cp = 0; cp < 0x80; cp++) picked.add(cp);
  for (const [first, last, delta, step] of LOWER_RUNS) for (let cp = first; cp <= last; cp += step) picked.add(cp).add(cp + delta);
  for (const [cp, to] of FOLD_TABLE) {
    picked.add(cp);
    for (const ch of to) picked.add(ch.codePointAt(0) as number);
  }
  for (const entry of FIXTURE.codePoints)
    for (const ch of entry.simpleCaseFoldingClass + entry.char) picked.add(ch.codePointAt(0) as number);
  for (const [first, last] of BLANK_RANGES) for (const cp of [first - 1, first, first + 1, last - 1, last, last + 1]) picked.add(cp);
  for (const cp of CODE_POINTS) if (BLANK_PROPERTIES.test(chr(cp)) && (cp < 0xe0000 || cp > 0xe0fff)) picked.add(cp);
  const random = seededRandom(SEED);
  for (let i = 0; i < SAMPLE; i++) picked.add(CODE_POINTS[Math.floor(random() * CODE_POINTS.length)] as number);
  return [...picked].filter((cp) => cp >= 0 && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff)).sort((a, b) => a - b);
}

const PROBE = `package probe

import data.veto.crm

folded := [crm._fold_key(ch) | some ch in input.chars]

plain := [crm._plain_key(ch) | some ch in input.chars]

blank_first := [_first(ch) | some ch in input.chars]

blank_member := [_member(ch) | some ch in input.chars]

_first(ch) if crm._blank_character(ch)

default _first(_) := false

_member(ch) if crm._blank_member(ch)

default _member(_) := false
`;

interface PolicyView {
  folded: string[];
  plain: string[];
  blank_first: boolean[];
  blank_member: boolean[];
}

const probed = probedCodePoints();
const chars = probed.map(chr);
let work: string;
const views: Partial<Record<"go" | "wasm", PolicyView>> = {};

beforeAll(async () => {
  const opa = requireOpa();
  work = mkdtempSync(join(tmpdir(), "veto-unicode-"));
  writeFileSync(join(work, "probe.rego"), PROBE);
  writeFileSync(join(work, "input.json"), JSON.stringify({ chars }));
  const policy = resolve(ROOT, "policy");
  const go = spawnSync(
    opa,
    [
      "eval",
      "-f",
      "raw",
      "--ignore",
      "*_test.rego",
      "-d",
      policy,
      "-d",
      join(work, "probe.rego"),
      "-i",
      join(work, "input.json"),
      "data.probe",
    ],
    { encoding: "utf8", maxBuffer: 1 << 28 },
  );
  if (go.status !== 0) throw new Error(`opa eval failed: ${go.stderr}`);
  views.go = JSON.parse(go.stdout) as PolicyView;

  const build = spawnSync(
    opa,
    ["build", "-t", "wasm", "--ignore", "*_test.rego", "-e", "probe", "-o", join(work, "probe.tar.gz"), policy, join(work, "probe.rego")],
    { encoding: "utf8" },
  );
  if (build.status !== 0) throw new Error(`opa build failed: ${build.stderr}`);
  spawnSync("tar", ["-xzf", join(work, "probe.tar.gz"), "-C", work, "/policy.wasm"]);
  const module = await loadPolicy(readFileSync(join(work, "policy.wasm")), { initial: 256 });
  views.wasm = (module.evaluate({ chars }, "probe") as { result: PolicyView }[])[0]?.result;
}, 300_000);

afterAll(() => {
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

describe("the generated Unicode tables", () => {
  it("are what OPA's lower() and Node's Unicode data give today (scripts/unicode-tables.mjs --check)", () => {
    const run = spawnSync("node", [resolve(ROOT, "scripts/unicode-tables.mjs"), requireOpa(), "--check"], { cwd: ROOT, encoding: "utf8" });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
  }, 300_000);

  it("adapter/common/text.ts: blank is exactly White_Space, Default_Ignorable_Code_Point, Cc and Cf, on every code point", () => {
    const wrong = CODE_POINTS.filter((cp) => isBlank(chr(cp)) !== BLANK_PROPERTIES.test(chr(cp)));
    expect(wrong.map(hex)).toEqual([]);
    expect(isBlank("")).toBe(true);
  });

  it("adapter/common/text.ts: a character and its toLowerCase() (alone, and after a letter) have one fold key, on every code point", () => {
    const wrong = CODE_POINTS.filter((cp) => {
      const key = foldKey(chr(cp));
      return foldKey(chr(cp).toLowerCase()) !== key || foldKey(`A${chr(cp)}`.toLowerCase()) !== `a${key}` || foldKey(key) !== key;
    });
    expect(wrong.map(hex)).toEqual([]);
  });

  it("adapter/common/text.ts: characters that simple case folding (the iu flags) joins have one fold key, on every code point with a case", () => {
    const classOf = new Map(FIXTURE.codePoints.map((e) => [e.char, e.simpleCaseFoldingClass]));
    const escape = (ch: string): string => `\\u{${(ch.codePointAt(0) as number).toString(16)}}`;
    const wrong: string[] = [];
    let compared = 0;
    for (const cp of CODE_POINTS) {
      const ch = chr(cp);
      const others = new Set([ch.toUpperCase(), ch.toLowerCase(), ...(classOf.get(ch) ?? "")]);
      others.delete(ch);
      for (const other of others) {
        if ([...other].length !== 1 || !new RegExp(`^${escape(other)}$`, "iu").test(ch)) continue;
        compared++;
        if (foldKey(other) !== foldKey(ch)) wrong.push(`${hex(cp)} ${other}`);
      }
    }
    expect(wrong).toEqual([]);
    expect(compared).toBeGreaterThan(2800);
  });

  it("adapter/common/text.ts gives the fold keys of the generated list of code points where the foldings differ", () => {
    expect(FIXTURE.codePoints.length).toBeGreaterThan(200);
    for (const e of FIXTURE.codePoints) {
      const key = foldKey(e.char);
      expect([e.char, key]).toEqual([e.char, e.foldKey]);
      for (const other of [e.goLower, e.wasmLower, e.toLowerCase, ...e.simpleCaseFoldingClass])
        expect([e.char, foldKey(other)]).toEqual([e.char, key]);
    }
  });

  for (const engine of ["go", "wasm"] as const) {
    describe(`the policy on OPA's ${engine === "go" ? "Go" : "WASM"} evaluator (seed ${SEED}, ${probed.length} code points)`, () => {
      const view = (): PolicyView => {
        const v = views[engine];
        if (v === undefined) throw new Error(`no answer from the ${engine} probe`);
        return v;
      };

      it("_fold_key is adapter/common/text.ts's foldKey", () => {
        const wrong = probed.filter((cp, i) => view().folded[i] !== foldKey(chr(cp)));
        expect(wrong.map(hex)).toEqual([]);
      });

      it("_plain_key is the fold key where that is ASCII, and outside ASCII where it is not (the shortcut of text.rego)", () => {
        const wrong = probed.filter((cp, i) => {
          const key = foldKey(chr(cp));
          const plain = view().plain[i] as string;
          return ASCII.test(key) ? plain !== key : ASCII.test(plain);
        });
        expect(wrong.map(hex)).toEqual([]);
      });

      it("_blank_character and _blank_member are adapter/common/text.ts's isBlank", () => {
        const wrong = probed.filter((cp, i) => view().blank_first[i] !== isBlank(chr(cp)) || view().blank_member[i] !== isBlank(chr(cp)));
        expect(wrong.map(hex)).toEqual([]);
      });
    });
  }
});
