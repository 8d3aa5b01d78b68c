/**
 * "veto-crm/bundle": loading, hashing and verifying policy bundles by hand
 * (createVeto does all of it for an application).
 */
export { DECISION_ENTRYPOINT, DERIVED_ENTRYPOINT, VISIBLE_ENTRYPOINT, loadBundle } from "./bundle.js";
// For a host that runs the module through @open-policy-agent/opa-wasm itself: store the derived values after setData.
export { storeDerived } from "./evaluator.js";
export type { LoadBundleOptions, LoadedBundle } from "./bundle.js";
export { bundleVersionHash, bundleVersionHashOfTarball, readTarball } from "./bundle-hash.js";
export type { BundleFile } from "./bundle-hash.js";
export { DEFAULT_DOWNLOAD_TIMEOUT_MS, DEFAULT_MAX_DOWNLOAD_BYTES, DEFAULT_POLL_INTERVAL_MS } from "./source.js";
export { SIGNING_ALGORITHMS, createBundleVerifier, verifyBundleSignature } from "./signature.js";
export type { BundleVerificationKey, BundleVerifier, SigningAlgorithm, VerificationKeyInput, VerifiedSignature, VerifierKey } from "./signature.js";
