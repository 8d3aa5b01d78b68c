/**
 * createVeto and the decision flow:
 * call -> validate -> history -> evaluate -> decision -> record -> caller.
 * Every step fails closed: whatever goes wrong, the answer is a deny.
 */
import type { Logger } from "pino";
import { z } from "zod";
import { isRecordReader, writtenRecordsOf, type WrittenRecords } from "./approvals/evidence.js";
import {
  ApprovalDesk,
  type AmendOptions,
  type AmendedCall,
  type ApprovalDeskDeps,
  type AnswerOptions,
  type ApprovalAnswer,
  type WaitOptions,
} from "./approvals/desk.js";
import { DECISION_ENTRYPOINT } from "./policy/bundle.js";
import { bundleRollbackSchema, type BundleRollbackOptions } from "./policy/rollback.js";
import {
  BundleSource,
  bundleServerSchema,
  type ActivePolicy,
  type BundleChangeEvent,
  type BundleRefresh,
  type BundleSpec,
} from "./policy/source.js";
import {
  ADAPTER_REASON_CODES,
  adapterDeny,
  countsTowardsEscalation,
  isSealedAnswer,
  type BundleVersion,
  type Decision,
  type PolicyAnswer,
  type Visibility,
} from "./common/decision.js";
import { ApprovalError, VetoClosedError, VetoDeniedError, VetoOptionsError, toError } from "./common/errors.js";
import { monotonicUlid } from "./common/ids.js";
import { canonicalJson, rememberCanonical } from "./common/canonical-json.js";
import { numberTexts } from "./call/json-text.js";
import {
  DEFAULT_INPUT_LIMITS,
  checkCall,
  type CheckedInput,
  deepFreeze,
  partialContext,
  type PartialContext,
  type CallContext,
  type InputLimits,
  type VetoCall,
} from "./call/input.js";
import { FdRecordSink, defaultLogger } from "./records/fd-sink.js";
import { RECORD_BUNDLE_NAME, RecordMasker, type DecisionEventRecord, type RecordSink } from "./records/records.js";
import { createBundleVerifier, isVerificationKeyInput, type VerificationKeyInput } from "./policy/signature.js";
import { DEFAULT_RECORD_STATE_TIMEOUT_MS, readRecordState, type RecordStateFn, type RecordStateReading } from "./approvals/record-state.js";
import {
  InMemoryStore,
  isStoreFactory,
  UnitRetry,
  type HistoryKey,
  type StoreFactory,
  type StoredDecision,
  type VetoStore,
} from "./history/store.js";
import type { Evaluation } from "./policy/evaluator.js";
import { safeLog } from "./common/logger.js";
import { ShadowPolicy, type ShadowOptions, type ShadowVerdict } from "./policy/shadow.js";
import { failedUnit, runUnit, type DecisionUnit } from "./history/unit.js";

export interface EscalationEvent {
  readonly decision: Decision;
  readonly actorId: string;
  readonly tenantId: string;
  readonly recentDenies: number;
}

/**
 * A require_approval decision, recorded and stored: what its reviewers are
 * told (the approval service's item is made of the same fields).
 */
export interface ApprovalRequiredEvent {
  readonly decision: Decision;
  readonly tool: string;
  readonly actorId: string;
  readonly tenantId: string;
  readonly environment: string;
  /** The call's arguments as its record holds them: sensitive values masked. */
  readonly arguments: unknown;
  readonly recentDenies: number | null;
  /** ISO 8601 UTC: when the approval can no longer be given. */
  readonly expiresAt: string;
}

/** How long an onApprovalRequired hook may run before a warning is logged (it is never awaited). */
export const APPROVAL_HOOK_WARN_MS = 10_000;

export interface VetoOptions {
  /**
   * Path of the bundle .tar.gz, its bytes, or a bundle server to load it from
   * and poll for new ones: `{ url, pollIntervalMs?: 60,000, headers?,
   * timeoutMs?: 30,000, maxBytes?: 64 MiB }` (OPA bundle service conventions:
   * ETag / If-None-Match). From a server, createVeto waits for the first
   * bundle and rejects if it cannot be had; later failures keep the bundle in
   * force. Required.
   */
  readonly bundle: BundleSpec;
  /**
   * Verify every bundle's signature (OPA's .signatures.json) before loading it:
   * a PEM public key (string or bytes), a KeyObject (`createSecretKey(...)` for
   * HS256/384/512), or `{ key, algorithm?, scope? }`; or a list of these while
   * a signing key is rotated (any one verifying suffices). An unsigned or
   * altered bundle is refused with a BundleSignatureError. Default: none
   * (signatures are not checked).
   */
  readonly verificationKey?: VerificationKeyInput | readonly VerificationKeyInput[];
  /**
   * Rollback protection: `{ minIssuedAt?: seconds since the epoch }`. Every
   * bundle's signature must carry an `iat` claim (when CI signed it; covered
   * by the signature, so a bundle server cannot forge it); a bundle signed
   * before minIssuedAt is refused, and a reloaded bundle must be signed
   * strictly after the one in force, else it is refused and the bundle in
   * force stays (BundleRollbackError). Needs `verificationKey`. Default: none
   * (any bundle that verifies may replace the one in force).
   */
  readonly bundleRollback?: BundleRollbackOptions;
  /** Called (not awaited; errors logged) after a bundle from the server replaced the one in force. Default: none. */
  readonly onBundleChange?: (event: BundleChangeEvent) => void | Promise<void>;
  /** A data document replacing the bundle's data.json entirely. Default: the bundle's. */
  readonly data?: Record<string, unknown>;
  /**
   * pino logger for the adapter's own errors. Default: `pino({ name: "veto" })`
   * on stdout, through the default record sink's writer, so its lines never
   * tear a record (and are dropped, never blocking, when stdout fails).
   */
  readonly logger?: Logger;
  /**
   * Deny history and approvals: a VetoStore, or `{ postgres: { connectionString,
   * schema?, pool?, migrate?, records? } }` for a PostgresStore shared by every
   * instance on that database (connected here, closed by close()).
   * Default: a new InMemoryStore.
   */
  readonly store?: VetoStore | StoreFactory;
  /**
   * Where decision records go. Default: FdRecordSink.stdout(), records as
   * pino JSON lines on the process's standard output, each acknowledged only
   * once written (and fdatasync'ed when stdout is a regular file); a write
   * that fails (EPIPE, ENOSPC, EBADF) denies that call and every later one
   * with record_unavailable (docs/contract.md §7). Not `logger`: a logger
   * reports no failed write.
   */
  readonly recordSink?: RecordSink;
  /**
   * Per-deployment key (at least 16 bytes; a string counts as its UTF-8
   * bytes) for the HMAC-SHA-256 digests that replace sensitive values in
   * records ("hmac-sha256:<hex>"). Keep it stable across processes so equal
   * values get equal digests. Default: none, and the digests are plain
   * SHA-256 ("sha256:<hex>"), which anyone can test a guessed value against.
   */
  readonly recordKey?: string | Uint8Array;
  /**
   * Milliseconds since the epoch: the time of decisions and answers, and what
   * expiry and the escalation window are measured by. A store with a clock of
   * its own (the PostgreSQL store: the database's) is used instead for all of
   * these; this clock then only stamps decision ids. Default: Date.now.
   */
  readonly clock?: () => number;
  /** How long a require_approval decision can be answered. Default: 3,600,000 (one hour). */
  readonly approvalTtlMs?: number;
  /** How often waitForApproval re-reads the store besides its notifications. Default: 1,000. */
  readonly approvalPollMs?: number;
  /** Input limits. Default: { maxInputBytes: 65,536, maxDepth: 12 }. */
  readonly limits?: Partial<InputLimits>;
  /** Called (not awaited; errors logged) after an escalated decision is recorded. Default: none. */
  readonly onEscalation?: (event: EscalationEvent) => void | Promise<void>;
  /**
   * Called after a require_approval decision is recorded and stored, never
   * awaited: the decision reaches the caller (and guard starts waiting) at
   * once, whatever the hook does. A hook that throws or rejects is logged; one
   * still running after 10 s is logged too. The place to notify reviewers
   * (`webhookNotifier` from "veto-crm/server"). Default: none.
   */
  readonly onApprovalRequired?: (event: ApprovalRequiredEvent) => void | Promise<void>;
  /**
   * Shadow mode: `{ bundle, data?, verificationKey? }`, a candidate bundle
   * evaluated beside the one in force on every call the policy decides, with
   * the same call and deny history. Its verdict is recorded (`shadow` in the
   * decision record) and never changes the decision; a candidate that fails
   * is recorded as `shadow.error`, never a deny. From a bundle server it is
   * reloaded like `bundle`. Default: none (docs/policy-changes.md).
   */
  readonly shadow?: ShadowOptions;
  /**
   * The state of the CRM record a call targets (docs/contract.md §6, record
   * state): a version, ETag, SystemModstamp or a digest of the fields the call
   * changes; undefined for "no state to bind". Asked (with a deep-frozen copy
   * of the call) once when a call needs approval, inside the decision's unit
   * (so other calls of the same actor and tenant wait for it): the state is
   * kept with the approval and recorded as `record_state`. Asked again where
   * the approved call executes (guard, waitForApproval with `call`, the MCP
   * proxy, the integrations): the call runs only when the state is unchanged,
   * else it is refused with ApprovalError `record_changed`. At decision time a
   * function that throws, answers something other than a string or undefined,
   * or takes longer than `recordStateTimeoutMs` makes the decision a deny
   * `record_state_unavailable` (not counted towards escalation). Default: none.
   */
  readonly recordState?: RecordStateFn;
  /** How long `recordState` may take, each time it is asked. Default: 2,000. */
  readonly recordStateTimeoutMs?: number;
}

