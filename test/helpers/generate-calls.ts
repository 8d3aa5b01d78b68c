/**
 * A seeded generator of calls that reach every branch of the policy, valid
 * and invalid, for the differential test. Only JSON-representable calls with
 * the three contract fields: what the adapter alone refuses (size and depth
 * limits, prototype keys, extra top-level fields) is tested elsewhere.
 */

import fc from "fast-check";
import { seededRandom } from "../../scripts/seeded-random.mjs";
import { destinationArbitrary } from "./generate-destinations.js";

/** The shared seeded generator (scripts/seeded-random.mjs, which bench/mix.mjs uses too): same seed, same calls. */
export { seededRandom };

/**
 * The policy reason codes the generated calls are built to reach, as the
 * policy stood when the generator was written: the differential test checks
 * that the batch still reaches each one, and that each is still a code in
 * policy/veto/crm/reasons.rego (test/helpers/reason-codes.ts). A code added to
 * the policy since need not be listed here: the policy's own cases decide it
 * on both engines (make test-rego).
 */
export const GENERATED_CODES: readonly string[] = [
  "actor_not_allowed",
  "amount_over_limit",
  "blocked_destination",
  "destination_not_allowed",
  "invalid_input",
  "low_value",
  "missing_reason",
  "no_approver",
  "production_amount",
  "read_only",
  "repeated_denies",
  "sensitive_field",
  "unknown_environment",
  "unknown_tenant",
  "unknown_tool",
  "wrong_tenant",
];

/** Marks a field to leave out of the object being built. */
const ABSENT = Symbol("absent");
/** A generated value, or ABSENT (the field is left out); unknown already includes ABSENT. */
type Gen = unknown;

