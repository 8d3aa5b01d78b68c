/**
 * The install path: `npm pack` the package, install the tarball into an empty
 * project, and run every example (the README's quick start is one) there —
 * exports, types, the packaged bundle and the `veto` CLI, as a new user gets them.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FIXTURE_DATA, ROOT, requireBundle, requireCli } from "../helpers/index.js";

let dir: string;
let project: string;
/** What the README's install block printed. */
let readmeInstall: string;

const run = (cmd: string, args: string[], cwd: string, input?: string): string =>
  execFileSync(cmd, args, { cwd, encoding: "utf8", input, timeout: 180_000, stdio: ["pipe", "pipe", "pipe"] });

beforeAll(() => {
  requireBundle();
  requireCli();
  dir = mkdtempSync(join(tmpdir(), "veto-pack-"));
  run("npm", ["pack", "--silent", "--pack-destination", dir], ROOT);
  const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"));
  if (tarball === undefined) throw new Error("npm pack wrote no tarball");
  const npmCache = run("npm", ["config", "get", "cache"], ROOT).trim();
  // The README's install block as pasted, after its first line (`make build && npm pack`,
  // done above into `dir`): run from `dir` with HOME in it, so ~/my-app is a new folder there.
  const block = /```sh\nmake build && npm pack[^\n]*\n([\s\S]*?)```/.exec(readFileSync(resolve(ROOT, "README.md"), "utf8"));
  if (block === null) throw new Error("README.md has no install block starting with `make build && npm pack`");
  readmeInstall = execFileSync("bash", ["-euo", "pipefail", "-c", block[1]!], {
    cwd: dir,
    encoding: "utf8",
    timeout: 180_000,
    // npm's cache stays the user's own, so the install is as offline as the one before.
    env: {
      ...process.env,
      HOME: dir,
      npm_config_cache: npmCache,
      npm_config_prefer_offline: "true",
      npm_config_audit: "false",
      npm_config_fund: "false",
      npm_config_loglevel: "error",
    },
  });
  project = join(dir, "my-app");
  // For the strict TypeScript check below (top-level await needs an ES module project).
  run("npm", ["pkg", "set", "type=module"], project);
}, 240_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("npm pack → install into an empty project", () => {
  // Every file in examples/, copied out of the installed package and run as a
  // user would (`node x.mjs` in their project). They decide with the packaged
  // bundle and its own data.json, as pasted: the expectations below are what
  // the shipped policy/data.json gives.
  const EXPECTED: Record<string, { lines: RegExp[]; log?: { file: string; types: string[] } }> = {
    "quickstart.mjs": {
      lines: [/^decision: allow \(low_value\)$/m, /^result: \{"ok":true,"tool":"crm\.update","recordId":"opp_123"\}$/m],
      log: { file: "var/decisions.jsonl", types: ["decision"] },
    },
    "approval.mjs": {
      lines: [
        /^owner notified: \S+ needs one of user:crm-owner@acme\.example, user:revops-lead@acme\.example$/m,
        /^owner approves as user:crm-owner@acme\.example$/m,
        /^crm\.update ran: opp_456 amount 9000$/m,
      ],
      log: { file: "var/approval-decisions.jsonl", types: ["decision", "approval", "execution"] },
    },
    "policy-change.mjs": {
      lines: [
        /^recorded: amount 3000 → allow$/m,
        /^recorded: amount 9000 → require_approval$/m,
        /^replayed 4 decisions: 2 changed, 2 unchanged$/m,
        /^ {2}changed: amount 3000: allow \(low_value\) → require_approval \(production_amount\)$/m,
        /^summary: \{"allow → require_approval":2\}$/m,
      ],
    },
  };

  it("the README's install block, as pasted, installs the package and runs the quick start", () => {
    expect(readmeInstall).toMatch(/^decision: allow \(low_value\)$/m);
    expect(readdirSync(join(project, "node_modules/veto-crm/examples"))).toContain("quickstart.mjs");
  });

  it("ships every example, and each has expectations here", () => {
    const shipped = readdirSync(join(project, "node_modules/veto-crm/examples")).sort();
    expect(shipped).toEqual(readdirSync(resolve(ROOT, "examples")).sort());
    expect(shipped).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(Object.keys(EXPECTED))("runs examples/%s as pasted", (name) => {
    const expected = EXPECTED[name]!;
    copyFileSync(join(project, "node_modules/veto-crm/examples", name), join(project, name));
    const out = run("node", [name], project);
    for (const line of expected.lines) expect(out).toMatch(line);
    if (expected.log !== undefined) {
      const types = readFileSync(join(project, expected.log.file), "utf8")
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { type: string }).type);
      expect(types.slice(-expected.log.types.length)).toEqual(expected.log.types);
      expect(run("npx", ["--no-install", "veto", "log", "verify", expected.log.file], project)).toMatch(/records, head sha256:/);
    }
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
