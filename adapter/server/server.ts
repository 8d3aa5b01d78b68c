/**
 * The approval service: a JSON API over a store (docs/approvals.md). Every
 * route is authenticated before its body is read; the reviewer is who the
 * verified credential says, never what the body says; answers go through
 * veto.approve()/reject(), so the same rules hold and each answer is recorded
 * before it is acknowledged (docs/contract.md §6, §7). Refusals change nothing.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Veto } from "../veto.js";
import type { StoredDecision, VetoStore, ApprovalStatus } from "../history/store.js";
import { ApprovalError, VetoOptionsError, toError } from "../common/errors.js";
import { loneSurrogateAt } from "../common/canonical-json.js";
import {
  CredentialError,
  devLoginAuthenticator,
  jwtAuthenticator,
  type Authenticate,
  type DevLoginOptions,
  type JwtAuthOptions,
  type Reviewer,
} from "./auth.js";
import { registerInbox, type InboxOptions } from "./inbox/routes.js";
import type { SignInLinks } from "./inbox/links.js";
import { currentReader, DEFAULT_READ_RECORD_TIMEOUT_MS, type CurrentView, type ReadRecord } from "./record-view.js";
import type { AmendResult } from "../veto.js";

export interface ApprovalServerOptions {
  /** Answers go through it (its approve/reject rules and records). */
  readonly veto: Veto;
  /** The store the veto decides on: what is listed and shown. Needs listApprovals. */
  readonly store: VetoStore;
  /** How callers prove who they are: `{ jwt }`, or `{ devLogin }` (loopback only; see createApprovalServer). */
  readonly auth: { readonly jwt: JwtAuthOptions } | { readonly devLogin: DevLoginOptions } | { readonly authenticate: Authenticate };
  /** Largest request body, bytes. Default 16,384. */
  readonly bodyLimit?: number;
  /** Longest note, characters. Default 2,000. */
  readonly maxNoteLength?: number;
  /** pino-like logger for refusals and failures. Default: Fastify's own, off. */
  readonly logger?: { error(fields: object, message: string): void; warn(fields: object, message: string): void };
  /** The browser inbox at `/` (docs/inbox.md); false: the JSON API only. Default: on, with a per-process secret. */
  readonly inbox?: InboxOptions | false;
  /**
   * The app's read of its CRM, for display only (docs/inbox.md, "Before and
   * after"): a pending approval's card, and `GET /api/approvals/:id` as
   * `current`, show each changed field's current value and the state it was
   * read at beside the approval's. Never decides anything. Default: none.
   */
  readonly readRecord?: ReadRecord;
  /** How long a page or item waits for readRecord, ms (1-60,000). Default 2,000. */
  readonly readRecordTimeoutMs?: number;
}

export type ItemStatus = "pending" | "approved" | "rejected" | "expired" | "executed" | "amended";

export interface ApprovalItem {
  readonly decisionId: string;
  readonly status: ItemStatus;
  readonly tool: string | null;
  readonly actorId: string | null;
  readonly tenantId: string | null;
  readonly environment: string | null;
  readonly arguments: unknown;
  readonly reasons: readonly { code: string; message: string }[];
  readonly approvers: readonly string[];
  readonly bundle: { revision: string; hash: string } | null;
  readonly recentDenies: number | null;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly reviewerId?: string;
  readonly note?: string;
  readonly answeredAt?: string;
  readonly executedAt?: string;
  /** The target record's state the approval is bound to (docs/contract.md §6, record state), when one is. */
  readonly recordState?: string;
  /** For an amended approval: the decision id of the amended call. */
  readonly amendedTo?: string;
  /** For the approval of an amended call: the decision it amends, and who amended it. */
  readonly amendedFrom?: string;
  readonly amendedBy?: string;
  /**
   * `GET /api/approvals/:id` of a pending approval, with the server's
   * readRecord: the changed fields' current values and the state they were
   * read at (docs/inbox.md, "Before and after").
   */
  readonly current?: CurrentView;
}

