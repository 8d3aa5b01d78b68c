/**
 * The approval inbox (docs/inbox.md): server-rendered pages beside the JSON
 * API, for reviewers in a browser. Sign-in by one-time link, by the identity
 * provider's token (a proxy in front adds it), or, with dev login on
 * loopback, by `GET /dev-login?reviewer=ID`. Answers go through the same
 * veto.approve()/reject() as the API (docs/contract.md §6, §7): a listed
 * approver, never the actor, once, before expiry, recorded before the answer
 * is shown. Every state-changing form carries the session's CSRF token and is
 * refused from another origin; pages forbid inline script, framing and
 * caching. Cards update themselves through server-sent events fed by the
 * store's change feed.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Veto } from "../../veto.js";
import type { StoredDecision, VetoStore, ApprovalStatus } from "../../history/store.js";
import { ApprovalError, VetoOptionsError, toError } from "../../common/errors.js";
import type { ServiceRules, ShownItem } from "./item.js";
import type { Authenticate, Reviewer } from "../auth.js";
import { isLocalRequest } from "../auth.js";
import { csrfMatches, csrfToken, deriveKeys, secretBytes } from "./keys.js";
import { LINK_PATH, SignInLinkError, SignInLinks, checkedPublicUrl } from "./links.js";
import { MAX_SCOPE, cookieName, openSession, readCookie, sealSession, sessionCookie, type InboxSession } from "./session.js";
import { answerLine, card, esc, message, page, type CardContext } from "./render.js";
import { EventHub } from "./events.js";
import { SECURITY_HEADERS } from "./headers.js";
import type { CurrentReader } from "../record-view.js";

export interface InboxOptions {
  /**
   * Signs session cookies, CSRF tokens and sign-in links: at least 32 bytes,
   * the same for every instance behind one address. Default: random per
   * process (sessions and links end with it).
   */
  readonly secret?: string | Uint8Array;
  /** The service's address as reviewers reach it ("https://veto.example.com"): sign-in links, the origin forms must come from, Secure cookies when https. */
  readonly publicUrl?: string;
  /** Moved: pass `readRecord` to createApprovalServer itself (it answers `{ fields, state? }`). */
  readonly readRecord?: never;
  /** How long a browser session lasts, ms. Default 8 hours. */
  readonly sessionTtlMs?: number;
  /** Secure cookies (and the __Host- prefix). Default: when publicUrl is https, or the request came over TLS. */
  readonly secureCookies?: boolean;
}

export interface InboxContext {
  readonly veto: Veto;
  readonly store: VetoStore;
  readonly authenticate: Authenticate;
  /** "jwt": a bearer token from the identity provider signs in; "devLogin": /dev-login on loopback with these approver ids. */
  readonly signIn: { readonly kind: "token" } | { readonly kind: "devLogin"; readonly approverIds: readonly string[] };
  readonly maxNoteLength: number;
  readonly now: () => Promise<number>;
  readonly log: { error(fields: object, message: string): void; warn(fields: object, message: string): void } | undefined;
  readonly rules: ServiceRules;
  /** The server's readRecord (before and after), when it has one. */
  readonly current: CurrentReader | undefined;
}

const ID = /^[0-9A-Za-z_-]{1,128}$/;
/** The sign-in page's own cookie, which its form's CSRF token is derived from. */
const LINK_CSRF_COOKIE = "veto_link_csrf";

function linkCsrfCookie(nonce: string, secure: boolean): string {
  return `${LINK_CSRF_COOKIE}=${nonce}; Path=${LINK_PATH}; HttpOnly; SameSite=Strict; Max-Age=900${secure ? "; Secure" : ""}`;
}
const PENDING: ApprovalStatus[] = ["pending", "answering"];
const ANSWERED: ApprovalStatus[] = ["approved", "rejected", "expired", "executed", "amended"];
const HISTORY_FILTERS = ["all", "approved", "rejected", "expired", "executed"] as const;

function asset(name: string): Buffer {
  const url = new URL(`./assets/${name}`, import.meta.url);
  try {
    return readFileSync(url);
  } catch (error) {
    throw new VetoOptionsError(`the inbox's ${name} is missing beside the package (${url.pathname}): reinstall or rebuild`, [], {
      cause: error,
    });
  }
}

