/**
 * Bundle loading: read the tarball, check the manifest names our entrypoint
 * and its module is present, check the layout and read the data files as OPA
 * does (bundle-layout.ts), and compute the version hash.
 * A bundle that cannot be used is an error here, never a silent allow later.
 */
import { z } from "zod";
import { readFileBounded } from "../common/bounded-read.js";
import { bundleVersionHash, readTarball } from "./bundle-hash.js";
import { readBundleLayout } from "./layout.js";
import type { BundleVersion } from "../common/decision.js";
import { BundleLoadError, toError } from "../common/errors.js";
import { verifyBundleSignature, type BundleVerifier, type VerifiedSignature } from "./signature.js";

export const DECISION_ENTRYPOINT = "veto/crm/decision";
/** The second entrypoint: whether a tool is offered at all in a context (docs/contract.md §4b). */
export const VISIBLE_ENTRYPOINT = "veto/crm/visible";
/**
 * The third: what the policy derives from the data document alone, which the
 * evaluator computes once per data document and stores at data.veto.derived
 * (policy/veto/crm/derived.rego, docs/contract.md §2).
 */
export const DERIVED_ENTRYPOINT = "veto/crm/derived";

/** Largest bundle file read from a path, in bytes (what a bundle server may send by default, too). */
export const MAX_BUNDLE_FILE_BYTES = 64 * 1024 * 1024;

const manifestSchema = z.looseObject({
  revision: z.string().optional(),
  roots: z.array(z.string()).optional(),
  rego_version: z.number().optional(),
  wasm: z
    .array(z.looseObject({ entrypoint: z.string(), module: z.string() }))
    .optional(),
});

export interface LoadedBundle {
  readonly version: BundleVersion;
  readonly wasm: Uint8Array;
  /** The verified signature's claims, when a verifier was given. */
  readonly signature: VerifiedSignature | null;
  /** Every entrypoint the manifest says the decision module serves (the evaluator checks the module exports each, as OPA does). */
  readonly entrypoints: readonly string[];
  /** The bundle's own data document: every data.json at its path (`{}` when it ships none). */
  readonly data: Record<string, unknown>;
}

function unusable(message: string, cause?: unknown): BundleLoadError {
  return new BundleLoadError("bundle_unusable", message, cause === undefined ? undefined : { cause });
}

function parseJsonFile(name: string, content: Buffer): unknown {
  try {
    return JSON.parse(content.toString("utf8"));
  } catch (error) {
    throw unusable(`bundle file ${name} is not valid JSON: ${toError(error).message}`, error);
  }
}

export interface LoadBundleOptions {
  /** Verify the bundle's signature first (createBundleVerifier); an unsigned or altered bundle throws BundleSignatureError. Default: no verification. */
  readonly verifier?: BundleVerifier;
}

export async function loadBundle(source: string | Uint8Array, options: LoadBundleOptions = {}): Promise<LoadedBundle> {
  const label = typeof source === "string" ? source : "<bundle bytes>";
  let bytes: Uint8Array;
  try {
    // Within the size limit, and a regular file only (bounded-read.ts): a path
    // to /dev/zero or a FIFO is refused, never read forever.
    bytes = typeof source === "string" ? await readFileBounded(source, MAX_BUNDLE_FILE_BYTES) : source;
  } catch (error) {
    throw unusable(`cannot read bundle ${label}: ${toError(error).message}`, error);
  }

  let files;
  try {
    files = await readTarball(bytes);
  } catch (error) {
    throw unusable(`bundle ${label} is not a readable .tar.gz: ${toError(error).message}`, error);
  }
  // Before anything of the bundle is read or trusted.
  const signature = options.verifier === undefined ? null : verifyBundleSignature(files, options.verifier);
  const byName = new Map(files.map((f) => [f.name, f.content]));

  const manifestBytes = byName.get(".manifest");
  if (manifestBytes === undefined) throw unusable(`bundle ${label} has no .manifest`);
  const manifest = manifestSchema.safeParse(parseJsonFile(".manifest", manifestBytes));
  if (!manifest.success) {
    throw unusable(`bundle ${label} has a malformed .manifest: ${z.prettifyError(manifest.error)}`);
  }

  const wasmEntry = manifest.data.wasm?.find((w) => w.entrypoint === DECISION_ENTRYPOINT);
  if (wasmEntry === undefined) {
    throw unusable(`bundle ${label} .manifest lists no wasm module for entrypoint ${DECISION_ENTRYPOINT}`);
  }
  const wasmName = wasmEntry.module.replace(/^(?:\.\/|\/)+/, "");
  const wasm = byName.get(wasmName);
  if (wasm === undefined) throw unusable(`bundle ${label} lacks its wasm module ${wasmEntry.module}`);

  // Every data file at its path, and OPA's rules on roots, modules and entrypoints.
  const data = readBundleLayout(files, manifest.data, label);

  return {
    version: { revision: manifest.data.revision ?? "", hash: bundleVersionHash(files) },
    wasm,
    signature,
    entrypoints: (manifest.data.wasm ?? []).filter((w) => w.module.replace(/^(?:\.\/|\/)+/, "") === wasmName).map((w) => w.entrypoint),
    data,
  };
}
