/**
 * fast-check arbitraries of calls for the property tests: most near a valid
 * call of the test data (test/fixtures/data.json), with now and then a field
 * of another type, a blank text (docs/contract.md §9), an extra member or a
 * sensitive field; some any JSON value at all.
 */
import fc from "fast-check";
import { ACTOR, bundleData } from "./index.js";

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

const config = bundleData().veto.config as {
  tools: Record<string, { kind: string }>;
  sensitive_fields: Record<string, string[]>;
  tenants: Record<string, { approval_threshold?: unknown; max_amount?: unknown }>;
};

export const blank = fc.constantFrom("", " ", "\u200b \u00a0\ufeff", "\t\n", "\u0000", "\u061c", "\ue0020");
const text = fc.oneof(
  { arbitrary: fc.constantFrom("acme", "globex", "initech", "umbrella", "production", "staging", "qa", ACTOR, "agent:rogue"), weight: 6 },
  { arbitrary: fc.string({ maxLength: 8 }), weight: 2 },
  { arbitrary: blank, weight: 2 },
  { arbitrary: fc.constant("\u200bok"), weight: 1 },
);
/** Something of another type than a field wants, now and then. */
const wrong = fc.oneof(
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 2 }),
  fc.dictionary(fc.string(), fc.string(), { maxKeys: 2 }),
);
const maybeWrong = <T>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> =>
  fc.oneof({ arbitrary: good, weight: 16 }, { arbitrary: wrong, weight: 1 });
/** Mostly `usual` (so that calls are often allowed), else any text. */
const mostly = (...usual: string[]): fc.Arbitrary<string> =>
  fc.oneof({ arbitrary: fc.constantFrom(...usual), weight: 6 }, { arbitrary: text, weight: 1 });
/** Every tenant's approval_threshold and max_amount, and the amounts just either side of each. */
const limits = Object.values(config.tenants).flatMap((tenant) =>
  [tenant.approval_threshold, tenant.max_amount].flatMap((n) => (typeof n === "number" ? [n - 1, n - 0.01, n, n + 0.01, n + 1] : [])),
);
const amount = fc.oneof(
  { arbitrary: fc.constantFrom(...limits), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: 400_000 }), weight: 1 },
  { arbitrary: fc.double({ noNaN: false }), weight: 1 },
  { arbitrary: fc.constantFrom(0.1 + 0.2, 1e-308, 1e308, -0, 250_000.5, 1234567890123456), weight: 1 },
);
const sensitiveName = fc.constantFrom(...new Set(Object.values(config.sensitive_fields).flat()));
/** Marks sensitive values so that the log's text can be searched for them. */
export const MARK = "SENSITIVE-";
const changes = fc.dictionary(
  fc.oneof(fc.constantFrom("stage", "close_date", "amount", "discount_amount", "name"), sensitiveName, fc.string({ maxLength: 6 })),
  fc.oneof(fc.string({ maxLength: 8 }), amount, fc.constant(null)),
  { maxKeys: 4 },
);
const tool = fc.oneof(
  { arbitrary: fc.constantFrom(...Object.keys(config.tools), "crm.merge"), weight: 8 },
  { arbitrary: blank, weight: 1 },
);

export const nearCall = fc
  .record(
    {
      tool: maybeWrong(tool),
      arguments: maybeWrong(
        fc.record(
          {
            object: maybeWrong(fc.constantFrom("opportunity", "contact", "account", " Account ")),
            recordId: maybeWrong(fc.constantFrom("opp_1", "c_1")),
            tenantId: maybeWrong(mostly("acme")),
            changes: maybeWrong(changes),
            fields: maybeWrong(fc.array(fc.oneof(sensitiveName, fc.constantFrom("name", "company")), { maxLength: 3 })),
            amount: maybeWrong(amount),
            destination: maybeWrong(fc.constantFrom("https://hooks.example.com/x", "https://pastebin.com/raw", "mailto:a@gmail.com")),
            extra: fc.jsonValue({ maxDepth: 2 }),
          },
          { requiredKeys: [] },
        ),
      ),
      context: maybeWrong(
        fc.record(
          {
            actorId: maybeWrong(mostly(ACTOR)),
            tenantId: maybeWrong(mostly("acme")),
            environment: maybeWrong(mostly("production", "staging", "development")),
            reason: maybeWrong(fc.oneof(fc.constant("Customer asked"), blank)),
            sourceSystem: maybeWrong(fc.constant("salesforce")),
            requestId: maybeWrong(fc.string({ maxLength: 4 })),
            extra: fc.jsonValue({ maxDepth: 2 }),
          },
          { requiredKeys: ["actorId", "tenantId", "environment"] },
        ),
      ),
      history: fc.jsonValue({ maxDepth: 1 }),
      extra: fc.jsonValue({ maxDepth: 1 }),
    },
    { requiredKeys: ["tool", "arguments", "context"] },
  )
  // Drop the extra top-level members most of the time (with them the call is always invalid).
  .chain((call) =>
    fc.integer({ min: 0, max: 3 }).map((n) => (n === 0 ? call : { tool: call.tool, arguments: call.arguments, context: call.context })),
  )
  // Mark every string value of a sensitive field of changes, so the log can be searched for it.
  .map((call) => {
    const args = call.arguments;
    if (!isObject(args) || !isObject(args["changes"])) return call;
    const names = new Set(Object.values(config.sensitive_fields).flat());
    const marked = Object.fromEntries(
      Object.entries(args["changes"]).map(([k, v]) => [k, names.has(k) && typeof v === "string" ? `${MARK}${v}` : v]),
    );
    return { ...call, arguments: { ...args, changes: marked } };
  });

