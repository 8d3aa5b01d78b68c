/**
 * Properties of protect() over generated calls (fast-check: seeded, shrunk;
 * VETO_TEST_SEED repeats a run, and a failure prints its seed and the
 * smallest call that fails):
 *
 * - Any JSON value as a call: protect() resolves (never throws) with a
 *   well-formed decision, and a call that breaks docs/contract.md §1 is never
 *   allowed: it is an invalid_input deny. Whether a call breaks §1 is judged
 *   here from the contract's text (breaksContract below), not by the adapter's
 *   schema or checks. A write without a reason (§1, §4 missing_reason) is
 *   never allowed either.
 * - Every decision's record verifies: generated sequences of calls decided
 *   into a file log, with and without recordKey, verify as a hash chain
 *   (verifyLog) with one record per decision, and no sensitive value
 *   (docs/contract.md §7) appears in the log's text.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVeto, type Decision, type Veto } from "../../adapter/index.js";
import { openFileLog, verifyLog } from "../../adapter/audit/index.js";
import { ACTOR, bundleData, captureLogger, FakeClock, makeVeto, requireBundle, type TestVeto } from "../helpers/index.js";
import { tempDir } from "../helpers/file-log.js";
import { anyCall, MARK } from "../helpers/generate-property-calls.js";

const SEED = Number(process.env["VETO_TEST_SEED"] ?? Date.now() % 2 ** 31);
const config = bundleData().veto.config as {
  tools: Record<string, { kind: string }>;
  sensitive_fields: Record<string, string[]>;
};

// ---- What breaks docs/contract.md §1, read from the contract's text. ----

/** §9 "One idea of blank": nothing but White_Space, Default_Ignorable_Code_Point, Cc or Cf characters. */
const BLANK = /^[\p{White_Space}\p{Default_Ignorable_Code_Point}\p{Cc}\p{Cf}]*$/u;
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
const isText = (v: unknown): boolean => typeof v === "string" && !BLANK.test(v);

/**
 * §9 "Amount precision", for a JavaScript number: its shortest round-trip
 * text has at most 15 significant digits, and it is 0 or between 1e-307
 * (inclusive) and 1e308 (exclusive) in magnitude.
 */
function badAmount(n: number): boolean {
  if (!Number.isFinite(n)) return true;
  if (n !== 0 && (Math.abs(n) < 1e-307 || Math.abs(n) >= 1e308)) return true;
  const mantissa = String(Math.abs(n)).split("e")[0]!.replace(".", "");
  const digits = mantissa.replace(/^0+/, "").replace(/0+$/, "");
  return digits.length > 15;
}

/**
 * Whether `call` certainly breaks §1 (its field table, "not blank", exactly
 * {tool, arguments, context}, §9 amount precision). Sound, not complete:
 * what it cannot judge from the text alone (input limits, amount_fields
 * other than `amount`) it leaves as not broken.
 */
function breaksContract(call: unknown): string | undefined {
  if (!isObject(call)) return "not an object";
  const keys = Object.keys(call).sort();
  if (keys.join() !== "arguments,context,tool") return `members ${keys.join()}`;
  const { tool, arguments: args, context } = call;
  if (!isText(tool)) return "tool";
  if (!isObject(args)) return "arguments";
  if (!isObject(context)) return "context";
  for (const field of ["actorId", "tenantId", "environment"]) if (!isText(context[field])) return `context.${field}`;
  for (const field of ["reason", "sourceSystem", "requestId", "sessionId", "onBehalfOf"]) {
    if (field in context && typeof context[field] !== "string") return `context.${field}`;
  }
  for (const field of ["object", "recordId", "tenantId", "destination"]) {
    if (field in args && typeof args[field] !== "string") return `arguments.${field}`;
  }
  if ("changes" in args && !isObject(args["changes"])) return "arguments.changes";
  if ("fields" in args && !(Array.isArray(args["fields"]) && args["fields"].every((f) => typeof f === "string"))) return "arguments.fields";
  if ("amount" in args && (typeof args["amount"] !== "number" || badAmount(args["amount"]))) return "arguments.amount";
  return undefined;
}

