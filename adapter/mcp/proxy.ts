/**
 * The MCP proxy (docs/mcp.md): an MCP server to the host and an MCP client
 * to the upstream server it spawns, both over stdio. tools/list shows the
 * upstream's tools the policy offers in this context (`veto/crm/visible`,
 * docs/contract.md §4b), each with an optional `reason`; every tools/call is
 * governed (govern.ts) before it is forwarded. The upstream is restarted on
 * the next request after it exits; a hang ends at the upstream timeout.
 * stdout belongs to the MCP channel: nothing else is ever written there.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import {
  CallToolRequestSchema,
  CallToolResultSchema,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  ToolListChangedNotificationSchema,
  type JSONRPCMessage,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import { protectUnreadable, toolVisibility } from "../veto.js";
import { VetoOptionsError, toError } from "../common/errors.js";
import { safeLog } from "../common/logger.js";
import { META_KEY, UpstreamFailure, decisionMeta, governCall, type CallChannel, type GovernOptions, type ToolResult } from "./govern.js";
import { HostStdioTransport, type RefusedMessage } from "./host-transport.js";
import { ToolMap } from "./tool-map.js";

/** Default longest wait for the upstream's answer to one request, ms (the MCP SDK's own default request timeout). */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 60_000;
/**
 * Default longest wait for an approval, ms: just under the 60 s after which
 * most hosts give up on a tools/call (docs/mcp.md, "Timeouts"), so the agent
 * hears approval_timeout rather than the host's own -32001.
 */
export const DEFAULT_APPROVAL_TIMEOUT_MS = 55_000;
/** Default interval of the progress notifications of a waiting call, ms. */
export const DEFAULT_PROGRESS_INTERVAL_MS = 5_000;

/** The optional field the proxy adds to a tool's input schema. */
export const REASON_PROPERTY = {
  type: "string",
  description: "Why this call is made, in a sentence. Recorded with the decision; writes need it.",
} as const;

export interface UpstreamCommand {
  readonly command: string;
  readonly args: readonly string[];
  /** The upstream's environment. Default: the proxy's, without VETO_RECORD_KEY. */
  readonly env?: Record<string, string>;
  readonly cwd?: string;
}

export interface McpProxyOptions extends GovernOptions {
  readonly upstream: UpstreamCommand;
  readonly toolMap: ToolMap;
  /** Longest wait for the upstream's answer to one request, ms. */
  readonly upstreamTimeoutMs: number;
  readonly version: string;
}

/** The proxy's environment for the upstream: everything but the record key, which is the proxy's secret. */
function upstreamEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined && key !== "VETO_RECORD_KEY") env[key] = value;
  return env;
}

const isText = (v: unknown): v is string => typeof v === "string" && v.trim() !== "";
const isDuration = (v: unknown): boolean => typeof v === "number" && Number.isFinite(v) && v >= 0;

/** Programmer errors in McpProxy.start's options: a VetoOptionsError saying what to fix. */
function checkOptions(o: McpProxyOptions): void {
  const problems: string[] = [];
  if (o === null || typeof o !== "object") throw new VetoOptionsError("McpProxy.start: pass the options (docs/mcp.md)");
  if (o.veto === null || typeof o.veto !== "object" || typeof o.veto.protect !== "function")
    problems.push("veto (from createVeto) is required");
  if (
    o.context === null ||
    typeof o.context !== "object" ||
    !isText(o.context.actorId) ||
    !isText(o.context.tenantId) ||
    !isText(o.context.environment)
  ) {
    problems.push("context must be { actorId, tenantId, environment }, non-empty strings");
  }
  if (o.approvals !== "wait" && o.approvals !== "unavailable") problems.push('approvals must be "wait" or "unavailable"');
  for (const name of ["approvalTimeoutMs", "progressIntervalMs", "upstreamTimeoutMs"] as const) {
    if (!isDuration(o[name])) problems.push(`${name} must be a non-negative number of milliseconds`);
  }
  if (o.upstream === null || typeof o.upstream !== "object" || !isText(o.upstream.command) || !Array.isArray(o.upstream.args)) {
    problems.push("upstream must be { command, args }");
  }
  if (!(o.toolMap instanceof ToolMap)) problems.push("toolMap must be a ToolMap (ToolMap.identity() or ToolMap.parse(document))");
  if (o.log === null || typeof o.log !== "object" || typeof o.log.warn !== "function") problems.push("log must be a pino logger");
  if (problems.length > 0) throw new VetoOptionsError(`McpProxy.start: ${problems.join("; ")}`);
}

