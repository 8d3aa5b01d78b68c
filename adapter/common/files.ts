/**
 * Files named by operators (a bundle, a data file, a key, a decision log, a
 * records file) are regular files, or they are refused at once: reading
 * /dev/zero never ends, opening a FIFO waits for a writer that may never
 * come, /dev/full and /dev/null take records and keep none, and a directory is
 * not a file. Every open here is O_NONBLOCK (it cannot wait on a FIFO; a
 * regular file's reads and writes ignore the flag) and O_NOCTTY, and the open
 * file is checked with fstat, so a symlink is judged by what it points to and
 * nothing is read before the check.
 */
import { constants, type Stats } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";

/** What `path` turned out to be, when it is not a regular file. */
export class NotRegularFileError extends Error {
  override name = "NotRegularFileError";
  readonly code = "not_regular_file";
  readonly path: string;

  constructor(path: string, kind: string) {
    super(`${path} is not a regular file (it is ${kind})`);
    this.path = path;
  }
}

/** "a directory", "a character device", ...: for messages. */
export function fileKind(stats: Stats): string {
  if (stats.isDirectory()) return "a directory";
  if (stats.isCharacterDevice()) return "a character device";
  if (stats.isBlockDevice()) return "a block device";
  if (stats.isFIFO()) return "a FIFO";
  if (stats.isSocket()) return "a socket";
  if (stats.isFile()) return "a regular file";
  return "not a file";
}

/**
 * open(2) with `flags` (constants.O_*) plus O_NONBLOCK and O_NOCTTY, keeping
 * the handle only when it is a regular file. Rejects with
 * NotRegularFileError, or with open's own error (ENOENT, EACCES, ENXIO for a
 * FIFO without a reader opened for writing, ...).
 */
export async function openRegularFile(path: string, flags: number, mode?: number): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(path, flags | constants.O_NONBLOCK | constants.O_NOCTTY, mode);
  } catch (error) {
    // A directory opened for writing fails before it can be looked at.
    if ((error as NodeJS.ErrnoException).code === "EISDIR") throw new NotRegularFileError(path, "a directory");
    throw error;
  }
  let stats: Stats;
  try {
    stats = await handle.stat();
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
  if (!stats.isFile()) {
    await handle.close().catch(() => undefined);
    throw new NotRegularFileError(path, fileKind(stats));
  }
  return handle;
}

/** The whole of the regular file at `path` (see openRegularFile). */
export async function readRegularFile(path: string): Promise<Buffer> {
  const handle = await openRegularFile(path, constants.O_RDONLY);
  try {
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/**
 * Whether `path` exists as a regular file (false when it does not exist);
 * rejects with NotRegularFileError when it exists as something else.
 */
export async function regularFileExists(path: string): Promise<boolean> {
  try {
    await (await openRegularFile(path, constants.O_RDONLY)).close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}
