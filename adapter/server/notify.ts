/**
 * Telling reviewers that an approval waits (docs/approvals.md,
 * "Notifications"): a webhook notifier (JSON with the item and a link to it,
 * or Slack-compatible text), signed with HMAC-SHA-256 over timestamp and body,
 * retried with exponential backoff and jitter a bounded number of times. A
 * notification is advice, never authority: whatever happens to it, no
 * decision or approval changes; a failure is logged.
 */
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import type { ApprovalRequiredEvent } from "../veto.js";
import { VetoOptionsError, toError } from "../common/errors.js";
import type { ApprovalItem } from "./server.js";

/** item -> the URL a reviewer follows. Replaceable (a web inbox may hand out a one-time sign-in link per approver). */
export type ApprovalLink = (item: ApprovalItem) => string;

/**
 * decision id -> `{ approverId: one-time sign-in link }` for each listed
 * person (the approval service's `app.signInLinks`, or createSignInLinks).
 */
export interface ApproverLinks {
  linksFor(decisionId: string): Promise<Record<string, string>>;
}

/**
 * The default link: `<publicUrl>/api/approvals/<decisionId>` (the item in
 * the JSON API; behind a reverse proxy that signs the reviewer in, a browser
 * can open it). `publicUrl` is where reviewers reach the service, with any
 * path prefix the proxy adds.
 */
export function approvalLink(publicUrl: string, path: (decisionId: string) => string = (id) => `/api/approvals/${id}`): ApprovalLink {
  let base: URL;
  try {
    base = new URL(publicUrl);
  } catch {
    throw new VetoOptionsError(`approvalLink: publicUrl is not a URL: ${publicUrl}`);
  }
  if (base.protocol !== "https:" && base.protocol !== "http:") {
    throw new VetoOptionsError(`approvalLink: publicUrl must be http(s), not ${base.protocol}`);
  }
  if (base.search !== "" || base.hash !== "" || base.username !== "" || base.password !== "") {
    throw new VetoOptionsError("approvalLink: publicUrl must carry no query, fragment or credentials");
  }
  const prefix = base.href.replace(/\/+$/, "");
  return (item) => `${prefix}${path(encodeURIComponent(item.decisionId))}`;
}

/** The signature header: `t=<unix seconds>,v1=<hex HMAC-SHA-256 of "<t>.<body>">`. */
export const SIGNATURE_HEADER = "x-veto-signature";

/** The header value signing `body` at `timestampS` with `secret`. */
export function signWebhook(secret: string | Uint8Array, body: string, timestampS: number): string {
  const mac = createHmac("sha256", secret).update(`${timestampS}.${body}`, "utf8").digest("hex");
  return `t=${timestampS},v1=${mac}`;
}

export interface VerifyWebhookOptions {
  readonly secret: string | Uint8Array;
  /** The X-Veto-Signature header as received. */
  readonly header: string | undefined;
  /** The raw body as received (before any JSON parsing). */
  readonly body: string | Uint8Array;
  /** Largest age (and clock difference) accepted, seconds. Default 300. */
  readonly toleranceS?: number;
  /** Now, in unix seconds. Default: the system clock. */
  readonly nowS?: number;
}

/** For receivers: whether the signature is valid and fresh (constant-time comparison). */
export function verifyWebhookSignature(o: VerifyWebhookOptions): boolean {
  if (typeof o.header !== "string") return false;
  const parts = new Map<string, string[]>();
  for (const piece of o.header.split(",")) {
    const at = piece.indexOf("=");
    if (at <= 0) return false;
    const key = piece.slice(0, at).trim();
    parts.set(key, [...(parts.get(key) ?? []), piece.slice(at + 1).trim()]);
  }
  const t = parts.get("t");
  if (t === undefined || t.length !== 1 || !/^\d{1,12}$/.test(t[0]!)) return false;
  const timestampS = Number(t[0]);
  const nowS = o.nowS ?? Math.floor(Date.now() / 1000);
  if (Math.abs(nowS - timestampS) > (o.toleranceS ?? 300)) return false;
  const body = typeof o.body === "string" ? Buffer.from(o.body, "utf8") : Buffer.from(o.body);
  const expected = createHmac("sha256", o.secret).update(`${timestampS}.`, "utf8").update(body).digest();
  return (parts.get("v1") ?? []).some((v) => {
    if (!/^[0-9a-f]{64}$/.test(v)) return false;
    return timingSafeEqual(Buffer.from(v, "hex"), expected);
  });
}

