/**
 * The input contract (docs/contract.md §1). Two steps, both ending in a value,
 * never an exception:
 *  1. `snapshotCall` copies what the agent sent into fresh plain JSON values,
 *     enforcing the size and depth limits and refusing prototype-pollution
 *     keys and anything JSON cannot carry (Infinity, functions, cycles...).
 *     The copy is what gets decided, digested, recorded and handed to the tool.
 *  2. `callSchema` (zod, strict) checks the contract's types on that copy.
 */
import { z } from "zod";
import { canonicalJson, loneSurrogateAt, rememberRecent } from "../common/canonical-json.js";
import { foldKey, isBlank } from "../common/text.js";

export interface InputLimits {
  /** Largest call, in UTF-8 bytes of its JSON text. */
  readonly maxInputBytes: number;
  /** Deepest nesting of objects and arrays; the call object itself is depth 1. */
  readonly maxDepth: number;
}

export const DEFAULT_INPUT_LIMITS: InputLimits = { maxInputBytes: 64 * 1024, maxDepth: 12 };

/** Keys that could reach Object.prototype through a careless merge downstream. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

/** Blank: nothing but white space, default-ignorable and control characters (common/text.ts, docs/contract.md §9). */
const nonBlank = z.string().refine((s) => !isBlank(s), { message: "must not be blank" });
const optionalString = z.string().optional();

export const callSchema = z.strictObject({
  tool: nonBlank,
  arguments: z.looseObject({
    object: optionalString,
    recordId: optionalString,
    tenantId: optionalString,
    destination: optionalString,
    changes: z.record(z.string(), z.unknown()).optional(),
    fields: z.array(z.string()).optional(),
    amount: z.number().optional(),
  }),
  context: z.looseObject({
    actorId: nonBlank,
    tenantId: nonBlank,
    environment: nonBlank,
    reason: optionalString,
    sourceSystem: optionalString,
    requestId: optionalString,
    sessionId: optionalString,
    onBehalfOf: optionalString,
  }),
});

/** A call that passed validation. */
export type VetoCall = z.infer<typeof callSchema>;
export type CallArguments = VetoCall["arguments"];
export type CallContext = VetoCall["context"];

export type CheckedInput =
  | { readonly ok: true; readonly call: VetoCall; readonly json: string }
  | { readonly ok: false; readonly message: string; readonly partial: unknown; readonly json?: string };

type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

class InputRefused extends Error {}

/** String.prototype.isWellFormed (Node 20; not in the ES2022 lib types): no lone surrogate. */
const isWellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/**
 * A string with a lone surrogate has no UTF-8 form: the policy's JSON parser
 * refuses its escape, and a record could not carry it. Refused up front.
 */
const notUnicode = (what: string): InputRefused =>
  new InputRefused(`${what} not well-formed Unicode (it holds a lone surrogate, which JSON text in UTF-8 cannot carry)`);

function describePath(path: string): string {
  return path === "" ? "the call" : path;
}

/** A JSON-path-like name for error messages, built only when one is needed. */
function pathOf(keys: readonly (string | number)[]): string {
  let path = "";
  for (const key of keys) path = typeof key === "number" ? `${path}[${key}]` : path === "" ? key : `${path}.${key}`;
  return path;
}

const byKey = (a: readonly [string, unknown], b: readonly [string, unknown]): number => (a[0] < b[0] ? -1 : 1);

/**
 * Objects up to this many members are put in key order by an insertion sort
 * in place, on the two arrays of names and twins: Array.prototype.sort copies
 * its array and takes pairs, several allocations per object of every call.
 */
const SMALL_OBJECT = 24;

/** Whether V8 would list `key` before the other keys of an object, in numeric order (an array index). */
function isArrayIndex(key: string): boolean {
  const c = key.charCodeAt(0);
  if (c < 48 || c > 57) return false;
  return key === String(Number(key) >>> 0) && key !== "4294967295";
}