/** What amending answers: the item of the amended approval, the amended call's decision, and the amender's approval of it. */
export type AmendAnswer = { readonly amended: ApprovalItem } & Omit<AmendResult, "amended">;

/** An amendment refused: the HTTP status and the error the API answers; nothing changed. */
export interface AmendRefusal {
  readonly status: number;
  readonly code: string;
  readonly message: string;
}

const ID = /^[0-9A-Za-z_-]{1,128}$/;
const DEFAULT_PAGE = 50;
const MAX_PAGE = 200;

function pageLimit(value: unknown): number | undefined {
  if (typeof value !== "string" || !/^[1-9]\d{0,2}$/.test(value)) return undefined;
  const n = Number(value);
  return n <= MAX_PAGE ? n : undefined;
}

/** Where a page ended: (atMs, id) of its last item, opaque to callers (base64url JSON). */
function encodeCursor(d: StoredDecision): string {
  return Buffer.from(JSON.stringify([d.atMs, d.id]), "utf8").toString("base64url");
}

/** The position a cursor names; null for anything this service did not give. */
function decodeCursor(value: unknown): { atMs: number; id: string } | null {
  if (typeof value !== "string" || !/^[A-Za-z0-9_-]{1,400}$/.test(value)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(value, "base64url").toString("utf8"));
  } catch {
    return null;
  }
  if (!Array.isArray(parsed) || parsed.length !== 2) return null;
  const [atMs, id] = parsed as unknown[];
  if (typeof atMs !== "number" || !Number.isSafeInteger(atMs) || atMs < 0 || typeof id !== "string" || !ID.test(id)) return null;
  return { atMs, id };
}
const iso = (ms: number): string => new Date(ms).toISOString();

/** The item a reviewer sees; a pending approval whose time is up shows as expired. */
export function approvalItem(d: StoredDecision, nowMs: number): ApprovalItem {
  const a = d.approval!;
  const raw = a.status === "answering" ? "pending" : a.status;
  const status: ItemStatus = raw === "pending" && nowMs >= a.expiresAtMs ? "expired" : raw;
  const r = d.review;
  return {
    decisionId: d.id,
    status,
    tool: r?.tool ?? null,
    actorId: d.actorId ?? null,
    tenantId: d.tenantId ?? null,
    environment: r?.environment ?? null,
    arguments: r?.arguments ?? null,
    reasons: r?.reasons ?? [],
    approvers: d.approvers,
    bundle: r?.bundle ?? null,
    recentDenies: r?.recentDenies ?? null,
    createdAt: iso(d.atMs),
    expiresAt: iso(a.expiresAtMs),
    ...(a.reviewerId === undefined || a.status === "answering" ? {} : { reviewerId: a.reviewerId }),
    ...(a.note === undefined ? {} : { note: a.note }),
    ...(a.answeredAtMs === undefined ? {} : { answeredAt: iso(a.answeredAtMs) }),
    ...(a.executedAtMs === undefined ? {} : { executedAt: iso(a.executedAtMs) }),
    ...(d.recordState === undefined ? {} : { recordState: d.recordState }),
    ...(a.amendedTo === undefined ? {} : { amendedTo: a.amendedTo }),
    ...(d.amendment === undefined ? {} : { amendedFrom: d.amendment.from, amendedBy: d.amendment.by }),
  };
}

const STATUS_OF_ERROR: Readonly<Record<string, number>> = {
  unknown_decision: 404,
  approval_not_required: 404,
  not_an_approver: 403,
  self_approval: 403,
  already_answered: 409,
  already_executed: 409,
  not_amendable: 409,
  approval_expired: 410,
  record_unavailable: 503,
  closed: 503,
};

/**
 * What a refusal tells the client of an ApprovalError: its message, but for
 * the server's own failures (5xx), whose messages may name where records are
 * kept: those are logged, and the client is told what happened only.
 */
