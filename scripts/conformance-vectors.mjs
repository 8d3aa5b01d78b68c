#!/usr/bin/env node
// Conformance vectors shared by the TypeScript and Python adapters: calls run
// through the TypeScript adapter (createVeto with the test bundle, a fixed
// clock and a memory record sink), with what it answered: the decision, the
// digests, the masked record and the record's hash as the file log would
// seal it (seq 1 after the genesis hash). vitest re-checks the TypeScript
// side against the committed file (test/python/conformance.test.ts) and
// pytest runs the same suites through veto_crm (adapter/python/tests).
//
// What changes from run to run or with the policy's source is normalized out
// before hashing: decision ids ("<id>"; a record's links to other decisions,
// amended_from and amended_to, as "<decision N>", the Nth decision of the
// suite), the bundle's revision and hash ("<revision>", "<hash>") and the
// evaluation time (0). Everything else, the canonical JSON of the record
// included, must match byte for byte.
//
// usage: node scripts/conformance-vectors.mjs [--check]   (after make test-bundles; the adapter
// is bundled from its source with esbuild into .build, so that the internal
// resumeApproval, which the "resume" steps use, comes with the createVeto it checks)
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const VECTORS_FILE = fileURLToPath(new URL("../test/conformance/vectors.json", import.meta.url));
export const TEST_BUNDLE = fileURLToPath(new URL("../.build/test-bundles/crm.tar.gz", import.meta.url));
export const START_MS = Date.parse("2026-03-01T09:00:00.000Z");
export const STEP_MS = 1000;
const GENESIS_HASH = `sha256:${"0".repeat(64)}`;

const ACTOR = "agent:sales-assistant";
const APPROVER = "user:crm-owner@acme.example";
const ctx = (extra = {}) => ({ actorId: ACTOR, tenantId: "acme", environment: "production", reason: "Customer asked", ...extra });
const update = (args = {}, context = {}) => ({
  tool: "crm.update",
  arguments: { object: "opportunity", recordId: "opp_1", tenantId: "acme", changes: { close_date: "2026-12-01" }, ...args },
  context: ctx(context),
});
const read = (args = {}, context = {}) => ({
  tool: "crm.read",
  arguments: { object: "contact", recordId: "c_1", fields: ["name", "company"], ...args },
  context: { actorId: ACTOR, tenantId: "acme", environment: "production", ...context },
});
/** A write for globex (no actors list) by its own actor, so denies of different steps do not add up to an escalation. */
const globex = (actorId, args = {}, context = {}) => update({ tenantId: "globex", ...args }, { actorId, tenantId: "globex", ...context });
const nested = (depth) => {
  let value = "bottom";
  for (let i = 0; i < depth; i++) value = { level: value };
  return value;
};

/** A data document unlike the test bundle's (the differential test's second one). */
const ALT_DATA = {
  veto: {
    config: {
      tools: { "crm.read": { kind: "read" }, "crm.update": { kind: "write" }, "crm.odd": { kind: "other" } },
      environments: ["production", "staging"],
      tenants: {
        acme: { approvers: [APPROVER], approval_threshold: 1000 },
        globex: { actors: ["agent:a"], approvers: ["agent:a", "user:g@globex.example"], max_amount: 5000 },
      },
      sensitive_fields: { "*": ["SSN"], lead: ["email"] },
      blocked_destinations: ["example.org"],
      escalation: { deny_threshold: 2, window_seconds: 60 },
    },
  },
};

const OTHER_APPROVER = "user:revops-lead@acme.example";

/**
 * The suites: each runs its steps in order on one instance (one deny
 * history), the clock STEP_MS further at each step. A step is a call; an
 * answer ({approve|reject: N, reviewerId, note?}) to the Nth decision of the
 * suite; an amendment of it ({amend: N, reviewerId, arguments, note?}, whose
 * amended call's decision is the suite's next decision); its execution
 * ({execute: N}: waitForApproval with the decided call and timeoutMs 0); its
 * resume as the integrations resume ({resume: N}: resumeApproval with the
 * decided call and timeoutMs 0, which follows an amendment to the amended
 * call's decision and claims it once); or a change of the records' states
 * ({recordStates: {...}}, no record).
 *
 * A suite's `recordStates` gives the instance a recordState function that
 * answers by the call's arguments.recordId: a string is the state, null "no
 * state" (undefined), {throws: message} throws Error(message), {answers: v}
 * answers v (a value that is not a string). An id not listed has no state.
 */
