/**
 * A unit in a transaction of its own (an approval's answer, a decision whose
 * key is held elsewhere, a store that does not group) appends its record
 * with `append_records` in the round trip of its next statement (adapter/
 * postgres/transaction.ts atCommit): the record chain's lock, which every
 * writer of the schema waits for, is taken only then, not while the record
 * is sealed in the process and written in round trips of its own. As the
 * adapter orders a decision's unit (its record, then its row, then COMMIT),
 * the lock is taken with the row's insert and held to the commit. Anything
 * the unit runs after the record runs after it, in order; a refused append
 * rolls the whole unit back.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStore, migrate, verifyPostgresLog } from "../../adapter/postgres/index.js";
import { recordsLockKey } from "../../adapter/postgres/connection.js";
import type { PostgresTransaction } from "../../adapter/postgres/transaction.js";
import { RecordUnavailableError, type StoredDecision } from "../../adapter/index.js";
import { requireBundle } from "../helpers/index.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";

const db = testDatabase();
beforeAll(() => {
  requireBundle();
});
afterAll(() => db.dropSchemas());

/** Whether another connection could take the record chain's lock of `schema` now. */
async function chainLockFree(schema: string): Promise<boolean> {
  const client = await db.pool.connect();
  try {
    await client.query("BEGIN");
    const { rows } = await client.query<{ got: boolean }>("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS got", [
      recordsLockKey(schema),
    ]);
    return rows[0]?.got === true;
  } finally {
    await client.query("ROLLBACK");
    client.release();
  }
}

const decision = (id: string, atMs: number): StoredDecision => ({
  id,
  action: "deny",
  escalated: false,
  atMs,
  approvers: [],
  actorId: "agent:at-commit",
  tenantId: "globex",
});

const record = (id: string, n: number): Record<string, unknown> => ({ type: "decision", decision_id: id, at_commit_test: n });

describe("PostgreSQL: a unit's record is appended with its commit", () => {
  it("the chain's lock is free until the unit's next statement; the records land in order and the chain verifies", async () => {
    const schema = db.schema("at_commit");
    await migrate({ connectionString: pgUrl(), schema });
    const store = await PostgresStore.connect({ connectionString: pgUrl(), schema });
    const sink = store.recordSink();
    try {
      for (let i = 0; i < 3; i++) {
        const id = `d-at-commit-${i}`;
        // No record sink handed to unit(): a transaction of its own, as a store that does not group runs it.
        // As the adapter orders a decision's unit (veto.ts #write): the record, the row, COMMIT; the last
        // unit writes its record just before COMMIT, as an answer whose row moved first would.
        await store.unit({ actorId: "agent:at-commit", tenantId: "globex" }, async (unit) => {
          if (i < 2) {
            await sink.writeInTransaction(unit.transaction, record(id, i) as never);
            expect(await chainLockFree(schema), `unit ${i}: the chain's lock after the record is written`).toBe(true);
            await unit.appendDecision(decision(id, unit.nowMs as number));
            expect(await chainLockFree(schema), `unit ${i}: the chain's lock once the row is inserted`).toBe(false);
          } else {
            await unit.appendDecision(decision(id, unit.nowMs as number));
            await sink.writeInTransaction(unit.transaction, record(id, i) as never);
            expect(await chainLockFree(schema), `unit ${i}: the chain's lock before the commit`).toBe(true);
          }
          await unit.commit();
        });
      }
      const { rows } = await db.pool.query<{ decision_id: string }>(`SELECT decision_id FROM "${schema}".records ORDER BY seq`);
      expect(rows.map((r) => r.decision_id)).toEqual(["d-at-commit-0", "d-at-commit-1", "d-at-commit-2"]);
      expect(await verifyPostgresLog({ connectionString: pgUrl(), schema })).toMatchObject({ ok: true, count: 3 });
    } finally {
      await sink.close();
      await store.close();
    }
  });

  it("a statement after the record runs after it; a failed append undoes the unit, decision and all", async () => {
    const schema = db.schema("at_commit_order");
    await migrate({ connectionString: pgUrl(), schema });
    const store = await PostgresStore.connect({ connectionString: pgUrl(), schema });
    const sink = store.recordSink();
    try {
      // A read after the record sees it: what was put off runs first, in the read's turn.
      const seen = await store.unit({ actorId: "agent:at-commit", tenantId: "globex" }, async (unit) => {
        await unit.appendDecision(decision("d-order", unit.nowMs as number));
        await sink.writeInTransaction(unit.transaction, record("d-order", 0) as never);
        const { rows } = await (unit.transaction as PostgresTransaction).run((c) =>
          c.query<{ decision_id: string }>(`SELECT decision_id FROM "${schema}".records`),
        );
        await unit.commit();
        return rows.map((r) => r.decision_id);
      });
      expect(seen).toEqual(["d-order"]);

      // An append the database refuses (this decision id's record twice in one commit is fine; a record the
      // records table's guard refuses is not): the commit fails, and neither the decision nor a record is there.
      await db.pool.query(
        `ALTER TABLE "${schema}".records ADD CONSTRAINT at_commit_test_refuses CHECK (line NOT LIKE '%"at_commit_test":99%')`,
      );
      await expect(
        store.unit({ actorId: "agent:at-commit", tenantId: "globex" }, async (unit) => {
          await unit.appendDecision(decision("d-refused", unit.nowMs as number));
          await sink.writeInTransaction(unit.transaction, record("d-refused", 99) as never);
          await unit.commit();
        }),
      ).rejects.toThrow(/^record not written to .*at_commit_test_refuses/);
      const { rows } = await db.pool.query<{ n: string }>(
        `SELECT (SELECT count(*) FROM "${schema}".decisions WHERE id = 'd-refused') + (SELECT count(*) FROM "${schema}".records WHERE decision_id = 'd-refused') AS n`,
      );
      expect(Number(rows[0]?.n)).toBe(0);
      // The same refusal where the production order puts it: flushed before the row's insert. Either way the
      // unit hears the sink's error, as when the record was written at once.
      await expect(
        store.unit({ actorId: "agent:at-commit", tenantId: "globex" }, async (unit) => {
          await sink.writeInTransaction(unit.transaction, record("d-refused", 99) as never);
          await unit.appendDecision(decision("d-refused", unit.nowMs as number));
          await unit.commit();
        }),
      ).rejects.toBeInstanceOf(RecordUnavailableError);
      const again = await db.pool.query<{ n: string }>(
        `SELECT (SELECT count(*) FROM "${schema}".decisions WHERE id = 'd-refused') + (SELECT count(*) FROM "${schema}".records WHERE decision_id = 'd-refused') AS n`,
      );
      expect(Number(again.rows[0]?.n)).toBe(0);
      // The connection went back healthy: the next unit commits.
      await store.unit({ actorId: "agent:at-commit", tenantId: "globex" }, async (unit) => {
        await unit.appendDecision(decision("d-after", unit.nowMs as number));
        await sink.writeInTransaction(unit.transaction, record("d-after", 1) as never);
        await unit.commit();
      });
      expect(await verifyPostgresLog({ connectionString: pgUrl(), schema })).toMatchObject({ ok: true, count: 2 });
    } finally {
      await sink.close();
      await store.close();
    }
  });
});
