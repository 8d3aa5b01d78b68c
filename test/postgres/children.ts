/**
 * Application instances in child processes for the PostgreSQL tests that
 * break their connections (fault-child.mjs), and what the tests ask the
 * server about those connections.
 */
import { fork, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";
import type pg from "pg";
import { ROOT } from "../helpers/index.js";

export const FAULT_CHILD = resolve(ROOT, "test/postgres/fault-child.mjs");

export type Reply = { ok: true; value: unknown } | { ok: false; error: { name: string; code?: string; message: string } };

export class Child {
  readonly child: ChildProcess;
  readonly name: string;
  readonly ready: Promise<void>;
  readonly exited: Promise<NodeJS.Signals | number | null>;
  /** Events the child sent ({event: "held", type} ...), in order. */
  readonly events: { event: string; type?: string }[] = [];
  #next = 0;
  readonly #waiting = new Map<number, (reply: Reply) => void>();

  constructor(name: string, script = FAULT_CHILD) {
    this.name = name;
    this.child = fork(script, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    let ready = (_failed?: Error): void => {};
    this.ready = new Promise((resolve, reject) => (ready = (failed) => (failed === undefined ? resolve() : reject(failed))));
    this.exited = new Promise((r) => this.child.on("exit", (code, signal) => r(signal ?? code)));
    // A child that dies before it is ready must not leave the test waiting.
    void this.exited.then((how) => ready(new Error(`${name} exited (${String(how)}) before it was ready`)));
    this.child.on("message", (m: { event?: string; type?: string; id?: number } & Reply) => {
      if (m.event === "ready") ready();
      else if (m.event !== undefined) this.events.push({ event: m.event, ...(m.type === undefined ? {} : { type: m.type }) });
      else if (m.id !== undefined) {
        this.#waiting.get(m.id)?.(m);
        this.#waiting.delete(m.id);
      }
    });
    // A child that dies answers nothing more: every open request gets that as its reply.
    void this.exited.then((how) => {
      for (const [id, settle] of this.#waiting) {
        settle({ ok: false, error: { name: "ChildExited", message: `${this.name} exited (${String(how)}) before answering` } });
        this.#waiting.delete(id);
      }
    });
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the reply (ok or not); never rejects. */
  request(cmd: string, body: Record<string, unknown> = {}): Promise<Reply> {
    if (!this.alive) return Promise.resolve({ ok: false, error: { name: "ChildExited", message: `${this.name} is not running` } });
    const id = ++this.#next;
    return new Promise((r) => {
      this.#waiting.set(id, r);
      this.child.send({ id, cmd, ...body });
    });
  }

  async call<T = unknown>(cmd: string, body: Record<string, unknown> = {}): Promise<T> {
    const reply = await this.request(cmd, body);
    if (!reply.ok) throw new Error(`${this.name} ${cmd}: ${reply.error.code ?? reply.error.name}: ${reply.error.message}`);
    return reply.value as T;
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    void this.request("close");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}

export interface Backend {
  pid: number;
  state: string | null;
  query: string;
  wait_event_type: string | null;
  xact_start: Date | null;
}

/** The server's sessions of application `name`. */
export async function backends(admin: pg.Pool, name: string): Promise<Backend[]> {
  const { rows } = await admin.query<Backend>(
    "SELECT pid, state, query, wait_event_type, xact_start FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
    [name],
  );
  return rows;
}

const terminated = new Set<number>();

/** pg_terminate_backend on each; how many the server was told to end. */
export async function terminate(admin: pg.Pool, pids: readonly number[]): Promise<number> {
  let n = 0;
  for (const pid of pids) {
    const { rows } = await admin.query<{ done: boolean }>("SELECT pg_terminate_backend($1) AS done", [pid]);
    if (rows[0]?.done === true) {
      n += 1;
      terminated.add(pid);
    }
  }
  return n;
}

/** Until every backend terminate() signalled has exited (pg_terminate_backend only signals). */
export async function terminatedGone(admin: pg.Pool): Promise<void> {
  await until("the terminated backends to exit", async () => {
    const { rows } = await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])", [[...terminated]]);
    return rows.length === 0 ? true : undefined;
  });
  terminated.clear();
}

/** Poll `probe` until it returns something other than undefined; fail after `ms`. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The first session of `name` matching `test`, once there is one. */
export function backendWhere(admin: pg.Pool, name: string, what: string, test: (b: Backend) => boolean): Promise<Backend> {
  return until(what, async () => (await backends(admin, name)).find(test));
}
