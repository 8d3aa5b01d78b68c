/**
 * One writer per log: the lock file PATH.lock holds the writer's pid.
 *
 * The lock is taken by writing the pid to a private temporary file and then
 * hard-linking it to PATH.lock: link(2) fails with EEXIST when the lock
 * exists, exactly like open(O_CREAT|O_EXCL), but the lock file can never be
 * seen empty or half-written. A lock whose pid is no longer alive (the writer
 * crashed) is taken over; the takeover itself is serialized by a second
 * link-created file, PATH.lock.takeover, so two processes that both find the
 * same stale lock cannot both end up holding it.
 */
import { randomBytes } from "node:crypto";
import { link, unlink, writeFile } from "node:fs/promises";
import { NotRegularFileError, readRegularFile } from "../../common/files.js";
import { LogLockedError } from "../errors.js";

export interface LogLock {
  readonly path: string;
  /** Pid of the dead writer whose stale lock was taken over, or null. */
  readonly takenOverFrom: number | null;
  release(): Promise<void>;
}

const ATTEMPTS = 4;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/** The pid in a lock file; undefined when the file is gone, null when it holds no pid. */
async function lockHolder(path: string): Promise<number | null | undefined> {
  let text: string;
  try {
    text = (await readRegularFile(path)).toString("utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    // A FIFO or a device named like the lock holds no pid (and is never waited on).
    if (error instanceof NotRegularFileError) return null;
    throw error;
  }
  const match = /^([1-9][0-9]*)\n$/.exec(text);
  return match ? Number(match[1]) : null;
}

async function linkExclusive(from: string, to: string): Promise<boolean> {
  try {
    await link(from, to);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
}

async function unlinkQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}

function lockedError(lockPath: string, pid: number | null, logPath: string): LogLockedError {
  if (pid === null) {
    return new LogLockedError(lockPath, null, `${lockPath} exists but holds no pid; if no process writes ${logPath}, remove it`);
  }
  const who = pid === process.pid ? "this process" : `process ${pid}`;
  return new LogLockedError(lockPath, pid, `${logPath} is already being written by ${who} (lock ${lockPath})`);
}

export async function acquireLogLock(logPath: string): Promise<LogLock> {
  const lockPath = `${logPath}.lock`;
  const guardPath = `${lockPath}.takeover`;
  const mine = `${lockPath}.${process.pid}.${randomBytes(6).toString("hex")}`;
  await writeFile(mine, `${process.pid}\n`, { flag: "wx" });
  let takenOverFrom: number | null = null;
  try {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      if (await linkExclusive(mine, lockPath)) {
        return {
          path: lockPath,
          takenOverFrom,
          release: async () => {
            if ((await lockHolder(lockPath).catch(() => null)) === process.pid) await unlinkQuietly(lockPath);
          },
        };
      }
      const holder = await lockHolder(lockPath);
      if (holder === undefined) continue; // released meanwhile
      if (holder === null || isAlive(holder)) throw lockedError(lockPath, holder, logPath);
      // Stale: its writer is dead. Take it over under the takeover guard.
      if (!(await linkExclusive(mine, guardPath))) {
        const guardHolder = await lockHolder(guardPath);
        if (guardHolder !== undefined && guardHolder !== null && !isAlive(guardHolder)) {
          // A takeover crashed within its few system calls; clear it and retry.
          await unlinkQuietly(guardPath);
          continue;
        }
        throw lockedError(lockPath, guardHolder ?? null, logPath);
      }
      try {
        if ((await lockHolder(lockPath)) === holder) {
          await unlinkQuietly(lockPath);
          takenOverFrom = holder;
        }
      } finally {
        await unlinkQuietly(guardPath);
      }
    }
    throw lockedError(lockPath, (await lockHolder(lockPath)) ?? null, logPath);
  } finally {
    await unlinkQuietly(mine);
  }
}
