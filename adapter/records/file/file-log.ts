/**
 * FileDecisionLog: the durable, tamper-evident record sink.
 *
 * - Append-only JSON Lines, one canonical JSON record per line, hash-chained
 *   (see chain.ts), one writer per log (see lock.ts).
 * - write() resolves only after the record's bytes are fdatasync'ed.
 *   A record written while nothing is in flight is appended and its sync
 *   started within the write() call; records written while a sync is in
 *   flight are committed together by the next one: one write(2) and one
 *   fdatasync(2) for the whole group.
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
 * - With `checkpointKey` (Ed25519), the writer signs checkpoints (see
 *   checkpoint.ts) into the log: on open, every
 *   `checkpointEvery` records, at the end of a file it rotates away from
 *   (after the next file exists, so a crash never leaves a rotation
 *   checkpoint pointing at nothing), and at close. Without a key the lines
 *   are exactly the records.
 */
import { randomBytes } from "node:crypto";
import { fdatasync, writeSync } from "node:fs";
import { constants, open as openFile, stat } from "node:fs/promises";
import { toError } from "../../common/errors.js";
import { NotRegularFileError, openRegularFile, regularFileExists } from "../../common/files.js";
import { dirname, resolve as resolvePath } from "node:path";
import { sealCheckpoint, sealRecord, type SealedLine } from "../chain.js";
import {
  checkpointSigner,
  uncoveredText,
  type CheckpointKeyInput,
  type CheckpointReason,
  type CheckpointSigner,
  type SegmentPlace,
} from "../checkpoint.js";
import { CanonicalJsonError, DecisionLogError, LogCorruptError, RecordUnavailableError } from "../errors.js";
import { acquireLogLock, type LogLock } from "./lock.js";
import { MAX_RECORD_LINE_BYTES, logFiles, walkChain, type TornTail } from "./segments.js";

/** The file operations the writer uses; replaceable only to inject faults in tests. */
export interface LogFileHandle {
  write(buffer: Uint8Array, offset: number, length: number, position: null): Promise<{ bytesWritten: number }>;
  /**
   * Optional: append at once and return the bytes written (as write(2)), so
   * that a commit starts its sync in the same turn. Without it, commits
   * await write().
   */
  appendNow?(buffer: Uint8Array, offset: number, length: number): number;
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
  /**
   * Ed25519 private key (PEM text or bytes, or a KeyObject) to sign
   * checkpoints with. Verifiers pick its public key by key id ("ed25519:" +
   * SHA-256 of the public key). A log that holds checkpoints can only be
   * opened with a key. Default: none (no checkpoints; lines are exactly the
   * records).
   */
  readonly checkpointKey?: CheckpointKeyInput;
  /** With checkpointKey: sign a checkpoint after this many records. Default 1,000. */
  readonly checkpointEvery?: number;
  /** Milliseconds since the epoch, for a checkpoint's `time`. Default Date.now. */
  readonly clock?: () => number;
}

export interface RecoveryReport {
  /** The log's files when it was opened, in chain order. */
  readonly files: readonly string[];
  /** Entries in the chain after recovery (records, and checkpoints when the log has them). */
  readonly records: number;
  /** Hash of the last entry after recovery. */
  readonly head: string;
  /** What was done about a torn final line, or null when there was none. */
  readonly tornTail: (Omit<TornTail, "complete"> & { readonly action: "truncated" | "completed" }) | null;
  /** Pid of the crashed writer whose stale lock was taken over, or null. */
  readonly staleLockFrom: number | null;
}

