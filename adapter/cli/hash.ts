/** `veto hash BUNDLE [--verification-key PATH]`: the bundle's version hash (of a bundle whose signature verifies, with a key). */
import { parseArgs } from "node:util";
import { MAX_BUNDLE_FILE_BYTES, loadBundle } from "../policy/bundle.js";
import { bundleVersionHashOfTarball } from "../policy/bundle-hash.js";
import { VetoError, toError } from "../common/errors.js";
import { createBundleVerifier } from "../policy/signature.js";
import { UsageError, fail, print, readBoundedFile, type Command } from "./common.js";
import { VERIFICATION_KEY_USAGE, readVerificationKey, verificationKeyOptions } from "./verification-key.js";

export const hashCommand: Command = {
  usage: `  veto hash BUNDLE [--verification-key PATH [--verification-alg ALG]]
      prints the bundle's version hash (sha256:<64 hex>); with --verification-key, only
      of a bundle whose signature verifies (else exit 2).
      ${VERIFICATION_KEY_USAGE}`,

  async run(args) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { ...verificationKeyOptions } });
    const [path, ...rest] = positionals;
    if (path === undefined || rest.length > 0) throw new UsageError("hash takes exactly one bundle path");
    const bytes = await readBoundedFile(path, "bundle", MAX_BUNDLE_FILE_BYTES);
    const verificationKey = await readVerificationKey(values["verification-key"], values["verification-alg"]);
    if (verificationKey !== undefined) {
      try {
        await loadBundle(bytes, { verifier: createBundleVerifier(verificationKey) });
      } catch (error) {
        if (error instanceof VetoError) fail(error.message);
        fail(`bundle ${path} cannot be verified: ${toError(error).message}`);
      }
    }
    let hash: string;
    try {
      hash = await bundleVersionHashOfTarball(bytes);
    } catch (error) {
      fail(`bundle ${path} is not a readable .tar.gz: ${toError(error).message}`);
    }
    await print(`${hash}\n`);
    return 0;
  },
};