interface NotifyLogger {
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
  info?(fields: object, message: string): void;
}

export interface WebhookNotifierOptions {
  /** Where to POST. http(s) only. */
  readonly url: string;
  /**
   * The HMAC-SHA-256 key (at least 16 bytes; a string counts as its UTF-8
   * bytes): each request carries X-Veto-Signature. Default: none (unsigned;
   * only for receivers that check nothing, such as a Slack incoming webhook).
   */
  readonly secret?: string | Uint8Array;
  /** "json": `{ type, approval, link, signInLinks? }`; "slack": `{ text }` in Slack's mrkdwn. Default "json". */
  readonly format?: "json" | "slack";
  /** The link each notification carries. Required: build one with approvalLink(publicUrl). */
  readonly link: ApprovalLink;
  /**
   * One-time sign-in links to the web inbox (docs/inbox.md), one per listed
   * approver, carried as `signInLinks: { approverId: url }` for a receiver
   * that passes each to its person. JSON format only: a Slack channel is
   * shared, and anyone in it could use them. Default: none.
   */
  readonly signInLinks?: ApproverLinks;
  /** Attempts per notification, first included (1-10). Default 5. */
  readonly attempts?: number;
  /** First retry delay, ms; doubled each retry, with jitter (between half and all of it). Default 500. */
  readonly backoffMs?: number;
  /** Longest delay between attempts, ms (also the most of a Retry-After honoured). Default 30,000. */
  readonly maxBackoffMs?: number;
  /** Each attempt's timeout, ms. Default 10,000. */
  readonly timeoutMs?: number;
  /** Failed attempts (warn), given-up notifications (error), deliveries (info). Default: none. */
  readonly logger?: NotifyLogger;
  /** For jitter; tests only. Default Math.random. */
  readonly random?: () => number;
}

export interface Delivery {
  readonly decisionId: string;
  readonly delivered: boolean;
  readonly attempts: number;
  /** The receiver's last HTTP status, when it answered. */
  readonly status?: number;
  /** Why it was not delivered. */
  readonly error?: string;
}

export interface WebhookNotifier {
  /** Deliver one item. Never rejects: the outcome says what happened (and a failure is logged). */
  readonly notify: (item: ApprovalItem) => Promise<Delivery>;
  /** For createVeto({ onApprovalRequired }): the event as an item, delivered. */
  readonly onApprovalRequired: (event: ApprovalRequiredEvent) => Promise<void>;
  /** Stop: deliveries under way end (not delivered), no retry starts. */
  readonly close: () => void;
  /** Most time one notify() can take, ms (attempts, timeouts and delays): what a claim on it must outlast. */
  readonly maxDurationMs: number;
}

/** A pending item from a decision just made (what createVeto's onApprovalRequired is given). */
export function itemOfEvent(event: ApprovalRequiredEvent): ApprovalItem {
  const d = event.decision;
  return {
    decisionId: d.id,
    status: "pending",
    tool: event.tool,
    actorId: event.actorId,
    tenantId: event.tenantId,
    environment: event.environment,
    arguments: event.arguments,
    reasons: d.reasons.map((r) => ({ code: r.code, message: r.message })),
    approvers: [...d.approvers],
    bundle: { revision: d.bundle.revision, hash: d.bundle.hash },
    recentDenies: event.recentDenies,
    createdAt: d.timestamp,
    expiresAt: event.expiresAt,
  };
}

