/**
 * Record state on PostgreSQL (docs/contract.md §6): the state bound to an
 * approval is kept in the decisions row (fixed once written) and in the
 * decision record; another process approves; where the approved call runs the
 * state is asked again, and a record changed in between is refused
 * (record_changed) with its refusal in the records, and the chain verifies.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { ApprovalError, createVeto, type Veto } from "../../adapter/index.js";
import { migrate, postgres } from "../../adapter/postgres/index.js";
import type { RecordStateCall } from "../../adapter/approvals/record-state.js";
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { APPROVER, requireBundle, runCli } from "../helpers/index.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";
import { APP_CONTEXT, answerElsewhere } from "../integrations/helpers.js";

type Args = Record<string, unknown>;
const db = testDatabase();
let schema: string;
const versions = new Map<string, number>();
const runs: Args[] = [];
let veto: Veto;
const CONTEXT = { ...APP_CONTEXT, reason: "Customer asked to move the close date" };
const args = (recordId: string): Args => ({
  object: "opportunity",
  recordId,
  tenantId: "acme",
  changes: { close_date: "2026-12-01" },
  amount: 9000,
});

const recordState = (call: RecordStateCall): string => `v${versions.get(String((call.arguments as Args)["recordId"])) ?? 1}`;
const bump = (id: string): void => void versions.set(id, (versions.get(id) ?? 1) + 1);

beforeAll(async () => {
  requireBundle();
  schema = db.schema("rstate");
  await migrate({ connectionString: pgUrl(), schema });
  veto = await createVeto({
    bundle: requireBundle(),
    logger: pino({ level: "silent" }),
    approvalPollMs: 50,
    recordState,
    store: postgres({ connectionString: pgUrl(), schema, records: true }),
  });
});
afterAll(async () => {
  await veto.close();
  await db.dropSchemas();
});

async function pausedCall(recordId: string): Promise<{ running: Promise<unknown>; decisionId: string }> {
  const tool = veto.guard("crm.update", (args: Args) => {
    runs.push(args);
    return "updated";
  });
  const before = await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".decisions`);
  const running = tool(args(recordId), CONTEXT as never).catch((e: unknown) => e);
  for (let i = 0; i < 200; i++) {
    const { rows } = await db.pool.query<{ id: string; n: string }>(
      `SELECT id, (SELECT count(*) FROM "${schema}".decisions) AS n FROM "${schema}".decisions ORDER BY at_ms DESC, id DESC LIMIT 1`,
    );
    if (rows[0] !== undefined && Number(rows[0].n) > Number(before.rows[0]!.n)) return { running, decisionId: rows[0].id };
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("the call was never decided");
}

describe("record state on PostgreSQL, approved from another process", () => {
  it("a record changed between decision and execution: record_changed, nothing runs, row and records say so", async () => {
    const { running, decisionId } = await pausedCall("opp_41");
    const { rows } = await db.pool.query<{ record_state: string | null }>(`SELECT record_state FROM "${schema}".decisions WHERE id = $1`, [
      decisionId,
    ]);
    expect(rows[0]!.record_state).toBe("v1");
    bump("opp_41");
    const pid = await answerElsewhere(schema, decisionId, "approve");
    expect(pid).not.toBe(process.pid);
    const error = await running;
    expect(error).toBeInstanceOf(ApprovalError);
    expect((error as ApprovalError).code).toBe("record_changed");
    expect(runs).toEqual([]);

    const records = await db.pool.query<{ type: string; line: string }>(
      `SELECT type, line FROM "${schema}".records WHERE decision_id = $1 ORDER BY seq`,
      [decisionId],
    );
    expect(records.rows.map((r) => r.type)).toEqual(["decision", "approval", "execution"]);
    expect(JSON.parse(records.rows[0]!.line)).toMatchObject({ record_state: "v1" });
    expect(JSON.parse(records.rows[2]!.line)).toMatchObject({
      result: { execution: "refused", reason: "record_changed" },
      record_state: "v2",
    });
    const status = await db.pool.query<{ approval_status: string }>(`SELECT approval_status FROM "${schema}".decisions WHERE id = $1`, [
      decisionId,
    ]);
    expect(status.rows[0]!.approval_status).toBe("approved");
  });

  it("unchanged: the approved call runs exactly once", async () => {
    const { running, decisionId } = await pausedCall("opp_42");
    await answerElsewhere(schema, decisionId, "approve");
    await expect(running).resolves.toBe("updated");
    expect(runs.map((a) => a["recordId"])).toEqual(["opp_42"]);
    const again = await veto
      .waitForApproval({ decisionId, call: { tool: "crm.update", arguments: args("opp_42"), context: CONTEXT } })
      .catch((e: unknown) => e);
    expect((again as ApprovalError).code).toBe("already_executed");
  });

  it("the record state of a stored decision never changes (the database refuses)", async () => {
    const { rows } = await db.pool.query<{ id: string }>(`SELECT id FROM "${schema}".decisions WHERE record_state IS NOT NULL LIMIT 1`);
    await expect(db.pool.query(`UPDATE "${schema}".decisions SET record_state = 'v9' WHERE id = $1`, [rows[0]!.id])).rejects.toThrow(
      /record state of decision .* never changes/,
    );
  });

  it("amended from another process: the waiting guard runs the amended call once; the original never runs", async () => {
    const { running, decisionId } = await pausedCall("opp_43");
    const amendedArgs = { ...args("opp_43"), amount: 8000 };
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [
        resolve(import.meta.dirname, "../integrations/answer.mjs"),
        pgUrl(),
        schema,
        decisionId,
        APPROVER,
        "amend",
        JSON.stringify(amendedArgs),
      ],
      { encoding: "utf8" },
    );
    const reply = JSON.parse(stdout) as {
      pid: number;
      answer: { decision: { id: string; action: string }; approval?: { status: string } };
    };
    expect(reply.pid).not.toBe(process.pid);
    expect(reply.answer.decision.action).toBe("require_approval");
    expect(reply.answer.approval?.status).toBe("approved");
    await expect(running).resolves.toBe("updated");
    expect(runs.at(-1)).toEqual(amendedArgs);
    expect(runs.filter((a) => a["recordId"] === "opp_43")).toHaveLength(1);
    const rows = await db.pool.query<{ id: string; approval_status: string; amended_to: string | null }>(
      `SELECT id, approval_status, amended_to FROM "${schema}".decisions WHERE id = ANY($1) ORDER BY id`,
      [[decisionId, reply.answer.decision.id]],
    );
    expect(rows.rows).toEqual([
      { id: decisionId, approval_status: "amended", amended_to: reply.answer.decision.id },
      { id: reply.answer.decision.id, approval_status: "executed", amended_to: null },
    ]);
    const original = await veto
      .waitForApproval({ decisionId, call: { tool: "crm.update", arguments: args("opp_43"), context: CONTEXT } })
      .catch((e: unknown) => e);
    expect((original as ApprovalError).code).toBe("amended");
    const types = await db.pool.query<{ type: string; decision_id: string }>(
      `SELECT type, decision_id FROM "${schema}".records WHERE decision_id = ANY($1) ORDER BY seq`,
      [[decisionId, reply.answer.decision.id]],
    );
    expect(types.rows.map((r) => `${r.type}:${r.decision_id === decisionId ? "original" : "amended"}`)).toEqual([
      "decision:original",
      "decision:amended",
      "amendment:original",
      "approval:amended",
      "execution:amended",
    ]);
  });

  it("veto log verify passes on the chain", () => {
    const run = runCli(["log", "verify", "--postgres", pgUrl(), "--schema", schema]);
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
  });
});
