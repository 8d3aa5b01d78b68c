/**
 * A predicted group's writes as one prepared statement (migration 016,
 * write_group; adapter/postgres/batch.ts): what the adapter sends reaches
 * the table as it was sent, and a call whose arrays disagree writes nothing.
 * On the real server, with the adapter's own argument builder.
 */
import fc from "fast-check";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeGroupStatement, writeGroupValues, type DeferredRecord } from "../../adapter/postgres/batch.js";
import { DB_NOW_MS } from "../../adapter/postgres/connection.js";
import { decisionSelectList, textArrayLiteral, toStoredDecision, type DecisionRow } from "../../adapter/postgres/decision-row.js";
import { migrate } from "../../adapter/postgres/migrations.js";
import { prepareRecord } from "../../adapter/records/chain.js";
import type { StoredDecision } from "../../adapter/history/store.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";

/** FC_SEED=<n> reproduces a failing run; fast-check prints the seed of every failure. */
const SEED = Number(process.env.FC_SEED ?? 20261202);
const db = testDatabase();
let schema: string;
let client: pg.PoolClient;

beforeAll(async () => {
  schema = db.schema("group_write");
  await migrate({ connectionString: pgUrl(), schema });
  client = await db.pool.connect();
});
afterAll(async () => {
  client.release();
  await db.dropSchemas();
});

/** Text PostgreSQL stores (no NUL, no lone surrogate), with what array input treats specially. */
const text = fc.oneof(
  fc.string({ unit: "grapheme" }).filter((t) => !t.includes("\u0000")),
  fc
    .array(fc.constantFrom('"', "\\", "{", "}", ",", " ", "'", "a", "NULL", "é", "😀", "\n", "\t", "\u001e", "\u001f"))
    .map((cs) => cs.join("")),
  fc.constantFrom("", "NULL", "null", '""', "{}", "\\\\"),
);

async function dbNow(): Promise<number> {
  const { rows } = await client.query<{ now_ms: string }>(`SELECT ${DB_NOW_MS} AS now_ms`);
  return Number(rows[0]?.now_ms);
}

/** A confirmation of no keys at the database's time (a group of decisions that name no one). */
async function noKeys(): Promise<unknown[]> {
  return [[], [], [], [], [], await dbNow(), 5000];
}

function recordFor(d: StoredDecision, note: string): DeferredRecord {
  return { prepared: prepareRecord({ type: "decision", decision_id: d.id, note }), type: "decision", decisionId: d.id };
}

async function writeGroup(values: unknown[]): Promise<void> {
  const { name, text: sql } = writeGroupStatement(schema);
  await client.query({ name, text: sql, values });
}

async function count(table: "decisions" | "records"): Promise<number> {
  const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".${table}`);
  return Number(rows[0]?.n);
}

