/**
 * A seeded generator of calls that reach every branch of the policy, valid
 * and invalid, for the differential test. Only JSON-representable calls with
 * the three contract fields: what the adapter alone refuses (size and depth
 * limits, prototype keys, extra top-level fields) is tested elsewhere.
 */

import fc from "fast-check";
import { destinationArbitrary } from "./generate-destinations.js";

/** mulberry32: small, fast, good enough to spread cases; same seed, same calls. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Marks a field to leave out of the object being built. */
const ABSENT = Symbol("absent");
type Gen = unknown | typeof ABSENT;

export interface GeneratedCase {
  readonly config: "bundle" | "alt";
  readonly call: { tool?: unknown; arguments?: unknown; context?: unknown };
  readonly recentDenies: number;
}

/**
 * A second data document, unlike the shipped one in every knob: no
 * amount_fields (so the policy's default applies), tenants without actors,
 * approvers or limits, an approver who is also an actor, a zero threshold, a
 * tool of an unknown kind, a tighter escalation, a tenant with
 * allowed_destinations.
 */
export const ALT_CONFIG = {
  tools: {
    "crm.read": { kind: "read" },
    "crm.update": { kind: "write" },
    "crm.merge": { kind: "write" },
    "crm.peek": { kind: "read" },
    "crm.odd": { kind: "other" },
  },
  environments: ["production", "staging"],
  tenants: {
    acme: {
      approvers: ["user:crm-owner@acme.example"],
      approval_threshold: 1000,
      allowed_destinations: ["hooks.example.com", "Files.Example.NET.", "[::1]", "example.org"],
    },
    globex: { actors: ["agent:a"], approvers: ["agent:a", "user:g@globex.example"], max_amount: 5000 },
    initech: {},
    hooli: { approvers: ["user:h@hooli.example", ""], approval_threshold: 0 },
  },
  sensitive_fields: { "*": ["SSN"], lead: ["email"] },
  blocked_destinations: ["example.org", "PasteBin.com"],
  escalation: { deny_threshold: 2, window_seconds: 60 },
};

/**
 * Destinations in the forms contract section 3 reads host by host: a "://"
 * or "@" after the host, "\" in the user-info of a non-special scheme,
 * lists, mailto fields and several addresses, percent escapes, numeric and
 * IPv6 hosts, control characters. The random batch also draws from the
 * grammar of test/helpers/generate-destinations.ts.
 */
export const DESTINATION_FORMS: readonly string[] = [
  "pastebin.com/x?u=https://hooks.example.com",
  "pastebin.com#://hooks.example.com",
  "hooks.example.com/a://pastebin.com/",
  "https://hooks.example.com/x?u=https://pastebin.com",
  "sftp://hooks.example.com\\@pastebin.com/x",
  "ssh://hooks.example.com\\@example.org",
  "s3://bucket\\x@hooks.example.com/key",
  "git+ssh://git@hooks.example.com\\@gmail.com/repo",
  "smtp://relay.example.net\\@transfer.sh",
  "a@hooks.example.com, b@gmail.com",
  "a@hooks.example.com;b@files.example.net",
  "hooks.example.com pastebin.com",
  "mailto:a@hooks.example.com?to=b@gmail.com",
  "mailto:a@hooks.example.com?CC=b@example.org",
  "mailto:?bcc=a%40pastebin.com",
  "mailto:a@hooks.example.com,b@files.example.net?subject=Hi",
  "mailto:?to=a@hooks.example.com,b@files.example.net&subject=Hi",
  "mailto:a@hooks.example.com%2Cb@gmail.com",
  "MAILTO:?To=a@hooks.example.com&cc=b@files.example.net",
  "https://[0:0::1]:8443/",
  "http://0x7f.1/",
  "http://10.0.0.1/",
  "https://hooks.example.com/\tx",
  "hooks.example.com\n",
  "file:///etc/passwd",
  "HTTPS://Hooks.Example.COM./x",
  "https://files.example.net/in",
  "https://partner.example.net/in",
  "ops@partner.example.net",
  "sftp://user@partner.example.net:22/in",
  " https://hooks.example.com ",
  "https://hooks.example.com/x",
];

/**
 * Spellings the policy reads as the same name: object names compare ignoring
 * case and surrounding spaces, amount fields (and sensitive fields) ignoring
 * case. Drawn from a random stream of their own, so the cases of a seed are
 * the same calls as before, some of them respelled.
 */
const OBJECT_SPELLINGS: Readonly<Record<string, readonly string[]>> = {
  opportunity: ["Opportunity", " opportunity ", "OPPORTUNITY"],
  account: ["ACCOUNT", " Account"],
};
const FIELD_SPELLINGS: Readonly<Record<string, readonly string[]>> = {
  amount: ["Amount", "AMOUNT"],
  discount_amount: ["DISCOUNT_AMOUNT", "Discount_Amount"],
  refund_amount: ["Refund_amount"],
  stage: ["Stage"],
};

