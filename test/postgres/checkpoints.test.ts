/**
 * Signed checkpoints of the PostgreSQL records table, on the real server:
 * instances sharing one chain each sign with their own key, and every
 * forgery made behind the append-only triggers' back (as the table's owner
 * can) is caught by verify with the key list, naming the seq. The CLI as
 * built (node dist/cli.js).
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresRecordSink, migrate, verifyPostgresLog, postgres } from "../../adapter/postgres/index.js";
import { createVeto } from "../../adapter/index.js";
import { readSavedCheckpoint, type VerifyOptions } from "../../adapter/audit/index.js";
import { captureLogger, read, requireBundle, requireCli, write } from "../helpers/index.js";
import { ed25519, parseEntry, rechain, resign, seal } from "../helpers/checkpoint.js";
import { sampleRecord } from "../helpers/file-log.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";

const db = testDatabase();
const a = ed25519();
const b = ed25519();
const forger = ed25519();
let dir: string;

beforeAll(async () => {
  requireBundle();
  requireCli();
  dir = await mkdtemp(join(tmpdir(), "veto-pg-checkpoints-"));
});
afterAll(async () => {
  await db.dropSchemas();
  await rm(dir, { recursive: true, force: true });
});

function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("node", [requireCli(), ...args]);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

interface Row {
  seq: number;
  prev_hash: string;
  hash: string;
  type: string;
  decision_id: string;
  line: string;
}

async function rows(schema: string): Promise<Row[]> {
  const { rows } = await db.pool.query<Row & { seq: string }>(
    `SELECT seq, prev_hash, hash, type, decision_id, line FROM "${schema}".records ORDER BY seq`,
  );
  return rows.map((r) => ({ ...r, seq: Number(r.seq) }));
}

/** Replace the table's rows from seq `from` on with `lines`, behind the append-only triggers' back (as the owner can). */
async function forge(schema: string, from: number, lines: readonly string[]): Promise<void> {
  const client = await db.pool.connect();
  try {
    await client.query("BEGIN");
    await client.query(`ALTER TABLE "${schema}".records DISABLE TRIGGER records_append_only`);
    await client.query(`DELETE FROM "${schema}".records WHERE seq >= $1`, [from]);
    for (const line of lines) {
      const e = parseEntry(line);
      const isCheckpoint = "checkpoint" in e;
      await client.query(
        `INSERT INTO "${schema}".records (seq, prev_hash, hash, type, decision_id, line) VALUES ($1, $2, $3, $4, $5, $6)`,
        [
          e.seq,
          e.prev_hash,
          e.hash,
          isCheckpoint ? "checkpoint" : JSON.stringify(e["type"] ?? "").slice(1, -1),
          isCheckpoint ? "" : JSON.stringify(e["decision_id"] ?? "").slice(1, -1),
          line,
        ],
      );
    }
    await client.query(`ALTER TABLE "${schema}".records ENABLE TRIGGER records_append_only`);
    await client.query("COMMIT");
  } finally {
    client.release();
  }
}

async function migrated(prefix: string): Promise<string> {
  const schema = db.schema(prefix);
  await migrate({ connectionString: pgUrl(), schema });
  return schema;
}

/** `records` records by one sink signing with `key`, every `every`, then closed; the table's lines. */
async function signedTable(schema: string, records: number, every = 4): Promise<string[]> {
  const sink = await PostgresRecordSink.connect({ connectionString: pgUrl(), schema, checkpointKey: a.privatePem, checkpointEvery: every });
  for (let n = 1; n <= records; n++) await sink.append(sampleRecord(n));
  await sink.close();
  return (await rows(schema)).map((r) => r.line);
}

const verify = (schema: string, options: Pick<VerifyOptions, "publicKeys" | "requireCheckpointed" | "expectCheckpoint"> = {}) =>
  verifyPostgresLog({ connectionString: pgUrl(), schema }, { publicKeys: a.publicPem, ...options });