export interface DecisionLogStats {
  /** Records acknowledged (written and fdatasync'ed). */
  readonly records: number;
  /** Checkpoints written and fdatasync'ed. */
  readonly checkpoints: number;
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
  readonly kind: "record" | "checkpoint";
  readonly seq: number;
  readonly hash: string;
  readonly bytes: Buffer;
  /**
   * Start the next file before this entry; `closing` is the rotation
   * checkpoint that ends the current file (written once the next file exists).
   */
  readonly rotate: { readonly closing: Buffer | null } | null;
  readonly resolve: (written: WrittenRecord) => void;
  readonly reject: (error: unknown) => void;
}

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
const DEFAULT_CHECKPOINT_EVERY = 1_000;
const ignore = (): void => undefined;
/**
 * The default file operations: appends with write(2) in the caller's turn (a
 * regular file's page cache takes them at once; awaiting the thread pool for
 * it would add a hop to every commit), fdatasync(2) on the thread pool (the
 * wait every record must make). A group's records are still acknowledged
 * only once the fdatasync after their write returned.
 */
const nodeFs: LogFileSystem = {
  open: async (path, flags) => {
    const handle = await openFile(path, flags);
    const fd = handle.fd;
    return {
      write(buffer, offset, length) {
        try {
          return Promise.resolve({ bytesWritten: writeSync(fd, buffer, offset, length) });
        } catch (error) {
          return Promise.reject(toError(error));
        }
      },
      appendNow: (buffer, offset, length) => writeSync(fd, buffer, offset, length),
      datasync: () => new Promise<void>((resolve, reject) => fdatasync(fd, (error) => (error === null ? resolve() : reject(error)))),
      sync: () => handle.sync(),
      truncate: (length) => handle.truncate(length),
      close: () => handle.close(),
    };
  },
};
// O_NONBLOCK: opening a FIFO swapped in for the log never waits for a reader (a regular file ignores it).
const APPEND = constants.O_WRONLY | constants.O_APPEND | constants.O_NONBLOCK;

/** writeFully, in the caller's turn, for a handle that can append at once. */
function appendFully(handle: LogFileHandle & Required<Pick<LogFileHandle, "appendNow">>, bytes: Buffer): void {
  let offset = 0;
  while (offset < bytes.length) {
    const bytesWritten = handle.appendNow(bytes, offset, bytes.length - offset);
    if (bytesWritten <= 0) throw new Error(`write made no progress at byte ${offset} of ${bytes.length}`);
    offset += bytesWritten;
  }
}

async function writeFully(handle: LogFileHandle, bytes: Buffer): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset, null);
    if (bytesWritten <= 0) throw new Error(`write made no progress at byte ${offset} of ${bytes.length}`);
    offset += bytesWritten;
  }
}

/** The signing side of a writer with a checkpoint key. */
interface Checkpointing {
  readonly signer: CheckpointSigner;
  readonly every: number;
  readonly clock: () => number;
  readonly logId: string;
}

export class FileDecisionLog {
  readonly path: string;
  readonly recovery: RecoveryReport;

  readonly #fs: LogFileSystem;
  readonly #logger: DecisionLogLogger | undefined;
  readonly #maxBytes: number;
  readonly #lock: LogLock;
  readonly #checkpointing: Checkpointing | null;
  #handle: LogFileHandle;
  #file: string;
  #fileIndex: number;
  #nextSeq: number;
  #head: string;
  // Where entries go, decided as they are queued (so that a checkpoint can
  // name its file before it is written): the file's index, its size with
  // everything queued, and where it starts in the chain.
  #planIndex: number;
  #planSize: number;
  #planAfter: { seq: number; hash: string };
  #recordsSinceCheckpoint: number;
  /** The last entry queued: a record, or a checkpoint and why it was written. */
  #lastEntry: "record" | CheckpointReason | null;
  #queue: Pending[] = [];
  /** The commit loop while it runs (#drain); null when nothing is queued or in flight. */
  #draining: Promise<void> | null = null;
  #drainRunning = false;
  #failure: RecordUnavailableError | null = null;
  #closed: Promise<void> | null = null;
  #stats = { records: 0, checkpoints: 0, commits: 0, dataSyncs: 0, directorySyncs: 0, bytes: 0 };

