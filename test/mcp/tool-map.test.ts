// The tool map (docs/mcp.md, "Tool map"): JSON Pointers into generated MCP
// arguments (seeded: VETO_TOOL_MAP_SEED reproduces a run) find exactly the
// value at their path, escapes included; a pointer that finds nothing leaves
// the field out; the mapped call always carries every MCP argument; a map of
// the wrong shape is a VetoOptionsError naming the problem.
import { describe, expect, it } from "vitest";
import { VetoOptionsError } from "../../adapter/common/errors.js";
import { McpProxy, ToolMap } from "../../adapter/mcp/index.js";
import { seededRandom } from "../helpers/generate-calls.js";

const seed = Number(process.env.VETO_TOOL_MAP_SEED ?? Math.floor(Math.random() * 2 ** 31));
const random = seededRandom(seed);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
const KEYS = ["id", "deal", "a/b", "m~n", "~1", "", "0", "10", "set", "ключ", "amount"];

function value(depth: number): unknown {
  const r = random();
  if (depth > 3 || r < 0.3) return pick(["x", 7, 0, -1.5, true, false, null, ""]);
  if (r < 0.5) return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1));
  return Object.fromEntries(Array.from({ length: 1 + Math.floor(random() * 4) }, () => [pick(KEYS), value(depth + 1)]));
}

/** Every path in a value, with what is there. */
function paths(v: unknown, at: string[] = []): { path: string[]; value: unknown }[] {
  const here = [{ path: at, value: v }];
  if (v === null || typeof v !== "object") return here;
  const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v);
  return [...here, ...entries.flatMap(([k, x]) => paths(x, [...at, k]))];
}

const pointer = (path: string[]): string => path.map((k) => `/${k.replaceAll("~", "~0").replaceAll("/", "~1")}`).join("");

describe("ToolMap", () => {
  it(`a pointer finds exactly the value at its path; a missing one leaves the field out (seed ${seed})`, () => {
    for (let i = 0; i < 300; i++) {
      const args = { doc: value(0), other: value(1) } as Record<string, unknown>;
      for (const { path, value: expected } of paths(args)) {
        const map = ToolMap.parse({ t: { tool: "crm.update", arguments: { changes: pointer(path), object: { value: "deal" } } } });
        const mapped = map.map("t", args);
        expect(mapped.tool).toBe("crm.update");
        expect(mapped.arguments["object"]).toBe("deal");
        expect(mapped.arguments["changes"], `seed ${seed}: ${pointer(path)}`).toEqual(expected);
        expect(mapped.arguments["mcp"]).toEqual({ name: "t", arguments: args });
        const missing = map.map("t", {});
        expect("changes" in missing.arguments, `seed ${seed}: ${pointer(path)}`).toBe(path.length === 0);
      }
    }
  });

  it("leaves an unmapped tool as it is, and refuses maps of the wrong shape", () => {
    const args = { recordId: "r", reason: undefined };
    expect(ToolMap.identity().map("crm.read", args)).toEqual({ tool: "crm.read", arguments: args });
    for (const [document, problem] of [
      [{ t: { tool: "" } }, /policy's tool name/],
      [{ t: { tool: "crm.update", arguments: { recordId: "id" } } }, /JSON Pointer/],
      [{ t: { tool: "crm.update", arguments: { notAField: "/x" } } }, /notAField|key/i],
      [{ t: { tool: "crm.update", extra: 1 } }, /extra|key/i],
      [[], /expected record|object/i],
    ] as const) {
      expect(() => ToolMap.parse(document, "the map")).toThrow(VetoOptionsError);
      expect(() => ToolMap.parse(document, "the map")).toThrow(problem);
    }
  });

  it("McpProxy.start refuses options it cannot run with, naming each", async () => {
    await expect(McpProxy.start({ approvals: "sometimes" } as never, {} as never)).rejects.toThrow(
      /veto \(from createVeto\) is required; context must be .*; approvals must be .*; upstream must be .*toolMap must be/,
    );
  });
  it(`unmap gives back the MCP arguments of exactly the mapped call, nothing for any other (seed ${seed})`, () => {
    const map = ToolMap.parse({
      t: { tool: "crm.update", arguments: { changes: "/doc", amount: "/doc/amount", recordId: "/id", object: { value: "deal" } } },
    });
    for (let i = 0; i < 300; i++) {
      const args = { doc: value(0), id: pick(["a", "b", 7]), other: value(1) } as Record<string, unknown>;
      const mapped = map.map("t", args);
      expect(map.unmap("t", mapped)).toEqual(args);
      // The same call with its keys in another order is the same call.
      expect(map.unmap("t", { tool: mapped.tool, arguments: Object.fromEntries(Object.entries(mapped.arguments).reverse()) })).toEqual(
        args,
      );
      // One decided field changed without the MCP arguments (or the tool, or the MCP name): not what would be forwarded.
      const field = pick(Object.keys(mapped.arguments).filter((k) => k !== "mcp"));
      expect(map.unmap("t", { tool: mapped.tool, arguments: { ...mapped.arguments, [field]: { changed: i } } })).toBeUndefined();
      expect(map.unmap("t", { tool: "crm.delete", arguments: mapped.arguments })).toBeUndefined();
      expect(
        map.unmap("t", { tool: mapped.tool, arguments: { ...mapped.arguments, mcp: { name: "u", arguments: args } } }),
      ).toBeUndefined();
      expect(map.unmap("t", { tool: mapped.tool, arguments: { ...mapped.arguments, mcp: "x" } })).toBeUndefined();
      // Unmapped tools: the call's own arguments, for its own name only.
      expect(map.unmap("u", { tool: "u", arguments: args })).toBe(args);
      expect(map.unmap("u", { tool: "v", arguments: args })).toBeUndefined();
    }
  });
});
