/**
 * The parts of the policy's data document (docs/contract.md §2) the adapter
 * itself needs: the escalation window for deny history, tenant approvers,
 * sensitive fields for redaction and amount fields for input validation.
 * Defaults here mirror the defaults the Rego policy applies when data omits a
 * value. The shapes of the other parts the policy reads (tools, environments,
 * blocked_destinations, tenants' allowed_destinations, thresholds and limits)
 * are checked too: a document of the wrong shape (no veto.config wrapper, no
 * tools, environments or tenants, a threshold that is not a finite
 * non-negative number) is refused (data_unusable, naming the JSON path)
 * rather than silently read as "nothing configured" or "0" by the policy.
 */
import { deflateRawSync, inflateRawSync } from "node:zlib";
import { z } from "zod";
import { BundleLoadError } from "../common/errors.js";
import { foldKey } from "../common/text.js";

export const DEFAULT_WINDOW_SECONDS = 900;
/**
 * Deepest nesting of objects and arrays a data document may have (the
 * document itself is level 1): what every step after parsing (the schema,
 * serialization for the evaluator, the finite-number check) handles without
 * running out of stack, and the depth a signed data.json may have (signature.ts).
 */
export const MAX_DATA_DEPTH = 1000;
export const DEFAULT_AMOUNT_FIELDS = ["amount"];

const positiveNumber = z.number().positive().finite();
/** Thresholds and limits: a string or a negative number here would be read by the policy as 0 or "no limit". */
const nonNegativeNumber = z.number().min(0).finite();

const configSchema = z.looseObject({
  // Required: without them the policy denies every call (unknown_tool,
  // unknown_environment, unknown_tenant), which hides a mistyped document.
  tools: z.record(z.string(), z.looseObject({ kind: z.string() })),
  environments: z.array(z.string()),
  tenants: z.record(
    z.string(),
    z.looseObject({
      approvers: z.array(z.string()).optional(),
      allowed_destinations: z.array(z.string()).optional(),
      approval_threshold: nonNegativeNumber.optional(),
      max_amount: nonNegativeNumber.optional(),
    }),
  ),
  sensitive_fields: z.record(z.string(), z.array(z.string())).optional(),
  amount_fields: z.array(z.string()).optional(),
  blocked_destinations: z.array(z.string()).optional(),
  escalation: z
    .looseObject({ deny_threshold: nonNegativeNumber.optional(), window_seconds: positiveNumber.optional() })
    .optional(),
});

/** The whole document replaces the bundle's: the configuration sits under veto.config (docs/contract.md §2). */
const dataSchema = z.looseObject({
  veto: z.looseObject({ config: configSchema }),
});

/**
 * What is kept of a data document once read. Not the document itself: a
 * large one (100,000 tenants) costs tens of MB as JS objects, and nothing
 * needs them once the text is made; the policy gets the text.
 */
export interface PolicyData {
  /** The document's JSON text, made once here (for the evaluator's setData). */
  readonly text: DataText;
  readonly windowSeconds: number;
  readonly amountFields: readonly string[];
  /** The fold keys (common/text.ts) of every field named sensitive for any object, as the policy compares names; used to redact records. */
  readonly sensitiveFields: ReadonlySet<string>;
}

/** Documents whose text is longer than this are kept deflated once loaded (DataText.compact). */
const COMPACT_ABOVE_CHARS = 1024 * 1024;

const utf8Encoder = new TextEncoder();

/**
 * A data document's JSON text, as the policy gets it: its UTF-8 bytes. Kept
 * for as long as the bundle is in force, to load it again into a fresh
 * instance of the module (after a failed evaluation, or for the next bundle
 * from a bundle server). A large one is kept deflated (compact()): for
 * 100,000 tenants 15 MB of text become 1.5 MB, inflated again only when it
 * is loaded again.
 */
export class DataText {
  #text: string | undefined;
  #deflated: Buffer | undefined;
  /** The length of its UTF-8 bytes. */
  readonly byteLength: number;

  constructor(text: string) {
    this.#text = text;
    this.byteLength = Buffer.byteLength(text, "utf8");
  }

