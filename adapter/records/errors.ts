/**
 * Typed errors of the decision log. Every one carries a stable `code`; the
 * ones about a log file also name the file and, where there is one, the line.
 */

import { VetoError, type DecisionLogErrorCode } from "../common/errors.js";

export type { DecisionLogErrorCode };

/** The decision log's errors are VetoErrors, so one `instanceof VetoError` catches every error of the package. */
export class DecisionLogError extends VetoError {
  override name = "DecisionLogError";
  declare readonly code: DecisionLogErrorCode;

  constructor(code: DecisionLogErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/**
 * A value that has no canonical JSON form (RFC 8785): a non-finite number,
 * undefined, a function, a symbol, a bigint, a lone surrogate, a cycle, or an
 * object that is not a plain object or array. `pointer` is the JSON pointer of
 * the offending value ("" for the value itself).
 */
export class CanonicalJsonError extends DecisionLogError {
  override name = "CanonicalJsonError";
  readonly pointer: string;

  constructor(pointer: string, problem: string) {
    super("not_canonical_json", `${pointer === "" ? "value" : pointer}: ${problem}`);
    this.pointer = pointer;
  }
}

/**
 * The record was not written and, for `record_unavailable`, never will be by
 * this sink: a write or sync failed earlier (see `cause`) and the sink is
 * failed for good. The call it records must fail closed (docs/contract.md §7).
 * `record_invalid` means only this record was refused (it has no canonical
 * JSON form or uses a field the log reserves); the sink stays usable.
 */
export class RecordUnavailableError extends DecisionLogError {
  override name = "RecordUnavailableError";

  constructor(message: string, options: { cause?: unknown; code?: "record_unavailable" | "record_invalid" } = {}) {
    super(options.code ?? "record_unavailable", message, { cause: options.cause });
  }
}

/** Another live process (or this one) already writes this log. */
export class LogLockedError extends DecisionLogError {
  override name = "LogLockedError";
  readonly lockPath: string;
  readonly pid: number | null;

  constructor(lockPath: string, pid: number | null, message: string) {
    super("log_locked", message);
    this.lockPath = lockPath;
    this.pid = pid;
  }
}

/**
 * The log is damaged somewhere other than a torn final line and will not be
 * opened for writing. `line` is 1-based (0: the file as a whole); `reason`
 * is verify's deterministic text, e.g. "line 7: hash mismatch".
 */
export class LogCorruptError extends DecisionLogError {
  override name = "LogCorruptError";
  readonly file: string;
  readonly line: number;
  readonly reason: string;

  constructor(file: string, line: number, reason: string) {
    super("log_corrupt", `${file}: ${reason}`);
    this.file = file;
    this.line = line;
    this.reason = reason;
  }
}
