// The package as published: `npm publish --dry-run` passes, and every entry of
// package.json `exports` (with its types) is among the files it would ship.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, requireCli } from "../helpers/index.js";

interface PackFile {
  readonly path: string;
}

describe("the published package", () => {
  it("npm publish --dry-run passes, and the files hold every export, the bundles, the license and the docs", () => {
    requireCli();
    const publish = spawnSync("npm", ["publish", "--dry-run", "--json", "--ignore-scripts"], { cwd: ROOT, encoding: "utf8" });
    expect(publish.status, publish.stderr).toBe(0);
    const pack = spawnSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: ROOT, encoding: "utf8" });
    expect(pack.status, pack.stderr).toBe(0);
    const files = new Set((JSON.parse(pack.stdout) as { files: PackFile[] }[])[0]?.files.map((f) => f.path));
    const manifest = JSON.parse(readFileSync(resolve(ROOT, "package.json"), "utf8")) as {
      private?: boolean;
      license?: string;
      sideEffects?: boolean;
      exports: Record<string, string | { types: string; import: string }>;
    };
    expect(manifest.private).toBeUndefined();
    expect(manifest.license).toBe("Apache-2.0");
    expect(manifest.sideEffects).toBe(false);
    for (const [subpath, target] of Object.entries(manifest.exports)) {
      const paths = typeof target === "string" ? [target] : [target.types, target.import];
      for (const path of paths) expect(files.has(path.replace(/^\.\//, "")), `${subpath}: ${path}`).toBe(true);
    }
    for (const path of ["LICENSE", "README.md", "bundles/crm.tar.gz", "bundles/crm-rego.tar.gz", "docs/contract.md", "dist/cli.js"]) {
      expect(files.has(path), path).toBe(true);
    }
    // Nothing from the clone's tests, sources or build folders.
    expect([...files].filter((f) => /^(test|adapter|scripts|\.build|policy)\//.test(f))).toEqual([]);
  });
});
