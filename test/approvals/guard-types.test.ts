// guard()'s types (docs/adapter.md "veto.guard"): the README's guard example,
// exactly as written there, compiles under `strict` against a typed CRM client
// whose method takes an interface with mutable arrays; and what should not
// compile does not. tsc runs on the adapter's sources.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../helpers/index.js";

const PRELUDE = `import { createVeto, packagedBundlePath } from "veto-crm";
interface OpportunityUpdate {
  object: "opportunity";
  recordId: string;
  tenantId: string;
  changes: { close_date?: string; amount?: number; tags?: string[] };
}
declare const crm: { update(args: OpportunityUpdate): Promise<{ id: string }> };
const veto = await createVeto({ bundle: packagedBundlePath });
`;

/** The README's ts block that calls veto.guard. */
function readmeGuardBlock(): string {
  const readme = readFileSync(resolve(ROOT, "README.md"), "utf8");
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const guard = blocks.filter((b) => b.includes("veto.guard("));
  expect(guard).toHaveLength(1);
  return guard[0]!;
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "veto-guard-types-"));
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tsc(source: string): { ok: boolean; output: string } {
  writeFileSync(join(dir, "snippet.ts"), source);
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        module: "NodeNext",
        moduleResolution: "NodeNext",
        target: "ES2022",
        noEmit: true,
        skipLibCheck: true,
        types: ["node"],
        typeRoots: [resolve(ROOT, "node_modules/@types")],
        paths: { "veto-crm": [resolve(ROOT, "adapter/index.ts")] },
      },
      files: ["snippet.ts"],
    }),
  );
  try {
    execFileSync("node", [resolve(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], {
      cwd: dir,
      encoding: "utf8",
      stdio: "pipe",
    });
    return { ok: true, output: "" };
  } catch (error) {
    return { ok: false, output: String((error as { stdout?: string }).stdout) };
  }
}

describe("guard's types", () => {
  it("the README's guard example compiles under strict against a typed client", () => {
    const result = tsc(`${PRELUDE}${readmeGuardBlock()}\nexport {};\n`);
    expect(result.output).toBe("");
    expect(result.ok).toBe(true);
  }, 60_000);

  it("a guarded call with arguments of the wrong type, or a mutation of them, does not compile", () => {
    const wrong = tsc(`${PRELUDE}const update = veto.guard("crm.update", (args: OpportunityUpdate) => crm.update(args));
await update({ object: "account", recordId: 1 }, { actorId: "a", tenantId: "acme", environment: "production" });
veto.guard<{ n: number }, void>("crm.update", (args) => { args.n = 2; });
export {};
`);
    expect(wrong.ok).toBe(false);
    expect(wrong.output).toMatch(/snippet\.ts\(11,/);
    expect(wrong.output).toMatch(/snippet\.ts\(12,.*read-only/);
  }, 60_000);
});
