/**
 * Decision records (docs/contract.md §7): one JSON object per decision,
 * approval and rejection, written through a RecordSink before the call
 * returns. Field names follow OPA's decision-log event where one exists
 * (decision_id, timestamp, path, result, bundles, masked, metrics).
 */
import * as nodeCrypto from "node:crypto";
import { createHash, createHmac } from "node:crypto";
import type { Logger } from "pino";
import { DIGEST_READING, canonicalJson } from "../common/canonical-json.js";
import { callSchema } from "../call/input.js";
import { foldKey } from "../common/text.js";
import type { VetoRecord } from "./schema.js";

export const RECORD_BUNDLE_NAME = "crm";

/** crypto.hash (Node 20.12+, one call, no Hash object) where there is one. */
const oneShotHash = (nodeCrypto as { hash?: (algorithm: string, data: string, encoding: "hex") => string }).hash;
const sha256Hex = (text: string): string =>
  oneShotHash !== undefined ? oneShotHash("sha256", text, "hex") : createHash("sha256").update(text, "utf8").digest("hex");

// The record types are inferred from the one record schema (schema.ts), which replay parses with.
export type { AmendmentEventRecord, ApprovalEventRecord, DecisionEventRecord, ExecutionEventRecord, VetoRecord } from "./schema.js";

/**
 * Where records go. `write` resolves only once the record is as durable as
 * the sink can make it; if it rejects, the call it records fails closed
 * (deny with record_unavailable, or the approval is refused). A
 * FileDecisionLog (adapter/records/file) is one: pass it as `recordSink`.
 */
export interface RecordSink {
  /** What it resolves with is ignored (FileDecisionLog resolves with where the record went). */
  write(record: VetoRecord): Promise<unknown>;
  close?(): Promise<void>;
}

/**
 * One pino log line per record, message "veto decision" / "veto approval" /
 * "veto rejection", through a logger of your own. Not createVeto's default
 * and not evidence: a logger reports no failed write (pino drops lines on a
 * broken pipe), so a record lost this way does not deny its call. Use
 * FdRecordSink (the default: the same lines on stdout, acknowledged), a
 * FileDecisionLog or the PostgreSQL records where records are evidence
 * (docs/contract.md §7).
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

/**
 * Keys whose values never get masked: the contract's own fields (callSchema's,
 * docs/contract.md §1), which the policy and the adapter read. Their children can be.
 */
export const CONTRACT_KEYS: Readonly<Record<string, ReadonlySet<string>>> = {
  "": new Set(Object.keys(callSchema.shape)),
  "/arguments": new Set(Object.keys(callSchema.shape.arguments.shape)),
  "/context": new Set(Object.keys(callSchema.shape.context.shape)),
};

/**
 * Digests for records (sensitive values, and the call and input digests,
 * which would otherwise let a reader test guesses of a masked value) of a
 * value's canonical JSON:
 * "hmac-sha256:<hex>" with a deployment key (the same value gives the same
 * digest across processes and restarts, and only key holders can test a
 * guess), or "sha256:<hex>" without one (anyone can test a guess: fine for
 * high-entropy values, weak for short ones such as a stage name).
 */
export class RecordMasker {
  readonly #key: Uint8Array | undefined;

  constructor(key?: string | Uint8Array) {
    this.#key = typeof key === "string" ? new TextEncoder().encode(key) : key;
  }

  get keyed(): boolean {
    return this.#key !== undefined;
  }

  /** Throws CanonicalJsonError for a value with no canonical JSON form (common/canonical-json.ts's DIGEST_READING). */
  digest(value: unknown): string {
    return this.digestJson(canonicalJson(value, DIGEST_READING));
  }

