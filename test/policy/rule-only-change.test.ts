// A Rego-only change needs no TypeScript: a new rule and reason code
// (frozen_record), added to a copy of the policy exactly as the README's
// "Adding a rule" checklist says (test/fixtures/rule-only-change/apply.mjs
// touches policy/ and README.md only), passes the Rego gates, gets its row in
// the generated README table, is built into a bundle by the real opa, and
// the unchanged adapter answers it, records it, counts it towards escalation,
// and the CLI prints it. The lists the tests keep of reason codes are derived
// from the policy, so they take the new code in too.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADAPTER_REASON_MESSAGES } from "../../adapter/common/decision.js";
import { createVeto, type DecisionEventRecord } from "../../adapter/index.js";
import { loadBundle } from "../../adapter/policy/bundle.js";
import { PolicyEvaluator } from "../../adapter/policy/evaluator.js";
import { ALT_CONFIG, DESTINATION_CASES, GENERATED_CODES, RESPELLING_CASES, generateCases, openConfig } from "../helpers/generate-calls.js";
import { MemorySink, OPA, ROOT, jsonLines, requireCli, requireOpa, runCli, write } from "../helpers/index.js";
import { policyAnswerCodes, policyReasonCodes, reachProblems, regoCaseCodes } from "../helpers/reason-codes.js";

const CODE = "frozen_record";
const MESSAGE = "The record is frozen by its tenant";
const REGAL = resolve(ROOT, ".tools/bin/regal");

let dir: string;
let root: string;
let policy: string;
let bundle: string;