export function publicMessage(error: ApprovalError, status: number): string {
  if (status < 500) return error.message;
  return error.code === "record_unavailable"
    ? `${error.decisionId}: the answer could not be stored or recorded (the server's log says why)`
    : `${error.decisionId}: the approval service cannot answer now (${error.code})`;
}

function refuse(reply: FastifyReply, status: number, code: string, message: string, extra: object = {}): FastifyReply {
  return reply
    .code(status)
    .type("application/json")
    .send({ error: { code, message, ...extra } });
}

declare module "fastify" {
  interface FastifyRequest {
    reviewer: Reviewer | undefined;
  }
  interface FastifyInstance {
    /** One-time sign-in links to the inbox (docs/inbox.md), for notifiers; undefined with inbox: false. */
    signInLinks: SignInLinks | undefined;
  }
}

function authenticatorOf(auth: ApprovalServerOptions["auth"]): Authenticate {
  if ("authenticate" in auth && typeof auth.authenticate === "function") return auth.authenticate;
  if ("jwt" in auth) return jwtAuthenticator(auth.jwt);
  if ("devLogin" in auth) return devLoginAuthenticator(auth.devLogin);
  throw new VetoOptionsError("createApprovalServer: auth must be { jwt }, { devLogin } or { authenticate }");
}

/**
 * Where `args` holds, as a string, a masked value of `stored` (the arguments as
 * the approval keeps them): its path (".changes.credit_limit"), else undefined.
 */
function maskedValueIn(args: unknown, stored: unknown): string | undefined {
  const digests = new Set<string>();
  const walk = (root: unknown, visit: (value: string, path: string) => boolean): string | undefined => {
    const stack: [unknown, string][] = [[root, ""]];
    while (stack.length > 0) {
      const [value, path] = stack.pop()!;
      if (typeof value === "string") {
        if (visit(value, path)) return path;
      } else if (value !== null && typeof value === "object") {
        for (const [k, v] of Object.entries(value)) stack.push([v, Array.isArray(value) ? `${path}[${k}]` : `${path}.${k}`]);
      }
    }
    return undefined;
  };
  walk(stored, (value) => {
    if (MASKED.test(value)) digests.add(value);
    return false;
  });
  return digests.size === 0 ? undefined : walk(args, (value) => digests.has(value));
}
const MASKED = /^(hmac-)?sha256:[0-9a-f]{64}$/;

/** May this reviewer see and answer this decision's approval? The actor never may (docs/contract.md §6). */
function mayAnswer(reviewer: Reviewer, d: StoredDecision): boolean {
  return d.approval !== undefined && d.actorId !== reviewer.id && reviewer.approverIds.some((id) => d.approvers.includes(id));
}

