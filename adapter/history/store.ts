/**
 * State shared between decisions: deny history per (actorId, tenantId) and
 * pending approvals. Asynchronous throughout so a database-backed store
 * (several processes, one truth) can implement the same interface; the
 * in-memory store here is the default and is bounded in memory.
 */
import type { Action, BundleVersion, Decision, Reason } from "../common/decision.js";
import type { RecordSink } from "../records/records.js";

/**
 * "executed": approved, then claimed once by the caller about to run the call
 * (use-once, docs/contract.md §6); no later claim succeeds. "amended": an
 * approver amended the call instead of answering it; the amended call is a new
 * decision (`amendedTo`), and the original can never run.
 */
export type ApprovalStatus = "pending" | "answering" | "approved" | "rejected" | "expired" | "executed" | "amended";

/**
 * What a reviewer sees of a require_approval decision, kept with it so any
 * process on the store (an approval service) can show it, whatever record
 * sink the deciding application used.
 */
export interface ApprovalReview {
  readonly tool: string;
  readonly environment: string;
  /** The call's arguments as its record holds them: sensitive values masked. */
  readonly arguments: unknown;
  readonly reasons: readonly Reason[];
  readonly bundle: BundleVersion;
  readonly recentDenies: number | null;
  /** The call's context, as decided: what an amendment of it is decided with (docs/contract.md §6, amend). */
  readonly context?: unknown;
}

/** What an amended call's decision keeps of its amendment (docs/contract.md §6, amend). */
export interface Amendment {
  /** The decision amended. */
  readonly from: string;
  /** The approver who amended it. */
  readonly by: string;
  /** The amended call as decided (unmasked: the waiting agent runs it), when it was a valid call. */
  readonly call?: { readonly tool: string; readonly arguments: unknown; readonly context: unknown };
  /** The decision made for it, as the caller of amend() got it. */
  readonly decision: Decision;
}

export interface ListApprovalsOptions {
  /** Only approvals listing at least one of these approver ids. Default: every approval. */
  readonly approverIds?: readonly string[];
  /** Only approvals in one of these statuses. Default: every status. */
  readonly status?: readonly ApprovalStatus[];
  /** At most this many, newest first (by atMs, then id, both descending). Default 100, at most 1,000. */
  readonly limit?: number;
  /**
   * The time now, epoch ms: a pending approval whose expiresAtMs has come
   * counts as "expired" for `status` (what a reviewer sees). Default: statuses
   * as stored.
   */
  readonly nowMs?: number;
  /** Keyset paging: only approvals after this one in the list's order (older, or as old with a smaller id). */
  readonly after?: { readonly atMs: number; readonly id: string };
  /** Leave out the approvals of this actor (a reviewer never answers their own call). */
  readonly notActorId?: string;
}

/** An approval's status as of `nowMs`: pending whose time is up reads as expired. */
export function statusAt(approval: ApprovalState, nowMs: number | undefined): ApprovalStatus {
  return approval.status === "pending" && nowMs !== undefined && nowMs >= approval.expiresAtMs ? "expired" : approval.status;
}

export const MAX_LIST_APPROVALS = 1_000;

/** The limit a listApprovals call gets: the default, or the caller's bounded to MAX_LIST_APPROVALS. */
export function listLimit(limit: number | undefined): number {
  if (limit === undefined) return 100;
  return Number.isSafeInteger(limit) && limit > 0 ? Math.min(limit, MAX_LIST_APPROVALS) : 100;
}

