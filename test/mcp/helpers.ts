/**
 * The MCP tests' real parts: the proxy started as docs/mcp.md starts it
 * (`node dist/cli.js mcp-proxy ... -- node <upstream>`), a real MCP client
 * over stdio (the SDK's Client + StdioClientTransport), the counting
 * upstream (upstream.mjs), and `veto serve` on a PostgreSQL database of the
 * test's own.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport, getDefaultEnvironment } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { ClientCapabilities } from "@modelcontextprotocol/sdk/types.js";
import pg from "pg";
import { ROOT, requireBundle, requireCli } from "../helpers/index.js";
import { pgUrl } from "../helpers/postgres.js";

export const UPSTREAM = resolve(ROOT, "test/mcp/upstream.mjs");
export const ACTOR = "agent:sales-assistant";
export const APPROVER = "user:crm-owner@acme.example";
export const CONTEXT_FLAGS = ["--actor", ACTOR, "--tenant", "acme", "--environment", "production"];

export interface CountedCall {
  readonly name: string;
  readonly arguments: Record<string, unknown>;
  readonly pid: number;
}

export interface Host {
  readonly client: Client;
  /** Every call the upstream received so far, in order. */
  calls(): CountedCall[];
  /** What the proxy (and the upstream) wrote to stderr. */
  stderr(): string;
  readonly dir: string;
  /** The --log the proxy writes (when the flags named neither --log nor --postgres). */
  readonly log: string;
  close(): Promise<void>;
}

/** The JSON lines of a file (none when it does not exist yet). */
function jsonLines<T>(file: string): T[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as T);
}

/** The decision records of a --log file. */
export function decisionRecords(log: string): Record<string, unknown>[] {
  return jsonLines<Record<string, unknown>>(log).filter((r) => r["type"] === "decision");
}

/** Start `veto mcp-proxy FLAGS -- node upstream.mjs` under a real MCP client. */
export async function startProxy(
  flags: readonly string[],
  options: { capabilities?: ClientCapabilities; setup?: (client: Client) => void; withContext?: boolean } = {},
): Promise<Host> {
  const dir = mkdtempSync(join(tmpdir(), "veto-mcp-"));
  const callsFile = join(dir, "calls.jsonl");
  const log = join(dir, "decisions.jsonl");
  const records = flags.includes("--log") || flags.includes("--postgres") ? [] : ["--log", log];
  const client = new Client({ name: "test-host", version: "1.0.0" }, { capabilities: options.capabilities ?? {} });
  options.setup?.(client);
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [
      requireCli(),
      "mcp-proxy",
      "--bundle",
      requireBundle(),
      ...(options.withContext === false ? [] : CONTEXT_FLAGS),
      ...records,
      ...flags,
      "--",
      process.execPath,
      UPSTREAM,
    ],
    cwd: ROOT,
    env: { ...getDefaultEnvironment(), VETO_MCP_CALLS: callsFile },
    stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  await client.connect(transport);
  return {
    client,
    dir,
    log,
    calls: () => jsonLines<CountedCall>(callsFile),
    stderr: () => stderr,
    close: () => client.close(),
  };
}

/** The proxy spoken to in raw lines on its stdin, as a host would (what an SDK client cannot send). */
export interface RawProxy {
  /** Write text to the proxy's stdin as it is (add the "\n"). */
  write(text: string | Buffer): void;
  /** Write one message as a line. */
  send(message: object): void;
  /** The JSON-RPC messages written to stdout so far. */
  messages(): Record<string, unknown>[];
  /** Wait for the message on stdout that answers `id`. */
  answer(id: string | number): Promise<Record<string, unknown>>;
  /** Wait until `count` messages have been written to stdout. */
  written(count: number): Promise<void>;
  stdout(): string;
  stderr(): string;
  /** Every call the upstream received so far, in order. */
  calls(): CountedCall[];
  readonly log: string;
  /** Close stdin; resolves with the exit code. */
  end(): Promise<number | null>;
}

