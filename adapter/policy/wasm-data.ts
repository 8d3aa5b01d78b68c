/**
 * How a data document gets into the WASM module's memory, in pieces.
 *
 * The module parses JSON text that sits in its own memory into its value
 * tree, and its memory never shrinks: handed the whole text at once (what the
 * SDK's setData does), the text's pages stay resident beside the tree for as
 * long as the instance lives (14 MB for 100,000 tenants, on a tree of 126 MB).
 * Here only a small scratch buffer holds text: an object whose text is larger
 * than a piece is made empty and its members are parsed one by one into the
 * scratch buffer and inserted with the module's `opa_value_add_path` export,
 * which puts the parsed member under the parsed key as the parser itself
 * would (the same allocations, the same hash table growth). Objects nested in
 * it that are large are split the same way; anything else (a small object, an
 * array, a scalar) is parsed whole.
 *
 * The tree is the one a single parse of the whole text makes
 * (test/policy/data-pieces.test.ts dumps both and compares them).
 */

/** The module's exports this needs (OPA's WASM ABI 1.x, all exported by every OPA-built module). */
export interface DataExports {
  readonly opa_malloc: (size: number) => number;
  readonly opa_free: (address: number) => void;
  readonly opa_json_parse: (address: number, length: number) => number;
  readonly opa_value_add_path: (base: number, path: number, value: number) => number;
  readonly opa_value_free: (address: number) => void;
}

/**
 * Objects whose text is at most this long are parsed whole. Small enough that
 * the scratch buffer is a page or two; large enough that a document of
 * ordinary size (the bundle's own) is one parse.
 */
export const PIECE_BYTES = 64 * 1024;

/** The scratch buffer's window onto the text: copied into the module's memory a window at a time. */
const WINDOW_BYTES = 32 * 1024;

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** Read the module's exports this needs, or undefined when one is missing. */
export function dataExports(exports: Record<string, unknown>): DataExports | undefined {
  const { opa_malloc, opa_free, opa_json_parse, opa_value_add_path, opa_value_free } = exports;
  if (
    typeof opa_malloc !== "function" ||
    typeof opa_free !== "function" ||
    typeof opa_json_parse !== "function" ||
    typeof opa_value_add_path !== "function" ||
    typeof opa_value_free !== "function"
  ) {
    return undefined;
  }
  return { opa_malloc, opa_free, opa_json_parse, opa_value_add_path, opa_value_free } as DataExports;
}

/**
 * Parse `text` (the JSON text of the data document, an object) into the
 * module's memory from its current heap pointer; returns the address of the
 * parsed document. Throws when the text is not JSON the module accepts or a
 * piece cannot be inserted; what was allocated is then garbage the caller
 * discards with the instance (it resets the heap or starts afresh).
 */
export function loadDataPieces(exports: DataExports, memory: WebAssembly.Memory, text: string, pieceBytes = PIECE_BYTES): number {
  const loader = new PieceLoader(exports, memory, byteString(text), pieceBytes);
  return loader.load();
}

/**
 * The JSON text as a string of its UTF-8 bytes, one character per byte
 * (Latin-1): the text itself when it is ASCII (nearly always; then nothing
 * is copied), else its UTF-8 read back as Latin-1. Offsets in it are offsets
 * in the UTF-8 text, and a window of it is written into the module's memory
 * byte for byte (Buffer.write, "latin1"), without a UTF-8 copy of the whole
 * held beside it.
 */
export function byteString(text: string): string {
  // eslint-disable-next-line no-control-regex -- the test is "anything past ASCII"
  return /[^\x00-\x7f]/.test(text) ? Buffer.from(text, "utf8").toString("latin1") : text;
}

class PieceLoader {
  readonly #exports: DataExports;
  readonly #memory: WebAssembly.Memory;
  readonly #text: string;
  readonly #pieceBytes: number;
  /** The scratch buffer: a window onto the text, followed by the text of an empty object. */
  #scratch = 0;
  #scratchBytes = 0;
  /** The text's bytes [#windowStart, #windowEnd) are at #scratch. */
  #windowStart = 0;
  #windowEnd = 0;
  #view: Uint8Array | undefined;
  /** Where the last object #object() loaded ends (just past its closing brace). */
  #end = 0;