  /** Write its UTF-8 bytes into `target`, which is exactly byteLength long. */
  writeTo(target: Uint8Array): void {
    if (target.length !== this.byteLength) throw new Error(`the data document is ${this.byteLength} bytes, not ${target.length}`);
    if (this.#text !== undefined) {
      const { written } = utf8Encoder.encodeInto(this.#text, target);
      if (written !== this.byteLength) throw new Error("the data document did not fit in the module's memory");
      return;
    }
    const bytes = inflateRawSync(this.#deflated!);
    if (bytes.length !== this.byteLength) throw new Error("the data document inflated to another length than it had");
    target.set(bytes);
  }

  /** The text itself (inflated again when it is kept deflated). */
  toText(): string {
    if (this.#text !== undefined) return this.#text;
    const bytes = inflateRawSync(this.#deflated!);
    if (bytes.length !== this.byteLength) throw new Error("the data document inflated to another length than it had");
    return bytes.toString("utf8");
  }

  /** Its UTF-8 bytes in an ArrayBuffer of their own. */
  toArrayBuffer(): ArrayBuffer {
    const bytes = new Uint8Array(this.byteLength);
    this.writeTo(bytes);
    return bytes.buffer;
  }

  /**
   * Keep a large document deflated from now on, the text dropped. Done
   * synchronously (about 5 ms a MB): zlib's asynchronous form keeps the
   * input reachable until its stream's close event, which a busy process may
   * not reach for a long time. A failure to deflate leaves the text as it is.
   */
  compact(): void {
    const text = this.#text;
    if (text === undefined || text.length <= COMPACT_ABOVE_CHARS) return;
    try {
      this.#deflated = deflateRawSync(text, { level: 1 });
      this.#text = undefined;
    } catch {
      // Kept as text.
    }
  }

  /** Whether it is kept deflated (compact() done). */
  get compacted(): boolean {
    return this.#deflated !== undefined;
  }
}

/** dataSchema without the tenants, which tenantsLookRight checks by hand: zod copying 100,000 tenants took a second. */
const lightDataSchema = z.looseObject({
  veto: z.looseObject({ config: configSchema.extend({ tenants: z.unknown() }) }),
});

/** configSchema's rule for tenants, written out; false means "ask the schema". */
function tenantsLookRight(document: Record<string, unknown>): boolean {
  const veto = document["veto"] as Record<string, unknown> | undefined;
  const config = veto?.["config"] as Record<string, unknown> | undefined;
  const tenants = config?.["tenants"];
  if (tenants === null || typeof tenants !== "object" || Array.isArray(tenants)) return false;
  for (const key of Object.keys(tenants)) {
    const tenant: unknown = (tenants as Record<string, unknown>)[key];
    if (tenant === null || typeof tenant !== "object" || Array.isArray(tenant)) return false;
    for (const key of TENANT_STRING_LISTS) {
      const list: unknown = (tenant as Record<string, unknown>)[key];
      if (list === undefined) continue;
      if (!Array.isArray(list)) return false;
      for (const item of list) if (typeof item !== "string") return false;
    }
    for (const key of TENANT_NUMBERS) {
      const value: unknown = (tenant as Record<string, unknown>)[key];
      if (value !== undefined && !(typeof value === "number" && Number.isFinite(value) && value >= 0)) return false;
    }
  }
  return true;
}

/** The tenant fields configSchema wants as lists of strings. */
const TENANT_STRING_LISTS = ["approvers", "allowed_destinations"] as const;
/** The tenant fields configSchema wants as finite non-negative numbers. */
const TENANT_NUMBERS = ["approval_threshold", "max_amount"] as const;

export function readPolicyData(document: unknown, label: string): PolicyData {
  const isObject = document !== null && typeof document === "object" && !Array.isArray(document);
  // Serialized first: JSON.stringify walks the document natively, and its
  // text is what the policy is given, so the depth is measured on the text
  // (jsonNestsDeeperThan). A cycle or nesting deep enough to exhaust the stack
  // makes it throw; the walk below then says which.
  let json: string | undefined;
  let failure: unknown;
  if (isObject) {
    try {
      json = JSON.stringify(document);
    } catch (error) {
      failure = error;
    }
  }
  if (json === undefined ? isObject && nestsDeeperThan(document, MAX_DATA_DEPTH) : jsonNestsDeeperThan(json, MAX_DATA_DEPTH)) {
    throw new BundleLoadError("data_unusable", `data document ${label} is unusable: it nests objects and arrays deeper than ${MAX_DATA_DEPTH} levels (the limit), or refers to itself`);
  }
  const light = isObject && tenantsLookRight(document as Record<string, unknown>) ? lightDataSchema.safeParse(document) : undefined;
  const parsed = light?.success === true ? light : dataSchema.safeParse(document);
  if (!parsed.success || !isObject) {
    const detail = !isObject
      ? "it must be a JSON object"
      : lacksWrapper(document as Record<string, unknown>)
        ? 'it has no veto.config: the document replaces the bundle\'s data.json whole, so wrap the configuration as {"veto": {"config": {"tools": …, "environments": …, "tenants": …}}}'
        : z.prettifyError((parsed as { error: z.ZodError }).error);
    throw new BundleLoadError("data_unusable", `data document ${label} is unusable: ${detail}`);
  }
  try {
    // setData serializes with JSON.stringify: cycles and BigInt throw there, and
    // Infinity would silently become null, so both are refused up front.
    if (json === undefined) throw failure;
    // JSON.stringify writes a non-finite number as null: text without a null has none.
    if (json.includes("null")) assertFiniteNumbers(document);
  } catch (error) {
    throw new BundleLoadError("data_unusable", `data document ${label} is unusable: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const config = parsed.data.veto.config;
  // veto.derived is the adapter's to fill (docs/contract.md §2): what a document holds there never
  // reaches the module, whatever the module and SDK can remove after loading (evaluator.ts storeDerived).
  const veto = (document as { veto: Record<string, unknown> }).veto;
  if (Object.hasOwn(veto, "derived")) {
    const { derived: _reserved, ...rest } = veto;
    json = JSON.stringify({ ...(document as Record<string, unknown>), veto: rest });
  }
  return {
    text: new DataText(json),
    windowSeconds: config.escalation?.window_seconds ?? DEFAULT_WINDOW_SECONDS,
    amountFields: config.amount_fields ?? DEFAULT_AMOUNT_FIELDS,
    sensitiveFields: new Set(Object.values(config.sensitive_fields ?? {}).flat().map(foldKey)),
  };
}

/** Whether the document lacks the veto.config object (a configuration given bare, or a typo in the wrapper). */
function lacksWrapper(document: Record<string, unknown>): boolean {
  const veto = document["veto"];
  if (veto === null || typeof veto !== "object" || Array.isArray(veto)) return true;
  const config = (veto as Record<string, unknown>)["config"];
  return config === null || typeof config !== "object" || Array.isArray(config);
}

/** Throws naming the first number that is not finite ("data.a.b"); the path is built only then. */
function assertFiniteNumbers(root: unknown): void {
  const keys: string[] = [];
  const walk = (value: unknown): void => {
    if (typeof value === "number") {
      if (!Number.isFinite(value)) throw new Error(`${["data", ...keys].join(".")} is not a finite number`);
      return;
    }
    if (value === null || typeof value !== "object") return;
    for (const key of Object.keys(value)) {
      keys.push(key);
      walk((value as Record<string, unknown>)[key]);
      keys.pop();
    }
  };
  walk(root);
}

/** Whether objects and arrays in `root` nest deeper than `max` levels (`root` itself is level 1). Iterative: any depth is safe. */
export function nestsDeeperThan(root: unknown, max: number): boolean {
  const stack: { value: unknown; depth: number }[] = [{ value: root, depth: 1 }];
  // The deepest level each object was reached at: an object shared by two
  // parents is walked again only from a deeper level, so a cycle ends as too
  // deep (it is) and no walk repeats.
  const reached = new Map<object, number>();
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { value, depth } = item;
    if (value === null || typeof value !== "object") continue;
    if (depth > max) return true;
    if ((reached.get(value) ?? 0) >= depth) continue;
    reached.set(value, depth);
    for (const child of Object.values(value)) if (child !== null && typeof child === "object") stack.push({ value: child, depth: depth + 1 });
  }
  return false;
}

/**
 * Whether JSON text nests arrays and objects deeper than `max` levels (the
 * outermost value is level 1): nestsDeeperThan of the value the text is, by
 * one scan of the text. Text shorter than 2 * max characters cannot.
 */
export function jsonNestsDeeperThan(json: string, max: number): boolean {
  if (json.length <= 2 * max) return false;
  let depth = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 0x22) {
      // A string: skip to its closing quote.
      const end = jsonStringEnd(json, i);
      if (end < 0) return false;
      i = end - 1;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

/**
 * The index just past the JSON string whose opening quote is at `start`
 * (the next quote not escaped, that is not after an odd run of
 * backslashes); -1 when the text ends first. Found with indexOf, which
 * skips a string's characters many times faster than a loop over them: the
 * text of a large document is mostly strings.
 */
export function jsonStringEnd(text: string, start: number): number {
  for (let from = start + 1; ; ) {
    const quote = text.indexOf('"', from);
    if (quote < 0) return -1;
    let backslash = quote - 1;
    while (backslash > start && text.charCodeAt(backslash) === 0x5c) backslash--;
    if ((quote - 1 - backslash) % 2 === 0) return quote + 1;
    from = quote + 1;
  }
}
