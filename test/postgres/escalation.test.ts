// What counts towards escalation (docs/contract.md §3, §9) with the
// PostgreSQL store on the real server: the same seeded model as the in-memory
// store's (test/helpers/escalation-model.ts), so an outage of the log or of the
// history never escalates an actor in a shared database either.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStore } from "../../adapter/postgres/index.js";
import { createVeto } from "../../adapter/index.js";
import { CountFaultStore, runSteps, stepArbitrary, TENANT } from "../helpers/escalation-model.js";
import { FakeClock, MemorySink, captureLogger, requireBundle } from "../helpers/index.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";

const db = testDatabase();
let schema: string;

beforeAll(async () => {
  schema = db.schema("escalation");
  const store = await PostgresStore.connect({ connectionString: pgUrl(), schema, migrate: true });
  await store.close();
});
afterAll(() => db.dropSchemas());

async function makePostgresVeto() {
  const store = new CountFaultStore(await PostgresStore.connect({ connectionString: pgUrl(), schema }));
  const sink = new MemorySink();
  const clock = new FakeClock();
  const veto = await createVeto({
    bundle: requireBundle(),
    store,
    recordSink: sink,
    clock: clock.now,
    logger: captureLogger().logger,
    approvalPollMs: 20,
  });
  return { veto, sink, clock, store };
}

describe("PostgresStore: what counts towards escalation", () => {
  it("record_unavailable and evaluation_error denies are stored uncounted; policy denies count", async () => {
    const m = await makePostgresVeto();
    try {
      const actorId = "agent:outage";
      const call = (args: Record<string, unknown>, tool = "crm.update") => ({
        tool,
        arguments: { object: "opportunity", tenantId: TENANT, ...args },
        context: { actorId, tenantId: TENANT, environment: "production", reason: "outage test" },
      });
      m.sink.failing = new Error("disk full");
      const lost = [];
      for (let i = 0; i < 3; i++) lost.push(await m.veto.protect(call({ destination: "https://pastebin.com/x" })));
      m.sink.failing = undefined;
      m.store.failCount = true;
      for (let i = 0; i < 3; i++) lost.push(await m.veto.protect(call({}, "crm.read")));
      m.store.failCount = false;
      expect(lost.map((d) => d.reasons[0]?.code)).toEqual([...Array(3).fill("record_unavailable"), ...Array(3).fill("evaluation_error")]);
      const { rows } = await db.pool.query(
        `SELECT action, counts_towards_escalation FROM "${schema}".decisions WHERE id = ANY($1) ORDER BY id`,
        [lost.map((d) => d.id)],
      );
      expect(rows).toEqual(Array(6).fill({ action: "deny", counts_towards_escalation: false }));
      const d = await m.veto.protect(call({}, "crm.read"));
      expect([d.action, d.escalated]).toEqual(["allow", false]);
      for (let i = 0; i < 3; i++) await m.veto.protect(call({ destination: "https://pastebin.com/x" }));
      expect((await m.veto.protect(call({}, "crm.read"))).escalated).toBe(true);
    } finally {
      await m.veto.close();
    }
  });

  it("seeded model: only policy denies, invalid_input and rejections count", async () => {
    const seed = Number(process.env["VETO_ESCALATION_SEED"] ?? 20260517);
    const m = await makePostgresVeto();
    let run = 0;
    let checked = 0;
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(stepArbitrary, { minLength: 1, maxLength: 30 }), async (steps) => {
          run += 1;
          // One veto and schema for every run; each run is a new actor, so its history starts empty.
          checked += await runSteps(m, `agent:pg-model-${process.pid}-${run}`, steps);
        }),
        { seed, numRuns: 20, endOnFailure: true },
      );
    } finally {
      await m.veto.close();
    }
    expect(checked).toBeGreaterThan(100);
  });
});
