// The repository's own gates (make check): each fails on a deliberate
// violation, so a passing run means something.
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT } from "../helpers/index.js";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function copyOfAdapter(): string {
  const dir = mkdtempSync(join(tmpdir(), "veto-gates-"));
  dirs.push(dir);
  cpSync(resolve(ROOT, "adapter"), join(dir, "adapter"), { recursive: true, filter: (src) => !src.includes("/python") });
  return dir;
}

function architecture(root: string): { status: number | null; stderr: string; stdout: string } {
  return spawnSync("node", [resolve(ROOT, "scripts/check-architecture.mjs"), root], { encoding: "utf8" });
}

describe("check-architecture", () => {
  it("passes on the tree as it is", () => {
    const run = architecture(ROOT);
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/no cycles, every import follows the flow/);
  });

  it("fails on a cycle (type-only imports included), a step reaching up the flow, the core importing postgres/, and anything importing the CLI", () => {
    const root = copyOfAdapter();
    writeFileSync(join(root, "adapter/common/a.ts"), 'import type { B } from "./b.js";\nexport type A = B | 1;\n');
    writeFileSync(join(root, "adapter/common/b.ts"), 'import type { A } from "./a.js";\nexport type B = A | 2;\n');
    writeFileSync(join(root, "adapter/call/up.ts"), 'import { createVeto } from "../veto.js";\nexport const up = createVeto;\n');
    writeFileSync(join(root, "adapter/history/pg.ts"), 'export { PostgresStore } from "../postgres/store.js";\n');
    writeFileSync(join(root, "adapter/records/cli.ts"), 'export type { Command } from "../cli/common.js";\n');
    writeFileSync(join(root, "adapter/policy/shared-up.ts"), 'import("../records/records.js");\n');
    const run = architecture(root);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/^cycle: adapter\/common\/a\.ts -> adapter\/common\/b\.ts -> adapter\/common\/a\.ts$/m);
    expect(run.stderr).toMatch(/adapter\/call\/up\.ts:1: imports adapter\/veto\.ts: a step never imports the orchestrator/);
    expect(run.stderr).toMatch(
      /adapter\/history\/pg\.ts:1: imports adapter\/postgres\/store\.ts: only postgres\/, the CLI and its entry import the PostgreSQL backend/,
    );
    expect(run.stderr).toMatch(/adapter\/records\/cli\.ts:1: imports adapter\/cli\/common\.ts: nothing imports the CLI/);
    expect(run.stderr).toMatch(
      /adapter\/policy\/shared-up\.ts:1: imports adapter\/records\/records\.ts: layer policy must not import layer records/,
    );
  });

  it("fails when anything but mcp/ imports the MCP SDK", () => {
    const root = copyOfAdapter();
    writeFileSync(join(root, "adapter/approvals/mcp.ts"), 'export type { Tool } from "@modelcontextprotocol/sdk/types.js";\n');
    const run = architecture(root);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(
      /adapter\/approvals\/mcp\.ts:1: imports @modelcontextprotocol\/sdk\/types\.js: only adapter\/mcp\/ imports the MCP SDK/,
    );
  });
});

describe("check-refs", () => {
  it("passes on the tree as it is", () => {
    const run = spawnSync("node", [resolve(ROOT, "scripts/check-refs.mjs")], { encoding: "utf8", cwd: ROOT });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
  });

  it("fails on a path that does not exist, a file outside the repository, and an issue number", () => {
    const dir = mkdtempSync(join(tmpdir(), "veto-refs-"));
    dirs.push(dir);
    const file = join(dir, "bad.ts");
    const marker = ["is", "sue"].join("");
    writeFileSync(
      file,
      [
        "// See adapter/call/" + "nothing-here.ts for the details.",
        "// As ../" + "shared/" + "CON" + "TRACT.md says.",
        `// Fixed in ${marker} 42.`,
        "// docs/contract.md and adapter/veto.ts exist.",
        "export {};",
      ].join("\n"),
    );
    const run = spawnSync("node", [resolve(ROOT, "scripts/check-refs.mjs"), file], { encoding: "utf8", cwd: ROOT });
    expect(run.status).toBe(1);
    const lines = run.stderr.trim().split("\n");
    expect(lines.some((l) => /:1: names adapter\/call\/nothing-here\.ts, which does not exist$/.test(l))).toBe(true);
    expect(lines.some((l) => /:2: points outside the repository/.test(l))).toBe(true);
    expect(lines.some((l) => /:3: names an issue number/.test(l))).toBe(true);
    expect(lines.some((l) => /:4:/.test(l))).toBe(false);
  });
});
