/**
 * Shared parts of the signature and reload tests: bundles built and signed by
 * the real `opa` with the committed TEST-ONLY keys, and repacking a bundle's
 * files to tamper with them.
 */
import { execFileSync } from "node:child_process";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { pack } from "tar-stream";
import { readTarball, type BundleFile } from "../../adapter/policy/index.js";
import { ROOT, TEST_POLICY_ROOT, requireOpa } from "./index.js";

export const KEYS = resolve(ROOT, "test/fixtures/keys");
export const key = (name: string): string => join(KEYS, `TEST-ONLY-${name}.pem`);
export const pem = (name: string): string => readFileSync(key(name), "utf8");

/** `opa build -t wasm` of a policy directory, as scripts/build-bundles.sh does, optionally signed. */
export function opaBuildWasm(
  dir: string,
  out: string,
  options: { policyDir?: string; signingKey?: string; signingAlg?: string; revision?: string; claims?: Record<string, unknown> } = {},
): string {
  const opa = requireOpa();
  const caps = join(dir, "wasm-capabilities.json");
  execFileSync("node", [resolve(ROOT, "scripts/wasm-capabilities.mjs"), opa, caps]);
  const args = ["build", "-b", "--ignore", "*_test.rego", "--capabilities", caps, "-t", "wasm", "-e", "veto/crm/decision"];
  if (options.revision !== undefined) args.push("--revision", options.revision);
  if (options.signingKey !== undefined) args.push("--signing-key", options.signingKey, "--signing-alg", options.signingAlg ?? "RS256");
  if (options.claims !== undefined) {
    // Extra claims in the signature's token (`iat`...), as CI's signing step adds them.
    const claimsFile = join(dir, `claims-${basename(out)}.json`);
    writeFileSync(claimsFile, JSON.stringify(options.claims));
    args.push("--claims-file", claimsFile);
  }
  // Relative, from its parent: opa build names files by the path it is given.
  const policyDir = options.policyDir ?? join(TEST_POLICY_ROOT, "policy");
  args.push("-o", out, basename(policyDir));
  execFileSync(opa, args, { cwd: dirname(policyDir), stdio: ["ignore", "ignore", "pipe"] });
  return out;
}

/** A copy of policy/ in `dir` with its data.json changed by `edit`. */
export function policyCopy(dir: string, edit: (data: { veto: { config: Record<string, unknown> } }) => void): string {
  const copy = join(dir, "policy");
  cpSync(join(TEST_POLICY_ROOT, "policy"), copy, { recursive: true });
  const dataPath = join(copy, "data.json");
  const data = JSON.parse(readFileSync(dataPath, "utf8")) as { veto: { config: Record<string, unknown> } };
  edit(data);
  writeFileSync(dataPath, JSON.stringify(data, null, 2));
  return copy;
}

/** The regular files of a bundle, names normalised. */
export async function filesOf(bytes: Uint8Array): Promise<BundleFile[]> {
  return await readTarball(bytes);
}

/** A .tar.gz of these files, each name given `prefix` ("", "./" or "/"). */
export async function repack(files: readonly BundleFile[], prefix = "/"): Promise<Buffer> {
  const p = pack();
  for (const f of files) p.entry({ name: `${prefix}${f.name}`, mode: 0o600 }, f.content);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of p) chunks.push(chunk as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

/** The bundle with one file replaced, dropped (content null) or added. */
export async function withFile(bytes: Uint8Array, name: string, content: Buffer | null): Promise<Buffer> {
  const files = (await filesOf(bytes)).filter((f) => f.name !== name);
  if (content !== null) files.push({ name, content });
  return await repack(files);
}

/** The decoded parts of the bundle's signature token. */
export function tokenParts(signaturesJson: Buffer): {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  signature: string;
} {
  const token = (JSON.parse(signaturesJson.toString("utf8")) as { signatures: string[] }).signatures[0] ?? "";
  const [h = "", p = "", s = ""] = token.split(".");
  return {
    header: JSON.parse(Buffer.from(h, "base64url").toString("utf8")) as Record<string, unknown>,
    payload: JSON.parse(Buffer.from(p, "base64url").toString("utf8")) as Record<string, unknown>,
    signature: s,
  };
}

/** A .signatures.json holding a token assembled from these parts. */
export function signaturesJson(header: unknown, payload: unknown, signature: string | Buffer): Buffer {
  const enc = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString("base64url");
  const sig = typeof signature === "string" ? signature : signature.toString("base64url");
  return Buffer.from(JSON.stringify({ signatures: [`${enc(header)}.${enc(payload)}.${sig}`] }));
}
