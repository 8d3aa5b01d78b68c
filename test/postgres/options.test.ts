/**
 * Choosing the store through createVeto's options, and the same exactness
 * inside one process: concurrent protect() calls of one actor with a sink
 * that takes its time (a durable one does) each see the denies before them,
 * with the default in-memory store as with PostgreSQL.
 */
import { afterAll, describe, expect, it } from "vitest";
import { PostgresStore, postgres } from "../../adapter/postgres/index.js";
import { VetoDeniedError, VetoOptionsError, createVeto, type VetoOptions, type VetoRecord } from "../../adapter/index.js";
import { MemorySink, captureLogger, makeVeto, requireBundle, write } from "../helpers/index.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";

const db = testDatabase();
afterAll(() => db.dropSchemas());

/** Takes a millisecond per record: the window in which unserialized calls would all read the same count. */
class SlowSink extends MemorySink {
  override async write(record: VetoRecord): Promise<void> {
    await new Promise((r) => setTimeout(r, 1));
    await super.write(record);
  }
}

const DENY = write({ destination: "https://pastebin.com/x" });

async function burst(options: Partial<VetoOptions>): Promise<number[]> {
  const sink = new SlowSink();
  const { veto } = await makeVeto({ recordSink: sink, ...options });
  await Promise.all(Array.from({ length: 12 }, () => veto.protect(DENY)));
  await veto.close();
  return sink.records.map((r) => (r.type === "decision" ? (r.history?.recent_denies ?? -1) : -1));
}

describe("one process, concurrent calls of one actor", () => {
  it("in memory: 12 concurrent denies, each recorded with the count of those before it (0..11)", async () => {
    expect(await burst({})).toEqual(Array.from({ length: 12 }, (_, i) => i));
  });

  it("on PostgreSQL, through store: { postgres }: the same", async () => {
    const schema = db.schema("options");
    expect(await burst({ store: postgres({ connectionString: pgUrl(), schema, migrate: true }) })).toEqual(
      Array.from({ length: 12 }, (_, i) => i),
    );
  });
});

describe("createVeto's store option", () => {
  it("connects a PostgresStore from { postgres } and closes it with the instance; a store passed in stays open", async () => {
    const schema = db.schema("owned");
    const sessions = async (name: string): Promise<number> =>
      (await db.pool.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [name])).rows[0].n as number;
    // A backend leaves pg_stat_activity a moment after its client said goodbye.
    const allGone = async (name: string): Promise<number> => {
      for (let i = 0; i < 100 && (await sessions(name)) > 0; i++) await new Promise((r) => setTimeout(r, 20));
      return await sessions(name);
    };
    const { veto } = await makeVeto({
      store: postgres({ connectionString: pgUrl(), schema, migrate: true, pool: { application_name: "veto-owned" } }),
    });
    await veto.protect(DENY);
    expect(await sessions("veto-owned")).toBeGreaterThan(0);
    await veto.close();
    expect(await allGone("veto-owned")).toBe(0);

    const store = await PostgresStore.connect({ connectionString: pgUrl(), schema, pool: { application_name: "veto-lent" } });
    expect(await store.countRecentDenies("agent:sales-assistant", "acme", 0)).toBe(1);
    const { veto: borrowing } = await makeVeto({ store });
    await borrowing.protect(DENY);
    await borrowing.close();
    expect(await store.countRecentDenies("agent:sales-assistant", "acme", 0)).toBe(2);
    await store.close();
    expect(await allGone("veto-lent")).toBe(0);
  });

  it("refuses wrong postgres options by name, records with a recordSink, and an unmigrated schema", async () => {
    const bundle = requireBundle();
    const { logger } = captureLogger();
    const attempt = (store: unknown, extra: Partial<VetoOptions> = {}): Promise<unknown> =>
      createVeto({ bundle, logger, store: store as VetoOptions["store"], ...extra }).catch((e: unknown) => e);

    const unknownKey = await attempt(postgres({ connectionString: pgUrl(), host: "x" } as Parameters<typeof postgres>[0]));
    expect(unknownKey).toBeInstanceOf(VetoOptionsError);
    expect((unknownKey as VetoOptionsError).issues).toEqual(["host: unknown option"]);
    expect(await attempt(postgres({ connectionString: pgUrl(), schema: "no-dash" }))).toMatchObject({
      code: "invalid_options",
      message: expect.stringContaining("schema: must be a lower-case SQL identifier"),
    });
    expect(await attempt(postgres({ connectionString: pgUrl(), records: true }), { recordSink: new MemorySink() })).toMatchObject({
      code: "invalid_options",
      issues: ["store.records: cannot be used with recordSink (records would go to both)"],
    });
    expect(await attempt({ mysql: {} })).toMatchObject({
      code: "invalid_options",
      message: expect.stringContaining("store must implement VetoStore, or be a backend such as postgres({ connectionString })"),
    });
    // The object form of earlier versions is refused, naming the new one.
    expect(await attempt({ postgres: { connectionString: pgUrl() } })).toMatchObject({
      code: "invalid_options",
      issues: ['store: { postgres: {...} } is replaced by store: postgres({...}), imported from "veto-crm/postgres"'],
    });
    expect(await attempt(postgres({ connectionString: pgUrl(), schema: db.schema("never") }))).toMatchObject({
      code: "schema_not_migrated",
    });
  });
});

