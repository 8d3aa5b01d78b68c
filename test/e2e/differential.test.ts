// The differential test (docs/contract.md §4b): a seeded batch of
// calls reaching every branch is decided three ways and must agree on action,
// escalated, reason codes and approvers:
//   1. the adapter's WASM evaluator on the policy input (bundles/crm.tar.gz),
//   2. protect() end to end (validation, history from a store, WASM),
//   3. OPA's Go evaluator on the policy source (policy/), in ONE `opa eval`
//      process for the whole batch, through a small Rego wrapper.
// Same data documents (the bundle's and an unlike one) and same history.
// A second batch writes its amounts as JSON text a double does not hold (many
// digits around the limits, exponents, 1e400, -0): the evaluators get that
// text, protect() gets it the way `veto eval` does (protectText), and `veto
// eval` itself runs it, so all of them judge the same number
// (docs/contract.md §9 "Amount precision").
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadBundle } from "../../adapter/policy/bundle.js";
import { PolicyEvaluator } from "../../adapter/policy/evaluator.js";
import {
  createVeto,
  InMemoryStore,
  type Decision,
  type StoredDecision,
  type Veto,
  type VetoRecord,
  type VetoStore,
} from "../../adapter/index.js";
import { protectText } from "../../adapter/veto.js";
import {
  ALT_CONFIG,
  DESTINATION_CASES,
  DESTINATION_FORMS,
  GENERATED_CODES,
  RESPELLING_CASES,
  generateAmountTextCases,
  generateCases,
  openConfig,
  type GeneratedCase,
} from "../helpers/generate-calls.js";
import { ROOT, requireBundle, requireOpa, runCli } from "../helpers/index.js";
import { policyAnswerCodes, reachProblems, regoCaseCodes } from "../helpers/reason-codes.js";

const SEED = Number(process.env["VETO_DIFF_SEED"] ?? 20260301);
const COUNT = Number(process.env["VETO_DIFF_COUNT"] ?? 2400);
const TEXT_COUNT = Number(process.env["VETO_DIFF_TEXT_COUNT"] ?? 800);

