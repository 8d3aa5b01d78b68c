// Decision records (docs/contract.md §7) and failing closed when evidence or
// evaluation is unavailable.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash, createHmac } from "node:crypto";
import { FdRecordSink, InMemoryStore, VetoDeniedError, type DecisionEventRecord } from "../../adapter/index.js";
import { pino } from "pino";
import { APPROVER, MemorySink, bundleData, codes, makeVeto, read, requireOpa, write } from "../helpers/index.js";

describe("the decision record", () => {
  it("is written before protect() returns, with the contract's fields", async () => {
    const { veto, sink } = await makeVeto();
    const d = await veto.protect(
      write({ amount: 10 }, { sourceSystem: "salesforce", requestId: "req_9", sessionId: "s_1", onBehalfOf: "user:ana@acme.example" }),
    );
    const r = sink.last() as DecisionEventRecord;
    expect(r).toMatchObject({
      type: "decision",
      decision_id: d.id,
      timestamp: d.timestamp,
      path: "veto/crm/decision",
      bundles: { crm: { revision: d.bundle.revision, hash: d.bundle.hash } },
      tool: "crm.update",
      actor_id: "agent:sales-assistant",
      tenant_id: "acme",
      environment: "production",
      source_system: "salesforce",
      request_id: "req_9",
      session_id: "s_1",
      on_behalf_of: "user:ana@acme.example",
      history: { recent_denies: 0 },
      result: { action: "allow", escalated: false, reason: d.reason, reasons: d.reasons, approvers: [] },
    });
    expect(r.input_digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r.call_digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r.metrics.timer_rego_query_eval_ns).toBeGreaterThan(0);
    await veto.close();
  });

  it("keeps the whole call for replay, sensitive values (any object's list, any depth, any case) replaced by digests", async () => {
    const { veto, sink } = await makeVeto();
    const call = write({ object: "contact", changes: { SSN: "123-45-6789", email: "a@b.c", name: "Ana" }, nested: { tax_id: "T1" } });
    await veto.protect(call);
    const r = sink.last() as DecisionEventRecord;
    const sha = (v: unknown): string => `sha256:${createHash("sha256").update(JSON.stringify(v)).digest("hex")}`;
    const args = call["arguments"] as Record<string, unknown>;
    expect(r.input).toEqual({
      ...call,
      arguments: { ...args, changes: { SSN: sha("123-45-6789"), email: sha("a@b.c"), name: "Ana" }, nested: { tax_id: sha("T1") } },
    });
    expect([...r.masked].sort()).toEqual([
      "/input/arguments/changes/SSN",
      "/input/arguments/changes/email",
      "/input/arguments/nested/tax_id",
    ]);
    expect(JSON.stringify(r)).not.toContain("123-45-6789");
    expect(JSON.stringify(r)).not.toContain("a@b.c");
    await veto.close();
  });

  it("with recordKey, sensitive values are HMAC-SHA-256 digests under that key", async () => {
    const key = "k".repeat(32);
    const { veto, sink } = await makeVeto({ recordKey: key });
    await veto.protect(write({ changes: { stage: "closed_won" } }));
    const r = sink.last() as DecisionEventRecord;
    const hmac = `hmac-sha256:${createHmac("sha256", key).update('"closed_won"').digest("hex")}`;
    expect(r.input).toMatchObject({ arguments: { changes: { stage: hmac } } });
    expect(r.masked).toEqual(["/input/arguments/changes/stage"]);
    // The whole-call digests are keyed too: unkeyed, they would let a reader test guesses of the masked value.
    expect(r.call_digest).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    expect(r.input_digest).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    await veto.close();
    await expect(makeVeto({ recordKey: "short" })).rejects.toThrow(/recordKey must be a string or Uint8Array of at least 16 bytes/);
  });

  it("with recordKey, approvals stay bound to the call: guard waits, the approval record carries the decision's keyed digest", async () => {
    const { veto, sink } = await makeVeto({ recordKey: "a-deployment-key-of-32-bytes-000" });
    const call = write({ amount: 9000 });
    let ran = false;
    const guarded = veto.guard("crm.update", () => {
      ran = true;
    });
    const done = guarded(call["arguments"] as Record<string, unknown>, call["context"] as never);
    await new Promise((resolve) => setTimeout(resolve, 30));
    const decision = sink.records.find((x) => x.type === "decision") as DecisionEventRecord;
    await veto.approve({ decisionId: decision.decision_id, reviewerId: APPROVER });
    await done;
    expect(ran).toBe(true);
    expect(sink.records.find((x) => x.type === "approval")).toMatchObject({ call_digest: decision.call_digest });
    // The guard claimed the approval before it ran the tool (use once): the claim is recorded last.
    expect(sink.last()).toMatchObject({ type: "execution", call_digest: decision.call_digest });
    expect(decision.call_digest).toMatch(/^hmac-sha256:/);
    await expect(veto.waitForApproval({ decisionId: decision.decision_id, call: write({ amount: 9001 }) as never })).rejects.toMatchObject({
      code: "call_mismatch",
    });
    await veto.close();
  });

  it("never masks the contract's own fields, even when a data document names them sensitive", async () => {
    const data = bundleData();
    data.veto.config["sensitive_fields"] = { "*": ["amount", "destination", "actorid", "stage"] };
    const { veto, sink } = await makeVeto({ data });
    await veto.protect(write({ amount: 10, destination: "https://hooks.example.com", changes: { stage: "won", amount: 20 } }));
    const r = sink.last() as DecisionEventRecord;
    expect(r.input).toMatchObject({
      arguments: {
        amount: 10,
        destination: "https://hooks.example.com",
        changes: { stage: expect.stringMatching(/^sha256:/), amount: expect.stringMatching(/^sha256:/) },
      },
      context: { actorId: "agent:sales-assistant" },
    });
    expect([...r.masked].sort()).toEqual(["/input/arguments/changes/amount", "/input/arguments/changes/stage"]);
    await veto.close();
  });

  it("a call that fails validation keeps what was JSON of it; one that was not JSON has input null", async () => {
    const { veto, sink } = await makeVeto();
    await veto.protect({ tool: "crm.update", arguments: { changes: { ssn: "123-45-6789" } } });
    const r = sink.last() as DecisionEventRecord;
    expect(r.result.reasons.map((x) => x.code)).toEqual(["invalid_input"]);
    expect(r.input).toEqual({ tool: "crm.update", arguments: { changes: { ssn: expect.stringMatching(/^sha256:/) } } });
    expect(r.history).toBeNull();
    await veto.protect({ tool: "crm.read", big: "x".repeat(70_000) });
    expect((sink.last() as DecisionEventRecord).input).toBeNull();
    await veto.close();
  });

  it("FdRecordSink (the default sink's kind) writes one pino line per record, as JSON; a logger gets none", async () => {
    // The default sink is FdRecordSink.stdout() (test/records/default-sink.test.ts runs it in child processes); a file shows its lines here.
    const dir = await mkdtemp(join(tmpdir(), "veto-fd-sink-"));
    try {
      const file = join(dir, "nested", "records.jsonl");
      const sink = await FdRecordSink.openFile(file);
      const { veto, logLines } = await makeVeto({ recordSink: sink });
      const d = await veto.protect(read());
      await veto.close();
      await sink.close();
      const lines = (await readFile(file, "utf8"))
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toEqual([
        expect.objectContaining({
          msg: "veto decision",
          name: "veto",
          component: "records",
          type: "decision",
          decision_id: d.id,
          result: expect.objectContaining({ action: "allow" }),
        }),
      ]);
      expect(logLines.filter((l) => l["decision_id"] === d.id)).toEqual([]);
      // Closed: later records are refused, so their calls are denied.
      await expect(sink.write({ type: "decision" } as never)).rejects.toMatchObject({ code: "record_unavailable" });
      // Only a regular file: /dev/full, /dev/null or a directory take records and keep none.
      for (const path of ["/dev/full", "/dev/null", dir]) {
        await expect(FdRecordSink.openFile(path)).rejects.toMatchObject({
          code: "invalid_options",
          message: expect.stringMatching(/is not a regular file/),
        });
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("lists the hosts the policy read in the destination (destination_hosts), whatever the verdict", async () => {
    const data = bundleData();
    (data.veto.config["tenants"] as Record<string, Record<string, unknown>>)["acme"]!["allowed_destinations"] = ["example.com"];
    const { veto, sink, clock } = await makeVeto({ data });
    const cases: [string, string, string[], string[]][] = [
      ["https://hooks.example.com/x?u=https://pastebin.com", "allow", ["low_value"], ["hooks.example.com"]],
      [
        "mailto:a@hooks.example.com?CC=b%40gmail.com",
        "deny",
        ["blocked_destination", "destination_not_allowed"],
        ["gmail.com", "hooks.example.com"],
      ],
      [
        "sftp://hooks.example.com\\@files.example.net/x, a@eu.example.com",
        "deny",
        ["destination_not_allowed"],
        ["eu.example.com", "files.example.net", "hooks.example.com"],
      ],
      ["https://[0:0::1]:8443/", "deny", ["destination_not_allowed"], ["[::1]"]],
      ["https://hooks.example.com/\tx", "deny", ["blocked_destination", "destination_not_allowed"], []],
    ];
    for (const [destination, action, reasons, hosts] of cases) {
      clock.advance(901_000); // past the escalation window: each deny stands alone
      const d = await veto.protect(write({ destination }, {}, "crm.export"));
      const r = sink.last() as DecisionEventRecord;
      expect([d.action, codes(d), r.destination_hosts], destination).toEqual([action, reasons, hosts]);
      // The decision the caller gets is the contract's (section 5): the hosts are for the record.
      expect(d).not.toHaveProperty("destination_hosts");
    }
    // An escalated deny and one the policy answers invalid_input still list them.
    const escalated = await makeVeto();
    for (let i = 0; i < 4; i++) await escalated.veto.protect(write({ destination: "ana@gmail.com" }));
    const last = escalated.sink.last() as DecisionEventRecord;
    expect([last.result.escalated, last.destination_hosts]).toEqual([true, ["gmail.com"]]);
    await escalated.veto.close();
    await veto.close();
  });

  it("has no destination_hosts when the call has no destination or the adapter answered without the policy", async () => {
    const { veto, sink } = await makeVeto();
    await veto.protect(write());
    expect(sink.last()).not.toHaveProperty("destination_hosts");
    // invalid_input from the adapter's own checks: the policy did not read the call.
    await veto.protect(write({ destination: "https://pastebin.com", amount: "9000" }));
    const r = sink.last() as DecisionEventRecord;
    expect(r.result.reasons.map((x) => x.code)).toEqual(["invalid_input"]);
    expect(r).not.toHaveProperty("destination_hosts");
    await veto.close();
  });

  it("same call, same input digest; different call, different digest", async () => {
    const { veto, sink } = await makeVeto();
    await veto.protect(write());
    await veto.protect(write());
    await veto.protect(write({ recordId: "opp_9" }));
    const [a, b, c] = sink.records as DecisionEventRecord[];
    expect(a!.input_digest).toBe(b!.input_digest);
    expect(a!.input_digest).not.toBe(c!.input_digest);
    await veto.close();
  });
});

describe("fail closed", () => {
  it("a record that cannot be written turns any verdict into deny record_unavailable", async () => {
    const { veto, sink, logLines } = await makeVeto();
    sink.failing = new Error("disk full");
    for (const call of [read(), write({ amount: 9000 }), write({ destination: "gmail.com" })]) {
      const d = await veto.protect(call);
      expect([d.action, d.escalated, codes(d), d.approvers]).toEqual(["deny", false, ["record_unavailable"], []]);
      expect(d.reason).toContain("disk full");
    }
    expect(logLines.filter((l) => l["msg"] === "decision could not be recorded; denying")).toHaveLength(3);
    await veto.close();
  });

  it("a logger that throws (its destination is full) never changes the outcome: still a deny, still a refusal", async () => {
    const logger = pino(
      {},
      {
        write: () => {
          throw new Error("ENOSPC: no space left on device, write");
        },
      },
    );
    const sink = new MemorySink();
    const { veto } = await makeVeto({ logger, recordSink: sink, approvalTtlMs: 60_000 });
    const pending = await veto.protect(write({ amount: 9000 }));
    expect(pending.action).toBe("require_approval");
    sink.failing = new Error("disk full");
    const d = await veto.protect(read());
    expect([d.action, codes(d)]).toEqual(["deny", ["record_unavailable"]]);
    await expect(veto.approve({ decisionId: pending.id, reviewerId: APPROVER })).rejects.toMatchObject({ code: "record_unavailable" });
    await veto.close();
  });

  it("a store that cannot remember the decision denies with record_unavailable", async () => {
    const store = new InMemoryStore();
    store.appendDecision = async () => {
      throw new Error("store down");
    };
    const { veto } = await makeVeto({ store });
    expect(codes(await veto.protect(read()))).toEqual(["record_unavailable"]);
    await veto.close();
  });

  it("a store that cannot start its unit of work denies with record_unavailable (protect and guard), recording the deny", async () => {
    class NoUnitStore extends InMemoryStore {
      override async unit<T>(): Promise<T> {
        throw new Error("connect ECONNREFUSED 127.0.0.1:5432");
      }
    }
    const store = new NoUnitStore();
    const { veto, sink, logLines } = await makeVeto({ store });
    for (const call of [read(), write({ amount: 9000 }), "not a call"]) {
      const d = await veto.protect(call);
      expect([d.action, d.escalated, codes(d), d.approvers]).toEqual(["deny", false, ["record_unavailable"], []]);
      expect(d.reason).toContain("ECONNREFUSED");
      // The superseding deny is on file (through the sink) and in the store.
      expect(sink.last()).toMatchObject({
        decision_id: d.id,
        history: null,
        result: { action: "deny", reasons: [{ code: "record_unavailable" }] },
      });
      expect((await store.getDecision(d.id))?.action).toBe("deny");
    }
    expect(logLines.filter((l) => l["msg"] === "decision could not be recorded; denying")).toHaveLength(3);
    let ran = false;
    const guarded = veto.guard("crm.read", () => {
      ran = true;
    });
    const args = read()["arguments"] as Record<string, unknown>;
    const context = read()["context"] as { actorId: string; tenantId: string; environment: string };
    const denied = await guarded(args, context).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(denied).toBeInstanceOf(VetoDeniedError);
    expect((denied as VetoDeniedError).decision.reasons[0]?.code).toBe("record_unavailable");
    expect(ran).toBe(false);
    await veto.close();
  });

  it("a store that cannot count history denies with evaluation_error", async () => {
    const store = new InMemoryStore();
    store.countRecentDenies = async () => {
      throw new Error("store down");
    };
    const { veto } = await makeVeto({ store });
    const d = await veto.protect(read());
    expect([d.action, codes(d)]).toEqual(["deny", ["evaluation_error"]]);
    await veto.close();
  });
});

describe("evaluation errors, with a real bundle that misbehaves", () => {
  // Built by the real opa: answers a valid decision for most calls, something
  // that is not a decision for crm.explode, and nothing at all for crm.void.
  let dir: string;
  let broken: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "veto-broken-"));
    writeFileSync(
      join(dir, "broken.rego"),
      `package veto.crm

decision := {"action": "allow", "escalated": false, "reasons": [{"code": "read_only", "message": "ok"}], "approvers": []} if {
	not input.tool in {"crm.explode", "crm.void"}
}

decision := {"action": "launch", "reasons": []} if input.tool == "crm.explode"
`,
    );
    broken = join(dir, "broken.tar.gz");
    const run = spawnSync(requireOpa(), ["build", "-t", "wasm", "-e", "veto/crm/decision", "-o", broken, join(dir, "broken.rego")], {
      encoding: "utf8",
    });
    if (run.status !== 0) throw new Error(`opa build failed: ${run.stderr}`);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("an answer that is not a decision is deny evaluation_error", async () => {
    const { veto, logLines } = await makeVeto({ bundle: broken, data: bundleData() }); // the broken policy has no data.json of its own;
    const d = await veto.protect(read({}, {}, "crm.explode"));
    expect([d.action, d.escalated, codes(d), d.approvers]).toEqual(["deny", false, ["evaluation_error"], []]);
    expect(d.reason).toMatch(/not a decision/);
    expect(logLines.some((l) => l["msg"] === "policy evaluation failed; denying")).toBe(true);
    // The evaluator recovers for the next call.
    expect((await veto.protect(read())).action).toBe("allow");
    await veto.close();
  });

  it("no answer at all is deny evaluation_error", async () => {
    const { veto } = await makeVeto({ bundle: broken, data: bundleData() }); // the broken policy has no data.json of its own;
    const d = await veto.protect(read({}, {}, "crm.void"));
    expect([d.action, codes(d)]).toEqual(["deny", ["evaluation_error"]]);
    await veto.close();
  });
});
