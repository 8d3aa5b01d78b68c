/**
 * The registerTool wrapper (docs/mcp.md, "In your own MCP server"): the
 * proxy's guarantees for a tool handler of an MCP server you write. A denied
 * call never reaches the handler; one that needs approval waits for it and
 * claims it use-once; the handler receives a frozen copy of exactly the
 * arguments decided, without `reason`.
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import { ElicitResultSchema, type CallToolResult, type ServerNotification, type ServerRequest } from "@modelcontextprotocol/sdk/types.js";
import { pino, type Logger } from "pino";
import { z } from "zod";
import type { Veto } from "../veto.js";
import { VetoOptionsError } from "../common/errors.js";
import { standardLogDestination } from "../records/fd-sink.js";
import { governCall, type BaseContext, type ToolResult } from "./govern.js";
import { ToolMap, type ToolMapEntry } from "./tool-map.js";
import { DEFAULT_APPROVAL_TIMEOUT_MS, DEFAULT_PROGRESS_INTERVAL_MS, REASON_PROPERTY } from "./proxy.js";

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

export interface GovernedToolOptions {
  /** Who calls, for which tenant, where (docs/contract.md §1); or a function of the request (its authInfo, sessionId). Required. */
  readonly context: BaseContext | ((extra: Extra) => BaseContext);
  /** How this tool's arguments map to the contract's: `{ tool, arguments }` of a tool map entry (docs/mcp.md). Default: decided as `name` with its arguments as they are. */
  readonly map?: ToolMapEntry;
  /** "wait" for an answer (another process or an approval service answers on the same store), or refuse at once with approval_unavailable. Default "wait". */
  readonly approvals?: "wait" | "unavailable";
  /** Longest wait for an approval, ms. Default 55,000 (under the hosts' common 60 s request timeout). */
  readonly approvalTimeoutMs?: number;
  /** Where a person answers, sent as an URL elicitation when the host supports it (`{decisionId}` replaced). Needs `server`. Default: none. */
  readonly inboxUrl?: string;
  /** Your McpServer: lets the wrapper see whether the host supports URL elicitation. Default: none (no elicitation). */
  readonly server?: McpServer;
  /** Interval of progress notifications while waiting, to hosts that sent a progressToken, ms. Default 5,000. */
  readonly progressIntervalMs?: number;
  /** pino logger for failures. Default: pino on stderr (stdout may be the MCP channel). */
  readonly logger?: Logger;
}

/** A zod raw shape with the optional `reason` field the wrapper reads (and strips before your handler). */
export function withReason<S extends z.ZodRawShape>(shape: S): S & { reason: z.ZodOptional<z.ZodString> } {
  return { ...shape, reason: z.string().describe(REASON_PROPERTY.description).optional() };
}

/**
 * Wrap `handler`, registered as MCP tool `name`: every call is decided by
 * `veto` first (docs/contract.md §6b, with MCP results: a refusal is an
 * isError result naming the code).
 */
export function governedTool<A extends Record<string, unknown>>(
  veto: Veto,
  name: string,
  handler: (args: Readonly<Omit<A, "reason">>, extra: Extra) => CallToolResult | Promise<CallToolResult>,
  options: GovernedToolOptions,
): (args: A, extra: Extra) => Promise<CallToolResult> {
  if (veto === null || typeof veto !== "object" || typeof veto.protect !== "function") {
    throw new VetoOptionsError("governedTool: veto (from createVeto) is required");
  }
  if (typeof name !== "string" || name === "") throw new VetoOptionsError("governedTool: name must be the MCP tool's name");
  if (typeof handler !== "function") throw new VetoOptionsError("governedTool: handler must be the tool's handler");
  if (options === null || typeof options !== "object" || options.context === undefined) {
    throw new VetoOptionsError("governedTool: options.context ({ actorId, tenantId, environment } or a function) is required");
  }
  const toolMap = options.map === undefined ? ToolMap.identity() : ToolMap.parse({ [name]: options.map }, "governedTool: options.map");
  const timeoutMs = options.approvalTimeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS;
  if (!(Number.isFinite(timeoutMs) && timeoutMs >= 0))
    throw new VetoOptionsError("governedTool: approvalTimeoutMs must be a non-negative number");
  if (options.inboxUrl !== undefined && !URL.canParse(options.inboxUrl.replaceAll("{decisionId}", "x"))) {
    throw new VetoOptionsError(`governedTool: inboxUrl is not a URL: ${options.inboxUrl}`);
  }
  const log = (options.logger ?? pino({ name: "veto" }, standardLogDestination(2))).child({ component: "mcp" });
  return async (args: A, extra: Extra): Promise<CallToolResult> => {
    const { reason, ...rest } = args;
    const context = typeof options.context === "function" ? options.context(extra) : options.context;
    const call = toolMap.map(name, rest);
    const progressToken = extra._meta?.progressToken;
    const urlElicitation = options.server?.server.getClientCapabilities()?.elicitation?.url !== undefined;
    const result: ToolResult = await governCall(
      {
        veto,
        context,
        approvals: options.approvals ?? "wait",
        approvalTimeoutMs: timeoutMs,
        inboxUrl: options.inboxUrl,
        progressIntervalMs: options.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS,
        log,
      },
      call,
      rest,
      reason,
      {
        signal: extra.signal,
        requestId: String(extra.requestId),
        progressToken,
        sendProgress: (params) => extra.sendNotification({ method: "notifications/progress", params }),
        elicitUrl: urlElicitation
          ? async (request, signal) =>
              (
                await extra.sendRequest({ method: "elicitation/create", params: { mode: "url", ...request } }, ElicitResultSchema, {
                  signal,
                })
              ).action
          : undefined,
        completeElicitation: urlElicitation
          ? (id) => extra.sendNotification({ method: "notifications/elicitation/complete", params: { elicitationId: id } })
          : undefined,
      },
      async (decided) => (await handler(decided as Readonly<Omit<A, "reason">>, extra)) as ToolResult,
      (amended) => toolMap.unmap(name, amended),
    );
    return result;
  };
}