export const SUITES = [
  {
    name: "verdicts",
    steps: [
      { call: read() },
      { call: update() },
      { call: update({ amount: 9000 }) },
      { call: update({ changes: { stage: "closed_won" } }) },
      { call: globex("agent:d1", { changes: { Stage: "closed_won", Amount: 1000001 } }) },
      { call: globex("agent:d2", {}, { reason: "   " }) },
      { call: globex("agent:d3", { destination: "https://PasteBin.com./raw" }) },
      { call: globex("agent:d4", { tenantId: "acme" }) },
      { call: globex("agent:d5", {}, { environment: "qa" }) },
      { call: { ...globex("agent:d6"), tool: "crm.merge" } },
      { call: update({}, { tenantId: "umbrella", actorId: "agent:d7" }) },
      { call: update({}, { actorId: "agent:rogue" }) },
      { call: read({ fields: ["SSN", "name"] }) },
      { call: globex("agent:d8", { changes: { refund_amount: -1000001 } }) },
      { call: update({ amount: 4999.5, changes: { discount_amount: 5000 } }) },
      { call: update({}, { tenantId: "initech", actorId: "agent:billing-bot", reason: "x" }) },
      { call: update({ amount: 2000, tenantId: "initech" }, { tenantId: "initech", actorId: "agent:billing-bot" }) },
      { call: { ...update({ destination: "ana@gmail.com" }), context: ctx({ actorId: "agent:support-triage" }) } },
      { call: { ...update({ destination: "ana@gmail.com" }), context: ctx({ actorId: "agent:support-triage" }) } },
      { call: { ...update({ destination: "ana@gmail.com" }), context: ctx({ actorId: "agent:support-triage" }) } },
      { call: { ...update(), context: ctx({ actorId: "agent:support-triage" }) } },
      { approve: 2, reviewerId: APPROVER, note: "ok" },
      { approve: 2, reviewerId: APPROVER },
      { approve: 3, reviewerId: ACTOR },
      { approve: 1, reviewerId: APPROVER },
      { approve: 3, reviewerId: "user:nobody" },
      { reject: 3, reviewerId: "user:revops-lead@acme.example" },
      {
        call: update(
          { amount: 9000 },
          { sourceSystem: "salesforce", requestId: "req_9", sessionId: "s_1", onBehalfOf: "user:ana@acme.example" },
        ),
      },
    ],
  },
  {
    name: "invalid input",
    options: { limits: { maxInputBytes: 2048, maxDepth: 12 } },
    steps: [
      { call: null },
      { call: [] },
      { call: "crm.update" },
      { call: {} },
      { call: { tool: "crm.update", arguments: {}, context: {} } },
      { call: { ...update(), history: { recentDenies: 0 } } },
      { call: { ...update(), extra: 1, more: 2 } },
      { call: { ...update(), tool: " \t " } },
      { call: update({}, { actorId: "" }) },
      { call: update({}, { actorId: "\u00a0\u2003\ufeff" }) },
      { call: update({}, { tenantId: 7 }) },
      { call: update({ amount: "9000" }) },
      { call: update({ changes: [] }) },
      { call: update({ fields: ["name", 3] }) },
      { call: update({ object: null, recordId: 5 }) },
      { call: update({ changes: { AMOUNT: "9000" } }) },
      { call: update({ changes: { Discount_Amount: null } }) },
      { call: update({ changes: { credit_amount: true, note: "x" } }) },
      { call: update({ note: nested(10) }) },
      { call: update({ note: nested(11) }) },
      { call: update({ note: "x".repeat(3000) }) },
      { call: update({ note: "é".repeat(900) }) },
      { call: update({ note: "\ud800" }) },
      { call: update({ changes: { "\udc00x": 1 } }) },
      { call: update({ meta: { constructor: 1 } }) },
      { call: update({ list: [{ prototype: true }] }) },
      { call: { tool: "crm.update", arguments: [], context: null } },
      { call: { tool: 5, arguments: "a", context: "c" } },
      { call: update({}, { reason: 9 }) },
      // A refused call's record keeps only what a valid call could carry: the optional context
      // (blank allowed) and required text within the limit and well-formed; the rest is null.
      {
        call: update(
          { amount: "9000" },
          { requestId: "req_7", sessionId: "", sourceSystem: "salesforce", onBehalfOf: "user:ana@acme.example" },
        ),
      },
      { call: update({ amount: "9000" }, { actorId: "a".repeat(2049), requestId: "r".repeat(2049) }) },
      { call: update({ amount: "9000" }, { actorId: "é".repeat(1025), tenantId: "acme\udc00", requestId: "\ud800" }) },
      { call: { ...update({ amount: "9000" }, { sessionId: "s_1" }), tool: "t".repeat(2048) } },
    ],
  },
  {
    name: "masking and canonical JSON",
    options: { recordKey: "conformance-record-key-0123456789" },
    steps: [
      { call: update({ changes: { ssn: "123-45-6789", Tax_ID: { nested: [1, 2] }, close_date: "x" } }) },
      { call: update({ changes: { stage: "closed_won", discount_pct: 5 }, meta: { ssn: ["a"], "a/b~c": { SSN: null } } }) },
      { call: update({}, { ssn: "context keys are masked too", tax_id: "t" }) },
      { call: read({ fields: ["ssn"], ssn: "argument", object: "account", billing_email: "x@y.z" }) },
      { call: update({ amount: 1e21, changes: { amount: 0.1, refund_amount: -0, credit_amount: 1e-7 } }) },
      // eslint-disable-next-line no-loss-of-precision -- more digits than a double holds, on purpose
      { call: update({ changes: { amount: 12345678901234567890, 10: 1, 2: "b", a: 1, é: 2, "\u{1F600}": 3, "\uffff": 4 } }) },
      { call: update({ note: 'quote " backslash \\ newline \n tab \t bell \u0007 del \u007f ls \u2028 emoji \u{1F600}' }) },
      { call: update({ amount: 4999.999999999999, changes: { discount_amount: 5e-324 } }) },
      { approve: 0, reviewerId: APPROVER },
    ],
  },
  {
    name: "alternative data",
    data: ALT_DATA,
    steps: [
      { call: update({ changes: { AMOUNT: 5001 } }, { actorId: "agent:a", tenantId: "globex" }) },
      { call: update({ object: "LEAD ", changes: { EMAIL: "x" } }) },
      { call: update({ changes: { amount: "x" } }, { actorId: "agent:x1" }) },
      { call: { ...update({}, { actorId: "agent:x2" }), tool: "crm.odd" } },
      { call: update({ destination: "mailto:x@EXAMPLE.ORG." }, { actorId: "agent:x3" }) },
      { call: update({ destination: "mailto:x@EXAMPLE.ORG." }, { actorId: "agent:x3" }) },
      { call: update({ changes: { ssn: 1 } }, { actorId: "agent:x3" }) },
      { call: update({ amount: 1000 }, { environment: "staging", actorId: "agent:x4" }) },
      { call: update({ amount: 1000 }, { actorId: "agent:x4" }) },
    ],
  },
  {
    name: "record state",
    recordStates: { opp_1: "v1", opp_2: null, opp_3: { throws: "CRM unavailable" }, opp_4: { answers: 7 }, opp_5: { answers: { v: 1 } } },
    steps: [
      // Bound to "v1", approved, unchanged: claimed.
      { call: update({ amount: 9000 }) },
      { approve: 0, reviewerId: APPROVER },
      { execute: 0 },
      // Changed after the approval: record_changed, recorded, unclaimed; a failing state function the same; back to "v1": claimed once.
      { call: update({ amount: 9500 }) },
      { approve: 1, reviewerId: APPROVER, note: "at v1" },
      { recordStates: { opp_1: "v2" } },
      { execute: 1 },
      { recordStates: { opp_1: { throws: "CRM unavailable" } } },
      { execute: 1 },
      { recordStates: { opp_1: null } },
      { execute: 1 },
      { recordStates: { opp_1: "v1" } },
      { execute: 1 },
      { execute: 1 },
      // A state function that fails at decision time: record_state_unavailable, not counted (history stays).
      { call: update({ amount: 9000, recordId: "opp_3" }) },
      { call: update({ amount: 9000, recordId: "opp_4" }) },
      { call: update({ amount: 9000, recordId: "opp_5" }) },
      // No state to bind: the approval runs without asking again.
      { call: update({ amount: 9000, recordId: "opp_2" }) },
      { approve: 5, reviewerId: OTHER_APPROVER },
      { execute: 5 },
      // Never asked for a call the policy allows or denies.
      { call: update({ recordId: "opp_3" }) },
      { call: update({ recordId: "opp_4", amount: 300000 }) },
      { call: update({ amount: 9000 }) },
    ],
  },
  {
    name: "amend",
    recordStates: { opp_1: "v1", opp_7: "v7" },
    steps: [
      // Still needs approval: the amender (an approver) approves the amended call; the original cannot run, the amended one runs once.
      { call: update({ amount: 9000 }) },
      { amend: 0, reviewerId: APPROVER, arguments: update({ amount: 8000 }).arguments, note: "8,000, not 9,000" },
      { execute: 0 },
      { execute: 1 },
      { execute: 1 },
      { approve: 0, reviewerId: OTHER_APPROVER },
      // Amended to a call the policy allows.
      { call: update({ amount: 9000 }) },
      { amend: 2, reviewerId: OTHER_APPROVER, arguments: update({ amount: 100 }).arguments },
      { execute: 2 },
      // Amended to a call the policy denies (over max_amount): not counted towards escalation.
      { call: update({ amount: 9000 }) },
      { amend: 4, reviewerId: APPROVER, arguments: update({ amount: 10000000 }).arguments, note: "too much" },
      { execute: 4 },
      // Amended to arguments that are not a valid call: refused with what to fix (invalid_options),
      // nothing recorded, no decision made; the approval is still pending.
      { call: update({ amount: 9000 }) },
      { amend: 6, reviewerId: APPROVER, arguments: { object: "opportunity", recordId: 7 } },
      { execute: 6 },
      // Refused: the actor, a non-approver, a second amendment, an answer after it.
      { call: update({ amount: 9000, recordId: "opp_7" }) },
      { amend: 7, reviewerId: ACTOR, arguments: update({ amount: 1 }).arguments },
      { amend: 7, reviewerId: "user:nobody", arguments: update({ amount: 1 }).arguments },
      { amend: 7, reviewerId: APPROVER, arguments: update({ amount: 7000, recordId: "opp_7" }).arguments },
      { amend: 7, reviewerId: OTHER_APPROVER, arguments: update({ amount: 6000 }).arguments },
      { reject: 7, reviewerId: OTHER_APPROVER },
      // The amended call is bound to its own record state: changed, it does not run.
      { recordStates: { opp_7: "v8" } },
      { execute: 8 },
      // The amended call, approved by its amender, cannot be amended again; it runs, the original does not.
      { call: update({ amount: 9000 }) },
      { amend: 9, reviewerId: APPROVER, arguments: update({ amount: 8500 }).arguments },
      { amend: 10, reviewerId: OTHER_APPROVER, arguments: update({ amount: 8400 }).arguments },
      { execute: 10 },
      { execute: 9 },
      // One deny was an amended call's: it does not count (recent_denies 0 in this record).
      { call: update({ amount: 9000 }) },
    ],
  },
  {
    // Resumed as the integrations resume (docs/contract.md §6, amend): an allowed amendment is claimed
    // once (its execution record by the amender), an approved one too; a second resume never runs.
    name: "amend resume",
    steps: [
      { call: update({ amount: 9000 }) },
      { amend: 0, reviewerId: OTHER_APPROVER, arguments: update({ amount: 100 }).arguments },
      { resume: 0 },
      { resume: 0 },
      { execute: 1 },
      { call: update({ amount: 9000 }) },
      { amend: 2, reviewerId: APPROVER, arguments: update({ amount: 8000 }).arguments, note: "8,000" },
      { resume: 2 },
      { resume: 2 },
      { call: update({ amount: 9000 }) },
      { amend: 4, reviewerId: APPROVER, arguments: update({ amount: 10000000 }).arguments },
      { resume: 4 },
      { resume: 4 },
      // Not yet answered: nothing runs.
      { call: update({ amount: 9000 }) },
      { resume: 6 },
      // The amended call's deny counted nothing (recent_denies 0 in this record).
      { call: update({ amount: 9000 }) },
    ],
  },
  {
    name: "amend after expiry",
    options: { approvalTtlMs: 3000 },
    steps: [
      { call: update({ amount: 9000 }) },
      { call: read() },
      { call: read() },
      { amend: 0, reviewerId: APPROVER, arguments: update({ amount: 8000 }).arguments },
      { approve: 0, reviewerId: APPROVER },
    ],
  },
];

