/**
 * In-process evaluation of the bundle's WASM module, wrapped so that nothing
 * the SDK does leaks out: it throws strings, treats a falsy input as "no
 * input" and serializes with JSON.stringify (Infinity -> null). We hand it the
 * input as our own JSON bytes, catch everything, and check the answer against
 * the decision schema; any failure is reported as a value, never thrown.
 */
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import { z } from "zod";
import { DECISION_ENTRYPOINT, DERIVED_ENTRYPOINT, VISIBLE_ENTRYPOINT } from "./bundle.js";
import { policyAnswerSchema, sealAnswer, visibilitySchema, type PolicyAnswer, type Visibility } from "../common/decision.js";
import { BundleLoadError, toError } from "../common/errors.js";
import { DataText } from "./data.js";
import { PIECE_BYTES, dataExports, loadDataPieces, type CompactOptions } from "./wasm-data.js";

type LoadedPolicy = Awaited<ReturnType<typeof loadPolicy>>;

/** The input document of `veto/crm/decision` (docs/contract.md §4b). */
export interface PolicyInput {
  readonly tool: unknown;
  readonly arguments: unknown;
  readonly context: unknown;
  readonly history: { readonly recentDenies: number };
}

export type Evaluation =
  | { readonly ok: true; readonly answer: PolicyAnswer; readonly evalNs: number }
  | { readonly ok: false; readonly error: Error; readonly evalNs: number };

/**
 * WebAssembly pages of 64 KiB. The memory starts large enough for the parsed
 * data document (about ten times its JSON; see memoryFor) and growth past
 * it is capped at 256 MiB, so a runaway evaluation fails instead of eating
 * the host.
 */
const PAGE = 64 * 1024;
const MIN_PAGES = 16;
const EVALUATION_PAGES = 4096;
const MAX_PAGES = 65536;

/**
 * The module's allocator grows memory one page at a time, and every grow
 * costs V8 a new buffer and, with a large JS heap, a garbage collection: a
 * 15 MB data document (100,000 tenants) took 10 s to load that way, and
 * 0.3 s when the memory is sized for it up front. Pages never touched cost
 * address space, not resident memory.
 */
function memoryFor(dataBytes: number): WebAssembly.MemoryDescriptor {
  const initial = Math.min(MAX_PAGES - EVALUATION_PAGES, MIN_PAGES + Math.ceil((dataBytes * 12) / PAGE));
  return { initial, maximum: Math.max(EVALUATION_PAGES, initial + EVALUATION_PAGES) };
}

/**
 * What the evaluator needs of the SDK's LoadedPolicy to call the module's
 * ABI 1.2 `opa_eval` export itself (what LoadedPolicy.evaluate does, minus a
 * copy, a TextDecoder per call and the entrypoint lookup). Read once per
 * instance and checked; when anything is not as expected (another SDK
 * version, an older ABI) evaluation goes through LoadedPolicy.evaluate.
 */
