/**
 * Migrations, the PostgreSQL record sink and its verification, on the real
 * server; the CLI as built (node dist/cli.js).
 */
import { spawn } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  PostgresRecordSink,
  PostgresStore,
  defaultMigrationsDir,
  loadMigrations,
  migrate,
  verifyPostgresLog,
  postgres,
} from "../../adapter/postgres/index.js";
import { createVeto, openFileLog, type Veto } from "../../adapter/index.js";
import { ACTOR, APPROVER, captureLogger, read, requireBundle, requireCli, write } from "../helpers/index.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";

const db = testDatabase();

/** The migrations every later one builds on, by name: a later one is added, never renamed or reordered. */
const FIRST_TEN = [
  "001_store.sql",
  "002_records.sql",
  "003_decisions_guard.sql",
  "004_record_checkpoints.sql",
  "005_outage_denies.sql",
  "006_approval_review.sql",
  "007_approval_notifications.sql",
  "008_used_tokens.sql",
  "009_record_state.sql",
  "010_amended_calls.sql",
];
let dir: string;
beforeAll(async () => {
  requireBundle();
  requireCli();
  dir = await mkdtemp(join(tmpdir(), "veto-pg-records-"));
});
afterAll(async () => {
  await db.dropSchemas();
  await rm(dir, { recursive: true, force: true });
});

