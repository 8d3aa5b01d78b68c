// What the MCP SDK's own stdio transport drops or dies of (docs/mcp.md,
// "Malformed messages"), sent to the real proxy process in raw lines: a line
// over 10 MiB, a JSON-RPC batch, id null, a progress token that is an object,
// a request that also carries a result, text that is not JSON or not UTF-8.
// Each is answered (echoing its id when it has a usable one), a tools/call
// among them is recorded as invalid_input under the proxy's actor and counts
// towards escalation, nothing refused reaches the upstream, and the proxy
// stays up. Ids, tools and key order are generated (seeded).
import { describe, expect, it } from "vitest";
import { seededRandom } from "../helpers/generate-calls.js";
import { ACTOR, startRawProxy, decisionRecords } from "./helpers.js";

const read = { object: "contact", recordId: "c_1", tenantId: "acme", fields: ["name"] };

describe("veto mcp-proxy on malformed host messages", () => {
  const seed = Number(process.env.VETO_MCP_SEED ?? Math.floor(Math.random() * 2 ** 31));

  it(`answers, records and survives every kind the SDK drops (seed ${seed})`, { timeout: 120_000 }, async () => {
    const random = seededRandom(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const newId = (i: number): string | number => (random() < 0.5 ? 1000 + i : `req-${i}-${Math.floor(random() * 1e6)}`);
    /** A tools/call line, its id first or last (the SDK's client writes it last). */
    const callLine = (id: unknown, name: string, params: Record<string, unknown>, extra: Record<string, unknown> = {}): string => {
      const body = { method: "tools/call", params: { name, ...params }, ...extra };
      return random() < 0.5 ? JSON.stringify({ jsonrpc: "2.0", id, ...body }) : JSON.stringify({ jsonrpc: "2.0", ...body, id });
    };
    const proxy = await startRawProxy();

    // A batch (MCP 2025-03-26): each element served on its own, the allowed read forwarded once.
    const batchRead = newId(0);
    proxy.write(
      `${JSON.stringify([
        { jsonrpc: "2.0", id: batchRead, method: "tools/call", params: { name: "crm.read", arguments: read } },
        { jsonrpc: "2.0", id: "batch-ping", method: "ping" },
      ])}\n`,
    );
    expect(await proxy.answer("batch-ping")).toMatchObject({ result: {} });
    expect(await proxy.answer(batchRead)).toMatchObject({ result: { content: [{ type: "text" }] } });
    expect((await proxy.answer(batchRead))["result"]).not.toHaveProperty("isError", true);
    expect(proxy.calls().map((c) => c.name)).toEqual(["crm.read"]);

    const tools = ["crm.read", "crm.update", "crm.export", "crm.delete"];
    // Each refused tools/call: its line, the id the answer must carry (undefined: none), the code, the problem.
    const refused: { line: string | Buffer; id: unknown; code: number; problem: RegExp; tool: string }[] = [];
    const tool = (): string => pick(tools);
    let i = 1;
    const add = (
      make: (id: string | number, name: string) => string | Buffer,
      id: unknown,
      code: number,
      problem: RegExp,
      name: string,
    ): void => {
      refused.push({ line: make(id as string | number, name), id, code, problem, tool: name });
    };
    let id = newId(i++);
    add(
      (d, n) => callLine(d, n, { arguments: { ...read, changes: { notes: "x".repeat(11 * 1024 * 1024) } } }),
      id,
      -32600,
      /longer than 10485760 bytes/,
      tool(),
    );
    add((_, n) => callLine(null, n, { arguments: read }), undefined, -32600, /id must be a string or an integer/, tool());
    id = newId(i++);
    add((d, n) => callLine(d, n, { arguments: read, _meta: { progressToken: { a: 1 } } }), id, -32600, /progressToken/, tool());
    id = newId(i++);
    add((d, n) => callLine(d, n, { arguments: read }, { result: {} }), id, -32600, /only jsonrpc, id, method and params/, tool());
    id = newId(i++);
    // Cut short after its id.
    add(
      (d, n) => JSON.stringify({ jsonrpc: "2.0", id: d, method: "tools/call", params: { name: n, arguments: read } }).slice(0, -12),
      id,
      -32700,
      /not JSON/,
      tool(),
    );
    id = newId(i);
    add(
      (d, n) => {
        const [before, after] = callLine(d, n, { arguments: { ...read, recordId: "A~B" } }).split("~");
        return Buffer.concat([Buffer.from(before!), Buffer.from([0xff]), Buffer.from(`${after!}\n`)]);
      },
      id,
      -32700,
      /not valid UTF-8/,
      tool(),
    );
    for (const r of refused) proxy.write(typeof r.line === "string" ? `${r.line}\n` : r.line);
    // Not a tools/call: answered, not recorded.
    proxy.write("not json at all\n");
    proxy.write(`${JSON.stringify({ jsonrpc: "2.0", id: null, method: "tools/list" })}\n`);
    proxy.send({ id: "after", method: "ping" });
    expect(await proxy.answer("after")).toMatchObject({ result: {} });
    // Two id-less answers besides the one for id null: those written after it are in order.
    await proxy.written(1 + 2 + refused.length + 2 + 1);

    for (const r of refused.filter((x) => x.id !== undefined)) {
      const answer = await proxy.answer(r.id as string | number);
      const error = answer["error"] as { code: number; message: string; data: Record<string, { code: string; decisionId: string }> };
      expect(error.code).toBe(r.code);
      expect(error.message).toMatch(r.problem);
      expect(error.data["veto-crm/decision"]).toMatchObject({ code: "invalid_input", action: "deny" });
    }
    const idless = proxy.messages().filter((m) => !("id" in m));
    expect(idless.map((m) => (m["error"] as { code: number }).code).sort()).toEqual([-32700, -32600, -32600].sort());

    // Recorded: one invalid_input deny per refused tools/call, under the proxy's actor, with its tool.
    const invalid = decisionRecords(proxy.log).filter(
      (r) => (r["result"] as { reasons: { code: string }[] }).reasons[0]?.code === "invalid_input",
    );
    expect(invalid).toHaveLength(refused.length);
    expect(invalid.map((r) => r["tool"]).sort()).toEqual(refused.map((r) => r.tool).sort());
    expect(invalid.every((r) => r["actor_id"] === ACTOR && r["tenant_id"] === "acme" && r["input"] === null)).toBe(true);
    // Each with the JSON-RPC id it came with, when it had a usable one, as its request_id.
    expect(invalid.map((r) => r["request_id"]).sort()).toEqual(
      refused.map((r) => (r.id === undefined ? null : String(r.id as string | number))).sort(),
    );
    // The line over the limit and the one that is not UTF-8 were never kept as text: no digest of them.
    expect(invalid.filter((r) => r["input_digest"] === null)).toHaveLength(2);
    // Nothing refused was forwarded.
    expect(proxy.calls().map((c) => c.name)).toEqual(["crm.read"]);
    // They count towards escalation (docs/contract.md §9): the next allowed read is escalated.
    proxy.send({ id: "last", method: "tools/call", params: { name: "crm.read", arguments: read } });
    const last = (await proxy.answer("last"))["result"] as { _meta: Record<string, { code: string }> };
    expect(last._meta["veto-crm/decision"]).toMatchObject({ code: "repeated_denies" });
    // Each refusal is logged to stderr, never to stdout; and the proxy ends cleanly with its stdin.
    expect(proxy.stderr().match(/"msg":"MCP message refused"/g)).toHaveLength(refused.length + 2);
    expect(await proxy.end()).toBe(0);
  });
});