/** A write (§2 tools, kind "write") without a reason that says something (§1: required for writes). */
function writeWithoutReason(call: unknown): boolean {
  if (!isObject(call) || typeof call["tool"] !== "string" || !isObject(call["context"])) return false;
  return config.tools[call["tool"]]?.kind === "write" && !isText(call["context"]["reason"]);
}

function wellFormed(d: Decision): void {
  expect(["allow", "deny", "require_approval"]).toContain(d.action);
  expect(d.reasons.length).toBeGreaterThan(0);
  expect(typeof d.id).toBe("string");
}

describe("protect() on any JSON value (docs/contract.md §1, §4)", () => {
  let t: TestVeto;
  beforeAll(async () => {
    t = await makeVeto();
  });
  afterAll(() => t.veto.close());

  it(
    `never throws, and never allows a call that breaks the contract or a write without a reason (seed ${SEED})`,
    { timeout: 60_000 },
    async () => {
      const seen = { broken: 0, allowed: 0, writesWithoutReason: 0 };
      await fc.assert(
        fc.asyncProperty(anyCall, async (call) => {
          // Past the escalation window: earlier denies do not escalate this call.
          t.clock.advance(901_000);
          const decision = await t.veto.protect(call);
          wellFormed(decision);
          const broken = breaksContract(call);
          if (broken !== undefined) {
            seen.broken += 1;
            expect({ action: decision.action, codes: decision.reasons.map((r) => r.code) }, `breaks §1 (${broken})`).toEqual({
              action: "deny",
              codes: ["invalid_input"],
            });
          } else if (writeWithoutReason(call)) {
            seen.writesWithoutReason += 1;
            expect(decision.action, "a write without a reason").not.toBe("allow");
          }
          if (decision.action === "allow") seen.allowed += 1;
        }),
        { seed: SEED, numRuns: 1500 },
      );
      // The generator reaches both sides.
      expect(seen.broken).toBeGreaterThan(100);
      expect(seen.allowed).toBeGreaterThan(10);
      expect(seen.writesWithoutReason).toBeGreaterThan(10);
    },
  );

  it("judges the contract's own examples as the contract does", () => {
    const valid = {
      tool: "crm.update",
      arguments: {
        object: "opportunity",
        recordId: "opp_123",
        tenantId: "acme",
        changes: { stage: "closed_won", amount: 48000 },
        amount: 48000,
      },
      context: { actorId: ACTOR, tenantId: "acme", environment: "production", reason: "Customer asked to move the close date" },
    };
    expect(breaksContract(valid)).toBeUndefined();
    expect(breaksContract({ ...valid, history: { recentDenies: 0 } })).toBe("members arguments,context,history,tool");
    expect(breaksContract({ ...valid, context: { ...valid.context, actorId: "\u200b \u00a0\ufeff" } })).toBe("context.actorId");
    expect(breaksContract({ ...valid, context: { ...valid.context, actorId: "\u200bok" } })).toBeUndefined();
    expect(breaksContract({ ...valid, arguments: { ...valid.arguments, amount: 0.1 + 0.2 } })).toBe("arguments.amount");
    expect(breaksContract({ ...valid, arguments: { ...valid.arguments, amount: 250000 } })).toBeUndefined();
    expect(breaksContract({ ...valid, arguments: { ...valid.arguments, fields: ["a", 1] } })).toBe("arguments.fields");
  });
});

describe("every decision's record verifies (docs/contract.md §7)", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterAll(() => cleanup());

  let run = 0;
  it(
    `sequences of generated calls, with and without recordKey: the log verifies, one record per decision, no sensitive value in it (seed ${SEED})`,
    { timeout: 120_000 },
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(anyCall, { minLength: 1, maxLength: 12 }), fc.boolean(), async (calls, keyed) => {
          const path = join(dir, `log-${(run += 1)}.jsonl`);
          const log = await openFileLog(path);
          const clock = new FakeClock();
          let veto: Veto | undefined;
          try {
            veto = await createVeto({
              bundle: requireBundle(),
              logger: captureLogger().logger,
              recordSink: log,
              clock: clock.now,
              ...(keyed ? { recordKey: "a record key of 32 bytes, for hmac" } : {}),
            });
            const ids: string[] = [];
            for (const call of calls) {
              ids.push((await veto.protect(call)).id);
              clock.advance(1000);
            }
            await veto.close();
            veto = undefined;
            await log.close();
            const verified = await verifyLog([path]);
            expect(verified).toMatchObject({ ok: true, count: calls.length });
            const lines = (await readFile(path, "utf8")).split("\n").filter((l) => l !== "");
            expect(lines.map((l) => (JSON.parse(l) as { decision_id: string }).decision_id)).toEqual(ids);
            for (const line of lines) expect(line).not.toContain(MARK);
          } finally {
            await veto?.close();
          }
        }),
        { seed: SEED, numRuns: 60 },
      );
    },
  );
});