interface DirectEval {
  readonly memory: WebAssembly.Memory;
  readonly opaEval: (reserved: number, entrypoint: number, data: number, input: number, inputLen: number, heap: number, format: number) => number;
  readonly entrypoint: number;
  /** `veto/crm/visible`'s number, when the module has it. */
  readonly visibleEntrypoint: number | undefined;
  readonly dataAddr: number;
  /** Where the input goes: the heap just past the data document (LoadedPolicy's dataHeapPtr). */
  readonly inputAddr: number;
  /**
   * Views of the memory, made again only when it grew (a new buffer): the
   * whole of it as a Buffer (the result is read from it without a view per
   * call) and from inputAddr on (where the input is encoded).
   */
  heap: Buffer;
  input: Uint8Array;
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();
const CLOSE_BRACE = 0x7d;

function directEval(policy: LoadedPolicy): DirectEval | undefined {
  const p = policy as unknown as {
    minorVersion?: unknown;
    mem?: unknown;
    dataAddr?: unknown;
    dataHeapPtr?: unknown;
    entrypoints?: Record<string, unknown>;
    wasmInstance?: { exports?: Record<string, unknown> };
  };
  const opaEval = p.wasmInstance?.exports?.["opa_eval"];
  const entrypoint = p.entrypoints?.[DECISION_ENTRYPOINT];
  const visible = p.entrypoints?.[VISIBLE_ENTRYPOINT];
  if (
    typeof p.minorVersion !== "number" ||
    p.minorVersion < 2 ||
    !(p.mem instanceof WebAssembly.Memory) ||
    typeof opaEval !== "function" ||
    typeof entrypoint !== "number" ||
    typeof p.dataAddr !== "number" ||
    typeof p.dataHeapPtr !== "number"
  ) {
    return undefined;
  }
  return {
    memory: p.mem,
    opaEval: opaEval as DirectEval["opaEval"],
    entrypoint,
    visibleEntrypoint: typeof visible === "number" ? visible : undefined,
    dataAddr: p.dataAddr,
    inputAddr: p.dataHeapPtr,
    heap: Buffer.from(p.mem.buffer),
    input: new Uint8Array(p.mem.buffer, p.dataHeapPtr),
  };
}

/** The memory's views, made again when it has grown since they were made. */
function viewsOf(d: DirectEval): DirectEval {
  const buffer = d.memory.buffer;
  if (d.heap.buffer !== buffer) {
    d.heap = Buffer.from(buffer);
    d.input = new Uint8Array(buffer, d.inputAddr);
  }
  return d;
}

/** `,"history":{"recentDenies":N}}` as UTF-8, for the counts a deny history has most often. */
const historyTails: Uint8Array[] = Array.from({ length: 64 }, (_, n) => historyTailOf(n));

function historyTailOf(recentDenies: number): Uint8Array {
  return utf8Encoder.encode(`,"history":{"recentDenies":${recentDenies}}}`);
}

/**
 * Evaluate `input` (JSON text) through opa_eval; returns the result set's
 * text. With `tail`, `input` is an object's text whose closing brace `tail`
 * replaces (members added without building the input's text again). Throws
 * on any failure.
 */
function evaluateDirect(d: DirectEval, input: string, entrypoint = d.entrypoint, tail?: Uint8Array): string {
  // UTF-8 takes at most 3 bytes per UTF-16 code unit.
  const room = input.length * 3 + (tail?.length ?? 0);
  const short = room - viewsOf(d).input.length;
  if (short > 0) d.memory.grow(Math.ceil(short / PAGE));
  const into = viewsOf(d).input;
  const encoded = utf8Encoder.encodeInto(input, into);
  if (encoded.read !== input.length) throw new Error("the input did not fit in the module's memory");
  let written = encoded.written;
  if (tail !== undefined) {
    if (written === 0 || into[written - 1] !== CLOSE_BRACE) throw new Error("the input is not an object's text");
    into.set(tail, written - 1);
    written += tail.length - 1;
  }
  // The heap for the evaluation starts right after the input; opa_eval resets it there.
  const result = d.opaEval(0, entrypoint, d.dataAddr, d.inputAddr, written, d.inputAddr + written, 0);
  // The evaluation may have grown the memory.
  const heap = viewsOf(d).heap;
  const end = result > 0 ? heap.indexOf(0, result) : -1;
  if (end < 0) throw new Error("opa_eval returned no result");
  return heap.toString("utf8", result, end);
}

export class PolicyEvaluator {
  readonly #module: WebAssembly.Module;
  /** The data document's JSON text, to load it again into a fresh instance (deflated when large: DataText.compact). */
  readonly #data: DataText;
  #policy: LoadedPolicy | undefined;
  #direct: DirectEval | undefined;
  #instantiations = 1;
  /** Answers given, by their result set's text (#answerOf). */
  readonly #answers = new Map<string, PolicyAnswer>();

  private constructor(module: WebAssembly.Module, data: DataText, policy: LoadedPolicy) {
    this.#module = module;
    this.#data = data;
    this.#policy = policy;
    this.#direct = directEval(policy);
  }