type Json = Record<string, unknown>;

interface MCall {
  tool: unknown;
  arguments: Json;
  context: Json;
}

/** A change to a valid call: one field set to something the policy reads closely. */
const mutation: fc.Arbitrary<(call: MCall) => void> = fc.oneof(
  amount.map((a) => (c: MCall) => void (c.arguments["amount"] = a)),
  fc.tuple(fc.constantFrom("amount", "discount_amount", "credit_amount"), amount).map(([k, a]) => (c: MCall) => {
    c.arguments["changes"] = { ...(c.arguments["changes"] as Json), [k]: a };
  }),
  fc.constantFrom("acme", "globex", "initech", "umbrella").map((t) => (c: MCall) => {
    c.context["tenantId"] = t;
    c.arguments["tenantId"] = t;
  }),
  fc.constantFrom("acme", "globex").map((t) => (c: MCall) => void (c.arguments["tenantId"] = t)),
  fc
    .constantFrom(ACTOR, "agent:rogue", "agent:billing-bot", "user:crm-owner@acme.example")
    .map((a) => (c: MCall) => void (c.context["actorId"] = a)),
  fc.constantFrom("production", "staging", "development", "qa").map((e) => (c: MCall) => void (c.context["environment"] = e)),
  fc.oneof(blank, fc.constant("ok")).map((r) => (c: MCall) => void (c.context["reason"] = r)),
  fc.constantFrom(...Object.keys(config.tools), "crm.merge").map((t) => (c: MCall) => void (c.tool = t)),
  sensitiveName.map((n) => (c: MCall) => void (c.arguments["changes"] = { ...(c.arguments["changes"] as Json), [n]: `${MARK}x` })),
  fc
    .array(fc.oneof(sensitiveName, fc.constantFrom("name", "company")), { maxLength: 3 })
    .map((f) => (c: MCall) => void (c.arguments["fields"] = f)),
  fc.constantFrom("opportunity", "contact", "account", " Account ", "lead").map((o) => (c: MCall) => void (c.arguments["object"] = o)),
  fc
    .constantFrom("https://hooks.example.com/x", "https://pastebin.com/raw", "mailto:a@gmail.com", "https://sub.PasteBin.com./r", "ftp://x")
    .map((d) => (c: MCall) => void (c.arguments["destination"] = d)),
);

/** A valid call of the test data (a write or a read for acme), with up to three mutations. */
export const mutatedCall = fc.tuple(fc.boolean(), fc.array(mutation, { maxLength: 3 })).map(([isWrite, mutations]) => {
  const call = isWrite
    ? {
        tool: "crm.update",
        arguments: { object: "opportunity", recordId: "opp_1", tenantId: "acme", changes: { close_date: "2026-12-01" } } as Json,
        context: { actorId: ACTOR, tenantId: "acme", environment: "production", reason: "Customer asked" } as Json,
      }
    : {
        tool: "crm.read",
        arguments: { object: "contact", recordId: "c_1", fields: ["name"] } as Json,
        context: { actorId: ACTOR, tenantId: "acme", environment: "production" } as Json,
      };
  for (const mutate of mutations) mutate(call);
  return call;
});

export const anyCall = fc.oneof(
  { arbitrary: mutatedCall, weight: 4 },
  { arbitrary: nearCall, weight: 3 },
  { arbitrary: fc.jsonValue({ maxDepth: 4 }), weight: 1 },
);
