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

import { jsonStringEnd } from "./data.js";

/** The module's exports this needs (OPA's WASM ABI 1.x, all exported by every OPA-built module). */
export interface DataExports {
  readonly opa_malloc: (size: number) => number;
  readonly opa_free: (address: number) => void;
  readonly opa_json_parse: (address: number, length: number) => number;
  readonly opa_value_add_path: (base: number, path: number, value: number) => number;
  readonly opa_value_free: (address: number) => void;
  readonly opa_heap_ptr_get: () => number;
  readonly opa_heap_ptr_set: (address: number) => void;
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
const COLON = 0x3a;
const COMMA = 0x2c;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** Read the module's exports this needs, or undefined when one is missing. */
export function dataExports(exports: Record<string, unknown>): DataExports | undefined {
  const { opa_malloc, opa_free, opa_json_parse, opa_value_add_path, opa_value_free, opa_heap_ptr_get, opa_heap_ptr_set } = exports;
  if (
    typeof opa_malloc !== "function" ||
    typeof opa_free !== "function" ||
    typeof opa_json_parse !== "function" ||
    typeof opa_value_add_path !== "function" ||
    typeof opa_value_free !== "function" ||
    typeof opa_heap_ptr_get !== "function" ||
    typeof opa_heap_ptr_set !== "function"
  ) {
    return undefined;
  }
  return { opa_malloc, opa_free, opa_json_parse, opa_value_add_path, opa_value_free, opa_heap_ptr_get, opa_heap_ptr_set } as DataExports;
}

/** How loadDataPieces shares values between pieces (Compactor). */
export interface CompactOptions {
  /** Share repeated values between pieces (default true). */
  readonly compact?: boolean;
  /**
   * Paths (member names from the document's top) of values that will be
   * replaced or removed after the load, which the module then frees with
   * everything in them: nothing in them is shared, and they share nothing.
   */
  readonly replaced?: readonly (readonly string[])[];
}

/**
 * Parse `text` (the JSON text of the data document, an object) into the
 * module's memory from its current heap pointer; returns the address of the
 * parsed document. Throws when the text is not JSON the module accepts or a
 * piece cannot be inserted; what was allocated is then garbage the caller
 * discards with the instance (it resets the heap or starts afresh).
 */
export function loadDataPieces(exports: DataExports, memory: WebAssembly.Memory, text: string, pieceBytes = PIECE_BYTES, options: CompactOptions = {}): number {
  const bytes = byteString(text);
  const base = exports.opa_heap_ptr_get();
  try {
    return new PieceLoader(exports, memory, bytes, pieceBytes, options).load();
  } catch (error) {
    if (!(error instanceof MemberReplaced)) throw error;
    // A member name repeated in a large object: the module freed the first
    // member's value, shared values with it. Start again, sharing nothing.
    exports.opa_heap_ptr_set(base);
    return new PieceLoader(exports, memory, bytes, pieceBytes, { compact: false }).load();
  }
}

/** Thrown when inserting a member replaced another of the same name. */
class MemberReplaced extends Error {}

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
  /** Shares what repeats between pieces, when the module's values are laid out as it expects. */
  #compactor: Compactor | undefined;
  readonly #options: CompactOptions;

  constructor(exports: DataExports, memory: WebAssembly.Memory, text: string, pieceBytes: number, options: CompactOptions) {
    this.#exports = exports;
    this.#memory = memory;
    this.#text = text;
    this.#pieceBytes = Math.max(2, pieceBytes);
    this.#options = options;
  }

