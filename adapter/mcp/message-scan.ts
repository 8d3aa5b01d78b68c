/**
 * What can be read of a JSON-RPC message that cannot be parsed: a line over
 * the length limit (its bytes pass by and are never held), a line that is not
 * UTF-8, or text that is not JSON. A streaming scan of the bytes finds the
 * top-level `id` and `method` and `params.name`, wherever they stand in the
 * object (the MCP SDK's client writes `id` last, after `params`), so that the
 * proxy can answer the request it was meant to be and record the tools/call it
 * names (docs/mcp.md, "Malformed messages").
 *
 * It reads strings and nesting as JSON does, so a key inside a string or a
 * nested object never counts; only scalars are taken, at most MAX_VALUE_BYTES
 * each; where keys repeat, the last wins, as with JSON.parse. Memory stays
 * constant however deep or long the input.
 */

/** The top-level fields found, each a JSON value as parsed (undefined when absent or not a scalar). */
export interface MessageSketch {
  /** Whether the top-level object has an `id` key at all (a request, or a response). */
  readonly hasId: boolean;
  readonly id: unknown;
  readonly method: unknown;
  /** `params.name`: the tool of a tools/call. */
  readonly toolName: unknown;
  /** Whether the top level has a `result` or `error` key (a response). */
  readonly isResponse: boolean;
}

type Field = "id" | "method" | "toolName";

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const isSpace = (b: number): boolean => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;

/** Longest scalar value taken, bytes; a longer one is read as absent. */
const MAX_VALUE_BYTES = 1024;
/** Longest key compared, bytes: every key looked for is shorter. */
const MAX_KEY_BYTES = 16;

// Where the scan stands in an object at depth 1 or 2.
const KEY = 0;
const COLON_NEXT = 1;
const VALUE = 2;
const AFTER = 3;

export class MessageScan {
  #depth = 0;
  /** Per depth 1 and 2: whether it is an object, its state, and the key of the value being read. */
  readonly #isObject = [false, false, false];
  readonly #state = [AFTER, AFTER, AFTER];
  readonly #key: (string | undefined)[] = [undefined, undefined, undefined];
  #inString = false;
  #escaped = false;
  /** The bytes of a key being read (at depth 1 or 2), or undefined. */
  #keyBytes: number[] | undefined;
  /** The bytes of a wanted value being read, and which field it is. */
  #value: number[] | undefined;
  #valueFor: Field | undefined;
  #valueIsString = false;
  #hasId = false;
  #isResponse = false;
  readonly #found: Record<Field, unknown> = { id: undefined, method: undefined, toolName: undefined };

  /** Scan the next bytes of the message. */
  push(bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      if (this.#inString) {
        this.#keyBytes?.push(b);
        this.#value?.push(b);
        if (this.#escaped) this.#escaped = false;
        else if (b === BACKSLASH) this.#escaped = true;
        else if (b === QUOTE) {
          this.#inString = false;
          if (this.#keyBytes !== undefined) this.#endKey();
          else if (this.#value !== undefined && this.#valueIsString) this.#endValue();
        }
        this.#bound();
        continue;
      }
      if (this.#value !== undefined) {
        // A bare scalar (number, true, false, null) ends at a delimiter.
        if (b !== COMMA && b !== CLOSE_OBJECT && b !== CLOSE_ARRAY && !isSpace(b)) {
          this.#value.push(b);
          this.#bound();
          continue;
        }
        this.#endValue();
      }
      if (isSpace(b)) continue;
      const d = this.#depth;
      const inObject = d >= 1 && d <= 2 && this.#isObject[d]!;
      if (inObject && this.#state[d] === KEY && b === QUOTE) {
        this.#inString = true;
        this.#keyBytes = [b];
        continue;
      }
      if (inObject && b === COLON && this.#state[d] === COLON_NEXT) {
        this.#state[d] = VALUE;
        continue;
      }
      if (inObject && b === COMMA) {
        this.#state[d] = KEY;
        this.#key[d] = undefined;
        continue;
      }
      if (b === CLOSE_OBJECT || b === CLOSE_ARRAY) {
        if (this.#depth > 0) this.#depth--;
        continue;
      }
      // The start of a value.
      const field = inObject && this.#state[d] === VALUE ? this.#wanted(d) : undefined;
      if (inObject) this.#state[d] = AFTER;
      if (b === OPEN_OBJECT || b === OPEN_ARRAY) {
        // Not a scalar: the field has no usable value.
        if (field !== undefined) this.#found[field] = undefined;
        this.#depth++;
        if (this.#depth <= 2) {
          this.#isObject[this.#depth] = b === OPEN_OBJECT;
          this.#state[this.#depth] = KEY;
          this.#key[this.#depth] = undefined;
        }
        continue;
      }
      if (b === QUOTE) {
        this.#inString = true;
        this.#escaped = false;
      }
      if (field !== undefined) {
        this.#value = [b];
        this.#valueFor = field;
        this.#valueIsString = b === QUOTE;
      }
    }
  }

  /** What was found, once the message's bytes have all been pushed. */
  result(): MessageSketch {
    if (this.#value !== undefined && !this.#valueIsString) this.#endValue();
    return { hasId: this.#hasId, isResponse: this.#isResponse, ...this.#found };
  }

  /** Which field a value starting at depth `d` is, if wanted. */
  #wanted(d: number): Field | undefined {
    if (d === 1) {
      const key = this.#key[1];
      return key === "id" || key === "method" ? key : undefined;
    }
    return this.#isObject[1] && this.#key[1] === "params" && this.#key[2] === "name" ? "toolName" : undefined;
  }

  #endKey(): void {
    const key = parse(this.#keyBytes!);
    this.#keyBytes = undefined;
    const d = this.#depth;
    this.#key[d] = typeof key === "string" ? key : undefined;
    this.#state[d] = COLON_NEXT;
    if (d === 1 && key === "id") this.#hasId = true;
    if (d === 1 && (key === "result" || key === "error")) this.#isResponse = true;
  }

  #endValue(): void {
    this.#found[this.#valueFor!] = parse(this.#value!);
    this.#value = undefined;
    this.#valueFor = undefined;
  }

  /** A key or value past its bound is not wanted: forget it (a string still ends at its quote). */
  #bound(): void {
    if (this.#keyBytes !== undefined && this.#keyBytes.length > MAX_KEY_BYTES + 2) {
      this.#keyBytes = undefined;
      this.#key[this.#depth] = undefined;
      this.#state[this.#depth] = COLON_NEXT;
    }
    if (this.#value !== undefined && this.#value.length > MAX_VALUE_BYTES) {
      this.#found[this.#valueFor!] = undefined;
      this.#value = undefined;
      this.#valueFor = undefined;
    }
  }
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/** The JSON value of some bytes, or undefined when they are not one. */
function parse(bytes: number[]): unknown {
  try {
    return JSON.parse(decoder.decode(Uint8Array.from(bytes))) as unknown;
  } catch {
    return undefined;
  }
}

/** Scan one message's bytes at once. */
export function sketchOf(bytes: Uint8Array): MessageSketch {
  const scan = new MessageScan();
  scan.push(bytes);
  return scan.result();
}
