/**
 * The policy bundle that ships inside this package (bundles/crm.tar.gz, built
 * from policy/ by `make bundle`), for apps that start from the default policy:
 * `createVeto({ bundle: packagedBundlePath })`.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * The package root's bundles/ folder: one level above the built files
 * (dist/*.js), two above this source file (adapter/policy/), which tests run.
 */
function packaged(name: string): string {
  const built = fileURLToPath(new URL(`../bundles/${name}`, import.meta.url));
  const source = fileURLToPath(new URL(`../../bundles/${name}`, import.meta.url));
  return existsSync(built) || !existsSync(source) ? built : source;
}

/** Absolute path of the packaged WASM bundle. */
export const packagedBundlePath: string = packaged("crm.tar.gz");

/** Absolute path of the same policy as a plain Rego bundle, for an OPA server. */
export const packagedRegoBundlePath: string = packaged("crm-rego.tar.gz");