function run(command: string, args: string[], cwd: string, env: Record<string, string> = {}): string {
  const r = spawnSync(command, args, { cwd, encoding: "utf8", env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${command} ${args.join(" ")} (in ${cwd}) exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

function filesUnder(base: string): string[] {
  return readdirSync(base, { recursive: true, encoding: "utf8" })
    .filter((f) => statSync(join(base, f)).isFile())
    .sort();
}

beforeAll(() => {
  requireOpa();
  requireCli();
  dir = mkdtempSync(join(tmpdir(), "veto-rule-only-"));
  root = join(dir, "clone");
  policy = join(root, "policy");
  run("node", [resolve(ROOT, "test/fixtures/rule-only-change/apply.mjs"), root], ROOT);
  // The checklist's `make fmt bundle readme`, on the copy.
  run(OPA, ["fmt", "--write", "policy"], root);
  run("bash", [resolve(ROOT, "scripts/build-bundles.sh"), join(dir, "bundles")], ROOT, { POLICY_ROOT: root });
  run("node", [resolve(ROOT, "scripts/reason-table.mjs"), OPA, "--write"], root);
  bundle = join(dir, "bundles/crm.tar.gz");
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("a rule and reason code added in policy/ alone", () => {
  it("touches only policy/: the rule, its tests, reasons.rego, its case and fixture, and data.json", () => {
    const original = resolve(ROOT, "policy");
    const changed = filesUnder(policy).filter((f) => {
      try {
        return readFileSync(join(original, f), "utf8") !== readFileSync(join(policy, f), "utf8");
      } catch {
        return true;
      }
    });
    expect(changed).toEqual(
      [
        "data.json",
        "veto/crm/decision_test.rego",
        "veto/crm/frozen.rego",
        "veto/crm/frozen_test.rego",
        "veto/crm/helpers_test.rego",
        "veto/crm/reasons.rego",
      ].sort(),
    );
    expect(filesUnder(root).filter((f) => !f.startsWith("policy/"))).toEqual(["README.md"]);
  });

  it("is what the README's \"Adding a rule\" checklist says: it names every file the change touched", () => {
    const readme = readFileSync(resolve(ROOT, "README.md"), "utf8");
    const start = readme.indexOf("### Adding a rule");
    expect(start).toBeGreaterThan(0);
    const checklist = readme.slice(start, readme.indexOf("\n### ", start + 1));
    for (const named of ["policy/veto/crm/<topic>.rego", "<topic>_test.rego", "policy/veto/crm/reasons.rego", "policy/veto/crm/decision_test.rego", "helpers_test.rego", "policy/data.json", "make fmt bundle readme", "make test"]) {
      expect(checklist).toContain(named);
    }
  });

  it("passes the Rego gates: fmt, check --strict (WASM capabilities too), Regal, tests on OPA and WASM at 100% coverage", () => {
    run(OPA, ["fmt", "--fail", "--list", "policy"], root);
    run(OPA, ["check", "--strict", "policy"], root);
    run(OPA, ["check", "--strict", "--capabilities", resolve(ROOT, ".build/wasm-capabilities.json"), "--ignore", "*_test.rego", "policy"], root);
    run(REGAL, ["lint", "--config-file", resolve(ROOT, ".regal/config.yaml"), "policy"], root);
    // Every test on OPA's evaluator; on WASM (slow: a module per test) the new rule's tests and the one-call-per-code cases.
    for (const target of [[], ["-t", "wasm", "--run", "frozen|_each_code|every_policy_reason_code"]]) {
      const out = JSON.parse(run(OPA, ["test", ...target, "policy", "--format", "json"], root)) as { name: string; fail?: boolean }[];
      expect(out.filter((t) => t.fail === true).map((t) => t.name)).toEqual([]);
      expect(out.map((t) => t.name)).toEqual(
        expect.arrayContaining(["test_deny_frozen_record", "test_deny_every_write_when_frozen_records_is_malformed", "test_deny_each_code", "test_every_policy_reason_code_has_a_case"]),
      );
    }
    run(OPA, ["test", "policy", "--coverage", "--threshold", "100", "--format", "json"], root);
  }, 180_000);

  it("gets its row in the README's generated reason table, which check-readme then accepts", () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    expect(readme).toContain(`| \`${CODE}\` | 3 — deny | \`deny\` | policy | ${MESSAGE} |`);
    expect(run("node", [resolve(ROOT, "scripts/reason-table.mjs"), OPA, "--check"], root)).toMatch(/matches/);
  });

  it("the unchanged adapter answers it from the bundle, records it and counts it towards escalation", async () => {
    const sink = new MemorySink();
    const veto = await createVeto({ bundle, recordSink: sink, logger: pino({ level: "silent" }) });
    try {
      const frozen = write({ recordId: "opp_frozen" });
      const d = await veto.protect(frozen);
      expect([d.action, d.reasons, d.reason]).toEqual(["deny", [{ code: CODE, message: MESSAGE }], MESSAGE]);
      const record = sink.last() as DecisionEventRecord;
      expect(record).toMatchObject({ type: "decision", decision_id: d.id, result: { action: "deny", reasons: [{ code: CODE, message: MESSAGE }] } });
      expect((await veto.protect(write())).reasons.map((r) => r.code)).toEqual(["low_value"]);
      // Two more: the shipped escalation threshold (3 denies) is reached by the new code alone.
      await veto.protect(frozen);
      await veto.protect(frozen);
      const escalated = await veto.protect(frozen);
      expect([escalated.action, escalated.escalated, escalated.reasons.map((r) => r.code)]).toEqual(["deny", true, ["repeated_denies"]]);
    } finally {
      await veto.close();
    }
  });

  it("`veto eval` prints it", () => {
    const r = runCli(["eval", "--bundle", bundle, "--records", join(dir, "records.jsonl")], jsonLines(write({ recordId: "opp_frozen" })));
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ action: "deny", reasons: [{ code: CODE, message: MESSAGE }] });
  });

  it("every list of codes the tests keep takes it in: derived from the policy, and the suites' checks still pass", async () => {
    expect(policyAnswerCodes(policy)).toContain(CODE);
    expect(policyAnswerCodes(policy)).toEqual([...policyAnswerCodes(), CODE].sort());
    expect(regoCaseCodes(policy)).toContain(CODE);
    // The adapter's own codes and messages still agree with the changed policy (test/policy/reason-codes.test.ts).
    const codes = policyReasonCodes(policy);
    for (const [code, message] of Object.entries(ADAPTER_REASON_MESSAGES)) expect(codes[code]?.message).toBe(message);

    // The differential test's reach check, on the batch it generates, decided by the changed bundle.
    const loaded = await loadBundle(bundle);
    const bundleConfig = (loaded.data as { veto: { config: Record<string, unknown> } }).veto.config;
    const configs = { bundle: bundleConfig, alt: ALT_CONFIG, open: openConfig(bundleConfig) };
    const evaluators = {
      bundle: await PolicyEvaluator.create(loaded.wasm, loaded.data),
      alt: await PolicyEvaluator.create(loaded.wasm, { veto: { config: configs.alt } }),
      open: await PolicyEvaluator.create(loaded.wasm, { veto: { config: configs.open } }),
    };
    const seen = new Set<string>();
    for (const c of [...generateCases(20260301, 2400), ...DESTINATION_CASES, ...RESPELLING_CASES]) {
      const evaluation = await evaluators[c.config].evaluateJson(JSON.stringify({ ...c.call, history: { recentDenies: c.recentDenies } }));
      if (!evaluation.ok) throw new Error(evaluation.error.message);
      for (const r of evaluation.answer.reasons) seen.add(r.code);
    }
    expect(reachProblems(seen, GENERATED_CODES, policyAnswerCodes(policy), regoCaseCodes(policy))).toEqual([]);
    // …and it would not, had the change left out the code's case in decision_test.rego.
    expect(
      reachProblems(
        seen,
        GENERATED_CODES,
        policyAnswerCodes(policy),
        regoCaseCodes(policy).filter((c) => c !== CODE),
      ),
    ).toEqual([`${CODE} is neither reached here nor decided by a case in policy/veto/crm/decision_test.rego`]);
  });

  it("the copy is a copy: this repository's policy/ does not have the code", () => {
    expect(Object.keys(policyReasonCodes())).not.toContain(CODE);
    expect(relative(ROOT, policy).startsWith("..")).toBe(true);
  });
});
