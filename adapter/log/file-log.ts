/**
 * FileDecisionLog: the durable, tamper-evident record sink (issue 4).
 *
 * - Append-only JSON Lines, one canonical JSON record per line, hash-chained
 *   (see chain.ts), one writer per log (see lock.ts).
 * - write() resolves only after the record's bytes are fdatasync'ed.
 *   Records written while a sync is in flight are committed together by the
 *   next one: one write(2) and one fdatasync(2) for the whole group.
 * - Creating a file (the first one, or a rotation) fsyncs the directory, so
 *   the file's name is as durable as its records.
 * - Rotation by size continues the chain in PATH.1, PATH.2, ...
 * - Any write, sync or rotation error fails the sink for good: that write
 *   and every later one reject with RecordUnavailableError (code
 *   "record_unavailable", `cause` the first error). After a failed fsync the
 *   kernel may have dropped the dirty pages and a retry could falsely
 *   succeed, so nothing is retried.
 * - Opening checks the whole chain. A torn final line (bytes after the last
 *   newline of the last file: a crash mid-write) is cut off and synced, or,
 *   when it is a whole valid record missing only its newline, completed; it
 *   is reported in `recovery` and through the logger. Anything else refuses
 *   to open with LogCorruptError naming the file and line.
 */
import { constants, open as openFile, stat, type FileHandle } from "node:fs/promises";
import { NotRegularFileError, openRegularFile, regularFileExists } from "../files.js";
import { dirname, resolve as resolvePath } from "node:path";
import { sealRecord } from "./chain.js";
import {
  CanonicalJsonError,
  DecisionLogError,
  LogCorruptError,
  RecordUnavailableError,
} from "./errors.js";
import { acquireLogLock, type LogLock } from "./lock.js";
import { logFiles, walkChain, type TornTail } from "./segments.js";

/** The file operations the writer uses; replaceable only to inject faults in tests. */
export interface LogFileHandle {
  write(buffer: Uint8Array, offset: number, length: number, position: null): Promise<{ bytesWritten: number }>;
  datasync(): Promise<void>;
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

export interface LogFileSystem {
  /** open(2) with numeric flags (constants.O_*). Also used on directories, to fsync them. */
  open(path: string, flags: number): Promise<LogFileHandle>;
}

/** A pino logger fits; any object with these methods does. */
export interface DecisionLogLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface FileDecisionLogOptions {
  /**
   * Start a new file (PATH.1, PATH.2, ...) before a write would take the
   * current one past this many bytes. A record larger than this still gets a
   * file of its own. Default 64 MiB.
   */
  readonly maxBytes?: number;
  /** Where recovery, rotation and failures are reported. Default: nowhere. */
  readonly logger?: DecisionLogLogger;
  /** File operations; default node:fs/promises. For fault-injection tests only. */
  readonly fs?: LogFileSystem;
}

export interface RecoveryReport {
  /** The log's files when it was opened, in chain order. */
  readonly files: readonly string[];
  /** Records in the chain after recovery. */
  readonly records: number;
  /** Hash of the last record after recovery. */
  readonly head: string;
  /** What was done about a torn final line, or null when there was none. */
  readonly tornTail:
    | (Omit<TornTail, "complete"> & { readonly action: "truncated" | "completed" })
    | null;
  /** Pid of the crashed writer whose stale lock was taken over, or null. */
  readonly staleLockFrom: number | null;
}

export interface DecisionLogStats {
  /** Records acknowledged (written and fdatasync'ed). */
  readonly records: number;
  /** Group commits: one write(2) and one fdatasync(2) each. */
  readonly commits: number;
  readonly dataSyncs: number;
  readonly directorySyncs: number;
  readonly bytes: number;
}

/** What write() resolves with: where the record now is in the chain. */
export interface WrittenRecord {
  readonly seq: number;
  readonly hash: string;
  readonly file: string;
}

interface Pending {
  readonly seq: number;
  readonly hash: string;
  readonly bytes: Buffer;
  readonly resolve: (written: WrittenRecord) => void;
  readonly reject: (error: unknown) => void;
}

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
const nodeFs: LogFileSystem = { open: (path, flags) => openFile(path, flags) as Promise<FileHandle> };
// O_NONBLOCK: opening a FIFO swapped in for the log never waits for a reader (a regular file ignores it).
const APPEND = constants.O_WRONLY | constants.O_APPEND | constants.O_NONBLOCK;

async function writeFully(handle: LogFileHandle, bytes: Buffer): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset, null);
    if (bytesWritten <= 0) throw new Error(`write made no progress at byte ${offset} of ${bytes.length}`);
    offset += bytesWritten;
  }
}

export class FileDecisionLog {
  readonly path: string;
  readonly recovery: RecoveryReport;