describe("textArrayLiteral", () => {
  it(`reads back as sent, for any text and nulls (generated, seed ${SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.option(text, { nil: null }), { maxLength: 6 }), async (texts) => {
        const { rows } = await client.query<{ a: (string | null)[] }>("SELECT $1::text[] AS a", [textArrayLiteral(texts)]);
        expect(rows[0]?.a).toEqual(texts);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });
});

describe("write_group (migration 016)", () => {
  let serial = 0;
  const decision = (over: Partial<StoredDecision> = {}): StoredDecision => ({
    id: `gw-${(serial += 1)}`,
    action: "allow",
    escalated: false,
    atMs: 0,
    approvers: [],
    ...over,
  });

  it(`writes rows that read back as the decisions given (generated, seed ${SEED})`, async () => {
    const pendingApproval = fc.record({
      actorId: text,
      tenantId: text,
      approvers: fc.array(text, { maxLength: 4 }),
      recordState: fc.option(text, { nil: undefined }),
      reason: text,
    });
    await fc.assert(
      fc.asyncProperty(fc.array(pendingApproval, { minLength: 1, maxLength: 4 }), async (shapes) => {
        const confirmation = await noKeys();
        const atMs = confirmation[5] as number;
        const decisions = shapes.map((s, i) =>
          decision({
            action: i % 2 === 0 ? "require_approval" : "deny",
            actorId: s.actorId,
            tenantId: s.tenantId,
            atMs,
            // A deny that counts is numbered under its key's lock, which this test does not take.
            ...(i % 2 === 0 ? {} : { countsTowardsEscalation: false }),
            ...(i % 2 === 0
              ? {
                  callDigest: `sha256:${"0".repeat(64)}`,
                  approvers: s.approvers,
                  approval: { status: "pending" as const, expiresAtMs: atMs + 60_000 },
                  ...(s.recordState === undefined ? {} : { recordState: s.recordState }),
                  review: {
                    tool: "crm.update",
                    environment: "production",
                    arguments: { note: s.reason, nested: [s.reason, null, 1] },
                    reasons: [],
                    bundle: { revision: s.reason, hash: `sha256:${"1".repeat(64)}` },
                    recentDenies: 0,
                  } as unknown as StoredDecision["review"],
                }
              : {}),
          }),
        );
        await writeGroup(
          writeGroupValues(
            schema,
            confirmation,
            decisions.map((d) => recordFor(d, d.actorId ?? "")),
            decisions,
          ),
        );
        const lines = await client.query<{ decision_id: string; line: string }>(
          `SELECT decision_id, line FROM "${schema}".records WHERE decision_id = ANY($1::text[]) ORDER BY seq`,
          [decisions.map((d) => d.id)],
        );
        expect(lines.rows.map((r) => r.decision_id)).toEqual(decisions.map((d) => d.id));
        for (const [i, r] of lines.rows.entries()) expect((JSON.parse(r.line) as { note: unknown }).note).toBe(decisions[i]?.actorId);
        const { rows } = await client.query<DecisionRow>(
          `SELECT ${decisionSelectList()} FROM "${schema}".decisions WHERE id = ANY($1::text[])`,
          [decisions.map((d) => d.id)],
        );
        const read = new Map(rows.map((r) => [r.id, toStoredDecision(r)]));
        for (const d of decisions) expect(read.get(d.id)).toEqual(d);
      }),
      { seed: SEED, numRuns: 60 },
    );
  });

  it("writes its records in group order, each sealed after the one before", async () => {
    const confirmation = await noKeys();
    const decisions = [0, 1, 2].map(() => decision({ atMs: confirmation[5] as number }));
    const before = await count("records");
    const records = decisions.map((d, i) => recordFor(d, `"\\${i}{}`));
    await writeGroup(writeGroupValues(schema, confirmation, records, decisions));
    const { rows } = await client.query<{ seq: string; decision_id: string; prev_hash: string; hash: string; line: string }>(
      `SELECT seq, decision_id, prev_hash, hash, line FROM "${schema}".records ORDER BY seq DESC LIMIT 3`,
    );
    const written = rows.reverse();
    expect(written.map((r) => r.decision_id)).toEqual(decisions.map((d) => d.id));
    expect(written.map((r) => Number(r.seq))).toEqual([before + 1, before + 2, before + 3]);
    for (let i = 1; i < written.length; i++) expect(written[i]?.prev_hash).toBe(written[i - 1]?.hash);
    for (const [i, r] of written.entries()) {
      // Sealed by the database exactly as the adapter seals the same record (chain.ts).
      const sealed = records[i]?.prepared.seal(Number(r.seq), r.prev_hash);
      expect([r.line, r.hash]).toEqual([sealed?.text, sealed?.hash]);
      expect(JSON.parse(r.line)).toMatchObject({ note: `"\\${i}{}`, seq: Number(r.seq) });
    }
  });

  it("refuses arrays that disagree, each of its 23 (one element more, one less, null) or misshapen, and writes nothing", async () => {
    const confirmation = await noKeys();
    const decisions = [0, 1].map(() => decision({ atMs: confirmation[5] as number }));
    const records = decisions.map((d) => recordFor(d, "x"));
    const valid = writeGroupValues(schema, confirmation, records, decisions);
    // After the confirmation's seven (confirm_counts checks its own) and the chain's lock key: the
    // records' four member parts (each one text, split by write_group), types, decision ids, and a
    // row array per column.
    const arrays = valid.map((_, i) => i).filter((i) => i >= 8);
    expect(arrays).toHaveLength(23);
    const ofParts = (i: number): (string | null)[] => records.map((r) => r.prepared.parts[(i - 8) as 0 | 1 | 2 | 3]);
    const joined = (parts: (string | null)[]): string => parts.map((p) => p ?? "\u001f").join("\u001e");
    expect(valid.slice(8, 12)).toEqual([8, 9, 10, 11].map((i) => joined(ofParts(i))));
    const rowsBefore = await count("decisions");
    const recordsBefore = await count("records");
    let refused = 0;
    for (const i of arrays) {
      const v = i < 12 ? ofParts(i) : (valid[i] as unknown[]);
      const variants: unknown[] = [[...v, v[0] ?? null], v.slice(1)].map((w) => (i < 12 ? joined(w as (string | null)[]) : w));
      variants.push(null);
      // The records' types and decision ids are read by subscript: the right count in another shape is refused too.
      if (i === 12 || i === 13) variants.push(`[0:1]=${textArrayLiteral(v as string[])}`, [[v[0]], [v[1]]]);
      for (const variant of variants) {
        const values = [...valid];
        values[i] = variant;
        await expect(writeGroup(values), `argument ${i + 1}: ${JSON.stringify(variant)}`).rejects.toMatchObject({ code: "22023" });
        refused += 1;
      }
    }
    expect(refused).toBe(arrays.length * 3 + 2 * 2);
    expect(await count("decisions")).toBe(rowsBefore);
    expect(await count("records")).toBe(recordsBefore);
    // The same arguments, agreeing, are written.
    await writeGroup(valid);
    expect(await count("decisions")).toBe(rowsBefore + 2);
    expect(await count("records")).toBe(recordsBefore + 2);
  });

  it("refuses, before sending, a member part that holds the separators (canonical JSON never does)", () => {
    const d = decision();
    for (const bad of ['"note":"\u001e"', '"note":"\u001f"']) {
      const record: DeferredRecord = {
        prepared: { parts: ['"a":1', bad, null, null], seal: () => ({ seq: 0, hash: "", text: "" }) },
        type: "decision",
        decisionId: d.id,
      };
      expect(() => writeGroupValues(schema, [], [record], [d])).toThrow(/U\+001E or U\+001F/);
    }
  });

  it("runs only READ COMMITTED: under another level it refuses with VS002 and writes nothing", async () => {
    for (const level of ["REPEATABLE READ", "SERIALIZABLE"]) {
      const confirmation = await noKeys();
      const decisions = [decision({ atMs: confirmation[5] as number })];
      const values = writeGroupValues(schema, confirmation, [recordFor(decisions[0] as StoredDecision, "x")], decisions);
      const rowsBefore = await count("decisions");
      await client.query(`BEGIN ISOLATION LEVEL ${level}`);
      try {
        await expect(writeGroup(values)).rejects.toMatchObject({ code: "VS002" });
      } finally {
        await client.query("ROLLBACK");
      }
      expect(await count("decisions")).toBe(rowsBefore);
    }
  });

  it("is prepared under a name of at most 63 bytes, one per schema, however long the schema's name", () => {
    const long = "s".repeat(63);
    const names = [long, `${long.slice(0, 62)}t`, "veto"].map((x) => writeGroupStatement(x).name);
    for (const name of names) expect(Buffer.byteLength(name)).toBeLessThanOrEqual(63);
    expect(new Set(names).size).toBe(3);
  });
});