const sha256 = (text) => `sha256:${createHash("sha256").update(text, "utf8").digest("hex")}`;

/**
 * A record with what varies from run to run (or with the policy source)
 * replaced; `ids` (decision ids in the order the suite made them) names the
 * decisions it links to.
 */
export function normalizeRecord(record, ids = []) {
  const copy = structuredClone(record);
  copy.decision_id = "<id>";
  for (const link of ["amended_from", "amended_to"]) {
    if (copy[link] !== undefined) copy[link] = `<decision ${ids.indexOf(copy[link])}>`;
  }
  copy.bundles = { crm: { revision: "<revision>", hash: "<hash>" } };
  if (copy.metrics !== undefined) copy.metrics = { timer_rego_query_eval_ns: 0 };
  return copy;
}

export function normalizeDecision(decision) {
  return { ...structuredClone(decision), id: "<id>", bundle: { revision: "<revision>", hash: "<hash>" } };
}

/** The hash a file log gives the record as its first line: sha256 of the canonical JSON of {...record, seq: 1, prev_hash: genesis}. */
export function recordHash(canonicalJson, record) {
  return sha256(canonicalJson({ ...record, seq: 1, prev_hash: GENESIS_HASH }));
}

/** Run every suite through the TypeScript adapter (`adapter`: the package's exports) and return the vectors. */
/** The state a suite's `recordStates` table gives for a call (see SUITES). */
export function recordStateOf(table, call) {
  const entry = table[call.arguments.recordId];
  if (entry === undefined || entry === null) return undefined;
  if (typeof entry === "string") return entry;
  if ("throws" in entry) throw new Error(entry.throws);
  return entry.answers;
}