  readonly #fs: LogFileSystem;
  readonly #logger: DecisionLogLogger | undefined;
  readonly #maxBytes: number;
  readonly #lock: LogLock;
  #handle: LogFileHandle;
  #file: string;
  #fileIndex: number;
  #size: number;
  #nextSeq: number;
  #head: string;
  #queue: Pending[] = [];
  #draining: Promise<void> | null = null;
  #failure: RecordUnavailableError | null = null;
  #closed: Promise<void> | null = null;
  #stats = { records: 0, commits: 0, dataSyncs: 0, directorySyncs: 0, bytes: 0 };

  private constructor(init: {
    path: string;
    fs: LogFileSystem;
    logger: DecisionLogLogger | undefined;
    maxBytes: number;
    lock: LogLock;
    handle: LogFileHandle;
    file: string;
    fileIndex: number;
    size: number;
    count: number;
    head: string;
    recovery: RecoveryReport;
    directorySyncs: number;
  }) {
    this.path = init.path;
    this.#fs = init.fs;
    this.#logger = init.logger;
    this.#maxBytes = init.maxBytes;
    this.#lock = init.lock;
    this.#handle = init.handle;
    this.#file = init.file;
    this.#fileIndex = init.fileIndex;
    this.#size = init.size;
    this.#nextSeq = init.count + 1;
    this.#head = init.head;
    this.recovery = init.recovery;
    this.#stats.directorySyncs = init.directorySyncs;
  }

