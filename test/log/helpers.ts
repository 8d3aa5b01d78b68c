/** Shared bits of the decision-log tests: temp dirs, sample records, file surgery. */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

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