/** What the store keeps of a decision. */
export interface StoredDecision {
  readonly id: string;
  readonly action: Action;
  readonly escalated: boolean;
  /**
   * Whether its deny, or the rejection of its approval, counts towards its
   * actor's and tenant's recentDenies. False for the adapter's own
   * fail-closed denies (evaluation_error, record_unavailable): an outage of
   * the log or the database is not the actor's doing (docs/contract.md §3);
   * and for every amended call, whatever its action: the reviewer made it
   * (docs/contract.md §6, amend). Default true.
   */
  readonly countsTowardsEscalation?: boolean;
  /** Present when the decision could be attributed (the call named them). */
  readonly actorId?: string;
  readonly tenantId?: string;
  readonly atMs: number;
  /** Digest of tool, arguments and context: what an approval authorizes. */
  readonly callDigest?: string;
  readonly approvers: readonly string[];
  /** For require_approval decisions. */
  readonly approval?: ApprovalState;
  /** For require_approval decisions: what the reviewer sees. Absent for rows stored before it was kept. */
  readonly review?: ApprovalReview;
  /**
   * For require_approval decisions: the target record's state as the
   * application's `recordState` gave it (docs/contract.md §6, record state);
   * the approved call runs only while the record is still in it. Absent
   * when no state was bound. Never changes.
   */
  readonly recordState?: string;
  /** For the decision of an amended call: the amendment it came from. */
  readonly amendment?: Amendment;
  /**
   * For an amended call the policy allowed (no approval to claim): when it
   * was claimed for execution, once (VetoStore.claimExecution).
   */
  readonly executedAtMs?: number;
}

export interface ApprovalState {
  readonly status: ApprovalStatus;
  readonly expiresAtMs: number;
  readonly reviewerId?: string;
  readonly note?: string;
  readonly answeredAtMs?: number;
  /** When the approval was claimed for execution (status "executed"). */
  readonly executedAtMs?: number;
  /** For status "amended": the decision id of the amended call. */
  readonly amendedTo?: string;
}

export interface ApprovalTransition {
  readonly from: ApprovalStatus;
  readonly to: ApprovalStatus;
  readonly reviewerId?: string;
  readonly note?: string;
  readonly atMs: number;
  /** For a move to "amended": the decision id of the amended call. */
  readonly amendedTo?: string;
}

