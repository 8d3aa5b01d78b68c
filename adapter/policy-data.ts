/**
 * The parts of the policy's data document (contract section 2) the adapter
 * itself needs: the escalation window for deny history, tenant approvers,
 * sensitive fields for redaction and amount fields for input validation.
 * Defaults here mirror the defaults the Rego policy applies when data omits a
 * value.
 */
import { z } from "zod";
import { BundleLoadError } from "./errors.js";

export const DEFAULT_WINDOW_SECONDS = 900;
export const DEFAULT_DENY_THRESHOLD = 3;
export const DEFAULT_AMOUNT_FIELDS = ["amount"];

const positiveNumber = z.number().positive().finite();

const configSchema = z.looseObject({
  tenants: z.record(z.string(), z.looseObject({ approvers: z.array(z.string()).optional() })).optional(),
  sensitive_fields: z.record(z.string(), z.array(z.string())).optional(),
  amount_fields: z.array(z.string()).optional(),
  escalation: z
    .looseObject({ deny_threshold: z.number().min(0).finite().optional(), window_seconds: positiveNumber.optional() })
    .optional(),
});

const dataSchema = z.looseObject({
  veto: z.looseObject({ config: configSchema.optional() }).optional(),
});

export interface PolicyData {
  /** The whole data document, as given to the policy. */
  readonly document: Record<string, unknown>;
  readonly windowSeconds: number;
  readonly denyThreshold: number;
  readonly amountFields: readonly string[];
  /** Every field named sensitive for any object, lower-cased (the policy compares case-insensitively); used to redact record summaries. */
  readonly sensitiveFields: ReadonlySet<string>;
}

export function readPolicyData(document: unknown, label: string): PolicyData {
  const parsed = dataSchema.safeParse(document);
  if (!parsed.success || document === null || typeof document !== "object" || Array.isArray(document)) {
    const detail = parsed.success ? "it must be a JSON object" : z.prettifyError(parsed.error);
    throw new BundleLoadError("data_unusable", `data document ${label} is unusable: ${detail}`);
  }
  try {
    // setData serializes with JSON.stringify: cycles and BigInt throw there, and
    // Infinity would silently become null, so both are refused up front.
    JSON.stringify(document);
    assertFiniteNumbers(document, "data");
  } catch (error) {
    throw new BundleLoadError("data_unusable", `data document ${label} is unusable: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const config = parsed.data.veto?.config ?? {};
  return {
    document: document as Record<string, unknown>,
    windowSeconds: config.escalation?.window_seconds ?? DEFAULT_WINDOW_SECONDS,
    denyThreshold: config.escalation?.deny_threshold ?? DEFAULT_DENY_THRESHOLD,
    amountFields: config.amount_fields ?? DEFAULT_AMOUNT_FIELDS,
    sensitiveFields: new Set(Object.values(config.sensitive_fields ?? {}).flat().map((f) => f.toLowerCase())),
  };
}

function assertFiniteNumbers(value: unknown, path: string): void {
  if (typeof value === "number" && !Number.isFinite(value)) throw new Error(`${path} is not a finite number`);
  if (value !== null && typeof value === "object") {
    for (const [key, child] of Object.entries(value)) assertFiniteNumbers(child, `${path}.${key}`);
  }
}
