/**
 * Reading a whole file the adapter or the CLI was pointed at (a bundle, a data
 * document, a key) without letting its size decide how much memory is used: a
 * regular file larger than the limit is refused from its size before a byte
 * is read, and one still growing is read only up to the limit. Anything but a
 * regular file (a directory, a FIFO, /dev/zero) is refused at once with
 * NotRegularFileError (files.ts): it might never end, or never open.
 */
import { constants } from "node:fs";
import { openRegularFile } from "./files.js";

/** The file is larger than the limit; nothing of it was kept. */
export class FileTooLargeError extends Error {
  override name = "FileTooLargeError";
  readonly maxBytes: number;

  constructor(maxBytes: number) {
    super(`it is larger than ${maxBytes} bytes (the limit)`);
    this.maxBytes = maxBytes;
  }
}

const READ_CHUNK = 1 << 20;

/** The bytes of `path`; rejects with FileTooLargeError over `maxBytes`, or with the file system's error. */
export async function readFileBounded(path: string, maxBytes: number): Promise<Buffer> {
  const handle = await openRegularFile(path, constants.O_RDONLY);
  try {
    const stat = await handle.stat();
    if (stat.isFile() && stat.size > maxBytes) throw new FileTooLargeError(maxBytes);
    const chunks: Buffer[] = [];
    const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, maxBytes + 1));
    let total = 0;
    for (;;) {
      // One byte past the limit tells a file at the limit from one over it.
      const want = Math.min(buffer.length, maxBytes + 1 - total);
      const { bytesRead } = await handle.read(buffer, 0, want, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > maxBytes) throw new FileTooLargeError(maxBytes);
      chunks.push(Buffer.from(buffer.subarray(0, bytesRead)));
    }
    return Buffer.concat(chunks, total);
  } finally {
    await handle.close();
  }
}