  /**
   * Open (creating if needed) the log at `path` for appending: take the
   * writer lock, check the whole chain, repair a torn final line. Rejects
   * with LogLockedError when another live process writes the log,
   * LogCorruptError when it is damaged, DecisionLogError("invalid_options")
   * for bad options, or the file system's error.
   */
  static async open(path: string, options: FileDecisionLogOptions = {}): Promise<FileDecisionLog> {
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
      throw new DecisionLogError("invalid_options", `maxBytes must be a positive integer, got ${String(maxBytes)}`);
    }
    const fs = options.fs ?? nodeFs;
    const logger = options.logger;
    // Said plainly here, rather than as ENOENT on the lock's temporary file.
    const directory = dirname(resolvePath(path));
    const isDirectory = await stat(directory).then((s) => s.isDirectory(), () => false);
    if (!isDirectory) {
      throw new DecisionLogError("invalid_options", `decision log ${path}: directory ${directory} does not exist (create it first)`);
    }
    // Before the lock (which would go beside it: /dev/full.lock): a log is a
    // regular file or nothing yet. /dev/full or a FIFO would take records and
    // keep none, /dev/zero would be read for ever.
    try {
      await regularFileExists(path);
    } catch (error) {
      if (error instanceof NotRegularFileError) throw new DecisionLogError("invalid_options", error.message, { cause: error });
      throw error;
    }
    const lock = await acquireLogLock(path);
    let handle: LogFileHandle | null = null;
    try {
      if (lock.takenOverFrom !== null) {
        logger?.warn({ log: path, pid: lock.takenOverFrom }, "decision log: took over the stale lock of a dead writer");
      }
      const files = await logFiles(path);
      const exists = await regularFileExists(path);
      const walk = exists ? await walkChain(files) : await walkChain([]);
      if (!walk.ok) throw new LogCorruptError(walk.file, walk.line, walk.reason);
      if (!exists && files.length > 1) {
        throw new LogCorruptError(path, 0, "cannot read file: ENOENT (its continuations exist)");
      }
      const file = files[files.length - 1] ?? path;
      let directorySyncs = 0;
      if (exists) {
        handle = await fs.open(file, APPEND);
      } else {
        handle = await fs.open(file, APPEND | constants.O_CREAT | constants.O_EXCL);
        await syncDirectory(fs, file);
        directorySyncs += 1;
      }
      let tornTail: RecoveryReport["tornTail"] = null;
      let size = exists ? await fileSize(file) : 0;
      if (walk.torn !== null) {
        const { complete, ...where } = walk.torn;
        if (complete) {
          await writeFully(handle, Buffer.from("\n"));
          size += 1;
        } else {
          await handle.truncate(walk.torn.offset);
          size = walk.torn.offset;
        }
        await handle.sync();
        tornTail = { ...where, action: complete ? "completed" : "truncated" };
        logger?.warn(
          { log: path, file: where.file, line: where.line, bytes: where.length, action: tornTail.action },
          complete
            ? "decision log: final record lacked its newline (crash mid-write); newline added"
            : "decision log: cut off a torn final line (crash mid-write)",
        );
      }
      const recovery: RecoveryReport = {
        files: exists ? walk.files : [file],
        records: walk.count,
        head: walk.head,
        tornTail,
        staleLockFrom: lock.takenOverFrom,
      };
      logger?.info({ log: path, records: walk.count, head: walk.head }, "decision log opened");
      return new FileDecisionLog({
        path,
        fs,
        logger,
        maxBytes,
        lock,
        handle,
        file,
        fileIndex: files.length - 1,
        size,
        count: walk.count,
        head: walk.head,
        recovery,
        directorySyncs,
      });
    } catch (error) {
      await handle?.close().catch(() => undefined);
      await lock.release();
      throw error;
    }
  }

  /** Hash of the last record written (acknowledged or still in flight). */
  get head(): string {
    return this.#head;
  }

  /** Set once a write or sync failed; every write rejects with it from then on. */
  get failure(): RecordUnavailableError | null {
    return this.#failure;
  }

  get stats(): DecisionLogStats {
    return { ...this.#stats };
  }

  /**
   * Append `record` (a plain JSON object without `seq`, `prev_hash` or
   * `hash`). Resolves once it is fdatasync'ed. Rejects with
   * RecordUnavailableError: code "record_invalid" when the record has no
   * canonical JSON form (nothing written, the sink stays usable), code
   * "record_unavailable" when the log is failed or closed.
   */
  write(record: object): Promise<WrittenRecord> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    if (this.#closed !== null) {
      return Promise.reject(new RecordUnavailableError(`decision log ${this.path} is closed`));
    }
    let sealed;
    try {
      sealed = sealRecord(record, this.#nextSeq, this.#head);
    } catch (error) {
      // CanonicalJsonError, or whatever a getter or proxy in the record threw.
      const problem = error instanceof CanonicalJsonError ? error.message : String(error);
      return Promise.reject(
        new RecordUnavailableError(`record not written to ${this.path}: ${problem}`, {
          code: "record_invalid",
          cause: error,
        }),
      );
    }
    this.#nextSeq += 1;
    this.#head = sealed.hash;
    return new Promise<WrittenRecord>((resolve, reject) => {
      this.#queue.push({ seq: sealed.seq, hash: sealed.hash, bytes: Buffer.from(`${sealed.text}\n`), resolve, reject });
      this.#draining ??= this.#drain();
    });
  }

  /**
   * Wait for writes in flight, then release the file and the lock. Later
   * writes reject. Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      await this.#draining;
      try {
        await this.#handle.close();
      } finally {
        await this.#lock.release();
      }
    })();
    return this.#closed;
  }

  async #drain(): Promise<void> {
    // One microtask turn lets writes issued in the same turn (e.g. by the
    // callers whose previous writes the last commit just acknowledged) join
    // this commit rather than trail it alone. Cheaper than a macrotask.
    await Promise.resolve();
    while (this.#queue.length > 0) {
      const group = this.#queue;
      this.#queue = [];
      if (this.#failure !== null) {
        for (const item of group) item.reject(this.#failure);
        continue;
      }
      let done = 0;
      try {
        while (done < group.length) {
          const first = group[done] as Pending;
          if (this.#size > 0 && this.#size + first.bytes.length > this.#maxBytes) await this.#rotate();
          // Take every queued record that fits in this file (at least one).
          let end = done + 1;
          let bytes = first.bytes.length;
          while (end < group.length) {
            const next = (group[end] as Pending).bytes.length;
            if (this.#size + bytes + next > this.#maxBytes) break;
            bytes += next;
            end += 1;
          }
          const part = group.slice(done, end);
          await writeFully(this.#handle, part.length === 1 ? first.bytes : Buffer.concat(part.map((p) => p.bytes), bytes));
          this.#size += bytes;
          await this.#handle.datasync();
          this.#stats.commits += 1;
          this.#stats.dataSyncs += 1;
          this.#stats.records += part.length;
          this.#stats.bytes += bytes;
          for (const item of part) item.resolve({ seq: item.seq, hash: item.hash, file: this.#file });
          done = end;
        }
      } catch (error) {
        this.#fail(error);
        for (const item of group.slice(done)) item.reject(this.#failure);
      }
    }
    this.#draining = null;
  }

  async #rotate(): Promise<void> {
    const next = `${this.path}.${this.#fileIndex + 1}`;
    const handle = await this.#fs.open(next, APPEND | constants.O_CREAT | constants.O_EXCL);
    const previous = this.#handle;
    this.#handle = handle;
    this.#file = next;
    this.#fileIndex += 1;
    this.#size = 0;
    await previous.close();
    await syncDirectory(this.#fs, next);
    this.#stats.directorySyncs += 1;
    this.#logger?.info({ log: this.path, file: next }, "decision log: rotated to a new file");
  }

  #fail(cause: unknown): void {
    if (this.#failure !== null) return;
    this.#failure = new RecordUnavailableError(
      `decision log ${this.path} failed and accepts no more records: ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { cause },
    );
    this.#logger?.error({ log: this.path, file: this.#file, err: cause }, "decision log failed; records unavailable");
  }
}

/** Open the log at `path` for appending; see FileDecisionLog.open. */
export function openFileLog(path: string, options?: FileDecisionLogOptions): Promise<FileDecisionLog> {
  return FileDecisionLog.open(path, options);
}

async function syncDirectory(fs: LogFileSystem, file: string): Promise<void> {
  const dir = await fs.open(dirname(file), constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

async function fileSize(path: string): Promise<number> {
  const handle = await openRegularFile(path, constants.O_RDONLY);
  try {
    return (await handle.stat()).size;
  } finally {
    await handle.close();
  }
}