/** Slack's mrkdwn treats &, < and > as markup: escaped, so no value can mention @channel or forge a link. */
function slackEscape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

const SLACK_ARGUMENTS_MAX = 1_500;

/** The Slack-compatible text: what, by whom, why, until when, and the link. */
export function slackText(item: ApprovalItem, link: string): string {
  const args = JSON.stringify(item.arguments) ?? "null";
  const lines = [
    `*Approval needed:* \`${slackEscape(item.tool ?? "?")}\` by ${slackEscape(item.actorId ?? "?")} (tenant ${slackEscape(item.tenantId ?? "?")}, ${slackEscape(item.environment ?? "?")})`,
    ...item.reasons.map((r) => `• ${slackEscape(r.code)}: ${slackEscape(r.message)}`),
    args.length <= SLACK_ARGUMENTS_MAX
      ? `\`\`\`${slackEscape(args).replace(/`/g, "'")}\`\`\``
      : `Arguments: ${args.length} characters; see the approval.`,
    `Approvers: ${slackEscape(item.approvers.join(", "))}. Expires ${item.expiresAt}.`,
    `<${link.replace(/[<>|]/g, encodeURIComponent)}|Review ${slackEscape(item.decisionId)}>`,
  ];
  return lines.join("\n");
}

function intOption(value: number | undefined, fallback: number, min: number, max: number, name: string): number {
  const v = value ?? fallback;
  if (!(Number.isSafeInteger(v) && v >= min && v <= max)) {
    throw new VetoOptionsError(`webhookNotifier: ${name} must be an integer from ${min} to ${max}`);
  }
  return v;
}