export async function computeVectors(adapter, bundlePath = TEST_BUNDLE) {
  const suites = [];
  for (const suite of SUITES) {
    let nowMs = START_MS;
    const records = [];
    const sink = { write: async (record) => void records.push(structuredClone(record)) };
    const states = { ...suite.recordStates };
    const veto = await adapter.createVeto({
      bundle: bundlePath,
      ...(suite.data === undefined ? {} : { data: suite.data }),
      ...(suite.options ?? {}),
      ...(suite.recordStates === undefined ? {} : { recordState: (call) => recordStateOf(states, call) }),
      recordSink: sink,
      clock: () => nowMs,
      logger: silentLogger(),
    });
    const steps = [];
    const decisions = [];
    /** The call each decision decided (an amended call's: the original's tool and context, the amended arguments). */
    const calls = [];
    const ids = () => decisions.map((d) => d.id);
    const answerOf = (answer) => ({
      status: answer.status,
      reviewerId: answer.reviewerId,
      answeredAt: answer.answeredAt,
      note: answer.note ?? null,
    });
    for (const step of suite.steps) {
      nowMs += STEP_MS;
      const before = records.length;
      let expected;
      if ("call" in step) {
        const decision = await veto.protect(step.call);
        decisions.push(decision);
        calls.push(step.call);
        expected = { decision: normalizeDecision(decision) };
      } else if ("recordStates" in step) {
        Object.assign(states, step.recordStates);
        expected = {};
      } else if ("amend" in step) {
        const target = decisions[step.amend];
        try {
          const result = await veto.amend({
            decisionId: target.id,
            reviewerId: step.reviewerId,
            arguments: step.arguments,
            ...(step.note === undefined ? {} : { note: step.note }),
          });
          decisions.push(result.decision);
          calls.push({ tool: calls[step.amend].tool, arguments: step.arguments, context: calls[step.amend].context });
          expected = {
            amended: `<decision ${ids().indexOf(result.amended)}>`,
            decision: normalizeDecision(result.decision),
            approval: result.approval === undefined ? null : answerOf(result.approval),
          };
        } catch (error) {
          expected = { error: error.code };
        }
      } else if ("resume" in step) {
        try {
          const resumed = await adapter.resumeApproval(veto, {
            decisionId: decisions[step.resume].id,
            call: calls[step.resume],
            timeoutMs: 0,
          });
          expected = {
            ran: {
              decision: `<decision ${ids().indexOf(resumed.decisionId)}>`,
              amended_from: resumed.amended === undefined ? null : `<decision ${ids().indexOf(resumed.amended.from)}>`,
              by: resumed.amended === undefined ? null : resumed.amended.by,
              call: resumed.call,
            },
          };
        } catch (error) {
          expected = { error: error.code };
          if (error.decision !== undefined) expected.denied = `<decision ${ids().indexOf(error.decision.id)}>`;
        }
      } else if ("execute" in step) {
        try {
          expected = {
            answer: answerOf(
              await veto.waitForApproval({ decisionId: decisions[step.execute].id, call: calls[step.execute], timeoutMs: 0 }),
            ),
          };
        } catch (error) {
          expected = { error: error.code };
          if (error.amended !== undefined) {
            expected.amended = {
              decision: `<decision ${ids().indexOf(error.amended.decision.id)}>`,
              action: error.amended.decision.action,
              call: error.amended.call,
            };
          }
        }
      } else {
        const kind = "approve" in step ? "approve" : "reject";
        const target = decisions[step[kind]];
        try {
          const answer = await veto[kind]({
            decisionId: target.id,
            reviewerId: step.reviewerId,
            ...(step.note === undefined ? {} : { note: step.note }),
          });
          expected = { answer: answerOf(answer) };
        } catch (error) {
          expected = { error: error.code };
        }
      }
      const written = records.slice(before).map((record) => normalizeRecord(record, ids()));
      expected.records = written.map((record) => ({
        record,
        canonical: adapter.canonicalJson(record),
        hash: recordHash(adapter.canonicalJson, record),
      }));
      steps.push({ ...step, expected });
    }
    await veto.close();
    suites.push({
      name: suite.name,
      ...(suite.data === undefined ? {} : { data: suite.data }),
      ...(suite.options === undefined ? {} : { options: suite.options }),
      ...(suite.recordStates === undefined ? {} : { recordStates: suite.recordStates }),
      steps,
    });
  }
  return { start_ms: START_MS, step_ms: STEP_MS, suites };
}

