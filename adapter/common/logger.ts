/**
 * The adapter's own error log on the paths that deny or refuse: logging must
 * never change the outcome. A logger whose destination fails (a full disk:
 * pino's synchronous destination throws, or emits an 'error' nobody handles)
 * is ignored here, so the deny or refusal stands as it was decided.
 */
import type { Logger } from "pino";

export function safeLog(log: Pick<Logger, "error">, fields: object, message: string): void {
  try {
    log.error(fields, message);
  } catch {
    // The outcome stands; the log line is lost.
  }
}
