/** Shared bits of the decision-log tests: temp dirs, sample records, file surgery. */
import { writeSync } from "node:fs";
import { mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LogFileHandle, LogFileSystem } from "../../adapter/audit/index.js";

export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "veto-log-"));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A record shaped like the adapter's decision records. */
export function sampleRecord(n: number, padding = 0): Record<string, unknown> {
  return {
    type: "decision",
    decision_id: `01J${String(n).padStart(23, "0")}`,
    timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
    path: "veto/crm/decision",
    tool: "crm.update",
    actor_id: "agent:sales-assistant",
    tenant_id: "acme",
    arguments: { object: "opportunity", recordId: `opp_${n}`, changes: { amount: n * 100 }, note: "x".repeat(padding) },
    result: { action: n % 3 === 0 ? "require_approval" : "allow", escalated: false, reasons: [] },
    bundles: { crm: { revision: "r1", hash: `sha256:${"ab".repeat(32)}` } },
  };
}

export async function readLines(file: string): Promise<string[]> {
  const text = await readFile(file, "utf8");
  return text.split("\n").slice(0, -1);
}

export async function writeLines(file: string, lines: readonly string[]): Promise<void> {
  await writeFile(file, lines.map((l) => `${l}\n`).join(""));
}

export type Fault = "write" | "datasync" | "sync" | "short-write-then-fail";

/**
 * The real file system, except that operation `fault` fails with EIO from
 * call number `after` + 1 on (counted over every handle). `fault` can be set
 * later, to make a healthy log fail at a chosen moment.
 */
export function faultyFs(fault: Fault | null = null, after = 0, { appendNow = false }: { appendNow?: boolean } = {}) {
  const calls = { write: 0, datasync: 0, sync: 0 };
  const control = { fault, after, calls, fs: undefined as unknown as LogFileSystem };
  const eio = () => Object.assign(new Error("EIO: i/o error, injected"), { code: "EIO" });
  const failing = (op: Fault, count: number) => control.fault === op && count > control.after;
  control.fs = {
    open: async (path, flags) => {
      const real = await open(path, flags);
      let shortened = false;
      const handle: LogFileHandle = {
        write: async (buffer, offset, length, position) => {
          calls.write += 1;
          if (failing("write", calls.write)) throw eio();
          if (failing("short-write-then-fail", calls.write)) {
            if (shortened) throw eio();
            shortened = true;
            return real.write(buffer, offset, Math.ceil(length / 2), position);
          }
          return real.write(buffer, offset, length, position);
        },
        datasync: async () => {
          calls.datasync += 1;
          if (failing("datasync", calls.datasync)) throw eio();
          return real.datasync();
        },
        sync: async () => {
          calls.sync += 1;
          if (failing("sync", calls.sync)) throw eio();
          return real.sync();
        },
        truncate: (length) => real.truncate(length),
        close: () => real.close(),
      };
      if (appendNow) {
        // The writer's in-turn append (what the default file system does), with the same faults.
        handle.appendNow = (buffer, offset, length) => {
          calls.write += 1;
          if (failing("write", calls.write)) throw eio();
          if (failing("short-write-then-fail", calls.write)) {
            if (shortened) throw eio();
            shortened = true;
            return writeSync(real.fd, buffer, offset, Math.ceil(length / 2));
          }
          return writeSync(real.fd, buffer, offset, length);
        };
      }
      return handle;
    },
  };
  return control;
}