export async function createApprovalServer(options: ApprovalServerOptions): Promise<FastifyInstance> {
  if (options === null || typeof options !== "object") throw new VetoOptionsError("createApprovalServer: pass { veto, store, auth }");
  const { veto, store } = options;
  if (veto === undefined || typeof veto.approve !== "function")
    throw new VetoOptionsError("createApprovalServer: veto (from createVeto) is required");
  if (store === undefined || typeof store.listApprovals !== "function" || typeof store.getDecision !== "function") {
    throw new VetoOptionsError("createApprovalServer: store must be the veto's store and implement listApprovals");
  }
  const authenticate = authenticatorOf(options.auth);
  const maxNote = options.maxNoteLength ?? 2_000;
  // What an answer's note must be, both for answers and for amendments: text a record can hold.
  const isNote = (value: unknown): value is string => typeof value === "string" && value.length <= maxNote && loneSurrogateAt(value) < 0;
  const noteRule = `note must be well-formed text of at most ${maxNote} characters`;
  const log = options.logger;
  const now = async (): Promise<number> => (store.now === undefined ? Date.now() : await store.now());
  if (options.readRecord !== undefined && typeof options.readRecord !== "function") {
    throw new VetoOptionsError("createApprovalServer: readRecord must be a function (call) => { fields, state? } | undefined");
  }
  const readTimeoutMs = options.readRecordTimeoutMs ?? DEFAULT_READ_RECORD_TIMEOUT_MS;
  if (!(Number.isSafeInteger(readTimeoutMs) && readTimeoutMs >= 1 && readTimeoutMs <= 60_000)) {
    throw new VetoOptionsError("createApprovalServer: readRecordTimeoutMs must be an integer from 1 to 60,000");
  }
  const current = options.readRecord === undefined ? undefined : currentReader(options.readRecord, readTimeoutMs, log);

  const app = Fastify({
    bodyLimit: options.bodyLimit ?? 16_384,
    logger: false,
    return503OnClosing: true,
    // A path Fastify cannot decode (%00, %C0%AE) or over its parameter limit: refused before
    // routing (so before authentication), in the service's own error shape.
    frameworkErrors: (error, _request, reply) => {
      const status = (error as { statusCode?: number }).statusCode ?? 400;
      void refuse(reply, status >= 400 && status < 500 ? status : 400, "malformed_request", "the request path cannot be read");
    },
  });
  // Only JSON bodies: text/plain would otherwise be accepted as a string (415 instead).
  app.removeContentTypeParser("text/plain");
  app.decorateRequest("reviewer", undefined);

  // Authenticate before the body is read: an unauthenticated request never has its body parsed.
  app.addHook("onRequest", async (request, reply) => {
    // The inbox's pages sign reviewers in with a session of their own (docs/inbox.md).
    if ((request.routeOptions.config as { inbox?: boolean } | undefined)?.inbox === true) return;
    try {
      request.reviewer = await authenticate(request.headers, { remoteAddress: request.socket.remoteAddress });
    } catch (error) {
      if (!(error instanceof CredentialError)) log?.error({ err: toError(error) }, "authentication failed");
      reply.header("www-authenticate", 'Bearer realm="veto"');
      return refuse(
        reply,
        401,
        "unauthenticated",
        error instanceof CredentialError ? error.message : "the credential could not be checked",
      );
    }
  });

  app.setErrorHandler((error: { statusCode?: number; code?: string; message: string }, _request, reply) => {
    const status = error.statusCode ?? 500;
    if (status === 413) return refuse(reply, 413, "body_too_large", "the request body is too large");
    if (status === 415) return refuse(reply, 415, "unsupported_media_type", "the body must be application/json");
    if (status >= 400 && status < 500) return refuse(reply, status, "malformed_request", error.message);
    log?.error({ err: error }, "approval service error");
    return refuse(reply, 500, "internal", "internal error");
  });
  app.setNotFoundHandler((_request, reply) => refuse(reply, 404, "not_found", "no such route"));

  const reviewerOf = (request: FastifyRequest): Reviewer => request.reviewer!;

  app.get("/api/approvals", async (request, reply) => {
    const reviewer = reviewerOf(request);
    const query = request.query as Record<string, unknown>;
    const wanted = query["status"] ?? "pending";
    if (wanted !== "pending" && wanted !== "answered") return refuse(reply, 400, "malformed_request", "status must be pending or answered");
    const limit = query["limit"] === undefined ? DEFAULT_PAGE : pageLimit(query["limit"]);
    if (limit === undefined) return refuse(reply, 400, "malformed_request", `limit must be an integer from 1 to ${MAX_PAGE}`);
    const after = query["cursor"] === undefined ? undefined : decodeCursor(query["cursor"]);
    if (after === null) return refuse(reply, 400, "malformed_request", "cursor is not one this service gave");
    // A pending approval whose time is up is answered by the clock: listed as answered (expired).
    const statuses: ApprovalStatus[] =
      wanted === "pending" ? ["pending", "answering"] : ["approved", "rejected", "expired", "executed", "amended"];
    const nowMs = await now();
    // One more than the page: whether there is a next page, without a second query.
    const found = await store.listApprovals!({
      approverIds: reviewer.approverIds,
      status: statuses,
      nowMs,
      notActorId: reviewer.id,
      limit: limit + 1,
      ...(after === undefined ? {} : { after }),
    });
    const page = found.slice(0, limit).filter((d) => mayAnswer(reviewer, d));
    const last = found.length > limit ? found[limit - 1] : undefined;
    return {
      approvals: page.map((d) => approvalItem(d, nowMs)),
      ...(last === undefined ? {} : { nextCursor: encodeCursor(last) }),
    };
  });

  const visible = async (request: FastifyRequest, reply: FastifyReply): Promise<StoredDecision | undefined> => {
    const id = (request.params as { id?: unknown }).id;
    if (typeof id !== "string" || !ID.test(id)) {
      await refuse(reply, 404, "unknown_decision", "no such approval");
      return undefined;
    }
    const d = await store.getDecision(id);
    if (d === undefined || d.action !== "require_approval" || !mayAnswer(reviewerOf(request), d)) {
      await refuse(reply, 404, "unknown_decision", "no such approval");
      return undefined;
    }
    return d;
  };

  app.get("/api/approvals/:id", async (request, reply) => {
    const d = await visible(request, reply);
    if (d === undefined) return reply;
    const item = approvalItem(d, await now());
    if (current === undefined || item.status !== "pending") return item;
    const view = (await current.readMany([d])).get(d.id);
    return view === undefined ? item : { ...item, current: view };
  });

  for (const kind of ["approve", "reject"] as const) {
    app.post(`/api/approvals/:id/${kind}`, async (request, reply) => {
      const body = request.body;
      let note: string | undefined;
      if (body !== undefined && body !== null) {
        if (typeof body !== "object" || Array.isArray(body))
          return refuse(reply, 400, "malformed_request", "the body must be a JSON object");
        const given = (body as Record<string, unknown>)["note"];
        if (given !== undefined) {
          if (!isNote(given)) return refuse(reply, 400, "malformed_request", noteRule);
          note = given;
        }
        // Anything else in the body (a reviewerId, say) is ignored: the reviewer is the credential's.
      }
      const reviewer = reviewerOf(request);
      const id = (request.params as { id?: unknown }).id;
      const d = typeof id === "string" && ID.test(id) ? await store.getDecision(id) : undefined;
      if (d === undefined || d.action !== "require_approval" || d.approval === undefined) {
        return refuse(reply, 404, "unknown_decision", "no such approval");
      }
      if (d.actorId === reviewer.id)
        return refuse(reply, 403, "self_approval", `${reviewer.id} made the call and cannot answer its own approval`);
      if (!mayAnswer(reviewer, d)) return refuse(reply, 403, "not_an_approver", `${reviewer.id} is not among this decision's approvers`);
      const as = reviewer.approverIds.find((id) => d.approvers.includes(id))!;
      try {
        const answer = { decisionId: d.id, reviewerId: as, ...(note === undefined ? {} : { note }) };
        await (kind === "approve" ? veto.approve(answer) : veto.reject(answer));
      } catch (error) {
        if (error instanceof ApprovalError) {
          const status = STATUS_OF_ERROR[error.code] ?? 400;
          const current = await store.getDecision(d.id).catch(() => undefined);
          const extra = status === 409 && current !== undefined ? { approval: approvalItem(current, await now()) } : {};
          if (status >= 500) log?.error({ err: error, decision_id: d.id }, "answer could not be stored");
          return refuse(reply, status, error.code, publicMessage(error, status), extra);
        }
        // What the answer holds cannot be recorded (a note that is not well-formed text): nothing changed.
        if (error instanceof VetoOptionsError) return refuse(reply, 400, "malformed_request", error.message);
        throw error;
      }
      const settled = await store.getDecision(d.id);
      return approvalItem(settled!, await now());
    });
  }

  // Amend before approve (docs/contract.md §6, amend): the verified reviewer amends the call's
  // arguments; the amended call is a new decision; the answer holds the original, now amended,
  // and that decision (approved by the reviewer when they may approve it). The inbox's form
  // amends through the same function.
  const amendAs = async (
    reviewer: Reviewer,
    id: unknown,
    body: unknown,
  ): Promise<{ ok: true; answer: AmendAnswer } | { ok: false; refusal: AmendRefusal }> => {
    const no = (status: number, code: string, message: string) => ({ ok: false as const, refusal: { status, code, message } });
    if (body === undefined || body === null || typeof body !== "object" || Array.isArray(body)) {
      return no(400, "malformed_request", 'the body must be a JSON object: { "arguments": {...}, "note"? }');
    }
    const given = body as Record<string, unknown>;
    const args = given["arguments"];
    if (args === null || typeof args !== "object" || Array.isArray(args)) {
      return no(400, "malformed_request", "arguments must be the amended call's arguments object");
    }
    const note = given["note"];
    if (note !== undefined && !isNote(note)) return no(400, "malformed_request", noteRule);
    const d = typeof id === "string" && ID.test(id) ? await store.getDecision(id) : undefined;
    if (d === undefined || d.action !== "require_approval" || d.approval === undefined) {
      return no(404, "unknown_decision", "no such approval");
    }
    if (d.actorId === reviewer.id) return no(403, "self_approval", `${reviewer.id} made the call and cannot amend it`);
    if (!mayAnswer(reviewer, d)) return no(403, "not_an_approver", `${reviewer.id} is not among this decision's approvers`);
    // The item's arguments are masked as the record keeps them: a masked value sent back would
    // be written as the field's new value.
    const masked = maskedValueIn(args, d.review?.arguments);
    if (masked !== undefined) {
      return no(
        400,
        "masked_value",
        `arguments${masked} still holds the masked value of a sensitive field: send the value itself, or leave the field out`,
      );
    }
    const as = reviewer.approverIds.find((approver) => d.approvers.includes(approver))!;
    let result: AmendResult;
    try {
      result = await veto.amend({ decisionId: d.id, reviewerId: as, arguments: args, ...(note === undefined ? {} : { note }) });
    } catch (error) {
      if (error instanceof ApprovalError) {
        const status = STATUS_OF_ERROR[error.code] ?? 400;
        if (status >= 500) log?.error({ err: error, decision_id: d.id }, "amendment could not be stored");
        return no(status, error.code, publicMessage(error, status));
      }
      // The amended call breaks the input contract (the note was checked above): nothing changed.
      if (error instanceof VetoOptionsError) return no(400, "invalid_input", error.message);
      throw error;
    }
    const original = await store.getDecision(d.id);
    return {
      ok: true,
      answer: {
        amended: approvalItem(original!, await now()),
        decision: result.decision,
        ...(result.approval === undefined ? {} : { approval: result.approval }),
      },
    };
  };

  app.post("/api/approvals/:id/amend", async (request, reply) => {
    const done = await amendAs(reviewerOf(request), (request.params as { id?: unknown }).id, request.body);
    if (!done.ok) return refuse(reply, done.refusal.status, done.refusal.code, done.refusal.message);
    return done.answer;
  });
  const signIn =
    "devLogin" in options.auth ? { kind: "devLogin" as const, approverIds: options.auth.devLogin.approverIds } : { kind: "token" as const };
  const rules = {
    itemOf: approvalItem,
    mayAnswer,
    statusOf: (code: string) => STATUS_OF_ERROR[code] ?? 400,
    publicMessage,
    amend: amendAs,
  };
  const inboxContext = { veto, store, authenticate, signIn, maxNoteLength: maxNote, now, log, rules, current };
  app.decorate("signInLinks", options.inbox === false ? undefined : await registerInbox(app, inboxContext, options.inbox));
  return app;
}
