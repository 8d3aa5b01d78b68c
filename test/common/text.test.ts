// One case-folding rule and one idea of blank (docs/contract.md §9), on the
// real bundle: the adapter (checkCall, the record masker, replay), the policy
// on the WASM evaluator the adapter runs, and the policy on OPA's Go
// evaluator (the Rego bundle, one `opa eval` for the whole batch) answer alike
// on every code point of the generated lists:
//   - test/fixtures/case-folding.json: where lower() (Go, WASM), toLowerCase()
//     and simple case folding differ (scripts/unicode-tables.mjs);
//   - every code point with White_Space, Default_Ignorable_Code_Point, Cc or
//     Cf, from Node's property escapes, and those just outside them.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadBundle } from "../../adapter/policy/bundle.js";
import { PolicyEvaluator } from "../../adapter/policy/evaluator.js";
import { openFileLog, readLog, replayRecords } from "../../adapter/audit/index.js";
import type { DecisionEventRecord } from "../../adapter/index.js";
import { DEFAULT_INPUT_LIMITS, checkCall } from "../../adapter/call/input.js";
import { readPolicyData } from "../../adapter/policy/data.js";
import { RecordMasker } from "../../adapter/records/records.js";
import { foldKey, isBlank } from "../../adapter/common/text.js";
import { seededRandom } from "../helpers/generate-calls.js";
import { BUNDLE, REGO_BUNDLE, ROOT, bundleData, codes, makeVeto, read, requireBundle, requireOpa, write } from "../helpers/index.js";

type Json = Record<string, unknown>;
type Config = Record<string, unknown>;

interface FixtureEntry {
  codePoint: string;
  char: string;
  goLower: string;
  wasmLower: string;
  toLowerCase: string;
  toLowerCaseAfterLetter: string;
  simpleCaseFoldingClass: string;
  foldKey: string;
}
const DIFFERING = (JSON.parse(readFileSync(resolve(ROOT, "test/fixtures/case-folding.json"), "utf8")) as { codePoints: FixtureEntry[] })
  .codePoints;

const CODE_POINTS: number[] = [];
for (let cp = 0; cp <= 0x10ffff; cp++) if (cp < 0xd800 || cp > 0xdfff) CODE_POINTS.push(cp);
const BLANK_PROPERTIES = /^[\p{White_Space}\p{Default_Ignorable_Code_Point}\p{Cc}\p{Cf}]$/u;
const BLANK = CODE_POINTS.filter((cp) => BLANK_PROPERTIES.test(String.fromCodePoint(cp))).map((cp) => String.fromCodePoint(cp));
const BLANK_NEIGHBOURS = [
  ...new Set(
    CODE_POINTS.filter((cp) => BLANK_PROPERTIES.test(String.fromCodePoint(cp)))
      .flatMap((cp) => [cp - 1, cp + 1])
      .filter((cp) => cp >= 0 && (cp < 0xd800 || cp > 0xdfff) && cp <= 0x10ffff && !BLANK_PROPERTIES.test(String.fromCodePoint(cp))),
  ),
].map((cp) => String.fromCodePoint(cp));

/** The spellings of a character that some folding joins to it: the contract says each names it (fail closed). */
function joinedSpellings(e: FixtureEntry): string[] {
  return [...new Set([e.char, e.goLower, e.wasmLower, e.toLowerCase, e.toLowerCaseAfterLetter, ...e.simpleCaseFoldingClass, e.foldKey])];
}
/** Other spellings, which may or may not fold alike; the parts must agree on them all the same. */
function otherSpellings(e: FixtureEntry): string[] {
  return [...new Set([e.char.toUpperCase(), `${e.char}\u0307`, "x"])].filter((s) => !joinedSpellings(e).includes(s));
}

// A field name that carries the character where a real one might (TAX_İD).
const field = (s: string, upper: boolean): string => (upper ? `TAX_${s}D` : `tax_${s}d`);
const amountField = (s: string, upper: boolean): string => (upper ? `REFUND_${s}AMOUNT` : `refund_${s}amount`);

interface Case {
  /** What the test says about it. */
  label: string;
  config: Config;
  call: Json;
  /** The contract's answer where it fixes one (a folding joins the names); undefined where only agreement is asked. */
  joined: boolean | undefined;
}

