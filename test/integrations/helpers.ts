/**
 * Shared parts of the framework integration tests: a Veto on a real
 * PostgreSQL schema with its records there, and a reviewer answering from
 * another process (answer.mjs, the built library).
 */
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { pino } from "pino";
import { createVeto, type Veto } from "../../adapter/index.js";
import { PostgresStore, postgres } from "../../adapter/postgres/index.js";
import { ACTOR, APPROVER, OTHER_APPROVER, bundleData, requireBundle } from "../helpers/index.js";
import { pgUrl, requireDist } from "../helpers/postgres.js";

export { ACTOR, APPROVER };
const ANSWER = resolve(import.meta.dirname, "answer.mjs");

/** The application's context: never from the model. */
export const APP_CONTEXT = { actorId: ACTOR, tenantId: "acme", environment: "production" } as const;

/** A crm.update input as a model would give it (the reason as a tool argument). */
export function update(args: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    object: "opportunity",
    recordId: "opp_1",
    tenantId: "acme",
    changes: { close_date: "2026-12-01" },
    reason: "Customer asked to move the close date",
    ...args,
  };
}

/** A Veto on the PostgreSQL schema, records in the same database (what another process reads back). */
export async function pgVeto(schema: string): Promise<Veto> {
  requireBundle();
  return await createVeto({
    bundle: requireBundle(),
    logger: pino({ level: "silent" }),
    approvalPollMs: 50,
    store: postgres({ connectionString: pgUrl(), schema, records: true, migrate: true }),
  });
}

/** A reviewer answers from another process (a new Node process on the same schema). */
export async function answerElsewhere(schema: string, decisionId: string, how: "approve" | "reject", reviewer = APPROVER): Promise<number> {
  requireDist();
  const { stdout } = await promisify(execFile)(process.execPath, [ANSWER, pgUrl(), schema, decisionId, reviewer, how], {
    encoding: "utf8",
  });
  const reply = JSON.parse(stdout) as { pid: number; answer: { status: string } };
  if (reply.answer.status !== (how === "approve" ? "approved" : "rejected")) throw new Error(`answer.mjs: ${stdout}`);
  return reply.pid;
}

/** The arguments the policy decided for a model's input (the reason argument moves to the context), with another amount. */
export function amendedArguments(input: Record<string, unknown>, amount: number): Record<string, unknown> {
  const { reason: _reason, ...rest } = input;
  return { ...rest, amount };
}

/** An approver amends a paused call from another process (docs/contract.md §6, amend); the amended call's decision. */
export async function amendElsewhere(
  schema: string,
  decisionId: string,
  args: Record<string, unknown>,
  reviewer = APPROVER,
): Promise<{ id: string; action: string }> {
  requireDist();
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [ANSWER, pgUrl(), schema, decisionId, reviewer, "amend", JSON.stringify(args)],
    { encoding: "utf8" },
  );
  const reply = JSON.parse(stdout) as { answer: { amended: string; decision: { id: string; action: string } } };
  if (reply.answer.amended !== decisionId) throw new Error(`answer.mjs: ${stdout}`);
  return reply.answer.decision;
}

export const THIRD_APPROVER = "user:cfo@acme.example";

/**
 * A Veto on the same schema whose data gives acme the approvers
 * [OTHER_APPROVER, THIRD_APPROVER] (the data changed since the pause): an
 * amendment APPROVER makes there waits for another's answer, which may be a
 * rejection.
 */
export async function movedApproversVeto(schema: string): Promise<Veto> {
  const data = structuredClone(bundleData()) as { veto: { config: { tenants: Record<string, Record<string, unknown>> } } };
  data.veto.config.tenants["acme"]!["approvers"] = [OTHER_APPROVER, THIRD_APPROVER];
  return await createVeto({
    bundle: requireBundle(),
    data,
    logger: pino({ level: "silent" }),
    store: postgres({ connectionString: pgUrl(), schema, records: true, migrate: true }),
  });
}

/** The actor's recentDenies on the schema now (what escalation counts). */
export async function recentDenies(schema: string, actorId: string = ACTOR): Promise<number> {
  const store = await PostgresStore.connect({ connectionString: pgUrl(), schema });
  try {
    return await store.countRecentDenies(actorId, "acme", 0);
  } finally {
    await store.close();
  }
}
