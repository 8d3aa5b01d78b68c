// The MCP proxy's host channel (adapter/mcp/host-transport.ts, docs/mcp.md
// "Malformed messages"): every line from the host is delivered or answered,
// never dropped, and the channel stays open. The transport is driven through
// real streams with the MCP SDK's own message schema; generated messages and
// chunk boundaries (fast-check, seeded).
import { PassThrough } from "node:stream";
import fc from "fast-check";
import { JSONRPCMessageSchema, type JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { describe, expect, it } from "vitest";
import { HostStdioTransport, type RefusedMessage } from "../../adapter/mcp/host-transport.js";
import { MessageScan, sketchOf } from "../../adapter/mcp/message-scan.js";

const SEED = 20261203;

interface Wire {
  readonly transport: HostStdioTransport;
  readonly delivered: JSONRPCMessage[];
  readonly refused: RefusedMessage[];
  /** Everything written to the host, parsed line by line. */
  answers(): Record<string, unknown>[];
  /** Write these bytes to the transport, cut at the given offsets. */
  feed(bytes: Buffer, cuts?: readonly number[]): void;
  /** Wait until the answers written settle. */
  settle(): Promise<void>;
}

async function wire(maxMessageBytes?: number): Promise<Wire> {
  const input = new PassThrough();
  const output = new PassThrough();
  let written = "";
  output.on("data", (c: Buffer) => (written += c.toString("utf8")));
  const transport = new HostStdioTransport({ input, output, ...(maxMessageBytes === undefined ? {} : { maxMessageBytes }) });
  const delivered: JSONRPCMessage[] = [];
  const refused: RefusedMessage[] = [];
  transport.onmessage = (m) => delivered.push(m);
  transport.onrefused = (r) => {
    refused.push(r);
    return Promise.resolve({ seen: refused.length });
  };
  await transport.start();
  return {
    transport,
    delivered,
    refused,
    answers: () =>
      written
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    feed(bytes, cuts = []) {
      let at = 0;
      for (const cut of [...cuts].sort((a, b) => a - b)) {
        if (cut <= at || cut >= bytes.length) continue;
        input.write(bytes.subarray(at, cut));
        at = cut;
      }
      input.write(bytes.subarray(at));
    },
    settle: async () => {
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    },
  };
}

const line = (message: unknown): Buffer => Buffer.from(`${JSON.stringify(message)}\n`, "utf8");
const id = fc.oneof(fc.string({ maxLength: 12 }), fc.integer());
const args = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 });
/** A valid tools/call, its keys in any order (the SDK's client writes id last). */
const toolsCall = fc
  .record({ id, name: fc.string({ minLength: 1, maxLength: 20 }), arguments: args, order: fc.integer({ min: 0, max: 3 }) })
  .map(({ id: i, name, arguments: a, order }) => {
    const fields: [string, unknown][] = [
      ["jsonrpc", "2.0"],
      ["method", "tools/call"],
      ["params", { name, arguments: a }],
    ];
    fields.splice(order, 0, ["id", i]);
    return Object.fromEntries(fields);
  });