/** The store interface with history pinned to the case's recentDenies. */
class PinnedHistoryStore implements VetoStore {
  recentDenies = 0;
  readonly #inner = new InMemoryStore({ maxDecisions: 1000 });
  appendDecision(d: StoredDecision): Promise<void> {
    return this.#inner.appendDecision(d);
  }
  async countRecentDenies(): Promise<number> {
    return this.recentDenies;
  }
  getDecision(id: string): Promise<StoredDecision | undefined> {
    return this.#inner.getDecision(id);
  }
  transitionApproval(...args: Parameters<VetoStore["transitionApproval"]>): Promise<boolean> {
    return this.#inner.transitionApproval(...args);
  }
  watchDecision(id: string, listener: () => void): () => void {
    return this.#inner.watchDecision(id, listener);
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}

interface Verdict {
  action: string;
  escalated: boolean;
  codes: string[];
  approvers: string[];
  /** The policy's destination_hosts (section 4b); protect()'s decision has none, so it is compared only between the evaluators. */
  hosts?: string[];
}

interface Answer {
  action: string;
  escalated: boolean;
  reasons: readonly { code: string }[];
  approvers: readonly string[];
  destination_hosts?: readonly string[];
}

function verdict(answer: Answer): Verdict {
  const v: Verdict = {
    action: answer.action,
    escalated: answer.escalated,
    codes: answer.reasons.map((r) => r.code),
    approvers: [...answer.approvers],
  };
  if (answer.destination_hosts !== undefined) v.hosts = [...answer.destination_hosts];
  return v;
}

function withoutHosts(v: Verdict | undefined): Verdict | undefined {
  if (v === undefined) return undefined;
  const { hosts: _hosts, ...rest } = v;
  return rest;
}

function policyInput(c: GeneratedCase): Record<string, unknown> {
  const input: Record<string, unknown> = { ...c.call, history: { recentDenies: c.recentDenies } };
  return input;
}

/** The policy input as JSON text: the case's own text, when it has one, with the history added. */
function policyInputText(c: GeneratedCase): string {
  if (c.text === undefined) return JSON.stringify(policyInput(c));
  return `${c.text.slice(0, -1)},"history":{"recentDenies":${c.recentDenies}}}`;
}

// The random batch, the amounts written as text, every destination form, then calls whose verdict turns on a respelled name.
const textCases = generateAmountTextCases(SEED, TEXT_COUNT);
const cases: GeneratedCase[] = [...generateCases(SEED, COUNT), ...textCases, ...DESTINATION_CASES, ...RESPELLING_CASES];
let workDir: string;
const wasmVerdicts: Verdict[] = [];
const protectVerdicts: Verdict[] = [];
let goVerdicts: Verdict[] = [];

beforeAll(async () => {
  const opa = requireOpa();
  const loaded = await loadBundle(requireBundle());
  const bundleConfig = (loaded.data as { veto: { config: Record<string, unknown> } }).veto.config;
  const open = openConfig(bundleConfig);
  const configs = { bundle: bundleConfig, alt: ALT_CONFIG, open };

  // 1 and 2: the adapter.
  const evaluators = {
    bundle: await PolicyEvaluator.create(loaded.wasm, loaded.data),
    alt: await PolicyEvaluator.create(loaded.wasm, { veto: { config: ALT_CONFIG } }),
    open: await PolicyEvaluator.create(loaded.wasm, { veto: { config: open } }),
  };
  const stores = { bundle: new PinnedHistoryStore(), alt: new PinnedHistoryStore(), open: new PinnedHistoryStore() };
  const silent = pino({ level: "silent" });
  const sink = { write: async (_r: VetoRecord): Promise<void> => {} };
  const vetos: Record<GeneratedCase["config"], Veto> = {
    bundle: await createVeto({ bundle: BUNDLE_PATH(), store: stores.bundle, recordSink: sink, logger: silent }),
    alt: await createVeto({
      bundle: BUNDLE_PATH(),
      data: { veto: { config: ALT_CONFIG } },
      store: stores.alt,
      recordSink: sink,
      logger: silent,
    }),
    open: await createVeto({
      bundle: BUNDLE_PATH(),
      data: { veto: { config: open } },
      store: stores.open,
      recordSink: sink,
      logger: silent,
    }),
  };
  for (const c of cases) {
    const evaluation = await evaluators[c.config].evaluateJson(policyInputText(c));
    if (!evaluation.ok) throw new Error(`WASM evaluation failed for ${JSON.stringify(c)}: ${evaluation.error.message}`);
    wasmVerdicts.push(verdict(evaluation.answer));
    stores[c.config].recentDenies = c.recentDenies;
    const decision: Decision =
      c.text === undefined ? await vetos[c.config].protect(c.call) : await protectText(vetos[c.config], c.call, c.text);
    protectVerdicts.push(verdict(decision));
  }
  await Promise.all(Object.values(vetos).map((v) => v.close()));

  // 3: OPA's Go evaluator, one process for the whole batch.
  workDir = mkdtempSync(join(tmpdir(), "veto-differential-"));
  writeFileSync(
    join(workDir, "wrapper.rego"),
    [
      "package differential",
      "",
      "results := [r |",
      "\tsome item in input.batch",
      "\tr := data.veto.crm.decision with input as item.input with data.veto.config as data.differential.configs[item.config]",
      "]",
      "",
    ].join("\n"),
  );
  writeFileSync(join(workDir, "configs.json"), JSON.stringify({ differential: { configs } }));
  // Written by hand, so the text cases reach OPA with their numbers as written.
  writeFileSync(
    join(workDir, "batch.json"),
    `{"batch":[${cases.map((c) => `{"config":${JSON.stringify(c.config)},"input":${policyInputText(c)}}`).join(",")}]}`,
  );
  writeFileSync(join(workDir, "open.json"), JSON.stringify({ veto: { config: open } }));
  const run = spawnSync(
    opa,
    [
      "eval",
      "--format",
      "json",
      "-d",
      resolve(ROOT, "policy"),
      "-d",
      join(workDir, "wrapper.rego"),
      "-d",
      join(workDir, "configs.json"),
      "-i",
      join(workDir, "batch.json"),
      "data.differential.results",
    ],
    { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 },
  );
  if (run.status !== 0) throw new Error(`opa eval failed (${run.status}): ${run.stderr}`);
  const output = JSON.parse(run.stdout) as { result: { expressions: { value: Verdict[] }[] }[] };
  const value = output.result[0]?.expressions[0]?.value as unknown as Answer[];
  goVerdicts = value.map(verdict);
});

afterAll(() => {
  if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true });
});