/** An answer with its members in one order, to compare as text. */
function answerText(a: unknown): string {
  const { action, escalated, reasons, approvers } = a as {
    action: string;
    escalated: boolean;
    reasons: { code: string; message: string }[];
    approvers: string[];
  };
  return JSON.stringify([action, escalated, reasons.map((r) => [r.code, r.message]), approvers]);
}

function policyInput(call: Json): Json {
  return { ...call, history: { recentDenies: 0 } };
}

/**
 * Every case decided by OPA's Go evaluator on the Rego bundle, one process;
 * with the bundle's own data document when `ownData` (`with data` makes every
 * evaluation start from scratch).
 */
function decideOnGo(cases: readonly { config: Config; call: Json }[], ownData = false): { action: string; reasons: { code: string }[] }[] {
  const dir = mkdtempSync(join(tmpdir(), "veto-text-"));
  try {
    writeFileSync(
      join(dir, "batch.rego"),
      [
        "package batch",
        "",
        "results := [r |",
        "\tsome item in input.batch",
        ownData
          ? "\tr := data.veto.crm.decision with input as item.input"
          : "\tr := data.veto.crm.decision with input as item.input with data.veto.config as item.config",
        "]",
        "",
      ].join("\n"),
    );
    writeFileSync(
      join(dir, "batch.json"),
      JSON.stringify({ batch: cases.map((c) => ({ config: ownData ? undefined : c.config, input: policyInput(c.call) })) }),
    );
    const run = spawnSync(
      requireOpa(),
      ["eval", "-f", "raw", "-b", REGO_BUNDLE, "-d", join(dir, "batch.rego"), "-i", join(dir, "batch.json"), "data.batch.results"],
      { encoding: "utf8", maxBuffer: 1 << 28 },
    );
    if (run.status !== 0) throw new Error(`opa eval failed (${run.status}): ${run.stderr}`);
    return JSON.parse(run.stdout) as { action: string; reasons: { code: string }[] }[];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const evaluators = new Map<string, PolicyEvaluator>();
async function decideOnWasm(config: Config, call: Json): Promise<{ action: string; reasons: { code: string }[] }> {
  const key = JSON.stringify(config);
  let evaluator = evaluators.get(key);
  if (evaluator === undefined) {
    const loaded = await loadBundle(requireBundle());
    evaluator = await PolicyEvaluator.create(loaded.wasm, { veto: { config } });
    evaluators.set(key, evaluator);
  }
  const evaluation = await evaluator.evaluate(policyInput(call) as never);
  if (!evaluation.ok) throw new Error(`WASM evaluation failed: ${evaluation.error.message}`);
  return evaluation.answer;
}

const baseConfig = (): Config => bundleData().veto.config;

describe("one case-folding rule: the record masker masks exactly what the policy calls sensitive", () => {
  const cases: Case[] = [];
  const configs: Config[] = [];
  // Sixteen characters of the list per data document: the policy folds every
  // configured name once a call's name is outside ASCII.
  for (let at = 0; at < DIFFERING.length; at += 16) {
    const group = DIFFERING.slice(at, at + 16);
    // The data names each character of the list; the call spells it otherwise.
    const byChar = { ...baseConfig(), sensitive_fields: { "*": group.map((e) => field(e.char, false)) } };
    // The data spells it otherwise; the call names the character.
    const bySpelling = { ...baseConfig(), sensitive_fields: { "*": group.flatMap((e) => joinedSpellings(e).map((s) => field(s, false))) } };
    configs.push(byChar, bySpelling);
    for (const upper of [false, true]) {
      for (const e of group) {
        for (const s of joinedSpellings(e)) {
          cases.push({
            label: `${e.codePoint} as ${JSON.stringify(s)}`,
            config: byChar,
            call: write({ changes: { [field(s, upper)]: `v${cases.length}` } }),
            joined: true,
          });
        }
        for (const s of otherSpellings(e)) {
          cases.push({
            label: `${e.codePoint} as ${JSON.stringify(s)}`,
            config: byChar,
            call: write({ changes: { [field(s, upper)]: `v${cases.length}` } }),
            joined: undefined,
          });
        }
        cases.push({
          label: `${e.codePoint} in the call`,
          config: bySpelling,
          call: write({ changes: { [field(e.char, upper)]: `v${cases.length}` } }),
          joined: true,
        });
      }
    }
  }
  let go: { action: string; reasons: { code: string }[] }[] = [];
  const wasm: { action: string; reasons: { code: string }[] }[] = [];
  const masked: boolean[] = [];

  beforeAll(async () => {
    go = decideOnGo(cases);
    const vetos = new Map<Config, Awaited<ReturnType<typeof makeVeto>>>();
    for (const config of configs) vetos.set(config, await makeVeto({ data: { veto: { config } } }));
    for (const c of cases) {
      wasm.push(await decideOnWasm(c.config, c.call));
      const { veto, sink } = vetos.get(c.config) as Awaited<ReturnType<typeof makeVeto>>;
      const decision = await veto.protect(c.call);
      const record = sink.last() as DecisionEventRecord;
      const name = Object.keys((c.call["arguments"] as { changes: Json }).changes)[0] as string;
      const value = (c.call["arguments"] as { changes: Json }).changes[name] as string;
      const isMasked = record.masked.includes(`/input/arguments/changes/${name}`);
      // Masked means the value is nowhere in the record.
      expect(isMasked, c.label).toBe(!JSON.stringify(record).includes(`"${value}"`));
      expect(decision.action, c.label).toBe(wasm.at(-1)?.action);
      masked.push(isMasked);
    }
    for (const { veto } of vetos.values()) await veto.close();
  }, 300_000);

  it(`covers every code point of the generated list (${DIFFERING.length}), each in ${cases.length} calls`, () => {
    expect(DIFFERING.length).toBeGreaterThan(200);
    expect(go).toHaveLength(cases.length);
    expect(wasm).toHaveLength(cases.length);
  });

  it("OPA's Go evaluator and the WASM evaluator give the same answer on every call", () => {
    const diverging = cases.filter((c, i) => answerText(go[i]) !== answerText(wasm[i])).map((c) => c.label);
    expect(diverging).toEqual([]);
  });

  it("a value is masked in the record exactly when the policy calls its field sensitive", () => {
    const disagreeing = cases
      .filter((c, i) => masked[i] !== codes(wasm[i] as { reasons: { code: string }[] }).includes("sensitive_field"))
      .map((c) => c.label);
    expect(disagreeing).toEqual([]);
  });

  it("names that lower() (Go or WASM), toLowerCase() or simple case folding join are sensitive and masked (TAX_İD is tax_id)", () => {
    const missed = cases
      .filter((c, i) => c.joined === true && !(masked[i] && (go[i] as { action: string }).action === "require_approval"))
      .map((c) => c.label);
    expect(missed).toEqual([]);
    expect(cases.filter((c) => c.joined === true).length).toBeGreaterThan(1000);
  });

  it("the examples: TAX_İD and BİLLİNG_EMAİL are sensitive, and their values are not in the record", async () => {
    const config = { ...baseConfig(), sensitive_fields: { "*": ["tax_id"], account: ["billing_email"] } };
    const { veto, sink } = await makeVeto({ data: { veto: { config } } });
    for (const call of [
      write({ changes: { TAX_İD: "12-3456789" } }),
      write({ object: "ACCOUNT", changes: { BİLLİNG_EMAİL: "ana@acme.example" } }),
      read({ object: "account", fields: ["name", "BİLLİNG_EMAİL"] }),
    ]) {
      const decision = await veto.protect(call);
      expect(codes(decision)).toEqual(["sensitive_field"]);
      const record = JSON.stringify(sink.last());
      expect(record).not.toContain("12-3456789");
      expect(record).not.toContain("ana@acme.example");
    }
    await veto.close();
  });
});

describe("one case-folding rule: amount fields", () => {
  const cases: Case[] = [];
  for (let at = 0; at < DIFFERING.length; at += 16) {
    const group = DIFFERING.slice(at, at + 16);
    const config = { ...baseConfig(), amount_fields: ["amount", ...group.map((e) => amountField(e.char, false))] };
    for (const upper of [false, true]) {
      for (const e of group) {
        for (const s of joinedSpellings(e))
          cases.push({
            label: `${e.codePoint} as ${JSON.stringify(s)}`,
            config,
            call: write({ changes: { [amountField(s, upper)]: "9000" } }),
            joined: true,
          });
        for (const s of otherSpellings(e))
          cases.push({
            label: `${e.codePoint} as ${JSON.stringify(s)}`,
            config,
            call: write({ changes: { [amountField(s, upper)]: "9000" } }),
            joined: undefined,
          });
      }
    }
  }
  let go: { action: string; reasons: { code: string }[] }[] = [];
  const wasm: { action: string; reasons: { code: string }[] }[] = [];
  const adapter: boolean[] = [];

  beforeAll(async () => {
    go = decideOnGo(cases);
    for (const c of cases) {
      wasm.push(await decideOnWasm(c.config, c.call));
      adapter.push(!checkCall(c.call, DEFAULT_INPUT_LIMITS, c.config["amount_fields"] as string[]).ok);
    }
  }, 300_000);

  it("the adapter's check, the WASM evaluator and OPA's Go evaluator refuse the same string amounts", () => {
    const policyRefuses = (a: { reasons: { code: string }[] }): boolean => codes(a).includes("invalid_input");
    const disagreeing = cases
      .filter(
        (c, i) =>
          adapter[i] !== policyRefuses(wasm[i] as { reasons: { code: string }[] }) ||
          adapter[i] !== policyRefuses(go[i] as { reasons: { code: string }[] }),
      )
      .map((c) => c.label);
    expect(disagreeing).toEqual([]);
  });

  it("names that lower(), toLowerCase() or simple case folding join are amount fields", () => {
    expect(cases.filter((c, i) => c.joined === true && !adapter[i]).map((c) => c.label)).toEqual([]);
  });

  it("replay will not replay a masked amount, whatever its spelling (DİSCOUNT_AMOUNT is discount_amount)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "veto-text-replay-"));
    try {
      const path = join(dir, "decisions.log");
      const data = bundleData();
      data.veto.config["sensitive_fields"] = { opportunity: ["discount_amount"] };
      const log = await openFileLog(path);
      const { veto } = await makeVeto({ recordSink: log, data });
      const d = await veto.protect(write({ changes: { DİSCOUNT_AMOUNT: 9000 } }));
      expect(codes(d)).toEqual(["production_amount", "sensitive_field"]);
      await veto.close();
      await log.close();
      expect(await readFile(path, "utf8")).not.toContain("9000");
      const report = await replayRecords(await readLog([path]), { bundle: BUNDLE, data });
      expect(report.unreplayable.map((s) => [s.decision_id, s.reason])).toEqual([
        [d.id, "/input/arguments/changes/DİSCOUNT_AMOUNT is an amount the policy reads, but its value was masked as sensitive"],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe(`one idea of blank: every one of the ${BLANK.length} blank code points`, () => {
  // The test bundle's own data document (decideOnGo relies on it).
  const config = baseConfig();
  const blankContext = (text: string): Json => write({}, { actorId: text, tenantId: text, environment: text });
  const cases: Case[] = [
    ...BLANK.map((ch) => ({ label: `reason ${JSON.stringify(ch)}`, config, call: write({}, { reason: ch }), joined: true })),
    ...BLANK.map((ch) => ({ label: `context ${JSON.stringify(ch)}`, config, call: blankContext(ch), joined: true })),
    ...["\u200b \u00a0\ufeff", "\u0000\u001c", BLANK.join("")].flatMap((text) => [
      { label: `reason ${JSON.stringify(text)}`, config, call: write({}, { reason: text }), joined: true },
      { label: `context ${JSON.stringify(text)}`, config, call: blankContext(text), joined: true },
      { label: `tool ${JSON.stringify(text)}`, config, call: { ...write(), tool: text }, joined: true },
    ]),
    // Not blank: a blank-looking text with one other character, and text around blank characters.
    ...BLANK_NEIGHBOURS.map((ch) => ({
      label: `reason ${JSON.stringify(ch)}`,
      config,
      call: write({}, { reason: `\u200b${ch}\u0000` }),
      joined: false,
    })),
    ...Array.from({ length: Math.ceil(BLANK.length / 16) }, (_, i) => BLANK.slice(i * 16, i * 16 + 16).join("")).map((chars) => ({
      label: `reason around ${JSON.stringify(chars)}`,
      config,
      call: write({}, { reason: `${chars}Ticket 4411${chars}` }),
      joined: false,
    })),
  ];
  let go: { action: string; reasons: { code: string }[] }[] = [];
  const wasm: { action: string; reasons: { code: string }[] }[] = [];
  const adapter: boolean[] = [];

  beforeAll(async () => {
    go = decideOnGo(cases, true);
    for (const c of cases) {
      wasm.push(await decideOnWasm(c.config, c.call));
      adapter.push(!checkCall(c.call, DEFAULT_INPUT_LIMITS, ["amount"]).ok);
    }
  }, 300_000);

  const blankCodes = (label: string): string[] => (label.startsWith("reason") ? ["missing_reason"] : ["invalid_input"]);

  it("OPA's Go evaluator and the WASM evaluator give the same answer on every call", () => {
    expect(cases.filter((c, i) => answerText(go[i]) !== answerText(wasm[i])).map((c) => c.label)).toEqual([]);
  });

  it("a blank reason is missing_reason, a blank actor, tenant, environment or tool invalid_input, on both evaluators", () => {
    const wrong = cases.filter(
      (c, i) =>
        c.joined === true && JSON.stringify(codes(go[i] as { reasons: { code: string }[] })) !== JSON.stringify(blankCodes(c.label)),
    );
    expect(wrong.map((c) => c.label)).toEqual([]);
    const invalid = wasm.find((a, i) => cases[i]?.label.startsWith("context")) as { reasons: { message: string }[] } | undefined;
    expect(invalid?.reasons[0]?.message).toContain(
      "context.actorId must be a non-empty string; context.environment must be a non-empty string; context.tenantId must be a non-empty string",
    );
  });

  it("the adapter refuses exactly the calls whose required context or tool is blank", () => {
    const wrong = cases.filter((c, i) => adapter[i] !== (c.joined === true && !c.label.startsWith("reason")));
    expect(wrong.map((c) => c.label)).toEqual([]);
  });

  it("a text with any other character is not blank", () => {
    const wrong = cases.filter(
      (c, i) => c.joined === false && JSON.stringify(codes(go[i] as { reasons: { code: string }[] })) !== JSON.stringify(["low_value"]),
    );
    expect(wrong.map((c) => c.label)).toEqual([]);
  });

  it("protect() denies the invisible reasons the task names: \\u200b, \\ufeff, \\u0000, \\u001c", async () => {
    for (const reason of ["\u200b", "\ufeff", "\u0000", "\u001c"]) {
      const { veto } = await makeVeto();
      expect(codes(await veto.protect(write({}, { reason })))).toEqual(["missing_reason"]);
      await veto.close();
    }
  });
});

// Generated names and texts of several characters, mixing ASCII, the listed
// characters, their spellings, U+0307 and blank characters: the policy's
// shortcut for plain ASCII names and its long way must give what the fold
// key gives, whichever side (data or call) holds what.
const SEED = Number(process.env["VETO_TEXT_SEED"] ?? 20260419);
const COUNT = Number(process.env["VETO_TEXT_COUNT"] ?? 600);

describe(`generated names and texts (seed ${SEED}, VETO_TEXT_SEED to repeat)`, () => {
  const random = seededRandom(SEED);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const ascii = [..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"];
  const listed = DIFFERING.map((e) => e.char);
  const atom = (): string => {
    const r = random();
    if (r < 0.55) return pick(ascii);
    if (r < 0.85) return pick(listed);
    if (r < 0.9) return pick(BLANK);
    return String.fromCodePoint(Math.floor(random() * 0x2fff) + 0x80);
  };
  const name = (): string => Array.from({ length: 1 + Math.floor(random() * 6) }, atom).join("");
  /** Another spelling of `a`, character by character: a folding, a class member, U+0307 around, or the same. */
  const respell = (a: string): string =>
    [...a]
      .map((ch) => {
        const e = DIFFERING.find((x) => x.char === ch);
        const r = random();
        if (r < 0.2) return ch.toUpperCase();
        if (r < 0.4) return ch.toLowerCase();
        if (r < 0.55 && e !== undefined) return pick([...e.simpleCaseFoldingClass, e.goLower, e.wasmLower, e.foldKey]);
        if (r < 0.6) return `${ch}\u0307`;
        return ch;
      })
      .join("");

  interface NameCase {
    label: string;
    config: Config;
    call: Json;
    expected: boolean;
  }
  const nameCases: NameCase[] = [];
  const sensitiveSets = new Map<Config, ReadonlySet<string>>();
  for (let group = 0; group * 20 < COUNT; group++) {
    const names = Array.from({ length: 20 }, name);
    const config = { ...baseConfig(), sensitive_fields: { "*": names.map((n) => `f_${n}`) } };
    sensitiveSets.set(config, readPolicyData({ veto: { config } }, "generated").sensitiveFields);
    const keys = new Set(names.map((n) => foldKey(`f_${n}`)));
    for (const n of names) {
      const spelled = random() < 0.75 ? respell(n) : name();
      // The data's spelling on either side of the call.
      const [inData, inCall] = random() < 0.5 ? [n, spelled] : [spelled, n];
      const data = random() < 0.5 ? config : { ...baseConfig(), sensitive_fields: { "*": [`f_${inData}`] } };
      if (!sensitiveSets.has(data)) sensitiveSets.set(data, readPolicyData({ veto: { config: data } }, "generated").sensitiveFields);
      const dataKeys = data === config ? keys : new Set([foldKey(`f_${inData}`)]);
      const fieldName = `F_${inCall}`;
      nameCases.push({
        label: `${JSON.stringify(fieldName)} against ${data === config ? "the group" : JSON.stringify(`f_${inData}`)}`,
        config: data,
        call: random() < 0.5 ? write({ changes: { [fieldName]: "v" } }) : read({ fields: ["name", fieldName] }),
        expected: dataKeys.has(foldKey(fieldName)),
      });
    }
  }
  const texts = Array.from({ length: COUNT }, () => {
    const blankOnly = random() < 0.6;
    return Array.from({ length: 1 + Math.floor(random() * 5) }, () => (blankOnly || random() < 0.7 ? pick(BLANK) : atom())).join("");
  });
  let goNames: { action: string; reasons: { code: string }[] }[] = [];
  let goTexts: { action: string; reasons: { code: string }[] }[] = [];
  const wasmNames: { action: string; reasons: { code: string }[] }[] = [];
  const wasmTexts: { action: string; reasons: { code: string }[] }[] = [];

  beforeAll(async () => {
    goNames = decideOnGo(nameCases);
    goTexts = decideOnGo(
      texts.map((t) => ({ config: baseConfig(), call: write({}, { reason: t }) })),
      true,
    );
    for (const c of nameCases) wasmNames.push(await decideOnWasm(c.config, c.call));
    for (const t of texts) wasmTexts.push(await decideOnWasm(baseConfig(), write({}, { reason: t })));
  }, 300_000);

  it("a field is sensitive on both evaluators, and masked, exactly when its fold key is a sensitive field's", () => {
    const masker = new RecordMasker();
    const wrong = nameCases.filter((c, i) => {
      const sensitive = (a: { reasons: { code: string }[] } | undefined): boolean =>
        codes(a as { reasons: { code: string }[] }).includes("sensitive_field");
      const changes = (c.call["arguments"] as { changes?: Json }).changes;
      const masked =
        changes === undefined ? c.expected : masker.maskInput(c.call, sensitiveSets.get(c.config) as ReadonlySet<string>).masked.length > 0;
      return sensitive(goNames[i]) !== c.expected || sensitive(wasmNames[i]) !== c.expected || masked !== c.expected;
    });
    expect(wrong.map((c) => c.label)).toEqual([]);
    expect(nameCases.filter((c) => c.expected).length).toBeGreaterThan(nameCases.length / 4);
    expect(nameCases.filter((c) => !c.expected).length).toBeGreaterThan(nameCases.length / 10);
  });

  it("a reason is missing on both evaluators exactly when adapter/common/text.ts calls it blank", () => {
    const missing = (a: { reasons: { code: string }[] } | undefined): boolean =>
      codes(a as { reasons: { code: string }[] }).includes("missing_reason");
    const wrong = texts.filter((t, i) => missing(goTexts[i]) !== isBlank(t) || missing(wasmTexts[i]) !== isBlank(t));
    expect(wrong.map((t) => JSON.stringify(t))).toEqual([]);
    expect(texts.filter(isBlank).length).toBeGreaterThan(COUNT / 4);
  });
});

afterAll(() => {
  evaluators.clear();
});
