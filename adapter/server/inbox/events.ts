/**
 * Server-sent events for the inbox's pages: each open page holds one stream;
 * the store's change feed (watchApprovals: LISTEN/NOTIFY on PostgreSQL, so
 * answers given by any process arrive) is read once for all of them, and
 * each stream is told only of approvals its reviewer may see. A page then
 * fetches the card again; the event carries nothing but the id and status.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { StoredDecision, VetoStore } from "../../history/store.js";
import { toError } from "../../common/errors.js";
import type { ShownItem } from "./item.js";
import type { InboxSession } from "./session.js";
import { SECURITY_HEADERS } from "./headers.js";

const MAX_STREAMS = 1_000;
/**
 * Most streams one reviewer holds open (a page per tab): opening one more
 * ends their oldest, so no reviewer can take the streams every other
 * reviewer's pages need.
 */
export const MAX_STREAMS_PER_REVIEWER = 16;
const HEARTBEAT_MS = 20_000;

interface Stream {
  readonly session: InboxSession;
  readonly reply: FastifyReply;
}

export interface EventHubOptions {
  readonly store: VetoStore;
  readonly now: () => Promise<number>;
  readonly visibleTo: (session: InboxSession, d: StoredDecision | undefined) => d is StoredDecision;
  readonly log: { error(fields: object, message: string): void } | undefined;
  readonly itemOf: (d: StoredDecision, nowMs: number) => ShownItem;
}

export class EventHub {
  readonly #o: EventHubOptions;
  readonly #streams = new Set<Stream>();
  #unwatch: (() => void) | undefined;
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(options: EventHubOptions) {
    this.#o = options;
  }

  /** Take over the response as an event stream; false when too many are open. */
  open(request: FastifyRequest, reply: FastifyReply, session: InboxSession): boolean {
    const theirs = [...this.#streams].filter((s) => s.session.reviewerId === session.reviewerId);
    if (theirs.length >= MAX_STREAMS_PER_REVIEWER) {
      // Told why before it ends, so that its page does not reconnect (and end the next oldest) until shown again.
      const oldest = theirs[0] as Stream;
      oldest.reply.raw.end("event: evicted\ndata: {}\n\n");
      this.#streams.delete(oldest);
    }
    if (this.#streams.size >= MAX_STREAMS) return false;
    reply.hijack();
    reply.raw.writeHead(200, {
      ...SECURITY_HEADERS,
      "content-type": "text/event-stream; charset=utf-8",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    reply.raw.write("retry: 2000\n\n");
    const stream = { session, reply };
    this.#streams.add(stream);
    request.raw.once("close", () => {
      this.#streams.delete(stream);
      if (this.#streams.size === 0) this.#stop();
    });
    this.#start();
    return true;
  }

  #start(): void {
    if (this.#unwatch !== undefined) return;
    if (typeof this.#o.store.watchApprovals === "function") {
      this.#unwatch = this.#o.store.watchApprovals((id) => void this.#changed(id));
    } else {
      this.#unwatch = () => {};
    }
    this.#heartbeat = setInterval(() => this.#send(() => true, ": keep-alive\n\n"), HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  #stop(): void {
    this.#unwatch?.();
    this.#unwatch = undefined;
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }

  async #changed(id: string | undefined): Promise<void> {
    try {
      if (id === undefined) {
        // Notifications may have been lost (a reconnect): every page re-reads its cards.
        this.#send(() => true, "event: refresh\ndata: {}\n\n");
        return;
      }
      const d = await this.#o.store.getDecision(id);
      if (d?.approval === undefined) return;
      const item = this.#o.itemOf(d, await this.#o.now());
      const text = `event: approval\ndata: ${JSON.stringify({ decisionId: item.decisionId, status: item.status })}\n\n`;
      this.#send((s) => this.#o.visibleTo(s.session, d), text);
    } catch (error) {
      this.#o.log?.error({ err: toError(error), decision_id: id }, "inbox: an approval change could not be read");
    }
  }

  #send(to: (s: Stream) => boolean, text: string): void {
    const nowMs = Date.now();
    for (const s of [...this.#streams]) {
      if (s.session.expiresAtMs <= nowMs) {
        // The session is over: so is its stream (the page's next request signs in again).
        s.reply.raw.end();
        this.#streams.delete(s);
        continue;
      }
      if (to(s)) s.reply.raw.write(text);
    }
  }

  /** End every stream (the server is closing). */
  close(): void {
    for (const s of this.#streams) s.reply.raw.end();
    this.#streams.clear();
    this.#stop();
  }
}
