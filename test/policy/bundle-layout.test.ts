// A bundle's layout as OPA reads it: roots, data files at their paths, WASM
// entrypoints. Generated bundles are loaded both by the adapter and by the
// real `opa` (`opa eval -b`), which must agree on which to refuse and on the
// data document of the others.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { pack } from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { regoPackagePath } from "../../adapter/policy/layout.js";
import { PolicyEvaluator } from "../../adapter/policy/evaluator.js";
import { BundleLoadError } from "../../adapter/index.js";
import { loadBundle, readTarball } from "../../adapter/policy/index.js";
import { seededRandom } from "../helpers/generate-calls.js";
import { BUNDLE, bundleData, codes, makeVeto, requireBundle, requireOpa, write } from "../helpers/index.js";

let dir: string;
let wasm: Buffer;
let policyFiles: { name: string; content: Buffer }[];
beforeAll(async () => {
  requireBundle();
  requireOpa();
  dir = mkdtempSync(join(tmpdir(), "veto-layout-"));
  const files = await readTarball(readFileSync(BUNDLE));
  wasm = files.find((f) => f.name === "policy.wasm")!.content;
  policyFiles = files.filter((f) => f.name !== ".manifest" && f.name !== "data.json");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ENTRYPOINT = "veto/crm/decision";

/** A .tar.gz with names as `opa build` writes them ("/" first). */
async function tarball(files: Record<string, string | Buffer>): Promise<Buffer> {
  const p = pack();
  for (const [name, content] of Object.entries(files)) p.entry({ name: `/${name}` }, typeof content === "string" ? Buffer.from(content) : content);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of p) chunks.push(chunk as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

function manifest(roots: string[] | undefined, wasmEntries = [{ entrypoint: ENTRYPOINT, module: "/policy.wasm" }]): string {
  return JSON.stringify({ revision: "layout-test", ...(roots === undefined ? {} : { roots }), wasm: wasmEntries, rego_version: 1 });
}

/** The top-level keys and paths whose data the differential compares. */
const PROBES = [["a"], ["b"], ["c"], ["x"], ["veto", "config"]];

/** What `opa eval -b` makes of the bundle: refused (the loading error), or the data at each probe. */
function opaReads(bytes: Buffer, name: string): { refused: string } | { data: unknown[][] } {
  const file = join(dir, `${name}.tar.gz`);
  writeFileSync(file, bytes);
  const query = `[${PROBES.map((p) => `[v | v := data${p.map((k) => `[${JSON.stringify(k)}]`).join("")}]`).join(", ")}]`;
  const run = spawnSync(requireOpa(), ["eval", "-b", file, "--format", "json", query], { encoding: "utf8" });
  const out = JSON.parse(run.stdout) as { errors?: { message: string }[]; result?: { expressions: { value: unknown[][] }[] }[] };
  if (out.errors !== undefined) return { refused: out.errors.map((e) => e.message).join("; ") };
  return { data: out.result?.[0]?.expressions[0]?.value ?? [] };
}

async function oursReads(bytes: Buffer): Promise<{ refused: string } | { data: unknown[][] }> {
  try {
    const loaded = await loadBundle(bytes);
    // As OPA loads the module: every entrypoint the manifest names must be in it.
    await PolicyEvaluator.create(loaded.wasm, {}, undefined, loaded.entrypoints);
    return {
      data: PROBES.map((path) => {
        let node: unknown = loaded.data;
        for (const key of path) node = node !== null && typeof node === "object" && Object.hasOwn(node, key) ? (node as Record<string, unknown>)[key] : undefined;
        return node === undefined ? [] : [node];
      }),
    };
  } catch (error) {
    if (!(error instanceof BundleLoadError)) throw error;
    return { refused: error.message };
  }
}

describe("bundle layout: the adapter refuses what OPA refuses and reads data where OPA does", () => {
  it("seeded generated bundles: same verdict and same data as `opa eval -b`", async () => {
    const seed = Number(process.env["VETO_TEST_SEED"] ?? Date.now() % 2 ** 31);
    const random = seededRandom(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const ROOTS = ["", "a", "a/b", "b", "c/d", "veto", "veto/crm", "veto/config", "veto/crm/decision", "/veto/", "vetox", "x"];
    const DATA_PATHS = ["", "a", "a/b", "b", "c", "c/d", "veto", "veto/config", "veto/config/x", "x/y", ".x"];
    const PACKAGES = ["veto.crm", "a", "a.b", "b", "c.d.e", "other", "veto.config.x"];
    const KEYS = ["a", "b", "x", "config", "y", "crm", "__proto__", ""];
    const value = (depth: number): unknown => {
      const r = random();
      if (depth > 2 || r < 0.3) return pick([1, "s", true, null, 2.5]);
      if (r < 0.4) return [value(depth + 1)];
      const object: Record<string, unknown> = {};
      for (let i = Math.floor(random() * 3); i > 0; i--) object[pick(KEYS)] = value(depth + 1);
      return object;
    };
    const verdicts = { agreed: 0, refusedByBoth: 0 };
    for (let n = 0; n < 40; n++) {
      const roots = random() < 0.2 ? undefined : Array.from({ length: Math.floor(random() * 3) + 1 }, () => pick(ROOTS));
      const files: Record<string, string | Buffer> = { "policy.wasm": wasm };
      const entries = [{ entrypoint: ENTRYPOINT, module: "/policy.wasm" }];
      if (random() < 0.1) entries.push({ entrypoint: random() < 0.5 ? ENTRYPOINT : "a/b", module: random() < 0.5 ? "/policy.wasm" : "/x/policy.wasm" });
      files[".manifest"] = manifest(roots, entries);
      for (let i = Math.floor(random() * 4); i > 0; i--) {
        const path = pick(DATA_PATHS);
        files[path === "" ? "data.json" : `${path}/data.json`] = JSON.stringify(path === "" && random() < 0.8 ? { [pick(KEYS)]: value(1) } : value(0));
      }
      // A module's package is a document of its own in OPA's data (data.a.b = {}): its bundles compare verdicts only.
      const withModule = random() < 0.3;
      if (withModule) files[`m${n}.rego`] = `package ${pick(PACKAGES)}\n`;
      const bytes = await tarball(files);
      const context = `seed ${seed}, bundle ${n}: ${JSON.stringify({ ...files, "policy.wasm": "…" })}`;
      const opa = opaReads(bytes, `gen-${n}`);
      const ours = await oursReads(bytes);
      expect("refused" in ours, `${context}\nopa: ${JSON.stringify(opa)}\nours: ${JSON.stringify(ours)}`).toBe("refused" in opa);
      if ("data" in ours && "data" in opa && !withModule) expect(ours.data, context).toEqual(opa.data);
      verdicts.agreed++;
      if ("refused" in ours) verdicts.refusedByBoth++;
    }
    // Both kinds of bundle were generated.
    expect(verdicts.refusedByBoth).toBeGreaterThan(0);
    expect(verdicts.refusedByBoth).toBeLessThan(verdicts.agreed);
  });

  it("data on the way to a root but at none (empty objects) is not in the data, as in OPA's", async () => {
    const cases: [string[], Record<string, string>][] = [
      [["veto/crm/decision"], { "veto/config/x/data.json": "{}" }],
      [["veto/crm/decision", "a/b"], { "data.json": '{"a": {}, "veto": {"config": {}}}' }],
      [["a/b", "veto"], { "data.json": '{"a": {"b": {"c": 1}}}', "veto/config/data.json": '{"x": {}}' }],
      [["a/b/c", "veto"], { "a/data.json": '{"b": {}}', "veto/config/data.json": "{}" }],
    ];
    for (const [n, [roots, data]] of cases.entries()) {
      const bytes = await tarball({ "policy.wasm": wasm, ".manifest": manifest(roots), ...data });
      const opa = opaReads(bytes, `way-${n}`);
      expect("data" in opa, JSON.stringify(opa)).toBe(true);
      expect(await oursReads(bytes), `${JSON.stringify(roots)} ${JSON.stringify(data)}`).toEqual(opa);
    }
  });

  const base = (): Record<string, string | Buffer> => ({ "policy.wasm": wasm, "data.json": JSON.stringify(bundleData()) });

  it.each([
    ["overlapping roots", { ".manifest": manifest(["veto", "veto/crm"]) }, /\.manifest has overlapped roots: 'veto' and 'veto\/crm'/],
    ["a root repeated", { ".manifest": manifest(["veto", "veto"]) }, /overlapped roots: 'veto' and 'veto'/],
    ["roots that leave out the data", { ".manifest": manifest(["veto/crm"]) }, /roots \[veto\/crm\] do not permit data at path '\/veto\/config/],
    ["roots that leave out the entrypoint", { ".manifest": manifest(["veto/config"]) }, /roots \[veto\/config\] do not permit 'veto\/crm\/decision' entrypoint/],
    ["a data file outside the roots (/foo/data.json)", { ".manifest": manifest(["veto"]), "foo/data.json": "{}" }, /do not permit data at path '\/foo'/],
    ["two data files setting one value", { ".manifest": manifest(["veto"]), "veto/config/escalation/data.json": '{"deny_threshold": 9}' }, /data file veto\/config\/escalation\/data\.json sets values another data file already set under data\.veto\.config\.escalation/],
    ["a root data file that is not an object", { ".manifest": manifest(["veto"]), "data.json": "[1]" }, /data file data\.json is not a JSON object/],
    ["a second manifest", { ".manifest": manifest(["veto"]), "veto/.manifest": "{}" }, /holds a second manifest, veto\/\.manifest/],
    ["a module outside the roots", { ".manifest": manifest(["veto"]), "x.rego": "# x\npackage other.thing\n" }, /do not permit 'package other\.thing' in module 'x\.rego'/],
    ["a missing wasm module", { ".manifest": manifest(["veto"], [{ entrypoint: ENTRYPOINT, module: "/policy.wasm" }, { entrypoint: "veto/x", module: "/x/policy.wasm" }]) }, /references wasm module '\/x\/policy\.wasm' but the module file does not exist/],
    ["an entrypoint the module does not export", { ".manifest": manifest(["veto", "a"], [{ entrypoint: ENTRYPOINT, module: "/policy.wasm" }, { entrypoint: "a/b", module: "/policy.wasm" }]) }, /wasm module has no entrypoint a\/b/],
    ["an entrypoint served twice", { ".manifest": manifest(["veto"], [{ entrypoint: ENTRYPOINT, module: "/policy.wasm" }, { entrypoint: ENTRYPOINT, module: "/policy.wasm" }]) }, /entrypoint 'veto\/crm\/decision' cannot be used by more than one wasm module/],
    ["a delta bundle", { ".manifest": manifest(["veto"]), "patch.json": '{"data": [{"op": "upsert", "path": "/veto/x", "value": 1}]}' }, /delta bundles are not supported/],
  ])("%s: refused by OPA and here, naming the problem", async (name, extra, message) => {
    const bytes = await tarball({ ...base(), ...extra });
    expect(opaReads(bytes, name.replace(/\W+/g, "-"))).toHaveProperty("refused");
    await expect(makeVeto({ bundle: bytes })).rejects.toThrow(message);
  });

  it.each([
    ["data.yaml", "veto/config/x/data.yaml"],
    ["data.yml", "veto/config/x/data.yml"],
  ])("a %s data file, which OPA loads at its path, is refused here with a clear message, never ignored", async (_name, path) => {
    const bytes = await tarball({ ...base(), ".manifest": manifest(["veto"]), [path]: "n: 7\n" });
    const opa = opaReads(bytes, path.replace(/\W+/g, "-"));
    // OPA reads it: data.veto.config.x = {n: 7}.
    expect(opa).toHaveProperty("data");
    expect((opa as { data: unknown[][] }).data[4]).toEqual([expect.objectContaining({ x: { n: 7 } })]);
    await expect(loadBundle(bytes)).rejects.toThrow(
      `holds ${path}, a YAML data file OPA would load at data.veto.config.x: YAML is not supported here, ship it as data.json`,
    );
  });

  it("data files anywhere in the tree are loaded at their paths, as OPA loads them, and the policy reads them", async () => {
    const data = bundleData();
    const tenants = data.veto.config["tenants"] as Record<string, Record<string, unknown>>;
    // acme's approval threshold lives in its own file; the root data.json leaves acme out.
    const acme = tenants["acme"]!;
    delete tenants["acme"];
    const bytes = await tarball({
      "policy.wasm": wasm,
      ".manifest": manifest(["veto"]),
      "data.json": JSON.stringify(data),
      "veto/config/tenants/acme/data.json": JSON.stringify({ ...acme, approval_threshold: 100 }),
    });
    const opa = opaReads(bytes, "nested");
    expect(opa).toHaveProperty("data");
    const loaded = await loadBundle(bytes);
    expect((loaded.data as { veto: { config: { tenants: Record<string, unknown> } } }).veto.config.tenants["acme"]).toMatchObject({ approval_threshold: 100 });
    expect(await oursReads(bytes)).toEqual(opa);
    const { veto } = await makeVeto({ bundle: bytes });
    try {
      // 1000 is above the file's threshold of 100: approval, read from the nested file.
      expect(codes(await veto.protect(write({ amount: 1000 })))).toEqual(["production_amount"]);
    } finally {
      await veto.close();
    }
  });

  it("regoPackagePath reads the package line as OPA would, and gives up on what it cannot read", () => {
    expect(regoPackagePath("package veto.crm\n")).toBe("veto/crm");
    expect(regoPackagePath("# METADATA\n# title: x\n\npackage veto.crm # comment\nx := 1\n")).toBe("veto/crm");
    expect(regoPackagePath('package a["b-c"].d\n')).toBe("a/b-c/d");
    expect(regoPackagePath("package veto.crm")).toBe("veto/crm");
    expect(regoPackagePath("x := 1\npackage a\n")).toBeUndefined();
    expect(regoPackagePath("package 9a\n")).toBeUndefined();
    expect(regoPackagePath("package a.b c\n")).toBeUndefined();
  });

  it("the test bundles and the shipped bundles load (opa build's own layout)", async () => {
    for (const path of [BUNDLE, join(import.meta.dirname, "../../bundles/crm.tar.gz")]) await expect(loadBundle(path)).resolves.toBeDefined();
    expect(policyFiles.length).toBeGreaterThan(1);
  });
});
