/**
 * Every subpath the package exports, as a user gets it: `npm pack` into
 * .build, the tarball unpacked as node_modules/veto-crm of an empty project
 * whose dependencies are links to this checkout's installed ones (no network,
 * nothing written outside .build), then each entry of package.json
 * `exports` imported in a child Node process. For each subpath: its types
 * file ships, its runtime names are exactly the values its types declare,
 * and a strict TypeScript project compiles against all of them. The subpaths
 * are read from package.json, so one added later is checked without a change
 * here.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, requireCli } from "../helpers/index.js";

type ExportTarget = string | { readonly types?: string; readonly import?: string; readonly default?: string };
interface PackageJson {
  readonly name: string;
  readonly version: string;
  readonly exports: Readonly<Record<string, ExportTarget>>;
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly peerDependencies?: Readonly<Record<string, string>>;
}

const rootPackage = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as PackageJson;
const SUBPATHS = Object.keys(rootPackage.exports);
const specifier = (subpath: string): string => (subpath === "." ? rootPackage.name : `${rootPackage.name}/${subpath.slice(2)}`);

let dir: string;
let project: string;
let installed: string;
let installedPackage: PackageJson;

const run = (cmd: string, args: string[], cwd: string): string =>
  execFileSync(cmd, args, { cwd, encoding: "utf8", timeout: 180_000, stdio: ["ignore", "pipe", "pipe"] });

beforeAll(() => {
  requireCli();
  mkdirSync(join(ROOT, ".build"), { recursive: true });
  dir = mkdtempSync(join(ROOT, ".build", "pack-exports-"));
  run("npm", ["pack", "--silent", "--pack-destination", dir], ROOT);
  const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"));
  if (tarball === undefined) throw new Error("npm pack wrote no tarball");
  project = join(dir, "app");
  installed = join(project, "node_modules", rootPackage.name);
  mkdirSync(installed, { recursive: true });
  run("tar", ["-xzf", join(dir, tarball), "-C", installed, "--strip-components=1"], dir);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  // The package's dependencies (and the optional peers this checkout has), as
  // links: resolved from the unpacked package exactly as an install would place them.
  for (const name of [...Object.keys(rootPackage.dependencies ?? {}), ...Object.keys(rootPackage.peerDependencies ?? {})]) {
    const source = join(ROOT, "node_modules", name);
    if (!existsSync(source)) continue;
    const target = join(project, "node_modules", name);
    mkdirSync(dirname(target), { recursive: true });
    symlinkSync(source, target, "dir");
  }
  installedPackage = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as PackageJson;
}, 240_000);

afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** What a child Node process in the project finds at each subpath: the sorted names of its module, or an error. */
function runtimeExports(): Record<string, { names?: string[]; error?: string }> {
  const script = `
const subpaths = ${JSON.stringify(SUBPATHS.map((s) => [s, specifier(s)]))};
const out = {};
for (const [subpath, spec] of subpaths) {
  try {
    const module = spec.endsWith(".json") ? await import(spec, { with: { type: "json" } }) : await import(spec);
    out[subpath] = { names: Object.keys(module).sort() };
  } catch (error) {
    out[subpath] = { error: String(error && error.stack || error) };
  }
}
process.stdout.write(JSON.stringify(out));
`;
  return JSON.parse(run(process.execPath, ["--input-type=module", "-e", script], project)) as Record<
    string,
    { names?: string[]; error?: string }
  >;
}

/** The names each module file declares as values (what `import { x }` can take at run time), sorted; one program for all. */
function declaredValues(files: readonly string[]): string[][] {
  const program = ts.createProgram(files, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  });
  const checker = program.getTypeChecker();
  return files.map((file) => {
    const source = program.getSourceFile(file);
    const moduleSymbol = source === undefined ? undefined : checker.getSymbolAtLocation(source);
    if (moduleSymbol === undefined) throw new Error(`${file} is not a module`);
    return checker
      .getExportsOfModule(moduleSymbol)
      .filter((symbol) => {
        const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
        return (target.flags & ts.SymbolFlags.Value) !== 0;
      })
      .map((symbol) => symbol.name)
      .sort();
  });
}