/** A page of at most this many list requests is read to learn one tool's schema. */
const MAX_LIST_PAGES = 50;

export class McpProxy {
  readonly #options: McpProxyOptions;
  /** The host's side; made once the upstream has answered, so that its instructions are passed on. */
  #server!: Server;
  #serving = false;
  #client: Client | undefined;
  #connecting: Promise<Client> | undefined;
  /** Per upstream tool: whether the proxy added `reason` to its schema (and so strips it). */
  readonly #addsReason = new Map<string, boolean>();
  #closing = false;
  readonly #closed: Promise<void>;
  #resolveClosed: () => void = () => {};

  private constructor(options: McpProxyOptions) {
    this.#options = options;
    this.#closed = new Promise((resolve) => (this.#resolveClosed = resolve));
  }

  /**
   * Start the upstream, then serve the host on `host` (a HostStdioTransport
   * for the CLI). Rejects when the upstream cannot be started.
   */
  static async start(options: McpProxyOptions, host: Transport): Promise<McpProxy> {
    checkOptions(options);
    const proxy = new McpProxy(options);
    const instructions = (await proxy.#upstream()).getInstructions();
    const server = new Server(
      { name: "veto-mcp-proxy", version: options.version },
      { capabilities: { tools: { listChanged: true } }, ...(instructions === undefined ? {} : { instructions }) },
    );
    proxy.#server = server;
    proxy.#serving = true;
    server.setRequestHandler(ListToolsRequestSchema, (request, extra) => proxy.#listTools(request.params, extra.signal));
    server.setRequestHandler(CallToolRequestSchema, (request, extra) =>
      proxy.#callTool(request.params, {
        signal: extra.signal,
        requestId: String(extra.requestId),
        progressToken: request.params._meta?.progressToken,
        sendNotification: (n) => extra.sendNotification(n),
      }),
    );
    server.onclose = () => void proxy.close();
    await server.connect(host);
    // A tools/call the SDK refuses as malformed (-32602) never reaches the
    // handler: decide it anyway, so it is recorded and counts towards
    // escalation like any invalid_input (docs/contract.md §9).
    const receive = host.onmessage;
    host.onmessage = (message, extra) => {
      proxy.#noteMalformed(message);
      receive?.(message, extra);
    };
    // A message the transport refused (too long, not JSON, not JSON-RPC) is
    // logged, and a tools/call among them recorded before it is answered.
    if (host instanceof HostStdioTransport) host.onrefused = (refused) => proxy.#refused(refused);
    host.onerror = (error) => safeLog(options.log, { err: error }, "MCP host channel error");
    return proxy;
  }

  /** start() on this process's stdin and stdout, the host's end of a stdio MCP server. */
  static startOnStdio(options: McpProxyOptions): Promise<McpProxy> {
    return McpProxy.start(options, new HostStdioTransport());
  }

  /** Resolves once the host is gone and everything is closed. */
  get closed(): Promise<void> {
    return this.#closed;
  }

