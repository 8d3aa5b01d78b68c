/**
 * Lines of a byte stream read with a bounded buffer: `veto eval`'s standard
 * input (docs/contract.md §8) and the MCP proxy's host channel (docs/mcp.md).
 * Bytes are held only until a line is complete, and never more than the limit
 * of them. A line longer than the limit is reported as soon as the limit is
 * passed, and the rest of it is skipped as it arrives, never held (a consumer
 * may watch the skipped bytes go by); the lines after it are read as usual. So
 * no input, however long its lines, can exhaust the process's memory or V8's
 * largest string.
 *
 * A line ends at "\n" (JSON Lines); a "\r" just before it belongs to the line
 * ending. A lone "\r" is JSON white space, not a line end. The text after the
 * last "\n" is a line when it is not empty.
 */

/** One line of input: its text, or why it cannot be read (then its text is not kept). */
export type InputLine =
  { readonly text: string; readonly unreadable?: undefined } | { readonly text?: undefined; readonly unreadable: string };

/** What a LineSplitter reports, in input order. */
export interface LineEvents {
  /** A line of at most the limit: its text, or why it cannot be read; `bytes` are its bytes (valid until this returns). */
  line(read: InputLine, bytes: Uint8Array): void;
  /** A line passed the limit: called as soon as it does. */
  tooLong(problem: string): void;
  /**
   * The bytes of a line over the limit, from its first, as they pass (each
   * valid until this returns); `end` is true once, at the line's end.
   */
  skipped?(bytes: Uint8Array, end: boolean): void;
}

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const NOTHING = new Uint8Array(0);

/** Splits pushed chunks into lines of at most `maxBytes` bytes (not counting the line ending). */
export class LineSplitter {
  readonly #maxBytes: number;
  readonly #events: LineEvents;
  readonly #tooLong: string;
  readonly #decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  // The start of the current line, copied out of the chunks it arrived in.
  #held: Buffer[] = [];
  #heldBytes = 0;
  // Inside a line already reported as too long: drop bytes up to its newline.
  #skipping = false;

  constructor(maxBytes: number, events: LineEvents) {
    this.#maxBytes = maxBytes;
    this.#events = events;
    this.#tooLong = `the line is longer than ${maxBytes} bytes (the input limit), so it was not read`;
  }

  push(chunk: Uint8Array | string): void {
    const bytes =
      typeof chunk === "string"
        ? Buffer.from(chunk, "utf8")
        : Buffer.isBuffer(chunk)
          ? chunk
          : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = 0;
    while (start < bytes.length) {
      const newline = bytes.indexOf(NEWLINE, start);
      const end = newline === -1 ? bytes.length : newline;
      if (this.#skipping) {
        this.#events.skipped?.(bytes.subarray(start, end), newline !== -1);
        if (newline === -1) break;
        this.#skipping = false;
      } else if (this.#heldBytes + (end - start) > this.#maxBytes + 1) {
        // Over the limit even if its last byte is the "\r" of a "\r\n".
        const held = this.#held;
        this.#held = [];
        this.#heldBytes = 0;
        this.#events.tooLong(this.#tooLong);
        for (const piece of held) this.#events.skipped?.(piece, false);
        this.#events.skipped?.(bytes.subarray(start, end), newline !== -1);
        if (newline === -1) {
          this.#skipping = true;
          break;
        }
      } else if (newline !== -1 && this.#heldBytes === 0) {
        // The whole line is in this chunk: no copy.
        this.#finish(bytes.subarray(start, end));
      } else {
        this.#held.push(Buffer.from(bytes.subarray(start, end)));
        this.#heldBytes += end - start;
        if (newline === -1) break;
        const line = Buffer.concat(this.#held, this.#heldBytes);
        this.#held = [];
        this.#heldBytes = 0;
        this.#finish(line);
      }
      start = end + 1;
    }
  }

  /** The input ended: the text after the last newline, if any, is a line. */
  end(): void {
    if (this.#skipping) {
      this.#skipping = false;
      this.#events.skipped?.(NOTHING, true);
    } else if (this.#heldBytes > 0) {
      const line = Buffer.concat(this.#held, this.#heldBytes);
      this.#held = [];
      this.#heldBytes = 0;
      this.#finish(line);
    }
  }

  #finish(bytes: Uint8Array): void {
    const line = bytes.at(-1) === CARRIAGE_RETURN ? bytes.subarray(0, -1) : bytes;
    if (line.length > this.#maxBytes) {
      // Only its "\r" kept it within the limit as it arrived.
      this.#events.tooLong(this.#tooLong);
      this.#events.skipped?.(line, true);
      return;
    }
    let read: InputLine;
    try {
      read = { text: this.#decoder.decode(line) };
    } catch {
      read = { unreadable: "the line is not valid UTF-8, so it is not JSON text" };
    }
    this.#events.line(read, line);
  }
}

/**
 * The lines of `input`, in order; every line of the input is one item. A line
 * of more than `maxBytes` bytes (not counting its line ending) and a line that
 * is not UTF-8 come back as `unreadable`.
 */
export async function* readLines(input: AsyncIterable<Uint8Array | string>, maxBytes: number): AsyncGenerator<InputLine> {
  const lines: InputLine[] = [];
  const splitter = new LineSplitter(maxBytes, {
    line: (read) => lines.push(read),
    tooLong: (problem) => lines.push({ unreadable: problem }),
  });
  for await (const chunk of input) {
    splitter.push(chunk);
    yield* lines.splice(0);
  }
  splitter.end();
  yield* lines.splice(0);
}