function BUNDLE_PATH(): string {
  return requireBundle();
}

/** `hosts`: compare destination_hosts too (the evaluators' answers have them, protect()'s decisions do not). */
function firstDivergence(ours: Verdict[], label: string, hosts: boolean): string | undefined {
  for (let i = 0; i < cases.length; i++) {
    const go = hosts ? goVerdicts[i] : withoutHosts(goVerdicts[i]);
    if (JSON.stringify(ours[i]) !== JSON.stringify(go)) {
      return [
        `call #${i} (seed ${SEED}) diverges between ${label} and opa eval:`,
        `  call:    ${JSON.stringify(cases[i])}`,
        `  ${label}: ${JSON.stringify(ours[i])}`,
        `  opa:     ${JSON.stringify(go)}`,
      ].join("\n");
    }
  }
  return undefined;
}

describe(`differential: ${COUNT} seeded calls`, () => {
  it("opa eval answered every call", () => {
    expect(cases.length).toBeGreaterThanOrEqual(2000);
    expect(goVerdicts).toHaveLength(cases.length);
  });

  it("the adapter's WASM evaluator agrees with OPA's Go evaluator on every call", () => {
    const divergence = firstDivergence(wasmVerdicts, "wasm", true);
    if (divergence !== undefined) console.error(divergence);
    expect(divergence).toBeUndefined();
  });

  it("protect() agrees with OPA's Go evaluator on every call", () => {
    const divergence = firstDivergence(protectVerdicts, "protect", false);
    if (divergence !== undefined) console.error(divergence);
    expect(divergence).toBeUndefined();
  });

  it("the batch reaches every action, both escalation states and every policy reason code it is built for", () => {
    const seen = new Set(goVerdicts.flatMap((v) => v.codes));
    // The codes come from the policy (reasons.rego through opa), never from a list here.
    expect(reachProblems(seen, GENERATED_CODES, policyAnswerCodes(), regoCaseCodes())).toEqual([]);
    expect(new Set(goVerdicts.map((v) => v.action))).toEqual(new Set(["allow", "deny", "require_approval"]));
    expect(new Set(goVerdicts.map((v) => v.escalated))).toEqual(new Set([true, false]));
    // Every deny code also appears alone, so no code is only ever hidden behind another.
    const alone = new Set(goVerdicts.filter((v) => v.codes.length === 1).map((v) => v.codes[0]));
    for (const code of seen) expect(alone.has(code), `${code} never appears alone`).toBe(true);
  });

  it("the batch holds destinations in every form section 3 reads, and the evaluators agree on their hosts", () => {
    const destinationOf = (c: GeneratedCase): unknown => (c.call.arguments as { destination?: unknown } | null | undefined)?.destination;
    const destinations = cases.map(destinationOf).filter((d) => typeof d === "string");
    // The random batch draws the forms too, not only the fixed cases.
    const drawn = new Set(cases.slice(0, COUNT).map(destinationOf));
    expect(DESTINATION_FORMS.filter((form) => drawn.has(form)).length).toBeGreaterThan(DESTINATION_FORMS.length / 2);
    expect(destinations.length).toBeGreaterThan(500);
    const withHosts = goVerdicts.filter((v) => v.hosts !== undefined);
    expect(withHosts.length).toBe(destinations.length);
    expect(new Set(withHosts.flatMap((v) => v.hosts ?? [])).size).toBeGreaterThan(50);
  });

  it("`veto eval` judges every amount written as text as OPA does (one actor per line, so no shared history)", () => {
    const args = ["eval", "--bundle", BUNDLE_PATH(), "--data", join(workDir, "open.json"), "--records", join(workDir, "records.jsonl")];
    const run = runCli(args, `${textCases.map((c) => c.text).join("\n")}\n`);
    expect(run.status, run.stderr).toBe(0);
    const cliVerdicts = run.stdout
      .trimEnd()
      .split("\n")
      .map((line) => verdict(JSON.parse(line) as Decision));
    const offset = COUNT;
    const diverging = textCases.findIndex((_, i) => JSON.stringify(cliVerdicts[i]) !== JSON.stringify(goVerdicts[offset + i]));
    if (diverging >= 0)
      console.error(
        `veto eval and opa eval diverge (seed ${SEED}) on ${textCases[diverging]?.text}: ${JSON.stringify(cliVerdicts[diverging])} vs ${JSON.stringify(goVerdicts[offset + diverging])}`,
      );
    expect(diverging).toBe(-1);
    expect(cliVerdicts).toHaveLength(textCases.length);
  });

  it("an amount whose text is above a limit is never allowed; one at or above the threshold is never allowed in production", () => {
    const limits: Record<string, { max?: bigint; threshold?: bigint }> = {
      acme: { max: 250000n, threshold: 5000n },
      globex: { max: 1000000n, threshold: 20000n },
      initech: { threshold: 1000n },
    };
    let above = 0;
    let invalid = 0;
    textCases.forEach((c, i) => {
      const v = goVerdicts[COUNT + i] as Verdict;
      if (v.codes.includes("invalid_input")) invalid += 1;
      const call = c.call as {
        tool: string;
        arguments: { amount?: unknown; changes?: Record<string, unknown> };
        context: { tenantId: string; environment: string };
      };
      if (call.tool === "crm.read") return;
      const texts = amountTexts(c.text as string);
      const limit = limits[call.context.tenantId] ?? {};
      const over = limit.max !== undefined && texts.some((t) => compareDecimal(t, limit.max as bigint) > 0);
      const approval =
        call.context.environment === "production" &&
        limit.threshold !== undefined &&
        texts.some((t) => compareDecimal(t, limit.threshold as bigint) >= 0);
      if (over) above += 1;
      if (over || approval) expect(v.action, `${c.text} -> ${JSON.stringify(v)}`).not.toBe("allow");
      if (over) expect(v.action, `${c.text} -> ${JSON.stringify(v)}`).toBe("deny");
    });
    // The batch reaches both sides: amounts above the limits, and amounts refused for their precision.
    expect(above).toBeGreaterThan(20);
    expect(invalid).toBeGreaterThan(50);
    expect(invalid).toBeLessThan(textCases.length - 100);
  });

  it("respelled object names and amount fields decide as the plain names do", () => {
    const offset = cases.length - RESPELLING_CASES.length;
    const got = RESPELLING_CASES.map((_, i) => {
      const v = goVerdicts[offset + i] as Verdict;
      return { action: v.action, codes: v.codes };
    });
    expect(got).toEqual(RESPELLING_CASES.map((c) => c.expected));
    // The random batch respells too (a stream of its own): some amount keys and object names.
    const respelled = cases
      .slice(0, COUNT)
      .filter((c) => /"(Amount|AMOUNT|DISCOUNT_AMOUNT|Opportunity| opportunity )"/.test(JSON.stringify(c.call)));
    expect(respelled.length).toBeGreaterThan(50);
  });
});

/** The texts of a text case's amounts: arguments.amount and changes.<amount field>, as written. */
function amountTexts(text: string): string[] {
  const amountFields = new Set(["amount", "discount_amount", "credit_amount", "refund_amount"]);
  const found: string[] = [];
  const pattern = /"([A-Za-z_]+)":(-?[0-9][0-9.eE+-]*)/g;
  for (const m of text.matchAll(pattern)) if (amountFields.has((m[1] as string).toLowerCase())) found.push(m[2] as string);
  return found;
}

/** Compare the absolute value of the JSON number `text` with the integer `limit`, exactly: -1, 0 or 1. */
function compareDecimal(text: string, limit: bigint): number {
  const m = /^-?(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (m === null) throw new Error(`not a JSON number: ${text}`);
  const fraction = m[2] ?? "";
  const mantissa = BigInt(`${m[1]}${fraction}`);
  const exponent = Number(m[3] ?? "0") - fraction.length;
  const [left, right] = exponent >= 0 ? [mantissa * 10n ** BigInt(exponent), limit] : [mantissa, limit * 10n ** BigInt(-exponent)];
  return left > right ? 1 : left < right ? -1 : 0;
}