  constructor(exports: DataExports, memory: WebAssembly.Memory, text: string, pieceBytes: number) {
    this.#exports = exports;
    this.#memory = memory;
    this.#text = text;
    this.#pieceBytes = Math.max(2, pieceBytes);
  }

  load(): number {
    const text = this.#text;
    const start = skipSpace(text, 0);
    let end = text.length;
    while (end > start && isSpace(text.charCodeAt(end - 1))) end--;
    if (start >= end || text.charCodeAt(start) !== OPEN_BRACE) throw new Error("the data document is not a JSON object");
    if (end - start <= this.#pieceBytes) return this.#parse(start, end);
    // The scratch buffer stays allocated: the values were allocated past it.
    const root = this.#object(start);
    if (this.#end !== end) throw new Error(`the data document's text goes on past its object, at byte ${this.#end}`);
    return root;
  }

  /**
   * Load the object at `start`, known to be larger than a piece, as an empty
   * object with its members inserted one by one; returns its address and
   * sets this.#end. Its text is scanned once here: a member that is an
   * object is first looked at for at most a piece's length, and split in
   * turn when it is longer.
   */
  #object(start: number): number {
    const text = this.#text;
    const object = this.#emptyObject();
    let i = skipSpace(text, start + 1);
    if (text.charCodeAt(i) === CLOSE_BRACE) {
      this.#end = i + 1;
      return object;
    }
    for (;;) {
      if (text.charCodeAt(i) !== QUOTE) throw new Error(`the data document's text has no member name at byte ${i}`);
      const keyStart = i;
      const keyEnd = this.#stringEnd(i);
      i = skipSpace(text, keyEnd);
      if (text.charCodeAt(i) !== COLON) throw new Error(`the data document's text has no colon at byte ${i}`);
      // The name first: the window still holds it (the text is read front to back).
      const path = this.#path(keyStart, keyEnd);
      const valueStart = skipSpace(text, i + 1);
      let valueEnd = text.charCodeAt(valueStart) === OPEN_BRACE ? containerEnd(text, valueStart, valueStart + this.#pieceBytes) : this.#valueEnd(valueStart);
      let value: number;
      if (valueEnd < 0) {
        value = this.#object(valueStart);
        valueEnd = this.#end;
      } else {
        value = this.#parse(valueStart, valueEnd);
      }
      // opa_value_add_path inserts the path's element itself as the member's
      // name; freeing the path then frees the array and its index, not the name.
      const status = this.#exports.opa_value_add_path(object, path, value);
      if (status !== 0) throw new Error(`the module could not insert the member at byte ${keyStart} (error ${status})`);
      this.#exports.opa_value_free(path);
      i = skipSpace(text, valueEnd);
      if (text.charCodeAt(i) === COMMA) {
        i = skipSpace(text, i + 1);
        continue;
      }
      if (text.charCodeAt(i) === CLOSE_BRACE) {
        this.#end = i + 1;
        return object;
      }
      throw new Error(`the data document's text has no comma or closing brace at byte ${i}`);
    }
  }

  /**
   * The path [name] for the member name at [keyStart, keyEnd) (with its
   * quotes), parsed as the parser parses a name. The bytes just around the
   * name in the window (`{` or `,` before, `:` after, or white space) become
   * the brackets: nothing read later lies there.
   */
  #path(keyStart: number, keyEnd: number): number {
    const address = this.#at(keyStart - 1, keyEnd + 1);
    const view = this.#viewNow();
    view[address] = OPEN_BRACKET;
    view[address + keyEnd - keyStart + 1] = CLOSE_BRACKET;
    const path = this.#exports.opa_json_parse(address, keyEnd - keyStart + 2);
    if (path === 0) throw new Error(`the module could not parse the member name at byte ${keyStart}`);
    return path;
  }

  /** Parse the text [start, end) (one JSON value); returns its address. */
  #parse(start: number, end: number): number {
    const value = this.#exports.opa_json_parse(this.#at(start, end), end - start);
    if (value === 0) throw new Error(`the module could not parse the data document's text at byte ${start}`);
    return value;
  }

