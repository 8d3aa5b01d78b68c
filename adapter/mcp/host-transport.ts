/**
 * The MCP proxy's end of the host's stdio channel (docs/mcp.md, "Malformed
 * messages"). In place of the MCP SDK's StdioServerTransport, which closes the
 * channel when a line passes its 10 MiB buffer and drops, unanswered, any line
 * it cannot parse or validate: here every line is answered or delivered.
 *
 * - A valid JSON-RPC message goes to `onmessage`, as the SDK's transport
 *   would deliver it; a JSON-RPC batch (MCP 2025-03-26) is delivered element
 *   by element, each answered on its own line, as the SDK's HTTP transport does.
 * - A line over `maxMessageBytes` is skipped as it arrives, never held, and
 *   refused; so is a line that is not UTF-8 or not JSON (-32700), and a message
 *   that is not valid JSON-RPC (-32600). The refusal echoes the request's id
 *   when one can be read (message-scan.ts finds it in a line never held), and
 *   goes to `onrefused` first, so that the proxy can record a refused
 *   tools/call and put its decision in the error's `data`.
 * - Nothing is answered to what expects no answer: a notification, a
 *   response.
 *
 * stdout carries only the JSON-RPC messages sent here.
 */
import process from "node:process";
import type { Readable, Writable } from "node:stream";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { ErrorCode, JSONRPCMessageSchema, type JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { jsonSyntaxProblem, toError } from "../common/errors.js";
import { LineSplitter } from "../common/line-reader.js";
import { MessageScan, sketchOf, type MessageSketch } from "./message-scan.js";

/** Default longest message read from the host, bytes: the MCP SDK's own stdio limit. */
export const DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024;

/** A message from the host that was not delivered, and why. */
export interface RefusedMessage {
  /** What is wrong with it, in a sentence. */
  readonly problem: string;
  /** The JSON-RPC error code of the answer: -32700 (not JSON) or -32600 (not a valid message). */
  readonly code: number;
  /** Whether the sender is answered (it is not for a notification or a response). */
  readonly answered: boolean;
  /** Its id, when it has one that can be echoed. */
  readonly id?: string | number;
  /** The method it names, when that can be read. */
  readonly method?: string;
  /** `params.name` (a tools/call's tool), when that can be read. */
  readonly toolName?: string;
  /** The line it came in, when it was read (not for a line over the limit, or one that is not UTF-8). */
  readonly text?: string;
}

export interface HostTransportOptions {
  readonly input?: Readable;
  readonly output?: Writable;
  /** Longest line read, bytes. */
  readonly maxMessageBytes?: number;
}

const isId = (v: unknown): v is string | number => typeof v === "string" || (typeof v === "number" && Number.isInteger(v));

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
const REQUEST_KEYS = new Set(["jsonrpc", "id", "method", "params"]);

/**
 * What keeps `value` from being a JSON-RPC message of MCP's, in a sentence
 * that quotes none of it (the problem is logged and recorded). The SDK's
 * schema decides; this names the first fault, and falls back to the schema's
 * own words.
 */
function envelopeProblem(value: unknown, schemaIssue: { path: readonly PropertyKey[]; message: string } | undefined): string {
  if (!isObject(value)) return "it is not a JSON object";
  if (value["jsonrpc"] !== "2.0") return 'jsonrpc must be "2.0"';
  if (Object.hasOwn(value, "id") && !isId(value["id"])) return "id must be a string or an integer";
  if (Object.hasOwn(value, "method")) {
    if (typeof value["method"] !== "string") return "method must be a string";
    if (Object.keys(value).some((k) => !REQUEST_KEYS.has(k))) return "a request or notification has only jsonrpc, id, method and params";
    const params = value["params"];
    if (params === undefined) return schemaWords(schemaIssue);
    if (!isObject(params)) return "params must be an object";
    const meta = params["_meta"];
    if (meta === undefined) return schemaWords(schemaIssue);
    if (!isObject(meta)) return "params._meta must be an object";
    if (meta["progressToken"] !== undefined && !isId(meta["progressToken"]))
      return "params._meta.progressToken must be a string or an integer";
  } else if (Object.hasOwn(value, "result") === Object.hasOwn(value, "error")) {
    return "it has no method, and not exactly one of result and error";
  }
  return schemaWords(schemaIssue);
}

/** The schema's first issue as "path: message", clipped; nothing of the input when it would quote some. */
function schemaWords(issue: { path: readonly PropertyKey[]; message: string } | undefined): string {
  if (issue === undefined || /["']/.test(issue.message)) return "it is not a JSON-RPC 2.0 request, notification or response";
  const path = issue.path.filter((p) => typeof p === "number" || (typeof p === "string" && /^[\w$]{1,32}$/.test(p)));
  const words = path.length === issue.path.length && path.length > 0 ? `${path.join(".")}: ${issue.message}` : issue.message;
  return words.slice(0, 200);
}

export class HostStdioTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  /**
   * Called for each refused message before it is answered; what it resolves
   * to becomes the error's `data`. Never rejects the answer: a failure here
   * only leaves `data` out.
   */
  onrefused?: (refused: RefusedMessage) => Promise<Record<string, unknown> | undefined> | undefined;

  readonly #input: Readable;
  readonly #output: Writable;
  readonly #splitter: LineSplitter;
  /** The scan of the line over the limit now passing by. */
  #scan: MessageScan | undefined;
  #started = false;
  #closed = false;

  constructor(options: HostTransportOptions = {}) {
    this.#input = options.input ?? process.stdin;
    this.#output = options.output ?? process.stdout;
    const maxBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#splitter = new LineSplitter(maxBytes, {
      line: (read, bytes) => {
        if (read.text !== undefined) this.#line(read.text);
        else this.#refuse(sketchOf(bytes), ErrorCode.ParseError, `the message ${read.unreadable.replace(/^the line /, "")}`);
      },
      tooLong: () => (this.#scan = new MessageScan()),
      skipped: (bytes, end) => {
        this.#scan!.push(bytes);
        if (!end) return;
        const sketch = this.#scan!.result();
        this.#scan = undefined;
        this.#refuse(sketch, ErrorCode.InvalidRequest, `the message is longer than ${maxBytes} bytes, so it was not read`);
      },
    });
  }

  readonly #ondata = (chunk: Buffer | string): void => {
    try {
      this.#splitter.push(chunk);
    } catch (error) {
      // A handler threw: reported, and the channel goes on with the next line.
      this.onerror?.(toError(error));
    }
  };

  readonly #onend = (): void => this.#splitter.end();

  readonly #onerror = (error: Error): void => this.onerror?.(error);

  async start(): Promise<void> {
    if (this.#started) throw new Error("HostStdioTransport already started");
    this.#started = true;
    this.#input.on("data", this.#ondata);
    this.#input.on("end", this.#onend);
    this.#input.on("error", this.#onerror);
    this.#output.on("error", this.#onerror);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#input.off("data", this.#ondata);
    this.#input.off("end", this.#onend);
    this.#input.off("error", this.#onerror);
    if (this.#input.listenerCount("data") === 0) this.#input.pause();
    this.onclose?.();
  }

  send(message: JSONRPCMessage): Promise<void> {
    return new Promise((resolve) => {
      if (this.#closed) return resolve();
      if (this.#output.write(`${JSON.stringify(message)}\n`)) resolve();
      else this.#output.once("drain", resolve);
    });
  }

  #line(text: string): void {
    // A blank line carries no message (a host's stray line ending).
    if (text.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      this.#refuse(sketchOf(Buffer.from(text, "utf8")), ErrorCode.ParseError, `the message is not JSON: ${jsonSyntaxProblem(error)}`, text);
      return;
    }
    if (!Array.isArray(value)) return this.#message(value, text);
    if (value.length === 0) return this.#refuse(undefined, ErrorCode.InvalidRequest, "the batch is empty", text);
    for (const element of value) this.#message(element, text);
  }

  #message(value: unknown, text: string): void {
    const parsed = JSONRPCMessageSchema.safeParse(value);
    if (parsed.success) {
      this.onmessage?.(parsed.data);
      return;
    }
    const o = isObject(value) ? value : {};
    const params = o["params"];
    const sketch: MessageSketch = {
      hasId: Object.hasOwn(o, "id"),
      id: o["id"],
      method: o["method"],
      toolName: isObject(params) ? params["name"] : undefined,
      isResponse: Object.hasOwn(o, "result") || Object.hasOwn(o, "error"),
    };
    const problem = envelopeProblem(value, parsed.error.issues[0]);
    this.#refuse(sketch, ErrorCode.InvalidRequest, `the message is not valid JSON-RPC: ${problem}`, text);
  }

  /**
   * Refuse a message: tell onrefused, then answer it unless it expects no
   * answer. A message of which nothing could be read is answered without an
   * id (JSON-RPC's null id, in MCP's form).
   */
  #refuse(sketch: MessageSketch | undefined, code: number, problem: string, text?: string): void {
    const method = typeof sketch?.method === "string" ? sketch.method : undefined;
    const id = isId(sketch?.id) ? sketch.id : undefined;
    // A notification (a method, no id) and a response (no method, a result or error) expect no answer.
    const answered = method !== undefined ? sketch!.hasId : !(sketch?.isResponse ?? false);
    const refused: RefusedMessage = {
      problem,
      code,
      answered,
      ...(id === undefined ? {} : { id }),
      ...(method === undefined ? {} : { method }),
      ...(typeof sketch?.toolName === "string" ? { toolName: sketch.toolName } : {}),
      ...(text === undefined ? {} : { text }),
    };
    let data: Promise<Record<string, unknown> | undefined>;
    try {
      data = Promise.resolve(this.onrefused?.(refused)).catch(() => undefined);
    } catch {
      data = Promise.resolve(undefined);
    }
    if (!answered) return;
    void data.then((d) =>
      this.send({
        jsonrpc: "2.0",
        ...(id === undefined ? {} : { id }),
        error: { code, message: `veto mcp-proxy: ${problem}`, ...(d === undefined ? {} : { data: d }) },
      }),
    );
  }
}