export interface VetoStore {
  /**
   * Remember a decision, replacing any earlier one with the same id (a
   * decision superseded by a record_unavailable deny is stored again). A deny
   * counts towards its actor's and tenant's history unless
   * `countsTowardsEscalation` is false; a require_approval decision opens a
   * pending approval.
   */
  appendDecision(decision: StoredDecision): Promise<void>;
  /** Denies and rejected approvals for (actorId, tenantId) at or after sinceMs, of the decisions that count (countsForActor). */
  countRecentDenies(actorId: string, tenantId: string, sinceMs: number): Promise<number>;
  getDecision(id: string): Promise<StoredDecision | undefined>;
  /**
   * Move an approval from `from` to `to` if and only if it is in `from`
   * (compare-and-set: the first answer wins), and, from "pending", to
   * "expired" only once `atMs` has reached the approval's expiresAtMs, to
   * anything else only while it is before. A move to "rejected" counts as a
   * deny in the decision's history at `atMs`, unless nothing of the decision
   * counts (countsForActor: an amended call, an adapter deny). A move from "approved" to
   * "executed" (the use-once claim) keeps the answer (reviewer, note, time)
   * and sets executedAtMs to `atMs`. Returns whether it moved.
   */
  transitionApproval(id: string, transition: ApprovalTransition): Promise<boolean>;
  /**
   * Optional: the use-once claim of an amended call the policy allowed
   * (docs/contract.md §6, amend), which has no approval to move to
   * "executed": sets its executedAtMs to `atMs` if and only if the decision
   * is an allowed amended call not yet claimed. Returns whether it did.
   * Without it, such a call is refused where it would run (fail closed).
   */
  claimExecution?(id: string, atMs: number): Promise<boolean>;
  /** Call `listener` whenever the decision's approval changes; returns the unsubscribe. */
  watchDecision(id: string, listener: () => void): () => void;
  /**
   * Approvals (decisions with an approval), newest first. Optional for stores
   * of your own; the approval service needs it.
   */
  listApprovals?(options?: ListApprovalsOptions): Promise<StoredDecision[]>;
  /**
   * Call `listener` whenever any approval is opened or changes, with its
   * decision id (undefined: anything may have changed, e.g. after a lost
   * notification connection came back). Returns the unsubscribe. Optional
   * for stores of your own; the approval service's notifications need it.
   */
  watchApprovals?(listener: (decisionId: string | undefined) => void): () => void;
  /**
   * Optional: remember a one-time token's id (a sign-in link's, docs/inbox.md)
   * until `expiresAtMs`: true the first time, false ever after. Durable where
   * the store is. Without it, the approval service remembers them in memory.
   */
  useToken?(id: string, expiresAtMs: number): Promise<boolean>;
  /**
   * Optional: the store's own clock, in epoch milliseconds, for a store that
   * instances with different clocks share (docs/contract.md §6: one clock).
   * When present, every time comparison that decides (expiry, the escalation
   * window, the time of an answer) uses it: its units give `nowMs`, and its
   * transitions out of "pending" follow its clock rather than `atMs`.
   * Without it, the instance's `clock` is used.
   */
  now?(): Promise<number>;
  /**
   * Optional: run `fn` as one unit of work. With `history`, no other unit for
   * the same (actorId, tenantId) runs until this one is over, in this process
   * or (for a shared database) any other, so count -> evaluate -> append sees
   * every deny before it and escalation starts exactly at the threshold. A
   * transactional store makes the unit's writes visible only at `commit()`
   * and undoes them when `fn` ends without it. A store without `unit` gets
   * no such lock: concurrent calls of one actor may then read the same count.
   * `options.decision` says the unit makes one decision (count, evaluate,
   * append; never an approval's transition or claim), with or without
   * `history`: a store may then write it with others (the PostgreSQL store
   * groups such units).
   */
  unit?<T>(history: HistoryKey | undefined, fn: (unit: StoreUnit) => Promise<T>, records?: RecordSink, options?: UnitOptions): Promise<T>;
  close(): Promise<void>;
}

/** What a unit of work is for (VetoStore.unit). */
export interface UnitOptions {
  /** The unit makes one decision: it counts, evaluates and appends, and transitions or claims nothing. */
  readonly decision?: boolean;
}

export interface HistoryKey {
  readonly actorId: string;
  readonly tenantId: string;
  /**
   * The escalation window (milliseconds) the unit's deny count will look
   * back over, when the caller knows it: a store may count as the unit
   * starts (the PostgreSQL store does, in the same round trip as its locks).
   */
  readonly windowMs?: number;
}

/**
 * A unit's prediction did not hold (see StoreUnit.commit): the unit wrote
 * nothing, and its store runs the unit's function again, once, without
 * predicting. Made only by a store, for the unit it belongs to.
 */
export class UnitRetry extends Error {
  /** The unit it was made for: only that unit's store may act on it. */
  readonly unit: unknown;

  constructor(unit: unknown, reason: string) {
    super(`the unit must run again: ${reason}`);
    this.name = "UnitRetry";
    this.unit = unit;
  }
}

/** The store as seen from inside a unit of work (see VetoStore.unit). */
export interface StoreUnit {
  countRecentDenies(actorId: string, tenantId: string, sinceMs: number): Promise<number>;
  appendDecision(decision: StoredDecision): Promise<void>;
  getDecision(id: string): Promise<StoredDecision | undefined>;
  transitionApproval(id: string, transition: ApprovalTransition): Promise<boolean>;
  /** See VetoStore.claimExecution; absent when the store has none. */
  claimExecution?(id: string, atMs: number): Promise<boolean>;
  /**
   * Make the unit's writes durable and visible together. The unit is over
   * after it, and after any failed operation (a database transaction is
   * rolled back at once, so its locks never outlive the failure).
   *
   * A unit that decided on what the store predicted (the PostgreSQL store's
   * one-round-trip groups: a remembered count and clock) may reject here, or
   * from countRecentDenies, with a UnitRetry: nothing of the unit was
   * written, and the caller lets the error leave `fn` with nothing else
   * done, so the store runs `fn` again in a unit that predicts nothing.
   */
  commit(): Promise<void>;
  /** End the unit without committing (undone where the store can undo); nothing if it is already over. */
  rollback(): Promise<void>;
  /** A transaction a record sink may join (see TransactionalRecordSink); undefined when there is none. */
  readonly transaction?: unknown;
  /**
   * The unit's time by the store's clock (see VetoStore.now), read once as the
   * unit starts (after its history lock): what the unit's decision or answer
   * is timed by. Undefined for a store without a clock of its own.
   */
  readonly nowMs?: number;
}

