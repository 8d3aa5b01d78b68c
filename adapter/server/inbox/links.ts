/**
 * One-time sign-in links (docs/inbox.md): what a notifier sends each listed
 * approver of a pending approval. A link is an HS256 token bound to one
 * reviewer, one decision and that approval's expiry; redeeming it opens a
 * browser session for that reviewer and that decision only, once: its id is
 * remembered as used in the store (`useToken`, durable on PostgreSQL) or, for
 * a store without it, in this process's memory.
 */
import { randomBytes } from "node:crypto";
import { SignJWT, jwtVerify } from "jose";
import type { StoredDecision, VetoStore } from "../../history/store.js";
import { ApprovalError, VetoOptionsError } from "../../common/errors.js";
import { deriveKeys, secretBytes, type InboxKeys } from "./keys.js";

const ISSUER = "veto-inbox";
const AUDIENCE = "veto-inbox sign-in link";
/** The route a link opens (GET shows a button; POST signs in: link checkers that fetch URLs never use it up). */
export const LINK_PATH = "/sign-in/link";

/** Where used link ids are remembered. */
export interface UsedTokens {
  /** True the first time `id` is used, false ever after (until `expiresAtMs` has passed, when it no longer matters). */
  use(id: string, expiresAtMs: number): Promise<boolean>;
}

/** Used ids in memory, for a store without `useToken`: forgotten once expired; bounded (refuses, fails closed, when full). */
export class MemoryUsedTokens implements UsedTokens {
  readonly #used = new Map<string, number>();
  readonly #max: number;

  constructor(max = 100_000) {
    this.#max = max;
  }

