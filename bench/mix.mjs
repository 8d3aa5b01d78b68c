/**
 * The benchmark's call mix, built from a data document with a fixed seed:
 * the same data and seed give the same calls, so every case (WASM, protect,
 * OPA's evaluator, the OPA server) sees the same traffic.
 *
 * Shares (of the calls before the adapter adds history):
 *   35% reads that are allowed, 20% low-value writes that are allowed,
 *   15% writes that need approval (amount at/over the threshold, or a
 *   sensitive field), 20% policy denies (unknown tenant, wrong tenant, actor
 *   not allowed, blocked destination, amount over the limit, missing reason,
 *   unknown tool, unknown environment), 10% invalid input (blank actor, an
 *   amount that is a string, fields that are not strings).
 * Each call also carries `recentDenies` for the cases that evaluate the
 * policy directly (WASM, opa bench, OPA server): 3 (escalated) on 4% of them.
 * protect() computes its own history instead (see run.mjs's clock).
 */
import { seededRandom } from "../scripts/seeded-random.mjs";

/** The generator the tests use too (scripts/seeded-random.mjs): the same seed gives the same mix. */
export { seededRandom };

export const SEED = 20240606;

/** A data document like the bundle's with `n` tenants (t000000, t000001, ...). */
export function dataWithTenants(base, n) {
  const config = structuredClone(base.veto.config);
  const tenants = {};
  for (let i = 0; i < n; i++) {
    const id = `t${String(i).padStart(6, "0")}`;
    tenants[id] = {
      ...(i % 3 === 0 ? { actors: [`agent:${id}-sales`, `agent:${id}-support`] } : {}),
      approvers: i % 17 === 5 ? [] : [`user:owner@${id}.example`, `user:revops@${id}.example`],
      approval_threshold: 1000 + (i % 50) * 500,
      max_amount: 250_000 + (i % 10) * 50_000,
    };
  }
  config.tenants = tenants;
  return { veto: { config } };
}

/**
 * `count` calls against `data` (the whole document). `argBytes`, when given,
 * pads every call's arguments with extra CRM fields (`changes` entries for
 * writes, an unknown `filter` object for reads) until its arguments' JSON is
 * about that many bytes.
 */