describe("PostgreSQL store under failure", () => {
  it("a record sink that fails for every call at once never deadlocks a small pool; every call is a stored deny", async () => {
    const schema = db.schema("sinkfail");
    const sink = new MemorySink();
    sink.failing = new Error("EIO: injected");
    const { veto } = await makeVeto({
      recordSink: sink,
      store: postgres({ connectionString: pgUrl(), schema, migrate: true, pool: { max: 2 } }),
    });
    const calls = Array.from({ length: 8 }, (_, i) => write({}, { actorId: `agent:${i}` }));
    const decisions = await Promise.all(calls.map((c) => veto.protect(c)));
    for (const d of decisions) expect([d.action, d.reasons[0]?.code]).toEqual(["deny", "record_unavailable"]);
    const { rows } = await db.pool.query(`SELECT action, count(*)::int AS n FROM "${schema}".decisions GROUP BY action`);
    expect(rows).toEqual([{ action: "deny", n: 8 }]);
    await veto.close();
  });

  it("a pool that cannot give a connection (pool.connect fails): protect denies with record_unavailable, guard throws VetoDeniedError", async () => {
    const schema = db.schema("noconn");
    const store = await PostgresStore.connect({
      connectionString: pgUrl(),
      schema,
      migrate: true,
      pool: { max: 1, connectionTimeoutMillis: 200 },
    });
    const { veto } = await makeVeto({ store });
    // The pool's only connection is taken: every unit's pool.connect times out.
    const held = await store.pool.connect();
    try {
      const d = await veto.protect(write());
      expect([d.action, d.escalated, d.reasons.map((r) => r.code), d.approvers]).toEqual(["deny", false, ["record_unavailable"], []]);
      expect(d.reason).toMatch(/timeout/i);
      const guarded = veto.guard("crm.update", () => "ran");
      const call = write();
      await expect(guarded(call["arguments"] as Record<string, unknown>, call["context"] as never)).rejects.toBeInstanceOf(VetoDeniedError);
    } finally {
      held.release();
    }
    await veto.close();
    // Closed port: nothing listens there, connect is refused.
    const closed = await PostgresStore.connect({ connectionString: pgUrl(), schema, pool: { max: 1 } });
    const refused = await makeVeto({ store: closed });
    await closed.pool.end();
    const after = await refused.veto.protect(write());
    expect(after.reasons.map((r) => r.code)).toEqual(["record_unavailable"]);
    await refused.veto.close();
    await closed.close().catch(() => {});
  });

  it("a LISTEN connection the server ends comes back, and notifications flow again", async () => {
    const schema = db.schema("relisten");
    const store = await PostgresStore.connect({
      connectionString: pgUrl(),
      schema,
      migrate: true,
      pool: { application_name: "veto-relisten" },
    });
    const other = await PostgresStore.connect({ connectionString: pgUrl(), schema });
    await store.appendDecision({
      id: "01RELISTEN",
      action: "require_approval",
      escalated: false,
      actorId: "agent:a",
      tenantId: "acme",
      atMs: 1,
      callDigest: "sha256:x",
      approvers: ["user:x"],
      approval: { status: "pending", expiresAtMs: Date.now() + 60_000 },
    });
    let woken = 0;
    const unwatch = store.watchDecision("01RELISTEN", () => (woken += 1));
    const listener = async (): Promise<number | undefined> =>
      (
        await db.pool.query<{ pid: number }>(
          "SELECT pid FROM pg_stat_activity WHERE application_name = 'veto-relisten' AND query LIKE 'LISTEN%'",
        )
      ).rows[0]?.pid;
    const until = async (check: () => Promise<boolean>, what: string): Promise<void> => {
      for (let i = 0; i < 100; i++) {
        if (await check()) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`timed out waiting for ${what}`);
    };
    await until(async () => (await listener()) !== undefined, "the LISTEN connection");
    const first = await listener();
    await db.pool.query("SELECT pg_terminate_backend($1)", [first]);
    await until(async () => ![undefined, first].includes(await listener()), "a new LISTEN connection");
    const before = woken;
    await other.transitionApproval("01RELISTEN", { from: "pending", to: "answering", reviewerId: "user:x", atMs: 2 });
    await until(async () => woken > before, "the notification");
    unwatch();
    await store.close();
    await other.close();
  });
});