export interface GeneratedCase {
  readonly config: "bundle" | "alt" | "open";
  readonly call: { tool?: unknown; arguments?: unknown; context?: unknown };
  readonly recentDenies: number;
  /**
   * The call as JSON text, when its numbers are written in ways JSON.parse
   * does not keep (`call` is then JSON.parse(text)): what the policy and
   * `veto eval` must judge by the text (docs/contract.md §9 "Amount precision").
   */
  readonly text?: string;
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
 * Destinations in the forms docs/contract.md §3 reads host by host: a "://"
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
    if (r < 0.4) return DESTINATION_FORMS[Math.floor(reform() * DESTINATION_FORMS.length)];
    if (r < 0.8) return grammar[drawn++ % grammar.length];
    return destination;
  };
  /** Sometimes another spelling of `name` from `spellings`. */
  const spelling = (name: Gen, spellings: Readonly<Record<string, readonly string[]>>): Gen => {
    const others = typeof name === "string" ? spellings[name] : undefined;
    if (others === undefined || respell() >= 0.3) return name;
    return others[Math.floor(respell() * others.length)];
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
      // Doubles whose shortest text has more than 15 significant digits or leaves the range (docs/contract.md §9).
      ["9000", null, true, [], {}, 0.1 + 0.2, 2 ** 53 + 2, 4999.999999999999, 1e-310, Number.MAX_VALUE, 1e308],
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
        ? destinationForm(
            mostly(
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
            ),
          )
        : ABSENT,
    );
    if (chance(0.55)) {
      const changes: Record<string, unknown> = {};
      const fieldNames = [
        "close_date",
        "stage",
        "discount_pct",
        "SSN",
        "ssn",
        "email",
        "billing_email",
        "amount",
        "discount_amount",
        "credit_amount",
        "refund_amount",
        "note",
      ];
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
    {
      config: "bundle",
      call: update({ object: "Opportunity", changes: { Stage: "closed_won" } }),
      recentDenies: 0,
      expected: { ...approval, codes: ["sensitive_field"] },
    },
    {
      config: "bundle",
      call: update({ object: " opportunity ", changes: { discount_pct: 5 } }),
      recentDenies: 0,
      expected: { ...approval, codes: ["sensitive_field"] },
    },
    {
      config: "bundle",
      call: update({ object: "ACCOUNT", changes: { Credit_Limit: 10 } }),
      recentDenies: 0,
      expected: { ...approval, codes: ["sensitive_field"] },
    },
    {
      config: "bundle",
      call: update({ changes: { Amount: 300_000 } }),
      recentDenies: 0,
      expected: { ...deny, codes: ["amount_over_limit"] },
    },
    {
      config: "bundle",
      call: update({ changes: { DISCOUNT_AMOUNT: 9000 } }),
      recentDenies: 0,
      expected: { ...approval, codes: ["production_amount"] },
    },
    { config: "bundle", call: update({ changes: { Amount: "9000" } }), recentDenies: 0, expected: { ...deny, codes: ["invalid_input"] } },
    {
      config: "bundle",
      call: update({ changes: { DISCOUNT_AMOUNT: null } }),
      recentDenies: 0,
      expected: { ...deny, codes: ["invalid_input"] },
    },
    {
      config: "bundle",
      call: update({ changes: { Discount_Amount: 10 } }),
      recentDenies: 0,
      expected: { action: "allow", codes: ["low_value"] },
    },
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

/**
 * The test bundle's data (test/fixtures/data.json) with no tenant listing its
 * actors: every actor may act, so each amount case can have an actor of its
 * own (a fresh deny history, also in one `veto eval` run).
 */
export function openConfig(fixtureConfig: Record<string, unknown>): Record<string, unknown> {
  const config = structuredClone(fixtureConfig) as { tenants: Record<string, Record<string, unknown>> };
  for (const tenant of Object.values(config.tenants)) delete tenant["actors"];
  return config;
}

/** Limits and thresholds of the fixture data, and zero: where the number's last digits decide. */
const AMOUNT_EDGES = ["0", "1000", "5000", "20000", "250000", "1000000"] as const;

/** Numbers whose text is not what a double holds, or is only just what it holds. */
const AMOUNT_TEXT_EXAMPLES = [
  "250000.00000000001",
  "250000.0000000001",
  "250000.000000001",
  "249999.99999999999",
  "5000.000000000001",
  "4999.999999999999",
  "4999.99999999999",
  "4999.9999999999999999999999999999999999",
  "49999999999999999999e-16",
  "2.50000000000000001e5",
  "1e400",
  "-1e400",
  "1E+400",
  "1e-400",
  "-1e-400",
  "1e308",
  "1e307",
  "9.99999999999999e307",
  "1.7976931348623157e308",
  "1e-307",
  "1e-308",
  "5e-324",
  "2.2250738585072014e-308",
  "0e400",
  "0E-0400",
  "-0",
  "-0.0",
  "0.000",
  "-0e-0",
  "0.30000000000000004",
  "0.1",
  "0.2",
  "0.3",
  "9007199254740993",
  "9007199254740992",
  "999999999999999",
  "1000000000000000",
  "123456789012345678901234567890",
  "25e4",
  "2.5E+5",
  "250000e0",
  "0.25e6",
  "2500000e-1",
  "1e+0004",
  "5.000e3",
  "1e21",
] as const;

/**
 * A seeded batch of calls whose amounts (arguments.amount, changes.<amount
 * field>, respelled) are written as JSON text: many digits around the
 * limits, exponents, signed zeros, numbers beyond a double's range or
 * precision. Each case has an actor of its own, for OPEN_CONFIG.
 */
export function generateAmountTextCases(seed: number, count: number): GeneratedCase[] {
  const random = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const digits = (n: number): string => Array.from({ length: n }, () => String(Math.floor(random() * 10))).join("");
  const numberText = (): string => {
    const sign = random() < 0.25 ? "-" : "";
    switch (Math.floor(random() * 4)) {
      case 0:
        return `${sign}${pick(AMOUNT_TEXT_EXAMPLES).replace(/^-/, "")}`;
      case 1: {
        // An edge, then a fraction just above or below it: 0 to 25 more digits.
        const edge = Number(pick(AMOUNT_EDGES));
        const below = random() < 0.5 && edge > 0;
        const zerosOrNines = (below ? "9" : "0").repeat(Math.floor(random() * 20));
        const last = below ? "9" : String(1 + Math.floor(random() * 9));
        return `${sign}${below ? edge - 1 : edge}.${zerosOrNines}${last}`;
      }
      case 2: {
        // A random mantissa of 1 to 20 digits with a random exponent, sometimes zero-padded.
        const whole = String(Number(digits(1 + Math.floor(random() * 8))));
        const fraction = random() < 0.6 ? `.${digits(1 + Math.floor(random() * 14))}` : "";
        const exponent =
          random() < 0.6
            ? ""
            : `${pick(["e", "E"])}${pick(["", "+", "-"])}${"0".repeat(Math.floor(random() * 3))}${Math.floor(random() * 330)}`;
        return `${sign}${whole}${fraction}${exponent}`;
      }
      default: {
        // An edge written with trailing zeros or an exponent: the same number.
        const edge = pick(AMOUNT_EDGES);
        return `${sign}${pick([`${edge}.${"0".repeat(1 + Math.floor(random() * 20))}`, `${edge}e0`, `${edge === "0" ? "0" : `${edge}0`}e-1`])}`;
      }
    }
  };
  const cases: GeneratedCase[] = [];
  for (let i = 0; i < count; i++) {
    const tenant = pick(["acme", "acme", "globex", "initech"]);
    const numbers: string[] = [];
    /**
     * A placeholder for a number text. Outside amount positions only numbers a
     * double can hold: JSON.parse makes 1e400 Infinity, which the adapter
     * refuses anywhere in a call (JavaScript cannot pass it on as it is).
     */
    const slot = (finite = false): string => {
      let n = numberText();
      while (finite && !Number.isFinite(Number(n))) n = numberText();
      numbers.push(n);
      return `@@number:${numbers.length - 1}@@`;
    };
    const args: Record<string, unknown> = { object: "opportunity", recordId: "opp_1", tenantId: tenant };
    const where = Math.floor(random() * 3);
    if (where !== 1) args["amount"] = slot();
    if (where !== 0) {
      const field = pick(["amount", "Amount", "DISCOUNT_AMOUNT", "refund_amount", "credit_amount"]);
      args["changes"] = { close_date: "2026-12-01", [field]: slot(), ...(random() < 0.3 ? { probability: slot(true) } : {}) };
    }
    const call = {
      tool: pick(["crm.update", "crm.update", "crm.create", "crm.read"]),
      arguments: args,
      context: {
        actorId: `agent:amount-${seed}-${i}`,
        tenantId: tenant,
        environment: pick(["production", "production", "staging"]),
        reason: "Customer asked",
      },
    };
    let text = JSON.stringify(call);
    numbers.forEach((n, k) => {
      text = text.replace(`"@@number:${k}@@"`, n);
    });
    cases.push({ config: "open", call: JSON.parse(text) as GeneratedCase["call"], recentDenies: 0, text });
  }
  return cases;
}
