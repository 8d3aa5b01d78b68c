/** Shadow mode's test candidates (docs/policy-changes.md), built from the test policy by the real opa. */
import { spawnSync } from "node:child_process";
import { cpSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, TEST_POLICY_ROOT, requireOpa } from "./index.js";

/** Above this amount the failing candidate's evaluation aborts (see failingCandidate). */
export const ABORT_ABOVE = 50_000;

/**
 * A candidate that fails at run time on real parts: the test policy (the
 * copy scripts/build-test-bundles.sh makes) plus one complete rule given two
 * different values whenever the call's amount exceeds ABORT_ABOVE, built into
 * a WASM bundle by the real opa exactly as bundles are built. The compiled
 * module aborts such an evaluation ("var assignment conflict"); every other
 * call it answers as the test bundle does, since the rule adds no reason.
 * Built under `dir`; returns the bundle's path.
 */
export function failingCandidate(dir: string): string {
  requireOpa();
  const root = join(dir, "failing-root");
  cpSync(join(TEST_POLICY_ROOT, "policy"), join(root, "policy"), { recursive: true });
  writeFileSync(
    join(root, "policy/veto/crm/candidate_conflict.rego"),
    [
      "package veto.crm",
      "",
      '_problems contains "never" if _candidate_conflict == 0',
      "",
      `_candidate_conflict := 1 if input.arguments.amount > ${ABORT_ABOVE}`,
      "",
      `_candidate_conflict := 2 if input.arguments.amount > ${ABORT_ABOVE}`,
      "",
    ].join("\n"),
  );
  const out = join(dir, "failing-bundles");
  const built = spawnSync("bash", [join(ROOT, "scripts/build-bundles.sh"), out], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, POLICY_ROOT: root },
  });
  if (built.status !== 0) throw new Error(`building the failing candidate failed:\n${built.stdout}\n${built.stderr}`);
  return join(out, "crm.tar.gz");
}