  private constructor(init: {
    path: string;
    fs: LogFileSystem;
    logger: DecisionLogLogger | undefined;
    maxBytes: number;
    lock: LogLock;
    checkpointing: Checkpointing | null;
    handle: LogFileHandle;
    file: string;
    fileIndex: number;
    size: number;
    count: number;
    head: string;
    segment: SegmentPlace;
    uncovered: number;
    lastEntry: "record" | CheckpointReason | null;
    recovery: RecoveryReport;
    directorySyncs: number;
  }) {
    this.path = init.path;
    this.#fs = init.fs;
    this.#logger = init.logger;
    this.#maxBytes = init.maxBytes;
    this.#lock = init.lock;
    this.#checkpointing = init.checkpointing;
    this.#handle = init.handle;
    this.#file = init.file;
    this.#fileIndex = init.fileIndex;
    this.#nextSeq = init.count + 1;
    this.#head = init.head;
    this.#planIndex = init.fileIndex;
    this.#planSize = init.size;
    this.#planAfter = { seq: init.segment.after_seq, hash: init.segment.after_hash };
    this.#recordsSinceCheckpoint = init.uncovered;
    this.#lastEntry = init.lastEntry;
    this.recovery = init.recovery;
    this.#stats.directorySyncs = init.directorySyncs;
  }

  /**
   * Open (creating if needed) the log at `path` for appending: take the
   * writer lock, check the whole chain, repair a torn final line; with a
   * checkpoint key, also check the checkpoints it signed and sign what is
   * not yet covered. Rejects with LogLockedError when another live process
   * writes the log, LogCorruptError when it is damaged,
   * DecisionLogError("checkpoint_key_required") when it holds checkpoints
   * and no key was given, DecisionLogError("invalid_options") for bad
   * options, or the file system's error.
   */
  static async open(path: string, options: FileDecisionLogOptions = {}): Promise<FileDecisionLog> {
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
      throw new DecisionLogError("invalid_options", `maxBytes must be a positive integer, got ${String(maxBytes)}`);
    }
    const every = options.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY;
    if (!Number.isSafeInteger(every) || every < 1) {
      throw new DecisionLogError("invalid_options", `checkpointEvery must be a positive integer, got ${String(every)}`);
    }
    if (options.clock !== undefined && typeof options.clock !== "function") {
      throw new DecisionLogError("invalid_options", "clock must be a function returning epoch milliseconds");
    }
    const signer = options.checkpointKey === undefined ? null : checkpointSigner(options.checkpointKey);
    const fs = options.fs ?? nodeFs;
    const logger = options.logger;
    // Said plainly here, rather than as ENOENT on the lock's temporary file.
    const directory = dirname(resolvePath(path));
    const isDirectory = await stat(directory).then(
      (s) => s.isDirectory(),
      () => false,
    );
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
    // Until the FileDecisionLog exists: after that, its close() releases both.
    let owned = true;
    try {
      if (lock.takenOverFrom !== null) {
        logger?.warn({ log: path, pid: lock.takenOverFrom }, "decision log: took over the stale lock of a dead writer");
      }
      const files = await logFiles(path);
      const exists = await regularFileExists(path);
      // The writer checks the signatures of its own key; it cannot check another key's.
      const policy = { keys: signer === null ? undefined : new Map([[signer.keyId, signer.publicKey]]), unknownKeys: "accept" as const };
      const walk = exists ? await walkChain(files, undefined, policy) : await walkChain([], undefined, policy);
      if (!walk.ok) throw new LogCorruptError(walk.file, walk.line, walk.reason);
      if (!exists && files.length > 1) {
        throw new LogCorruptError(path, 0, "cannot read file: ENOENT (its continuations exist)");
      }
      const { last: lastCheckpoint, uncovered } = walk.checkpoints;
      if (signer === null && lastCheckpoint !== null) {
        throw new DecisionLogError(
          "checkpoint_key_required",
          `decision log ${path} holds signed checkpoints (the last by key ${lastCheckpoint.checkpoint.key_id}); open it with its signing key (checkpointKey, --signing-key) so that it stays covered`,
        );
      }
      if (signer !== null && lastCheckpoint?.checkpoint.reason === "close" && uncovered !== null) {
        // A writer with a key ends with a close checkpoint and writes nothing after it.
        throw new LogCorruptError(
          uncovered.file,
          uncovered.line,
          `line ${uncovered.line}: ${uncoveredText(uncovered.entries)} (the log was closed at ${lastCheckpoint.file} line ${lastCheckpoint.line}): written without the signing key, or forged; verify the log and move it aside`,
        );
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
        // In the last file, or in the one before an empty last file (a crash while rotating).
        const tornHandle = where.file === file ? handle : await fs.open(where.file, APPEND);
        try {
          if (complete) {
            await writeFully(tornHandle, Buffer.from("\n"));
          } else {
            await tornHandle.truncate(walk.torn.offset);
          }
          await tornHandle.sync();
        } finally {
          if (tornHandle !== handle) await tornHandle.close();
        }
        if (where.file === file) size = complete ? size + 1 : walk.torn.offset;
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
      const lastEntry = uncovered !== null ? "record" : (lastCheckpoint?.checkpoint.reason ?? null);
      const log = new FileDecisionLog({
        path,
        fs,
        logger,
        maxBytes,
        lock,
        checkpointing:
          signer === null
            ? null
            : { signer, every, clock: options.clock ?? Date.now, logId: walk.checkpoints.logId ?? randomBytes(16).toString("hex") },
        handle,
        file,
        fileIndex: files.length - 1,
        size,
        count: walk.count,
        head: walk.head,
        segment: walk.segment,
        uncovered: uncovered?.entries ?? 0,
        lastEntry,
        recovery,
        directorySyncs,
      });
      owned = false;
      // Vouch for what was found (a new log, records a crash left uncovered,
      // a rotation a crash interrupted) before taking new records. Always:
      // records of this session then follow an open checkpoint, so records
      // after a close checkpoint can only have been written without the key.
      if (signer !== null) {
        try {
          await log.#checkpoint("open");
        } catch (error) {
          await log.close().catch(ignore);
          throw error;
        }
      }
      return log;
    } catch (error) {
      if (owned) {
        await handle?.close().catch(() => undefined);
        await lock.release();
      }
      throw error;
    }
  }

