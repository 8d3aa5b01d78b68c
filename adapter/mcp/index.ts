/**
 * "veto-crm/mcp": Veto in front of MCP tools (docs/mcp.md). `governedTool`
 * wraps a registerTool handler of your own MCP server; `McpProxy` is what
 * `veto mcp-proxy` runs in front of any MCP server, on a HostStdioTransport
 * (every host line delivered or answered); `ToolMap` maps MCP tool
 * calls to the policy's (docs/contract.md §1).
 */
export { governedTool, withReason } from "./wrap.js";
export type { GovernedToolOptions } from "./wrap.js";
export {
  McpProxy,
  DEFAULT_APPROVAL_TIMEOUT_MS,
  DEFAULT_PROGRESS_INTERVAL_MS,
  DEFAULT_UPSTREAM_TIMEOUT_MS,
  REASON_PROPERTY,
} from "./proxy.js";
export type { McpProxyOptions, UpstreamCommand } from "./proxy.js";
export { DEFAULT_MAX_MESSAGE_BYTES, HostStdioTransport } from "./host-transport.js";
export type { HostTransportOptions, RefusedMessage } from "./host-transport.js";
export { META_KEY, UpstreamFailure } from "./govern.js";
export type { BaseContext, CallChannel, GovernOptions, ToolResult } from "./govern.js";
export { CONTRACT_ARGUMENTS, MCP_ARGUMENTS_FIELD, ToolMap, toolMapSchema } from "./tool-map.js";
export type { ContractArgument, MappedCall, ToolMapDocument, ToolMapEntry } from "./tool-map.js";
