/** `veto hash BUNDLE`: the bundle's version hash. */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { bundleVersionHashOfTarball } from "../bundle-hash.js";
import { toError } from "../errors.js";
import { UsageError, fail, print, type Command } from "./common.js";

export const hashCommand: Command = {
  usage: `  veto hash BUNDLE
      prints the bundle's version hash (sha256:<64 hex>)`,

  async run(args) {
    const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
    const [path, ...rest] = positionals;
    if (path === undefined || rest.length > 0) throw new UsageError("hash takes exactly one bundle path");
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (error) {
      fail(`cannot read bundle ${path}: ${toError(error).message}`);
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
