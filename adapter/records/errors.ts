/**
 * Typed errors of the decision log. Every one carries a stable `code`; the
 * ones about a log file also name the file and, where there is one, the line.
 */

import { CanonicalJsonError, DecisionLogError, type DecisionLogErrorCode } from "../common/errors.js";

export type { DecisionLogErrorCode };
// Defined with the shared vocabulary: canonical JSON (common/canonical-json.ts) throws one.
export { CanonicalJsonError, DecisionLogError };

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