export interface InMemoryStoreOptions {
  /** Most decisions remembered; the oldest are forgotten first (an approval forgotten this way can no longer be given). Default 100,000. */
  readonly maxDecisions?: number;
  /**
   * History older than this is dropped; set it to at least the escalation
   * window. A function is asked at each pruning, so retention can follow the
   * bundle in force (createVeto's default store does: the larger of 24 hours
   * and the window of the bundle in force). Default 24 hours.
   */
  readonly historyRetentionMs?: number | (() => number);
}

const MAX_DENIES_PER_KEY = 10_000;

/** Listeners per decision id, for a store's watchDecision. */
export class DecisionWatchers {
  readonly #listeners = new Map<string, Set<() => void>>();

  get size(): number {
    return this.#listeners.size;
  }

  add(id: string, listener: () => void): () => void {
    let set = this.#listeners.get(id);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(id, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.#listeners.get(id) === set) this.#listeners.delete(id);
    };
  }

  /** Call the listeners of `id`, or of every decision when `id` is undefined. */
  notify(id?: string): void {
    const sets = id === undefined ? [...this.#listeners.values()] : [this.#listeners.get(id) ?? new Set<() => void>()];
    for (const set of sets) for (const listener of [...set]) listener();
  }

  clear(): void {
    this.#listeners.clear();
  }
}

/**
 * A store's operations as a unit that applies each at once: nothing to
 * commit, nothing to undo. What stores without units of their own run in.
 */
export function directUnit(store: VetoStore): StoreUnit {
  return {
    countRecentDenies: (actorId, tenantId, sinceMs) => store.countRecentDenies(actorId, tenantId, sinceMs),
    appendDecision: (decision) => store.appendDecision(decision),
    getDecision: (id) => store.getDecision(id),
    transitionApproval: (id, transition) => store.transitionApproval(id, transition),
    ...(store.claimExecution === undefined ? {} : { claimExecution: (id: string, atMs: number) => store.claimExecution!(id, atMs) }),
    commit: async () => {},
    rollback: async () => {},
  };
}

/**
 * Whether what becomes of a decision can count towards its actor's deny
 * history: not the adapter's own fail-closed denies, and nothing of an
 * amended call, which the reviewer made, not the agent (docs/contract.md §6,
 * amend; §9, what counts towards escalation): neither its deny nor its
 * rejection.
 */
export function countsForActor(decision: StoredDecision): boolean {
  return decision.countsTowardsEscalation !== false && decision.amendment === undefined;
}

/** Whether a stored decision is in its actor's deny history (a rejection counts separately, when it is answered). */
function counts(decision: StoredDecision): boolean {
  return decision.action === "deny" && countsForActor(decision);
}

/** One string per (actorId, tenantId), and never the same for two pairs: the length prefix says where actorId ends. */
function historyKey(actorId: string, tenantId: string): string {
  return `${actorId.length}:${actorId}${tenantId}`;
}