  #emptyObject(): number {
    if (this.#scratch === 0) this.#refill(0, 0);
    const value = this.#exports.opa_json_parse(this.#scratch + this.#scratchBytes, EMPTY_OBJECT.length);
    if (value === 0) throw new Error("the module could not parse an empty object");
    return value;
  }

  /**
   * Where the text [start, end) is in the module's memory: in the window,
   * moved forward (one copy of up to a window's length) when it does not
   * hold them. The text is read front to back, so the window only moves
   * forward.
   */
  #at(start: number, end: number): number {
    if (start < this.#windowStart || end > this.#windowEnd) this.#refill(start, end);
    return this.#scratch + start - this.#windowStart;
  }

  /**
   * Copy the text from `start` into the window, at least up to `end`. The
   * scratch buffer is allocated once (a window, or the largest piece that
   * does not split) and reused: the parsed values go past it. A larger one
   * replaces it, the old one freed for the values to reuse.
   */
  #refill(start: number, end: number): void {
    if (this.#scratch === 0 || end - start > this.#scratchBytes) {
      if (this.#scratch !== 0) this.#exports.opa_free(this.#scratch);
      this.#scratchBytes = Math.max(end - start, WINDOW_BYTES);
      this.#scratch = this.#exports.opa_malloc(this.#scratchBytes + EMPTY_OBJECT.length);
      this.#viewNow().set(EMPTY_OBJECT, this.#scratch + this.#scratchBytes);
    }
    const last = Math.min(this.#text.length, start + this.#scratchBytes);
    // One character per byte (byteString).
    Buffer.from(this.#memory.buffer, this.#scratch, last - start).write(this.#text.slice(start, last), "latin1");
    this.#windowStart = start;
    this.#windowEnd = last;
  }

  /** A view of the module's memory (when the module grows it, the old buffer is detached, length 0, and a new one takes its place). */
  #viewNow(): Uint8Array {
    if (this.#view === undefined || this.#view.length === 0) this.#view = new Uint8Array(this.#memory.buffer);
    return this.#view;
  }

  /** The index just past the string starting (with its quote) at `start`. */
  #stringEnd(start: number): number {
    const end = stringEnd(this.#text, start);
    if (end < 0) throw new Error(`the data document's text ends inside a string at byte ${start}`);
    return end;
  }

  /** The index just past the value starting at `start` (a string, an array, a number, true, false or null). */
  #valueEnd(start: number): number {
    const text = this.#text;
    const c = text.charCodeAt(start);
    if (c === QUOTE) return this.#stringEnd(start);
    if (c === OPEN_BRACKET) {
      const end = containerEnd(text, start, text.length);
      if (end < 0) throw new Error(`the data document's text has an unclosed array at byte ${start}`);
      return end;
    }
    let i = start;
    while (i < text.length) {
      const d = text.charCodeAt(i);
      if (d === COMMA || d === CLOSE_BRACE || d === CLOSE_BRACKET || isSpace(d)) break;
      i++;
    }
    if (i === start) throw new Error(`the data document's text has no value at byte ${start}`);
    return i;
  }
}

/** The index of the first byte at or after `i` that is not JSON white space. */
function skipSpace(text: string, i: number): number {
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  return i;
}

/**
 * The index just past the object or array starting at `start`, when it
 * closes before `limit`; -1 otherwise. Brackets inside strings do not count.
 */
function containerEnd(text: string, start: number, limit: number): number {
  if (limit > text.length) limit = text.length;
  let depth = 0;
  for (let i = start; i < limit; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      for (i++; i < limit; i++) {
        const d = text.charCodeAt(i);
        if (d === BACKSLASH) i++;
        else if (d === QUOTE) break;
      }
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth++;
    } else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && --depth === 0) {
      return i + 1;
    }
  }
  return -1;
}

const EMPTY_OBJECT = new Uint8Array([OPEN_BRACE, CLOSE_BRACE]);

/** The index just past the string starting (with its quote) at `start`; -1 when the text ends first. */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === BACKSLASH) i++;
    else if (c === QUOTE) return i + 1;
  }
  return -1;
}
