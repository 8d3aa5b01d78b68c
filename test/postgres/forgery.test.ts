/**
 * The least-privilege layout of docs/postgres.md, applied exactly as written
 * to the real server, and what someone holding the instances' credentials
 * (or the owner's, getting around the triggers) can forge in the store, and
 * who catches it: the database itself, the waiter (docs/contract.md §9 "An
 * approval is its record"), or `veto log verify --postgres`.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import fc from "fast-check";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GENESIS_HASH } from "../../adapter/records/chain.js";
import { sealRecord } from "../../adapter/records/chain.js";
import { ApprovalError, createVeto, type Decision, type Veto } from "../../adapter/index.js";
import {
  crossCheckPostgresStore,
  migrate,
  PostgresNotificationLedger,
  PostgresStore,
  verifyPostgresLog,
  postgres,
} from "../../adapter/postgres/index.js";
import { ACTOR, APPROVER, OTHER_APPROVER, ROOT, captureLogger, read, requireBundle, requireCli, runCli, write } from "../helpers/index.js";
import { freshSchemaName, pgUrl } from "../helpers/postgres.js";

const SEED = Number(process.env.FC_SEED ?? 20260301);
const NEEDS_APPROVAL = write({ amount: 9000 });
const INTERN = "user:intern@acme.example";
const TAG = `${process.pid}_${Date.now().toString(36)}`;
const ROLES = { owner: `veto_owner_${TAG}`, instance: `veto_instance_${TAG}`, auditor: `veto_auditor_${TAG}` };
type Role = keyof typeof ROLES;

/** The two SQL blocks of docs/postgres.md "Least privilege", as written there. */
function documentedSql(name: "roles" | "grants"): string {
  const doc = readFileSync(resolve(ROOT, "docs/postgres.md"), "utf8");
  const match = new RegExp(`<!-- sql: ${name} -->\\n\`\`\`sql\\n([\\s\\S]*?)\`\`\``).exec(doc);
  if (match === null) throw new Error(`docs/postgres.md has no "<!-- sql: ${name} -->" block`);
  return match[1]!;
}

/** Only the names change: this run's roles, the test schema and database. */
function forTest(sql: string, schema: string, database: string): string {
  return sql
    .replace(/\bveto_(owner|instance|auditor)\b/g, (_m, role: Role) => ROLES[role])
    .replace(/\bSCHEMA veto\b/g, `SCHEMA ${schema}`)
    .replace(/\bveto\./g, `${schema}.`)
    .replace(/\bDATABASE crm\b/g, `DATABASE "${database}"`);
}

function urlAs(role: Role): string {
  const url = new URL(pgUrl());
  url.username = ROLES[role];
  url.password = "";
  return url.toString();
}

const admin = new pg.Pool({ connectionString: pgUrl(), max: 2 });
admin.on("error", () => {});
const pools = new Map<Role, pg.Pool>();
function as(role: Role): pg.Pool {
  let pool = pools.get(role);
  if (pool === undefined) {
    pool = new pg.Pool({ connectionString: urlAs(role), max: 2 });
    pool.on("error", () => {});
    pools.set(role, pool);
  }
  return pool;
}

let database = "";
const schemas: string[] = [];

beforeAll(async () => {
  requireBundle();
  requireCli();
  database = (await admin.query<{ db: string }>("SELECT current_database() AS db")).rows[0]!.db;
  await admin.query(forTest(documentedSql("roles"), "unused", database));
});

afterAll(async () => {
  for (const pool of pools.values()) await pool.end();
  for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  const all = Object.values(ROLES).join(", ");
  await admin.query(`DROP OWNED BY ${all}`);
  await admin.query(`DROP ROLE ${all}`);
  await admin.end();
});

/** A schema migrated by the owner and granted as the documentation says. */
async function layout(prefix: string): Promise<string> {
  const schema = freshSchemaName(prefix);
  schemas.push(schema);
  await migrate({ connectionString: urlAs("owner"), schema });
  await as("owner").query(forTest(documentedSql("grants"), schema, database));
  return schema;
}

