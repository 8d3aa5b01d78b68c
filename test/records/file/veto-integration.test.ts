/**
 * The file log as the adapter's record sink, with the real bundle: records
 * land in a log that verifies, and a log that fails makes every call a deny
 * (contract section 7: no side effect without its evidence).
 */
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { VetoDeniedError, type CallArguments, type CallContext } from "../../../adapter/index.js";
import { openFileLog, readLog, verifyLog } from "../../../adapter/audit/index.js";
import { APPROVER, codes, makeVeto, read, write } from "../../helpers/index.js";
import { faultyFs, tempDir } from "../../helpers/file-log.js";

let dir: string;
let cleanup: () => Promise<void>;
let path: string;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  path = join(dir, "decisions.jsonl");
});
afterEach(() => cleanup());

describe("FileDecisionLog as the adapter's record sink", () => {
  it("records decisions and approvals in a log that verifies, every field inside the chain", async () => {
    const log = await openFileLog(path);
    const { veto } = await makeVeto({ recordSink: log });
    const allowed = await veto.protect(write());
    const pending = await veto.protect(write({ amount: 9000 }));
    expect([allowed.action, pending.action]).toEqual(["allow", "require_approval"]);
    await veto.approve({ decisionId: pending.id, reviewerId: APPROVER });
    await veto.close();
    await log.close();

    const verified = await verifyLog([path]);
    expect(verified).toMatchObject({ ok: true, count: 3 });
    const records = (await readLog([path])).map((r) => r.record);
    expect(records.map((r) => [r.seq, r.type, r.decision_id])).toEqual([
      [1, "decision", allowed.id],
      [2, "decision", pending.id],
      [3, "approval", pending.id],
    ]);
    expect(records[2]).toMatchObject({ reviewer_id: APPROVER, bundles: { crm: { hash: pending.bundle.hash } } });
    expect(records[1]).toMatchObject({ result: { action: "require_approval" }, input_digest: expect.any(String) });
  });

  it("denies every call with record_unavailable once the log cannot sync, never calling the tool", async () => {
    const faults = faultyFs();
    const log = await openFileLog(path, { fs: faults.fs });
    const { veto } = await makeVeto({ recordSink: log });
    expect((await veto.protect(read())).action).toBe("allow");

    faults.fault = "datasync";
    const denied = await veto.protect(read());
    expect([denied.action, codes(denied)]).toEqual(["deny", ["record_unavailable"]]);
    // Failed for good: the disk "recovering" changes nothing.
    faults.fault = null;
    expect(codes(await veto.protect(write()))).toEqual(["record_unavailable"]);
    let called = false;
    const guarded = veto.guard("crm.update", async () => {
      called = true;
    });
    const { arguments: args, context } = write() as { arguments: CallArguments; context: CallContext };
    await expect(guarded(args, context)).rejects.toBeInstanceOf(VetoDeniedError);
    expect(called).toBe(false);
    expect(log.failure).toMatchObject({ code: "record_unavailable", cause: { code: "EIO" } });
    await veto.close();
    await log.close();

    // The one acknowledged record is there; the log reopens and verifies.
    const reopened = await openFileLog(path);
    expect(reopened.recovery.records).toBeGreaterThanOrEqual(1);
    await reopened.close();
    expect(await verifyLog([path])).toMatchObject({ ok: true });
  });

  it("refuses an approval whose record cannot be written", async () => {
    const faults = faultyFs();
    const log = await openFileLog(path, { fs: faults.fs });
    const { veto } = await makeVeto({ recordSink: log });
    const pending = await veto.protect(write({ amount: 9000 }));
    faults.fault = "write";
    await expect(veto.approve({ decisionId: pending.id, reviewerId: APPROVER })).rejects.toMatchObject({
      code: "record_unavailable",
    });
    await expect(veto.waitForApproval({ decisionId: pending.id, timeoutMs: 50 })).rejects.toMatchObject({
      code: "approval_timeout",
    });
    await veto.close();
    await log.close();
  });
});