/**
 * Set `key` on an object this module made. Assignment is several times
 * faster than defineProperty, and safe when Object.prototype has no property
 * of that name: then no setter can be reached ("__proto__" is refused before).
 */
function put(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key in Object.prototype) Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/**
 * Copy `raw` into plain, frozen JSON values within the limits, and make its
 * canonical JSON (common/canonical-json.ts: keys sorted by UTF-16 code
 * units) in the same pass, so nothing downstream serializes the call again:
 * the digests hash this text and the evaluator hands it to the policy.
 * Throws InputRefused with a message naming the offending path.
 *
 * The copy keeps the keys in the order they arrived (it is what a guarded
 * tool receives) and is frozen as it is built: it is what gets decided,
 * digested and recorded, and nothing may change it afterwards. Beside it a
 * twin with every object's keys in sorted order is built, whose
 * JSON.stringify is the canonical text (V8's native serializer, several
 * times faster than writing it member by member); objects with array-index
 * keys, which V8 always lists first, take canonicalJson instead.
 */
function snapshot(raw: unknown, limits: InputLimits): { value: JsonValue; json: string } {
  const max = limits.maxInputBytes;
  const maxDepth = limits.maxDepth;
  // A lower bound of the JSON size, so far-over inputs stop early.
  let bytes = 0;
  const tooLarge = (): InputRefused => new InputRefused(`the call is larger than ${max} bytes`);
  const keys: (string | number)[] = [];
  // The sorted twin of the value copy() returned last.
  let twin: unknown;
  let indexKeys = false;

  const copy = (value: unknown, depth: number): JsonValue => {
    switch (typeof value) {
      case "string":
        if ((bytes += value.length + 2) > max) throw tooLarge();
        if (!isWellFormed(value)) throw notUnicode(`${describePath(pathOf(keys))} is`);
        twin = value;
        return value;
      case "boolean":
        if ((bytes += 4) > max) throw tooLarge();
        twin = value;
        return value;
      case "number":
        if (!Number.isFinite(value)) throw new InputRefused(`${describePath(pathOf(keys))} is not a finite number`);
        if ((bytes += 1) > max) throw tooLarge();
        twin = value;
        return value;
      case "object":
        break;
      default:
        throw new InputRefused(`${describePath(pathOf(keys))} is a ${typeof value}, which JSON cannot carry`);
    }
    if (value === null) {
      if ((bytes += 4) > max) throw tooLarge();
      twin = null;
      return null;
    }
    if (depth >= maxDepth) {
      throw new InputRefused(`${describePath(pathOf(keys))} nests deeper than ${maxDepth} levels`);
    }
    if ((bytes += 2) > max) throw tooLarge();
    if (Array.isArray(value)) {
      const n = value.length;
      const out: JsonValue[] = new Array<JsonValue>(n);
      let twins: unknown[] | undefined;
      for (let i = 0; i < n; i++) {
        const item: unknown = value[i];
        if (item === undefined) throw new InputRefused(`${pathOf(keys)}[${i}] is undefined`);
        keys.push(i);
        const copied = copy(item, depth + 1);
        keys.pop();
        out[i] = copied;
        // The copy is its own twin until an item's twin differs from its copy.
        if (twins === undefined && twin !== copied) twins = out.slice(0, i);
        twins?.push(twin);
      }
      twin = twins ?? out;
      return Object.freeze(out);
    }
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new InputRefused(`${describePath(pathOf(keys))} is not a plain JSON object`);
    }
    const out: Record<string, JsonValue> = {};
    // The members' names and twins, in arrival order until sorted below.
    const names: string[] = [];
    const twins: unknown[] = [];
    let sorted = true;
    let ownTwins = true;
    let previous = "";
    for (const key of Object.keys(value)) {
      if (FORBIDDEN_KEYS.has(key)) {
        keys.push(key);
        throw new InputRefused(`${pathOf(keys)}: the key "${key}" is not allowed`);
      }
      if (!isWellFormed(key)) throw notUnicode(`a key of ${describePath(pathOf(keys))} is`);
      const child: unknown = (value as Record<string, unknown>)[key];
      if (child === undefined) continue;
      if ((bytes += key.length + 3) > max) throw tooLarge();
      keys.push(key);
      const copied = copy(child, depth + 1);
      put(out, key, copied);
      keys.pop();
      if (twin !== copied) ownTwins = false;
      if (names.length > 0 && previous > key) sorted = false;
      if (!indexKeys && isArrayIndex(key)) indexKeys = true;
      previous = key;
      names.push(key);
      twins.push(twin);
    }
    Object.freeze(out);
    // Keys in order and every child its own twin: the copy is its own twin.
    if (sorted && ownTwins) {
      twin = out;
      return out;
    }
    const n = names.length;
    if (!sorted && n <= SMALL_OBJECT) {
      for (let i = 1; i < n; i++) {
        const key = names[i] as string;
        const t = twins[i];
        let j = i - 1;
        for (; j >= 0 && (names[j] as string) > key; j--) {
          names[j + 1] = names[j] as string;
          twins[j + 1] = twins[j];
        }
        names[j + 1] = key;
        twins[j + 1] = t;
      }
    } else if (!sorted) {
      const members = names.map((key, i): [string, unknown] => [key, twins[i]]).sort(byKey);
      for (let i = 0; i < n; i++) [names[i], twins[i]] = members[i] as [string, unknown];
    }
    const sortedTwin: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) put(sortedTwin, names[i] as string, twins[i]);
    twin = sortedTwin;
    return out;
  };

  const value = copy(raw, 0);
  const json = indexKeys ? canonicalJson(value) : JSON.stringify(twin);
  // Same members, same escaping as JSON.stringify: the same number of bytes.
  const exact = Buffer.byteLength(json, "utf8");
  if (exact > max) {
    throw new InputRefused(`the call is larger than ${max} bytes (${exact})`);
  }
  // Deep-frozen, and `json` is its canonical JSON under every reading (no
  // lone surrogate, no undefined member, no non-finite number is copied):
  // its record's `input` is written from it (common/canonical-json.ts).
  if (value !== null && typeof value === "object") rememberRecent(value, json);
  return { value, json };
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return "the call does not match the contract";
  const path = issue.path.map(String).join(".");
  return `${describePath(path)}: ${issue.message}`;
}