  async close(): Promise<void> {
    if (this.#closing) return await this.#closed;
    this.#closing = true;
    const client = this.#client;
    this.#client = undefined;
    await client?.close().catch(() => {});
    if (this.#serving) await this.#server.close().catch(() => {});
    this.#resolveClosed();
  }

  /** The connected upstream, started (again) when it is not running. */
  async #upstream(): Promise<Client> {
    if (this.#client !== undefined) return this.#client;
    if (this.#closing) throw new UpstreamFailure("upstream_failed", "The proxy is closing.");
    this.#connecting ??= this.#connect().finally(() => (this.#connecting = undefined));
    return await this.#connecting;
  }

  async #connect(): Promise<Client> {
    const { upstream, log } = this.#options;
    const transport = new StdioClientTransport({
      command: upstream.command,
      args: [...upstream.args],
      env: upstream.env ?? upstreamEnv(),
      ...(upstream.cwd === undefined ? {} : { cwd: upstream.cwd }),
      // The upstream's diagnostics join the proxy's on stderr; never stdout.
      stderr: "inherit",
    });
    const client = new Client({ name: "veto-mcp-proxy", version: this.#options.version });
    client.onerror = (error) => safeLog(log, { err: error }, "upstream MCP error");
    client.onclose = () => {
      if (this.#client !== client) return;
      this.#client = undefined;
      this.#addsReason.clear();
      if (!this.#closing) log.warn({ pid: transport.pid }, "upstream MCP server exited; it is started again on the next request");
    };
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      this.#addsReason.clear();
      if (this.#serving) this.#server.sendToolListChanged().catch(() => {});
    });
    try {
      await client.connect(transport, { timeout: this.#options.upstreamTimeoutMs });
    } catch (error) {
      await client.close().catch(() => {});
      throw new UpstreamFailure(
        "upstream_failed",
        `The upstream MCP server (${upstream.command}) could not be started: ${toError(error).message}.`,
        { cause: error },
      );
    }
    this.#client = client;
    return client;
  }

  async #listTools(
    params: { cursor?: string | undefined } | undefined,
    signal: AbortSignal,
  ): Promise<{ tools: Tool[]; nextCursor?: string }> {
    let page;
    try {
      const upstream = await this.#upstream();
      page = await upstream.listTools(params?.cursor === undefined ? {} : { cursor: params.cursor }, {
        signal,
        timeout: this.#options.upstreamTimeoutMs,
      });
    } catch (error) {
      throw new McpError(ErrorCode.InternalError, `veto mcp-proxy: the upstream's tools cannot be listed: ${toError(error).message}`);
    }
    const { toolMap, context, veto, log } = this.#options;
    const tools: Tool[] = [];
    for (const tool of page.tools) {
      const addsReason = tool.inputSchema.properties?.["reason"] === undefined;
      this.#addsReason.set(tool.name, addsReason);
      const seen = await toolVisibility(veto, { tool: toolMap.policyTool(tool.name), context });
      if (!seen.visible) {
        log.info({ tool: tool.name, reasons: seen.reasons.map((r) => r.code) }, "tool hidden by the policy");
        continue;
      }
      tools.push(
        addsReason
          ? { ...tool, inputSchema: { ...tool.inputSchema, properties: { ...tool.inputSchema.properties, reason: REASON_PROPERTY } } }
          : tool,
      );
    }
    return { tools, ...(page.nextCursor === undefined ? {} : { nextCursor: page.nextCursor }) };
  }

  /** Whether the proxy adds (and so strips) `reason` for this tool; an unlisted tool is looked up, and when unknown it is stripped. */
  async #stripsReason(name: string): Promise<boolean> {
    const known = this.#addsReason.get(name);
    if (known !== undefined) return known;
    try {
      const upstream = await this.#upstream();
      let cursor: string | undefined;
      for (let pages = 0; pages < MAX_LIST_PAGES; pages++) {
        const page = await upstream.listTools(cursor === undefined ? {} : { cursor }, { timeout: this.#options.upstreamTimeoutMs });
        for (const tool of page.tools) this.#addsReason.set(tool.name, tool.inputSchema.properties?.["reason"] === undefined);
        cursor = page.nextCursor;
        if (cursor === undefined || this.#addsReason.has(name)) break;
      }
    } catch {
      // Not known: stripped, as for a tool the proxy would have given the field.
    }
    return this.#addsReason.get(name) ?? true;
  }

  async #callTool(
    params: { name: string; arguments?: Record<string, unknown> | undefined },
    host: {
      signal: AbortSignal;
      requestId: string;
      progressToken: string | number | undefined;
      sendNotification: (n: { method: string; params: Record<string, unknown> }) => Promise<void>;
    },
  ): Promise<ToolResult> {
    const { name } = params;
    const given = params.arguments ?? {};
    const strips = await this.#stripsReason(name);
    let reason: unknown;
    let forwarded: Record<string, unknown>;
    if (strips) {
      const { reason: stripped, ...rest } = given;
      reason = stripped;
      forwarded = rest;
    } else {
      // The tool's own `reason` is forwarded, and read as the call's reason when it is text.
      reason = typeof given["reason"] === "string" ? given["reason"] : undefined;
      forwarded = { ...given };
    }
    const call = this.#options.toolMap.map(name, forwarded);
    // Progress to the host's token only ever increases: the wait's beats,
    // then the upstream's own progress counted on from the last beat.
    let last = 0;
    const send = (value: number, total: number | undefined, message: string | undefined): void => {
      if (host.progressToken === undefined) return;
      last = value > last ? value : last + 1;
      host
        .sendNotification({
          method: "notifications/progress",
          params: {
            progressToken: host.progressToken,
            progress: last,
            ...(total === undefined ? {} : { total }),
            ...(message === undefined ? {} : { message }),
          },
        })
        .catch(() => {});
    };
    const relay = (): ((p: { progress: number; total?: number | undefined; message?: string | undefined }) => void) => {
      const base = last;
      return (p) => send(base + p.progress, p.total === undefined ? undefined : base + p.total, p.message);
    };
    const urlElicitation = this.#server.getClientCapabilities()?.elicitation?.url !== undefined;
    const channel: CallChannel = {
      signal: host.signal,
      requestId: host.requestId,
      progressToken: host.progressToken,
      sendProgress: async ({ progress: n, message }) => send(n, undefined, message),
      elicitUrl: urlElicitation
        ? async (request, signal) =>
            (
              await this.#server.elicitInput(
                { mode: "url", ...request },
                { signal, timeout: this.#options.approvalTimeoutMs, relatedRequestId: host.requestId },
              )
            ).action
        : undefined,
      completeElicitation: urlElicitation ? (id) => this.#server.createElicitationCompletionNotifier(id)() : undefined,
    };
    return await governCall(
      this.#options,
      call,
      forwarded,
      reason,
      channel,
      (args, signal) => this.#forward(name, args, signal, host.progressToken === undefined ? undefined : relay()),
      (amended) => this.#options.toolMap.unmap(name, amended),
    );
  }

  async #forward(
    name: string,
    args: Record<string, unknown>,
    signal: AbortSignal,
    onprogress: ((p: { progress: number; total?: number | undefined; message?: string | undefined }) => void) | undefined,
  ): Promise<ToolResult> {
    const upstream = await this.#upstream();
    const timeoutMs = this.#options.upstreamTimeoutMs;
    try {
      const result = await upstream.callTool({ name, arguments: args }, CallToolResultSchema, {
        signal,
        timeout: timeoutMs,
        resetTimeoutOnProgress: true,
        ...(onprogress === undefined ? {} : { onprogress }),
      });
      return result as ToolResult;
    } catch (error) {
      if (error instanceof McpError && error.code === (ErrorCode.RequestTimeout as number)) {
        throw new UpstreamFailure("upstream_timeout", `The upstream MCP server did not answer ${name} within ${timeoutMs} ms.`, {
          cause: error,
        });
      }
      if (error instanceof McpError && error.code === (ErrorCode.ConnectionClosed as number)) {
        throw new UpstreamFailure(
          "upstream_failed",
          `The upstream MCP server closed the connection during ${name} (it exited or crashed); it is started again on the next request.`,
          { cause: error },
        );
      }
      throw new UpstreamFailure("upstream_error", `The upstream MCP server failed ${name}: ${toError(error).message}.`, { cause: error });
    }
  }

  /**
   * A refused message: logged; a tools/call request (with an id, even an
   * unusable one) is decided as unreadable input under the proxy's context,
   * so it is recorded and counts towards escalation like any invalid_input
   * (docs/contract.md §9); its decision goes in the error's data.
   */
  async #refused(refused: RefusedMessage): Promise<Record<string, unknown> | undefined> {
    const { veto, context, log, toolMap } = this.#options;
    const { problem, code, id, method, toolName } = refused;
    log.warn({ code, id, method, tool: toolName, problem }, "MCP message refused");
    if (method !== "tools/call" || !refused.answered) return undefined;
    try {
      const decision = await protectUnreadable(veto, refused.text, problem, {
        tool: toolName === undefined ? undefined : toolMap.policyTool(toolName),
        context: { ...context, ...(id === undefined ? {} : { requestId: String(id) }) },
      });
      return { [META_KEY]: decisionMeta(decision.reasons[0]?.code ?? "invalid_input", decision) };
    } catch (error) {
      safeLog(log, { err: toError(error) }, "refused tools/call could not be recorded");
      return undefined;
    }
  }

  #noteMalformed(message: JSONRPCMessage): void {
    // It passed the SDK's schema: an id is a string or an integer.
    const m = message as { method?: unknown; id?: string | number; params?: unknown };
    if (m.method !== "tools/call" || m.id === undefined || CallToolRequestSchema.safeParse(message).success) return;
    const params = (m.params ?? {}) as { name?: unknown; arguments?: unknown };
    const tool = typeof params.name === "string" ? this.#options.toolMap.policyTool(params.name) : (params.name ?? null);
    const { veto, context, log } = this.#options;
    veto
      .protect({ tool, arguments: params.arguments ?? null, context: { ...context, requestId: String(m.id) } })
      .catch((error: unknown) => safeLog(log, { err: toError(error) }, "malformed tools/call could not be recorded"));
  }
}
