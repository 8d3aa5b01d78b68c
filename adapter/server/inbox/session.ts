/**
 * Browser sessions of the inbox: a signed cookie (HS256, its own key),
 * HttpOnly, SameSite=Strict, Secure over https, Path=/. It holds the
 * reviewer, the approver ids they answer as, a random session id (what the
 * CSRF token is derived from) and, for a session opened by a sign-in link,
 * the decisions it may see. Nothing is kept on the server: the cookie expires
 * on its own (sign-out clears it in the browser).
 */
import { randomBytes } from "node:crypto";
import { SignJWT, jwtVerify } from "jose";
import type { InboxKeys } from "./keys.js";

const ISSUER = "veto-inbox";
const AUDIENCE = "veto-inbox session";
/** Most decisions a link session collects (one per link redeemed in it). */
export const MAX_SCOPE = 50;

export interface InboxSession {
  readonly id: string;
  readonly reviewerId: string;
  readonly approverIds: readonly string[];
  /** Decisions this session may see and answer; undefined: every one its reviewer may answer. */
  readonly scope?: readonly string[];
  readonly expiresAtMs: number;
}

export const cookieName = (secure: boolean): string => (secure ? "__Host-veto_session" : "veto_session");

export async function sealSession(
  keys: InboxKeys,
  s: Omit<InboxSession, "id"> & { id?: string },
): Promise<{ value: string; session: InboxSession }> {
  const session: InboxSession = { ...s, id: s.id ?? randomBytes(16).toString("base64url") };
  const value = await new SignJWT({
    sid: session.id,
    ids: session.approverIds,
    ...(session.scope === undefined ? {} : { scope: session.scope }),
  })
    .setProtectedHeader({ alg: "HS256", typ: "veto-session" })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(session.reviewerId)
    .setIssuedAt()
    .setExpirationTime(Math.floor(session.expiresAtMs / 1000))
    .sign(keys.session);
  return { value, session };
}

const strings = (v: unknown, max: number): v is string[] =>
  Array.isArray(v) && v.length <= max && v.every((x) => typeof x === "string" && x !== "" && x.length <= 256);

/** The session a cookie value holds, or undefined when it is missing, altered, expired or malformed. */
export async function openSession(keys: InboxKeys, value: unknown, nowMs: number): Promise<InboxSession | undefined> {
  if (typeof value !== "string" || value.length > 4096) return undefined;
  try {
    const { payload } = await jwtVerify(value, keys.session, {
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: ["HS256"],
      typ: "veto-session",
      currentDate: new Date(nowMs),
      clockTolerance: 0,
      requiredClaims: ["exp", "sub", "sid", "ids"],
    });
    const { sub, sid, ids, scope, exp } = payload as Record<string, unknown>;
    if (typeof sub !== "string" || typeof sid !== "string" || typeof exp !== "number" || !strings(ids, 256)) return undefined;
    if (scope !== undefined && !strings(scope, MAX_SCOPE)) return undefined;
    return { id: sid, reviewerId: sub, approverIds: ids, ...(scope === undefined ? {} : { scope }), expiresAtMs: exp * 1000 };
  } catch {
    return undefined;
  }
}

/** The Set-Cookie value for a session (or, with `value` empty, one that clears it). */
export function sessionCookie(value: string, o: { secure: boolean; maxAgeS: number }): string {
  const parts = [
    `${cookieName(o.secure)}=${value}`,
    "Path=/",
    "HttpOnly",
    "SameSite=Strict",
    `Max-Age=${Math.max(0, Math.floor(o.maxAgeS))}`,
  ];
  if (o.secure) parts.push("Secure");
  return parts.join("; ");
}

/** A cookie's value from a Cookie header: the first of that name (browsers send the most specific path first). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
