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
import { postgres } from "../../adapter/postgres/index.js";
import { ACTOR, APPROVER, requireBundle } from "../helpers/index.js";
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