/** Seconds or an HTTP date, as Retry-After says; undefined when it says neither. */
function retryAfterMs(header: string | null, nowMs: number): number | undefined {
  if (header === null) return undefined;
  if (/^\d{1,6}$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

export function webhookNotifier(options: WebhookNotifierOptions): WebhookNotifier {
  if (options === null || typeof options !== "object") throw new VetoOptionsError("webhookNotifier: pass { url, link, secret?, format? }");
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw new VetoOptionsError(`webhookNotifier: url is not a URL: ${String(options.url)}`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new VetoOptionsError("webhookNotifier: url must be http(s)");
  const format = options.format ?? "json";
  if (format !== "json" && format !== "slack") throw new VetoOptionsError('webhookNotifier: format must be "json" or "slack"');
  if (typeof options.link !== "function") throw new VetoOptionsError("webhookNotifier: link must be a function (see approvalLink)");
  const signInLinks = options.signInLinks;
  if (signInLinks !== undefined) {
    if (signInLinks === null || typeof signInLinks.linksFor !== "function") {
      throw new VetoOptionsError("webhookNotifier: signInLinks must have linksFor(decisionId) (app.signInLinks, createSignInLinks)");
    }
    if (format !== "json") {
      throw new VetoOptionsError(
        'webhookNotifier: signInLinks need format "json": a Slack channel is shared, and anyone in it could use them',
      );
    }
  }
  const secret = options.secret;
  if (secret !== undefined) {
    const bytes = typeof secret === "string" ? Buffer.byteLength(secret, "utf8") : secret instanceof Uint8Array ? secret.length : 0;
    if (bytes < 16) throw new VetoOptionsError("webhookNotifier: secret must be a string or Uint8Array of at least 16 bytes");
  }
  const attempts = intOption(options.attempts, 5, 1, 10, "attempts");
  const backoffMs = intOption(options.backoffMs, 500, 0, 60_000, "backoffMs");
  const maxBackoffMs = intOption(options.maxBackoffMs, 30_000, 0, 600_000, "maxBackoffMs");
  const timeoutMs = intOption(options.timeoutMs, 10_000, 1, 120_000, "timeoutMs");
  const random = options.random ?? Math.random;
  const log = options.logger;
  const stopped = new AbortController();

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      if (stopped.signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        stopped.signal.removeEventListener("abort", done);
        resolve();
      }
      stopped.signal.addEventListener("abort", done, { once: true });
    });

  // Built once per notification: every attempt carries the same links (each usable once).
  const bodyOf = async (item: ApprovalItem): Promise<string> => {
    const link = options.link(item);
    if (format === "slack") return JSON.stringify({ text: slackText(item, link) });
    const links = signInLinks === undefined ? {} : { signInLinks: await signInLinks.linksFor(item.decisionId) };
    return JSON.stringify({ type: "approval.required", approval: item, link, ...links });
  };

  async function notify(item: ApprovalItem): Promise<Delivery> {
    const decisionId = item.decisionId;
    let body: string;
    try {
      body = await bodyOf(item);
    } catch (error) {
      // The link builder failed (or the approval can no longer be signed in to): nothing to send.
      const message = toError(error).message;
      log?.error({ decision_id: decisionId, err: toError(error) }, "webhook notification could not be built; not sent");
      return { decisionId, delivered: false, attempts: 0, error: message };
    }
    const delivery = randomUUID();
    let status: number | undefined;
    let error: string | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (stopped.signal.aborted) return { decisionId, delivered: false, attempts: attempt - 1, error: "notifier closed" };
      let waitMs = Math.min(maxBackoffMs, backoffMs * 2 ** (attempt - 1));
      waitMs = waitMs / 2 + (random() * waitMs) / 2;
      let permanent = false;
      try {
        const headers: Record<string, string> = {
          "content-type": "application/json",
          "user-agent": "veto-crm-webhook",
          "x-veto-event": "approval.required",
          // The same on every attempt: receivers deduplicate by decision id and delivery.
          "x-veto-decision-id": decisionId,
          "x-veto-delivery": delivery,
        };
        if (secret !== undefined) headers[SIGNATURE_HEADER] = signWebhook(secret, body, Math.floor(Date.now() / 1000));
        const response = await fetch(url, {
          method: "POST",
          headers,
          body,
          // A redirect would carry a signed body somewhere not configured.
          redirect: "manual",
          signal: AbortSignal.any([stopped.signal, AbortSignal.timeout(timeoutMs)]),
        });
        status = response.status;
        await response.body?.cancel().catch(() => {});
        if (status >= 200 && status < 300) {
          log?.info?.({ decision_id: decisionId, attempts: attempt, status }, "webhook notification delivered");
          return { decisionId, delivered: true, attempts: attempt, status };
        }
        error = `HTTP ${status}`;
        // Retried: timeouts, rate limits and server errors; anything else will not get better.
        permanent = !(status === 408 || status === 429 || status >= 500);
        const after = retryAfterMs(response.headers.get("retry-after"), Date.now());
        if (after !== undefined && (status === 429 || status === 503)) waitMs = Math.min(maxBackoffMs, after);
      } catch (caught) {
        status = undefined;
        error = toError(caught).message;
      }
      if (permanent || attempt === attempts || stopped.signal.aborted) {
        log?.error(
          { decision_id: decisionId, attempts: attempt, status: status ?? null, error },
          "webhook notification failed; giving up (the approval is unchanged)",
        );
        return { decisionId, delivered: false, attempts: attempt, ...(status === undefined ? {} : { status }), error };
      }
      log?.warn(
        { decision_id: decisionId, attempt, status: status ?? null, error, retry_in_ms: Math.round(waitMs) },
        "webhook attempt failed",
      );
      await sleep(waitMs);
    }
    // Unreachable: the last attempt returns above.
    return { decisionId, delivered: false, attempts, error: error ?? "not delivered" };
  }

  return {
    notify,
    onApprovalRequired: async (event) => {
      await notify(itemOfEvent(event));
    },
    close: () => stopped.abort(),
    maxDurationMs: attempts * timeoutMs + (attempts - 1) * maxBackoffMs,
  };
}
