/**
 * The WASM evaluator and OPA's Go evaluator agree on generated calls
 * (docs/contract.md §4b), as a fast-check property: seeded (VETO_TEST_SEED),
 * and a disagreement is shrunk to the smallest call that shows it. OPA runs
 * as a server (`opa run --server` on the test bundles' Rego bundle, started
 * here), so each generated call costs one local HTTP request. Both get the
 * same input text: the call as generated (valid or not: the policy answers
 * invalid_input itself) with a generated deny history. Compared: action,
 * escalated, reason codes, approvers and destination hosts.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadBundle } from "../../adapter/policy/bundle.js";
import { PolicyEvaluator } from "../../adapter/policy/evaluator.js";
import type { PolicyAnswer } from "../../adapter/common/decision.js";
import { anyCall } from "../helpers/generate-property-calls.js";
import { REGO_BUNDLE, requireBundle, requireOpa } from "../helpers/index.js";

const SEED = Number(process.env["VETO_TEST_SEED"] ?? Date.now() % 2 ** 31);

let opa: ChildProcess;
let url: string;
let evaluator: PolicyEvaluator;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  const loaded = await loadBundle(requireBundle());
  evaluator = await PolicyEvaluator.create(loaded.wasm, loaded.data, undefined, loaded.entrypoints);
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  opa = spawn(requireOpa(), ["run", "--server", "--addr", `127.0.0.1:${port}`, "--log-level", "error", "--bundle", REGO_BUNDLE], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  opa.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  for (let i = 0; ; i++) {
    const healthy = await fetch(`${url}/health?bundles`).then(
      (r) => r.ok,
      () => false,
    );
    if (healthy) break;
    if (i > 300 || opa.exitCode !== null) throw new Error(`opa run --server did not come up: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}, 60_000);
afterAll(() => {
  opa?.kill();
});

/** What both evaluators are compared on. */
function verdict(answer: PolicyAnswer): Record<string, unknown> {
  return {
    action: answer.action,
    escalated: answer.escalated,
    codes: answer.reasons.map((r) => r.code),
    approvers: answer.approvers,
    destination_hosts: answer.destination_hosts ?? null,
  };
}

describe("WASM and OPA's Go evaluator (opa run --server) on generated calls", () => {
  it(`agree on every call (seed ${SEED})`, { timeout: 120_000 }, async () => {
    const actions = new Set<string>();
    await fc.assert(
      fc.asyncProperty(anyCall, fc.nat({ max: 5 }), async (call, recentDenies) => {
        const input = isObject(call) ? { ...call, history: { recentDenies } } : call;
        const text = JSON.stringify(input);
        const wasm = await evaluator.evaluateJson(text);
        const response = await fetch(`${url}/v1/data/veto/crm/decision`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: `{"input":${text}}`,
        });
        expect(response.status).toBe(200);
        const go = (await response.json()) as { result?: PolicyAnswer };
        expect(wasm.ok, wasm.ok ? "" : wasm.error.message).toBe(true);
        expect(go.result, "OPA gave no decision").toBeDefined();
        if (!wasm.ok || go.result === undefined) return;
        expect(verdict(wasm.answer)).toEqual(verdict(go.result));
        actions.add(wasm.answer.action);
      }),
      { seed: SEED, numRuns: 1500 },
    );
    expect([...actions].sort()).toEqual(["allow", "deny", "require_approval"]);
  });
});

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