/** An application instance, connected as veto_instance. */
async function instance(schema: string): Promise<{ veto: Veto; logLines: Record<string, unknown>[] }> {
  const { logger, lines } = captureLogger();
  const veto = await createVeto({
    bundle: requireBundle(),
    logger,
    approvalPollMs: 25,
    store: postgres({ connectionString: urlAs("instance"), schema, records: true }),
  });
  return { veto, logLines: lines };
}

/** Run statements as the owner with the decisions table's triggers off: someone who got around the guards. */
async function aroundTheGuard(schema: string, ...statements: [string, unknown[]?][]): Promise<void> {
  const client = await as("owner").connect();
  try {
    await client.query("BEGIN");
    await client.query(`ALTER TABLE "${schema}".decisions DISABLE TRIGGER USER`);
    for (const [sql, values] of statements) await client.query(sql, values);
    await client.query(`ALTER TABLE "${schema}".decisions ENABLE TRIGGER USER`);
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK");
    throw error;
  } finally {
    client.release();
  }
}

/** `veto log verify --postgres` as the auditor. */
function verifyCli(schema: string, ...extra: string[]): { status: number | null; stdout: string; stderr: string } {
  return runCli(["log", "verify", "--postgres", urlAs("auditor"), "--schema", schema, ...extra]);
}

async function refused(role: Role, sql: string, values: unknown[] = []): Promise<string> {
  const error = await as(role)
    .query(sql, values)
    .then(
      () => undefined,
      (e: unknown) => e as { code?: string; message: string },
    );
  expect(error, `${role}: ${sql}`).toBeDefined();
  expect(error!.code, `${role}: ${sql}: ${error!.message}`).toBe("42501");
  return error!.message;
}

