/**
 * In-process evaluation of the bundle's WASM module, wrapped so that nothing
 * the SDK does leaks out: it throws strings, treats a falsy input as "no
 * input" and serializes with JSON.stringify (Infinity -> null). We hand it the
 * input as our own JSON bytes, catch everything, and check the answer against
 * the decision schema; any failure is reported as a value, never thrown.
 */
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import { z } from "zod";
import { DECISION_ENTRYPOINT } from "./bundle.js";
import { policyAnswerSchema, type PolicyAnswer } from "./decision.js";
import { BundleLoadError, toError } from "./errors.js";

type LoadedPolicy = Awaited<ReturnType<typeof loadPolicy>>;

/** The input document of `veto/crm/decision` (contract section 4b). */
export interface PolicyInput {
  readonly tool: unknown;
  readonly arguments: unknown;
  readonly context: unknown;
  readonly history: { readonly recentDenies: number };
}

export type Evaluation =
  | { readonly ok: true; readonly answer: PolicyAnswer; readonly evalNs: number }
  | { readonly ok: false; readonly error: Error; readonly evalNs: number };

/** WebAssembly pages of 64 KiB: start small, cap growth so a runaway evaluation fails instead of eating the host. */
const MEMORY: WebAssembly.MemoryDescriptor = { initial: 16, maximum: 4096 };

export class PolicyEvaluator {
  readonly #module: WebAssembly.Module;
  readonly #data: ArrayBuffer;
  #policy: LoadedPolicy | undefined;

  private constructor(module: WebAssembly.Module, data: ArrayBuffer, policy: LoadedPolicy) {
    this.#module = module;
    this.#data = data;
    this.#policy = policy;
  }

  /**
   * Compile the module, load the data document and check that one evaluation
   * yields a well-formed decision. Throws BundleLoadError otherwise.
   */
  static async create(wasm: Uint8Array, data: Record<string, unknown>): Promise<PolicyEvaluator> {
    let module: WebAssembly.Module;
    let policy: LoadedPolicy;
    const dataBytes = jsonBytes(data);
    try {
      module = await WebAssembly.compile(new Uint8Array(wasm));
      policy = await instantiate(module, dataBytes);
    } catch (error) {
      throw new BundleLoadError("bundle_unusable", `bundle wasm module cannot be loaded: ${toError(error).message}`, {
        cause: toError(error),
      });
    }
    if (!Object.hasOwn(policy.entrypoints as object, DECISION_ENTRYPOINT)) {
      throw new BundleLoadError("bundle_unusable", `bundle wasm module has no entrypoint ${DECISION_ENTRYPOINT}`);
    }
    const evaluator = new PolicyEvaluator(module, dataBytes, policy);
    const probe = await evaluator.evaluate({ tool: "", arguments: {}, context: {}, history: { recentDenies: 0 } });
    if (!probe.ok) {
      throw new BundleLoadError(
        "bundle_unusable",
        `bundle does not answer ${DECISION_ENTRYPOINT} with a decision: ${probe.error.message}`,
        { cause: probe.error },
      );
    }
    return evaluator;
  }

  async evaluate(input: PolicyInput): Promise<Evaluation> {
    const started = process.hrtime.bigint();
    const elapsed = (): number => Number(process.hrtime.bigint() - started);
    try {
      // After a failed evaluation the instance may hold a half-written heap;
      // start again from the compiled module rather than trust it.
      this.#policy ??= await instantiate(this.#module, this.#data);
      const resultSet: unknown = this.#policy.evaluate(jsonBytes(input), DECISION_ENTRYPOINT);
      const answer = readAnswer(resultSet);
      return { ok: true, answer, evalNs: elapsed() };
    } catch (thrown) {
      this.#policy = undefined;
      return { ok: false, error: toError(thrown), evalNs: elapsed() };
    }
  }
}

async function instantiate(module: WebAssembly.Module, data: ArrayBuffer): Promise<LoadedPolicy> {
  const policy = await loadPolicy(module, MEMORY);
  policy.setData(data);
  return policy;
}

/** JSON text as a fresh ArrayBuffer, the SDK's "already serialized" form. */
function jsonBytes(value: unknown): ArrayBuffer {
  const text = JSON.stringify(value);
  const bytes = new TextEncoder().encode(text);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

const resultSetSchema = z.array(z.object({ result: z.unknown() })).length(1);

function readAnswer(resultSet: unknown): PolicyAnswer {
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
