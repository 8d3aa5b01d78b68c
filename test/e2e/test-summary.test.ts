// The closing line of `make test` counts failing Rego tests (scripts/count-opa-tests.mjs,
// then scripts/test-summary.mjs), rather than reading "0 passed, 1 failed" for a
// step that counted none: the real opa runs a copy of policy/ with failing tests added.
import { spawnSync } from "node:child_process";
import { appendFileSync, cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT, requireOpa } from "../helpers/index.js";

const dir = mkdtempSync(join(tmpdir(), "veto-summary-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("make test's closing line", () => {
  it("counts each failing Rego test, on OPA's evaluator and on WASM", () => {
    cpSync(resolve(ROOT, "policy"), join(dir, "policy"), { recursive: true });
    const failing = 2;
    for (let i = 0; i < failing; i++)
      appendFileSync(join(dir, "policy/veto/crm/amount_test.rego"), `\ntest_deliberately_failing_${i} if {\n\t1 == 2\n}\n`);
    const counts: Record<string, string> = {};
    for (const [name, target] of [
      ["rego", []],
      ["rego-wasm", ["-t", "wasm"]],
    ] as const) {
      const opa = spawnSync(requireOpa(), ["test", ...target, "policy", "--format", "json"], { cwd: dir, encoding: "utf8" });
      const count = spawnSync("node", [resolve(ROOT, "scripts/count-opa-tests.mjs"), name], {
        cwd: dir,
        input: opa.stdout,
        encoding: "utf8",
      });
      expect(count.status).toBe(1);
      counts[name] = count.stdout.trim();
    }
    expect(counts["rego"]).toMatch(new RegExp(`^rego: [1-9]\\d* passed, ${failing} failed$`));
    expect(counts["rego-wasm"]).toMatch(new RegExp(`^rego-wasm: [1-9]\\d* passed, ${failing} failed$`));
    const summary = spawnSync("node", [resolve(ROOT, "scripts/test-summary.mjs"), "2"], { cwd: dir, encoding: "utf8" });
    const passed = Number(/rego: (\d+)/.exec(counts["rego"]!)![1]) * 2;
    expect(summary.stdout.trim()).toBe(`${passed} passed, ${2 * failing} failed`);
  }, 120_000);
});