async function refusal(promise: Promise<unknown>): Promise<ApprovalError> {
  const error = await promise.then(
    () => {
      throw new Error("expected a refusal");
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApprovalError);
  return error as ApprovalError;
}

/** Append `record` to the chain as the instance role can: correctly linked to the tail. */
async function appendChained(schema: string, record: Record<string, unknown>, link = true): Promise<number> {
  const { rows } = await as("instance").query<{ seq: string; hash: string }>(
    `SELECT seq, hash FROM "${schema}".records ORDER BY seq DESC LIMIT 1`,
  );
  const seq = Number(rows[0]?.seq ?? 0) + 1;
  const prev = link ? (rows[0]?.hash ?? GENESIS_HASH) : `sha256:${"1".repeat(64)}`;
  const sealed = sealRecord(record, seq, prev);
  await as("instance").query(
    `INSERT INTO "${schema}".records (seq, prev_hash, hash, type, decision_id, line) VALUES ($1, $2, $3, $4, $5, $6)`,
    [seq, prev, sealed.hash, record["type"], record["decision_id"], sealed.text],
  );
  return seq;
}

/** An approval record as the adapter would write it for `decision`, by `reviewerId` at `atMs`. */
async function forgedApproval(schema: string, decision: Decision, reviewerId: string, atMs: number): Promise<Record<string, unknown>> {
  const { rows } = await admin.query<{ line: string }>(
    `SELECT line FROM "${schema}".records WHERE decision_id = $1 AND type = 'decision'`,
    [decision.id],
  );
  const made = JSON.parse(rows[0]!.line) as Record<string, unknown>;
  return {
    type: "approval",
    decision_id: decision.id,
    timestamp: new Date(atMs).toISOString(),
    path: made["path"],
    bundles: made["bundles"],
    actor_id: made["actor_id"],
    tenant_id: made["tenant_id"],
    call_digest: made["call_digest"],
    reviewer_id: reviewerId,
    note: null,
    result: { approval: "approved" },
  };
}

const answerSql = (schema: string): [string, string] => [
  `UPDATE "${schema}".decisions SET approval_status = 'answering', reviewer_id = $2 WHERE id = $1 AND approval_status = 'pending'`,
  `UPDATE "${schema}".decisions SET approval_status = 'approved', answered_at_ms = $3 WHERE id = $1 AND reviewer_id = $2`,
];

describe("the least-privilege layout of docs/postgres.md, applied as written", () => {
  it("the adapter works under it; the instance cannot change or remove records or rows, nor alter the tables; the auditor only reads", async () => {
    const schema = await layout("lp");
    const { veto } = await instance(schema);
    const asked = await veto.protect(NEEDS_APPROVAL);
    const asked2 = await veto.protect(write({ amount: 12000 }));
    expect([asked.action, asked2.action]).toEqual(["require_approval", "require_approval"]);
    expect((await veto.protect(read())).action).toBe("allow");
    expect((await veto.protect(write({ destination: "gmail.com" }))).action).toBe("deny");
    const waiting = veto.waitForApproval({ decisionId: asked.id });
    await veto.approve({ decisionId: asked.id, reviewerId: APPROVER });
    await expect(waiting).resolves.toMatchObject({ status: "approved", reviewerId: APPROVER });
    await veto.reject({ decisionId: asked2.id, reviewerId: OTHER_APPROVER });
    await veto.close();

    const t = `"${schema}"`;
    for (const sql of [
      `UPDATE ${t}.records SET line = line`,
      `DELETE FROM ${t}.records`,
      `TRUNCATE ${t}.records`,
      `DELETE FROM ${t}.decisions`,
      `TRUNCATE ${t}.decisions`,
      `CREATE TABLE ${t}.shadow (x int)`,
      `ALTER TABLE ${t}.decisions DISABLE TRIGGER decisions_guard`,
      `ALTER TABLE ${t}.records DISABLE TRIGGER records_append_only`,
      `DROP TRIGGER decisions_guard ON ${t}.decisions`,
      `INSERT INTO ${t}.schema_migrations (version, name, checksum) VALUES (99, 'x', 'x')`,
    ]) {
      await refused("instance", sql);
    }
    for (const sql of [
      `INSERT INTO ${t}.records (seq, prev_hash, hash, type, decision_id, line) VALUES (99, 'x', 'x', 'x', 'x', 'x')`,
      `UPDATE ${t}.decisions SET note = 'x'`,
      `DELETE FROM ${t}.decisions`,
      `UPDATE ${t}.records SET line = line`,
    ]) {
      await refused("auditor", sql);
    }
    // The append-only triggers hold for the owner too.
    await expect(as("owner").query(`DELETE FROM ${t}.records`)).rejects.toThrow(/append-only \(DELETE refused\)/);

    // The auditor verifies: the chain, then the store against it.
    const verified = verifyCli(schema);
    expect(verified).toMatchObject({ status: 0, stderr: "" });
    expect(verified.stdout).toMatch(
      new RegExp(`^${schema}\\.records: 6 records, head sha256:[0-9a-f]{64}\\n${schema}\\.decisions: 4 rows match their records\\n$`),
    );
  });

  it("the approval service works under it too: a sign-in link is spent once, a notification claimed once and settled", async () => {
    const schema = await layout("lp_service");
    const { veto } = await instance(schema);
    const asked = await veto.protect(NEEDS_APPROVAL);
    await veto.close();
    const store = await PostgresStore.connect({ connectionString: urlAs("instance"), schema });
    try {
      const until = (await store.now()) + 600_000;
      expect(await store.useToken("sign-in link:lp-1", until)).toBe(true);
      expect(await store.useToken("sign-in link:lp-1", until)).toBe(false);
      const ledgers = [new PostgresNotificationLedger(store), new PostgresNotificationLedger(store)];
      expect(await ledgers[0]!.claim(asked.id)).toBe(true);
      expect(await ledgers[1]!.claim(asked.id)).toBe(false);
      await ledgers[0]!.settle(asked.id, true);
      const { rows } = await as("owner").query(`SELECT delivered FROM "${schema}".approval_notifications`);
      expect(rows).toEqual([{ delivered: true }]);
    } finally {
      await store.close();
    }
    // Nothing else of the instance's rights grew: rows and records still cannot be deleted.
    await refused("instance", `DELETE FROM "${schema}".decisions`);
    await refused("instance", `DELETE FROM "${schema}".records`);
  });

  it("the decisions guard refuses, for the instance role, every change the adapter never makes", async () => {
    const schema = await layout("guard");
    const { veto } = await instance(schema);
    const denied = await veto.protect(write({ destination: "gmail.com" }));
    const allowed = await veto.protect(read());
    const rejected = await veto.protect(NEEDS_APPROVAL);
    await veto.reject({ decisionId: rejected.id, reviewerId: APPROVER });
    const pending = await veto.protect(write({ amount: 12000 }));
    await veto.close();
    const t = `"${schema}".decisions`;
    const hourAgo = Date.now() - 3_600_000;
    for (const [sql, values] of [
      [`UPDATE ${t} SET at_ms = $2 WHERE id = $1`, [denied.id, hourAgo]],
      [`UPDATE ${t} SET actor_id = 'agent:someone-else' WHERE id = $1`, [denied.id]],
      [`UPDATE ${t} SET action = 'allow' WHERE id = $1`, [denied.id]],
      [`UPDATE ${t} SET call_digest = 'sha256:x' WHERE id = $1`, [pending.id]],
      [`UPDATE ${t} SET approvers = array_append(approvers, '${INTERN}') WHERE id = $1`, [pending.id]],
      [`UPDATE ${t} SET expires_at_ms = expires_at_ms + 86400000 WHERE id = $1`, [pending.id]],
      [`UPDATE ${t} SET approval_status = 'approved', reviewer_id = '${APPROVER}', answered_at_ms = 1 WHERE id = $1`, [pending.id]],
      [`UPDATE ${t} SET approval_status = 'pending', reviewer_id = NULL, answered_at_ms = NULL WHERE id = $1`, [rejected.id]],
      [`UPDATE ${t} SET answered_at_ms = $2 WHERE id = $1`, [rejected.id, hourAgo]],
      [`UPDATE ${t} SET reviewer_id = '${OTHER_APPROVER}' WHERE id = $1`, [rejected.id]],
      [
        `UPDATE ${t} SET action = 'deny', approvers = '{}', approval_status = NULL, expires_at_ms = NULL, reviewer_id = NULL, note = NULL, answered_at_ms = NULL WHERE id = $1`,
        [rejected.id],
      ],
      [
        `INSERT INTO ${t} (id, action, escalated, at_ms, call_digest, approvers, approval_status, expires_at_ms, reviewer_id, answered_at_ms)
        VALUES ('01FORGED', 'require_approval', false, 1, 'sha256:x', '{}', 'approved', 2, 'x', 1)`,
        [],
      ],
      // Answering in two steps, as the adapter does, but with no approval record: refused where records are kept.
      [answerSql(schema).join("; ").replaceAll("$1", `'${pending.id}'`).replaceAll("$2", `'${APPROVER}'`).replaceAll("$3", "1"), []],
    ] as [string, unknown[]][]) {
      await refused("instance", sql, values);
    }
    const { rows } = await admin.query(`SELECT id, action, at_ms::bigint, approval_status FROM ${t} ORDER BY id`);
    expect(rows.map((r: { id: string }) => r.id)).toEqual([denied.id, allowed.id, rejected.id, pending.id].sort());
    expect(verifyCli(schema).status).toBe(0);
  });
});

describe("an answer and its record", () => {
  it("commit together: when the answer's update fails after its record was written, neither is there", async () => {
    const schema = await layout("answer_atomic");
    const { veto } = await instance(schema);
    const asked = await veto.protect(NEEDS_APPROVAL);
    await admin.query(`CREATE FUNCTION "${schema}".fail_answer() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'answer lost (injected)'; END $$`);
    await admin.query(`CREATE TRIGGER fail_answer BEFORE UPDATE ON "${schema}".decisions FOR EACH ROW
      WHEN (NEW.approval_status = 'approved') EXECUTE FUNCTION "${schema}".fail_answer()`);
    await expect(veto.approve({ decisionId: asked.id, reviewerId: APPROVER })).rejects.toMatchObject({
      code: "record_unavailable",
      message: expect.stringContaining("answer lost (injected)"),
    });
    const records = await admin.query(`SELECT type FROM "${schema}".records WHERE decision_id = $1 ORDER BY seq`, [asked.id]);
    expect(records.rows).toEqual([{ type: "decision" }]);
    const row = await admin.query(`SELECT approval_status, reviewer_id FROM "${schema}".decisions WHERE id = $1`, [asked.id]);
    expect(row.rows).toEqual([{ approval_status: "pending", reviewer_id: null }]);
    await admin.query(`DROP TRIGGER fail_answer ON "${schema}".decisions`);
    await veto.approve({ decisionId: asked.id, reviewerId: APPROVER });
    await expect(veto.waitForApproval({ decisionId: asked.id })).resolves.toMatchObject({ status: "approved" });
    await veto.close();
    expect(verifyCli(schema).status).toBe(0);
  });
});

describe("forgeries, and who catches them", () => {
  it("an approval written into the row without its record: the waiter refuses it (approval_unverified) and verify names it", async () => {
    for (const reviewer of [INTERN, APPROVER]) {
      const schema = await layout("forge_update");
      const { veto, logLines } = await instance(schema);
      const asked = await veto.protect(NEEDS_APPROVAL);
      const waiting = refusal(veto.waitForApproval({ decisionId: asked.id }));
      const [reserve, approve] = answerSql(schema);
      // The instance role: refused by the database.
      await as("instance").query(reserve, [asked.id, reviewer]);
      const message = await refused("instance", approve, [asked.id, reviewer, Date.now()]);
      expect(message).toBe(`veto: decision ${asked.id} cannot be approved without its approval record by ${reviewer}`);
      // Someone who got around the trigger: the waiter still refuses.
      await aroundTheGuard(schema, [approve, [asked.id, reviewer, Date.now()]]);
      const e = await waiting;
      expect(e.code).toBe("approval_unverified");
      expect(e.message).toContain(
        reviewer === INTERN ? `approved by ${INTERN}, who is not among its approvers` : `no approval record by ${APPROVER}`,
      );
      expect(logLines).toContainEqual(
        expect.objectContaining({ msg: "approval refused: the records do not back it", decision_id: asked.id }),
      );
      // guard, on the same kind of forgery, never runs the tool.
      let ran = false;
      const guarded = veto.guard("crm.update", () => {
        ran = true;
      });
      const running = guarded(NEEDS_APPROVAL["arguments"] as Record<string, unknown>, NEEDS_APPROVAL["context"] as never).catch(
        (x: unknown) => x,
      );
      let id: string | undefined;
      for (let i = 0; i < 200 && id === undefined; i++) {
        const { rows } = await admin.query<{ id: string }>(`SELECT id FROM "${schema}".decisions WHERE approval_status = 'pending'`);
        id = rows[0]?.id;
        if (id === undefined) await new Promise((r) => setTimeout(r, 10));
      }
      await aroundTheGuard(schema, [reserve, [id, reviewer]], [approve, [id, reviewer, Date.now()]]);
      expect(await running).toMatchObject({ code: "approval_unverified" });
      expect(ran).toBe(false);
      await veto.close();

      const failed = verifyCli(schema);
      expect(failed.status).toBe(1);
      expect(failed.stderr).toContain(`veto: ${schema}: decision ${asked.id}: approved by ${reviewer}, but `);
      expect(failed.stderr).toContain(`veto: ${schema}: decision ${id}: approved by ${reviewer}, but `);
      expect(failed.stderr).toMatch(
        new RegExp(`veto: log verify failed: ${schema}\\.decisions: 2 mismatches between the store and its records\\n$`),
      );
    }
  });

  it("deny times moved back reset escalation: the instance role is refused, and verify names every moved deny", async () => {
    const schema = await layout("forge_time");
    const { veto } = await instance(schema);
    const actor = "agent:noisy";
    const blocked = write({ destination: "gmail.com" }, { actorId: actor });
    const denies = [await veto.protect(blocked), await veto.protect(blocked), await veto.protect(blocked)];
    expect((await veto.protect(blocked)).escalated).toBe(true);
    const move = `UPDATE "${schema}".decisions SET at_ms = at_ms - 86400000 WHERE actor_id = $1`;
    await refused("instance", move, [actor]);
    await aroundTheGuard(schema, [move, [actor]]);
    // Escalation was reset by it...
    const after = await veto.protect(blocked);
    expect(after.escalated).toBe(false);
    await veto.close();
    // ... and verify names every moved deny (the four before, not the one after).
    const checked = await crossCheckPostgresStore({ connectionString: urlAs("auditor"), schema });
    expect(checked.ok).toBe(false);
    const named = checked.ok ? [] : checked.mismatches.map((m) => m.decisionId);
    expect(named.sort()).toEqual([...denies.map((d) => d.id), expect.any(String)].sort());
    expect(named).not.toContain(after.id);
    const failed = verifyCli(schema);
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain(`decision ${denies[0]!.id}: the row differs from its decision record in time (row `);
  });

  it("denies taken out of the count reset escalation: every role is refused, and verify names every one", async () => {
    const schema = await layout("forge_count");
    const { veto } = await instance(schema);
    const actor = "agent:uncounted";
    const blocked = write({ destination: "gmail.com" }, { actorId: actor });
    const denies = [await veto.protect(blocked), await veto.protect(blocked), await veto.protect(blocked)];
    const escalated = await veto.protect(blocked);
    expect(escalated.escalated).toBe(true);
    const t = `"${schema}".decisions`;
    const uncount = `UPDATE ${t} SET counts_towards_escalation = false WHERE actor_id = $1`;
    // Neither plainly, nor dressed as the deny that replaces a decision whose record could not be written
    // (its record answers blocked_destination, not record_unavailable), nor by the owner with the triggers on.
    await refused("instance", uncount, [actor]);
    await refused("instance", `UPDATE ${t} SET counts_towards_escalation = false, escalated = false WHERE id = $1`, [escalated.id]);
    await refused("owner", uncount, [actor]);
    await aroundTheGuard(schema, [uncount, [actor]]);
    // Escalation was reset by it...
    const after = await veto.protect(blocked);
    expect(after.escalated).toBe(false);
    // ... a row that does not count never starts counting again ...
    await refused("instance", `UPDATE ${t} SET counts_towards_escalation = true WHERE id = $1`, [denies[0]!.id]);
    // ... while the adapter's own replacement of a pending approval is taken, its record committed or not
    // (the answer to a COMMIT that committed can be lost): nothing counted is removed by it.
    const pending = await veto.protect(NEEDS_APPROVAL);
    expect(pending.action).toBe("require_approval");
    await as("instance").query(
      `UPDATE ${t} SET action = 'deny', approvers = '{}', approval_status = NULL, expires_at_ms = NULL, review = NULL,
         counts_towards_escalation = false WHERE id = $1`,
      [pending.id],
    );
    await veto.close();
    // ... and verify names every deny taken out, not the one after.
    const checked = await crossCheckPostgresStore({ connectionString: urlAs("auditor"), schema });
    expect(checked.ok).toBe(false);
    const named = checked.ok ? [] : checked.mismatches.map((m) => m.decisionId);
    expect(named.sort()).toEqual([...denies, escalated, pending].map((d) => d.id).sort());
    const failed = verifyCli(schema);
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain(
      `decision ${denies[0]!.id}: the deny does not count towards escalation, but its decision record is a deny that counts`,
    );
  });

  it("deny rows deleted reset escalation: only the owner can, and verify names every deny record left without its row", async () => {
    const schema = await layout("forge_delete");
    const { veto } = await instance(schema);
    const actor = "agent:erased";
    const blocked = write({ destination: "gmail.com" }, { actorId: actor });
    const denies = [await veto.protect(blocked), await veto.protect(blocked), await veto.protect(blocked)];
    const erase = `DELETE FROM "${schema}".decisions WHERE actor_id = $1`;
    await refused("instance", erase, [actor]);
    await as("owner").query(erase, [actor]);
    const after = await veto.protect(blocked);
    expect(after.escalated).toBe(false);
    await veto.close();
    const checked = await crossCheckPostgresStore({ connectionString: urlAs("auditor"), schema });
    expect(checked).toMatchObject({ ok: false, total: 3 });
    if (!checked.ok) {
      expect(checked.mismatches.map((m) => m.decisionId)).toEqual(denies.map((d) => d.id));
      expect(checked.mismatches[0]!.problem).toMatch(
        /^decision record \(deny\) at .* has no row in .*: a deny escalation no longer counts$/,
      );
    }
    const failed = verifyCli(schema);
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain(`decision ${denies[2]!.id} (record seq 3): decision record (deny) at`);
    // A retention horizon after them leaves them out (the rows after it still match).
    expect(verifyCli(schema, "--since", new Date(Date.parse(after.timestamp)).toISOString())).toMatchObject({ status: 0 });
    expect(verifyCli(schema, "--since", "last tuesday")).toMatchObject({ status: 2 });
  });

  it("an answer record forged into the chain without its row, or for no decision: verify names it; the wait goes on", async () => {
    const schema = await layout("forge_record");
    const { veto } = await instance(schema);
    const asked = await veto.protect(NEEDS_APPROVAL);
    const seq = await appendChained(schema, await forgedApproval(schema, asked, APPROVER, Date.now()));
    const ghost = { ...(await forgedApproval(schema, asked, APPROVER, Date.now())), decision_id: "01GHOSTDECISION" };
    const ghostSeq = await appendChained(schema, ghost);
    expect(await verifyPostgresLog({ connectionString: urlAs("auditor"), schema })).toMatchObject({ ok: true });
    expect((await refusal(veto.waitForApproval({ decisionId: asked.id, timeoutMs: 200 }))).code).toBe("approval_timeout");
    const failed = verifyCli(schema);
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain(`decision ${asked.id}: the records hold approval by ${APPROVER} (seq ${seq}), but the row is pending`);
    expect(failed.stderr).toContain(`decision 01GHOSTDECISION (record seq ${ghostSeq}): approval record by ${APPROVER} at`);
    await veto.close();
  });

  it("an approval record that does not chain does not back an approval, even with the guard got around", async () => {
    const schema = await layout("forge_unlinked");
    const { veto } = await instance(schema);
    const asked = await veto.protect(NEEDS_APPROVAL);
    const atMs = Date.now();
    await appendChained(schema, await forgedApproval(schema, asked, APPROVER, atMs), false);
    const [reserve, approve] = answerSql(schema);
    await as("instance").query(reserve, [asked.id, APPROVER]);
    await as("instance").query(approve, [asked.id, APPROVER, atMs]);
    const e = await refusal(veto.waitForApproval({ decisionId: asked.id }));
    expect(e.code).toBe("approval_unverified");
    expect(e.message).toContain(`no approval record by ${APPROVER}`);
    expect(verifyCli(schema).stderr).toMatch(/prev_hash does not match seq 1/);
    await veto.close();
  });

  it("a chained approval record forged together with its row passes every check here: only signed checkpoints show it (documented limit)", async () => {
    const schema = await layout("forge_both");
    const { veto } = await instance(schema);
    const asked = await veto.protect(NEEDS_APPROVAL);
    const atMs = Date.now();
    await appendChained(schema, await forgedApproval(schema, asked, APPROVER, atMs));
    const [reserve, approve] = answerSql(schema);
    await as("instance").query(reserve, [asked.id, APPROVER]);
    await as("instance").query(approve, [asked.id, APPROVER, atMs]);
    await expect(veto.waitForApproval({ decisionId: asked.id })).resolves.toMatchObject({ status: "approved", reviewerId: APPROVER });
    expect(verifyCli(schema).status).toBe(0);
    await veto.close();
  });
});

describe(`any one fact of a row changed behind the guard's back (seed ${SEED})`, () => {
  it("is refused to the instance role, and named by verify until it is put back", async () => {
    const schema = await layout("forge_gen");
    const { veto } = await instance(schema);
    const made: Decision[] = [];
    for (const call of [
      read(),
      write({ destination: "gmail.com" }),
      NEEDS_APPROVAL,
      write({ amount: 12000 }),
      write({ amount: 15000 }),
      write({ amount: 100 }),
    ]) {
      made.push(await veto.protect(call));
    }
    await veto.approve({ decisionId: made[2]!.id, reviewerId: APPROVER, note: "ok" });
    await veto.reject({ decisionId: made[3]!.id, reviewerId: OTHER_APPROVER });
    await veto.close();
    expect(verifyCli(schema).status).toBe(0);
    const t = `"${schema}".decisions`;
    type Row = Record<string, unknown> & { id: string; action: string; approval_status: string | null };
    const rows = (await admin.query<Row>(`SELECT * FROM ${t} ORDER BY id`)).rows;

    /** A change of one column to a different value the table's constraints accept. */
    const change = (row: Row, pick: number): [string, unknown] | undefined => {
      const options: [string, unknown][] = [
        ["escalated", !row["escalated"]],
        ["actor_id", `agent:other-${pick}`],
        ["tenant_id", "globex"],
        ["at_ms", Number(row["at_ms"]) - 1 - (pick % 900_000)],
        ["call_digest", `sha256:${String(pick).padStart(64, "0")}`],
      ];
      if (row.approval_status === null) {
        options.push(["action", row.action === "deny" ? "allow" : "deny"]);
      } else {
        options.push(["approvers", [...(row["approvers"] as string[]), `user:extra-${pick}`]]);
        options.push(["approvers", (row["approvers"] as string[]).slice(1)]);
      }
      if (row.approval_status === "approved" || row.approval_status === "rejected") {
        options.push(["reviewer_id", pick % 2 === 0 ? ACTOR : OTHER_APPROVER === row["reviewer_id"] ? APPROVER : OTHER_APPROVER]);
        options.push(["answered_at_ms", Number(row["answered_at_ms"]) + 1 + (pick % 1000)]);
        options.push(["note", `note ${pick}`]);
        options.push(["approval_status", row.approval_status === "approved" ? "rejected" : "approved"]);
      }
      if (row.approval_status === "pending") {
        options.push(["approval_status", "expired"]); // a legal move: verify has nothing to say
      }
      return options[pick % options.length];
    };

    await fc.assert(
      fc.asyncProperty(fc.nat(rows.length - 1), fc.nat(), async (index, pick) => {
        const row = rows[index]!;
        const [column, value] = change(row, pick)!;
        // Moves the adapter itself makes: an approval expiring, and a decision superseded by a deny.
        const legal = column === "approval_status" && value === "expired";
        const superseding = column === "action" && value === "deny" && row["escalated"] === false;
        const set = `UPDATE ${t} SET ${column} = $2${column === "approval_status" && !legal ? ", answered_at_ms = coalesce(answered_at_ms, 1)" : ""} WHERE id = $1`;
        if (!legal && !superseding) await refused("instance", set, [row.id, value]);
        await aroundTheGuard(schema, [set, [row.id, value]]);
        try {
          const checked = await crossCheckPostgresStore({ connectionString: urlAs("auditor"), schema });
          const named = checked.ok ? [] : [...new Set(checked.mismatches.map((m) => m.decisionId))];
          if (legal) expect(checked.ok, `${column} = ${JSON.stringify(value)}`).toBe(true);
          else expect(named, `${column} = ${JSON.stringify(value)} on ${row.action}/${String(row.approval_status)}`).toEqual([row.id]);
        } finally {
          const restore = Object.keys(row).filter((k) => k !== "id");
          await aroundTheGuard(schema, [
            `UPDATE ${t} SET ${restore.map((k, i) => `${k} = $${i + 2}`).join(", ")} WHERE id = $1`,
            [row.id, ...restore.map((k) => row[k])],
          ]);
        }
      }),
      { seed: SEED, numRuns: 30 },
    );
    expect(verifyCli(schema).status).toBe(0);
  });
});
