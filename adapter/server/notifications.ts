/**
 * The approval service's notifications (docs/approvals.md, "Notifications"):
 * every approval opened on the store, by any application instance, is
 * announced once, through the store's change feed (watchApprovals) and a
 * periodic sweep that covers notifications missed while not listening. A
 * ledger decides who announces: with the PostgreSQL ledger, one `veto serve`
 * among several; in memory, this process only.
 */
import type { VetoStore } from "../history/store.js";
import { VetoOptionsError, toError } from "../common/errors.js";
import { approvalItem, type ApprovalItem } from "./server.js";

/** Who notifies for an approval: a claim one claimant wins, then its outcome. */
export interface NotificationLedger {
  /** True for exactly one claimant, until the claim is settled or lapses (a claimant that died). */
  claim(decisionId: string): Promise<boolean>;
  /** Delivered or given up: never claimed again. */
  settle(decisionId: string, delivered: boolean): Promise<void>;
}

/** A ledger for one process: each approval is claimed once here. */
export function memoryLedger(max = 100_000): NotificationLedger {
  const claimed = new Set<string>();
  return {
    claim: async (id) => {
      if (claimed.has(id)) return false;
      claimed.add(id);
      if (claimed.size > max) claimed.delete(claimed.values().next().value!);
      return true;
    },
    settle: async () => {},
  };
}

interface NotificationsLogger {
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface ApprovalNotificationsOptions {
  /** The store the approvals are opened on. Needs watchApprovals and listApprovals. */
  readonly store: VetoStore;
  /** Delivers one item (e.g. webhookNotifier(...).notify). Resolves `{ delivered }`; a rejection counts as not delivered. */
  readonly notify: (item: ApprovalItem) => Promise<{ readonly delivered: boolean }>;
  /** Default: memoryLedger() (several services on one database each notify: give them the PostgreSQL ledger). */
  readonly ledger?: NotificationLedger;
  /** How often pending approvals are swept for any not yet notified, ms. Default 30,000. */
  readonly sweepMs?: number;
  /** Notifications under way at once. Default 4. */
  readonly concurrency?: number;
  readonly logger?: NotificationsLogger;
}

export interface ApprovalNotifications {
  /** Resolves after the first sweep (approvals already pending at start are queued). */
  readonly ready: Promise<void>;
  /**
   * Stop watching and sweeping; resolves when notifications under way have ended (close
   * the notifier too, or they run to their end). One cut short is not settled: its claim lapses.
   */
  close(): Promise<void>;
}

const SWEEP_LIMIT = 1_000;
const SEEN_MAX = 100_000;

export function notifyApprovals(options: ApprovalNotificationsOptions): ApprovalNotifications {
  const { store, notify } = options;
  if (store === undefined || typeof store.watchApprovals !== "function" || typeof store.listApprovals !== "function") {
    throw new VetoOptionsError("notifyApprovals: store must implement watchApprovals and listApprovals");
  }
  if (typeof notify !== "function") throw new VetoOptionsError("notifyApprovals: notify must be a function");
  const ledger = options.ledger ?? memoryLedger();
  const sweepMs = options.sweepMs ?? 30_000;
  const concurrency = options.concurrency ?? 4;
  if (!(Number.isSafeInteger(sweepMs) && sweepMs > 0)) throw new VetoOptionsError("notifyApprovals: sweepMs must be a positive integer");
  if (!(Number.isSafeInteger(concurrency) && concurrency > 0)) {
    throw new VetoOptionsError("notifyApprovals: concurrency must be a positive integer");
  }
  const log = options.logger;
  const now = async (): Promise<number> => (store.now === undefined ? Date.now() : await store.now());

  /** Approvals this process is done with (notified, or no longer pending): not read again. */
  const seen = new Set<string>();
  /** Approvals another claimant holds: tried again by the sweeps only (the claim may lapse, or be settled). */
  const held = new Set<string>();
  const queued = new Set<string>();
  const queue: string[] = [];
  const running = new Set<Promise<void>>();
  let closed = false;

  const done = (id: string): void => {
    held.delete(id);
    seen.add(id);
    if (seen.size > SEEN_MAX) seen.delete(seen.values().next().value!);
  };

  async function handle(id: string): Promise<void> {
    const d = await store.getDecision(id);
    const approval = d?.approval;
    if (d === undefined || approval === undefined) return done(id);
    // Only a pending approval that can still be answered is announced.
    if (approval.status !== "pending" || (await now()) >= approval.expiresAtMs) return done(id);
    if (!(await ledger.claim(id))) {
      held.add(id);
      if (held.size > SEEN_MAX) held.delete(held.values().next().value!);
      return;
    }
    held.delete(id);
    let delivered = false;
    try {
      delivered = (await notify(approvalItem(d, await now()))).delivered;
    } catch (error) {
      log?.error({ err: toError(error), decision_id: id }, "approval notification failed (the approval is unchanged)");
    }
    // Cut short by close(): the claim is left to lapse, so another service (or this one,
    // restarted) sends it; a notification given up for any other reason is settled.
    if (closed && !delivered) return;
    done(id);
    await ledger.settle(id, delivered);
  }

  function pump(): void {
    while (!closed && running.size < concurrency && queue.length > 0) {
      const id = queue.shift()!;
      const run = handle(id)
        .catch((error: unknown) =>
          // The store or ledger could not be read: left for the next sweep.
          log?.warn({ err: toError(error), decision_id: id }, "approval notification postponed: the store could not be read"),
        )
        .finally(() => {
          running.delete(run);
          queued.delete(id);
          pump();
        });
      running.add(run);
    }
  }

  function enqueue(id: string, sweeping = false): void {
    if (closed || seen.has(id) || queued.has(id) || (held.has(id) && !sweeping)) return;
    queued.add(id);
    queue.push(id);
    pump();
  }

  async function sweep(): Promise<void> {
    if (closed) return;
    try {
      const pending = await store.listApprovals!({ status: ["pending"], nowMs: await now(), limit: SWEEP_LIMIT });
      for (const d of pending.reverse()) enqueue(d.id, true);
    } catch (error) {
      log?.warn({ err: toError(error) }, "approval notifications: pending approvals could not be listed; trying again later");
    }
  }

  const unwatch = store.watchApprovals((id) => {
    if (id === undefined) void sweep();
    else enqueue(id);
  });
  const timer = setInterval(() => void sweep(), sweepMs);
  timer.unref();
  const ready = sweep();

  return {
    ready,
    async close() {
      closed = true;
      clearInterval(timer);
      unwatch();
      queue.length = 0;
      await Promise.allSettled([...running]);
    },
  };
}