/** `veto mcp-proxy FLAGS -- node upstream.mjs` with --log, spoken to in raw lines; initialized. */
export async function startRawProxy(flags: readonly string[] = []): Promise<RawProxy> {
  const dir = mkdtempSync(join(tmpdir(), "veto-mcp-raw-"));
  const log = join(dir, "decisions.jsonl");
  const callsFile = join(dir, "calls.jsonl");
  const child = spawn(
    process.execPath,
    [requireCli(), "mcp-proxy", "--bundle", requireBundle(), "--log", log, ...CONTEXT_FLAGS, ...flags, "--", process.execPath, UPSTREAM],
    { cwd: ROOT, env: { ...process.env, VETO_MCP_CALLS: callsFile }, stdio: ["pipe", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
  const exited = new Promise<number | null>((done) => child.once("exit", done));
  const messages = (): Record<string, unknown>[] =>
    stdout
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const until = async (what: string, done: () => boolean): Promise<void> => {
    const deadline = Date.now() + 20_000;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`${what}; stdout: ${stdout.slice(0, 4000)}; stderr: ${stderr.slice(0, 4000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const raw: RawProxy = {
    write: (text) => void child.stdin.write(text),
    send: (message) => void child.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", ...message })}\n`),
    messages,
    answer: async (id) => {
      await until(`no answer to ${JSON.stringify(id)}`, () => messages().some((m) => m["id"] === id));
      return messages().find((m) => m["id"] === id)!;
    },
    written: (count) => until(`fewer than ${count} messages`, () => messages().length >= count),
    stdout: () => stdout,
    stderr: () => stderr,
    calls: () => jsonLines<CountedCall>(callsFile),
    log,
    end: () => {
      child.stdin.end();
      return exited;
    },
  };
  raw.send({
    id: "init",
    method: "initialize",
    params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
  });
  await raw.answer("init");
  raw.send({ method: "notifications/initialized" });
  return raw;
}

/**
 * A --tool-map file in a fresh temporary directory: the MCP tool deal_update ({ deal: { id, tenant,
 * set }, ... }) mapped to crm.update on an opportunity. Its path.
 */
export function dealToolMap(): string {
  const map = join(mkdtempSync(join(tmpdir(), "veto-map-")), "map.json");
  writeFileSync(
    map,
    JSON.stringify({
      deal_update: {
        tool: "crm.update",
        arguments: {
          object: { value: "opportunity" },
          recordId: "/deal/id",
          tenantId: "/deal/tenant",
          changes: "/deal/set",
          amount: "/deal/set/amount",
        },
      },
    }),
  );
  return map;
}

/** The text of a tool result's first content item. */
export function textOf(result: unknown): string {
  return ((result as { content?: { text?: string }[] }).content ?? [])[0]?.text ?? "";
}

/** The refusal details the proxy puts in `_meta`. */
export function vetoMeta(result: unknown): { code?: string; decisionId?: string; action?: string; escalated?: boolean } {
  return (result as { _meta?: Record<string, unknown> })._meta?.["veto-crm/decision"] ?? {};
}

/** A PostgreSQL database of the test's own (so `veto serve` and the proxy share it and nothing else does), migrated. */
export async function freshDatabase(prefix: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const admin = new pg.Client({ connectionString: pgUrl() });
  await admin.connect();
  const name = `t_${prefix}_${process.pid}_${Date.now().toString(36)}`;
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const url = new URL(pgUrl());
  url.pathname = `/${name}`;
  const migrated = spawnSync(process.execPath, [requireCli(), "db", "migrate", "--postgres", url.href], { encoding: "utf8" });
  if (migrated.status !== 0) throw new Error(`db migrate failed: ${migrated.stderr}`);
  return {
    url: url.href,
    drop: async () => {
      const c = new pg.Client({ connectionString: pgUrl() });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await c.end();
    },
  };
}

/** `veto serve --dev-login` on the database, on a free loopback port; resolves with its base URL. */
export async function startServe(
  databaseUrl: string,
  flags: readonly string[] = [],
): Promise<{ base: string; stop: () => Promise<void>; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [requireCli(), "serve", "--bundle", requireBundle(), "--postgres", databaseUrl, "--listen", "127.0.0.1:0", "--dev-login", ...flags],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  const base = await new Promise<string>((resolveBase, reject) => {
    let err = "";
    child.stderr.on("data", (chunk: Buffer) => {
      err += chunk.toString("utf8");
      const match = /listening on (http:\/\/\S+)/.exec(err);
      if (match !== null) resolveBase(match[1]!);
    });
    child.once("exit", (code) => reject(new Error(`veto serve exited ${code}: ${err}`)));
  });
  return {
    base,
    child,
    stop: () =>
      new Promise<void>((done) => {
        child.once("exit", () => done());
        child.kill("SIGTERM");
      }),
  };
}

/** Poll an approval service until a pending approval appears for the reviewer; its decision id. */
export async function pendingApproval(base: string, reviewer = APPROVER, timeoutMs = 20_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const response = await fetch(`${base}/api/approvals?status=pending`, { headers: { "x-veto-dev-reviewer": reviewer } });
    const body = (await response.json()) as { approvals?: { decisionId: string }[] };
    const first = body.approvals?.[0];
    if (first !== undefined) return first.decisionId;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("no pending approval appeared");
}

/** Answer an approval through the service's API (what the inbox and `curl` do). */
export async function answer(base: string, decisionId: string, kind: "approve" | "reject", reviewer = APPROVER): Promise<number> {
  const response = await fetch(`${base}/api/approvals/${decisionId}/${kind}`, {
    method: "POST",
    headers: { "x-veto-dev-reviewer": reviewer, "content-type": "application/json" },
    body: JSON.stringify({ note: `${kind}d by the test` }),
  });
  return response.status;
}

/** Amend a pending call through the service's API (docs/contract.md §6, amend); the status and the body. */
export async function amend(
  base: string,
  decisionId: string,
  args: Record<string, unknown>,
  reviewer = APPROVER,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${base}/api/approvals/${decisionId}/amend`, {
    method: "POST",
    headers: { "x-veto-dev-reviewer": reviewer, "content-type": "application/json" },
    body: JSON.stringify({ arguments: args, note: "amended by the test" }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}