export class InMemoryStore implements VetoStore {
  readonly #maxDecisions: number;
  readonly #retentionMs: () => number;
  readonly #decisions = new Map<string, StoredDecision>();
  /** Sorted deny times per (actor, tenant). */
  readonly #denies = new Map<string, number[]>();
  readonly #watchers = new DecisionWatchers();
  readonly #approvalWatchers = new Set<(decisionId: string | undefined) => void>();
  /** One-time token ids used, with when they expire (useToken). */
  readonly #usedTokens = new Map<string, number>();
  /** Per (actor, tenant) with a unit running: the units waiting for it, in order. */
  readonly #historyLocks = new Map<string, (() => void)[]>();
  /** Operations apply at once, so one unit object serves every unit of work. */
  readonly #unit: StoreUnit = directUnit(this);
  #latestMs = 0;
  #appendsSinceSweep = 0;

  constructor(options: InMemoryStoreOptions = {}) {
    this.#maxDecisions = options.maxDecisions ?? 100_000;
    const retention = options.historyRetentionMs ?? 24 * 60 * 60 * 1000;
    this.#retentionMs = typeof retention === "function" ? retention : () => retention;
  }

  async appendDecision(decision: StoredDecision): Promise<void> {
    this.appendDecisionNow(decision);
  }

  /** appendDecision, done when it returns (the decision flow's synchronous path, adapter/veto.ts). */
  appendDecisionNow(decision: StoredDecision): void {
    // Stored again under its id (superseded): the earlier version no longer counts.
    const previous = this.#decisions.get(decision.id);
    if (previous !== undefined && counts(previous)) this.#removeDeny(previous.actorId, previous.tenantId, previous.atMs);
    this.#decisions.set(decision.id, decision);
    this.#latestMs = Math.max(this.#latestMs, decision.atMs);
    if (counts(decision)) this.#addDeny(decision.actorId, decision.tenantId, decision.atMs);
    this.#evict();
    if (decision.approval !== undefined || previous?.approval !== undefined) this.#notifyApprovals(decision.id);
  }

  async countRecentDenies(actorId: string, tenantId: string, sinceMs: number): Promise<number> {
    return this.countRecentDeniesNow(actorId, tenantId, sinceMs);
  }

  /** countRecentDenies, answered when it returns (the decision flow's synchronous path, adapter/veto.ts). */
  countRecentDeniesNow(actorId: string, tenantId: string, sinceMs: number): number {
    const times = this.#denies.get(historyKey(actorId, tenantId));
    if (times === undefined) return 0;
    // Sorted: count from the newest back to the first one before sinceMs.
    let n = 0;
    for (let i = times.length - 1; i >= 0 && (times[i] as number) >= sinceMs; i--) n++;
    return n;
  }

  async getDecision(id: string): Promise<StoredDecision | undefined> {
    return this.#decisions.get(id);
  }

  async transitionApproval(id: string, t: ApprovalTransition): Promise<boolean> {
    const decision = this.#decisions.get(id);
    if (decision?.approval === undefined || decision.approval.status !== t.from) return false;
    // A pending approval at or past its expiry can only expire, and only then.
    if (t.from === "pending" && (t.to === "expired") !== t.atMs >= decision.approval.expiresAtMs) return false;
    if (t.to === "executed") {
      // The use-once claim: only an approved call, and its answer stays as given.
      if (t.from !== "approved") return false;
      this.#decisions.set(id, { ...decision, approval: { ...decision.approval, status: "executed", executedAtMs: t.atMs } });
      this.#watchers.notify(id);
      this.#notifyApprovals(id);
      return true;
    }
    const approval: ApprovalState = {
      status: t.to,
      expiresAtMs: decision.approval.expiresAtMs,
      ...(t.reviewerId === undefined ? {} : { reviewerId: t.reviewerId }),
      ...(t.note === undefined ? {} : { note: t.note }),
      ...(t.to === "answering" || t.to === "pending" ? {} : { answeredAtMs: t.atMs }),
      ...(t.to === "amended" && t.amendedTo !== undefined ? { amendedTo: t.amendedTo } : {}),
    };
    this.#decisions.set(id, { ...decision, approval });
    if (t.to === "rejected" && countsForActor(decision)) this.#addDeny(decision.actorId, decision.tenantId, t.atMs);
    this.#watchers.notify(id);
    this.#notifyApprovals(id);
    return true;
  }

