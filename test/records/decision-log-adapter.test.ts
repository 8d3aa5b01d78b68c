// The adapter writing to the real FileDecisionLog: records on disk before
// protect() returns, and failing closed when the log cannot write or sync
// (faults injected through the log's `fs` option, on top of the real files).
// test/records/file/veto-integration.test.ts covers the basics; this adds concurrent
// calls in flight at the failure, the error chain (logger, cause), a cleared
// fault that stays failed, rejections, random failure moments, and replay.
import { readFile } from "node:fs/promises";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ApprovalError, RecordUnavailableError, VetoDeniedError, openFileLog, type Decision } from "../../adapter/index.js";
import { readLog, replayRecords, verifyLog } from "../../adapter/audit/index.js";
import { APPROVER, BUNDLE, bundleData, codes, makeVeto, read, write } from "../helpers/index.js";
import { faultyFs } from "../helpers/file-log.js";

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "veto-adapter-log-"));
  path = join(dir, "decisions.jsonl");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("protect() with the durable log as record sink", () => {
  it("every decision and approval is in the log, hash-chained, before its call returns", async () => {
    const log = await openFileLog(path);
    const { veto } = await makeVeto({ recordSink: log });
    const allowed = await veto.protect(read());
    // The record is on disk when protect() resolves: read the file now, not after close.
    expect((await readLog([path])).map((r) => r.record["decision_id"])).toEqual([allowed.id]);
    const pending = await veto.protect(write({ amount: 9000 }));
    await veto.approve({ decisionId: pending.id, reviewerId: APPROVER });
    const records = (await readLog([path])).map((r) => r.record);
    expect(records.map((r) => [r["type"], r["decision_id"], r["seq"]])).toEqual([
      ["decision", allowed.id, 1],
      ["decision", pending.id, 2],
      ["approval", pending.id, 3],
    ]);
    expect(records[2]).toMatchObject({ reviewer_id: APPROVER, call_digest: records[1]!["call_digest"] });
    await veto.close();
    await log.close();
    expect(await verifyLog([path])).toMatchObject({ ok: true, count: 3 });
  });

  it.each(["write", "datasync", "short-write-then-fail"] as const)(
    "a failing %s: every later call is denied with record_unavailable, never allowed, and the log stays failed",
    async (operation) => {
      const control = faultyFs();
      const log = await openFileLog(path, { fs: control.fs });
      const { veto, logLines } = await makeVeto({ recordSink: log });
      const pending = await veto.protect(write({ amount: 9000 }));
      expect(pending.action).toBe("require_approval");
      const before = await Promise.all([read(), write(), write({ amount: 9000 })].map((c) => veto.protect(c)));
      expect(before.map((d) => d.action)).toEqual(["allow", "allow", "require_approval"]);

      control.fault = operation;
      // Concurrent calls in flight when the sync fails, then more after it:
      // calls the policy would allow, ask approval for, or deny.
      const calls = [read(), write(), write({ amount: 9000 }), write({ destination: "gmail.com" })];
      const during = await Promise.all([...calls, ...calls].map((c) => veto.protect(c)));
      // The fault is cleared, but a failed log stays failed: nothing is retried.
      control.fault = null;
      const after = await Promise.all(calls.map((c) => veto.protect(c)));
      for (const d of [...during, ...after]) {
        expect([d.action, d.escalated, codes(d), d.approvers]).toEqual(["deny", false, ["record_unavailable"], []]);
        expect(d.reason).toContain("EIO: i/o error, injected");
      }
      expect(log.failure).toBeInstanceOf(RecordUnavailableError);

      // The error is surfaced through the logger, with the log's error and its cause.
      const logged = logLines.filter((l) => l["msg"] === "decision could not be recorded; denying");
      expect(logged).toHaveLength(during.length + after.length);
      expect(logged[0]).toMatchObject({ err: { type: "RecordUnavailableError", code: "record_unavailable" } });

      // A guarded tool never runs, and the typed error carries the log's error as cause.
      let ran = false;
      const guarded = veto.guard("crm.read", () => {
        ran = true;
      });
      const error = await guarded(read()["arguments"] as Record<string, unknown>, read()["context"] as never).catch((e: unknown) => e);
      expect(ran).toBe(false);
      expect(error).toBeInstanceOf(VetoDeniedError);
      expect((error as VetoDeniedError).cause).toBeInstanceOf(RecordUnavailableError);
      expect(((error as VetoDeniedError).cause as Error).cause).toMatchObject({ code: "EIO" });

      // An approval of a decision made before the failure is refused, with the cause, and does not take effect.
      const refused = await veto.approve({ decisionId: pending.id, reviewerId: APPROVER }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(ApprovalError);
      expect(refused).toMatchObject({ code: "record_unavailable", decisionId: pending.id });
      expect((refused as ApprovalError).cause).toBeInstanceOf(RecordUnavailableError);
      // Still pending: no approval took effect without its record.
      await expect(veto.waitForApproval({ decisionId: pending.id, timeoutMs: 50 })).rejects.toMatchObject({ code: "approval_timeout" });
      await expect(veto.reject({ decisionId: pending.id, reviewerId: APPROVER })).rejects.toMatchObject({ code: "record_unavailable" });

      await veto.close();
      await log.close();
      // Reopening repairs a torn tail a short write left; then every decision
      // acknowledged before the failure is in the log, and it verifies.
      await (await openFileLog(path)).close();
      const ids = (await readLog([path])).map((r) => r.record["decision_id"]);
      expect(ids.slice(0, 4)).toEqual([pending, ...before].map((d: Decision) => d.id));
      expect(await verifyLog([path])).toMatchObject({ ok: true });
    },
  );

  it("under concurrent load, a fault at a random moment never lets an unrecorded call through", async () => {
    for (let trial = 0; trial < 10; trial++) {
      const file = join(dir, `load-${trial}.jsonl`);
      const control = faultyFs();
      const log = await openFileLog(file, { fs: control.fs });
      const { veto } = await makeVeto({ recordSink: log });
      const calls = Array.from({ length: 60 }, (_, i) => (i % 3 === 0 ? read() : write({ amount: i * 200 })));
      const failAt = 5 + Math.floor(Math.random() * 50);
      const decisions = await Promise.all(
        calls.map(async (call, i) => {
          if (i === failAt) control.fault = Math.random() < 0.5 ? "write" : "datasync";
          await new Promise((resolve) => setImmediate(resolve));
          return veto.protect(call);
        }),
      );
      await veto.close();
      await log.close();
      const recorded = new Set((await readLog([file])).map((r) => r.record["decision_id"]));
      // Not denied for want of a record => its record is in the log.
      for (const d of decisions) {
        if (codes(d).includes("record_unavailable")) expect(d.action).toBe("deny");
        else expect(recorded.has(d.id)).toBe(true);
      }
      expect(decisions.some((d) => codes(d).includes("record_unavailable"))).toBe(true);
    }
  });
});

describe("replay records from the adapter", () => {
  it("a masked value that the policy reads as an amount cannot be replayed, and is not replayed wrongly", async () => {
    const data = bundleData();
    data.veto.config["sensitive_fields"] = { opportunity: ["discount_amount"] };
    const log = await openFileLog(path);
    const { veto } = await makeVeto({ recordSink: log, data });
    const d = await veto.protect(write({ changes: { discount_amount: 9000 } }));
    expect(d.action).toBe("require_approval");
    await veto.close();
    await log.close();
    const text = await readFile(path, "utf8");
    expect(text).not.toContain("9000");
    const report = await replayRecords(await readLog([path]), { bundle: BUNDLE, data });
    expect(report.skipped).toEqual([]);
    expect(report.unreplayable).toEqual([
      expect.objectContaining({
        decision_id: d.id,
        line: 1,
        reason: "/input/arguments/changes/discount_amount is an amount the policy reads, but its value was masked as sensitive",
      }),
    ]);
    expect([report.decisions, report.unchanged, report.changed]).toEqual([1, 0, []]);
  });

  it("... also when the amount key is spelled in another case (DISCOUNT_AMOUNT is discount_amount)", async () => {
    const data = bundleData();
    data.veto.config["sensitive_fields"] = { opportunity: ["discount_amount"] };
    const log = await openFileLog(path);
    const { veto } = await makeVeto({ recordSink: log, data });
    const d = await veto.protect(write({ changes: { DISCOUNT_AMOUNT: 9000 } }));
    expect(d.action).toBe("require_approval");
    await veto.close();
    await log.close();
    expect(await readFile(path, "utf8")).not.toContain("9000");
    const report = await replayRecords(await readLog([path]), { bundle: BUNDLE, data });
    expect(report.unreplayable.map((s) => [s.decision_id, s.reason])).toEqual([
      [d.id, "/input/arguments/changes/DISCOUNT_AMOUNT is an amount the policy reads, but its value was masked as sensitive"],
    ]);
  });
});