export function buildMix(data, { seed = SEED, count = 2000, argBytes = 0 } = {}) {
  const random = seededRandom(seed);
  const pick = (items) => items[Math.floor(random() * items.length)];
  const config = data.veto.config;
  const tenantIds = Object.keys(config.tenants);
  const toolsOf = (kind) =>
    Object.keys(config.tools)
      .filter((t) => config.tools[t].kind === kind)
      .sort();
  const reads = toolsOf("read");
  const writes = toolsOf("write").filter((t) => t !== "crm.export");
  const objects = Object.keys(config.sensitive_fields)
    .filter((o) => o !== "*")
    .sort();
  const star = config.sensitive_fields["*"] ?? [];
  const blocked = config.blocked_destinations ?? [];
  const environments = config.environments;

  const tenantPicks = () => pick(tenantIds);
  /** An actor the tenant admits: one of its actors, or one of a few agents when it lists none. */
  const actorFor = (id) => {
    const t = config.tenants[id];
    return Array.isArray(t.actors) && t.actors.length > 0
      ? pick(t.actors)
      : `agent:${pick(["sales", "support", "ops", "billing"])}-${Math.floor(random() * 8)}`;
  };
  const baseContext = (id) => ({
    actorId: actorFor(id),
    tenantId: id,
    environment: random() < 0.7 ? "production" : pick(environments),
    reason: pick(["Customer asked to move the close date", "Quarterly clean-up", "Ticket #4411"]),
    ...(random() < 0.5 ? { sourceSystem: "salesforce" } : {}),
    ...(random() < 0.5 ? { requestId: `req_${Math.floor(random() * 1e6)}` } : {}),
  });
  const threshold = (id) => config.tenants[id].approval_threshold ?? Infinity;
  const belowThreshold = (id, ctx) => {
    const t = threshold(id);
    const cap = ctx.environment === "production" && Number.isFinite(t) ? Math.max(t - 1, 0) : 5000;
    return Math.max(1, Math.floor(random() * cap));
  };
  const nonSensitiveRead = ["name", "company", "owner", "close_date", "phone_ext"];
  const nonSensitiveChange = ["close_date", "next_step", "owner", "priority", "description"];

  const kinds = [
    ["allow_read", 0.35],
    ["allow_write", 0.2],
    ["approval", 0.15],
    ["deny", 0.2],
    ["invalid", 0.1],
  ];
  const drawKind = () => {
    let r = random();
    for (const [kind, share] of kinds) {
      if (r < share) return kind;
      r -= share;
    }
    return "allow_read";
  };

  const make = {
    allow_read() {
      const id = tenantPicks();
      return {
        tool: pick(reads),
        arguments: {
          object: pick(objects),
          recordId: `rec_${Math.floor(random() * 1e5)}`,
          tenantId: id,
          fields: [pick(nonSensitiveRead), pick(nonSensitiveRead)],
        },
        context: baseContext(id),
      };
    },
    allow_write() {
      const id = tenantPicks();
      const context = baseContext(id);
      const amount = belowThreshold(id, context);
      return {
        tool: pick(writes),
        arguments: {
          object: "opportunity",
          recordId: `opp_${Math.floor(random() * 1e5)}`,
          tenantId: id,
          changes: { [pick(nonSensitiveChange)]: "next week", amount },
          amount,
        },
        context,
      };
    },
    approval() {
      // A tenant with approvers, so this is require_approval rather than no_approver.
      let id = tenantPicks();
      for (let i = 0; i < 20 && !(config.tenants[id].approvers?.length > 0); i++) id = tenantPicks();
      const context = { ...baseContext(id), environment: "production" };
      if (random() < 0.5 && Number.isFinite(threshold(id))) {
        const amount = threshold(id) + Math.floor(random() * 1000);
        return { tool: "crm.update", arguments: { object: "opportunity", recordId: "opp_9", tenantId: id, changes: { amount } }, context };
      }
      const object = pick(objects);
      const field = pick([...(config.sensitive_fields[object] ?? []), ...star]);
      return { tool: "crm.update", arguments: { object, recordId: "rec_9", tenantId: id, changes: { [field]: "new value" } }, context };
    },
    deny() {
      const id = tenantPicks();
      const call = make.allow_write();
      call.context = baseContext(id);
      call.arguments.tenantId = id;
      switch (pick(["unknown_tenant", "wrong_tenant", "actor", "destination", "over_limit", "reason", "tool", "environment"])) {
        case "unknown_tenant":
          call.context.tenantId = "umbrella-unknown";
          delete call.arguments.tenantId;
          break;
        case "wrong_tenant":
          call.arguments.tenantId = `${id}-other`;
          break;
        case "actor":
          call.context.actorId = "agent:rogue";
          break;
        case "destination":
          call.tool = "crm.export";
          call.arguments = {
            object: pick(objects),
            tenantId: id,
            destination: `https://${pick(blocked)}/raw/${Math.floor(random() * 1e4)}`,
          };
          break;
        case "over_limit": {
          const amount = (config.tenants[id].max_amount ?? 1e9) + 1 + Math.floor(random() * 1e5);
          call.arguments.changes = { amount };
          call.arguments.amount = amount;
          break;
        }
        case "reason":
          call.context.reason = "  ";
          break;
        case "tool":
          call.tool = "crm.mass_delete";
          break;
        case "environment":
          call.context.environment = "qa-sandbox";
          break;
      }
      return call;
    },
    invalid() {
      const call = make.allow_write();
      switch (pick(["blank_actor", "string_amount", "fields"])) {
        case "blank_actor":
          call.context.actorId = " ";
          break;
        case "string_amount":
          call.arguments.changes = { amount: "9000" };
          delete call.arguments.amount;
          break;
        case "fields":
          call.arguments.fields = ["name", 3];
          break;
      }
      return call;
    },
  };

  const calls = [];
  for (let i = 0; i < count; i++) {
    const kind = drawKind();
    const call = make[kind]();
    if (argBytes > 0) pad(call, argBytes, i);
    calls.push({ kind, call, recentDenies: random() < 0.04 ? 3 : Math.floor(random() * 2) });
  }
  return calls;
}

/** Pad `call.arguments` to about `bytes` bytes of JSON with plain CRM-looking fields. */
function pad(call, bytes, salt) {
  const args = call.arguments;
  const target = args.changes !== undefined && typeof args.changes === "object" ? args.changes : (args.filter = {});
  let size = JSON.stringify(args).length;
  for (let k = 0; size < bytes; k++) {
    const key = `custom_field_${k}__c`;
    const room = bytes - size - key.length - 6;
    const value = `v${salt}-${k}-`.padEnd(Math.max(1, Math.min(room, 200)), "x");
    target[key] = value;
    size += key.length + value.length + 6;
  }
}

/** The policy's input for a mix entry, as the adapter would build it. */
export function policyInput(entry) {
  return { ...entry.call, history: { recentDenies: entry.recentDenies } };
}