/** The fold keys of amount_fields, made once per list (the data document's is one list per bundle). */
const amountNamesOf = new WeakMap<readonly string[], ReadonlySet<string>>();

/**
 * The fold keys of `amountFields` (common/text.ts): a key of `changes` is an amount
 * field when its fold key is one of them ("Amount" and "AMOUNT" are
 * "amount"), as the policy compares them (amount.rego, docs/contract.md §9).
 */
export function amountFieldNames(amountFields: readonly string[]): ReadonlySet<string> {
  let names = amountNamesOf.get(amountFields);
  if (names === undefined) {
    names = new Set(amountFields.map(foldKey));
    amountNamesOf.set(amountFields, names);
  }
  return names;
}

const JSON_NUMBER = /^-?(\d+)(?:\.(\d+))?(?:[eE]([+-]?)0*(\d*))?$/;

/** What amountTextProblem refuses, as the policy words it (input.rego's _imprecise). */
export const IMPRECISE_AMOUNT = "must have at most 15 significant digits and be 0 or between 1e-307 and 1e308 in magnitude";

/**
 * docs/contract.md §9 "Amount precision", the rule amount.rego's _precise
 * applies to the same text: undefined when the JSON number `text` has at
 * most 15 significant digits and is zero or between 1e-307 and 1e308 in
 * magnitude (then it is exactly one double, and every evaluator compares the
 * same number), else what is wrong with it.
 */
