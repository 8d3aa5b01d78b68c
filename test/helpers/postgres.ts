/**
 * The real PostgreSQL server of the tests (scripts/postgres.sh, started by
 * `make test`), and a fresh schema per test file so files never share state.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import pg from "pg";
import { expect } from "vitest";
import { ROOT } from "./index.js";

export const DIST_INDEX = resolve(ROOT, "dist/index.js");
export const WORKER = resolve(ROOT, "test/e2e/postgres-worker.mjs");

/** VETO_TEST_PG_URL, else the URL scripts/postgres.sh wrote; never a silent skip. */
export function pgUrl(): string {
  const fromEnv = process.env.VETO_TEST_PG_URL;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const file = resolve(ROOT, ".build/pg/url");
  if (existsSync(file)) {
    const url = readFileSync(file, "utf8").trim();
    if (url !== "") return url;
  }
  throw new Error("no PostgreSQL for the tests: set VETO_TEST_PG_URL or run `bash scripts/postgres.sh start` (make test does it)");
}

export function requireDist(): string {
  if (!existsSync(DIST_INDEX)) throw new Error(`${DIST_INDEX} is missing: run npm run build (make build)`);
  return DIST_INDEX;
}

let counter = 0;

/** A schema name no other test (file, run, or concurrent run) uses. */
export function freshSchemaName(prefix: string): string {
  counter += 1;
  return `t_${prefix}_${process.pid}_${Date.now().toString(36)}_${counter}`;
}

/** An admin pool on the test database, and dropping the schemas a file made. */
export function testDatabase(): { pool: pg.Pool; dropSchemas: () => Promise<void>; schema: (prefix: string) => string } {
  const pool = new pg.Pool({ connectionString: pgUrl(), max: 4 });
  pool.on("error", () => {});
  const made: string[] = [];
  return {
    pool,
    schema: (prefix) => {
      const name = freshSchemaName(prefix);
      made.push(name);
      return name;
    },
    dropSchemas: async () => {
      for (const name of made) await pool.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
      await pool.end();
    },
  };
}

/**
 * What no crash or race may leave in a store's schema (`$S` in `q`'s SQL names it): a decision
 * without exactly one decision record saying its action, a decision record without its decision,
 * an approval stuck half-way ("answering").
 */
export async function expectDecisionsRecorded(q: (sql: string) => Promise<unknown[]>): Promise<void> {
  expect(
    await q(`SELECT d.id FROM $S.decisions d
      WHERE (SELECT count(*) FROM $S.records r WHERE r.decision_id = d.id AND r.type = 'decision') <> 1`),
  ).toEqual([]);
  expect(
    await q(`SELECT r.decision_id FROM $S.records r LEFT JOIN $S.decisions d ON d.id = r.decision_id
      WHERE r.type = 'decision' AND (d.id IS NULL OR d.action <> r.line::jsonb #>> '{result,action}')`),
  ).toEqual([]);
  expect(await q(`SELECT id FROM $S.decisions WHERE approval_status = 'answering'`)).toEqual([]);
}

/** What a call of `kindCall` is decided: allowed, denied (a blocked destination), or invalid input (counts for its actor). */
export type CallKind = "allow" | "deny" | "invalid";

/** A call of `actorId` in `tenantId` that the bundle decides as `kind` (below the escalation threshold). */
export function kindCall(actorId: string, tenantId: string, kind: CallKind, reason: string): Record<string, unknown> {
  const context = { actorId, tenantId, environment: "production", reason };
  // Malformed arguments: an invalid_input deny, which counts for the actor and tenant it names (docs/contract.md §3).
  if (kind === "invalid") return { tool: "crm.update", arguments: "not an object", context };
  return kind === "deny"
    ? {
        tool: "crm.update",
        arguments: { object: "opportunity", recordId: "opp_1", tenantId, destination: "https://pastebin.com/x" },
        context,
      }
    : { tool: "crm.read", arguments: { object: "opportunity", recordId: "opp_1", tenantId }, context };
}