describe("MessageScan: id, method and params.name of a message never parsed whole", () => {
  it(`finds them wherever they stand, across any chunk boundaries (generated, seed ${SEED})`, () => {
    fc.assert(
      fc.property(toolsCall, fc.array(fc.nat(), { maxLength: 6 }), (message, cuts) => {
        const bytes = Buffer.from(JSON.stringify(message), "utf8");
        const scan = new MessageScan();
        let at = 0;
        for (const cut of [...cuts.map((c) => c % (bytes.length + 1))].sort((a, b) => a - b)) {
          scan.push(bytes.subarray(at, Math.max(at, cut)));
          at = Math.max(at, cut);
        }
        scan.push(bytes.subarray(at));
        const sketch = scan.result();
        const params = message["params"] as { name: string };
        expect(sketch).toEqual({ hasId: true, isResponse: false, id: message["id"], method: "tools/call", toolName: params.name });
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it(`is not fooled by the same keys inside strings, nested objects and arrays (generated, seed ${SEED + 1})`, () => {
    const decoy = fc.constantFrom(
      { id: 99, method: "decoy", params: { name: "decoy" } },
      [{ id: 98, method: "decoy" }],
      '"id":97,"method":"decoy"}',
      '{"params":{"name":"decoy"}}',
      '\\"id\\":96',
    );
    fc.assert(
      fc.property(toolsCall, decoy, fc.boolean(), (message, inside, first) => {
        const params = message["params"] as { name: string; arguments: Record<string, unknown> };
        const withDecoy = first
          ? { decoy: inside, ...message, params: { decoy: inside, ...params } }
          : { ...message, params: { ...params, decoy: inside }, decoy: inside };
        const sketch = sketchOf(Buffer.from(JSON.stringify(withDecoy), "utf8"));
        expect(sketch).toMatchObject({ id: message["id"], method: "tools/call", toolName: params.name });
      }),
      { seed: SEED + 1, numRuns: 200 },
    );
  });

  it("reads any prefix of a message without throwing, and takes the last of repeated keys as JSON.parse does", () => {
    const text = JSON.stringify({ jsonrpc: "2.0", method: "tools/call", params: { name: "crm.read", arguments: { a: 'x\\"y' } }, id: 5 });
    for (let n = 0; n <= text.length; n++) expect(() => sketchOf(Buffer.from(text.slice(0, n)))).not.toThrow();
    expect(sketchOf(Buffer.from('{"id":1,"method":"a","id":2,"method":"b"}'))).toMatchObject({ id: 2, method: "b" });
    expect(sketchOf(Buffer.from('{"\\u0069d":3}'))).toMatchObject({ hasId: true, id: 3 });
    // Not a scalar, or longer than a scalar is taken: no value.
    expect(sketchOf(Buffer.from('{"id":{"a":1},"method":"m"}'))).toMatchObject({ hasId: true, id: undefined, method: "m" });
    expect(sketchOf(Buffer.from(`{"method":"${"m".repeat(5000)}","id":4}`))).toMatchObject({ id: 4, method: undefined });
    // A response.
    expect(sketchOf(Buffer.from('{"jsonrpc":"2.0","id":1,"result":{}}'))).toMatchObject({ isResponse: true, method: undefined });
  });

  it("keeps constant memory however deep the nesting: a million levels", () => {
    const deep = Buffer.from(`{"jsonrpc":"2.0","params":{"arguments":${"[".repeat(1_000_000)}${"]".repeat(1_000_000)},"name":"t"},"id":8}`);
    expect(sketchOf(deep)).toMatchObject({ id: 8, toolName: "t" });
  });
});

describe("HostStdioTransport", () => {
  it(`delivers every valid message unchanged and in order, across any chunk boundaries (generated, seed ${SEED + 2})`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(toolsCall, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        async (messages, cuts) => {
          const w = await wire();
          const bytes = Buffer.concat(messages.map(line));
          w.feed(
            bytes,
            cuts.map((c) => c % bytes.length),
          );
          await w.settle();
          expect(w.delivered).toEqual(messages.map((m) => JSONRPCMessageSchema.parse(m)));
          expect(w.refused).toEqual([]);
          expect(w.answers()).toEqual([]);
        },
      ),
      { seed: SEED + 2, numRuns: 60 },
    );
  });

  it("delivers a JSON-RPC batch element by element; refuses the invalid ones among them, and an empty batch", async () => {
    const w = await wire();
    w.feed(
      line([
        { jsonrpc: "2.0", id: 1, method: "ping" },
        { jsonrpc: "2.0", id: null, method: "tools/call", params: { name: "t" } },
        { jsonrpc: "2.0", method: "notifications/initialized" },
      ]),
    );
    w.feed(line([]));
    await w.settle();
    expect(w.delivered.map((m) => ("method" in m ? m.method : undefined))).toEqual(["ping", "notifications/initialized"]);
    expect(w.refused.map((r) => r.problem)).toEqual([
      "the message is not valid JSON-RPC: id must be a string or an integer",
      "the batch is empty",
    ]);
    // Each answered without an id: none could be read.
    expect(w.answers()).toEqual([
      { jsonrpc: "2.0", error: { code: -32600, message: expect.stringMatching(/id must be/) as unknown, data: { seen: 1 } } },
      { jsonrpc: "2.0", error: { code: -32600, message: "veto mcp-proxy: the batch is empty", data: { seen: 2 } } },
    ]);
  });

  it(`answers every invalid request once, echoing its id when it has a usable one; the next message is delivered (generated, seed ${SEED + 3})`, async () => {
    // Ways a request can break MCP's JSON-RPC envelope, each with the problem it is refused for.
    const breaks: [string, (m: Record<string, unknown>) => unknown, RegExp][] = [
      ["id null", (m) => ({ ...m, id: null }), /id must be a string or an integer/],
      ["id a fraction", (m) => ({ ...m, id: 1.5 }), /id must be/],
      ["id an object", (m) => ({ ...m, id: { a: 1 } }), /id must be/],
      ["id true", (m) => ({ ...m, id: true }), /id must be/],
      ["no jsonrpc", ({ jsonrpc: _, ...m }) => m, /jsonrpc must be "2.0"/],
      ["jsonrpc 1.0", (m) => ({ ...m, jsonrpc: "1.0" }), /jsonrpc must be/],
      ["a result too", (m) => ({ ...m, result: {} }), /only jsonrpc, id, method and params/],
      ["an extra field", (m) => ({ ...m, extra: 1 }), /only jsonrpc, id, method and params/],
      ["params an array", (m) => ({ ...m, params: [1] }), /params must be an object/],
      ["params a string", (m) => ({ ...m, params: "x" }), /params must be an object/],
      ["_meta a number", (m) => ({ ...m, params: { ...(m["params"] as object), _meta: 1 } }), /_meta must be an object/],
      ["progressToken an object", (m) => ({ ...m, params: { ...(m["params"] as object), _meta: { progressToken: {} } } }), /progressToken/],
      [
        "progressToken a fraction",
        (m) => ({ ...m, params: { ...(m["params"] as object), _meta: { progressToken: 0.5 } } }),
        /progressToken/,
      ],
      ["method a number", (m) => ({ ...m, method: 7 }), /method must be a string/],
    ];
    await fc.assert(
      fc.asyncProperty(toolsCall, fc.constantFrom(...breaks), async (message, [, broken, problem]) => {
        const w = await wire();
        const bad = broken(message) as Record<string, unknown>;
        w.feed(Buffer.concat([line(bad), line({ jsonrpc: "2.0", id: "next", method: "ping" })]));
        await w.settle();
        expect(w.refused).toHaveLength(1);
        expect(w.refused[0]!.problem).toMatch(problem);
        const answers = w.answers();
        expect(answers).toHaveLength(1);
        const usable = typeof bad["id"] === "string" || Number.isInteger(bad["id"]);
        expect(answers[0]).toEqual({
          jsonrpc: "2.0",
          ...(usable ? { id: bad["id"] } : {}),
          error: { code: -32600, message: expect.stringMatching(problem) as unknown, data: { seen: 1 } },
        });
        // The answer is itself a valid MCP message, and the channel goes on.
        expect(JSONRPCMessageSchema.safeParse(answers[0]).success).toBe(true);
        expect(w.delivered).toEqual([{ jsonrpc: "2.0", id: "next", method: "ping" }]);
      }),
      { seed: SEED + 3, numRuns: 120 },
    );
  });

  it("answers nothing to an invalid notification or response, but still reports it", async () => {
    const w = await wire();
    w.feed(line({ jsonrpc: "2.0", method: "notifications/progress", params: { _meta: { progressToken: [] } } }));
    w.feed(line({ jsonrpc: "2.0", id: 4, result: {}, error: { code: 1, message: "m" } }));
    w.feed(line({ jsonrpc: "2.0", id: 5, result: "not an object" }));
    await w.settle();
    expect(w.refused.map((r) => r.answered)).toEqual([false, false, false]);
    expect(w.answers()).toEqual([]);
  });

  it(`refuses a line over the limit without holding it, echoing the id wherever it stands; the channel goes on (generated, seed ${SEED + 4})`, async () => {
    await fc.assert(
      fc.asyncProperty(toolsCall, fc.integer({ min: 1, max: 4000 }), fc.array(fc.nat(), { maxLength: 8 }), async (message, pad, cuts) => {
        const w = await wire(256);
        const params = message["params"] as Record<string, unknown>;
        const big = { ...message, params: { ...params, arguments: { notes: "n".repeat(256 + pad) } } };
        const bytes = Buffer.concat([line(big), line({ jsonrpc: "2.0", id: "next", method: "ping" })]);
        w.feed(
          bytes,
          cuts.map((c) => c % bytes.length),
        );
        await w.settle();
        expect(w.refused).toEqual([
          {
            problem: "the message is longer than 256 bytes, so it was not read",
            code: -32600,
            answered: true,
            id: message["id"],
            method: "tools/call",
            toolName: params["name"],
          },
        ]);
        expect(w.answers()).toEqual([
          {
            jsonrpc: "2.0",
            id: message["id"],
            error: { code: -32600, message: expect.stringMatching(/longer than 256/) as unknown, data: { seen: 1 } },
          },
        ]);
        expect(w.delivered).toEqual([{ jsonrpc: "2.0", id: "next", method: "ping" }]);
      }),
      { seed: SEED + 4, numRuns: 80 },
    );
  });

  it(`refuses text that is not JSON or not UTF-8 (-32700) and never quotes it back (generated, seed ${SEED + 5})`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ minLength: 6, maxLength: 40 }).filter((s) => !s.includes("\n") && s.trim() !== ""),
        async (secret) => {
          const w = await wire();
          const texts = [
            `not json ${secret}`,
            `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"t","arguments":{"x":"${secret}`,
          ];
          for (const text of texts) w.feed(Buffer.from(`${text.replaceAll("\n", " ")}\n`));
          w.feed(
            Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":10,"method":"ping","x":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n')]),
          );
          await w.settle();
          const answers = w.answers();
          expect(answers.map((a) => (a["error"] as { code: number }).code)).toEqual([-32700, -32700, -32700]);
          // The truncated call's id is echoed; the bytes that are not UTF-8 are read for their id all the same.
          expect(answers.map((a) => a["id"])).toEqual([undefined, 9, 10]);
          expect(w.refused[1]).toMatchObject({ method: "tools/call", toolName: "t" });
          for (const r of w.refused) expect(r.problem).not.toContain(secret.trim().slice(0, 6));
        },
      ),
      { seed: SEED + 5, numRuns: 60 },
    );
  });

  it("skips blank lines, takes \\r\\n line ends, and reads a last line without a newline at the end of input", async () => {
    const input = new PassThrough();
    const transport = new HostStdioTransport({ input, output: new PassThrough() });
    const delivered: JSONRPCMessage[] = [];
    transport.onmessage = (m) => delivered.push(m);
    await transport.start();
    input.end('\n  \r\n{"jsonrpc":"2.0","id":1,"method":"ping"}\r\n{"jsonrpc":"2.0","id":2,"method":"ping"}');
    await new Promise((r) => input.once("end", r));
    expect(delivered.map((m) => ("id" in m ? m.id : undefined))).toEqual([1, 2]);
  });
});
