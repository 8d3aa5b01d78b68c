/**
 * Bundle loading: read the tarball, check the manifest names our entrypoint
 * and its module is present, parse data.json, and compute the version hash.
 * A bundle that cannot be used is an error here, never a silent allow later.
 */
import { z } from "zod";
import { bundleVersionHash, readTarball } from "./bundle-hash.js";
import type { BundleVersion } from "./decision.js";
import { BundleLoadError, toError } from "./errors.js";
import { verifyBundleSignature, type BundleVerifier } from "./signature.js";
import { readRegularFile } from "./files.js";

export const DECISION_ENTRYPOINT = "veto/crm/decision";

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
  /** The bundle's own data document (`{}` when it ships none). */
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
    // A regular file only: a path to /dev/zero or a FIFO is refused, never read forever.
    bytes = typeof source === "string" ? await readRegularFile(source) : source;
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
  if (options.verifier !== undefined) verifyBundleSignature(files, options.verifier);
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

  const dataBytes = byName.get("data.json");
  const data = dataBytes === undefined ? {} : parseJsonFile("data.json", dataBytes);
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw unusable(`bundle ${label} data.json is not a JSON object`);
  }

  return {
    version: { revision: manifest.data.revision ?? "", hash: bundleVersionHash(files) },
    wasm,
    data: data as Record<string, unknown>,
  };
}