/** A form body: fields as strings, the first of each name, on an object without a prototype. */
function parseForm(text: string): Record<string, string> {
  const fields = Object.create(null) as Record<string, string>;
  for (const [k, v] of new URLSearchParams(text)) if (!(k in fields)) fields[k] = v;
  return fields;
}

/** What became of an amended call (docs/contract.md §6, amend), in a line for the original's card. */
function amendedOutcome(next: StoredDecision, nowMs: number): string {
  const codes = (next.amendment?.decision.reasons ?? next.review?.reasons ?? []).map((r) => r.code).join(", ");
  if (next.action === "deny") return `denied by the policy (${codes || "no reason given"}); nothing runs.`;
  if (next.action === "allow") return "allowed by the policy; the waiting agent runs it.";
  const a = next.approval;
  if (a === undefined) return "needs approval.";
  const by = a.reviewerId === undefined ? "" : a.reviewerId === next.amendment?.by ? " by the amendment" : ` by ${a.reviewerId}`;
  switch (a.status) {
    case "pending":
    case "answering":
      return nowMs >= a.expiresAtMs
        ? "needed another approval, and expired without one."
        : `needs another approval (from ${next.approvers.join(", ")}).`;
    case "approved":
      return `approved${by}; the waiting agent runs it.`;
    case "executed":
      return `approved${by}; executed.`;
    case "rejected":
      return `rejected${by}.`;
    case "expired":
      return "needed another approval, and expired without one.";
    case "amended":
      return `amended again${by}.`;
  }
}