const isFunction = (v: unknown): boolean => typeof v === "function";
const hasMethods =
  (...names: string[]) =>
  (v: unknown): boolean =>
    v !== null && typeof v === "object" && names.every((n) => typeof (v as Record<string, unknown>)[n] === "function");
const positiveInt = z.number().int().positive();
/** A decision's unit (VetoStore.unit): it counts, evaluates and appends, and transitions or claims nothing. */
const DECISION_UNIT = Object.freeze({ decision: true });

const STORE_METHODS = ["appendDecision", "countRecentDenies", "getDecision", "transitionApproval", "watchDecision", "close"];
const isStore = (v: unknown): boolean => isStoreFactory(v) || hasMethods(...STORE_METHODS)(v);

const optionsSchema = z.strictObject({
  bundle: z.union([z.string().min(1), z.instanceof(Uint8Array), bundleServerSchema], {
    message: "bundle is required: a path to the bundle .tar.gz, its bytes, or { url } of a bundle server",
  }),
  verificationKey: z
    .custom<VerificationKeyInput | readonly VerificationKeyInput[]>(isVerificationKeyInput, {
      message: "verificationKey must be a PEM string or bytes, a KeyObject, { key, algorithm?, scope? }, or a non-empty list of these",
    })
    .optional(),
  bundleRollback: bundleRollbackSchema.optional(),
  shadow: z
    .strictObject({
      bundle: z.union([z.string().min(1), z.instanceof(Uint8Array), bundleServerSchema], {
        message: "shadow.bundle is required: a path to the candidate bundle .tar.gz, its bytes, or { url } of a bundle server",
      }),
      data: z
        .custom<Record<string, unknown>>((v) => v !== null && typeof v === "object" && !Array.isArray(v), {
          message: "shadow.data must be a JSON object (the whole data document)",
        })
        .optional(),
      verificationKey: z
        .custom<VerificationKeyInput | readonly VerificationKeyInput[]>(isVerificationKeyInput, {
          message: "shadow.verificationKey must be a PEM string or bytes, a KeyObject, { key, algorithm?, scope? }, or a list of these",
        })
        .optional(),
    })
    .optional(),
  onBundleChange: z.custom<(e: BundleChangeEvent) => void>(isFunction, { message: "onBundleChange must be a function" }).optional(),
  data: z
    .custom<Record<string, unknown>>((v) => v !== null && typeof v === "object" && !Array.isArray(v), {
      message: "data must be a JSON object (the whole data document)",
    })
    .optional(),
  logger: z.custom<Logger>(hasMethods("info", "error", "child"), { message: "logger must be a pino logger" }).optional(),
  store: z
    .custom<VetoStore | StoreFactory>(isStore, {
      message: 'store must implement VetoStore, or be a backend such as postgres({ connectionString }) from "veto-crm/postgres"',
    })
    .optional(),
  recordSink: z.custom<RecordSink>(hasMethods("write"), { message: "recordSink must have a write(record) method" }).optional(),
  recordKey: z
    .custom<string | Uint8Array>(
      (v) => (typeof v === "string" ? Buffer.byteLength(v, "utf8") : v instanceof Uint8Array ? v.length : 0) >= 16,
      { message: "recordKey must be a string or Uint8Array of at least 16 bytes" },
    )
    .optional(),
  clock: z.custom<() => number>(isFunction, { message: "clock must be a function returning epoch milliseconds" }).optional(),
  approvalTtlMs: positiveInt.optional(),
  approvalPollMs: positiveInt.optional(),
  limits: z.strictObject({ maxInputBytes: positiveInt.optional(), maxDepth: positiveInt.optional() }).optional(),
  onEscalation: z.custom<(e: EscalationEvent) => void>(isFunction, { message: "onEscalation must be a function" }).optional(),
  onApprovalRequired: z
    .custom<(e: ApprovalRequiredEvent) => void>(isFunction, { message: "onApprovalRequired must be a function" })
    .optional(),
  recordState: z
    .custom<RecordStateFn>(isFunction, { message: "recordState must be a function (call) => string | undefined | Promise<...>" })
    .optional(),
  recordStateTimeoutMs: positiveInt.optional(),
});

/** How long a guarded call waits for its approval: given to guard() (for every call) or per call (wins). */
export interface GuardOptions {
  /** Give up after this long (the call rejects with ApprovalError code approval_timeout). Default: until the approval expires (`approvalTtlMs`, one hour). */
  readonly timeoutMs?: number;
  /** Stop waiting when it fires (ApprovalError code approval_aborted). */
  readonly signal?: AbortSignal;
}