  load(): number {
    const text = this.#text;
    const start = skipSpace(text, 0);
    let end = text.length;
    while (end > start && isSpace(text.charCodeAt(end - 1))) end--;
    if (start >= end || text.charCodeAt(start) !== OPEN_BRACE) throw new Error("the data document is not a JSON object");
    if (end - start <= this.#pieceBytes) return this.#parse(start, end);
    if (this.#options.compact !== false) this.#compactor = Compactor.probe(this.#exports, this.#memory, (text) => this.#parseBytes(text));
    // The scratch buffer stays allocated: the values were allocated past it.
    const root = this.#object(start, this.#options.replaced ?? []);
    if (this.#end !== end) throw new Error(`the data document's text goes on past its object, at byte ${this.#end}`);
    return root;
  }

  /**
   * Load the object at `start`, known to be larger than a piece, as an empty
   * object with its members inserted one by one; returns its address and
   * sets this.#end. Its text is scanned once here: a member that is an
   * object is first looked at for at most a piece's length, and split in
   * turn when it is longer. `replaced`: the paths of CompactOptions.replaced
   * below this object (undefined: this object is in one of them).
   */
  #object(start: number, replaced: readonly (readonly string[])[] | undefined): number {
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
      // The replaced paths below this member: undefined when it is one of them (or in one).
      let below: readonly (readonly string[])[] | undefined;
      if (replaced !== undefined && replaced.length > 0) {
        const name = this.#name(keyStart, keyEnd);
        const under = replaced.filter((p) => p[0] === name);
        below = under.some((p) => p.length === 1) ? undefined : under.map((p) => p.slice(1));
      } else {
        below = replaced;
      }
      let value: number;
      if (valueEnd < 0) {
        value = this.#object(valueStart, below);
        valueEnd = this.#end;
      } else {
        value = this.#parse(valueStart, valueEnd);
        // A piece that is or holds a value to be replaced is left as parsed.
        if (below !== undefined && below.length === 0) this.#compactor?.piece(value);
      }
      const compactor = this.#compactor;
      const members = compactor?.length(object);
      // opa_value_add_path inserts a copy of the path's element as the
      // member's name; the path is freed (with its element).
      const status = this.#exports.opa_value_add_path(object, path, value);
      if (status !== 0) throw new Error(`the module could not insert the member at byte ${keyStart} (error ${status})`);
      this.#exports.opa_value_free(path);
      // The name was there before: the module freed the value it had, and what it held.
      if (members !== undefined && compactor!.length(object) === members) throw new MemberReplaced();
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

  /** The member name at [keyStart, keyEnd) (with its quotes). */
  #name(keyStart: number, keyEnd: number): string {
    const literal = this.#text.slice(keyStart, keyEnd);
    // A byte string (byteString): its escapes and UTF-8 decoded as the module decodes them.
    // eslint-disable-next-line no-control-regex -- the test is "anything past ASCII"
    return literal.includes("\\") || /[^\x00-\x7f]/.test(literal)
      ? (JSON.parse(Buffer.from(literal, "latin1").toString("utf8")) as string)
      : literal.slice(1, -1);
  }

  /** Parse the text [start, end) (one JSON value); returns its address. */
  #parse(start: number, end: number): number {
    const value = this.#exports.opa_json_parse(this.#at(start, end), end - start);
    if (value === 0) throw new Error(`the module could not parse the data document's text at byte ${start}`);
    return value;
  }

  /** Parse a short text of the loader's own (ASCII) through the scratch buffer's window, which it then no longer holds. */
  #parseBytes(text: string): number {
    if (this.#scratch === 0) this.#refill(0, 0);
    if (text.length > this.#scratchBytes) throw new Error("the loader's own text does not fit its scratch buffer");
    Buffer.from(this.#memory.buffer, this.#scratch, text.length).write(text, "latin1");
    this.#windowStart = this.#windowEnd = 0;
    return this.#exports.opa_json_parse(this.#scratch, text.length);
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
    const end = jsonStringEnd(this.#text, start);
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
      const end = jsonStringEnd(text, i);
      if (end < 0 || end > limit) return -1;
      i = end - 1;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth++;
    } else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && --depth === 0) {
      return i + 1;
    }
  }
  return -1;
}

const EMPTY_OBJECT = new Uint8Array([OPEN_BRACE, CLOSE_BRACE]);

/**
 * The module's value types and number representations (OPA's wasm/src/value.h),
 * and its allocator's block header (size, then two free-list links).
 */
const OPA_NUMBER = 3;
const OPA_STRING = 4;
const OPA_ARRAY = 5;
const OPA_OBJECT = 6;
const OPA_STRING_INTERNED = 8;
const NUMBER_REPR_INT = 1;
const NUMBER_REPR_REF = 2;
const BLOCK_HEADER = 12;
/** Array indexes shared between arrays: 0 to this - 1. */
const SHARED_INDEXES = 256;
/** Strings of at most this many bytes have their text moved into a text block; the size of those blocks. */
const SHORT_TEXT = 64;
const TEXT_BLOCK = 64 * 1024;
/** At most this many distinct member names and numbers, together, are shared (a document of unique values gains nothing). */
const SHARED_VALUES = 8192;

/**
 * Shares, between the pieces of a large document, the values the module's
 * parser makes afresh for each occurrence, and trims what it allocates for
 * growth. For 100,000 tenants the parsed tree is 126 MB, about 1,320 bytes a
 * tenant, of which the same four member names (235 bytes), the same few
 * dozen numbers (188 bytes), the number the module keeps as each array
 * element's index (76 bytes each), array storage for ten elements where
 * there are two (64 bytes) and blocks of 64 bytes for texts of 20 to 30
 * (50 bytes a string) are nearly two thirds. In each piece just parsed:
 *
 * - a member name seen before is replaced by the first of its kind, marked
 *   as one of the module's interned strings (OPA_STRING_INTERNED), which the
 *   module never frees;
 * - a number seen before (the same text) by the first of its kind;
 * - an array element's index number by the first index number of that value;
 * - an array's element storage by storage for exactly its elements;
 * - a short string's text is moved into a block of texts (#string).
 *
 * For 100,000 tenants the tree is 47 MB.
 *
 * The copies are freed at once (opa_value_free, opa_free), so the parser
 * reuses their blocks for the next piece: the module's memory holds the
 * shared tree, not the tree and its copies.
 *
 * The tree means what the parsed one does, and stays whole:
 * - the module never changes the data document while evaluating (it reads
 *   it and allocates past it);
 * - the module frees a value with everything in it (opa_value_free, which
 *   opa_value_add_path calls on a value it replaces and opa_value_remove_path
 *   on one it removes), so a value that will be freed must share nothing:
 *   the values the evaluator replaces after the load (CompactOptions.replaced)
 *   are left as parsed, and when inserting a member replaced another (a name
 *   repeated in a large object), the load starts again sharing nothing;
 * - the module's dump of it is the whole text's, and the same calls get the
 *   same answers (test/policy/data-pieces.test.ts).
 *
 * Relies on the module's value layout (OPA's value.h), checked on a parsed
 * probe before it is used: when anything is not as expected, the pieces are
 * left as parsed.
 */
class Compactor {
  readonly #exports: DataExports;
  readonly #memory: WebAssembly.Memory;
  #bytes: Buffer;
  #view: DataView;
  /** Shared member names and numbers, by a hash of their text: [address, text address, text length] each. */
  readonly #names = new Map<number, number[]>();
  readonly #numbers = new Map<number, number[]>();
  #shared = 0;
  readonly #indexes: number[] = [];
  /** Where the next short string's text goes in the current text block, and where the block ends. */
  #textAt = 0;
  #textEnd = 0;

  private constructor(exports: DataExports, memory: WebAssembly.Memory) {
    this.#exports = exports;
    this.#memory = memory;
    this.#bytes = Buffer.from(memory.buffer);
    this.#view = new DataView(memory.buffer);
  }

  /**
   * A compactor, when a probe parsed by the module (`parse`) is laid out as
   * the compactor reads it and the module does not free an interned string;
   * undefined otherwise.
   */
  static probe(exports: DataExports, memory: WebAssembly.Memory, parse: (text: string) => number): Compactor | undefined {
    const c = new Compactor(exports, memory);
    try {
      return c.#probe(parse) ? c : undefined;
    } catch {
      return undefined;
    }
  }

  #probe(parse: (text: string) => number): boolean {
    const object = parse('{"ab":[7,"xyz"]}');
    if (object === 0) return false;
    this.#fresh();
    const u32 = (address: number): number => this.#view.getUint32(address, true);
    const b = this.#bytes;
    // The object: type, 8 buckets, 1 member; its block as the allocator makes it (size, no free-list links).
    if (b[object] !== OPA_OBJECT || u32(object + 8) !== 8 || this.length(object) !== 1) return false;
    if (u32(object - BLOCK_HEADER) !== 16 || u32(object - 8) !== 0 || u32(object - 4) !== 0) return false;
    const buckets = u32(object + 4);
    let elem = 0;
    for (let i = 0; i < 8; i++) {
      const e = u32(buckets + 4 * i);
      if (e === 0) continue;
      if (elem !== 0) return false;
      elem = e;
    }
    if (elem === 0 || u32(elem + 8) !== 0) return false;
    const name = u32(elem);
    if (!this.#isString(name, "ab") || b[name + 1] !== 1) return false;
    const array = u32(elem + 4);
    if (b[array] !== OPA_ARRAY || u32(array + 8) !== 2 || u32(array + 12) < 2) return false;
    const elems = u32(array + 4);
    for (let i = 0; i < 2; i++) {
      const index = u32(elems + 8 * i);
      if (b[index] !== OPA_NUMBER || b[index + 1] !== NUMBER_REPR_INT || this.#view.getBigInt64(index + 8, true) !== BigInt(i)) return false;
    }
    const seven = u32(elems + 4);
    if (b[seven] !== OPA_NUMBER || b[seven + 1] !== NUMBER_REPR_REF || this.#numberText(seven) !== "7" || b[seven + 16] !== 1) return false;
    if (!this.#isString(u32(elems + 12), "xyz")) return false;
    // Freeing the object frees what it holds, but not an interned string: its block gets no free-list links.
    b[name] = OPA_STRING_INTERNED;
    this.#exports.opa_value_free(object);
    this.#fresh();
    return u32(name - 8) === 0 && u32(name - 4) === 0;
  }

  /** The number of members of the object at `object`. */
  length(object: number): number {
    this.#fresh();
    return this.#view.getUint32(object + 12, true);
  }

  #isString(address: number, text: string): boolean {
    const b = this.#bytes;
    if (b[address] !== OPA_STRING && b[address] !== OPA_STRING_INTERNED) return false;
    const length = this.#view.getUint32(address + 4, true);
    const chars = this.#view.getUint32(address + 8, true);
    return length === text.length && b.toString("latin1", chars, chars + length) === text;
  }

  #numberText(number: number): string {
    const chars = this.#view.getUint32(number + 8, true);
    return this.#bytes.toString("latin1", chars, chars + this.#view.getUint32(number + 12, true));
  }

  /** Views of the memory, made again when it has grown (the old buffer is detached: its views are empty). */
  #fresh(): void {
    if (this.#bytes.length === 0) {
      this.#bytes = Buffer.from(this.#memory.buffer);
      this.#view = new DataView(this.#memory.buffer);
    }
  }

  /** Compact the value just parsed as one piece. */
  piece(value: number): void {
    this.#fresh();
    const type = this.#bytes[value];
    if (type === OPA_OBJECT) this.#object(value);
    else if (type === OPA_ARRAY) this.#array(value);
  }

  // this.#view, never a local copy of it: compacting a member may grow the memory (a new buffer).

  #object(object: number): void {
    const buckets = this.#view.getUint32(object + 4, true);
    const n = this.#view.getUint32(object + 8, true);
    for (let i = 0; i < n; i++) {
      for (let elem = this.#view.getUint32(buckets + 4 * i, true); elem !== 0; elem = this.#view.getUint32(elem + 8, true)) {
        const name = this.#view.getUint32(elem, true);
        const shared = this.#name(name);
        if (shared !== name) {
          this.#view.setUint32(elem, shared, true);
          this.#exports.opa_value_free(name);
        }
        const member = this.#view.getUint32(elem + 4, true);
        const replacement = this.#member(member);
        if (replacement !== member) this.#view.setUint32(elem + 4, replacement, true);
      }
    }
  }

  #array(array: number): void {
    const length = this.#view.getUint32(array + 8, true);
    if (length === 0) return;
    for (let i = 0; i < length; i++) {
      const at = this.#view.getUint32(array + 4, true) + 8 * i;
      if (i < SHARED_INDEXES) {
        const index = this.#view.getUint32(at, true);
        const shared = this.#indexes[i];
        if (shared === undefined) {
          this.#indexes[i] = index;
        } else if (shared !== index) {
          this.#view.setUint32(at, shared, true);
          this.#exports.opa_value_free(index);
        }
      }
      const element = this.#view.getUint32(at + 4, true);
      const replacement = this.#member(element);
      if (replacement !== element) this.#view.setUint32(at + 4, replacement, true);
    }
    // Storage for exactly its elements (the parser makes room for 10, then doubles).
    if (this.#view.getUint32(array + 12, true) > length) {
      const exact = this.#exports.opa_malloc(8 * length);
      this.#fresh();
      const elems = this.#view.getUint32(array + 4, true);
      this.#bytes.copyWithin(exact, elems, elems + 8 * length);
      this.#view.setUint32(array + 4, exact, true);
      this.#view.setUint32(array + 12, length, true);
      this.#exports.opa_free(elems);
    }
  }