  async use(id: string, expiresAtMs: number): Promise<boolean> {
    if (this.#used.has(id)) return false;
    if (this.#used.size >= this.#max) {
      const now = Date.now();
      for (const [key, until] of this.#used) if (until < now) this.#used.delete(key);
      if (this.#used.size >= this.#max) return false;
    }
    this.#used.set(id, expiresAtMs);
    return true;
  }
}

/** Why a link was refused (shown to whoever opened it; HTTP 403, or 410 once used or expired). */
export class SignInLinkError extends Error {
  override name = "SignInLinkError";
  readonly code: "link_invalid" | "link_expired" | "link_used" | "link_not_for_reviewer";

  constructor(code: SignInLinkError["code"], message: string) {
    super(message);
    this.code = code;
  }
}

export interface SignInLinksOptions {
  /** The store the approval service serves (what a link's decision is looked up in; where used ids go when it has `useToken`). */
  readonly store: VetoStore;
  /** The inbox secret (at least 32 bytes) the approval service was given; links made with another secret are refused. */
  readonly secret: string | Uint8Array;
  /** The service's address as reviewers reach it, e.g. "https://veto.example.com" (links are absolute URLs). */
  readonly publicUrl: string;
}

/** What a redeemed link proves. */
export interface RedeemedLink {
  readonly reviewerId: string;
  readonly decisionId: string;
}

function mayAnswerAs(reviewerId: string, d: StoredDecision): boolean {
  return d.approval !== undefined && d.actorId !== reviewerId && d.approvers.includes(reviewerId);
}

export class SignInLinks {
  readonly #keys: InboxKeys;
  readonly #store: VetoStore;
  readonly #base: URL | undefined;
  readonly #used: UsedTokens;

  /** Use createSignInLinks, or the approval service's `app.signInLinks`. */
  constructor(keys: InboxKeys, store: VetoStore, publicUrl: string | undefined) {
    this.#keys = keys;
    this.#store = store;
    this.#base = publicUrl === undefined ? undefined : checkedPublicUrl(publicUrl, "sign-in links");
    this.#used =
      typeof store.useToken === "function" ? { use: (id, until) => store.useToken!(`sign-in link:${id}`, until) } : new MemoryUsedTokens();
  }

  /**
   * The one-time sign-in link for `reviewerId` (an approver id of the
   * decision, not its actor, not a `group:` id) to answer `decisionId`; it
   * expires with the approval. Rejects with ApprovalError (unknown_decision,
   * approval_not_required, not_an_approver, self_approval) otherwise.
   */
  async linkFor(reviewerId: string, decisionId: string): Promise<string> {
    if (this.#base === undefined) throw new VetoOptionsError("sign-in links need the service's publicUrl (inbox.publicUrl, --public-url)");
    if (typeof reviewerId !== "string" || reviewerId === "" || reviewerId.startsWith("group:")) {
      throw new ApprovalError(
        "not_an_approver",
        String(decisionId),
        `a sign-in link is for one person: ${JSON.stringify(reviewerId)} is not`,
      );
    }
    const d = typeof decisionId === "string" ? await this.#store.getDecision(decisionId) : undefined;
    if (d === undefined) throw new ApprovalError("unknown_decision", String(decisionId), `no decision ${decisionId}`);
    if (d.approval === undefined) throw new ApprovalError("approval_not_required", decisionId, `decision ${decisionId} needs no approval`);
    if (d.actorId === reviewerId) throw new ApprovalError("self_approval", decisionId, `${reviewerId} made the call and cannot answer it`);
    if (!mayAnswerAs(reviewerId, d))
      throw new ApprovalError("not_an_approver", decisionId, `${reviewerId} is not among the approvers of ${decisionId}`);
    const token = await new SignJWT({ dec: d.id })
      .setProtectedHeader({ alg: "HS256", typ: "veto-link" })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(reviewerId)
      .setJti(randomBytes(16).toString("base64url"))
      .setIssuedAt()
      .setExpirationTime(Math.floor(d.approval.expiresAtMs / 1000))
      .sign(this.#keys.link);
    const url = new URL(LINK_PATH.slice(1), this.#base);
    url.searchParams.set("token", token);
    return url.href;
  }

  /**
   * One link per person who may answer `decisionId` (its approvers but
   * `group:` ids and the actor), for a notifier that reaches each of them
   * (mail, direct messages): `{ approverId: link }`.
   */
  async linksFor(decisionId: string): Promise<Record<string, string>> {
    const d = await this.#store.getDecision(decisionId);
    if (d?.approval === undefined) throw new ApprovalError("unknown_decision", String(decisionId), `no approval ${decisionId}`);
    const links: Record<string, string> = {};
    for (const id of d.approvers) if (!id.startsWith("group:") && id !== d.actorId) links[id] = await this.linkFor(id, decisionId);
    return links;
  }

  /**
   * Check a link's token and use it up: signed with this secret, unexpired by
   * `nowMs`, its reviewer still an approver of its decision (and not its
   * actor), its expiry the approval's, and never used before. Throws
   * SignInLinkError otherwise; a refused link is not used up.
   */
  async redeem(token: unknown, nowMs: number): Promise<RedeemedLink> {
    const claims = await this.verify(token, nowMs);
    if (!(await this.#used.use(claims.jti, claims.expMs))) throw new SignInLinkError("link_used", "this sign-in link was used already");
    return { reviewerId: claims.reviewerId, decisionId: claims.decisionId };
  }

  /** The checks of redeem, without using the link up (the page that offers to sign in). */
  async verify(token: unknown, nowMs: number): Promise<RedeemedLink & { jti: string; expMs: number }> {
    if (typeof token !== "string" || token.length > 2048 || !/^[\w-]+\.[\w-]+\.[\w-]+$/.test(token)) {
      throw new SignInLinkError("link_invalid", "this is not a sign-in link");
    }
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.#keys.link, {
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: ["HS256"],
        typ: "veto-link",
        currentDate: new Date(nowMs),
        clockTolerance: 0,
        requiredClaims: ["exp", "sub", "jti", "dec"],
      }));
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === "ERR_JWT_EXPIRED") throw new SignInLinkError("link_expired", "this sign-in link has expired, as has its approval");
      throw new SignInLinkError("link_invalid", "this sign-in link is not valid (altered, or made with another secret)");
    }
    const { sub, dec, jti, exp } = payload as { sub: unknown; dec: unknown; jti: unknown; exp: unknown };
    if (typeof sub !== "string" || typeof dec !== "string" || typeof jti !== "string" || typeof exp !== "number") {
      throw new SignInLinkError("link_invalid", "this sign-in link is not valid");
    }
    const d = await this.#store.getDecision(dec);
    if (d?.approval === undefined) throw new SignInLinkError("link_invalid", "this sign-in link names no approval");
    if (!mayAnswerAs(sub, d))
      throw new SignInLinkError("link_not_for_reviewer", "this sign-in link is not for an approver of its approval");
    if (exp !== Math.floor(d.approval.expiresAtMs / 1000))
      throw new SignInLinkError("link_invalid", "this sign-in link's expiry is not its approval's");
    return { reviewerId: sub, decisionId: dec, jti, expMs: exp * 1000 };
  }
}

/** The service's public address: http(s), no credentials, query or fragment; its path is where the service is mounted. */
export function checkedPublicUrl(value: string, where: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new VetoOptionsError(`${where}: publicUrl is not a URL: ${value}`);
  }
  if (
    (url.protocol !== "https:" && url.protocol !== "http:") ||
    url.username !== "" ||
    url.password !== "" ||
    url.search !== "" ||
    url.hash !== ""
  ) {
    throw new VetoOptionsError(`${where}: publicUrl must be an http(s) URL without credentials, query or fragment: ${value}`);
  }
  if (!url.pathname.endsWith("/")) url.pathname += "/";
  return url;
}

/**
 * Sign-in links for a notifier: the same links the approval service's
 * `app.signInLinks` makes, for a process that shares its secret and store.
 */
export function createSignInLinks(options: SignInLinksOptions): SignInLinks {
  if (options === null || typeof options !== "object" || options.store === undefined) {
    throw new VetoOptionsError("createSignInLinks: pass { store, secret, publicUrl }");
  }
  if (options.secret === undefined)
    throw new VetoOptionsError("createSignInLinks: secret is required (the approval service's inbox secret)");
  return new SignInLinks(deriveKeys(secretBytes(options.secret, "createSignInLinks")), options.store, options.publicUrl);
}
