// Bundle loading, the version hash, and createVeto's refusals.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { pack } from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BundleLoadError, VetoOptionsError, createVeto } from "../../adapter/index.js";
import { bundleVersionHash, bundleVersionHashOfTarball, loadBundle } from "../../adapter/policy/index.js";
import { BUNDLE, REGO_BUNDLE, ROOT, bundleData, codes, makeVeto, requireBundle, requireCli, write } from "../helpers/index.js";

async function tarball(files: Record<string, string | Buffer>, gzip = true): Promise<Buffer> {
  const p = pack();
  for (const [name, content] of Object.entries(files)) p.entry({ name }, typeof content === "string" ? Buffer.from(content) : content);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of p) chunks.push(chunk as Buffer);
  const tar = Buffer.concat(chunks);
  return gzip ? gzipSync(tar) : tar;
}

let dir: string;
beforeAll(() => {
  requireBundle();
  dir = mkdtempSync(join(tmpdir(), "veto-bundles-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("version hash", () => {
  it.each([["crm.tar.gz", BUNDLE], ["crm-rego.tar.gz", REGO_BUNDLE]])(
    "%s: the adapter, `veto hash` and scripts/bundle-hash.mjs agree",
    async (_name, path) => {
      const ours = await bundleVersionHashOfTarball(readFileSync(path));
      const cli = execFileSync("node", [requireCli(), "hash", path], { encoding: "utf8" }).trim();
      const script = execFileSync("node", [resolve(ROOT, "scripts/bundle-hash.mjs"), path], { encoding: "utf8" }).trim();
      expect(ours).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(cli).toBe(ours);
      expect(script).toBe(ours);
    },
  );

  it("follows the definition: names normalised, .signatures.json excluded, byte-order sort, name/length/content framing", async () => {
    const bytes = await tarball({ "./b.json": "{}", "/a/é.txt": "hé", "Z": "", ".signatures.json": "sig" });
    const expected = createHash("sha256");
    // "Z" (0x5a) < "a/é.txt" (0x61) < "b.json" (0x62)
    for (const [name, content] of [["Z", ""], ["a/é.txt", "hé"], ["b.json", "{}"]] as const) {
      expected.update(`${name}\n${Buffer.byteLength(content)}\n`);
      expected.update(content);
    }
    expect(await bundleVersionHashOfTarball(bytes)).toBe(`sha256:${expected.digest("hex")}`);
  });

  it("does not depend on tar order, compression or signatures", async () => {
    const a = await tarball({ "x": "1", "y": "2" });
    const b = await tarball({ "./y": "2", "x": "1", ".signatures.json": "{}" }, false);
    expect(await bundleVersionHashOfTarball(a)).toBe(await bundleVersionHashOfTarball(b));
    expect(bundleVersionHash([{ name: "x", content: Buffer.from("1") }])).not.toBe(bundleVersionHash([{ name: "x", content: Buffer.from("2") }]));
  });

  it("the veto reports the bundle's revision and hash", async () => {
    const loaded = await loadBundle(BUNDLE);
    const manifest = execFileSync("tar", ["-xzOf", BUNDLE, "/.manifest"], { encoding: "utf8", stdio: "pipe" });
    expect(loaded.version.revision).toBe((JSON.parse(manifest) as { revision: string }).revision);
    const { veto } = await makeVeto();
    expect(veto.bundle).toEqual(loaded.version);
    await veto.close();
  });
});

describe("a bundle that cannot be used is an error at createVeto", () => {
  const manifest = JSON.stringify({ revision: "r", roots: ["veto"], wasm: [{ entrypoint: "veto/crm/decision", module: "/policy.wasm" }] });
  const cases: [string, () => Promise<Buffer | string>, RegExp][] = [
    ["missing file", async () => join(dir, "nope.tar.gz"), /cannot read bundle/],
    ["not a tarball", async () => Buffer.from("hello, not gzip at all"), /not a readable/],
    ["truncated gzip", async () => (await tarball({ ".manifest": manifest })).subarray(0, 30), /not a readable/],
    ["no manifest", async () => tarball({ "policy.wasm": "x" }), /no \.manifest/],
    ["manifest not JSON", async () => tarball({ ".manifest": "{" }), /\.manifest is not valid JSON/],
    ["no wasm entry for our entrypoint", async () => tarball({ ".manifest": JSON.stringify({ wasm: [{ entrypoint: "other/x", module: "/policy.wasm" }] }) }), /no wasm module for entrypoint veto\/crm\/decision/],
    ["wasm module missing", async () => tarball({ ".manifest": manifest }), /lacks its wasm module/],
    ["wasm module corrupt", async () => tarball({ ".manifest": manifest, "policy.wasm": "\0asm garbage", "data.json": JSON.stringify(bundleData()) }), /wasm module cannot be loaded/],
    ["data.json not an object", async () => tarball({ ".manifest": manifest, "policy.wasm": readWasm(), "data.json": "[1]" }), /data\.json is not a JSON object/],
  ];
  it.each(cases)("%s", async (_name, make, message) => {
    const source = await make();
    const error = await createVeto({ bundle: source }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BundleLoadError);
    expect((error as BundleLoadError).code).toBe("bundle_unusable");
    expect((error as Error).message).toMatch(message);
  });

  it("a data document the adapter cannot use is data_unusable", async () => {
    for (const data of [{ veto: { config: { escalation: { window_seconds: -5 } } } }, { veto: { config: { amount_fields: "amount" } } }, { veto: { config: { tenants: { acme: { approvers: "x" } } } } }]) {
      const error = await createVeto({ bundle: BUNDLE, data }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BundleLoadError);
      expect((error as BundleLoadError).code).toBe("data_unusable");
    }
  });

  it.each([
    ["blocked_destinations not an array", { blocked_destinations: "pastebin.com" }, /veto\.config\.blocked_destinations/],
    ["blocked_destinations holding a number", { blocked_destinations: ["pastebin.com", 7] }, /veto\.config\.blocked_destinations/],
    ["tools not an object", { tools: ["crm.read"] }, /veto\.config\.tools/],
    ["a tool without a kind", { tools: { "crm.read": {} } }, /veto\.config\.tools\["crm\.read"\]\.kind/],
    ["a tool's kind not a string", { tools: { "crm.read": { kind: 1 } } }, /veto\.config\.tools\["crm\.read"\]\.kind/],
    ["environments not an array", { environments: "production" }, /veto\.config\.environments/],
    ["environments holding an object", { environments: [{ name: "production" }] }, /veto\.config\.environments/],
    ["a tenant's allowed_destinations not an array", { tenants: { acme: { allowed_destinations: "example.com" } } }, /veto\.config\.tenants\.acme\.allowed_destinations/],
    ["a tenant's allowed_destinations holding a number", { tenants: { acme: { allowed_destinations: ["example.com", 7] } } }, /veto\.config\.tenants\.acme\.allowed_destinations/],
    ["a tenant's allowed_destinations null", { tenants: { acme: { allowed_destinations: null } } }, /veto\.config\.tenants\.acme\.allowed_destinations/],
  ])("data with %s is data_unusable, naming the field", async (_name, config, field) => {
    const data = bundleData();
    Object.assign(data.veto.config, config);
    const error = await createVeto({ bundle: BUNDLE, data }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BundleLoadError);
    expect((error as BundleLoadError).code).toBe("data_unusable");
    expect((error as Error).message).toMatch(field);
  });

  it("a tenant's allowed_destinations, a list of strings, is accepted and enforced", async () => {
    const data = bundleData();
    (data.veto.config["tenants"] as Record<string, Record<string, unknown>>)["acme"]!["allowed_destinations"] = ["example.com"];
    const { veto } = await makeVeto({ data });
    expect(codes(await veto.protect(write({ destination: "https://hooks.example.com/x" })))).toEqual(["low_value"]);
    expect(codes(await veto.protect(write({ destination: "https://hooks.example.net/x" })))).toEqual(["destination_not_allowed"]);
    await veto.close();
  });

  it("a bundle given as bytes works like a path", async () => {
    const { veto } = await makeVeto({ bundle: readFileSync(BUNDLE) });
    expect(veto.bundle.hash).toBe(await bundleVersionHashOfTarball(readFileSync(BUNDLE)));
    await veto.close();
  });
});

function readWasm(): Buffer {
  const out = join(dir, "extract");
  execFileSync("mkdir", ["-p", out]);
  // stdio piped: GNU tar warns about the bundle's leading "/" on stderr.
  execFileSync("tar", ["-xzf", BUNDLE, "-C", out], { stdio: "pipe" });
  return readFileSync(join(out, "policy.wasm"));
}

describe("options are checked and say what to fix", () => {
  const cases: [string, unknown, RegExp][] = [
    ["no options", undefined, /invalid options/],
    ["no bundle", {}, /bundle is required/],
    ["unknown option", { bundle: BUNDLE, bundel: "x" }, /Unrecognized key.*bundel/],
    ["approvalTtlMs not positive", { bundle: BUNDLE, approvalTtlMs: 0 }, /approvalTtlMs/],
    ["limits of the wrong type", { bundle: BUNDLE, limits: { maxDepth: "deep" } }, /limits\.maxDepth/],
    ["clock not a function", { bundle: BUNDLE, clock: 5 }, /clock must be a function/],
    ["store without the interface", { bundle: BUNDLE, store: {} }, /store must implement VetoStore/],
    ["sink without write", { bundle: BUNDLE, recordSink: { close() {} } }, /recordSink must have a write/],
    ["data not an object", { bundle: BUNDLE, data: [] }, /data must be a JSON object/],
  ];
  it.each(cases)("%s", async (_name, options, message) => {
    const error = await createVeto(options as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VetoOptionsError);
    expect((error as VetoOptionsError).code).toBe("invalid_options");
    expect((error as Error).message).toMatch(message);
  });
});