/** Checked at once, like guard's other arguments: a typo must not turn into an endless wait. */
function checkGuardOptions(options: GuardOptions | undefined, where: string): GuardOptions {
  if (options === undefined) return {};
  if (options === null || typeof options !== "object") throw new VetoOptionsError(`${where}: options must be { timeoutMs?, signal? }`);
  const unknown = Object.keys(options).filter((k) => k !== "timeoutMs" && k !== "signal");
  if (unknown.length > 0) throw new VetoOptionsError(`${where}: unknown option ${unknown.join(", ")} (known: timeoutMs, signal)`);
  const { timeoutMs, signal } = options;
  if (timeoutMs !== undefined && !(typeof timeoutMs === "number" && Number.isFinite(timeoutMs) && timeoutMs >= 0)) {
    throw new VetoOptionsError(`${where}: timeoutMs must be a non-negative number of milliseconds`);
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new VetoOptionsError(`${where}: signal must be an AbortSignal`);
  return { ...(timeoutMs === undefined ? {} : { timeoutMs }), ...(signal === undefined ? {} : { signal }) };
}

/**
 * A deeply read-only view of a guarded tool's arguments, which are a deep-frozen
 * copy of what was decided. guard() types them `Readonly<A>` only, so that a
 * typed client taking mutable arrays (`tags: string[]`) accepts them; a tool
 * may declare its parameter DeepReadonly<A> itself.
 */
export type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

/** What amend() answers: the amended call's decision, and the amender's approval of it when they gave one. */
export interface AmendResult {
  /** The decision amended (now "amended"). */
  readonly amended: string;
  /** The amended call's decision, made by the policy with the original's context. */
  readonly decision: Decision;
  /** When the amended call needed approval and the amender is among its approvers: their approval of it. */
  readonly approval?: ApprovalAnswer;
}

export interface Veto {
  /** Decide a call. Never throws because of what the call contains. */
  protect(call: unknown): Promise<Decision>;
  /**
   * Amend a pending call's arguments (docs/contract.md §6, amend): a listed
   * approver (never the actor), once, before expiry. The amended call (the
   * original's tool and context, these arguments) is a new decision by the
   * policy, recorded with the amender; the original ends "amended". When the
   * amended call needs approval and the amender is among its approvers, the
   * amendment approves it. Refused with ApprovalError as approve() is.
   */
  amend(options: AmendOptions): Promise<AmendResult>;
  /** Resolves when the decision is approved; rejects with an ApprovalError otherwise. */
  waitForApproval(options: WaitOptions): Promise<ApprovalAnswer>;
  approve(options: AnswerOptions): Promise<ApprovalAnswer>;
  reject(options: AnswerOptions): Promise<ApprovalAnswer>;
  /**
   * Wrap a tool: a denied call never reaches `fn`; a call that needs approval
   * waits for it (up to `options.timeoutMs`; by default until the approval
   * expires, `approvalTtlMs`), then runs. The wait is logged with who may approve.
   */
  guard<A extends object, R>(
    toolName: string,
    fn: (args: Readonly<A>, context: Readonly<CallContext>, decision: Decision) => R | Promise<R>,
    options?: GuardOptions,
  ): (args: A, context: CallContext, options?: GuardOptions) => Promise<Awaited<R>>;
  /** The revision and version hash of the bundle in force now. */
  readonly bundle: BundleVersion;
  /** Poll the bundle server now (a no-op "static" for a path or bytes). Never rejects for a bad bundle: that is the "rejected" outcome. */
  refreshBundle(): Promise<BundleRefresh>;
  /** Stops polling, then closes what createVeto opened. */
  close(): Promise<void>;
}

export async function createVeto(options: VetoOptions): Promise<Veto> {
  const store: unknown = (options as { store?: unknown } | null)?.store;
  if (store !== null && typeof store === "object" && "postgres" in store && !isStoreFactory(store)) {
    const issue = 'store: { postgres: {...} } is replaced by store: postgres({...}), imported from "veto-crm/postgres"';
    throw new VetoOptionsError(`createVeto: invalid options: ${issue}`, [issue]);
  }
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.map(String).join(".") || "options"}: ${i.message}`);
    throw new VetoOptionsError(`createVeto: invalid options: ${issues.join("; ")}`, issues);
  }
  const o = parsed.data;
  if (o.bundleRollback !== undefined && o.verificationKey === undefined) {
    const issue = "bundleRollback: needs verificationKey (without a verified signature, a bundle's issue time could be forged)";
    throw new VetoOptionsError(`createVeto: invalid options: ${issue}`, [issue]);
  }
  const logger = o.logger ?? defaultLogger();
  const verifier = o.verificationKey === undefined ? undefined : createBundleVerifier(o.verificationKey);
  const source = await BundleSource.open(o.bundle, {
    verifier,
    data: o.data,
    logger,
    onBundleChange: o.onBundleChange,
    rollback: o.bundleRollback,
  });
  let shadow: ShadowPolicy | undefined;
  try {
    shadow = o.shadow === undefined ? undefined : await ShadowPolicy.open(o.shadow, logger);
  } catch (error) {
    await source.close();
    throw error;
  }
  let opened: { store: VetoStore | undefined; recordSink?: RecordSink | undefined; ownsStore: boolean };
  try {
    opened = isStoreFactory(o.store)
      ? { ...(await o.store.open({ recordSink: o.recordSink, logger: logger.child({ component: "store" }) })), ownsStore: true }
      : { store: o.store, ownsStore: false };
  } catch (error) {
    await source.close();
    await shadow?.close();
    throw error;
  }
  // Not the data documents: read into the policy, their objects are left to the collector.
  const { data: _data, shadow: _shadow, ...kept } = o;
  return new VetoInstance(
    { ...kept, logger, store: opened.store, recordSink: o.recordSink ?? opened.recordSink },
    source,
    opened.ownsStore,
    shadow,
  );
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

type Operations = Readonly<Record<"unit" | "countRecentDenies" | "appendDecision", unknown>>;

/** The in-memory store's operations a decision uses, as this module found them: a later patch, on the prototype or the instance, is not one of them. */
const { unit: ownUnit, countRecentDenies: ownCount, appendDecision: ownAppend } = InMemoryStore.prototype as unknown as Operations;

/**
 * Whether the in-memory store's operations a decision uses are its own (none
 * replaced, on the instance or on the prototype), so that their synchronous
 * twins do exactly what they would. Asked on every decision: three comparisons.
 */
function ownOperations(store: InMemoryStore): boolean {
  const operations = store as unknown as Operations;
  return operations.unit === ownUnit && operations.countRecentDenies === ownCount && operations.appendDecision === ownAppend;
}

/** What #decide answers: the decision, the call it decided, and why a record_unavailable deny was given. */
interface DecideResult {
  readonly decision: Decision;
  readonly call: VetoCall | undefined;
  readonly cause?: Error;
}

/** A decision made in a unit: its record may still be on its way to durable storage. */
interface Decided {
  readonly result: DecideResult;
  /** The record's write, when it is awaited after the unit. */
  readonly durable?: Promise<unknown> | undefined;
  /** Supersede the decision with a record_unavailable deny. */
  readonly unrecorded: (error: unknown) => Promise<DecideResult>;
  readonly escalation?: EscalationEvent | undefined;
  readonly approvalRequired?: ApprovalRequiredEvent | undefined;
}

interface Outcome {
  readonly answer: PolicyAnswer;
  readonly evalNs: number;
  readonly recentDenies: number | null;
  /** The shadow bundle's verdict on the same call and history, when there is one. */
  readonly shadow?: ShadowVerdict;
  /** For a require_approval answer: the target record's state, when recordState gave one. */
  readonly recordState?: string;
}

/** What one decision is made from: the bundle in force when it began, the call as given and as checked. */
interface DecisionContext {
  /** For an amended call (docs/contract.md §6, amend): the decision it amends and who amended it. */
  readonly amendment?: { readonly from: string; readonly by: string } | undefined;
  readonly policy: ActivePolicy;
  readonly raw: unknown;
  /** The instance's clock when the call came (a store's own clock may replace it). */
  readonly clockMs: number;
  readonly checked: CheckedInput;
  /** The checked call; undefined when it is invalid input. */
  readonly call: VetoCall | undefined;
  readonly who: PartialContext;
  /**
   * The record's state as read for this call (docs/contract.md §6: asked
   * once): a decision the store makes again (UnitRetry) reuses it.
   */
  recordStateReading?: Promise<RecordStateReading>;
}

/** A decision made, with its record and what the store keeps, not yet written. */
interface MadeDecision {
  readonly context: DecisionContext;
  readonly decision: Decision;
  readonly record: DecisionEventRecord;
  readonly stored: StoredDecision;
  readonly outcome: Outcome;
  readonly unrecorded: (error: unknown) => Promise<DecideResult>;
}

/**
 * checkCall, with the amounts judged by their text when the call came as
 * `text`: the numbers where amounts are (arguments.amount,
 * arguments.changes.*) are read from it. Text that cannot be read so is
 * refused (fail closed), never judged by the doubles instead.
 */
function checkText(raw: unknown, text: string | undefined, limits: InputLimits, amountFields: readonly string[]): CheckedInput {
  if (text === undefined) return checkCall(raw, limits, amountFields);
  let texts: ReadonlyMap<string, string>;
  try {
    texts = numberTexts(text, 3);
  } catch (error) {
    const checked = checkCall(raw, limits, amountFields);
    const message = `the call's text cannot be read for its amounts: ${toError(error).message}`;
    return checked.ok ? { ok: false, message, partial: checked.call, json: checked.json } : checked;
  }
  return checkCall(raw, limits, amountFields, texts);
}