/** Register the inbox's routes on the approval service; returns its sign-in links (for notifiers). */
export async function registerInbox(app: FastifyInstance, ctx: InboxContext, options: InboxOptions = {}): Promise<SignInLinks> {
  if (options === null || typeof options !== "object") throw new VetoOptionsError("createApprovalServer: inbox must be an object or false");
  const keys = deriveKeys(secretBytes(options.secret, "createApprovalServer inbox"));
  const publicUrl = options.publicUrl === undefined ? undefined : checkedPublicUrl(options.publicUrl, "createApprovalServer inbox");
  const links = new SignInLinks(keys, ctx.store, publicUrl?.href);
  const ttlMs = options.sessionTtlMs ?? 8 * 60 * 60 * 1000;
  if (!(Number.isSafeInteger(ttlMs) && ttlMs >= 60_000))
    throw new VetoOptionsError("createApprovalServer inbox: sessionTtlMs must be at least 60,000");
  if ((options as { readRecord?: unknown }).readRecord !== undefined) {
    throw new VetoOptionsError(
      "createApprovalServer: readRecord is an option of createApprovalServer itself, not of inbox, and answers { fields, state? } (docs/inbox.md)",
    );
  }
  const { store, veto, now, log } = ctx;
  const { itemOf: approvalItem, mayAnswer } = ctx.rules;
  const devIds = ctx.signIn.kind === "devLogin" ? new Set(ctx.signIn.approverIds) : undefined;
  const files = {
    "inbox.js": { body: asset("inbox.js"), type: "text/javascript; charset=utf-8" },
    "inbox.css": { body: asset("inbox.css"), type: "text/css; charset=utf-8" },
    "icon.svg": { body: asset("icon.svg"), type: "image/svg+xml" },
  } as const;

  const secure = (request: FastifyRequest): boolean =>
    options.secureCookies ?? (publicUrl?.protocol === "https:" || request.protocol === "https");
  const origin = (request: FastifyRequest): string => publicUrl?.origin ?? `${request.protocol}://${request.headers.host ?? ""}`;
  /**
   * Whether a state-changing request came from our own pages. Browsers send
   * Sec-Fetch-Site (which no page can forge) and Origin on every POST; Origin
   * is "null" from a page whose referrer policy withholds it, so then
   * Sec-Fetch-Site decides. A client sending neither is not a browser, and
   * the CSRF token alone stands.
   */
  const sameOrigin = (request: FastifyRequest): boolean => {
    const site = request.headers["sec-fetch-site"];
    if (site !== undefined && site !== "same-origin") return false;
    const from = request.headers.origin;
    if (from === undefined) return true;
    return from === "null" ? site === "same-origin" : from === origin(request);
  };

  const startSession = async (
    request: FastifyRequest,
    reply: FastifyReply,
    s: Omit<InboxSession, "id" | "expiresAtMs">,
    nowMs: number,
  ): Promise<InboxSession> => {
    const { value, session } = await sealSession(keys, { ...s, expiresAtMs: nowMs + ttlMs });
    void reply.header("set-cookie", sessionCookie(value, { secure: secure(request), maxAgeS: ttlMs / 1000 }));
    return session;
  };

  /**
   * The signed-in reviewer. Behind an identity-aware proxy (token sign-in) a
   * bearer token, when the request carries one, decides: valid, it opens a
   * session (or keeps the cookie's, when that is the same reviewer with the
   * same approver ids); not valid, nobody is signed in, whatever the cookie
   * says. Otherwise the session cookie.
   */
  const sessionOf = async (request: FastifyRequest, reply: FastifyReply, nowMs: number): Promise<InboxSession | undefined> => {
    const found = await openSession(keys, readCookie(request.headers.cookie, cookieName(secure(request))), nowMs);
    if (ctx.signIn.kind !== "token" || request.headers.authorization === undefined) return found;
    let r: Reviewer;
    try {
      r = await ctx.authenticate(request.headers, { remoteAddress: request.socket.remoteAddress });
    } catch {
      return undefined;
    }
    const same = found?.scope === undefined && found?.reviewerId === r.id && found.approverIds.join("\n") === r.approverIds.join("\n");
    return same ? found : await startSession(request, reply, { reviewerId: r.id, approverIds: r.approverIds }, nowMs);
  };

  const reviewerOf = (s: InboxSession): Reviewer => ({ id: s.reviewerId, approverIds: s.approverIds });
  const visibleTo = (s: InboxSession, d: StoredDecision | undefined): d is StoredDecision =>
    d !== undefined && d.action === "require_approval" && mayAnswer(reviewerOf(s), d) && (s.scope === undefined || s.scope.includes(d.id));

  const html = (reply: FastifyReply, status: number, body: string): FastifyReply =>
    reply.code(status).type("text/html; charset=utf-8").send(body);

  const signInPage = (reply: FastifyReply, nowMs: number, status = 401, why?: string): FastifyReply => {
    const how =
      ctx.signIn.kind === "devLogin"
        ? `<p>Development sign-in: <code>/dev-login?reviewer=ID</code> with an approver id of the data document.</p>`
        : `<p>Open the sign-in link from your notification, or sign in through your organization's identity provider.</p>`;
    return html(
      reply,
      status,
      page({ title: "Sign in", view: "sign-in", nowMs }, message("Sign in", why ?? "You are not signed in.", how)),
    );
  };

  /** What became of an amended call, for the original's card: a line, and whether its card is the reviewer's to open. */
  const amendedToOf = async (item: ShownItem, s: InboxSession, nowMs: number): Promise<CardContext["amendedTo"]> => {
    if (item.status !== "amended" || item.amendedTo === undefined) return undefined;
    const next = await store.getDecision(item.amendedTo).catch(() => undefined);
    if (next === undefined) return undefined;
    return { text: amendedOutcome(next, nowMs), link: visibleTo(s, next) };
  };

  type CardExtra = Pick<CardContext, "outcome" | "amendDraft" | "current">;

  const cardOf = async (d: StoredDecision, s: InboxSession, nowMs: number, extra: CardExtra = {}): Promise<string> => {
    const item = approvalItem(d, nowMs);
    const current =
      extra.current !== undefined || ctx.current === undefined || item.status !== "pending"
        ? extra.current
        : (await ctx.current.readMany([d])).get(d.id);
    const amendedTo = await amendedToOf(item, s, nowMs);
    return card(item, {
      reviewerId: s.reviewerId,
      csrf: csrfToken(keys, s.id),
      nowMs,
      ...extra,
      ...(current === undefined ? {} : { current }),
      ...(amendedTo === undefined ? {} : { amendedTo }),
    });
  };

  const layout = (s: InboxSession, nowMs: number, view: string, title: string, body: string): string =>
    page({ title, view, nowMs, reviewerId: s.reviewerId, csrf: csrfToken(keys, s.id), scoped: s.scope !== undefined }, body);

  const hub = new EventHub({ store, now, visibleTo, log, itemOf: approvalItem });
  app.addHook("preClose", async () => hub.close());

  await app.register(async (inbox) => {
    inbox.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_request, body, done) => {
      done(null, parseForm(body as string));
    });
    inbox.addHook("onSend", async (_request, reply, payload) => {
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) void reply.header(name, value);
      return payload;
    });
    inbox.setErrorHandler((error: { statusCode?: number; message: string }, request, reply) => {
      const status = error.statusCode ?? 500;
      if (status >= 500) log?.error({ err: error }, "inbox error");
      const text =
        status === 413
          ? "The form is too large."
          : status >= 500
            ? "Something went wrong; nothing was changed."
            : "The request was malformed.";
      return html(reply, status, page({ title: "Error", view: "error", nowMs: Date.now() }, message("Not done", text)));
    });
    const config = { inbox: true };

    for (const [name, file] of Object.entries(files)) {
      inbox.get(`/assets/${name}`, { config }, async (_request, reply) => reply.type(file.type).send(file.body));
    }

    inbox.get("/", { config }, async (request, reply) => {
      const nowMs = await now();
      const s = await sessionOf(request, reply, nowMs);
      if (s === undefined) return signInPage(reply, nowMs);
      const found = await store.listApprovals!({ approverIds: s.approverIds, status: PENDING, limit: 200 });
      const shown = found.filter((d) => visibleTo(s, d) && nowMs < d.approval!.expiresAtMs);
      // Every card's current values in one go, by one deadline: a slow CRM delays the page once.
      const views = ctx.current === undefined ? undefined : await ctx.current.readMany(shown);
      const cards: string[] = [];
      for (const d of shown) {
        const current = views?.get(d.id);
        cards.push(await cardOf(d, s, nowMs, current === undefined ? {} : { current }));
      }
      const body = `<h1>Pending approvals</h1>
<p class="empty"${cards.length === 0 ? "" : " hidden"}>Nothing is waiting for you.</p>
<div class="cards" data-cards>${cards.join("\n")}</div>`;
      return html(reply, 200, layout(s, nowMs, "inbox", "Pending approvals", body));
    });

    inbox.get("/sign-in", { config }, async (request, reply) => {
      const nowMs = await now();
      const s = await sessionOf(request, reply, nowMs);
      if (s !== undefined) return reply.redirect("/", 303);
      return signInPage(reply, nowMs);
    });

    if (devIds !== undefined) {
      inbox.get("/dev-login", { config }, async (request, reply) => {
        const nowMs = await now();
        if (!isLocalRequest({ remoteAddress: request.socket.remoteAddress }, request.headers.host)) {
          return signInPage(reply, nowMs, 403, "Development sign-in works only from this machine.");
        }
        const reviewer = (request.query as Record<string, unknown>)["reviewer"];
        if (typeof reviewer !== "string" || !devIds.has(reviewer)) {
          return signInPage(reply, nowMs, 403, "reviewer must name an approver of the data document.");
        }
        await startSession(request, reply, { reviewerId: reviewer, approverIds: [reviewer] }, nowMs);
        return reply.redirect("/", 303);
      });
    }

    const linkRefused = (reply: FastifyReply, nowMs: number, error: unknown): FastifyReply => {
      if (!(error instanceof SignInLinkError)) throw error;
      const status = error.code === "link_used" || error.code === "link_expired" ? 410 : 403;
      return signInPage(reply, nowMs, status, `Sign-in refused: ${error.message}.`);
    };

    // GET only shows a button: mail scanners that open links never use one up.
    inbox.get(LINK_PATH, { config }, async (request, reply) => {
      const nowMs = await now();
      const token = (request.query as Record<string, unknown>)["token"];
      let link;
      try {
        link = await links.verify(token, nowMs);
      } catch (error) {
        return linkRefused(reply, nowMs, error);
      }
      // The form's CSRF token pairs with a cookie only this page sets (double submit): a
      // form posted from elsewhere cannot sign this browser in with someone else's link.
      const nonce = randomBytes(16).toString("base64url");
      void reply.header("set-cookie", linkCsrfCookie(nonce, secure(request)));
      const body = `<h1>Sign in to answer an approval</h1>
<p class="message">Sign in as <strong>${esc(link.reviewerId)}</strong> to answer decision <code>${esc(link.decisionId)}</code>. The link works once.</p>
<form method="post" action="${LINK_PATH}"><input type="hidden" name="_csrf" value="${esc(csrfToken(keys, `sign-in link ${nonce}`))}"><input type="hidden" name="token" value="${esc(token)}"><button type="submit">Sign in</button></form>`;
      return html(reply, 200, page({ title: "Sign in", view: "sign-in", nowMs }, body));
    });

    inbox.post(LINK_PATH, { config }, async (request, reply) => {
      const nowMs = await now();
      if (!sameOrigin(request)) return signInPage(reply, nowMs, 403, "Sign-in refused: the form came from another site.");
      const form = request.body as Record<string, string> | undefined;
      const nonce = readCookie(request.headers.cookie, LINK_CSRF_COOKIE);
      if (nonce === undefined || !csrfMatches(keys, `sign-in link ${nonce}`, form?.["_csrf"])) {
        return signInPage(reply, nowMs, 403, "Sign-in refused: the form is not from this browser's sign-in page; open the link again.");
      }
      let link;
      try {
        link = await links.redeem(form?.["token"], nowMs);
      } catch (error) {
        return linkRefused(reply, nowMs, error);
      }
      // Links of one reviewer redeemed in one browser add up; another reviewer's replaces the session.
      const had = await openSession(keys, readCookie(request.headers.cookie, cookieName(secure(request))), nowMs);
      const scope =
        had?.reviewerId === link.reviewerId && had.scope !== undefined
          ? [...new Set([link.decisionId, ...had.scope])].slice(0, MAX_SCOPE)
          : [link.decisionId];
      if (had?.reviewerId === link.reviewerId && had.scope === undefined) return reply.redirect(`/approvals/${link.decisionId}`, 303);
      await startSession(request, reply, { reviewerId: link.reviewerId, approverIds: [link.reviewerId], scope }, nowMs);
      return reply.redirect(`/approvals/${link.decisionId}`, 303);
    });

    inbox.post("/sign-out", { config }, async (request, reply) => {
      const nowMs = await now();
      const s = await sessionOf(request, reply, nowMs);
      const form = request.body as Record<string, string> | undefined;
      if (s === undefined || !sameOrigin(request) || !csrfMatches(keys, s.id, form?.["_csrf"])) {
        return signInPage(reply, nowMs, 403, "Sign-out refused: the form is not from this session.");
      }
      void reply.header("set-cookie", sessionCookie("", { secure: secure(request), maxAgeS: 0 }));
      return signInPage(reply, nowMs, 200, "You are signed out.");
    });

    /** The amended call's card below the original's, when the reviewer may see it. */
    const amendedCard = async (d: StoredDecision, s: InboxSession, nowMs: number): Promise<string> => {
      const to = d.approval?.status === "amended" ? d.approval.amendedTo : undefined;
      const next = to === undefined ? undefined : await store.getDecision(to).catch(() => undefined);
      return visibleTo(s, next) ? `\n${await cardOf(next, s, nowMs)}` : "";
    };

    /** Whether a state-changing form is this session's own: form-encoded, same origin, its CSRF token. */
    const formIsOurs = (request: FastifyRequest, s: InboxSession, form: Record<string, string> | undefined): boolean =>
      /^application\/x-www-form-urlencoded\b/.test(request.headers["content-type"] ?? "") &&
      sameOrigin(request) &&
      csrfMatches(keys, s.id, form?.["_csrf"]);

    // The outcome of an answer or amendment form: the cards alone for the page's script (always 200,
    // the status in x-veto-status), else back to the approval's page when done, or the page with the cards.
    const sendCards = (
      reply: FastifyReply,
      s: InboxSession,
      nowMs: number,
      fragment: boolean,
      decisionId: string,
      status: number,
      cards: string,
    ): FastifyReply => {
      if (fragment) return reply.code(200).header("x-veto-status", String(status)).type("text/html; charset=utf-8").send(cards);
      if (status === 200) return reply.redirect(`/approvals/${decisionId}`, 303);
      return html(reply, status, layout(s, nowMs, "approval", "Approval", `<h1>Approval</h1><div class="cards" data-cards>${cards}</div>`));
    };

    const forged = (reply: FastifyReply, s: InboxSession, nowMs: number): FastifyReply =>
      html(
        reply,
        403,
        layout(
          s,
          nowMs,
          "error",
          "Refused",
          message("Refused", "This form is not from your session; nothing was changed. Reload the page and try again."),
        ),
      );

    const decisionOf = async (request: FastifyRequest): Promise<StoredDecision | undefined> => {
      const id = (request.params as { id?: unknown }).id;
      return typeof id === "string" && ID.test(id) ? await store.getDecision(id) : undefined;
    };

    inbox.get("/approvals/:id", { config }, async (request, reply) => {
      const nowMs = await now();
      const s = await sessionOf(request, reply, nowMs);
      if (s === undefined) return signInPage(reply, nowMs);
      const d = await decisionOf(request);
      if (!visibleTo(s, d))
        return html(reply, 404, layout(s, nowMs, "approval", "Not found", message("Not found", "No such approval for you.")));
      const body = `<h1>Approval</h1><div class="cards" data-cards>${await cardOf(d, s, nowMs)}${await amendedCard(d, s, nowMs)}</div>`;
      return html(reply, 200, layout(s, nowMs, "approval", "Approval", body));
    });

    // The card alone, for the page's script to swap in (a change seen on the event stream).
    inbox.get("/approvals/:id/card", { config }, async (request, reply) => {
      const nowMs = await now();
      const s = await sessionOf(request, reply, nowMs);
      if (s === undefined) return reply.code(401).type("text/plain").send("not signed in");
      const d = await decisionOf(request);
      if (!visibleTo(s, d)) return reply.code(404).type("text/plain").send("no such approval");
      return html(reply, 200, await cardOf(d, s, nowMs));
    });

    for (const kind of ["approve", "reject"] as const) {
      inbox.post(`/approvals/:id/${kind}`, { config }, async (request, reply) => {
        const nowMs = await now();
        // The page's script asks for the card alone (always 200: the outcome is in the card).
        const fragment = request.headers["x-veto-fragment"] === "1";
        const s = await sessionOf(request, reply, nowMs);
        const form = request.body as Record<string, string> | undefined;
        if (s === undefined) return signInPage(reply, nowMs);
        // A forged or stale form changes nothing, whatever else it says.
        if (!formIsOurs(request, s, form)) {
          log?.warn({ reviewer_id: s.reviewerId }, "inbox: answer refused, CSRF token missing or wrong, or another origin");
          return forged(reply, s, nowMs);
        }
        const d = await decisionOf(request);
        if (!visibleTo(s, d))
          return html(reply, 404, layout(s, nowMs, "error", "Not found", message("Not found", "No such approval for you.")));
        const note = form?.["note"]?.trim() ?? "";
        const done = async (status: number, outcome: CardContext["outcome"]): Promise<FastifyReply> => {
          const settled = (await store.getDecision(d.id)) ?? d;
          return sendCards(reply, s, nowMs, fragment, d.id, status, await cardOf(settled, s, await now(), { outcome }));
        };
        if (note.length > ctx.maxNoteLength) {
          return await done(400, {
            kind: "refused",
            text: `The comment is longer than ${ctx.maxNoteLength} characters; nothing was changed.`,
          });
        }
        const as = s.approverIds.find((id) => d.approvers.includes(id))!;
        try {
          const answer = { decisionId: d.id, reviewerId: as, ...(note === "" ? {} : { note }) };
          await (kind === "approve" ? veto.approve(answer) : veto.reject(answer));
        } catch (error) {
          // A comment that is not well-formed text cannot be recorded: nothing changed.
          if (error instanceof VetoOptionsError) return await done(400, { kind: "refused", text: `Not done: ${error.message}.` });
          if (!(error instanceof ApprovalError)) throw error;
          const status = ctx.rules.statusOf(error.code);
          if (status >= 500) log?.error({ err: error, decision_id: d.id }, "inbox: answer could not be stored");
          if (error.code === "already_answered" || error.code === "already_executed") {
            const now2 = await now();
            const current = approvalItem((await store.getDecision(d.id)) ?? d, now2);
            return await done(409, { kind: "conflict", text: `Already answered: ${answerLine(current, s.reviewerId)}` });
          }
          if (error.code === "approval_expired")
            return await done(410, { kind: "conflict", text: "Expired: this approval can no longer be answered." });
          return await done(status, { kind: "refused", text: `Not done: ${ctx.rules.publicMessage(error, status)}.` });
        }
        return await done(200, { kind: "answered", text: "" });
      });
    }

    // Amend before approve (docs/contract.md §6, amend): the session's reviewer, never the form,
    // through the JSON API's own amend (its checks, refusals and answer).
    inbox.post("/approvals/:id/amend", { config }, async (request, reply) => {
      const nowMs = await now();
      const fragment = request.headers["x-veto-fragment"] === "1";
      const s = await sessionOf(request, reply, nowMs);
      const form = request.body as Record<string, string> | undefined;
      if (s === undefined) return signInPage(reply, nowMs);
      if (!formIsOurs(request, s, form)) {
        log?.warn({ reviewer_id: s.reviewerId }, "inbox: amendment refused, CSRF token missing or wrong, or another origin");
        return forged(reply, s, nowMs);
      }
      const d = await decisionOf(request);
      if (!visibleTo(s, d))
        return html(reply, 404, layout(s, nowMs, "error", "Not found", message("Not found", "No such approval for you.")));
      const text = form?.["arguments"] ?? "";
      const note = form?.["note"]?.trim() ?? "";
      const send = async (status: number, cards: string): Promise<FastifyReply> =>
        sendCards(reply, s, nowMs, fragment, d.id, status, cards);
      // Refused: the card again, its form open with what was sent (while the approval is pending).
      const refused = async (status: number, kind: "conflict" | "refused", line: string): Promise<FastifyReply> => {
        const settled = (await store.getDecision(d.id)) ?? d;
        return await send(
          status,
          await cardOf(settled, s, await now(), { outcome: { kind, text: line }, amendDraft: { arguments: text, note } }),
        );
      };
      let args: unknown;
      try {
        args = JSON.parse(text);
      } catch (error) {
        const why = toError(error).message.slice(0, 200);
        return await refused(
          400,
          "refused",
          `Not amended: the arguments are not valid JSON (${why}). Fix them and amend again; nothing was changed.`,
        );
      }
      if (args === null || typeof args !== "object" || Array.isArray(args)) {
        const was = args === null ? "null" : Array.isArray(args) ? "an array" : `a ${typeof args}`;
        return await refused(
          400,
          "refused",
          `Not amended: the arguments must be a JSON object ({ "object": …, "recordId": …, "changes": { … } }), not ${was}. Nothing was changed.`,
        );
      }
      if (note.length > ctx.maxNoteLength) {
        return await refused(400, "refused", `Not amended: the note is longer than ${ctx.maxNoteLength} characters; nothing was changed.`);
      }
      const done = await ctx.rules.amend(reviewerOf(s), d.id, { arguments: args, ...(note === "" ? {} : { note }) });
      if (!done.ok) {
        const { status, code, message: why } = done.refusal;
        if (status >= 500) log?.error({ code, decision_id: d.id }, "inbox: amendment could not be stored");
        if (code === "already_answered" || code === "already_executed" || code === "not_amendable") {
          const item = approvalItem((await store.getDecision(d.id)) ?? d, await now());
          return await refused(409, "conflict", `Not amended: already answered. ${answerLine(item, s.reviewerId)}`);
        }
        if (code === "approval_expired") return await refused(410, "conflict", "Not amended: this approval has expired.");
        return await refused(status, "refused", `Not amended: ${why}.`);
      }
      // The card's "Amended → decision X: …" line says what became of the amended call.
      const settled = (await store.getDecision(d.id)) ?? d;
      const cards = await cardOf(settled, s, await now(), { outcome: { kind: "amended", text: "Amended by you." } });
      return await send(200, `${cards}${await amendedCard(settled, s, await now())}`);
    });

    inbox.get("/history", { config }, async (request, reply) => {
      const nowMs = await now();
      const s = await sessionOf(request, reply, nowMs);
      if (s === undefined) return signInPage(reply, nowMs);
      const wanted = (request.query as Record<string, unknown>)["status"] ?? "all";
      const filter = HISTORY_FILTERS.find((f) => f === wanted);
      if (filter === undefined)
        return html(reply, 400, layout(s, nowMs, "history", "History", message("History", "Unknown status filter.")));
      const statuses: ApprovalStatus[] = filter === "all" ? ANSWERED : [filter];
      const found = await store.listApprovals!({ approverIds: s.approverIds, status: statuses, limit: 200 });
      // A pending approval whose time is up was answered by the clock: expired.
      if (filter === "all" || filter === "expired") {
        const lapsed = await store.listApprovals!({ approverIds: s.approverIds, status: PENDING, limit: 200 });
        found.push(...lapsed.filter((d) => nowMs >= d.approval!.expiresAtMs));
      }
      const items = found
        .filter((d) => visibleTo(s, d))
        .map((d) => approvalItem(d, nowMs))
        .sort((a, b) => (b.answeredAt ?? b.expiresAt).localeCompare(a.answeredAt ?? a.expiresAt));
      const options = HISTORY_FILTERS.map(
        (f) =>
          `<option value="${f}"${f === filter ? " selected" : ""}>${f === "all" ? "All answered" : f[0]!.toUpperCase() + f.slice(1)}</option>`,
      ).join("");
      const rows = items
        .map((i) => {
          const a = (i.arguments ?? {}) as Record<string, unknown>;
          const what =
            `${i.tool ?? ""} ${typeof a["object"] === "string" ? a["object"] : ""} ${typeof a["recordId"] === "string" ? a["recordId"] : ""}`.trim();
          return `<tr data-decision-id="${esc(i.decisionId)}" data-status="${esc(i.status)}"><td><a href="/approvals/${esc(i.decisionId)}">${esc(what)}</a></td><td>${esc(i.actorId ?? "")}</td><td>${esc(i.status)}</td><td>${esc(i.reviewerId ?? "")}</td><td>${esc(i.note ?? "")}</td><td>${i.answeredAt === undefined ? "" : `<time datetime="${esc(i.answeredAt)}">${esc(i.answeredAt.slice(0, 19).replace("T", " "))} UTC</time>`}</td></tr>`;
        })
        .join("");
      const body = `<h1>History</h1>
<form class="filter" method="get" action="/history"><label for="status">Status</label><select id="status" name="status">${options}</select><button type="submit">Filter</button></form>
<div class="table-wrap"><table class="history"><caption>Answered approvals${filter === "all" ? "" : `: ${esc(filter)}`}</caption>
<thead><tr><th scope="col">Call</th><th scope="col">Actor</th><th scope="col">Status</th><th scope="col">Reviewer</th><th scope="col">Comment</th><th scope="col">Answered</th></tr></thead>
<tbody>${rows || '<tr><td colspan="6">None yet.</td></tr>'}</tbody></table></div>`;
      return html(reply, 200, layout(s, nowMs, "history", "History", body));
    });

    inbox.get("/events", { config }, async (request, reply) => {
      const nowMs = await now();
      const s = await sessionOf(request, reply, nowMs);
      if (s === undefined) return reply.code(401).type("text/plain").send("not signed in");
      if (!hub.open(request, reply, s)) return reply.code(503).type("text/plain").send("too many event streams");
      return reply;
    });
  });
  return links;
}
