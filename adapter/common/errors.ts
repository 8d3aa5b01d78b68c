/**
 * Typed errors. Every error the adapter throws or rejects with is a VetoError
 * carrying a stable, machine-readable `code`; messages say what to fix.
 */
import type { Decision } from "./decision.js";

export type VetoErrorCode =
  | "invalid_options"
  | "bundle_unusable"
  | "bundle_signature"
  | "bundle_rollback"
  | "data_unusable"
  | "closed"
  | "denied"
  | "record_unavailable"
  | ApprovalErrorCode
  | DecisionLogErrorCode
  | PostgresErrorCode;

/** Codes of the decision log's errors (DecisionLogError, records/errors.ts). */
export type DecisionLogErrorCode =
  | "invalid_options"
  | "record_unavailable"
  | "record_invalid"
  | "log_locked"
  | "log_corrupt"
  | "not_canonical_json"
  /** The log holds signed checkpoints and was opened without its signing key. */
  | "checkpoint_key_required";

/** Codes of the PostgreSQL backend's errors (PostgresStoreError, postgres/connection.ts). */
export type PostgresErrorCode =
  | "schema_not_migrated"
  | "migration_changed"
  | "migrations_unreadable"
  | "connection_unavailable"
  /** The schema holds migrations this code does not know (a newer release migrated it). */
  | "schema_newer";

export type ApprovalErrorCode =
  | "unknown_decision"
  | "approval_not_required"
  | "not_an_approver"
  | "self_approval"
  | "already_answered"
  | "approval_expired"
  | "approval_rejected"
  | "approval_timeout"
  | "approval_aborted"
  | "call_mismatch"
  | "approval_unverified"
  /** The approved call was already claimed for execution (use-once, docs/contract.md §6). */
  | "already_executed"
  /** The target record's state is not the one the call was approved at, or could not be read (docs/contract.md §6). */
  | "record_changed"
  /** An approver amended the call; the amended call is a new decision (docs/contract.md §6, amend). */
  | "amended"
  /** The decision cannot be amended (no context kept with it, or arguments that are not an object). */
  | "not_amendable";

export class VetoError extends Error {
  override name = "VetoError";
  readonly code: VetoErrorCode;