export function generateCases(seed: number, count: number): GeneratedCase[] {
  const random = seededRandom(seed);
  const respell = seededRandom(seed ^ 0x5eed5eed);
  // Destinations in other forms come from streams of their own too, so the
  // rest of each call stays what it was for the seed.
  const reform = seededRandom(seed ^ 0xde57de57);
  const grammar = fc.sample(destinationArbitrary, { seed, numRuns: Math.max(1, Math.ceil(count / 3)) }).map((d) => d.destination);
  let drawn = 0;
  const destinationForm = (destination: Gen): Gen => {
    if (typeof destination !== "string") return destination;
    const r = reform();
    if (r < 0.4) return DESTINATION_FORMS[Math.floor(reform() * DESTINATION_FORMS.length)] as string;
    if (r < 0.8) return grammar[drawn++ % grammar.length] as string;
    return destination;
  };
  /** Sometimes another spelling of `name` from `spellings`. */
  const spelling = (name: Gen, spellings: Readonly<Record<string, readonly string[]>>): Gen => {
    const others = typeof name === "string" ? spellings[name] : undefined;
    if (others === undefined || respell() >= 0.3) return name;
    return others[Math.floor(respell() * others.length)] as string;
  };
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const chance = (p: number): boolean => random() < p;
  /** Mostly one of `valid`, sometimes one of `invalid`. */
  const mostly = (valid: readonly Gen[], invalid: readonly Gen[], pInvalid = 0.06): Gen =>
    chance(pInvalid) && invalid.length > 0 ? pick(invalid) : pick(valid);

  const set = (target: Record<string, unknown>, key: string, value: Gen): void => {
    if (value !== ABSENT) target[key] = value;
  };

  const amountValue = (): Gen =>
    mostly(
      [10, 999, 1000, 4999.5, 5000, 5001, 20_000, 250_000, 250_001, -300_000, 1_000_001, 0, 0.5, 1e21],
      ["9000", null, true, [], {}],
      0.1,
    );

  const cases: GeneratedCase[] = [];
  for (let i = 0; i < count; i++) {
    const config = chance(0.65) ? "bundle" : "alt";
    const tenant = mostly(["acme", "acme", "globex", "initech", "hooli", "umbrella"], ["", "   ", 7, null, ABSENT]);

    const context: Record<string, unknown> = {};
    set(
      context,
      "actorId",
      mostly(
        ["agent:sales-assistant", "agent:support-triage", "agent:billing-bot", "agent:a", "agent:rogue", "user:crm-owner@acme.example"],
        ["", " ", 5, null, ABSENT],
      ),
    );
    set(context, "tenantId", tenant);
    set(context, "environment", mostly(["production", "production", "staging", "development", "qa"], ["", 3, ABSENT]));
    set(context, "reason", mostly(["Customer asked", "Customer asked", "", "   ", ABSENT], [9, null, ["x"]]));
    if (chance(0.3)) set(context, "sourceSystem", mostly(["salesforce"], [5, false]));
    if (chance(0.2)) set(context, "requestId", mostly(["req_9"], [{}]));
    if (chance(0.1)) set(context, "sessionId", mostly(["s_1"], [1]));
    if (chance(0.1)) set(context, "onBehalfOf", mostly(["user:ana@acme.example"], [null]));
    if (chance(0.05)) context["extra"] = "unknown context fields are allowed";

    const args: Record<string, unknown> = {};
    set(args, "object", spelling(mostly(["opportunity", "account", "contact", "lead", ABSENT], [5, null]), OBJECT_SPELLINGS));
    set(args, "recordId", mostly(["opp_1", ABSENT], [7]));
    set(args, "tenantId", mostly([ABSENT, ABSENT, tenant, tenant, "globex", "acme"], [12, null]));
    set(
      args,
      "destination",
      chance(0.3)
        ? destinationForm(mostly(
            [
              "https://hooks.example.com/x",
              "https://PasteBin.com./raw",
              "https://sub.gmail.com/a?b=c",
              "ana@gmail.com",
              "dropbox.com",
              "http://evilpastebin.com",
              "//transfer.sh/x",
              "https://user:pw@hooks.example.com:8443/p",
              "https://example.org#frag",
              "[::1]:80",
              "mailto:x@EXAMPLE.ORG.",
            ],
            [42, null],
          ))
        : ABSENT,
    );
    if (chance(0.55)) {
      const changes: Record<string, unknown> = {};
      const fieldNames = ["close_date", "stage", "discount_pct", "SSN", "ssn", "email", "billing_email", "amount", "discount_amount", "credit_amount", "refund_amount", "note"];
      const n = 1 + Math.floor(random() * 3);
      for (let k = 0; k < n; k++) {
        const name = pick(fieldNames);
        const isAmount = name.endsWith("amount");
        set(changes, spelling(name, FIELD_SPELLINGS) as string, isAmount ? amountValue() : pick(["x", 1, true, null]));
      }
      set(args, "changes", chance(0.04) ? pick([["stage"], "stage=won", 3]) : changes);
    }
    if (chance(0.25)) set(args, "amount", amountValue());
    if (chance(0.3)) {
      set(args, "fields", mostly([["name"], ["name", "email"], ["SSN"], ["billing_email", "company"], []], [["name", 3], "name", null]));
    }
    if (chance(0.05)) args["note"] = "unknown argument fields are passed through";

    const tool = mostly(
      ["crm.read", "crm.search", "crm.update", "crm.update", "crm.create", "crm.delete", "crm.export", "crm.merge", "crm.peek", "crm.odd"],
      ["", "  ", 42, null, ABSENT],
    );
    const call: Record<string, unknown> = {};
    set(call, "tool", tool);
    set(call, "arguments", chance(0.97) ? args : pick([null, [], "args", ABSENT]));
    set(call, "context", chance(0.97) ? context : pick([null, [], "ctx", ABSENT]));
    cases.push({ config, call, recentDenies: pick([0, 0, 0, 1, 2, 3, 4, 10]) });
  }
  return cases;
}

