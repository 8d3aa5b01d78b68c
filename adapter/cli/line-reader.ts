/**
 * The lines of `veto eval`'s standard input (docs/contract.md §8), read with a
 * bounded buffer: bytes are held only until a line is complete, and never more
 * than the input limit of them. A line longer than the limit is answered as
 * soon as the limit is passed, and the rest of it is skipped as it arrives,
 * never held; the lines after it are read as usual. So no input, however long
 * its lines, can exhaust the process's memory or V8's largest string.
 *
 * A line ends at "\n" (JSON Lines); a "\r" just before it belongs to the line
 * ending. A lone "\r" is JSON white space, not a line end. The text after the
 * last "\n" is a line when it is not empty.
 */

/** One line of input: its text, or why it cannot be read (then its text is not kept). */
export type InputLine =
  { readonly text: string; readonly unreadable?: undefined } | { readonly text?: undefined; readonly unreadable: string };

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/**
 * The lines of `input`, in order; every line of the input is one item. A line
 * of more than `maxBytes` bytes (not counting its line ending) and a line that
 * is not UTF-8 come back as `unreadable`.
 */
export async function* readLines(input: AsyncIterable<Uint8Array | string>, maxBytes: number): AsyncGenerator<InputLine> {
  const tooLong: InputLine = { unreadable: `the line is longer than ${maxBytes} bytes (the input limit), so it was not read` };
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const finish = (bytes: Uint8Array): InputLine => {
    const line = bytes.at(-1) === CARRIAGE_RETURN ? bytes.subarray(0, -1) : bytes;
    if (line.length > maxBytes) return tooLong;
    try {
      return { text: decoder.decode(line) };
    } catch {
      return { unreadable: "the line is not valid UTF-8, so it is not JSON text" };
    }
  };
  // The start of the current line, copied out of the chunks it arrived in.
  let held: Buffer[] = [];
  let heldBytes = 0;
  // Inside a line already answered as too long: drop bytes up to its newline.
  let skipping = false;
  for await (const chunk of input) {
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
      if (skipping) {
        if (newline === -1) break;
        skipping = false;
      } else if (heldBytes + (end - start) > maxBytes + 1) {
        // Over the limit even if its last byte is the "\r" of a "\r\n".
        held = [];
        heldBytes = 0;
        yield tooLong;
        if (newline === -1) {
          skipping = true;
          break;
        }
      } else if (newline !== -1 && heldBytes === 0) {
        // The whole line is in this chunk: no copy.
        yield finish(bytes.subarray(start, end));
      } else {
        held.push(Buffer.from(bytes.subarray(start, end)));
        heldBytes += end - start;
        if (newline === -1) break;
        const line = Buffer.concat(held, heldBytes);
        held = [];
        heldBytes = 0;
        yield finish(line);
      }
      start = end + 1;
    }
  }
  if (!skipping && heldBytes > 0) yield finish(Buffer.concat(held, heldBytes));
}
