/**
 * The input contract (contract section 1). Two steps, both ending in a value,
 * never an exception:
 *  1. `snapshotCall` copies what the agent sent into fresh plain JSON values,
 *     enforcing the size and depth limits and refusing prototype-pollution
 *     keys and anything JSON cannot carry (Infinity, functions, cycles...).
 *     The copy is what gets decided, digested, recorded and handed to the tool.
 *  2. `callSchema` (zod, strict) checks the contract's types on that copy.
 */
import { z } from "zod";

export interface InputLimits {
  /** Largest call, in UTF-8 bytes of its JSON text. */
  readonly maxInputBytes: number;
  /** Deepest nesting of objects and arrays; the call object itself is depth 1. */
  readonly maxDepth: number;
}

export const DEFAULT_INPUT_LIMITS: InputLimits = { maxInputBytes: 64 * 1024, maxDepth: 12 };

/** Keys that could reach Object.prototype through a careless merge downstream. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

const nonBlank = z.string().refine((s) => s.trim() !== "", { message: "must not be blank" });
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
  | { readonly ok: true; readonly call: VetoCall }
  | { readonly ok: false; readonly message: string; readonly partial: unknown };

type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

class InputRefused extends Error {}

function describePath(path: string): string {
  return path === "" ? "the call" : path;
}

/**
 * Copy `raw` into plain JSON values within the limits. Throws InputRefused
 * with a message naming the offending path.
 */
function snapshot(raw: unknown, limits: InputLimits): JsonValue {
  let bytes = 0;
  const count = (n: number): void => {
    bytes += n;
    // A lower bound of the JSON size, so far-over inputs stop early.
    if (bytes > limits.maxInputBytes) {
      throw new InputRefused(`the call is larger than ${limits.maxInputBytes} bytes`);
    }
  };

  const copy = (value: unknown, path: string, depth: number): JsonValue => {
    switch (typeof value) {
      case "string":
        count(value.length + 2);
        return value;
      case "boolean":
        count(4);
        return value;
      case "number":
        if (!Number.isFinite(value)) throw new InputRefused(`${describePath(path)} is not a finite number`);
        count(1);
        return value;
      case "object":
        break;
      default:
        throw new InputRefused(`${describePath(path)} is a ${typeof value}, which JSON cannot carry`);
    }
    if (value === null) {
      count(4);
      return null;
    }
    if (depth + 1 > limits.maxDepth) {
      throw new InputRefused(`${describePath(path)} nests deeper than ${limits.maxDepth} levels`);
    }
    count(2);
    if (Array.isArray(value)) {
      const out: JsonValue[] = [];
      for (let i = 0; i < value.length; i++) {
        const item: unknown = value[i];
        if (item === undefined) throw new InputRefused(`${path}[${i}] is undefined`);
        out.push(copy(item, `${path}[${i}]`, depth + 1));
      }
      return out;
    }
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new InputRefused(`${describePath(path)} is not a plain JSON object`);
    }
    const out: { [key: string]: JsonValue } = {};
    for (const key of Object.keys(value)) {
      const childPath = path === "" ? key : `${path}.${key}`;
      if (FORBIDDEN_KEYS.has(key)) throw new InputRefused(`${childPath}: the key "${key}" is not allowed`);
      const child: unknown = (value as Record<string, unknown>)[key];
      if (child === undefined) continue;
      count(key.length + 3);
      // defineProperty, not assignment: no key can ever reach a setter.
      Object.defineProperty(out, key, { value: copy(child, childPath, depth + 1), enumerable: true, writable: true, configurable: true });
    }
    return out;
  };

  const result = copy(raw, "", 0);
  const exact = Buffer.byteLength(JSON.stringify(result), "utf8");
  if (exact > limits.maxInputBytes) {
    throw new InputRefused(`the call is larger than ${limits.maxInputBytes} bytes (${exact})`);
  }
  return result;
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return "the call does not match the contract";
  const path = issue.path.map(String).join(".");
  return `${describePath(path)}: ${issue.message}`;
}

/**
 * Check one call as sent by an agent. `amountFields` comes from the data
 * document: those `changes` entries must be finite JSON numbers when present.
 */
export function checkCall(raw: unknown, limits: InputLimits, amountFields: readonly string[]): CheckedInput {
  let copy: JsonValue;
  try {
    copy = snapshot(raw, limits);
  } catch (error) {
    const message = error instanceof InputRefused ? error.message : `the call cannot be read: ${String(error)}`;
    return { ok: false, message, partial: undefined };
  }
  if (copy === null || typeof copy !== "object" || Array.isArray(copy)) {
    return { ok: false, message: "the call must be an object {tool, arguments, context}", partial: copy };
  }
  if (Object.hasOwn(copy, "history")) {
    return { ok: false, message: "history is computed by the adapter and cannot be supplied", partial: copy };
  }
  const parsed = callSchema.safeParse(copy);
  if (!parsed.success) return { ok: false, message: firstIssue(parsed.error), partial: copy };

  const call = copy as VetoCall;
  const changes = call.arguments.changes;
  if (changes !== undefined) {
    for (const field of amountFields) {
      if (Object.hasOwn(changes, field) && typeof changes[field] !== "number") {
        return { ok: false, message: `arguments.changes.${field}: an amount must be a finite number`, partial: copy };
      }
    }
  }
  return { ok: true, call };
}

/** The parts of a refused call that are safe to read for history and records. */
export function partialContext(partial: unknown): { actorId?: string; tenantId?: string; environment?: string; tool?: string } {
  try {
    return readPartialContext(partial);
  } catch {
    // A getter or proxy in what the agent sent threw: nothing is attributable.
    return {};
  }
}

function readPartialContext(partial: unknown): { actorId?: string; tenantId?: string; environment?: string; tool?: string } {
  if (partial === null || typeof partial !== "object") return {};
  const p = partial as Record<string, unknown>;
  const context = p["context"] !== null && typeof p["context"] === "object" ? (p["context"] as Record<string, unknown>) : {};
  const str = (v: unknown): string | undefined => (typeof v === "string" && v.trim() !== "" ? v : undefined);
  const out: { actorId?: string; tenantId?: string; environment?: string; tool?: string } = {};
  const actorId = str(context["actorId"]);
  const tenantId = str(context["tenantId"]);
  const environment = str(context["environment"]);
  const tool = str(p["tool"]);
  if (actorId !== undefined) out.actorId = actorId;
  if (tenantId !== undefined) out.tenantId = tenantId;
  if (environment !== undefined) out.environment = environment;
  if (tool !== undefined) out.tool = tool;
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
