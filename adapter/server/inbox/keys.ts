/**
 * The inbox's keys: one secret, and from it (HKDF-SHA-256) a key per use, so
 * a session cookie can never pass for a sign-in link, nor either for a CSRF
 * token (docs/inbox.md, "Security model").
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import { VetoOptionsError } from "../../common/errors.js";

export const MIN_SECRET_BYTES = 32;

export interface InboxKeys {
  /** Signs session cookies (HS256). */
  readonly session: Uint8Array;
  /** Signs sign-in links (HS256). */
  readonly link: Uint8Array;
  /** Derives each session's CSRF token. */
  readonly csrf: Uint8Array;
}

/** The secret as bytes: at least 32 of them; a string is taken as UTF-8. Undefined: 32 random bytes (this process only). */
export function secretBytes(secret: string | Uint8Array | undefined, where: string): Uint8Array {
  if (secret === undefined) return randomBytes(MIN_SECRET_BYTES);
  const bytes = typeof secret === "string" ? new TextEncoder().encode(secret) : secret;
  if (!(bytes instanceof Uint8Array) || bytes.length < MIN_SECRET_BYTES) {
    throw new VetoOptionsError(`${where}: secret must be at least ${MIN_SECRET_BYTES} bytes (e.g. \`openssl rand -base64 48\`)`);
  }
  return bytes;
}

export function deriveKeys(secret: Uint8Array): InboxKeys {
  const derive = (use: string): Uint8Array => new Uint8Array(hkdfSync("sha256", secret, "veto-inbox", use, 32));
  return { session: derive("session v1"), link: derive("sign-in link v1"), csrf: derive("csrf v1") };
}

/** The CSRF token of a session: HMAC of its id, so a token from one session is worth nothing in another. */
export function csrfToken(keys: InboxKeys, sessionId: string): string {
  return createHmac("sha256", keys.csrf).update(sessionId, "utf8").digest("base64url");
}

/** Whether `given` is the CSRF token of `sessionId`, compared in constant time. */
export function csrfMatches(keys: InboxKeys, sessionId: string, given: unknown): boolean {
  if (typeof given !== "string" || given.length > 128) return false;
  const expected = Buffer.from(csrfToken(keys, sessionId), "utf8");
  const got = Buffer.from(given, "utf8");
  return got.length === expected.length && timingSafeEqual(got, expected);
}
