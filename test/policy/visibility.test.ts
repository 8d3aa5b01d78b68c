// veto/crm/visible (docs/contract.md §4b) on the real WASM bundle: a hidden
// tool's calls are denied whatever their arguments, for generated calls
// (seeded: VETO_VISIBILITY_SEED reproduces a run); a bundle without the
// entrypoint hides every tool.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVeto, type Veto } from "../../adapter/index.js";
import { toolVisibility } from "../../adapter/veto.js";
import { loadBundle } from "../../adapter/policy/bundle.js";
import { PolicyEvaluator } from "../../adapter/policy/evaluator.js";
import { generateCases } from "../helpers/generate-calls.js";
import { MemorySink, TEST_POLICY_ROOT, requireBundle, requireOpa } from "../helpers/index.js";

const CONTEXT_DENIES = new Set(["unknown_tool", "unknown_tenant", "actor_not_allowed", "unknown_environment"]);
const seed = Number(process.env.VETO_VISIBILITY_SEED ?? Math.floor(Math.random() * 2 ** 31));

let evaluator: PolicyEvaluator;
let veto: Veto;

beforeAll(async () => {
  const loaded = await loadBundle(requireBundle());
  expect(loaded.entrypoints).toEqual(["veto/crm/decision", "veto/crm/visible", "veto/crm/derived"]);
  evaluator = await PolicyEvaluator.create(loaded.wasm, loaded.data, undefined, loaded.entrypoints);
  veto = await createVeto({ bundle: requireBundle(), recordSink: new MemorySink() });
});
afterAll(async () => veto.close());

describe("veto/crm/visible", () => {
  it(`hides a tool only when its calls are denied whatever the arguments (seed ${seed})`, async () => {
    let hiddenSeen = 0;
    let shownSeen = 0;
    for (const c of generateCases(seed, 1500)) {
      if (c.config !== "bundle") continue;
      const seen = await toolVisibility(veto, { tool: c.call.tool, context: c.call.context });
      const decided = await evaluator.evaluate({ ...c.call, arguments: c.call.arguments, history: { recentDenies: 0 } } as never);
      const where = `seed ${seed}, call ${JSON.stringify(c.call)}`;
      expect(decided.ok, where).toBe(true);
      if (!decided.ok) continue;
      const codes = decided.answer.reasons.map((r) => r.code);
      expect(seen.visible, where).toBe(seen.reasons.length === 0);
      if (seen.visible) {
        shownSeen += 1;
        // Nothing that reads only the tool and the context denies a shown tool's call.
        expect(
          codes.filter((code) => CONTEXT_DENIES.has(code)),
          where,
        ).toEqual([]);
        continue;
      }
      hiddenSeen += 1;
      expect(decided.answer.action, where).toBe("deny");
      const hiddenCodes = seen.reasons.map((r) => r.code);
      if (codes.includes("invalid_input")) continue; // class 1 wins over the context denies
      expect(hiddenCodes.every((code) => codes.includes(code)), where).toBe(true);
    }
    expect(hiddenSeen).toBeGreaterThan(20);
    expect(shownSeen).toBeGreaterThan(20);
  });

  it("a tool of the bundle's data is shown to an admitted actor and hidden from others, naming why", async () => {
    const context = { actorId: "agent:sales-assistant", tenantId: "acme", environment: "production" };
    expect(await toolVisibility(veto, { tool: "crm.update", context })).toEqual({ visible: true, reasons: [] });
    const rogue = await toolVisibility(veto, { tool: "crm.merge", context: { ...context, actorId: "agent:rogue", environment: "qa" } });
    expect(rogue.visible).toBe(false);
    expect(rogue.reasons.map((r) => r.code)).toEqual(["actor_not_allowed", "unknown_environment", "unknown_tool"]);
  });

  it("a bundle built without the entrypoint (an older policy) hides every tool with evaluation_error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "veto-visible-"));
    try {
      const bundle = join(dir, "old.tar.gz");
      cpSync(join(TEST_POLICY_ROOT, "policy"), join(dir, "policy"), { recursive: true });
      rmSync(join(dir, "policy/veto/crm/visible.rego"));
      execFileSync(requireOpa(), ["build", "-b", "-t", "wasm", "-e", "veto/crm/decision", "-o", bundle, "policy"], {
        cwd: dir,
        stdio: "ignore",
      });
      const old = await createVeto({ bundle, recordSink: new MemorySink() });
      const seen = await toolVisibility(old, {
        tool: "crm.read",
        context: { actorId: "agent:sales-assistant", tenantId: "acme", environment: "production" },
      });
      await old.close();
      expect(seen.visible).toBe(false);
      expect(seen.reasons.map((r) => r.code)).toEqual(["evaluation_error"]);
      expect(seen.reasons[0]?.message).toMatch(/no entrypoint veto\/crm\/visible/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