  /** Hash of the last entry written (acknowledged or still in flight). */
  get head(): string {
    return this.#head;
  }

  /** The key id checkpoints are signed with, or null without a checkpoint key. */
  get checkpointKeyId(): string | null {
    return this.#checkpointing?.signer.keyId ?? null;
  }

  /** Set once a write or sync failed; every write rejects with it from then on. */
  get failure(): RecordUnavailableError | null {
    return this.#failure;
  }

  get stats(): DecisionLogStats {
    return { ...this.#stats };
  }

  /**
   * Append `record` (a plain JSON object without `seq`, `prev_hash`, `hash`
   * or `checkpoint`). Resolves once it is fdatasync'ed. Rejects with
   * RecordUnavailableError: code "record_invalid" when the record has no
   * canonical JSON form (nothing written, the sink stays usable), code
   * "record_unavailable" when the log is failed or closed.
   */
  write(record: object): Promise<WrittenRecord> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    if (this.#closed !== null) {
      return Promise.reject(new RecordUnavailableError(`decision log ${this.path} is closed`));
    }
    let sealed: SealedLine;
    let rotate: Pending["rotate"] = null;
    let closing: SealedLine | null = null;
    let bytes: Buffer;
    try {
      sealed = sealRecord(record, this.#nextSeq, this.#head);
      bytes = Buffer.from(`${sealed.text}\n`);
      if (this.#planSize > 0 && this.#planSize + bytes.length > this.#maxBytes) {
        if (this.#checkpointing !== null) {
          // The file ends with a checkpoint naming it; the record comes after it, in the next file.
          closing = this.#sealCheckpoint("rotation", this.#nextSeq, this.#head);
          sealed = sealRecord(record, this.#nextSeq + 1, closing.hash);
          bytes = Buffer.from(`${sealed.text}\n`);
        }
        rotate = { closing: closing === null ? null : Buffer.from(`${closing.text}\n`) };
      }
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
    if (bytes.length - 1 > MAX_RECORD_LINE_BYTES) {
      // A reader stops at such a line (segments.ts): it would make the log unverifiable.
      return Promise.reject(
        new RecordUnavailableError(`record not written to ${this.path}: it is longer than ${MAX_RECORD_LINE_BYTES} bytes`, {
          code: "record_invalid",
        }),
      );
    }
    if (rotate !== null) {
      if (closing !== null) {
        this.#planSize += Buffer.byteLength(closing.text) + 1;
        this.#advance(closing, "rotation");
      }
      this.#planIndex += 1;
      this.#planSize = 0;
      this.#planAfter = { seq: this.#nextSeq - 1, hash: this.#head };
    }
    this.#planSize += bytes.length;
    this.#advance(sealed, "record");
    const written = new Promise<WrittenRecord>((resolve, reject) => {
      this.#queue.push({ kind: "record", seq: sealed.seq, hash: sealed.hash, bytes, rotate, resolve, reject });
    });
    const checkpointing = this.#checkpointing;
    if (checkpointing !== null && this.#recordsSinceCheckpoint >= checkpointing.every) {
      // Its outcome is the log's: a failure fails the log and every write after it.
      this.#checkpoint("interval").catch(ignore);
    }
    this.#commitSoon();
    return written;
  }

  /**
   * Wait for writes in flight, sign a close checkpoint when there is a key,
   * then release the file and the lock. Later writes reject. Safe to call
   * more than once.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      try {
        if (this.#checkpointing !== null && this.#failure === null && this.#lastEntry !== "close") {
          await this.#checkpoint("close").catch((error: unknown) => {
            this.#logger?.error({ log: this.path, err: error }, "decision log: the close checkpoint could not be written");
          });
        }
        await this.#draining;
        await this.#handle.close();
      } finally {
        await this.#lock.release();
      }
    })();
    return this.#closed;
  }

  #advance(sealed: SealedLine, entry: "record" | CheckpointReason): void {
    this.#nextSeq = sealed.seq + 1;
    this.#head = sealed.hash;
    this.#lastEntry = entry;
    if (entry === "record") this.#recordsSinceCheckpoint += 1;
    else this.#recordsSinceCheckpoint = 0;
  }

  /** A checkpoint for the entries before `seq`, sealed as entry `seq`, naming the file it will be written in. */
  #sealCheckpoint(reason: CheckpointReason, seq: number, head: string): SealedLine {
    const c = this.#checkpointing as Checkpointing;
    const checkpoint = c.signer.sign({
      log_id: c.logId,
      seq: seq - 1,
      head,
      segment: { index: this.#planIndex, after_seq: this.#planAfter.seq, after_hash: this.#planAfter.hash },
      reason,
      time: new Date(c.clock()).toISOString(),
      key_id: c.signer.keyId,
    });
    return sealCheckpoint(checkpoint, seq, head);
  }

  /** Queue a checkpoint in the current file; resolves once it is synced. */
  #checkpoint(reason: CheckpointReason): Promise<void> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    let sealed: SealedLine;
    try {
      sealed = this.#sealCheckpoint(reason, this.#nextSeq, this.#head);
    } catch (error) {
      return Promise.reject(this.#fail(error));
    }
    const bytes = Buffer.from(`${sealed.text}\n`);
    this.#planSize += bytes.length;
    this.#advance(sealed, reason);
    const done = new Promise<void>((resolve, reject) => {
      this.#queue.push({ kind: "checkpoint", seq: sealed.seq, hash: sealed.hash, bytes, rotate: null, resolve: () => resolve(), reject });
    });
    this.#commitSoon();
    return done;
  }

  /**
   * Start committing what is queued, unless a commit is in flight (its loop
   * takes the queue when its sync returns). Nothing waits for a later turn:
   * with nothing in flight a record's sync starts within its write() call,
   * so a lone writer pays for one write and one sync, no more; grouping
   * comes from what arrives while a sync is in flight, which under load is
   * every record but the first after a pause.
   */
  #commitSoon(): void {
    if (this.#drainRunning) return;
    const draining = this.#drain();
    // A loop that ended within the call (every entry refused at once) has nothing left to wait for.
    this.#draining = this.#drainRunning ? draining : null;
  }

  async #drain(): Promise<void> {
    this.#drainRunning = true;
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
          if (first.rotate !== null) await this.#rotate(first.rotate.closing);
          // Take every queued entry up to the next rotation (at least one).
          let end = done + 1;
          let bytes = first.bytes.length;
          while (end < group.length && (group[end] as Pending).rotate === null) {
            bytes += (group[end] as Pending).bytes.length;
            end += 1;
          }
          const part = group.slice(done, end);
          const handle = this.#handle;
          const joined =
            part.length === 1
              ? first.bytes
              : Buffer.concat(
                  part.map((p) => p.bytes),
                  bytes,
                );
          // Appended in this turn when the handle can, so the sync below starts at once.
          if (handle.appendNow !== undefined) appendFully(handle as Parameters<typeof appendFully>[0], joined);
          else await writeFully(handle, joined);
          await handle.datasync();
          this.#stats.commits += 1;
          this.#stats.dataSyncs += 1;
          this.#stats.bytes += bytes;
          for (const item of part) {
            if (item.kind === "record") this.#stats.records += 1;
            else this.#stats.checkpoints += 1;
          }
          for (const item of part) item.resolve({ seq: item.seq, hash: item.hash, file: this.#file });
          done = end;
        }
      } catch (error) {
        this.#fail(error);
        for (const item of group.slice(done)) item.reject(this.#failure);
      }
    }
    this.#drainRunning = false;
    this.#draining = null;
  }

  /**
   * Continue in PATH.(n+1). The new file exists, and its name is synced,
   * before `closing` (the rotation checkpoint) ends the current file: a crash
   * in between leaves a torn or complete checkpoint followed by an empty
   * file, which opening repairs, never a checkpoint pointing at no file.
   */
  async #rotate(closing: Buffer | null): Promise<void> {
    const next = `${this.path}.${this.#fileIndex + 1}`;
    const handle = await this.#fs.open(next, APPEND | constants.O_CREAT | constants.O_EXCL);
    const previous = this.#handle;
    try {
      await syncDirectory(this.#fs, next);
      this.#stats.directorySyncs += 1;
      if (closing !== null) {
        await writeFully(previous, closing);
        await previous.datasync();
        this.#stats.commits += 1;
        this.#stats.dataSyncs += 1;
        this.#stats.checkpoints += 1;
        this.#stats.bytes += closing.length;
      }
    } catch (error) {
      await handle.close().catch(ignore);
      throw error;
    }
    this.#handle = handle;
    this.#file = next;
    this.#fileIndex += 1;
    await previous.close();
    this.#logger?.info({ log: this.path, file: next }, "decision log: rotated to a new file");
  }

  #fail(cause: unknown): RecordUnavailableError {
    if (this.#failure !== null) return this.#failure;
    const failure = new RecordUnavailableError(
      `decision log ${this.path} failed and accepts no more records: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
    this.#failure = failure;
    this.#logger?.error({ log: this.path, file: this.#file, err: cause }, "decision log failed; records unavailable");
    return failure;
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
