/**
 * How an MCP tool call becomes the call the policy decides (docs/mcp.md,
 * "Tool map"): the MCP tool's name maps to a policy tool, and its arguments
 * to the contract's (docs/contract.md §1) by JSON Pointers (RFC 6901) into the
 * MCP arguments, or constants. A tool the map does not name is decided as it
 * is: the policy tool is the MCP name and the arguments are the MCP arguments.
 *
 * A mapped call carries every MCP argument too, as `arguments.mcp`: the
 * decision, its record, its digest and any approval then cover exactly what
 * is forwarded, not only the fields the map picked out.
 */
import { z } from "zod";
import { canonicalJson } from "../common/canonical-json.js";
import { VetoOptionsError } from "../common/errors.js";

/** The contract's argument fields a map may fill (docs/contract.md §1). */
export const CONTRACT_ARGUMENTS = ["object", "recordId", "tenantId", "changes", "amount", "destination", "fields"] as const;
export type ContractArgument = (typeof CONTRACT_ARGUMENTS)[number];

/** Where the mapped call keeps the MCP arguments as they are forwarded. */
export const MCP_ARGUMENTS_FIELD = "mcp";

const pointer = z
  .string()
  .regex(/^(\/([^~/]|~[01])*)*$/, { message: 'a JSON Pointer into the MCP arguments, such as "/deal/id" ("" is all of them)' });
const source = z.union([pointer, z.strictObject({ value: z.unknown() })]);

const entrySchema = z.strictObject({
  tool: z.string().min(1, { message: "tool must be the policy's tool name" }),
  arguments: z.partialRecord(z.enum(CONTRACT_ARGUMENTS), source).optional(),
});

export const toolMapSchema = z.record(z.string().min(1), entrySchema);
export type ToolMapEntry = z.infer<typeof entrySchema>;
export type ToolMapDocument = z.infer<typeof toolMapSchema>;

/** A call for the policy: the tool and the arguments that are decided. */
export interface MappedCall {
  readonly tool: string;
  readonly arguments: Record<string, unknown>;
}

/** Read a JSON Pointer; undefined when any step is missing. */
function resolvePointer(document: unknown, path: string): unknown {
  if (path === "") return document;
  let at: unknown = document;
  for (const raw of path.slice(1).split("/")) {
    const key = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (at === null || typeof at !== "object") return undefined;
    if (Array.isArray(at)) {
      if (!/^(0|[1-9][0-9]*)$/.test(key)) return undefined;
      at = at[Number(key)];
    } else {
      if (!Object.hasOwn(at, key)) return undefined;
      at = (at as Record<string, unknown>)[key];
    }
  }
  return at;
}

export class ToolMap {
  readonly #entries: ReadonlyMap<string, ToolMapEntry>;

  private constructor(entries: ReadonlyMap<string, ToolMapEntry>) {
    this.#entries = entries;
  }

  /** The identity map: every MCP tool is the policy tool of the same name. */
  static identity(): ToolMap {
    return new ToolMap(new Map());
  }

  /** Check a tool map document (`where` names it in messages); a VetoOptionsError naming each problem otherwise. */
  static parse(document: unknown, where = "tool map"): ToolMap {
    const parsed = toolMapSchema.safeParse(document);
    if (!parsed.success) throw new VetoOptionsError(`${where} is not a tool map: ${z.prettifyError(parsed.error).replace(/\n/g, "; ")}`);
    return new ToolMap(new Map(Object.entries(parsed.data)));
  }

  /** The policy tool an MCP tool is decided as. */
  policyTool(mcpName: string): string {
    return this.#entries.get(mcpName)?.tool ?? mcpName;
  }

  /**
   * The MCP arguments to forward for a call the policy decided (an
   * approver's amendment of one, docs/contract.md §6, amend), or undefined
   * when it does not come from MCP tool `mcpName`'s arguments as this map
   * maps them: unmapped, the call's own arguments (its tool must be the MCP
   * name); mapped, its `arguments.mcp.arguments`, which must map again to
   * exactly the call, so that what is forwarded is what was decided.
   */
  unmap(mcpName: string, call: MappedCall): Record<string, unknown> | undefined {
    if (!this.#entries.has(mcpName)) return call.tool === mcpName ? call.arguments : undefined;
    const mcp = call.arguments[MCP_ARGUMENTS_FIELD] as { name?: unknown; arguments?: unknown } | undefined;
    if (mcp === null || typeof mcp !== "object" || mcp.name !== mcpName) return undefined;
    const args = mcp.arguments;
    if (args === null || typeof args !== "object" || Array.isArray(args)) return undefined;
    try {
      const again = this.map(mcpName, args as Record<string, unknown>);
      return canonicalJson(again) === canonicalJson(call) ? (args as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The call the policy decides for an MCP call with these (already
   * reason-stripped) arguments. Absent pointers leave the field out; what a
   * field holds is the policy's to judge (a wrong type is invalid_input).
   */
  map(mcpName: string, mcpArguments: Record<string, unknown>): MappedCall {
    const entry = this.#entries.get(mcpName);
    if (entry === undefined) return { tool: mcpName, arguments: mcpArguments };
    const args: Record<string, unknown> = {};
    for (const field of CONTRACT_ARGUMENTS) {
      const from = entry.arguments?.[field];
      if (from === undefined) continue;
      const value = typeof from === "string" ? resolvePointer(mcpArguments, from) : from.value;
      if (value !== undefined) args[field] = value;
    }
    args[MCP_ARGUMENTS_FIELD] = { name: mcpName, arguments: mcpArguments };
    return { tool: entry.tool, arguments: args };
  }
}
