/**
 * FdRecordSink: decision records as pino JSON lines on a file descriptor
 * (standard output by default, standard error, or a file), each write
 * acknowledged only once its bytes are where the descriptor can keep them,
 * and every failure reported, so a record that is lost denies its call
 * (docs/contract.md §7: no side effect without its evidence).
 *
 * What "written" means depends on what the descriptor is:
 * - a regular file (stdout redirected to one, or `openFile`): write(2) took
 *   every byte and fdatasync(2) returned. Writes made while a sync runs share
 *   the next one.
 * - a pipe, a socket, a terminal, another character device: write(2) took
 *   every byte. The reader (a container runtime, a log shipper, journald)
 *   holds the record from there on; a record still in a pipe's buffer when
 *   the reader dies is lost, and no process can know. For evidence that
 *   survives that, use a FileDecisionLog or the PostgreSQL records.
 * - the null device: refused (records would be discarded).
 *
 * A write that fails (EPIPE: the reader is gone; ENOSPC: /dev/full or a full
 * disk; EBADF: the descriptor was closed; EIO) fails the sink for good: that
 * write and every later one reject, and their calls are denied with
 * record_unavailable. A pipe whose reader stops reading makes writes wait
 * (the descriptor is made non-blocking, so nothing else waits with them);
 * close() returns at once and rejects what still waits. Nothing is retried
 * after a failure: a torn line stays torn, and the sink stays failed.
 */
import { fdatasync, fstatSync, statSync, writeSync, type Stats } from "node:fs";
import { constants } from "node:fs";
import { mkdir, open as openPath } from "node:fs/promises";
import { dirname } from "node:path";
import { pino, type Logger } from "pino";
import { VetoError, toError } from "../common/errors.js";
import { NotRegularFileError, openRegularFile } from "../common/files.js";
import type { RecordSink, VetoRecord } from "./records.js";

interface Item {
  readonly bytes: Buffer;
  offset: number;
  /** Undefined for a log line: nobody waits for it. */
  readonly owner: object | undefined;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  settled: boolean;
}

const MAX_RETRY_MS = 100;

/** Whether `stats` is the null device (compared with /dev/null itself). */
function isNullDevice(stats: Stats): boolean {
  if (!stats.isCharacterDevice()) return false;
  try {
    const devNull = statSync("/dev/null");
    return devNull.isCharacterDevice() && devNull.rdev === stats.rdev;
  } catch {
    return false;
  }
}

/**
 * One ordered stream of lines on one descriptor: every line is written whole
 * (short writes are continued), in the order given, never interleaved with
 * another line of this writer. Records and the adapter's own log lines on
 * the same descriptor share one writer, so they never tear each other.
 */
class FdWriter {
  readonly fd: number;
  readonly label: string;
  #syncs: boolean | undefined;
  #queue: Item[] = [];
  /** Written, waiting for the fdatasync that makes them durable. */
  #unsynced: Item[] = [];
  #syncing = false;
  #retry: NodeJS.Timeout | undefined;
  #retryMs = 1;
  #failure: VetoError | null = null;

  constructor(fd: number, label: string) {
    this.fd = fd;
    this.label = label;
  }

  get failure(): VetoError | null {
    return this.#failure;
  }

