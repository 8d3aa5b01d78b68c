/**
 * Shadow mode (docs/policy-changes.md): a candidate bundle evaluated beside
 * the one in force on every call, with the same input and deny history. Its
 * verdict goes into the decision record (`shadow`, inside the hash chain) and
 * nowhere else: it never changes the decision, and a candidate that fails to
 * evaluate is recorded as `shadow.error`, never a deny. A candidate from a
 * bundle server is polled and hot-reloaded like the enforced bundle.
 */
import type { Logger } from "pino";
import { toError } from "../common/errors.js";
import { createBundleVerifier, type VerificationKeyInput } from "./signature.js";
import { BundleSource, type BundleSpec } from "./source.js";

export interface ShadowOptions {
  /** The candidate: a path, bytes, or a bundle server (`{ url, pollIntervalMs? ... }`, reloaded as it changes). Required. */
  readonly bundle: BundleSpec;
  /** A data document replacing the candidate's data.json. Default: the candidate bundle's. */
  readonly data?: Record<string, unknown>;
  /** Verify the candidate's signature, as createVeto's `verificationKey` does. Default: none. */
  readonly verificationKey?: VerificationKeyInput | readonly VerificationKeyInput[];
}

/** What a decision record carries of the candidate's verdict (docs/contract.md §7). */
export type ShadowVerdict =
  | {
      readonly revision: string;
      readonly hash: string;
      readonly action: "allow" | "deny" | "require_approval";
      readonly escalated: boolean;
      /** Reason codes, in the candidate's order. */
      readonly reasons: readonly string[];
    }
  | { readonly revision: string; readonly hash: string; readonly error: string };

export class ShadowPolicy {
  readonly #source: BundleSource;

  private constructor(source: BundleSource) {
    this.#source = source;
  }

  /** Load (and verify) the candidate; rejects like createVeto does for an unusable bundle. */
  static async open(options: ShadowOptions, logger: Logger): Promise<ShadowPolicy> {
    const verifier = options.verificationKey === undefined ? undefined : createBundleVerifier(options.verificationKey);
    const source = await BundleSource.open(options.bundle, { verifier, data: options.data, logger: logger.child({ component: "shadow" }) });
    return new ShadowPolicy(source);
  }

  /** The candidate's verdict on a call already checked (its canonical JSON) with the deny history the enforced policy saw. */
  async evaluate(callJson: string, recentDenies: number): Promise<ShadowVerdict> {
    const policy = this.#source.current;
    const { revision, hash } = policy.version;
    try {
      const evaluation = await policy.evaluator.evaluateCall(callJson, recentDenies);
      if (!evaluation.ok) return { revision, hash, error: evaluation.error.message };
      const answer = evaluation.answer;
      return { revision, hash, action: answer.action, escalated: answer.escalated, reasons: answer.reasons.map((r) => r.code) };
    } catch (error) {
      return { revision, hash, error: toError(error).message };
    }
  }

  refresh(): ReturnType<BundleSource["refresh"]> {
    return this.#source.refresh();
  }

  close(): Promise<void> {
    return this.#source.close();
  }
}