export function amountTextProblem(text: string): string | undefined {
  const m = JSON_NUMBER.exec(text);
  if (m === null) return `${IMPRECISE_AMOUNT} (${JSON.stringify(text)} is not a JSON number)`;
  const whole = m[1] as string;
  const digits = whole + (m[2] ?? "");
  const significant = digits.replace(/^0+/, "").replace(/0+$/, "");
  if (significant === "") return undefined;
  if (significant.length > 15) return `${IMPRECISE_AMOUNT} (${text} has ${significant.length})`;
  const exponentDigits = m[4] ?? "";
  const leadingZeros = digits.length - digits.replace(/^0+/, "").length;
  const exponent = exponentDigits.length > 4 ? Infinity : (m[3] === "-" ? -1 : 1) * Number(exponentDigits || "0");
  const decimalExponent = exponent + whole.length - 1 - leadingZeros;
  if (!(decimalExponent >= -307 && decimalExponent <= 307)) return `${IMPRECISE_AMOUNT} (${text} is out of that range)`;
  return undefined;
}

/**
 * The amount check for a number the adapter holds as a double: its text is
 * its shortest round-trip form (what JSON.stringify writes and the policy
 * reads), unless the caller's own text is known (`text`).
 */
function amountProblem(value: number, text: string | undefined): string | undefined {
  // The common case: an integer of at most 15 digits.
  if (text === undefined && Number.isSafeInteger(value) && value < 1e15 && value > -1e15) return undefined;
  return amountTextProblem(text ?? String(value));
}

/** A JSON pointer's token for `key`. */
const pointerToken = (key: string): string => key.replaceAll("~", "~0").replaceAll("/", "~1");

/**
 * Check one call as sent by an agent. `amountFields` comes from the data
 * document: a `changes` entry whose key matches one of them ignoring case
 * must be a finite JSON number. Amounts must also be precise
 * (docs/contract.md §9 "Amount precision"), judged by their JSON text:
 * `numberTexts` (by JSON pointer, see json-text.ts) when the caller had the
 * call as text, else the shortest text of the double.
 */
export function checkCall(
  raw: unknown,
  limits: InputLimits,
  amountFields: readonly string[],
  numberTexts?: ReadonlyMap<string, string>,
): CheckedInput {
  let copy: JsonValue;
  let json: string;
  try {
    ({ value: copy, json } = snapshot(raw, limits));
  } catch (error) {
    const message = error instanceof InputRefused ? error.message : `the call cannot be read: ${String(error)}`;
    return { ok: false, message, partial: undefined };
  }
  if (copy === null || typeof copy !== "object" || Array.isArray(copy)) {
    return { ok: false, message: "the call must be an object {tool, arguments, context}", partial: copy, json };
  }
  if (Object.hasOwn(copy, "history")) {
    return { ok: false, message: "history is computed by the adapter and cannot be supplied", partial: copy, json };
  }
  // callSchema decides; the quick check only spares it the calls it would
  // certainly accept (it is never more lenient: see test/call/input.test.ts).
  if (!quickCallCheck(copy)) {
    const parsed = callSchema.safeParse(copy);
    if (!parsed.success) return { ok: false, message: firstIssue(parsed.error), partial: copy, json };
  }

  const call = copy as VetoCall;
  const amount = call.arguments.amount;
  if (amount !== undefined) {
    const problem = amountProblem(amount, numberTexts?.get("/arguments/amount"));
    if (problem !== undefined) return { ok: false, message: `arguments.amount: an amount ${problem}`, partial: copy, json };
  }
  const changes = call.arguments.changes;
  if (changes !== undefined) {
    let names: ReadonlySet<string> | undefined;
    for (const key of Object.keys(changes)) {
      const value = changes[key];
      // A number that needs no text check is not looked up (the common case).
      if (typeof value === "number" && numberTexts === undefined && amountProblem(value, undefined) === undefined) continue;
      names ??= amountFieldNames(amountFields);
      if (!names.has(foldKey(key))) continue;
      if (typeof value !== "number") {
        return { ok: false, message: `arguments.changes.${key}: an amount must be a finite number`, partial: copy, json };
      }
      const problem = amountProblem(value, numberTexts?.get(`/arguments/changes/${pointerToken(key)}`));
      if (problem !== undefined) return { ok: false, message: `arguments.changes.${key}: an amount ${problem}`, partial: copy, json };
    }
  }
  return { ok: true, call, json };
}