describe("checkpoints of the records table", () => {
  it("migration 003 gives the table a log id that cannot be changed", async () => {
    const schema = await migrated("logid");
    const { rows: ids } = await db.pool.query<{ log_id: string }>(`SELECT log_id FROM "${schema}".record_log`);
    expect(ids).toEqual([{ log_id: expect.stringMatching(/^[0-9a-f]{32}$/) }]);
    await expect(db.pool.query(`UPDATE "${schema}".record_log SET log_id = md5('x')`)).rejects.toThrow(/append-only/);
    await expect(db.pool.query(`DELETE FROM "${schema}".record_log`)).rejects.toThrow(/append-only/);
    await expect(db.pool.query(`INSERT INTO "${schema}".record_log (log_id) VALUES (md5('y'))`)).rejects.toThrow(/duplicate key/);
  });

  it("a sink with a key signs every N records and at close, in the chain, naming the table's log id", async () => {
    const schema = await migrated("signed");
    await signedTable(schema, 10);
    const table = await rows(schema);
    expect(table.map((r) => r.type)).toEqual(
      [...Array(4).fill("sample"), "checkpoint", ...Array(4).fill("sample"), "checkpoint", "sample", "sample", "checkpoint"].map((t) =>
        t === "sample" ? "decision" : t,
      ),
    );
    const { rows: ids } = await db.pool.query<{ log_id: string }>(`SELECT log_id FROM "${schema}".record_log`);
    for (const row of table.filter((r) => r.type === "checkpoint")) {
      expect(parseEntry(row.line)["checkpoint"]).toMatchObject({
        log_id: ids[0]?.log_id,
        seq: row.seq - 1,
        head: row.prev_hash,
        key_id: a.keyId,
      });
      expect(parseEntry(row.line)["checkpoint"]).not.toHaveProperty("segment");
    }
    expect(await verify(schema, { requireCheckpointed: true })).toMatchObject({
      ok: true,
      count: 13,
      checkpoints: {
        records: 10,
        checkpoints: 3,
        uncovered: null,
        signatures: "verified",
        last: { line: 13, checkpoint: { reason: "close" } },
      },
    });
    // Without keys: consistent, signatures unchecked; with none at all in the table, no checkpoints member.
    expect(await verifyPostgresLog({ connectionString: pgUrl(), schema })).toMatchObject({
      ok: true,
      checkpoints: { signatures: "unchecked" },
    });
  });

  it("instances sharing one chain each sign with their own key; verify takes the list of their keys", async () => {
    const schema = await migrated("shared");
    const sinks = await Promise.all(
      [a, b].map((k) => PostgresRecordSink.connect({ connectionString: pgUrl(), schema, checkpointKey: k.privateKey, checkpointEvery: 5 })),
    );
    await Promise.all(
      sinks.map(async (sink, i) => {
        for (let n = 0; n < 30; n++) await sink.append(sampleRecord(i * 100 + n));
      }),
    );
    await Promise.all(sinks.map((s) => s.close()));
    const table = await rows(schema);
    const signers = table
      .filter((r) => r.type === "checkpoint")
      .map((r) => (parseEntry(r.line)["checkpoint"] as { key_id: string }).key_id);
    expect(new Set(signers)).toEqual(new Set([a.keyId, b.keyId]));
    // No more than 5 records between checkpoints, whoever wrote them.
    let since = 0;
    for (const row of table) {
      since = row.type === "checkpoint" ? 0 : since + 1;
      expect(since).toBeLessThanOrEqual(5);
    }
    expect(await verify(schema, { publicKeys: [a.publicPem, b.publicPem], requireCheckpointed: true })).toMatchObject({
      ok: true,
      checkpoints: { records: 60 },
    });
    const firstOfB = table.find((r) => r.type === "checkpoint" && r.line.includes(b.keyId))?.seq;
    expect(await verify(schema)).toEqual({
      ok: false,
      seq: firstOfB,
      table: `${schema}.records`,
      reason: `seq ${firstOfB}: checkpoint signed by key ${b.keyId}, which is not among the public keys given`,
    });
  });

  it("postgres({ checkpointKey }): decisions and answers signed, a close checkpoint at veto.close()", async () => {
    const schema = db.schema("veto");
    const { logger } = captureLogger();
    const veto = await createVeto({
      bundle: requireBundle(),
      logger,
      store: postgres({ connectionString: pgUrl(), schema, migrate: true, records: true, checkpointKey: a.privatePem, checkpointEvery: 3 }),
    });
    for (let i = 0; i < 4; i++) await veto.protect(i % 2 === 0 ? read() : write({ amount: 100 }));
    await veto.close();
    expect((await rows(schema)).map((r) => r.type)).toEqual(["decision", "decision", "decision", "checkpoint", "decision", "checkpoint"]);
    expect(await verify(schema, { requireCheckpointed: true })).toMatchObject({ ok: true });
    await expect(
      createVeto({
        bundle: requireBundle(),
        logger,
        store: postgres({ connectionString: pgUrl(), schema, records: false, checkpointKey: a.privatePem }),
      }),
    ).rejects.toMatchObject({ code: "invalid_options", message: expect.stringContaining("needs the records in the store") });
    await expect(
      createVeto({
        bundle: requireBundle(),
        logger,
        store: postgres({ connectionString: pgUrl(), schema, records: true, checkpointKey: a.publicPem }),
      }),
    ).rejects.toMatchObject({ code: "invalid_options", message: expect.stringContaining("checkpointKey: not a usable private key") });
  });
});