  /** The digest of a value whose canonical JSON is already at hand (checkCall's `json`). */
  digestJson(text: string): string {
    if (this.#key === undefined) return `sha256:${sha256Hex(text)}`;
    return `hmac-sha256:${createHmac("sha256", this.#key).update(text, "utf8").digest("hex")}`;
  }

  /** The digest of {tool, arguments, context} that an approval is bound to and records carry as `call_digest`. */
  callDigest(call: { readonly tool: unknown; readonly arguments: unknown; readonly context: unknown }): string {
    return this.digest({ tool: call.tool, arguments: call.arguments, context: call.context });
  }

  /**
   * A copy of `input` (the call as received, or as much of it as is JSON) fit
   * for a record and for replay: the value under every key named sensitive
   * (`sensitiveFields` holds fold keys, common/text.ts: names match as the policy
   * matches them; any depth, whatever the object: over-masking is the safe
   * side) replaced by its digest, keys kept so the policy's
   * field checks still work. The contract's own fields (tool, arguments.amount,
   * context.actorId, ...) are never masked themselves. `masked` lists the JSON
   * pointers replaced, rooted at the record (`/input/arguments/changes/ssn`).
   */
  maskInput(input: unknown, sensitiveFields: ReadonlySet<string>): { input: unknown; masked: string[] } {
    // Most calls hold nothing to mask: then a frozen input (checkCall's
    // snapshot) is recorded as it is, without a copy.
    if (Object.isFrozen(input) && !hasMaskable(input, sensitiveFields, "")) return { input, masked: [] };
    const masked: string[] = [];
    const walk = (v: unknown, pointer: string): unknown => {
      if (v === null || typeof v !== "object") return v;
      if (Array.isArray(v))
        return v.map((item: unknown, i) => (item === null || typeof item !== "object" ? item : walk(item, `${pointer}/${i}`)));
      const protectedKeys = CONTRACT_KEYS[pointer];
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(v)) {
        const child: unknown = (v as Record<string, unknown>)[key];
        let copy: unknown;
        if (sensitiveFields.has(foldedKey(key)) && protectedKeys?.has(key) !== true) {
          masked.push(`/input${pointer}/${pointerToken(key)}`);
          copy = this.digest(child);
        } else {
          // A plain value is its own copy: no pointer to make for it.
          copy = child === null || typeof child !== "object" ? child : walk(child, `${pointer}/${pointerToken(key)}`);
        }
        // "__proto__" as an own member, not the prototype (an unchecked input may carry one).
        if (key === "__proto__") Object.defineProperty(out, key, { value: copy, enumerable: true, writable: true, configurable: true });
        else out[key] = copy;
      }
      return out;
    };
    return { input: walk(input, ""), masked };
  }
}

/** A key as a JSON pointer's reference token (RFC 6901: "~" as "~0", "/" as "~1"). */
function pointerToken(key: string): string {
  return key.includes("~") || key.includes("/") ? key.replaceAll("~", "~0").replaceAll("/", "~1") : key;
}

/** Fold keys of keys, remembered: field names repeat from call to call. Bounded; cleared when full. */
const foldedKeys = new Map<string, string>();
function foldedKey(key: string): string {
  let folded = foldedKeys.get(key);
  if (folded === undefined) {
    if (foldedKeys.size >= 4096) foldedKeys.clear();
    folded = foldKey(key);
    foldedKeys.set(key, folded);
  }
  return folded;
}

/** Whether maskInput would replace anything in `v` (the same walk, without copying). */
function hasMaskable(v: unknown, sensitiveFields: ReadonlySet<string>, pointer: string): boolean {
  if (v === null || typeof v !== "object") return false;
  if (Array.isArray(v)) {
    for (const item of v) if (hasMaskable(item, sensitiveFields, "[]")) return true;
    return false;
  }
  const protectedKeys = CONTRACT_KEYS[pointer];
  for (const key of Object.keys(v)) {
    if (sensitiveFields.has(foldedKey(key)) && protectedKeys?.has(key) !== true) return true;
    // Below the contract's own objects no key is protected ("[]": none).
    const child = (v as Record<string, unknown>)[key];
    if (child !== null && typeof child === "object" && hasMaskable(child, sensitiveFields, pointer === "" ? `/${key}` : "[]")) return true;
  }
  return false;
}