  /** Queue `bytes`; `owner` waits for them (the promise settles), a log line (no owner) does not. */
  write(bytes: Buffer, owner: object | undefined): Promise<void> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ bytes, offset: 0, owner, resolve, reject, settled: false });
      // Written now, in the caller's turn, unless earlier lines still wait for the reader.
      if (this.#retry === undefined) this.#pump();
    });
  }

  /** Reject what `owner` still waits for. A line begun is still finished (a torn line would garble the next one), but nobody waits for it. */
  cancel(owner: object, error: Error): void {
    for (const item of [...this.#queue, ...this.#unsynced]) {
      if (item.owner === owner) this.#settle(item, error);
    }
    this.#queue = this.#queue.filter((item) => item.offset > 0 || !item.settled);
    this.#refRetry();
  }

  /** Wait for a sync in flight (a closing file sink must not close the descriptor under it). */
  async idle(): Promise<void> {
    while (this.#syncing) await new Promise((resolve) => setTimeout(resolve, 1));
  }

  #pump(): void {
    this.#retry = undefined;
    if (this.#syncs === undefined && !this.#inspect()) return;
    while (this.#queue.length > 0) {
      const item = this.#queue[0] as Item;
      let n: number;
      try {
        n = writeSync(this.fd, item.bytes, item.offset, item.bytes.length - item.offset);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "EAGAIN") {
          // A pipe whose reader is behind: try again shortly, without blocking anything else.
          this.#retry = setTimeout(() => this.#pump(), this.#retryMs);
          this.#retryMs = Math.min(this.#retryMs * 2, MAX_RETRY_MS);
          this.#refRetry();
          return;
        }
        this.#fail(error);
        return;
      }
      this.#retryMs = 1;
      item.offset += n;
      if (item.offset < item.bytes.length) continue;
      this.#queue.shift();
      if (this.#syncs === true) this.#unsynced.push(item);
      else this.#settle(item);
    }
    this.#sync();
  }

  /** What the descriptor is, once: decides whether writes are synced. False when it cannot be used. */
  #inspect(): boolean {
    let stats: Stats;
    try {
      stats = fstatSync(this.fd);
    } catch (error) {
      this.#fail(error);
      return false;
    }
    if (isNullDevice(stats)) {
      this.#fail(new Error("it is the null device: records written there are discarded"));
      return false;
    }
    if (stats.isFIFO() || stats.isSocket()) {
      // Node makes its own stdio pipes and sockets non-blocking when it opens
      // them: then a full pipe answers EAGAIN instead of stopping the process.
      if (this.fd === 1) void process.stdout;
      else if (this.fd === 2) void process.stderr;
    }
    this.#syncs = stats.isFile();
    return true;
  }

  #sync(): void {
    if (this.#syncing || this.#unsynced.length === 0 || this.#failure !== null) return;
    const batch = this.#unsynced;
    this.#unsynced = [];
    this.#syncing = true;
    fdatasync(this.fd, (error) => {
      this.#syncing = false;
      if (error !== null) {
        for (const item of batch) this.#unsynced.push(item);
        this.#fail(error);
        return;
      }
      for (const item of batch) this.#settle(item);
      this.#sync();
    });
  }

  #settle(item: Item, error?: Error): void {
    if (item.settled) return;
    item.settled = true;
    if (item.owner === undefined) return;
    if (error === undefined) item.resolve();
    else item.reject(error);
  }

  /** A retry keeps the process alive only while someone waits for a line. */
  #refRetry(): void {
    if (this.#retry === undefined) return;
    if (this.#queue.some((item) => item.owner !== undefined && !item.settled)) this.#retry.ref();
    else this.#retry.unref();
  }

  #fail(cause: unknown): void {
    if (this.#failure === null) {
      this.#failure = new VetoError("record_unavailable", `${this.label} failed and accepts no more records: ${toError(cause).message}`, {
        cause,
      });
    }
    clearTimeout(this.#retry);
    this.#retry = undefined;
    for (const item of [...this.#queue, ...this.#unsynced]) this.#settle(item, this.#failure);
    this.#queue = [];
    this.#unsynced = [];
  }
}

/** One writer per standard descriptor, shared by every sink and logger on it. */
const standardWriters = new Map<number, FdWriter>();
function standardWriter(fd: 1 | 2): FdWriter {
  let writer = standardWriters.get(fd);
  if (writer === undefined) {
    writer = new FdWriter(fd, fd === 1 ? "standard output" : "standard error");
    standardWriters.set(fd, writer);
  }
  return writer;
}

/**
 * A pino destination on standard output or standard error that never blocks,
 * never throws and keeps the order of the records written there: for the
 * adapter's own log lines beside an FdRecordSink on the same descriptor. A
 * line that cannot be written is dropped.
 */
export function standardLogDestination(fd: 1 | 2): { write(line: string): boolean } {
  const writer = standardWriter(fd);
  return {
    write(line: string): boolean {
      writer.write(Buffer.from(line, "utf8"), undefined).catch(() => {});
      return true;
    },
  };
}

/** The adapter's default logger when none is given: pino, name "veto", on standard output beside the records. */
export function defaultLogger(): Logger {
  return pino({ name: "veto" }, standardLogDestination(1));
}

export class FdRecordSink implements RecordSink {
  readonly #writer: FdWriter;
  readonly #owned: { close(): Promise<void> } | undefined;
  readonly #format: Logger;
  #line = "";
  #closed = false;

  private constructor(writer: FdWriter, owned: { close(): Promise<void> } | undefined) {
    this.#writer = writer;
    this.#owned = owned;
    // The lines PinoRecordSink writes (level, time, pid, hostname, name, component, msg),
    // formatted by pino into this sink rather than handed to a stream that cannot answer.
    const capture = { write: (line: string): void => void (this.#line = line) };
    this.#format = pino({ name: "veto" }, capture).child({ component: "records" });
  }

  /** Records on standard output: createVeto's default sink. */
  static stdout(): FdRecordSink {
    return new FdRecordSink(standardWriter(1), undefined);
  }

  /** Records on standard error (`veto eval` without --log or --records). */
  static stderr(): FdRecordSink {
    return new FdRecordSink(standardWriter(2), undefined);
  }

  /**
   * Records appended to the regular file at `path` (created, with its
   * folders, when missing), each write fdatasync'ed before it is
   * acknowledged. Rejects with VetoError code "invalid_options" when `path`
   * is not a regular file (a directory, a FIFO, /dev/full, /dev/null) or
   * cannot be synced, or with the file system's error.
   */
  static async openFile(path: string): Promise<FdRecordSink> {
    await mkdir(dirname(path), { recursive: true });
    let handle;
    try {
      handle = await openRegularFile(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o666);
    } catch (error) {
      if (error instanceof NotRegularFileError) throw new VetoError("invalid_options", error.message, { cause: error });
      throw error;
    }
    try {
      // The file and its name, durable before the first record relies on them.
      await handle.datasync();
      const folder = await openPath(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY);
      try {
        await folder.sync();
      } finally {
        await folder.close();
      }
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw new VetoError("invalid_options", `${path} cannot be synced: ${toError(error).message}`, { cause: error });
    }
    return new FdRecordSink(new FdWriter(handle.fd, `records file ${path}`), handle);
  }

  /** Set once a write failed; every write rejects with it from then on. */
  get failure(): Error | null {
    return this.#writer.failure;
  }

  write(record: VetoRecord): Promise<void> {
    if (this.#closed) return Promise.reject(new VetoError("record_unavailable", `the records sink on ${this.#writer.label} is closed`));
    let line: string;
    try {
      this.#format.info(record, `veto ${record.type}`);
      line = this.#line;
    } catch (error) {
      return Promise.reject(toError(error));
    } finally {
      this.#line = "";
    }
    return this.#writer.write(Buffer.from(line, "utf8"), this);
  }

  /**
   * Returns at once: records still waiting (for a reader that stopped
   * reading) are rejected, so their calls are denied. A file sink waits for
   * a sync in flight, then closes the file.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#writer.cancel(
      this,
      new VetoError("record_unavailable", `the records sink on ${this.#writer.label} was closed before the record was written`),
    );
    if (this.#owned !== undefined) {
      await this.#writer.idle();
      await this.#owned.close().catch(() => undefined);
    }
  }
}
