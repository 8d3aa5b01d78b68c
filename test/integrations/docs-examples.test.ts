// Every TypeScript example in docs/integrations.md type-checks as pasted
// (strict) against the built package (`veto-crm/...` resolved through
// package.json's exports) and the installed frameworks. Only the names the
// examples leave to the reader (the model, the CRM client, the session, ...)
// are declared.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers/index.js";
import { requireDist } from "../helpers/postgres.js";

const GIVEN: Record<string, string> = {
  model: "declare const model: any;",
  crm: "declare const crm: { update(input: unknown): Promise<string> };",
  session: "declare const session: { tenant: string };",
  messages: 'declare const messages: import("ai").ModelMessage[];',
  veto: 'declare const veto: import("veto-crm").Veto;',
  crmUpdate: 'declare const crmUpdate: import("langchain").StructuredTool;',
};

describe("docs/integrations.md", () => {
  it("each framework's example type-checks against the built package", () => {
    requireDist();
    const doc = readFileSync(resolve(ROOT, "docs/integrations.md"), "utf8");
    const blocks = [...doc.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks.map((b) => /from "(veto-crm\/(?:ai-sdk|openai-agents|langchain))"/.exec(b)?.[1])).toEqual([
      "veto-crm/ai-sdk",
      "veto-crm/openai-agents",
      "veto-crm/langchain",
    ]);
    const dir = resolve(ROOT, ".build/doc-examples");
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    blocks.forEach((block, i) => {
      const given = Object.entries(GIVEN)
        .filter(([name]) => new RegExp(`\\b${name}\\b`).test(block))
        .filter(([name]) => !new RegExp(`(const|let)\\s+${name}\\b|import \\{[^}]*\\b${name}\\b`).test(block))
        .map(([, declaration]) => declaration);
      writeFileSync(resolve(dir, `example${i}.mts`), `${given.join("\n")}\n${block}`);
    });
    const compilerOptions = {
      target: "ES2022",
      module: "NodeNext",
      moduleResolution: "NodeNext",
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ["node"],
    };
    writeFileSync(resolve(dir, "tsconfig.json"), JSON.stringify({ compilerOptions, include: ["*.mts"] }));
    const run = spawnSync(process.execPath, [resolve(ROOT, "node_modules/typescript/bin/tsc"), "-p", resolve(dir, "tsconfig.json")], {
      encoding: "utf8",
    });
    expect(run.stdout + run.stderr).toBe("");
    expect(run.status).toBe(0);
  });
});