describe("forgeries of the table, each caught with the key list and named by seq", () => {
  it("the tail cut at every row: a saved checkpoint catches every cut, require-checkpointed every cut not back to a checkpoint", async () => {
    const schema = await migrated("cut");
    const lines = await signedTable(schema, 7, 3);
    const saved = readSavedCheckpoint(lines.at(-1) as string);
    for (let keep = lines.length - 1; keep >= 0; keep--) {
      await forge(schema, keep + 1, []);
      const context = `cut to ${keep} rows`;
      expect(await verify(schema, { expectCheckpoint: saved }), context).toEqual({
        ok: false,
        seq: keep,
        table: `${schema}.records`,
        reason: `the log ends at seq ${keep}, below the saved checkpoint at seq ${lines.length}`,
      });
      const strict = await verify(schema, { requireCheckpointed: true });
      const signed = lines.slice(0, keep).some((l) => l.startsWith('{"checkpoint"'));
      if (keep === 0) expect(strict, context).toMatchObject({ ok: false, reason: "no signed checkpoint: the log is empty" });
      else if (!signed)
        expect(strict, context).toMatchObject({ ok: false, reason: `no signed checkpoint: none of its ${keep} entries is covered` });
      else if ((lines[keep - 1] as string).startsWith('{"checkpoint"')) expect(strict, context).toMatchObject({ ok: true });
      else
        expect(strict, context).toMatchObject({
          ok: false,
          reason: expect.stringMatching(/^seq \d+: \d+ records? after the last checkpoint \(seq \d+\), not covered by a signature$/),
        });
    }
  });

  it("the last record edited and resealed, the close checkpoint re-chained and re-signed by another key", async () => {
    const schema = await migrated("edit");
    const lines = await signedTable(schema, 5, 10);
    const n = lines.length;
    const edited = seal({ ...parseEntry(lines[n - 2] as string), tool: "crm.export" });
    await forge(schema, n - 1, [edited, lines[n - 1] as string]);
    expect(await verify(schema)).toMatchObject({ ok: false, seq: n, reason: `seq ${n}: prev_hash does not match seq ${n - 1}` });
    await forge(
      schema,
      n - 1,
      rechain([...lines.slice(0, n - 2), edited, lines[n - 1] as string], n - 2, forger.privateKey, forger.keyId).slice(n - 2),
    );
    expect(await verify(schema)).toMatchObject({
      ok: false,
      seq: n,
      reason: `seq ${n}: checkpoint signed by key ${forger.keyId}, which is not among the public keys given`,
    });
    await forge(
      schema,
      n - 1,
      rechain([...lines.slice(0, n - 2), edited, lines[n - 1] as string], n - 2, forger.privateKey, a.keyId).slice(n - 2),
    );
    expect(await verify(schema)).toMatchObject({
      ok: false,
      seq: n,
      reason: `seq ${n}: checkpoint signature does not verify with key ${a.keyId}`,
    });
  });

  it("a forged approval appended with a correct hash, and a checkpoint signed with another key over it", async () => {
    const schema = await migrated("append");
    const lines = await signedTable(schema, 3);
    const last = parseEntry(lines.at(-1) as string);
    const approval = seal({
      type: "approval",
      decision_id: "01JFORGED",
      reviewer_id: "user:attacker",
      seq: last.seq + 1,
      prev_hash: last.hash,
    });
    await forge(schema, last.seq + 1, [approval]);
    expect(await verify(schema)).toMatchObject({ ok: true, checkpoints: { uncovered: { entries: 1, line: last.seq + 1 } } });
    expect(await verify(schema, { requireCheckpointed: true })).toEqual({
      ok: false,
      seq: last.seq + 1,
      table: `${schema}.records`,
      reason: `seq ${last.seq + 1}: 1 record after the last checkpoint (seq ${last.seq}), not covered by a signature`,
    });
    const covering = seal(
      resign(
        {
          checkpoint: { ...(last["checkpoint"] as object), seq: last.seq + 1, head: parseEntry(approval).hash },
          seq: last.seq + 2,
          prev_hash: parseEntry(approval).hash,
        },
        forger.privateKey,
        forger.keyId,
      ),
    );
    await forge(schema, last.seq + 2, [covering]);
    expect(await verify(schema, { requireCheckpointed: true })).toMatchObject({
      ok: false,
      seq: last.seq + 2,
      reason: expect.stringContaining("not among the public keys given"),
    });
  });

  it("the whole table emptied; a BOM or a CR put into a row's line", async () => {
    const schema = await migrated("bytes");
    const lines = await signedTable(schema, 3);
    await db.pool.query(`ALTER TABLE "${schema}".records DISABLE TRIGGER records_append_only`);
    await db.pool.query(`UPDATE "${schema}".records SET line = E'\\uFEFF' || line WHERE seq = 2`);
    expect(await verify(schema)).toMatchObject({ ok: false, seq: 2, reason: "seq 2: byte order mark (U+FEFF) at the start of the line" });
    await db.pool.query(`UPDATE "${schema}".records SET line = substr(line, 2) || E'\\r' WHERE seq = 2`);
    expect(await verify(schema)).toMatchObject({
      ok: false,
      seq: 2,
      reason: `seq 2: carriage return (CR) at column ${(lines[1] as string).length + 1}`,
    });
    await db.pool.query(`ALTER TABLE "${schema}".records ENABLE TRIGGER records_append_only`);
    await forge(schema, 1, []);
    expect(await verify(schema)).toEqual({
      ok: false,
      seq: 0,
      table: `${schema}.records`,
      reason: "no signed checkpoint: the log is empty",
    });
  });
});

