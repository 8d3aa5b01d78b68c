/**
 * Rollback protection: a bundle server (or whoever controls it) must not be
 * able to put an older policy back in force, even one that was signed.
 *
 * A bundle's revision is a free-form string with no order, and its manifest
 * is written by the build; neither says which of two bundles is newer. The
 * signature can: its token's `iat` claim (JWT "issued at", seconds since the
 * epoch), set by CI when it signs (`opa sign --claims-file`, as
 * scripts/sign-bundle.sh does), is covered by the signature, so nobody without
 * the signing key can change it. With `bundleRollback` set (and it requires a
 * verification key):
 *
 * - every bundle must carry a numeric `iat` in its signature;
 * - a bundle issued before `minIssuedAt` is refused (the first one too);
 * - once a bundle is in force, a different bundle (another version hash) is
 *   activated only if it was issued strictly after it; an older or equally
 *   old one is refused and the bundle in force stays.
 *
 * Rolling back on purpose is signing the older bundle again (a new `iat`).
 */
import { z } from "zod";
import type { LoadedBundle } from "./bundle.js";
import { BundleRollbackError } from "../common/errors.js";

export interface BundleRollbackOptions {
  /** Refuse every bundle whose signature was issued before this time (`iat`, seconds since the epoch). Default: no floor beyond the bundle in force. */
  readonly minIssuedAt?: number;
}

export const bundleRollbackSchema = z.strictObject({
  minIssuedAt: z.number().finite().min(0).optional(),
});

/** A number JWT would call a NumericDate: finite and not negative. */
const isNumericDate = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v >= 0;

const when = (seconds: number): string => {
  const date = new Date(seconds * 1000);
  return `${seconds} (${Number.isNaN(date.getTime()) ? "?" : date.toISOString()})`;
};

/** The signed issue time of a bundle, or null when it has none (or was not verified). */
export function issuedAtOf(loaded: LoadedBundle): number | null {
  const iat = loaded.signature?.claims["iat"];
  return isNumericDate(iat) ? iat : null;
}

/**
 * Throw BundleRollbackError unless `loaded` may be activated under `options`:
 * it has a signed `iat`, at or after minIssuedAt, and strictly after the issue
 * time of `inForce` (a bundle in force that is a different bundle).
 */
export function checkRollback(
  loaded: LoadedBundle,
  options: BundleRollbackOptions,
  inForce: { readonly hash: string; readonly issuedAt: number | null } | undefined,
): number {
  const iat = loaded.signature?.claims["iat"];
  if (!isNumericDate(iat)) {
    throw new BundleRollbackError(
      iat === undefined
        ? "its signature carries no iat claim (sign it with one: scripts/sign-bundle.sh does)"
        : `its signature's iat claim ${JSON.stringify(iat) ?? typeof iat} is not a time in seconds since the epoch`,
      null,
      null,
    );
  }
  const min = options.minIssuedAt;
  if (min !== undefined && iat < min) {
    throw new BundleRollbackError(`it was signed at ${when(iat)}, before minIssuedAt ${when(min)}`, iat, min);
  }
  if (inForce !== undefined && inForce.hash !== loaded.version.hash && inForce.issuedAt !== null && iat <= inForce.issuedAt) {
    throw new BundleRollbackError(
      `it was signed at ${when(iat)}, not after the bundle in force (${inForce.hash}, signed at ${when(inForce.issuedAt)}); the bundle in force stays`,
      iat,
      inForce.issuedAt,
    );
  }
  return iat;
}
