/**
 * `veto report --postgres`: the records table of a PostgreSQL store the
 * adapter wrote, verified, then reported exactly as a file log is.
 */
import { afterAll, describe, expect, it } from "vitest";
import { postgres } from "../../adapter/postgres/index.js";
import type { PolicyReport } from "../../adapter/audit/report.js";
import { APPROVER, makeVeto, read, requireCli, runCli, write } from "../helpers/index.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";

const db = testDatabase();
afterAll(() => db.dropSchemas());

describe("veto report --postgres", () => {
  it("reports the verified records table: verdicts, answers, pending", async () => {
    requireCli();
    const schema = db.schema("report");
    const { veto } = await makeVeto({
      recordSink: undefined,
      store: postgres({ connectionString: pgUrl(), schema, migrate: true, records: true }),
    });
    expect((await veto.protect(read())).action).toBe("allow");
    const approved = await veto.protect(write({ amount: 9000 }));
    const rejected = await veto.protect(write({ amount: 12000 }));
    const pending = await veto.protect(write({ amount: 15000 }));
    expect([approved.action, rejected.action, pending.action]).toEqual(["require_approval", "require_approval", "require_approval"]);
    expect((await veto.protect(write({ tenantId: "globex" }))).action).toBe("deny");
    await veto.approve({ decisionId: approved.id, reviewerId: APPROVER });
    await veto.reject({ decisionId: rejected.id, reviewerId: APPROVER, note: "no" });
    await veto.close();

    // The store times decisions by the database's clock (docs/contract.md §6): the window is now.
    const run = runCli(["report", "--postgres", pgUrl(), "--schema", schema, "--json"]);
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as PolicyReport;
    expect(report.decisions).toEqual({ total: 5, allow: 1, deny: 1, require_approval: 3, escalated: 0 });
    expect(report.approvals).toMatchObject({ requested: 3, approved: 1, rejected: 1, pending: 1, expired: 0 });
    expect(report.approvals.answer_time.count).toBe(2);
    expect(report.by_approver[APPROVER]).toMatchObject({ approved: 1, rejected: 1 });

    // Two hours on, the unanswered approval has expired.
    const later = new Date(Date.now() + 2 * 3_600_000).toISOString();
    const expired = JSON.parse(
      runCli(["report", "--postgres", pgUrl(), "--schema", schema, "--until", later, "--json"]).stdout,
    ) as PolicyReport;
    expect(expired.approvals).toMatchObject({ pending: 0, expired: 1 });
  });

  it("exits 2 when the database cannot be reached", () => {
    const run = runCli(["report", "--postgres", "postgres://veto@127.0.0.1:1/none", "--json"]);
    expect(run.status).toBe(2);
  });
});