  async claimExecution(id: string, atMs: number): Promise<boolean> {
    const decision = this.#decisions.get(id);
    if (decision === undefined || decision.action !== "allow" || decision.amendment === undefined || decision.executedAtMs !== undefined) {
      return false;
    }
    this.#decisions.set(id, { ...decision, executedAtMs: atMs });
    this.#watchers.notify(id);
    return true;
  }

  watchDecision(id: string, listener: () => void): () => void {
    return this.#watchers.add(id, listener);
  }

  async listApprovals(options: ListApprovalsOptions = {}): Promise<StoredDecision[]> {
    const limit = listLimit(options.limit);
    const approvers = options.approverIds === undefined ? undefined : new Set(options.approverIds);
    const statuses = options.status === undefined ? undefined : new Set(options.status);
    const found: StoredDecision[] = [];
    // Newest first: the map holds decisions in the order they were first stored.
    const all = [...this.#decisions.values()];
    const after = options.after;
    for (let i = all.length - 1; i >= 0; i--) {
      const d = all[i]!;
      if (d.approval === undefined) continue;
      if (statuses !== undefined && !statuses.has(statusAt(d.approval, options.nowMs))) continue;
      if (approvers !== undefined && !d.approvers.some((a) => approvers.has(a))) continue;
      if (options.notActorId !== undefined && d.actorId === options.notActorId) continue;
      if (after !== undefined && !(d.atMs < after.atMs || (d.atMs === after.atMs && d.id < after.id))) continue;
      found.push(d);
    }
    // Stored order is not quite time order (a clock may step back): sorted, then cut.
    return found.sort((a, b) => b.atMs - a.atMs || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0)).slice(0, limit);
  }

  watchApprovals(listener: (decisionId: string | undefined) => void): () => void {
    const own = (id: string | undefined): void => listener(id);
    this.#approvalWatchers.add(own);
    return () => void this.#approvalWatchers.delete(own);
  }