/**
 * Every destination form, in a call that nothing else denies, for both data
 * documents: the bundle's (a block list) and ALT_CONFIG's acme (an allow list
 * as well), so each form meets both lists whatever the seed.
 */
export const DESTINATION_CASES: readonly GeneratedCase[] = DESTINATION_FORMS.flatMap((destination): GeneratedCase[] => {
  const context = { actorId: "agent:sales-assistant", tenantId: "acme", environment: "production", reason: "Weekly export" };
  const args = { object: "contact", recordId: "c_1", changes: { note: "x" }, destination };
  return [
    { config: "bundle", call: { tool: "crm.export", arguments: args, context }, recentDenies: 0 },
    { config: "alt", call: { tool: "crm.update", arguments: args, context }, recentDenies: 0 },
  ];
});

/**
 * Calls that turn on a respelling, with the verdict the policy gives them:
 * object names compare ignoring case and surrounding spaces, amount fields
 * ignoring case (the random batch rarely reaches these verdicts through them).
 */
export const RESPELLING_CASES: readonly (GeneratedCase & { readonly expected: { action: string; codes: string[] } })[] = (() => {
  const context = { actorId: "agent:sales-assistant", tenantId: "acme", environment: "production", reason: "Customer asked" };
  const update = (args: Record<string, unknown>, ctx: Record<string, unknown> = {}) => ({
    tool: "crm.update",
    arguments: { object: "opportunity", recordId: "opp_1", ...args },
    context: { ...context, ...ctx },
  });
  const approval = { action: "require_approval" };
  const deny = { action: "deny" };
  return [
    { config: "bundle", call: update({ object: "Opportunity", changes: { Stage: "closed_won" } }), recentDenies: 0, expected: { ...approval, codes: ["sensitive_field"] } },
    { config: "bundle", call: update({ object: " opportunity ", changes: { discount_pct: 5 } }), recentDenies: 0, expected: { ...approval, codes: ["sensitive_field"] } },
    { config: "bundle", call: update({ object: "ACCOUNT", changes: { Credit_Limit: 10 } }), recentDenies: 0, expected: { ...approval, codes: ["sensitive_field"] } },
    { config: "bundle", call: update({ changes: { Amount: 300_000 } }), recentDenies: 0, expected: { ...deny, codes: ["amount_over_limit"] } },
    { config: "bundle", call: update({ changes: { DISCOUNT_AMOUNT: 9000 } }), recentDenies: 0, expected: { ...approval, codes: ["production_amount"] } },
    { config: "bundle", call: update({ changes: { Amount: "9000" } }), recentDenies: 0, expected: { ...deny, codes: ["invalid_input"] } },
    { config: "bundle", call: update({ changes: { DISCOUNT_AMOUNT: null } }), recentDenies: 0, expected: { ...deny, codes: ["invalid_input"] } },
    { config: "bundle", call: update({ changes: { Discount_Amount: 10 } }), recentDenies: 0, expected: { action: "allow", codes: ["low_value"] } },
    {
      config: "alt",
      call: update({ changes: { AMOUNT: 5001 } }, { actorId: "agent:a", tenantId: "globex" }),
      recentDenies: 0,
      expected: { ...deny, codes: ["amount_over_limit"] },
    },
    {
      config: "alt",
      call: update({ object: "LEAD ", changes: { EMAIL: "x" } }),
      recentDenies: 0,
      expected: { ...approval, codes: ["sensitive_field"] },
    },
  ];
})();
