/**
 * The policy bundle that ships inside this package (bundles/crm.tar.gz, built
 * from policy/ by `make bundle`), for apps that start from the default policy:
 * `createVeto({ bundle: packagedBundlePath })`.
 */
import { fileURLToPath } from "node:url";

/** Absolute path of the packaged WASM bundle. dist/index.js sits one level below the package root. */
export const packagedBundlePath: string = fileURLToPath(new URL("../bundles/crm.tar.gz", import.meta.url));

/** Absolute path of the same policy as a plain Rego bundle, for an OPA server. */
export const packagedRegoBundlePath: string = fileURLToPath(new URL("../bundles/crm-rego.tar.gz", import.meta.url));