  /**
   * Compile the module, load the data document and check that one evaluation
   * yields a well-formed decision. Throws BundleLoadError otherwise, and (as
   * OPA does) when the module lacks an entrypoint the manifest says it serves.
   */
  static async create(
    wasm: Uint8Array,
    data: Record<string, unknown> | DataText,
    dataJson?: string,
    manifestEntrypoints: readonly string[] = [],
  ): Promise<PolicyEvaluator> {
    let module: WebAssembly.Module;
    let policy: LoadedPolicy;
    // The data document as an object, or as its text (PolicyData.text, or `dataJson`): only the text is kept.
    const dataText = data instanceof DataText ? data : new DataText(dataJson ?? JSON.stringify(data));
    try {
      module = await WebAssembly.compile(new Uint8Array(wasm));
      policy = await instantiate(module, dataText);
    } catch (error) {
      throw new BundleLoadError("bundle_unusable", `bundle wasm module cannot be loaded: ${toError(error).message}`, {
        cause: toError(error),
      });
    }
    for (const entrypoint of [DECISION_ENTRYPOINT, ...manifestEntrypoints]) {
      if (!Object.hasOwn(policy.entrypoints as object, entrypoint)) {
        throw new BundleLoadError("bundle_unusable", `bundle wasm module has no entrypoint ${entrypoint}`);
      }
    }
    const evaluator = new PolicyEvaluator(module, dataText, policy);
    const probe = await evaluator.evaluate({ tool: "", arguments: {}, context: {}, history: { recentDenies: 0 } });
    if (!probe.ok) {
      throw new BundleLoadError(
        "bundle_unusable",
        `bundle does not answer ${DECISION_ENTRYPOINT} with a decision: ${probe.error.message}`,
        { cause: probe.error },
      );
    }
    dataText.compact();
    return evaluator;
  }

  async evaluate(input: PolicyInput): Promise<Evaluation> {
    let text: string;
    try {
      text = JSON.stringify(input);
    } catch (thrown) {
      return { ok: false, error: toError(thrown), evalNs: 0 };
    }
    return await this.evaluateJson(text);
  }

  /**
   * Evaluate a checked call given as its JSON text (checkCall's `json`, an
   * object with tool, arguments and context) with `recentDenies`: the call is
   * not serialized again.
   */
  evaluateCall(callJson: string, recentDenies: number): Promise<Evaluation> {
    const now = this.evaluateCallNow(callJson, recentDenies);
    return now !== undefined ? Promise.resolve(now) : this.evaluateJson(callInput(callJson, recentDenies));
  }