  constructor(code: VetoErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** The decision log's errors are VetoErrors, so one `instanceof VetoError` catches every error of the package. */
export class DecisionLogError extends VetoError {
  override name = "DecisionLogError";
  declare readonly code: DecisionLogErrorCode;

  constructor(code: DecisionLogErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/**
 * A value that has no canonical JSON form (common/canonical-json.ts): a
 * non-finite number, undefined, a function, a symbol, a bigint, a lone
 * surrogate, a cycle, or an object that is not a plain object or array.
 * `pointer` is the JSON pointer of the offending value ("" for the value
 * itself).
 */
export class CanonicalJsonError extends DecisionLogError {
  override name = "CanonicalJsonError";
  readonly pointer: string;

  constructor(pointer: string, problem: string) {
    super("not_canonical_json", `${pointer === "" ? "value" : pointer}: ${problem}`);
    this.pointer = pointer;
  }
}

/** Programmer misuse: bad options or arguments to the adapter's own API. */
export class VetoOptionsError extends VetoError {
  override name = "VetoOptionsError";
  readonly issues: readonly string[];

  constructor(message: string, issues: readonly string[] = [], options?: { cause?: unknown }) {
    super("invalid_options", message, options);
    this.issues = issues;
  }
}

/** The bundle (or the data document replacing its data) cannot be used. */
export class BundleLoadError extends VetoError {
  override name = "BundleLoadError";

  constructor(code: "bundle_unusable" | "data_unusable", message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** What a bundle signature check found wrong; `file` names the file when one is to blame. */
export type BundleSignatureCheck =
  | "unsigned"
  | "signatures_file"
  | "token"
  | "algorithm"
  | "signature"
  | "scope"
  | "file_unlisted"
  | "file_missing"
  | "file_hash"
  | "hash_algorithm";

/**
 * A verification key is configured and the bundle's signature does not prove
 * it is exactly what was signed: the bundle is refused before it is loaded.
 */
export class BundleSignatureError extends VetoError {
  override name = "BundleSignatureError";
  readonly check: BundleSignatureCheck;
  readonly file: string | undefined;

  constructor(check: BundleSignatureCheck, message: string, options?: { file?: string; cause?: unknown }) {
    super(
      "bundle_signature",
      `bundle signature check failed (${check}): ${message}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.check = check;
    this.file = options?.file;
  }
}

/**
 * Rollback protection (`bundleRollback`) refused the bundle: its signature
 * carries no usable issue time (`iat`), or one that is not after the floor —
 * `minIssuedAt`, or the issue time of the bundle in force.
 */
export class BundleRollbackError extends VetoError {
  override name = "BundleRollbackError";
  /** The bundle's signed `iat` (seconds since the epoch), or null when it has none usable. */
  readonly issuedAt: number | null;
  /** The issue time it had to be at or after (minIssuedAt) or strictly after (the bundle in force); null when there was none. */
  readonly floor: number | null;

  constructor(message: string, issuedAt: number | null, floor: number | null) {
    super("bundle_rollback", `bundle refused by rollback protection: ${message}`);
    this.issuedAt = issuedAt;
    this.floor = floor;
  }
}

/** Thrown by a guarded tool when the call was denied; carries the decision. */
export class VetoDeniedError extends VetoError {
  override name = "VetoDeniedError";
  readonly decision: Decision;

  /** `cause`: for a record_unavailable deny, the error that kept the record from being written. */
  constructor(decision: Decision, options?: { cause?: unknown }) {
    super("denied", `call denied: ${decision.reason}`, options);
    this.decision = decision;
  }
}

/** An approval, rejection or wait that was refused, with the reason as `code`. */
export class ApprovalError extends VetoError {
  override name = "ApprovalError";
  readonly decisionId: string;
  /**
   * For code "amended": the amended call (deep-frozen, exactly as decided) and
   * its decision. The original call never runs; run this one only as its
   * decision allows (guard does).
   */
  readonly amended?: {
    /** The approver who amended it. */
    readonly by?: string;
    readonly decision: import("./decision.js").Decision;
    readonly call: { readonly tool: string; readonly arguments: unknown; readonly context: unknown };
  };

  constructor(
    code: ApprovalErrorCode | "record_unavailable" | "closed",
    decisionId: string,
    message: string,
    options?: { cause?: unknown; amended?: ApprovalError["amended"] },
  ) {
    super(code, message, options);
    this.decisionId = decisionId;
    if (options?.amended !== undefined) this.amended = options.amended;
  }
}

/** The adapter was closed; no further decisions are made. */
export class VetoClosedError extends VetoError {
  override name = "VetoClosedError";

  constructor() {
    super("closed", "this veto instance was closed; create a new one with createVeto()");
  }
}

/**
 * The WASM SDK throws strings and plain objects; turn whatever was thrown into
 * an Error so causes always have a stack and a message.
 */
export function toError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (typeof thrown === "string") return new Error(thrown);
  if (thrown !== null && typeof thrown === "object" && "message" in thrown) {
    return new Error(String(thrown.message));
  }
  return new Error(`non-error thrown: ${String(thrown)}`);
}

/**
 * Why JSON.parse refused some text, without any of the text. V8 quotes a
 * window of the input in some messages ("Unexpected token 'x', "..." is not
 * valid JSON"); passed on, that would put unmasked input into records and
 * logs. Messages that only give a position are kept as they are.
 */
export function jsonSyntaxProblem(thrown: unknown): string {
  const message = toError(thrown).message;
  if (message.startsWith("Unexpected token")) return "Unexpected token: a character JSON does not allow there";
  // Grammar in single quotes ("Expected ',' or '}'") is V8's own; a double quote may open a window of the input.
  return message.includes('"') ? "not JSON text" : message;
}