/**
 * `value`, frozen, its canonical JSON remembered (common/canonical-json.ts):
 * for the members that many records share, which a durable sink then writes
 * without walking them again. `value`'s own members must be frozen already.
 * A value with no canonical form is only frozen (the sink refuses its record
 * as it would anyway).
 */
function withText<T extends object>(value: T): T {
  Object.freeze(value);
  try {
    rememberCanonical(value, canonicalJson(value));
  } catch {
    // Written, and refused, by the sink as any other value.
  }
  return value;
}

/** Per bundle version: its version frozen as decisions hold it, and the records' `bundles` member. */
interface BundleShared {
  readonly of: BundleVersion;
  readonly frozen: BundleVersion;
  readonly bundles: DecisionEventRecord["bundles"];
}

/** The result of every record whose decision got the same sealed answer: made once, shared. */
const sealedResults = new WeakMap<PolicyAnswer, DecisionEventRecord["result"]>();

/** A decision record's `result` (docs/contract.md §7): the verdict of `decision`, made of `answer`. */
function recordResult(answer: PolicyAnswer, decision: Decision): DecisionEventRecord["result"] {
  const shared = isSealedAnswer(answer);
  if (shared) {
    const known = sealedResults.get(answer);
    if (known !== undefined) return known;
  }
  // A sealed answer's reasons and approvers are frozen, and are the decision's (#decision).
  const result = {
    action: decision.action,
    escalated: decision.escalated,
    reason: decision.reason,
    reasons: decision.reasons,
    approvers: decision.approvers,
  };
  if (!shared) return result;
  const hosts = answer.destination_hosts;
  if (hosts !== undefined) withText(hosts);
  withText(result);
  sealedResults.set(answer, result);
  return result;
}

function digestOfRaw(masker: RecordMasker, raw: unknown): string | null {
  try {
    return masker.digest(raw);
  } catch {
    return null;
  }
}

/**
 * For front ends that parse calls themselves (the CLI, the MCP proxy): decide
 * a call that could not be parsed. `text` is what was received, or undefined
 * when it was not kept (a line over the input limit; its record then has no
 * input digest). `from`, when the front end knows it (the MCP proxy's fixed
 * context), is `{ tool, context }` as far as it is known: the deny is then
 * attributed, recorded under that actor and tenant and counted towards their
 * escalation (docs/contract.md §3). Not part of the public API.
 */
export function protectUnreadable(
  veto: Veto,
  text: string | undefined,
  problem: string,
  from?: { readonly tool?: string | undefined; readonly context: unknown },
): Promise<Decision> {
  if (!(veto instanceof VetoInstance)) throw new VetoOptionsError("protectUnreadable: pass a veto made by createVeto()");
  return veto.protectUnreadable(text, problem, from);
}

/**
 * For front ends that read calls as JSON text (the CLI): decide `call`, the
 * result of JSON.parse(`text`), judging its amounts by their text in `text`
 * (docs/contract.md §9 "Amount precision": JSON.parse turns
 * 250000.00000000001 into 250000). Not part of the public API.
 */
export function protectText(veto: Veto, call: unknown, text: string): Promise<Decision> {
  if (!(veto instanceof VetoInstance)) throw new VetoOptionsError("protectText: pass a veto made by createVeto()");
  return veto.protectText(call, text);
}

/**
 * For front ends that offer tools (the MCP proxy): whether `tool` is offered
 * at all to the context's actor, by the bundle in force's `veto/crm/visible`
 * (docs/contract.md §4b). Never throws for what it is asked: a bundle without
 * the entrypoint or a failed evaluation answers hidden with evaluation_error
 * (fail closed). Nothing is recorded: every call is still decided and recorded
 * by protect(). Not part of the public API.
 */
/** What an approved call runs as (resumeApproval): the call to run, frozen, and the amendment when there was one. */
export interface ResumedCall {
  /** The decision the call runs under: the one waited for, or the amended call's. */
  readonly decisionId: string;
  /** Exactly what to run, deep-frozen: the call waited for, or the amended call as decided. */
  readonly call: { readonly tool: string; readonly arguments: unknown; readonly context: unknown };
  /** Present when an approver amended the call (docs/contract.md §6, amend). */
  readonly amended?: {
    /** The decision amended (the last, when an amended call was amended again). */
    readonly from: string;
    /** The approver who amended it, when the store says. */
    readonly by: string | null;
    /** The amended call's decision. */
    readonly decision: Decision;
  };
}

/**
 * Resume a paused call (the integrations and the MCP proxy, docs/integrations.md):
 * the approval of `decisionId` for exactly `call`, claimed use-once, or the
 * amended call its approver made of it, claimed use-once as its own decision
 * allows; rejects with ApprovalError (or VetoDeniedError for an amended call
 * the policy denied) when nothing may run. `timeoutMs` 0 asks once.
 */
export function resumeApproval(
  veto: Veto,
  options: {
    readonly decisionId: string;
    readonly call: { readonly tool: string; readonly arguments: unknown; readonly context: unknown };
    readonly timeoutMs?: number;
    readonly signal?: AbortSignal;
    /** Asked before an amended call is claimed: why it cannot run here (then refused, call_mismatch, unclaimed), or undefined. */
    readonly accept?: (amended: ResumedCall["call"]) => string | undefined;
  },
): Promise<ResumedCall> {
  if (!(veto instanceof VetoInstance)) throw new VetoOptionsError("resumeApproval: pass a veto made by createVeto()");
  const { decisionId, call, timeoutMs, signal, accept } = options;
  const wait = { ...(timeoutMs === undefined ? {} : { timeoutMs }), ...(signal === undefined ? {} : { signal }) };
  return veto.resume(decisionId, call, wait, accept);
}

export function toolVisibility(veto: Veto, query: { readonly tool: unknown; readonly context: unknown }): Promise<Visibility> {
  if (!(veto instanceof VetoInstance)) throw new VetoOptionsError("toolVisibility: pass a veto made by createVeto()");
  return veto.visibility(query);
}

class VetoInstance implements Veto {
  /** The bundle in force; each decision reads `current` once and uses that snapshot throughout. */
  readonly #source: BundleSource;
  readonly #log: Logger;
  readonly #store: VetoStore;
  readonly #ownsStore: boolean;
  readonly #sink: RecordSink;
  readonly #ownsSink: boolean;
  readonly #masker: RecordMasker;
  readonly #clock: () => number;
  readonly #ttlMs: number;
  readonly #limits: InputLimits;
  readonly #onEscalation: ((e: EscalationEvent) => void | Promise<void>) | undefined;
  readonly #onApprovalRequired: ((e: ApprovalRequiredEvent) => void | Promise<void>) | undefined;
  readonly #recordState: RecordStateFn | undefined;
  readonly #recordStateTimeoutMs: number;
  readonly #nextId = monotonicUlid();
  readonly #desk: ApprovalDesk;
  /** For a sink that cannot be read back: the records an approval check reads, as this process wrote them. */
  readonly #written: WrittenRecords | undefined;
  /**
   * What the decisions and records of the last decision's bundle share: its
   * version frozen as decisions hold it, and the records' `bundles` member
   * (withText). Made once per bundle version.
   */
  #bundleShared: BundleShared | undefined;
  #closed = false;
  readonly #shadow: ShadowPolicy | undefined;
  /**
   * The store when decisions can be made without an await (#decideNow): the
   * built-in in-memory store itself (not a subclass, whose operations may be
   * its own; and while no operation is replaced on it, see ownOperations),
   * with no shadow bundle and no record-state reader to wait for.
   */
  readonly #syncStore: InMemoryStore | undefined;