  /**
   * evaluateCall, answered synchronously when the module's instance is ready
   * (every evaluation but the first after a failure that may have damaged
   * it); undefined when a new instance must be made first: then call
   * evaluateCall.
   */
  evaluateCallNow(callJson: string, recentDenies: number): Evaluation | undefined {
    // Whatever a store hands back, only a count reaches the policy (fail closed otherwise).
    if (!Number.isSafeInteger(recentDenies) || recentDenies < 0) {
      return { ok: false, error: new Error(`the deny history is not a count: ${String(recentDenies)}`), evalNs: 0 };
    }
    const direct = this.#direct;
    if (this.#policy === undefined || direct === undefined) return undefined;
    const started = performance.now();
    try {
      // `{...}` -> `{...,"history":{"recentDenies":N}}`: the call object has members, so the comma is right.
      const tail = historyTails[recentDenies] ?? historyTailOf(recentDenies);
      const answer = this.#answerOf(evaluateDirect(direct, callJson, direct.entrypoint, tail));
      return { ok: true, answer, evalNs: Math.round((performance.now() - started) * 1e6) };
    } catch (thrown) {
      return this.#failed(thrown, started);
    }
  }

  /** Evaluate an input given as JSON text (the whole input document). */
  async evaluateJson(input: string): Promise<Evaluation> {
    const started = performance.now();
    try {
      // After a failed evaluation the instance may hold a half-written heap;
      // start again from the compiled module rather than trust it.
      if (this.#policy === undefined) {
        this.#policy = await instantiate(this.#module, this.#data);
        this.#instantiations += 1;
        this.#direct = directEval(this.#policy);
      }
      const answer =
        this.#direct !== undefined
          ? this.#answerOf(evaluateDirect(this.#direct, input))
          : sealAnswer(readAnswer(this.#policy.evaluate(jsonArrayBuffer(input), DECISION_ENTRYPOINT)));
      return { ok: true, answer, evalNs: Math.round((performance.now() - started) * 1e6) };
    } catch (thrown) {
      return this.#failed(thrown, started);
    }
  }

  /**
   * The answer in a result set's text: one the module gave before is found
   * by its text (an answer is made of the policy's reasons and the tenant's
   * approvers, so few are distinct), otherwise parsed and checked, sealed and
   * kept while fewer than ANSWERS_KEPT are.
   */
  #answerOf(text: string): PolicyAnswer {
    const known = this.#answers.get(text);
    if (known !== undefined) return known;
    const answer = sealAnswer(readAnswer(JSON.parse(text)));
    if (this.#answers.size < ANSWERS_KEPT) this.#answers.set(text, answer);
    return answer;
  }

  #failed(thrown: unknown, started: number): Evaluation {
    // The module's JSON parser refusing the input is an answer about the
    // input, not damage: opa_eval starts every evaluation from a fresh heap,
    // so the instance stays (instantiating again, with setData, costs as much
    // as the data document: a DoS lever for inputs made to fail this way).
    if (!isInputParseAbort(thrown)) {
      this.#policy = undefined;
      this.#direct = undefined;
    }
    return { ok: false, error: toError(thrown), evalNs: Math.round((performance.now() - started) * 1e6) };
  }

  /** Whether the module has the visibility entrypoint (`veto/crm/visible`, docs/contract.md §4b). */
  get hasVisibility(): boolean {
    return this.#policy === undefined || Object.hasOwn(this.#policy.entrypoints as object, VISIBLE_ENTRYPOINT);
  }

  /**
   * Ask `veto/crm/visible` whether `tool` is offered at all in `context`
   * (docs/contract.md §4b). Like evaluate(), never throws: a bundle without
   * the entrypoint, a failed evaluation or a malformed answer is an error
   * value, which callers read as hidden (fail closed).
   */
  async evaluateVisibility(query: { readonly tool: unknown; readonly context: unknown }): Promise<
    { readonly ok: true; readonly answer: Visibility } | { readonly ok: false; readonly error: Error }
  > {
    try {
      const input = JSON.stringify({ tool: query.tool, context: query.context });
      if (this.#policy === undefined) {
        this.#policy = await instantiate(this.#module, this.#data);
        this.#instantiations += 1;
        this.#direct = directEval(this.#policy);
      }
      if (!Object.hasOwn(this.#policy.entrypoints as object, VISIBLE_ENTRYPOINT)) {
        return { ok: false, error: new Error(`the bundle has no entrypoint ${VISIBLE_ENTRYPOINT}: rebuild it (make bundle)`) };
      }
      const visibleEntrypoint = this.#direct?.visibleEntrypoint;
      const resultSet: unknown =
        this.#direct !== undefined && visibleEntrypoint !== undefined
          ? JSON.parse(evaluateDirect(this.#direct, input, visibleEntrypoint))
          : this.#policy.evaluate(jsonArrayBuffer(input), VISIBLE_ENTRYPOINT);
      const set = resultSetSchema.safeParse(resultSet);
      if (!set.success) throw new Error(`${VISIBLE_ENTRYPOINT} produced no single result`);
      const answer = visibilitySchema.safeParse(set.data[0]?.result);
      if (!answer.success) throw new Error(`${VISIBLE_ENTRYPOINT} answered something that is not a visibility: ${z.prettifyError(answer.error)}`);
      return { ok: true, answer: answer.data };
    } catch (thrown) {
      if (!isInputParseAbort(thrown)) {
        this.#policy = undefined;
        this.#direct = undefined;
      }
      return { ok: false, error: toError(thrown) };
    }
  }

  /** How many instances of the module were made: 1 at creation, one more after each failure that may have damaged the instance. */
  get instantiations(): number {
    return this.#instantiations;
  }
}

/**
 * What the module's JSON parser aborts with (opa_abort, which the SDK throws
 * as the message string) when the input text is not JSON it accepts, e.g.
 * the escape of a lone surrogate.
 */
const INPUT_PARSE_ABORTS: ReadonlySet<string> = new Set([
  "illegal string escape character",
  "illegal unescaped character",
]);

function isInputParseAbort(thrown: unknown): boolean {
  return typeof thrown === "string" && INPUT_PARSE_ABORTS.has(thrown);
}

async function instantiate(module: WebAssembly.Module, data: DataText): Promise<LoadedPolicy> {
  const policy = await loadPolicy(module, memoryFor(data.byteLength));
  setDataText(policy, data);
  storeDerived(policy);
  return policy;
}

/** Where the derived values go in the data document (policy/veto/crm/derived.rego). */
const DERIVED_PATH = '["veto","derived"]';

/**
 * Evaluate the module's `veto/crm/derived` once on the data document just
 * loaded and store the value at data.veto.derived, so that the decision reads
 * the keys of the configured names instead of deriving them on every call
 * (policy/veto/crm/derived.rego). Whatever the document held there is removed
 * first, so the stored value is always this module's, from this document
 * (docs/contract.md §2). Returns whether a value was stored; without one (a
 * module without the entrypoint, an SDK not as expected) the policy derives
 * the same values on each call. Throws when the module fails.
 */
export function storeDerived(policy: LoadedPolicy): boolean {
  const p = policy as unknown as {
    minorVersion?: unknown;
    mem?: unknown;
    dataAddr?: unknown;
    dataHeapPtr?: unknown;
    entrypoints?: Record<string, unknown>;
    wasmInstance?: { exports?: Record<string, unknown> };
  };
  const exports = p.wasmInstance?.exports ?? {};
  // The exports the data document is loaded with (wasm-data.ts), and the two this needs besides.
  const abi = dataExports(exports);
  const { opa_eval: opaEval, opa_value_remove_path: removePath } = exports;
  const entrypoint = p.entrypoints?.[DERIVED_ENTRYPOINT];
  if (
    typeof p.minorVersion !== "number" ||
    p.minorVersion < 2 ||
    !(p.mem instanceof WebAssembly.Memory) ||
    typeof p.dataAddr !== "number" ||
    typeof p.dataHeapPtr !== "number" ||
    abi === undefined ||
    typeof opaEval !== "function" ||
    typeof removePath !== "function"
  ) {
    return false;
  }
  const memory = p.mem;
  const dataAddr = p.dataAddr;
  const heapPtrSet = abi.opa_heap_ptr_set;
  const heapPtrGet = abi.opa_heap_ptr_get;
  const load = (text: string): number => {
    const bytes = utf8Encoder.encode(text);
    const address = abi.opa_malloc(bytes.byteLength);
    new Uint8Array(memory.buffer, address, bytes.byteLength).set(bytes);
    const parsed = abi.opa_json_parse(address, bytes.byteLength);
    if (parsed === 0) throw new Error("the module could not parse a value for the data document");
    return parsed;
  };
  heapPtrSet(p.dataHeapPtr);
  const path = load(DERIVED_PATH);
  // Not found (or data.veto not an object) is no error here: there is nothing to remove.
  (removePath as (data: number, path: number) => number)(dataAddr, path);
  const afterPath = heapPtrGet();
  p.dataHeapPtr = afterPath;
  if (typeof entrypoint !== "number") return false;
  // The input is ignored: `{}` just past the path, the evaluation's heap after it (discarded below).
  const inputAt = afterPath;
  if (inputAt + 2 > memory.buffer.byteLength) memory.grow(1);
  new Uint8Array(memory.buffer, inputAt, 2).set([0x7b, 0x7d]);
  const result = (opaEval as DirectEval["opaEval"])(0, entrypoint, dataAddr, inputAt, 2, inputAt + 2, 0);
  const bytes = new Uint8Array(memory.buffer);
  const end = bytes.indexOf(0, result);
  if (result <= 0 || end < 0) throw new Error(`${DERIVED_ENTRYPOINT} returned no result`);
  const set: unknown = JSON.parse(utf8Decoder.decode(bytes.subarray(result, end)));
  heapPtrSet(afterPath);
  const value: unknown = Array.isArray(set) && set.length === 1 ? (set[0] as { result?: unknown } | null)?.result : undefined;
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const add = abi.opa_value_add_path;
  if (add(dataAddr, path, load(JSON.stringify(value))) !== 0) {
    heapPtrSet(afterPath);
    return false;
  }
  // The policy reads the stored value only when its "from" holds the configured
  // names (derived.rego), a comparison on every call. The module compares a
  // value with itself at once: each configured list and the stored value's
  // "from" are made one value, equal to both (only text, so that nothing is
  // changed by JSON.parse: a number could be).
  const from = (value as { from?: unknown }).from;
  for (const key of SHARED_SOURCES) {
    const source: unknown = from !== null && typeof from === "object" ? (from as Record<string, unknown>)[key] : undefined;
    if (!onlyText(source)) continue;
    const shared = load(JSON.stringify(source));
    if (add(dataAddr, load(JSON.stringify(["veto", "derived", "from", key])), shared) !== 0) break;
    add(dataAddr, load(JSON.stringify(["veto", "config", key])), shared);
  }
  p.dataHeapPtr = heapPtrGet();
  return true;
}

/** The configured lists derived.rego's "from" holds. */
const SHARED_SOURCES = ["sensitive_fields", "amount_fields", "blocked_destinations"] as const;

/**
 * What storeDerived removes or replaces in the loaded document (the module
 * then frees it, with everything in it): loadDataPieces shares nothing with them.
 */
const REPLACED_AFTER_LOAD: readonly (readonly string[])[] = [["veto", "derived"], ...SHARED_SOURCES.map((key) => ["veto", "config", key])];

/** A string, or an array or object of nothing but strings, arrays and objects (what JSON.parse gives back unchanged). */
function onlyText(value: unknown, depth = 0): boolean {
  if (typeof value === "string") return true;
  if (value === null || typeof value !== "object" || depth > 64) return false;
  for (const item of Object.values(value)) if (!onlyText(item, depth + 1)) return false;
  return true;
}

/**
 * LoadedPolicy.setData, without the document's text ever sitting whole in
 * the module's memory: it is parsed there in pieces through a small scratch
 * buffer (wasm-data.ts), so the memory holds the parsed tree and not the
 * text beside it (the module's memory never shrinks: for 100,000 tenants the
 * text's 14 MB would stay resident). Records the parsed value's address and
 * the heap past it, as the SDK's setData does. The values repeated between
 * the pieces are shared (wasm-data.ts, Compactor), except in what
 * storeDerived replaces. `pieceBytes` at Infinity parses the text whole, and
 * `options.compact` false shares nothing (the same tree; tests compare them).
 * When the SDK is not as expected (another version), setData is used.
 */
export function setDataText(policy: LoadedPolicy, data: DataText, pieceBytes = PIECE_BYTES, options: CompactOptions = {}): void {
  const p = policy as unknown as {
    mem?: unknown;
    baseHeapPtr?: unknown;
    dataAddr?: unknown;
    dataHeapPtr?: unknown;
    wasmInstance?: { exports?: Record<string, unknown> };
  };
  const exports = p.wasmInstance?.exports ?? {};
  const pieces = dataExports(exports);
  if (
    !(p.mem instanceof WebAssembly.Memory) ||
    typeof p.baseHeapPtr !== "number" ||
    typeof p.dataAddr !== "number" ||
    typeof p.dataHeapPtr !== "number" ||
    pieces === undefined
  ) {
    policy.setData(data.toArrayBuffer());
    return;
  }
  pieces.opa_heap_ptr_set(p.baseHeapPtr);
  p.dataAddr = loadDataPieces(pieces, p.mem, data.toText(), pieceBytes, { replaced: REPLACED_AFTER_LOAD, ...options });
  p.dataHeapPtr = pieces.opa_heap_ptr_get();
}

/** At most this many distinct answers are kept per evaluator (each is a few hundred bytes). */
const ANSWERS_KEPT = 512;

/** The policy input for a call's JSON text and its deny count. */
function callInput(callJson: string, recentDenies: number): string {
  return `${callJson.slice(0, -1)},"history":{"recentDenies":${recentDenies}}}`;
}

/** JSON text as a fresh ArrayBuffer, the SDK's "already serialized" form. */
function jsonArrayBuffer(text: string): ArrayBuffer {
  const bytes = utf8Encoder.encode(text);
  // encode() returns a view of a buffer of its own, exactly its size: no copy needed then.
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes.buffer;
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

const resultSetSchema = z.array(z.object({ result: z.unknown() })).length(1);

function readAnswer(resultSet: unknown): PolicyAnswer {
  // The common case, checked by hand; anything it does not accept goes to the
  // schemas, which decide (and word the error).
  if (Array.isArray(resultSet) && resultSet.length === 1) {
    const result: unknown = (resultSet[0] as { result?: unknown } | null)?.result;
    if (isWellFormedAnswer(result)) return result;
  }
  const set = resultSetSchema.safeParse(resultSet);
  if (!set.success) {
    throw new Error(`${DECISION_ENTRYPOINT} produced no single result (it may be undefined for this input)`);
  }
  const answer = policyAnswerSchema.safeParse(set.data[0]?.result);
  if (!answer.success) {
    throw new Error(`${DECISION_ENTRYPOINT} answered something that is not a decision: ${z.prettifyError(answer.error)}`);
  }
  return answer.data;
}

const ANSWER_KEYS: ReadonlySet<string> = new Set(["action", "escalated", "reasons", "approvers"]);
const OPTIONAL_ANSWER_KEY = "destination_hosts";
const REASON_KEYS: ReadonlySet<string> = new Set(["code", "message"]);

/** Exactly `keys`, plus `optional` when given and present. */
function hasOnlyKeys(value: object, keys: ReadonlySet<string>, optional?: string): boolean {
  let n = 0;
  for (const key in value) {
    if (key === optional) continue;
    if (!keys.has(key)) return false;
    n++;
  }
  return n === keys.size;
}

/**
 * policyAnswerSchema, written out (never more lenient; see
 * test/veto/protect.test.ts): true only for an answer the schema accepts.
 * The value is fresh from JSON.parse, so it is used as it is.
 */
export function isWellFormedAnswer(a: unknown): a is PolicyAnswer {
  if (a === null || typeof a !== "object" || Array.isArray(a) || Object.getPrototypeOf(a) !== Object.prototype) return false;
  if (!hasOnlyKeys(a, ANSWER_KEYS, OPTIONAL_ANSWER_KEY)) return false;
  const { action, escalated, reasons, approvers, destination_hosts: hosts } = a as Record<string, unknown>;
  if (hosts !== undefined) {
    if (!Array.isArray(hosts)) return false;
    for (const host of hosts as unknown[]) if (typeof host !== "string") return false;
  }
  if (action !== "allow" && action !== "deny" && action !== "require_approval") return false;
  if (typeof escalated !== "boolean" || !Array.isArray(reasons) || reasons.length < 1 || !Array.isArray(approvers)) return false;
  for (const r of reasons as unknown[]) {
    if (r === null || typeof r !== "object" || Array.isArray(r) || !hasOnlyKeys(r, REASON_KEYS)) return false;
    const { code, message } = r as Record<string, unknown>;
    if (typeof code !== "string" || code.length < 1 || typeof message !== "string") return false;
  }
  for (const approver of approvers as unknown[]) if (typeof approver !== "string" || approver.length < 1) return false;
  if ((action === "require_approval") !== approvers.length > 0) return false;
  if (escalated && action !== "deny") return false;
  return true;
}
