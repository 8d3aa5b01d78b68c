// The agent frameworks are optional peer dependencies: only their own
// integration folder imports them (scripts/check-architecture.mjs).
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT } from "../helpers/index.js";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe("check-architecture: frameworks", () => {
  it("fails when the core or another integration imports a framework, and names the folder that may", () => {
    const root = mkdtempSync(join(tmpdir(), "veto-arch-"));
    dirs.push(root);
    cpSync(resolve(ROOT, "adapter"), join(root, "adapter"), { recursive: true, filter: (p) => !p.includes("/python") });
    writeFileSync(join(root, "adapter/veto-fw.ts"), 'import { tool } from "ai";\nexport const t = tool;\n');
    writeFileSync(join(root, "adapter/call/lc.ts"), 'export type { BaseMessage } from "@langchain/core/messages";\n');
    mkdirSync(join(root, "adapter/integrations/ai-sdk"), { recursive: true });
    writeFileSync(join(root, "adapter/integrations/ai-sdk/x.ts"), 'import("@openai/agents-core");\nimport "ai/test";\n');
    const run = spawnSync("node", [resolve(ROOT, "scripts/check-architecture.mjs"), root], { encoding: "utf8" });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/adapter\/veto-fw\.ts:1: imports ai: only adapter\/integrations\/ai-sdk\/ imports that framework/);
    expect(run.stderr).toMatch(/adapter\/call\/lc\.ts:1: imports @langchain\/core\/messages: only adapter\/integrations\/langchain\//);
    expect(run.stderr).toMatch(
      /adapter\/integrations\/ai-sdk\/x\.ts:1: imports @openai\/agents-core: only adapter\/integrations\/openai-agents\//,
    );
    expect(run.stderr).not.toMatch(/imports ai\/test/);
  });
});