  /** In memory, as the rest of this store; forgotten once expired; when 100,000 unexpired ones are held, refused (fail closed). */
  async useToken(id: string, expiresAtMs: number): Promise<boolean> {
    if (this.#usedTokens.has(id)) return false;
    if (this.#usedTokens.size >= 100_000) {
      const now = Date.now();
      for (const [key, until] of this.#usedTokens) if (until < now) this.#usedTokens.delete(key);
      if (this.#usedTokens.size >= 100_000) return false;
    }
    this.#usedTokens.set(id, expiresAtMs);
    return true;
  }

  #notifyApprovals(id: string): void {
    for (const listener of [...this.#approvalWatchers]) {
      try {
        listener(id);
      } catch {
        // A watcher's failure is its own; the store's state has already changed.
      }
    }
  }

  /**
   * Units for one (actor, tenant) run one after another (a promise chain per
   * key); operations apply at once, so `commit` has nothing left to do and
   * nothing is undone. Serializing is what keeps concurrent calls of one
   * actor from all reading the same deny count.
   */
  async unit<T>(history: HistoryKey | undefined, fn: (unit: StoreUnit) => Promise<T>): Promise<T> {
    const unit = this.#unit;
    if (history === undefined) return await fn(unit);
    const key = historyKey(history.actorId, history.tenantId);
    // A FIFO lock per key: the first unit finds no queue and runs at once;
    // later ones queue and are woken one at a time as each unit ends.
    const waiting = this.#historyLocks.get(key);
    if (waiting === undefined) this.#historyLocks.set(key, []);
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await fn(unit);
    } finally {
      const queue = this.#historyLocks.get(key);
      const next = queue?.shift();
      if (next !== undefined) next();
      else this.#historyLocks.delete(key);
    }
  }

  /**
   * Whether no unit of `history`'s (actor, tenant) is running or waiting. Then
   * a decision made from countRecentDeniesNow to appendDecisionNow without
   * yielding is a unit of its own: its operations apply at once and nothing
   * can run between them (the decision flow's synchronous path, adapter/veto.ts).
   */
  unitIdle(history: HistoryKey): boolean {
    return !this.#historyLocks.has(historyKey(history.actorId, history.tenantId));
  }

  async close(): Promise<void> {
    this.#watchers.clear();
    this.#approvalWatchers.clear();
  }

  #addDeny(actorId: string | undefined, tenantId: string | undefined, atMs: number): void {
    if (actorId === undefined || tenantId === undefined) return;
    const key = historyKey(actorId, tenantId);
    const times = this.#denies.get(key) ?? [];
    times.push(atMs);
    if (times.length > 1 && (times[times.length - 2] ?? 0) > atMs) times.sort((a, b) => a - b);
    // Far beyond any sensible deny threshold; keeps one noisy actor's memory bounded.
    if (times.length > MAX_DENIES_PER_KEY) times.splice(0, times.length - MAX_DENIES_PER_KEY);
    this.#denies.set(key, times);
    this.#latestMs = Math.max(this.#latestMs, atMs);
    this.#pruneHistory(key, times);
  }

  #removeDeny(actorId: string | undefined, tenantId: string | undefined, atMs: number): void {
    if (actorId === undefined || tenantId === undefined) return;
    const key = historyKey(actorId, tenantId);
    const times = this.#denies.get(key);
    const at = times?.lastIndexOf(atMs) ?? -1;
    if (times === undefined || at < 0) return;
    times.splice(at, 1);
    if (times.length === 0) this.#denies.delete(key);
  }

  #pruneHistory(key: string, times: number[]): void {
    const cutoff = this.#latestMs - this.#retentionMs();
    let drop = 0;
    while (drop < times.length && (times[drop] ?? 0) < cutoff) drop++;
    if (drop > 0) times.splice(0, drop);
    if (times.length === 0) this.#denies.delete(key);
  }

  #evict(): void {
    // Maps iterate in insertion order, so the first entries are the oldest. An
    // evicted pending approval becomes unknown, which fails closed.
    for (const id of this.#decisions.keys()) {
      if (this.#decisions.size <= this.#maxDecisions) break;
      this.#decisions.delete(id);
    }
    if (++this.#appendsSinceSweep >= 1024) {
      this.#appendsSinceSweep = 0;
      for (const [key, times] of this.#denies) this.#pruneHistory(key, times);
    }
  }
}

/**
 * A store that createVeto opens itself and `close()` closes: what an
 * optional backend's factory returns (`postgres({...})` from
 * "veto-crm/postgres"). The core knows this interface, never the backend.
 */
export interface StoreFactory {
  /** The backend's name, for messages ("postgres"). */
  readonly backend: string;
  /**
   * Connect. `recordSink` is the application's own sink, if it gave one; the
   * factory may answer with a record sink of its own (records kept in the
   * store's transaction) when it did not.
   */
  open(context: StoreFactoryContext): Promise<OpenedStore>;
}

export interface StoreFactoryContext {
  readonly recordSink: RecordSink | undefined;
  readonly logger: { error(fields: object, message: string): void; warn?(fields: object, message: string): void };
}

export interface OpenedStore {
  readonly store: VetoStore;
  /** The record sink the backend provides, when the application gave none. */
  readonly recordSink?: RecordSink;
}

export function isStoreFactory(value: unknown): value is StoreFactory {
  return (
    value !== null &&
    typeof value === "object" &&
    typeof (value as Partial<StoreFactory>).backend === "string" &&
    typeof (value as Partial<StoreFactory>).open === "function"
  );
}