function cli(args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("node", [requireCli(), ...args], { env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString("utf8")));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

async function pgVeto(schema: string): Promise<Veto> {
  const { logger } = captureLogger();
  return await createVeto({
    bundle: requireBundle(),
    logger,
    approvalPollMs: 50,
    store: postgres({ connectionString: pgUrl(), schema, migrate: true, records: true }),
  });
}

describe("veto db migrate", () => {
  it("six migrators started together: one applies every migration, the others find the schema up to date", async () => {
    const schema = db.schema("migrate");
    const runs = await Promise.all(Array.from({ length: 6 }, () => cli(["db", "migrate", "--postgres", pgUrl(), "--schema", schema])));
    for (const run of runs) expect(run).toMatchObject({ status: 0, stderr: "" });
    const outputs = runs.map((r) => r.stdout).sort();
    const shipped = await loadMigrations();
    const names = shipped.map((m) => m.name);
    const latest = shipped.at(-1)!.version;
    expect(names.slice(0, 10)).toEqual(FIRST_TEN);
    expect(outputs).toEqual([
      `schema ${schema}: applied ${names.join(", ")} (version ${latest})\n`,
      ...Array.from({ length: 5 }, () => `schema ${schema}: up to date (version ${latest})\n`),
    ]);
    const { rows } = await db.pool.query(`SELECT version, name FROM "${schema}".schema_migrations ORDER BY version`);
    expect(rows).toEqual(shipped.map(({ version, name }) => ({ version, name })));
    // Taken from the environment when --postgres is not given.
    expect(await cli(["db", "migrate", "--schema", schema], { VETO_POSTGRES_URL: pgUrl() })).toMatchObject({
      status: 0,
      stdout: `schema ${schema}: up to date (version ${latest})\n`,
    });
  });

  it("needs a URL, and names an unreachable server on one line (exit 2)", async () => {
    const noUrl = await cli(["db", "migrate"], { VETO_POSTGRES_URL: "" });
    expect(noUrl.status).toBe(2);
    expect(noUrl.stderr).toMatch(/^veto: db migrate needs --postgres URL \(or VETO_POSTGRES_URL\)\n/);
    const down = await cli(["db", "migrate", "--postgres", "postgres://veto@127.0.0.1:1/veto"]);
    expect(down.status).toBe(2);
    expect(down.stderr).toMatch(/^veto: db migrate on schema veto: .*ECONNREFUSED.*\n$/);
  });

  it("a store will not start on a schema that is not migrated, nor on one whose applied migration changed", async () => {
    const schema = db.schema("unmigrated");
    await expect(PostgresStore.connect({ connectionString: pgUrl(), schema })).rejects.toMatchObject({
      code: "schema_not_migrated",
      message: expect.stringContaining(`veto db migrate --postgres URL --schema ${schema}`),
    });
    // A copy of the migrations, applied, then edited: refused by name.
    const copy = join(dir, "migrations");
    await cp(defaultMigrationsDir(), copy, { recursive: true });
    expect(await migrate({ connectionString: pgUrl(), schema, migrationsDir: copy })).toEqual({
      schema,
      applied: (await loadMigrations()).map((m) => m.name),
      version: (await loadMigrations()).at(-1)!.version,
    });

    const file = join(copy, "002_records.sql");
    await writeFile(file, `${await readFile(file, "utf8")}\n-- edited\n`);
    await expect(migrate({ connectionString: pgUrl(), schema, migrationsDir: copy })).rejects.toMatchObject({
      code: "migration_changed",
      message: expect.stringMatching(/^migration 002_records\.sql was changed after it was applied/),
    });
    // A database migrated before a comment-only fix of 001/002 (its earlier checksum recorded) is still current;
    // a checksum that is neither the file's nor a listed earlier one is refused.
    const current = db.schema("before_comment_fix");
    await migrate({ connectionString: pgUrl(), schema: current });
    // The checksum 001_store.sql had before its first comment was reworded (listed in migrations.ts).
    const earlier = "sha256:5b9032f985a43d0c5c04bca7c6f9a3c41c8eff8aa2ec90b76676b357172b8ed0";
    await db.pool.query(`UPDATE "${current}".schema_migrations SET checksum = $1 WHERE version = 1`, [earlier]);
    expect(await migrate({ connectionString: pgUrl(), schema: current })).toMatchObject({
      applied: [],
      version: (await loadMigrations()).at(-1)!.version,
    });
    await db.pool.query(`UPDATE "${current}".schema_migrations SET checksum = $1 WHERE version = 1`, [`sha256:${"0".repeat(64)}`]);
    await expect(migrate({ connectionString: pgUrl(), schema: current })).rejects.toMatchObject({ code: "migration_changed" });
    // A schema a newer release migrated (a version these files do not have): refused by the migrator and the store.
    const newer = db.schema("newer");
    const { version: known } = await migrate({ connectionString: pgUrl(), schema: newer });
    const future = known + 1;
    const futureName = `${String(future).padStart(3, "0")}_future.sql`;
    await db.pool.query(`INSERT INTO "${newer}".schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`, [
      future,
      futureName,
      `sha256:${"0".repeat(64)}`,
    ]);
    for (const attempt of [
      () => migrate({ connectionString: pgUrl(), schema: newer }),
      () => PostgresStore.connect({ connectionString: pgUrl(), schema: newer }),
    ]) {
      await expect(attempt()).rejects.toMatchObject({
        code: "schema_newer",
        message: expect.stringContaining(`is at version ${future} (${futureName}), newer than this code knows (version ${known})`),
      });
    }
    await expect(PostgresStore.connect({ connectionString: pgUrl(), schema: "Bad-Name" })).rejects.toMatchObject({
      code: "invalid_options",
    });
  });
});

describe("PostgreSQL decision records", () => {
  it("the table holds, seq for seq, exactly the lines the file log writes for the same records", async () => {
    const schema = db.schema("samelines");
    const sink = await PostgresRecordSink.connect({ connectionString: pgUrl(), schema, migrate: true });
    const log = await openFileLog(join(dir, "same.jsonl"));
    const records = [
      { type: "decision", decision_id: "01A", timestamp: "2026-03-01T09:00:00.000Z", result: { action: "allow" }, n: 1.5 },
      { type: "approval", decision_id: "01A", reviewer_id: "user:x", note: null, é: "\u2028" },
      { type: "decision", decision_id: "01B", input: { z: 1, a: [true, { b: "x" }] } },
    ];
    for (const record of records) {
      const written = await sink.append(record);
      expect(await log.write(record)).toMatchObject(written);
    }
    await log.close();
    await sink.close();
    const fileLines = (await readFile(join(dir, "same.jsonl"), "utf8")).trimEnd().split("\n");
    const { rows } = await db.pool.query<{ line: string }>(`SELECT line FROM "${schema}".records ORDER BY seq`);
    expect(rows.map((r) => r.line)).toEqual(fileLines);
  });

  it("every decision, approval and rejection lands in the chain, which verifies; the table is append-only", async () => {
    const schema = db.schema("records");
    const veto = await pgVeto(schema);
    const asked = await veto.protect(write({ amount: 9000 }));
    const asked2 = await veto.protect(write({ amount: 12000 }));
    const decisions = [asked, asked2, await veto.protect(read()), await veto.protect(write({ destination: "gmail.com" }))];
    await veto.approve({ decisionId: asked.id, reviewerId: APPROVER, note: "fine" });
    await veto.reject({ decisionId: asked2.id, reviewerId: APPROVER });
    await veto.close();

    const { rows } = await db.pool.query<{ seq: string; type: string; decision_id: string; line: string }>(
      `SELECT seq, type, decision_id, line FROM "${schema}".records ORDER BY seq`,
    );
    expect(rows.map((r) => [Number(r.seq), r.type, r.decision_id])).toEqual([
      ...decisions.map((d, i) => [i + 1, "decision", d.id]),
      [5, "approval", asked.id],
      [6, "rejection", asked2.id],
    ]);
    const approval = JSON.parse(rows[4]!.line) as Record<string, unknown>;
    expect(approval).toMatchObject({
      type: "approval",
      reviewer_id: APPROVER,
      note: "fine",
      actor_id: ACTOR,
      result: { approval: "approved" },
    });
    const result = await verifyPostgresLog({ connectionString: pgUrl(), schema });
    expect(result).toMatchObject({ ok: true, count: 6, table: `${schema}.records` });

    // The CLI says the same.
    const ok = await cli(["log", "verify", "--postgres", pgUrl(), "--schema", schema]);
    expect(ok).toEqual({
      status: 0,
      stdout: `${schema}.records: 6 records, head ${result.ok ? result.head : ""}\n${schema}.decisions: 4 rows match their records\n`,
      stderr: "",
    });

    for (const statement of [
      `UPDATE "${schema}".records SET line = line WHERE seq = 2`,
      `DELETE FROM "${schema}".records WHERE seq = 6`,
      `TRUNCATE "${schema}".records`,
    ]) {
      await expect(db.pool.query(statement)).rejects.toThrow(/^veto: records are append-only \((UPDATE|DELETE|TRUNCATE) refused\)$/);
    }
  });

  it("verify names the first record changed behind the triggers' back", async () => {
    const schema = db.schema("tamper");
    const veto = await pgVeto(schema);
    for (let i = 0; i < 4; i++) await veto.protect(write({ amount: 100 * i }));
    await veto.close();
    // The owner (or a superuser) can get around the trigger; the chain still tells.
    await db.pool.query(`ALTER TABLE "${schema}".records DISABLE TRIGGER records_append_only`);
    await db.pool.query(`UPDATE "${schema}".records SET line = replace(line, '"low_value"', '"read_only"') WHERE seq = 3`);
    expect(await verifyPostgresLog({ connectionString: pgUrl(), schema })).toEqual({
      ok: false,
      seq: 3,
      reason: "seq 3: hash mismatch",
      table: `${schema}.records`,
    });
    const failed = await cli(["log", "verify", "--postgres", pgUrl(), "--schema", schema]);
    expect(failed).toEqual({ status: 1, stdout: "", stderr: `veto: log verify failed: ${schema}.records: seq 3: hash mismatch\n` });

    // A removed record breaks the chain at the next one.
    await db.pool.query(`DELETE FROM "${schema}".records WHERE seq = 3`);
    expect(await verifyPostgresLog({ connectionString: pgUrl(), schema })).toMatchObject({
      ok: false,
      seq: 4,
      reason: "seq 4: prev_hash does not match seq 2",
    });
  });

  it("record and history commit together: when the record insert fails, the call is denied and no allow was ever stored", async () => {
    const schema = db.schema("atomic");
    const veto = await pgVeto(schema);
    await db.pool.query(`CREATE FUNCTION "${schema}".fail_insert() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'disk full (injected)'; END $$`);
    await db.pool.query(
      `CREATE TRIGGER fail_insert BEFORE INSERT ON "${schema}".records FOR EACH ROW EXECUTE FUNCTION "${schema}".fail_insert()`,
    );
    const decision = await veto.protect(read());
    expect(decision).toMatchObject({ action: "deny", reasons: [{ code: "record_unavailable" }] });
    expect(decision.reason).toContain("disk full (injected)");
    // The store holds the deny that replaced it, never the allow.
    const { rows } = await db.pool.query(`SELECT id, action FROM "${schema}".decisions`);
    expect(rows).toEqual([{ id: decision.id, action: "deny" }]);

    // An approval whose record cannot be written is refused and stays pending.
    await db.pool.query(`DROP TRIGGER fail_insert ON "${schema}".records`);
    const asked = await veto.protect(write({ amount: 9000 }));
    await db.pool.query(
      `CREATE TRIGGER fail_insert BEFORE INSERT ON "${schema}".records FOR EACH ROW EXECUTE FUNCTION "${schema}".fail_insert()`,
    );
    await expect(veto.approve({ decisionId: asked.id, reviewerId: APPROVER })).rejects.toMatchObject({ code: "record_unavailable" });
    const pending = await db.pool.query(`SELECT approval_status, reviewer_id FROM "${schema}".decisions WHERE id = $1`, [asked.id]);
    expect(pending.rows).toEqual([{ approval_status: "pending", reviewer_id: null }]);
    await veto.close();
  });
});