describe("a refused call is attributed only to what a valid call could carry (docs/contract.md §3, §7)", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterAll(() => cleanup());

  const LIMIT = 65_536;
  // Each field: text a valid call could carry, or text no record should take from a refused call.
  const field = fc.oneof(
    fc.constantFrom(ACTOR, "acme", "production", "crm.update", "ünïcödé-ключ-名前"),
    // Within the limit, at it, and past it: in characters, or only in UTF-8 bytes.
    fc.constantFrom(LIMIT - 1, LIMIT, LIMIT + 1, 4 * LIMIT).map((n) => "a".repeat(n)),
    fc.constantFrom(LIMIT / 2 - 1, LIMIT / 2 + 1, LIMIT).map((n) => "é".repeat(n)),
    // Lone surrogates, high or low, at either end or inside.
    fc
      .tuple(fc.constantFrom("\uD800", "\uDBFF", "\uDC00", "\uDFFF"), fc.constantFrom("start", "middle", "end"))
      .map(([s, at]) => (at === "start" ? `${s}agent` : at === "end" ? `agent${s}` : `ag${s}ent`)),
    fc.constantFrom("", "   ", "\u200B", 7, null),
  );
  /** Text a valid call could carry: well-formed, within the limit; non-blank where required. */
  const recordable = (v: unknown, required = true): boolean =>
    typeof v === "string" &&
    !(required && BLANK.test(v)) &&
    !/[\uD800-\uDFFF]/.test(v.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, "")) &&
    Buffer.byteLength(v, "utf8") <= LIMIT;

  let run = 0;
  it(
    `records every such call as invalid_input, never record_unavailable; the log verifies and stays small (seed ${SEED + 7})`,
    { timeout: 120_000 },
    async () => {
      await fc.assert(
        fc.asyncProperty(
          field,
          field,
          field,
          field,
          field,
          fc.boolean(),
          async (actorId, tenantId, environment, tool, requestId, oversized) => {
            const path = join(dir, `refused-${(run += 1)}.jsonl`);
            const log = await openFileLog(path);
            const veto = await createVeto({ bundle: requireBundle(), logger: captureLogger().logger, recordSink: log });
            try {
              // Refused for its arguments (not an object), or for its size.
              const args = oversized ? { object: "contact", recordId: "c_1", fields: ["x".repeat(LIMIT)] } : 5;
              const decision = await veto.protect({ tool, arguments: args, context: { actorId, tenantId, environment, requestId } });
              expect(decision.reasons.map((r) => r.code)).toEqual(["invalid_input"]);
            } finally {
              await veto.close();
              await log.close();
            }
            expect(await verifyLog([path])).toMatchObject({ ok: true, count: 1 });
            const text = await readFile(path, "utf8");
            expect(text.length).toBeLessThan(6 * LIMIT);
            const record = JSON.parse(text) as Record<string, unknown>;
            expect(record["actor_id"]).toBe(recordable(actorId) ? actorId : null);
            expect(record["tenant_id"]).toBe(recordable(tenantId) ? tenantId : null);
            expect(record["environment"]).toBe(recordable(environment) ? environment : null);
            expect(record["tool"]).toBe(recordable(tool) ? tool : null);
            expect(record["request_id"]).toBe(recordable(requestId, false) ? requestId : null);
          },
        ),
        { seed: SEED + 7, numRuns: 80 },
      );
    },
  );
});
