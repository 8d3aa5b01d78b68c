/**
 * Decision records (contract section 7): one JSON object per decision,
 * approval and rejection, written through a RecordSink before the call
 * returns. Field names follow OPA's decision-log event where one exists
 * (decision_id, timestamp, path, result, bundles, masked, metrics).
 */
import type { Logger } from "pino";
import type { BundleVersion, Decision, Reason } from "./decision.js";

export const REDACTED = "[REDACTED]";
export const RECORD_BUNDLE_NAME = "crm";

interface RecordBase {
  readonly decision_id: string;
  /** When this record's event happened, ISO 8601 UTC. */
  readonly timestamp: string;
  /** The policy's entrypoint. */
  readonly path: string;
  /** OPA's shape, `{name: {revision}}`, with the version hash beside the revision. */
  readonly bundles: { readonly [name: string]: BundleVersion };
  readonly actor_id: string | null;
  readonly tenant_id: string | null;
  /** Digest of tool, arguments and context: the call an approval is bound to. */
  readonly call_digest: string | null;
}

export interface DecisionEventRecord extends RecordBase {
  readonly type: "decision";
  readonly tool: string | null;
  readonly environment: string | null;
  readonly source_system: string | null;
  readonly request_id: string | null;
  readonly session_id: string | null;
  readonly on_behalf_of: string | null;
  /** The call's arguments with sensitive values replaced by "[REDACTED]". */
  readonly arguments: unknown;
  /** JSON pointers of the values replaced in `arguments`. */
  readonly masked: readonly string[];
  /** Digest of the whole call as received (canonical JSON), or null when it was not JSON. */
  readonly input_digest: string | null;
  readonly history: { readonly recent_denies: number } | null;
  readonly result: {
    readonly action: Decision["action"];
    readonly escalated: boolean;
    readonly reason: string;
    readonly reasons: readonly Reason[];
    readonly approvers: readonly string[];
  };
  readonly metrics: { readonly timer_rego_query_eval_ns: number };
}

export interface ApprovalEventRecord extends RecordBase {
  readonly type: "approval" | "rejection";
  readonly reviewer_id: string;
  readonly note: string | null;
  readonly result: { readonly approval: "approved" | "rejected" };
}

export type VetoRecord = DecisionEventRecord | ApprovalEventRecord;

/**
 * Where records go. `write` resolves only once the record is as durable as
 * the sink can make it; if it rejects, the call it records fails closed
 * (deny with record_unavailable, or the approval is refused).
 */
export interface RecordSink {
  write(record: VetoRecord): Promise<void>;
  close?(): Promise<void>;
}

/**
 * The default sink: one pino log line per record, message "veto decision" /
 * "veto approval" / "veto rejection". As durable as the logger's destination
 * (pino's default stdout destination writes synchronously).
 */
export class PinoRecordSink implements RecordSink {
  readonly #log: Logger;

  constructor(logger: Logger) {
    this.#log = logger.child({ component: "records" });
  }

  async write(record: VetoRecord): Promise<void> {
    this.#log.info(record, `veto ${record.type}`);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.#log.flush(() => resolve()));
  }
}

const MAX_SUMMARY_STRING = 256;
const MAX_SUMMARY_ITEMS = 50;

/**
 * A copy of `value` fit for a record: values under any sensitive key (lower-cased names) replaced
 * (at any depth, whatever the object: over-redacting is the safe side), long
 * strings and arrays shortened.
 */
export function summarizeArguments(
  value: unknown,
  sensitiveFields: ReadonlySet<string>,
): { summary: unknown; masked: string[] } {
  const masked: string[] = [];
  const walk = (v: unknown, pointer: string): unknown => {
    if (typeof v === "string") {
      return v.length > MAX_SUMMARY_STRING ? `${v.slice(0, MAX_SUMMARY_STRING)}…(${v.length} chars)` : v;
    }
    if (v === null || typeof v !== "object") return v;
    if (Array.isArray(v)) {
      const items = v.slice(0, MAX_SUMMARY_ITEMS).map((item, i) => walk(item, `${pointer}/${i}`));
      if (v.length > MAX_SUMMARY_ITEMS) items.push(`…(${v.length} items)`);
      return items;
    }
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(v)) {
      const childPointer = `${pointer}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`;
      let copy: unknown;
      if (sensitiveFields.has(key.toLowerCase())) {
        masked.push(childPointer);
        copy = REDACTED;
      } else {
        copy = walk(child, childPointer);
      }
      Object.defineProperty(out, key, { value: copy, enumerable: true, writable: true, configurable: true });
    }
    return out;
  };
  return { summary: walk(value, "/arguments"), masked };
}