function silentLogger() {
  const logger = {
    info() {},
    error() {},
    warn() {},
    debug() {},
    flush(cb) {
      cb?.();
    },
    child() {
      return logger;
    },
  };
  return logger;
}

export function vectorsText(vectors) {
  return `${JSON.stringify(vectors, null, 1)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { build } = await import("esbuild");
  const outfile = fileURLToPath(new URL("../.build/conformance-adapter.mjs", import.meta.url));
  await build({
    stdin: {
      contents: [
        'import * as core from "./adapter/index.ts";',
        'import * as audit from "./adapter/audit/index.ts";',
        'import { resumeApproval } from "./adapter/veto.ts";',
        "export const adapter = { ...core, ...audit, resumeApproval };",
      ].join("\n"),
      resolveDir: fileURLToPath(new URL("..", import.meta.url)),
      loader: "ts",
    },
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    packages: "external",
    outfile,
    logLevel: "warning",
  });
  const { adapter } = await import(outfile);
  const text = vectorsText(await computeVectors(adapter));
  if (process.argv.includes("--check")) {
    if (readFileSync(VECTORS_FILE, "utf8") !== text) {
      console.error(`${VECTORS_FILE} is stale: run node scripts/conformance-vectors.mjs`);
      process.exit(1);
    }
  } else {
    writeFileSync(VECTORS_FILE, text);
    console.log(`wrote ${VECTORS_FILE}`);
  }
}
