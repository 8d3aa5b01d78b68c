/**
 * Who is answering: a reviewer identity taken only from a verified
 * credential (docs/approvals.md, "Security model"). A bearer JWT verified
 * with jose against a JWKS URL or a PEM public key, issuer and audience
 * required, an algorithm allow-list (never "none"), `exp` required, bounded
 * clock skew. Or, for local development only, a header naming an approver.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from "jose";
import { VetoOptionsError } from "../common/errors.js";

export const DEFAULT_ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"] as const;
const ASYMMETRIC = /^(RS|PS|ES)(256|384|512)$|^EdDSA$|^Ed25519$|^ES256K$/;
export const MAX_CLOCK_SKEW_S = 60;

export interface JwtAuthOptions {
  /** The identity provider's JWKS URL (fetched and cached by jose). Either this or publicKey. */
  readonly jwksUrl?: string;
  /** A PEM public key (SPKI). Either this or jwksUrl. */
  readonly publicKey?: string;
  /** Required: the `iss` every token must carry. */
  readonly issuer: string;
  /** Required: the `aud` every token must carry. */
  readonly audience: string;
  /** Accepted signature algorithms. Default: RS256, PS256, ES256, EdDSA. Only asymmetric ones; never "none". */
  readonly algorithms?: readonly string[];
  /** The claim naming the reviewer, compared exactly with approver ids. Default "sub". */
  readonly reviewerClaim?: string;
  /** A claim listing the reviewer's groups; each becomes the approver id `group:<name>`. Default: none. */
  readonly groupsClaim?: string;
  /** Clock skew allowed on exp/nbf/iat, seconds. Default 30, at most 60. */
  readonly clockToleranceS?: number;
}

export interface DevLoginOptions {
  /** Approver ids the header `x-veto-dev-reviewer` may name (the data document's). */
  readonly approverIds: readonly string[];
}

/** The verified caller: their own id and every approver id they answer as (their id, then their groups). */
export interface Reviewer {
  readonly id: string;
  readonly approverIds: readonly string[];
}

/** Why a credential was refused (HTTP 401). */
export class CredentialError extends Error {
  override name = "CredentialError";
}

/** Where a request came from: the TCP peer's address, as the server's socket reports it. */
export interface RequestPeer {
  readonly remoteAddress: string | undefined;
}

/**
 * Checks a request's credential: the verified reviewer, or a CredentialError.
 * `peer` is the connection's own address (never a header), for
 * authenticators that depend on it (dev login: loopback only).
 */
export type Authenticate = (headers: Readonly<Record<string, string | string[] | undefined>>, peer?: RequestPeer) => Promise<Reviewer>;

export function jwtAuthenticator(o: JwtAuthOptions): Authenticate {
  if (typeof o.issuer !== "string" || o.issuer === "") throw new VetoOptionsError("auth.jwt: issuer is required");
  if (typeof o.audience !== "string" || o.audience === "") throw new VetoOptionsError("auth.jwt: audience is required");
  if ((o.jwksUrl === undefined) === (o.publicKey === undefined)) {
    throw new VetoOptionsError("auth.jwt: give exactly one of jwksUrl and publicKey");
  }
  const algorithms = [...(o.algorithms ?? DEFAULT_ALGORITHMS)];
  if (algorithms.length === 0 || algorithms.some((a) => !ASYMMETRIC.test(a))) {
    throw new VetoOptionsError(
      `auth.jwt: algorithms must be asymmetric JWS algorithms (e.g. ${DEFAULT_ALGORITHMS.join(", ")}); got ${algorithms.join(", ")}`,
    );
  }
  const tolerance = o.clockToleranceS ?? 30;
  if (!(Number.isFinite(tolerance) && tolerance >= 0 && tolerance <= MAX_CLOCK_SKEW_S)) {
    throw new VetoOptionsError(`auth.jwt: clockToleranceS must be between 0 and ${MAX_CLOCK_SKEW_S}`);
  }
  let key: KeyObject | JWTVerifyGetKey;
  if (o.jwksUrl !== undefined) {
    let url: URL;
    try {
      url = new URL(o.jwksUrl);
    } catch {
      throw new VetoOptionsError(`auth.jwt: jwksUrl is not a URL: ${o.jwksUrl}`);
    }
    key = createRemoteJWKSet(url, { timeoutDuration: 5_000, cooldownDuration: 30_000 });
  } else {
    try {
      key = createPublicKey(o.publicKey!);
    } catch (error) {
      throw new VetoOptionsError(`auth.jwt: publicKey is not a PEM public key: ${(error as Error).message}`);
    }
    if (key.type !== "public") throw new VetoOptionsError("auth.jwt: publicKey must be a public key");
  }
  const reviewerClaim = o.reviewerClaim ?? "sub";
  const groupsClaim = o.groupsClaim;
  return async (headers) => {
    const header = headers["authorization"];
    const match = typeof header === "string" ? /^Bearer ([\w-]+\.[\w-]+\.[\w-]+)$/.exec(header) : null;
    if (match === null) throw new CredentialError("a bearer token is required");
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(match[1]!, key as KeyObject, {
        issuer: o.issuer,
        audience: o.audience,
        algorithms,
        clockTolerance: tolerance,
        requiredClaims: ["exp", reviewerClaim],
      }));
    } catch (error) {
      throw new CredentialError(`the bearer token is not valid: ${(error as { code?: string }).code ?? (error as Error).message}`);
    }
    const id = payload[reviewerClaim];
    if (typeof id !== "string" || id === "") throw new CredentialError(`the token's ${reviewerClaim} claim is not a non-empty string`);
    const groups = groupsClaim === undefined ? [] : payload[groupsClaim];
    const groupIds = Array.isArray(groups)
      ? groups.filter((g): g is string => typeof g === "string" && g !== "").map((g) => `group:${g}`)
      : [];
    return { id, approverIds: [id, ...groupIds.filter((g) => g !== id)] };
  };
}

export function devLoginAuthenticator(o: DevLoginOptions): Authenticate {
  const known = new Set(o.approverIds);
  return async (headers, peer) => {
    // A header names the reviewer, so only this machine may send it: whatever the server listens on.
    if (!isLocalRequest(peer, headers["host"])) {
      throw new CredentialError("dev login works only from this machine (a loopback address and Host)");
    }
    const named = headers["x-veto-dev-reviewer"];
    if (typeof named !== "string" || !known.has(named)) {
      throw new CredentialError("dev login: x-veto-dev-reviewer must name an approver of the data document");
    }
    return { id: named, approverIds: [named] };
  };
}

/**
 * Whether a request is this machine's own: its connection's peer is a
 * loopback address, and so is the host it was sent to (its Host header), so
 * that a web page whose name was made to resolve to 127.0.0.1 (DNS
 * rebinding) cannot use it either. A proxy or tunnel on this machine makes
 * every request look local: dev login is for development only.
 */
export function isLocalRequest(peer: RequestPeer | undefined, host: string | string[] | undefined): boolean {
  if (!isLoopback(peer?.remoteAddress?.replace(/^::ffff:/, "") ?? "")) return false;
  if (typeof host !== "string") return false;
  // host[:port], [v6]:port
  const name = host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.replace(/:\d*$/, "");
  return isLoopback(name.toLowerCase());
}

/** Whether `host` is a loopback address (dev login is refused anywhere else). */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
