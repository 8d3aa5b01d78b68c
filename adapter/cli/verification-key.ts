/**
 * `--verification-key PATH [--verification-alg ALG]`, shared by the
 * subcommands that load a bundle: the key file is read once and turned into
 * createVeto's `verificationKey`. Repeat --verification-key while a signing
 * key is rotated (any one verifying suffices). With an HS* algorithm the file holds the
 * HMAC secret (a trailing newline is not part of it); otherwise it is a PEM
 * public key. The key stays out of argv, which `ps` shows.
 */
import { SIGNING_ALGORITHMS, type SigningAlgorithm, type VerificationKeyInput } from "../policy/signature.js";
import { UsageError, readBoundedFile } from "./common.js";

/** Largest key file a command reads (a PEM key is a few kilobytes). */
export const MAX_KEY_FILE_BYTES = 1024 * 1024;

export const VERIFICATION_KEY_USAGE = `--verification-key PATH: refuse the bundle unless its OPA signature
      (.signatures.json) verifies with this PEM public key and covers exactly its files;
      repeat it while rotating keys; --verification-alg ALG pins the algorithm
      (HS256/384/512: PATH holds the HMAC secret)`;

export const verificationKeyOptions = {
  "verification-key": { type: "string", multiple: true },
  "verification-alg": { type: "string" },
} as const;

export async function readVerificationKey(
  paths: readonly string[] | undefined,
  algorithm: string | undefined,
): Promise<VerificationKeyInput | VerificationKeyInput[] | undefined> {
  if (paths === undefined || paths.length === 0) {
    if (algorithm !== undefined) throw new UsageError("--verification-alg needs --verification-key PATH");
    return undefined;
  }
  if (algorithm !== undefined && !(SIGNING_ALGORITHMS as readonly string[]).includes(algorithm)) {
    throw new UsageError(`--verification-alg ${algorithm} is not one of ${SIGNING_ALGORITHMS.join(", ")}`);
  }
  const keys = await Promise.all(paths.map((path) => readOne(path, algorithm as SigningAlgorithm | undefined)));
  return keys.length === 1 ? keys[0] : keys;
}

async function readOne(path: string, alg: SigningAlgorithm | undefined): Promise<VerificationKeyInput> {
  const bytes = await readBoundedFile(path, "verification key", MAX_KEY_FILE_BYTES);
  if (alg?.startsWith("HS")) return { key: bytes.toString("utf8").replace(/\r?\n$/, ""), algorithm: alg };
  return alg === undefined ? bytes.toString("utf8") : { key: bytes.toString("utf8"), algorithm: alg };
}
