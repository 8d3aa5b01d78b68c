/**
 * The install path: `npm pack` the package, install the tarball into an empty
 * project, and run the quick start from the README there — exports, types, the
 * packaged bundle and the `veto` CLI, as a new user gets them.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FIXTURE_DATA, ROOT, requireBundle, requireCli } from "../helpers/index.js";

let dir: string;
let project: string;

const run = (cmd: string, args: string[], cwd: string, input?: string): string =>
  execFileSync(cmd, args, { cwd, encoding: "utf8", input, timeout: 180_000, stdio: ["pipe", "pipe", "pipe"] });

beforeAll(() => {
  requireBundle();
  requireCli();
  dir = mkdtempSync(join(tmpdir(), "veto-pack-"));
  run("npm", ["pack", "--silent", "--pack-destination", dir], ROOT);
  const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"));
  if (tarball === undefined) throw new Error("npm pack wrote no tarball");
  project = join(dir, "app");
  run("mkdir", ["-p", project], dir);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--silent", join(dir, tarball)], project);
}, 240_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("npm pack → install into an empty project", () => {
  it("runs the seed page's snippet against the packaged bundle", () => {
    writeFileSync(
      join(project, "quickstart.mjs"),
      `import { readFileSync } from "node:fs";
import { createVeto, packagedBundlePath } from "veto-crm";
// The test's fixed data document, so the shipped policy/data.json may change freely.
const data = JSON.parse(readFileSync(${JSON.stringify(FIXTURE_DATA)}, "utf8"));
const veto = await createVeto({ bundle: packagedBundlePath, data, recordSink: { write: async () => {} } });
const decision = await veto.protect({
  tool: "crm.update",
  arguments: { object: "opportunity", recordId: "opp_123", tenantId: "acme", changes: { close_date: "2026-12-01" } },
  context: { actorId: "agent:sales-assistant", tenantId: "acme", environment: "production", reason: "Customer asked" },
});
if (decision.action === "deny") throw new Error(decision.reason);
if (decision.action === "require_approval") await veto.waitForApproval({ decisionId: decision.id });
console.log(JSON.stringify(decision));
await veto.close();
`,
    );
    const decision = JSON.parse(run("node", ["quickstart.mjs"], project)) as Record<string, unknown>;
    expect(decision.action).toBe("allow");
    expect(decision.reasons).toEqual([{ code: "low_value", message: "Low-value write" }]);
    expect(decision.bundle).toMatchObject({ hash: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
  });

  it("ships types that a strict TypeScript project compiles against", () => {
    writeFileSync(
      join(project, "check.ts"),
      `import { createVeto, packagedBundlePath, type Decision, VetoDeniedError } from "veto-crm";
const veto = await createVeto({ bundle: packagedBundlePath });
const d: Decision = await veto.protect({ tool: "crm.read", arguments: {}, context: { actorId: "a", tenantId: "acme", environment: "production" } });
const action: "allow" | "deny" | "require_approval" = d.action;
const err: VetoDeniedError | undefined = undefined;
export { action, err };
`,
    );
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: "NodeNext",
          moduleResolution: "NodeNext",
          target: "ES2022",
          noEmit: true,
          skipLibCheck: false,
          types: ["node"],
          typeRoots: [resolve(ROOT, "node_modules/@types")],
        },
        files: ["check.ts"],
      }),
    );
    const tsc = resolve(ROOT, "node_modules/typescript/bin/tsc");
    expect(() => run("node", [tsc, "-p", "tsconfig.json"], project)).not.toThrow();
  });

  it("installs the veto CLI, which decides calls with the packaged bundle", () => {
    const bundle = join(project, "node_modules/veto-crm/bundles/crm.tar.gz");
    const hash = run("npx", ["--no-install", "veto", "hash", bundle], project).trim();
    expect(hash).toBe(run("node", [resolve(ROOT, "dist/cli.js"), "hash", resolve(ROOT, "bundles/crm.tar.gz")], ROOT).trim());
    const out = run(
      "npx",
      ["--no-install", "veto", "eval", "--bundle", bundle, "--data", FIXTURE_DATA],
      project,
      `${JSON.stringify({ tool: "crm.read", arguments: { fields: ["ssn"] }, context: { actorId: "agent:sales-assistant", tenantId: "acme", environment: "production" } })}\n`,
    );
    expect(JSON.parse(out.trim())).toMatchObject({ action: "require_approval", reasons: [{ code: "sensitive_field" }] });
  });
});
