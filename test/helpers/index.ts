/**
 * Shared test parts. Everything here is real: the committed bundle built by
 * `make bundle`, the real `opa` binary, pino writing into memory.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Writable } from "node:stream";
import { pino, type Logger } from "pino";
import { createVeto, type RecordSink, type Veto, type VetoOptions, type VetoRecord } from "../../adapter/index.js";

export const ROOT = resolve(import.meta.dirname, "../..");
/**
 * The tests decide with bundles built from policy/ with test/fixtures/data.json
 * as data (`make test-bundles`), never with the shipped policy/data.json: a
 * security team changes that file without breaking the tests.
 */
export const TEST_POLICY_ROOT = resolve(ROOT, ".build/test-policy-root");
export const FIXTURE_DATA = resolve(ROOT, "test/fixtures/data.json");
export const BUNDLE = resolve(ROOT, ".build/test-bundles/crm.tar.gz");
export const REGO_BUNDLE = resolve(ROOT, ".build/test-bundles/crm-rego.tar.gz");
export const OPA = resolve(ROOT, ".tools/bin/opa");
export const CLI = resolve(ROOT, "dist/cli.js");

export function requireBundle(): string {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run make test-bundles`);
  return BUNDLE;
}

export function requireOpa(): string {
  if (!existsSync(OPA)) throw new Error(`${OPA} is missing: run make tools`);
  return OPA;
}

export function requireCli(): string {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run make build (npm run build)`);
  return CLI;
}

/** Run the built `veto` command (node dist/cli.js) to completion. */
export function runCli(
  args: string[],
  stdin = "",
  env: Record<string, string> = {},
): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync("node", [requireCli(), ...args], { input: stdin, encoding: "utf8", env: { ...process.env, ...env } });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** JSON Lines text for stdin: objects as JSON, strings as they are. */
export function jsonLines(...items: unknown[]): string {
  return items.map((c) => (typeof c === "string" ? c : JSON.stringify(c))).join("\n") + "\n";
}

/** The test bundle's own data document (test/fixtures/data.json). */
export function bundleData(): { veto: { config: Record<string, unknown> } } {
  return JSON.parse(readFileSync(FIXTURE_DATA, "utf8")) as { veto: { config: Record<string, unknown> } };
}

export class MemorySink implements RecordSink {
  readonly records: VetoRecord[] = [];
  failing: Error | undefined;

  async write(record: VetoRecord): Promise<void> {
    if (this.failing !== undefined) throw this.failing;
    this.records.push(structuredClone(record));
  }

  last(): VetoRecord {
    const record = this.records.at(-1);
    if (record === undefined) throw new Error("no record was written");
    return record;
  }
}

export class FakeClock {
  nowMs: number;

  constructor(start = Date.parse("2026-03-01T09:00:00.000Z")) {
    this.nowMs = start;
  }

  readonly now = (): number => this.nowMs;

  advance(ms: number): void {
    this.nowMs += ms;
  }
}

/** A pino logger whose lines are kept as parsed JSON. */
export function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines };
}

export interface TestVeto {
  veto: Veto;
  sink: MemorySink;
  clock: FakeClock;
  logLines: Record<string, unknown>[];
}

export async function makeVeto(options: Partial<VetoOptions> = {}): Promise<TestVeto> {
  const sink = new MemorySink();
  const clock = new FakeClock();
  const { logger, lines } = captureLogger();
  const veto = await createVeto({
    bundle: requireBundle(),
    logger,
    recordSink: sink,
    clock: clock.now,
    approvalPollMs: 20,
    ...options,
  });
  return { veto, sink, clock, logLines: lines };
}

export const ACTOR = "agent:sales-assistant";
export const APPROVER = "user:crm-owner@acme.example";
export const OTHER_APPROVER = "user:revops-lead@acme.example";

type Json = Record<string, unknown>;

/** A production write for acme that the default data allows (low value). */
export function write(args: Json = {}, context: Json = {}, tool = "crm.update"): Json {
  return {
    tool,
    arguments: { object: "opportunity", recordId: "opp_123", tenantId: "acme", changes: { close_date: "2026-12-01" }, ...args },
    context: {
      actorId: ACTOR,
      tenantId: "acme",
      environment: "production",
      reason: "Customer asked to move the close date",
      ...context,
    },
  };
}

/** A read for acme that the default data allows. */
export function read(args: Json = {}, context: Json = {}, tool = "crm.read"): Json {
  return {
    tool,
    arguments: { object: "contact", recordId: "c_1", fields: ["name", "company"], ...args },
    context: { actorId: ACTOR, tenantId: "acme", environment: "production", ...context },
  };
}

export function codes(decision: { reasons: readonly { code: string }[] }): string[] {
  return decision.reasons.map((r) => r.code);
}