  /** A member's or element's value: the shared number for a number, else the value, compacted. */
  #member(value: number): number {
    const type = this.#bytes[value];
    if (type === OPA_NUMBER) return this.#number(value);
    if (type === OPA_STRING) this.#string(value);
    else if (type === OPA_OBJECT) this.#object(value);
    else if (type === OPA_ARRAY) this.#array(value);
    return value;
  }

  /**
   * Move a short string's text into the text block (the allocator gives a
   * text of 17 to 64 bytes a block of 64, with a 12-byte header): the string
   * no longer owns it (its `free` flag unset), so the module never frees it.
   */
  #string(string: number): void {
    const b = this.#bytes;
    const length = this.#view.getUint32(string + 4, true);
    if (b[string + 1] !== 1 || length > SHORT_TEXT || length === 0) return;
    if (this.#textAt + length > this.#textEnd) {
      this.#textAt = this.#exports.opa_malloc(TEXT_BLOCK);
      this.#textEnd = this.#textAt + TEXT_BLOCK;
      this.#fresh();
    }
    const chars = this.#view.getUint32(string + 8, true);
    this.#bytes.copyWithin(this.#textAt, chars, chars + length);
    this.#view.setUint32(string + 8, this.#textAt, true);
    this.#bytes[string + 1] = 0;
    this.#textAt += length;
    this.#exports.opa_free(chars);
  }

  #name(name: number): number {
    if (this.#bytes[name] !== OPA_STRING) return name;
    const chars = this.#view.getUint32(name + 8, true);
    const length = this.#view.getUint32(name + 4, true);
    const shared = this.#find(this.#names, chars, length, name);
    // The first of its kind (or one the table had no room for) is marked
    // interned: shared from now on, the module must never free it.
    if (shared === name) this.#bytes[name] = OPA_STRING_INTERNED;
    return shared;
  }

  #number(number: number): number {
    if (this.#bytes[number + 1] !== NUMBER_REPR_REF) return number;
    const shared = this.#find(this.#numbers, this.#view.getUint32(number + 8, true), this.#view.getUint32(number + 12, true), number);
    if (shared !== number) this.#exports.opa_value_free(number);
    return shared;
  }

  /**
   * The shared value whose text is the `length` bytes at `chars`; `value`
   * itself when there is none yet, which is then shared, unless
   * SHARED_VALUES are (then `value` is returned and not remembered).
   */
  #find(table: Map<number, number[]>, chars: number, length: number, value: number): number {
    const b = this.#bytes;
    // FNV-1a over the bytes.
    let hash = 0x811c9dc5 ^ length;
    for (let i = 0; i < length; i++) hash = Math.imul(hash ^ b[chars + i]!, 0x01000193);
    const entries = table.get(hash);
    if (entries !== undefined) {
      for (let e = 0; e < entries.length; e += 3) {
        const other = entries[e + 1]!;
        if (entries[e + 2] !== length) continue;
        let i = 0;
        while (i < length && b[chars + i] === b[other + i]) i++;
        if (i === length) return entries[e]!;
      }
    }
    if (this.#shared >= SHARED_VALUES) return value;
    this.#shared++;
    if (entries === undefined) table.set(hash, [value, chars, length]);
    else entries.push(value, chars, length);
    return value;
  }
}