/** The subpaths with a types file, and that file in the installed package. */
function typedEntries(): [string, string][] {
  return Object.entries(installedPackage.exports).flatMap(([subpath, target]) =>
    typeof target === "string" ? [] : [[subpath, join(installed, target.types!)] as [string, string]],
  );
}

describe("npm pack: every subpath export", () => {
  it("exports the subpaths the package documents, each with an import and a types file", () => {
    expect(installedPackage.exports).toEqual(rootPackage.exports);
    expect(SUBPATHS).toEqual(expect.arrayContaining([".", "./postgres", "./server", "./audit", "./bundle", "./package.json"]));
    for (const [subpath, target] of Object.entries(installedPackage.exports)) {
      if (typeof target === "string") {
        expect(existsSync(join(installed, target)), `${subpath} -> ${target} ships`).toBe(true);
        continue;
      }
      expect(target.import, `${subpath} has an import condition`).toMatch(/^\.\/dist\/.*\.js$/);
      expect(target.types, `${subpath} has a types condition`).toMatch(/^\.\/dist\/.*\.d\.ts$/);
      expect(existsSync(join(installed, target.import!)), `${subpath}: ${target.import} ships`).toBe(true);
      expect(existsSync(join(installed, target.types!)), `${subpath}: ${target.types} ships`).toBe(true);
    }
  });

  it("imports every subpath in a child Node process, and each has exactly the values its types declare", () => {
    const found = runtimeExports();
    expect(Object.keys(found).sort()).toEqual([...SUBPATHS].sort());
    for (const [subpath, result] of Object.entries(found)) expect(result.error, `${specifier(subpath)} imports`).toBeUndefined();
    // A JSON module's one export is the document.
    for (const [subpath, target] of Object.entries(installedPackage.exports)) {
      if (typeof target === "string") expect(found[subpath]?.names, subpath).toEqual(["default"]);
    }
    const entries = typedEntries();
    const declared = declaredValues(entries.map(([, file]) => file));
    entries.forEach(([subpath, file], i) => {
      expect(found[subpath]?.names, `${specifier(subpath)}: run-time names = the values of ${file}`).toEqual(declared[i]);
      expect(declared[i]!.length, `${specifier(subpath)} exports something`).toBeGreaterThan(0);
    });
  });

  it("the names of each entry are the ones its source entry file lists", () => {
    // The entry files (adapter/index.ts, adapter/<entry>/index.ts) are where the exports are documented.
    const entries = typedEntries();
    const sources = entries.map(([, file]) => resolve(ROOT, "adapter", relative(join(installed, "dist"), file).replace(/\.d\.ts$/, ".ts")));
    for (const source of sources) expect(existsSync(source), `${source} exists`).toBe(true);
    const shipped = declaredValues(entries.map(([, file]) => file));
    const documented = declaredValues(sources);
    entries.forEach(([subpath], i) => expect(shipped[i], specifier(subpath)).toEqual(documented[i]));
  });

  it("a strict TypeScript project compiles against the types of every subpath", () => {
    const lines = SUBPATHS.filter((s) => typeof installedPackage.exports[s] !== "string").map(
      (s, i) => `import * as entry${i} from "${specifier(s)}";\nexport const names${i}: string[] = Object.keys(entry${i});`,
    );
    writeFileSync(join(project, "check-exports.ts"), `${lines.join("\n")}\n`);
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
        files: ["check-exports.ts"],
      }),
    );
    const tsc = resolve(ROOT, "node_modules/typescript/bin/tsc");
    let output = "";
    try {
      run(process.execPath, [tsc, "-p", "tsconfig.json"], project);
    } catch (error) {
      output = String((error as { stdout?: string }).stdout ?? error);
    }
    expect(output).toBe("");
  });
});