  constructor(
    o: Omit<z.infer<typeof optionsSchema>, "store" | "data" | "shadow"> & { store: VetoStore | undefined },
    source: BundleSource,
    ownsStore: boolean,
    shadow?: ShadowPolicy,
  ) {
    this.#source = source;
    this.#shadow = shadow;
    const logger = o.logger ?? defaultLogger();
    this.#log = logger.child({ component: "veto" });
    this.#ownsStore = o.store === undefined || ownsStore;
    // Retention follows the bundle in force: a reloaded bundle with a longer
    // escalation window keeps (from then on) history as long as it counts.
    this.#store =
      o.store ?? new InMemoryStore({ historyRetentionMs: () => Math.max(source.current.data.windowSeconds * 1000, 24 * 3600 * 1000) });
    this.#ownsSink = o.recordSink === undefined;
    this.#sink = o.recordSink ?? FdRecordSink.stdout();
    this.#masker = new RecordMasker(o.recordKey);
    this.#clock = o.clock ?? Date.now;
    this.#ttlMs = o.approvalTtlMs ?? 3_600_000;
    this.#limits = { ...DEFAULT_INPUT_LIMITS, ...o.limits };
    this.#onEscalation = o.onEscalation;
    this.#onApprovalRequired = o.onApprovalRequired;
    this.#recordState = o.recordState;
    this.#recordStateTimeoutMs = o.recordStateTimeoutMs ?? DEFAULT_RECORD_STATE_TIMEOUT_MS;
    this.#written = isRecordReader(this.#sink) ? undefined : writtenRecordsOf(this.#sink);
    this.#syncStore =
      Object.getPrototypeOf(this.#store) === InMemoryStore.prototype && shadow === undefined && o.recordState === undefined
        ? (this.#store as InMemoryStore)
        : undefined;
    this.#desk = new ApprovalDesk({
      store: this.#store,
      sink: this.#sink,
      clock: this.#clock,
      // Every instance on a shared store times approvals by the store's clock (docs/contract.md §6).
      ...(this.#store.now === undefined ? {} : { storeClock: () => this.#store.now!() }),
      // Approval records name the bundle in force when they are written.
      get bundle() {
        return source.current.version;
      },
      pollMs: o.approvalPollMs ?? 1000,
      log: this.#log,
      callDigest: (call) => this.#masker.callDigest(call),
      ...(o.recordState === undefined
        ? {}
        : { recordState: (call: Parameters<RecordStateFn>[0]) => readRecordState(o.recordState!, call, this.#recordStateTimeoutMs) }),
      ...this.#approvalRecords(),
    });
  }

  /** Where waits read an approval's records back: the sink when it can be read, else this process's memory of them. */
  #approvalRecords(): Pick<ApprovalDeskDeps, "records" | "written"> {
    const sink = this.#sink;
    if (isRecordReader(sink)) return { records: sink, written: () => () => {} };
    const written = this.#written!;
    return { records: written, written: (record) => written.remember(record) };
  }

  get bundle(): BundleVersion {
    return this.#source.current.version;
  }

  refreshBundle(): Promise<BundleRefresh> {
    return this.#open().then(() => this.#source.refresh());
  }

  async protect(call: unknown): Promise<Decision> {
    return (await this.#decide(call)).decision;
  }

  waitForApproval(options: WaitOptions): Promise<ApprovalAnswer> {
    return this.#open().then(() => this.#desk.wait(options));
  }

  approve(options: AnswerOptions): Promise<ApprovalAnswer> {
    return this.#open().then(() => this.#desk.answer("approval", options));
  }

  async amend(options: AmendOptions): Promise<AmendResult> {
    await this.#open();
    const reviewerId = (options as { reviewerId?: unknown } | null)?.reviewerId;
    let actorId: string | undefined;
    const decision = await this.#desk.amend(
      options,
      async (original: StoredDecision, call: AmendedCall) => {
        actorId = original.actorId;
        return (await this.#decide(call, undefined, undefined, { from: original.id, by: String(reviewerId) })).decision;
      },
      // The checks protect() makes of a call before the policy sees it, under the bundle in force now.
      (call: AmendedCall) => {
        const checked = checkText(call, undefined, this.#limits, this.#source.current.data.amountFields);
        return checked.ok ? undefined : checked.message;
      },
    );
    const note = options.note;
    if (
      decision.action === "require_approval" &&
      typeof reviewerId === "string" &&
      reviewerId !== actorId &&
      decision.approvers.includes(reviewerId)
    ) {
      const approval = await this.#desk.answer("approval", {
        decisionId: decision.id,
        reviewerId,
        ...(note === undefined ? {} : { note }),
      });
      return { amended: options.decisionId, decision, approval };
    }
    return { amended: options.decisionId, decision };
  }

  reject(options: AnswerOptions): Promise<ApprovalAnswer> {
    return this.#open().then(() => this.#desk.answer("rejection", options));
  }

  guard<A extends object, R>(
    toolName: string,
    fn: (args: Readonly<A>, context: Readonly<CallContext>, decision: Decision) => R | Promise<R>,
    options?: GuardOptions,
  ): (args: A, context: CallContext, options?: GuardOptions) => Promise<Awaited<R>> {
    if (typeof toolName !== "string" || toolName === "") {
      throw new VetoOptionsError("guard: toolName must be a non-empty string");
    }
    if (typeof fn !== "function") throw new VetoOptionsError("guard: fn must be the tool function to run");
    const defaults = checkGuardOptions(options, "guard");
    return async (args: A, context: CallContext, callOptions?: GuardOptions): Promise<Awaited<R>> => {
      const wait = { ...defaults, ...checkGuardOptions(callOptions, "a guarded call") };
      const { decision, call, cause } = await this.#decide({ tool: toolName, arguments: args, context });
      if (decision.action === "deny" || call === undefined) {
        throw new VetoDeniedError(decision, cause === undefined ? undefined : { cause });
      }
      // The snapshot is private to this call: freezing it pins down exactly
      // what was decided (and, for approvals, what the digest covers).
      deepFreeze(call);
      if (decision.action === "require_approval") {
        // Never a silent wait: say what is awaited, from whom, and for how long.
        try {
          this.#log.info(
            { decision_id: decision.id, tool: toolName, approvers: decision.approvers, timeout_ms: wait.timeoutMs ?? null },
            "guard: waiting for approval",
          );
        } catch {
          // The wait stands; the log line is lost.
        }
        const ran = await this.resume(decision.id, call, wait);
        return await fn(ran.call.arguments as Readonly<A>, ran.call.context as Readonly<CallContext>, ran.amended?.decision ?? decision);
      }
      return await fn(call.arguments as Readonly<A>, call.context, decision);
    };
  }

  /**
   * Where an approved call runs (guard, every integration, the MCP proxy):
   * the approval of exactly `call`, claimed use-once; or, when an approver
   * amended it (docs/contract.md §6, amend), the amended call as its own
   * decision says: denied (VetoDeniedError with that decision), allowed and
   * claimed once (claimAllowedAmendment), or approved and claimed in turn (an
   * amended call may itself be amended, a bounded number of times). Every
   * other outcome is the wait's ApprovalError (rejected, expired, no answer
   * in time, already executed, record changed): nothing runs.
   */
  async resume(
    decisionId: string,
    call: { readonly tool: string; readonly arguments: unknown; readonly context: unknown },
    wait: GuardOptions,
    accept?: (amended: ResumedCall["call"]) => string | undefined,
  ): Promise<ResumedCall> {
    let current: { decisionId: string; call: ResumedCall["call"] } = { decisionId, call };
    let amended: ResumedCall["amended"];
    for (let hops = 0; ; hops++) {
      try {
        await this.waitForApproval({ decisionId: current.decisionId, call: current.call, ...wait });
        return { ...current, ...(amended === undefined ? {} : { amended }) };
      } catch (error) {
        if (!(error instanceof ApprovalError) || error.code !== "amended") throw error;
        const next = error.amended;
        if (next === undefined || hops >= 8) throw error;
        amended = { from: error.decisionId, by: next.by ?? null, decision: next.decision };
        current = { decisionId: next.decision.id, call: next.call };
        if (next.decision.action === "deny") throw new VetoDeniedError(next.decision);
        // Before any claim: an amended call the caller cannot run as decided is refused unclaimed.
        const problem = accept?.(next.call);
        if (problem !== undefined) {
          throw new ApprovalError("call_mismatch", next.decision.id, `the amended call ${next.decision.id} cannot run here: ${problem}`);
        }
        if (next.decision.action === "allow") {
          await this.#desk.claimAllowedAmendment(next.decision.id);
          return { ...current, amended };
        }
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#source.close();
    await this.#shadow?.close();
    this.#desk.abortAll(new VetoClosedError());
    if (this.#ownsSink) await this.#sink.close?.();
    if (this.#ownsStore) await this.#store.close();
  }

  async #open(): Promise<void> {
    if (this.#closed) throw new VetoClosedError();
  }

  async visibility(query: { readonly tool: unknown; readonly context: unknown }): Promise<Visibility> {
    await this.#open();
    const evaluation = await this.#source.current.evaluator.evaluateVisibility(query);
    if (evaluation.ok) return evaluation.answer;
    safeLog(this.#log, { err: evaluation.error }, "tool visibility could not be evaluated; hiding the tool");
    const { reasons } = adapterDeny(ADAPTER_REASON_CODES.evaluationError, evaluation.error.message);
    return { visible: false, reasons };
  }

  /** A call that could not even be read (e.g. a line of the CLI that is not JSON): invalid_input, recorded. */
  async protectUnreadable(text: string | undefined, problem: string, from?: unknown): Promise<Decision> {
    return (await this.#decide(text, { problem, from })).decision;
  }

  /** A call parsed from `text`: its amounts are judged by their text there. */
  async protectText(call: unknown, text: string): Promise<Decision> {
    return (await this.#decide(call, undefined, text)).decision;
  }

  /** `cause`: why a record_unavailable deny was given (the sink's or store's error). */
  async #decide(
    raw: unknown,
    unreadable?: { readonly problem: string; readonly from: unknown },
    text?: string,
    amendment?: { readonly from: string; readonly by: string },
  ): Promise<DecideResult> {
    // Everything up to the first await runs synchronously inside protect():
    // the call is copied before the caller can change it.
    if (this.#closed) throw new VetoClosedError();
    const nowMs = this.#clock();
    // One bundle per decision: a reload during the awaits below does not reach this call.
    const policy = this.#source.current;
    const checked =
      unreadable === undefined
        ? checkText(raw, text, this.#limits, policy.data.amountFields)
        : { ok: false as const, message: unreadable.problem, partial: undefined };
    const call = checked.ok ? checked.call : undefined;
    const who =
      call === undefined
        ? partialContext(unreadable?.from ?? raw, this.#limits.maxInputBytes)
        : { actorId: call.context.actorId, tenantId: call.context.tenantId, environment: call.context.environment, tool: call.tool };
    // count -> evaluate -> record -> append as one unit, exclusive per (actor,
    // tenant), so concurrent calls (here or, with a shared store, in other
    // processes) each see every deny before them. An invalid call that names
    // its actor and tenant takes the same unit: its invalid_input deny counts
    // for them (docs/contract.md §3), so it must not land between another
    // call's count and that call's append.
    const history =
      who.actorId === undefined || who.tenantId === undefined
        ? undefined
        : { actorId: who.actorId, tenantId: who.tenantId, windowMs: policy.data.windowSeconds * 1000 };
    let decided: Decided;
    const context: DecisionContext = { amendment, policy, raw, clockMs: nowMs, checked, call, who };
    const syncStore = this.#syncStore;
    const now = syncStore !== undefined && ownOperations(syncStore) ? this.#decideNow(syncStore, context, history) : undefined;
    if (now !== undefined) {
      decided = now instanceof Promise ? await now : now;
    } else
      try {
        decided = await runUnit(this.#store, this.#sink, history, (unit) => this.#decideIn(unit, context), DECISION_UNIT);
      } catch (error) {
        // The store could not give a unit (no connection, BEGIN or the lock
        // failed): the call cannot be remembered or recorded, so it is denied
        // with record_unavailable, and that deny is recorded if it can be.
        decided = await this.#decideIn(failedUnit(toError(error)), { amendment, policy, raw, clockMs: nowMs, checked, call, who });
      }
    // The record must be durable before the caller hears the decision; when
    // the sink is not part of the store's transaction, that wait happens here,
    // after the unit, so calls of one actor and tenant share the sink's syncs.
    if (decided.durable !== undefined) {
      try {
        await decided.durable;
      } catch (error) {
        return await decided.unrecorded(error);
      }
    }
    if (decided.escalation !== undefined) this.#escalate(decided.escalation, decided.result.decision.id);
    if (decided.approvalRequired !== undefined) this.#approvalRequired(decided.approvalRequired);
    return decided.result;
  }

  /** Not awaited: neither a failing nor a slow hook changes or delays the decision; both are logged. */
  #approvalRequired(event: ApprovalRequiredEvent): void {
    const hook = this.#onApprovalRequired!;
    const id = event.decision.id;
    let done = false;
    const slow = setTimeout(() => {
      if (!done) safeLog(this.#log, { decision_id: id, after_ms: APPROVAL_HOOK_WARN_MS }, "onApprovalRequired hook is still running");
    }, APPROVAL_HOOK_WARN_MS);
    slow.unref();
    void Promise.resolve()
      .then(() => hook(event))
      .catch((error: unknown) => safeLog(this.#log, { err: toError(error), decision_id: id }, "onApprovalRequired hook failed"))
      .finally(() => {
        done = true;
        clearTimeout(slow);
      });
  }

  #escalate(event: EscalationEvent, id: string): void {
    void Promise.resolve()
      .then(() => this.#onEscalation?.(event))
      .catch((error: unknown) => safeLog(this.#log, { err: toError(error), decision_id: id }, "onEscalation hook failed"));
  }

  /**
   * One decision inside its unit of work, in the order of the flow: the
   * policy's answer (with the deny history), the decision, its record, what
   * the store keeps, then record and store written before the caller hears it.
   */
  async #decideIn(unit: DecisionUnit, context: DecisionContext): Promise<Decided> {
    // One clock (docs/contract.md §6): a store with a clock of its own times
    // the decision (its id, its window, its expiry, its record) as the unit
    // started, so instances whose clocks differ agree.
    const nowMs = unit.nowMs ?? context.clockMs;
    const id = this.#nextId(nowMs);
    let outcome: Outcome =
      context.call === undefined
        ? this.#invalidOutcome(context)
        : await this.#evaluate(unit, context.policy, id, context.call, context.checked.ok ? context.checked.json : "", nowMs);
    // Only a require_approval answer, with a record-state reader configured, waits for one more read.
    if (context.call !== undefined && this.#recordState !== undefined && outcome.answer.action === "require_approval") {
      outcome = await this.#bindRecordState(id, context, outcome);
    }
    return await this.#write(unit, this.#make(context, id, nowMs, outcome));
  }

  /**
   * #decideIn without a unit of work or an await, for the built-in in-memory
   * store when no unit of the call's (actor, tenant) is running or waiting:
   * its operations apply at once, so a decision made from its count to its
   * append without yielding is a unit of its own, and the caller awaits only
   * the record's write. Undefined, with nothing done, when the decision
   * cannot be made so: an evaluator that must make its instance again. (A
   * shadow bundle or a record-state reader, which are awaited, never come here.)
   */
  #decideNow(store: InMemoryStore, context: DecisionContext, history: HistoryKey | undefined): Decided | Promise<Decided> | undefined {
    if (history !== undefined && !store.unitIdle(history)) return undefined;
    const { call, policy } = context;
    const nowMs = context.clockMs;
    let outcome: Outcome;
    let id: string;
    if (call === undefined) {
      id = this.#nextId(nowMs);
      outcome = this.#invalidOutcome(context);
    } else {
      const sinceMs = nowMs - policy.data.windowSeconds * 1000;
      const recentDenies = store.countRecentDeniesNow(call.context.actorId, call.context.tenantId, sinceMs);
      const evaluation = policy.evaluator.evaluateCallNow(context.checked.ok ? context.checked.json : "", recentDenies);
      if (evaluation === undefined) return undefined;
      id = this.#nextId(nowMs);
      outcome = this.#outcomeOf(id, evaluation, recentDenies, undefined);
    }
    const made = this.#make(context, id, nowMs, outcome);
    let durable: Promise<unknown>;
    try {
      // The record takes its place in the sink's order now; its write is awaited in #decide.
      durable = this.#sink.write(made.record);
    } catch (error) {
      durable = Promise.reject(toError(error));
    }
    try {
      store.appendDecisionNow(made.stored);
    } catch (error) {
      durable.catch(() => {});
      return made.unrecorded(error).then((result) => ({ result, unrecorded: made.unrecorded }));
    }
    return this.#decided(made, durable);
  }

  /** The answer to a call that is not valid input (context.call undefined). */
  #invalidOutcome(context: DecisionContext): Outcome {
    return {
      answer: adapterDeny(ADAPTER_REASON_CODES.invalidInput, context.checked.ok ? "" : context.checked.message),
      evalNs: 0,
      recentDenies: null,
    };
  }

  /** The decision made of `outcome`, its record and what the store keeps. */
  #make(context: DecisionContext, id: string, nowMs: number, outcome: Outcome): MadeDecision {
    const decision = this.#decision(id, nowMs, outcome.answer, context.policy.version);
    const record = this.#decisionRecord(context, decision, outcome);
    // The approval's expiry, in the record too: a report tells expired from pending (docs/contract.md §7).
    if (decision.action === "require_approval") record.expires_at = new Date(nowMs + this.#ttlMs).toISOString();
    const stored = this.#storedDecision(context, decision, record, nowMs);
    const unrecorded = (error: unknown): Promise<DecideResult> => this.#unrecorded(context, record, stored, nowMs, error);
    return { context, decision, record, stored, outcome, unrecorded };
  }

  /** The decision's record (docs/contract.md §7): the masked call, its digests, the verdict, the bundle. */
  #decisionRecord(
    { amendment, policy, raw, checked, call, who }: DecisionContext,
    decision: Decision,
    outcome: Outcome,
  ): Mutable<DecisionEventRecord> {
    // Keyed like the masked values: with recordKey set, an unkeyed digest of
    // the whole call would let a reader test guesses of a masked value.
    // Over checkCall's canonical JSON of the call, hashed once: for a checked
    // call (exactly tool, arguments and context) input and call digests are equal.
    const digest = checked.ok ? this.#masker.digestJson(checked.json) : null;
    // The whole call (or as much of it as was JSON), masked: what replay re-evaluates.
    const { input, masked } = this.#masker.maskInput(checked.ok ? checked.call : (checked.partial ?? null), policy.data.sensitiveFields);
    const record: Mutable<DecisionEventRecord> = {
      type: "decision",
      decision_id: decision.id,
      timestamp: decision.timestamp,
      path: DECISION_ENTRYPOINT,
      bundles: this.#sharedOf(policy.version).bundles,
      tool: who.tool ?? null,
      actor_id: who.actorId ?? null,
      tenant_id: who.tenantId ?? null,
      environment: who.environment ?? null,
      source_system: call?.context.sourceSystem ?? who.sourceSystem ?? null,
      request_id: call?.context.requestId ?? who.requestId ?? null,
      session_id: call?.context.sessionId ?? who.sessionId ?? null,
      on_behalf_of: call?.context.onBehalfOf ?? who.onBehalfOf ?? null,
      input,
      masked,
      input_digest:
        digest ?? (checked.ok || checked.json === undefined ? digestOfRaw(this.#masker, raw) : this.#masker.digestJson(checked.json)),
      call_digest: digest,
      history: outcome.recentDenies === null ? null : { recent_denies: outcome.recentDenies },
      result: recordResult(outcome.answer, decision),
      metrics: { timer_rego_query_eval_ns: outcome.evalNs },
    };
    // The hosts the policy read, from its own answer: one parser, in the policy (docs/contract.md §4b).
    const hosts = outcome.answer.destination_hosts;
    if (hosts !== undefined) record.destination_hosts = hosts;
    if (outcome.shadow !== undefined) record.shadow = outcome.shadow;
    if (outcome.recordState !== undefined) record.record_state = outcome.recordState;
    if (amendment !== undefined) {
      record.amended_from = amendment.from;
      record.amended_by = amendment.by;
    }
    return record;
  }

  /** What the decisions and records of bundle `version` share (one set per bundle in force). */
  #sharedOf(version: BundleVersion): BundleShared {
    let shared = this.#bundleShared;
    if (shared?.of !== version) {
      shared = {
        of: version,
        frozen: Object.freeze({ revision: version.revision, hash: version.hash }),
        bundles: withText({ [RECORD_BUNDLE_NAME]: version }),
      };
      this.#bundleShared = shared;
    }
    return shared;
  }

  /** What the store keeps of the decision: the deny history, and the pending approval with what its reviewer sees. */
  #storedDecision(
    { who, amendment, call }: DecisionContext,
    decision: Decision,
    record: DecisionEventRecord,
    nowMs: number,
  ): Mutable<StoredDecision> {
    const recordState = record.record_state;
    const callDigest = record.call_digest;
    // Optional fields set only when present (conditional spreads cost more than the rest of this object).
    const stored: Mutable<StoredDecision> = {
      id: decision.id,
      action: decision.action,
      escalated: decision.escalated,
      atMs: nowMs,
      approvers: decision.approvers,
    };
    // The adapter's own fail-closed denies are remembered but not counted (docs/contract.md §3).
    if (decision.action === "deny" && !countsTowardsEscalation(decision)) stored.countsTowardsEscalation = false;
    if (amendment !== undefined) {
      // The reviewer made this call, not the agent: nothing that becomes of it
      // (its deny, the rejection of its approval) is the agent's (docs/contract.md §6, amend).
      stored.countsTowardsEscalation = false;
      stored.amendment = {
        from: amendment.from,
        by: amendment.by,
        ...(call === undefined ? {} : { call: { tool: call.tool, arguments: call.arguments, context: call.context } }),
        decision,
      };
    }
    if (who.actorId !== undefined) stored.actorId = who.actorId;
    if (who.tenantId !== undefined) stored.tenantId = who.tenantId;
    if (callDigest !== null) stored.callDigest = callDigest;
    if (decision.action === "require_approval") {
      stored.approval = { status: "pending", expiresAtMs: nowMs + this.#ttlMs };
      // The arguments as the record holds them: masked like the record (docs/contract.md §7).
      const input = record.input as { arguments?: unknown } | null;
      stored.review = {
        tool: record.tool ?? "",
        environment: record.environment ?? "",
        arguments: input?.arguments ?? null,
        reasons: decision.reasons,
        bundle: decision.bundle,
        recentDenies: record.history?.recent_denies ?? null,
        // What an amendment of this call is decided with (docs/contract.md §6, amend).
        ...(call === undefined ? {} : { context: call.context }),
      };
      if (recordState !== undefined) stored.recordState = recordState;
    }
    return stored;
  }

  /**
   * No side effect without its evidence (docs/contract.md §7): when the record
   * cannot be written the call is denied, and a record of that deny is tried
   * too (it supersedes any record just written).
   */
  async #unrecorded(
    { policy }: DecisionContext,
    record: DecisionEventRecord,
    stored: StoredDecision,
    nowMs: number,
    error: unknown,
  ): Promise<DecideResult> {
    const cause = toError(error);
    safeLog(this.#log, { err: cause, decision_id: record.decision_id }, "decision could not be recorded; denying");
    const answer = adapterDeny(ADAPTER_REASON_CODES.recordUnavailable, `the call is denied: ${cause.message}`);
    const decision = this.#decision(record.decision_id, nowMs, answer, policy.version);
    // A record the sink refused as such (no canonical JSON form, e.g. a lone
    // surrogate in the call) is superseded without the call, so the deny
    // itself is still on file.
    const refusedAsIs = (cause as { code?: unknown }).code === "record_invalid";
    const { record_state: _bound, ...unbound } = record;
    // A deny binds no state (the stored row keeps it: it never changes).
    const superseding: DecisionEventRecord = {
      ...unbound,
      ...(refusedAsIs ? { input: null, masked: [] } : {}),
      result: { ...answer, reason: decision.reason },
    };
    await Promise.allSettled([
      this.#sink.write(superseding),
      this.#store.appendDecision({
        ...stored,
        action: "deny",
        escalated: false,
        countsTowardsEscalation: false,
        approvers: [],
        approval: undefined,
        review: undefined,
      }),
    ]);
    return { decision, call: undefined, cause };
  }

  /** Record, then store, then commit: the caller hears the decision only after both. */
  async #write(unit: DecisionUnit, made: MadeDecision): Promise<Decided> {
    const { record, stored, unrecorded } = made;
    let durable: Promise<unknown> | undefined;
    try {
      // The sink gives the record its place in the log now (records keep the
      // order of decisions); outside a store transaction its sync is awaited
      // after the unit, in #decide. Should that sync fail, the log is failed
      // for good and this decision is superseded by a deny.
      const written = unit.writeRecord(record);
      if (unit.recordsInTransaction) {
        await written;
      } else {
        written.catch(() => {});
        durable = written;
      }
      await unit.appendDecision(stored);
      await unit.commit();
    } catch (error) {
      // The store decides this call again (nothing of it was written).
      if (error instanceof UnitRetry) throw error;
      return { result: await unrecorded(error), unrecorded };
    }
    return this.#decided(made, durable);
  }

  /** A decision whose record and store writes are under way or done: what the caller hears, and the hooks' events. */
  #decided(made: MadeDecision, durable: Promise<unknown> | undefined): Decided {
    const { context, decision, record, stored, outcome, unrecorded } = made;
    // Kept for approval checks: require_approval decisions, and amended calls' (their amendment's evidence).
    if (decision.action === "require_approval" || record.amended_from !== undefined) this.#written?.remember(record);
    const { who } = context;
    const escalation: EscalationEvent | undefined =
      decision.escalated && this.#onEscalation !== undefined && who.actorId !== undefined && who.tenantId !== undefined
        ? { decision, actorId: who.actorId, tenantId: who.tenantId, recentDenies: outcome.recentDenies ?? 0 }
        : undefined;
    const approvalRequired: ApprovalRequiredEvent | undefined =
      decision.action === "require_approval" && this.#onApprovalRequired !== undefined && stored.review !== undefined
        ? {
            decision,
            tool: stored.review.tool,
            actorId: stored.actorId ?? "",
            tenantId: stored.tenantId ?? "",
            environment: stored.review.environment,
            arguments: stored.review.arguments,
            recentDenies: stored.review.recentDenies,
            expiresAt: new Date(stored.approval!.expiresAtMs).toISOString(),
          }
        : undefined;
    return { result: { decision, call: context.call }, durable, unrecorded, escalation, approvalRequired };
  }

  /**
   * A call that needs approval is bound to its record's state (docs/contract.md
   * §6): asked once here; an answer that cannot be trusted denies the call
   * with record_state_unavailable (the adapter's code: not counted towards
   * escalation).
   */
  async #bindRecordState(id: string, context: DecisionContext, outcome: Outcome): Promise<Outcome> {
    const reader = this.#recordState;
    const call = context.call;
    if (reader === undefined || call === undefined || outcome.answer.action !== "require_approval") return outcome;
    // Asked once per call, even when the store makes the decision again.
    context.recordStateReading ??= readRecordState(reader, call, this.#recordStateTimeoutMs);
    const reading = await context.recordStateReading;
    if (!reading.ok) {
      safeLog(this.#log, { decision_id: id, problem: reading.problem }, "record state unavailable; denying");
      return { ...outcome, answer: adapterDeny(ADAPTER_REASON_CODES.recordStateUnavailable, reading.problem) };
    }
    return reading.state === undefined ? outcome : { ...outcome, recordState: reading.state };
  }

  async #evaluate(unit: DecisionUnit, policy: ActivePolicy, id: string, call: VetoCall, callJson: string, nowMs: number): Promise<Outcome> {
    let recentDenies: number;
    try {
      const sinceMs = nowMs - policy.data.windowSeconds * 1000;
      recentDenies = await unit.countRecentDenies(call.context.actorId, call.context.tenantId, sinceMs);
    } catch (error) {
      if (error instanceof UnitRetry) throw error;
      safeLog(this.#log, { err: toError(error), decision_id: id }, "deny history unavailable; denying");
      return {
        answer: adapterDeny(ADAPTER_REASON_CODES.evaluationError, "the deny history is unavailable"),
        evalNs: 0,
        recentDenies: null,
      };
    }
    // Synchronous unless the module's instance must be made again (after a failure).
    const evaluation =
      policy.evaluator.evaluateCallNow(callJson, recentDenies) ?? (await policy.evaluator.evaluateCall(callJson, recentDenies));
    // The candidate sees the same call and history; its verdict is only recorded.
    const shadow = this.#shadow === undefined ? undefined : { shadow: await this.#shadow.evaluate(callJson, recentDenies) };
    return this.#outcomeOf(id, evaluation, recentDenies, shadow);
  }

  /** The policy's answer, or an evaluation_error deny when it gave none (logged). */
  #outcomeOf(id: string, evaluation: Evaluation, recentDenies: number, shadow: { shadow: ShadowVerdict } | undefined): Outcome {
    if (!evaluation.ok) {
      safeLog(this.#log, { err: evaluation.error, decision_id: id }, "policy evaluation failed; denying");
      return {
        answer: adapterDeny(ADAPTER_REASON_CODES.evaluationError, evaluation.error.message),
        evalNs: evaluation.evalNs,
        recentDenies,
        ...shadow,
      };
    }
    return { answer: evaluation.answer, evalNs: evaluation.evalNs, recentDenies, ...shadow };
  }

  #decision(id: string, nowMs: number, answer: PolicyAnswer, bundle: BundleVersion): Decision {
    // Frozen throughout (what deepFreeze would do, without walking it again):
    // a sealed answer's reasons and approvers already are, and are shared by
    // every decision that gets that answer; the bundle's version likewise.
    const sealed = isSealedAnswer(answer);
    return Object.freeze({
      id,
      action: answer.action,
      escalated: answer.escalated,
      reason: answer.reasons[0]?.message ?? "",
      reasons: sealed ? answer.reasons : Object.freeze(answer.reasons.map((r) => Object.freeze({ code: r.code, message: r.message }))),
      approvers: sealed ? answer.approvers : Object.freeze([...answer.approvers]),
      bundle: this.#sharedOf(bundle).frozen,
      timestamp: new Date(nowMs).toISOString(),
    });
  }
}