const CALL_KEYS: ReadonlySet<string> = new Set(["tool", "arguments", "context"]);
const STRING_ARGUMENTS = ["object", "recordId", "tenantId", "destination"] as const;
const REQUIRED_CONTEXT = ["actorId", "tenantId", "environment"] as const;
const OPTIONAL_CONTEXT = ["reason", "sourceSystem", "requestId", "sessionId", "onBehalfOf"] as const;

const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
const isNonBlank = (v: unknown): boolean => typeof v === "string" && !isBlank(v);

/**
 * True only for a snapshot that callSchema certainly accepts (same rules,
 * written out so the common case costs no schema walk). False means "ask
 * callSchema", never "invalid".
 */
export function quickCallCheck(copy: unknown): boolean {
  if (!isPlainObject(copy)) return false;
  let n = 0;
  for (const key in copy) {
    if (!CALL_KEYS.has(key)) return false;
    n++;
  }
  if (n !== 3 || !isNonBlank(copy["tool"])) return false;
  const args = copy["arguments"];
  const context = copy["context"];
  if (!isPlainObject(args) || !isPlainObject(context)) return false;
  for (const name of STRING_ARGUMENTS) if (Object.hasOwn(args, name) && typeof args[name] !== "string") return false;
  if (Object.hasOwn(args, "changes") && !isPlainObject(args["changes"])) return false;
  if (Object.hasOwn(args, "amount") && typeof args["amount"] !== "number") return false;
  if (Object.hasOwn(args, "fields")) {
    const fields = args["fields"];
    if (!Array.isArray(fields)) return false;
    for (const f of fields) if (typeof f !== "string") return false;
  }
  for (const name of REQUIRED_CONTEXT) if (!isNonBlank(context[name])) return false;
  for (const name of OPTIONAL_CONTEXT) if (Object.hasOwn(context, name) && typeof context[name] !== "string") return false;
  return true;
}

/** What a refused call names, as far as it can be read (partialContext). */
export interface PartialContext {
  actorId?: string;
  tenantId?: string;
  environment?: string;
  tool?: string;
  sourceSystem?: string;
  requestId?: string;
  sessionId?: string;
  onBehalfOf?: string;
}

/**
 * The parts of a refused call that are safe to read for history and records:
 * the tool, the required context and the optional context, each only when it
 * is text a valid call could carry there (well-formed, at most `maxBytes`
 * bytes of UTF-8; non-blank where §1 requires it). Anything else is left out
 * (attributed to no one): the record of a refused call stays small and
 * writable whatever the call held.
 */
export function partialContext(partial: unknown, maxBytes: number): PartialContext {
  try {
    return readPartialContext(partial, maxBytes);
  } catch {
    // A getter or proxy in what the agent sent threw: nothing is attributable.
    return {};
  }
}

function readPartialContext(partial: unknown, maxBytes: number): PartialContext {
  if (partial === null || typeof partial !== "object") return {};
  const p = partial as Record<string, unknown>;
  const context = p["context"] !== null && typeof p["context"] === "object" ? (p["context"] as Record<string, unknown>) : {};
  const text = (v: unknown): v is string =>
    typeof v === "string" && v.length <= maxBytes && loneSurrogateAt(v) === -1 && Buffer.byteLength(v, "utf8") <= maxBytes;
  const out: PartialContext = {};
  const tool = p["tool"];
  if (text(tool) && !isBlank(tool)) out.tool = tool;
  for (const name of REQUIRED_CONTEXT) {
    const value = context[name];
    if (text(value) && !isBlank(value)) out[name] = value;
  }
  for (const name of OPTIONAL_CONTEXT) {
    const value = context[name];
    if (name !== "reason" && text(value)) out[name] = value;
  }
  return out;
}

/** Deep-freeze a snapshot (it holds only plain JSON values). */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