describe("veto log verify --postgres / veto log checkpoint --postgres", () => {
  it("verifies with a key list, saves a checkpoint, and holds the table to it", async () => {
    const schema = await migrated("cli");
    const lines = await signedTable(schema, 5);
    const [pubA, pubB] = [join(dir, "a.pub"), join(dir, "b.pub")];
    await writeFile(pubA, a.publicPem);
    await writeFile(pubB, b.publicPem);
    const base = ["--postgres", pgUrl(), "--schema", schema];
    // The records were written by a sink alone, with no store rows: --since
    // leaves them out of the store cross-check (forgery.test.ts covers it).
    const since = "2100-01-01T00:00:00.000Z";
    const ok = await cli([
      "log",
      "verify",
      ...base,
      "--since",
      since,
      "--public-key",
      pubB,
      "--public-key",
      pubA,
      "--require-checkpointed",
    ]);
    // 4 records, a checkpoint, 1 record, the close checkpoint.
    const close = parseEntry(lines[6] as string);
    expect(ok).toEqual({
      status: 0,
      stderr: "",
      stdout:
        `${schema}.records: 5 records and 2 checkpoints (seq 1..7), head ${close.hash}\n` +
        `${schema}.records: last checkpoint seq 7 covers seq 1..6 (close, ${(close["checkpoint"] as { time: string }).time}), key ${a.keyId}, signature verified\n` +
        `${schema}.decisions: 0 rows since ${since} match their records\n`,
    });
    const saved = join(dir, `${schema}.checkpoint`);
    const save = await cli(["log", "checkpoint", ...base, "--public-key", pubA, "--out", saved]);
    expect(save).toMatchObject({
      status: 0,
      stdout: `${schema}.records: saved the checkpoint at seq 7 (covers seq 1..6, head ${close.prev_hash}) to ${saved}\n`,
    });
    await forge(schema, 6, []);
    const cut = await cli(["log", "verify", ...base, "--public-key", pubA, "--expect-checkpoint", saved]);
    expect(cut).toEqual({
      status: 1,
      stdout: "",
      stderr: `veto: log verify failed: ${schema}.records: the log ends at seq 5, below the saved checkpoint at seq 7\n`,
    });
    const wrongKey = await cli(["log", "verify", ...base, "--public-key", pubB]);
    expect(wrongKey).toMatchObject({
      status: 1,
      stderr: expect.stringContaining(`seq 5: checkpoint signed by key ${a.keyId}, which is not among the public keys given`),
    });
  });
});
