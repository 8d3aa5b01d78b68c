// The README's quick start is examples/quickstart.mjs, verbatim: the file is
// what test/e2e/pack.test.ts runs in a freshly installed project, so the
// README block runs as pasted.
import { readFileSync, readdirSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers/index.js";

describe("README examples", () => {
  it("the quick start block equals examples/quickstart.mjs", () => {
    const readme = readFileSync(resolve(ROOT, "README.md"), "utf8");
    const file = readFileSync(resolve(ROOT, "examples/quickstart.mjs"), "utf8");
    const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
    expect(blocks).toContain(file);
  });

  it("every example the README names exists", () => {
    const readme = readFileSync(resolve(ROOT, "README.md"), "utf8");
    const named = [...new Set([...readme.matchAll(/examples\/([\w-]+\.mjs)/g)].map((m) => m[1]!))];
    expect(named.length).toBeGreaterThanOrEqual(3);
    for (const name of named) expect(() => readFileSync(resolve(ROOT, "examples", name))).not.toThrow();
  });

  it("no code in the README or docs/ hands the library a bundle path only a clone of this repository has", () => {
    const docs = ["README.md", ...readdirSync(resolve(ROOT, "docs")).map((f) => `docs/${f}`)].filter((f) => f.endsWith(".md"));
    const offending: string[] = [];
    for (const file of docs) {
      const text = readFileSync(resolve(ROOT, file), "utf8");
      for (const block of text.matchAll(/```(?:ts|js|typescript|javascript)\n([\s\S]*?)```/g)) {
        for (const m of block[1]!.matchAll(/bundle:\s*["'`](?:\.\/)?bundles\/[^"'`]*["'`]/g)) offending.push(`${file}: ${m[0]}`);
      }
    }
    expect(offending, "use packagedBundlePath (or a path of the user's own)").toEqual([]);
  });
});
