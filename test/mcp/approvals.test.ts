// Approvals through the MCP proxy (docs/mcp.md, docs/contract.md §6): the
// proxy on a PostgreSQL database of this file's own, `veto serve
// --dev-login` on the same database answering through its HTTP API, a real
// MCP host over stdio, the counting upstream. An approved call is forwarded
// exactly once; rejected, expired, timed-out and declined ones never. An
// approver's amendment is forwarded once with the amended arguments when its
// own decision allows it, never otherwise.
import { spawnSync } from "node:child_process";
import { pino } from "pino";
import { ElicitRequestSchema, CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createVeto } from "../../adapter/index.js";
import { postgres } from "../../adapter/postgres/index.js";
import { APPROVER, OTHER_APPROVER, bundleData, requireBundle, requireCli } from "../helpers/index.js";
import {
  CONTEXT_FLAGS,
  UPSTREAM,
  amend,
  answer,
  dealToolMap,
  freshDatabase,
  startProxy,
  startServe,
  textOf,
  vetoMeta,
  type Host,
} from "./helpers.js";

let db: Awaited<ReturnType<typeof freshDatabase>>;
let serve: Awaited<ReturnType<typeof startServe>>;
const hosts: Host[] = [];

beforeAll(async () => {
  db = await freshDatabase("mcp");
  serve = await startServe(db.url);
}, 60_000);
afterEach(async () => {
  for (const host of hosts.splice(0)) await host.close();
});
afterAll(async () => {
  await serve?.stop();
  await db?.drop();
});

const needsApproval = {
  object: "opportunity",
  recordId: "opp_2",
  tenantId: "acme",
  changes: { amount: 9000 },
  reason: "Upsell agreed on the call",
};
const forwarded = (() => {
  const { reason: _reason, ...rest } = needsApproval;
  return rest;
})();

async function proxy(flags: string[], options: Parameters<typeof startProxy>[1] = {}): Promise<Host> {
  const host = await startProxy(["--postgres", db.url, ...flags], options);
  hosts.push(host);
  return host;
}

/** Call, and hand the decision id (from the first progress notification) to `answerWith` while the call waits. */
async function callAndAnswer(
  host: Host,
  answerWith: (decisionId: string) => Promise<unknown>,
): Promise<{ result: unknown; progress: string[] }> {
  const progress: string[] = [];
  let answered: Promise<unknown> | undefined;
  const result = await host.client.callTool({ name: "crm.update", arguments: needsApproval }, CallToolResultSchema, {
    timeout: 60_000,
    onprogress: (p) => {
      progress.push(p.message ?? "");
      const id = /decision (\S+)/.exec(p.message ?? "")?.[1];
      if (answered === undefined && id !== undefined) answered = answerWith(id);
    },
  });
  await answered;
  return { result, progress };
}

async function approvalStatus(decisionId: string, schema = "veto"): Promise<string | null> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    const { rows } = await client.query<{ approval_status: string | null }>(
      `SELECT approval_status FROM "${schema}".decisions WHERE id = $1`,
      [decisionId],
    );
    return rows[0]?.approval_status ?? null;
  } finally {
    await client.end();
  }
}

describe("approvals through veto serve on the same PostgreSQL", { timeout: 90_000 }, () => {
  it("an approval given through veto serve releases the waiting call, forwarded exactly once", async () => {
    const host = await proxy(["--approval-timeout-ms", "30000"]);
    let decisionId = "";
    const { result, progress } = await callAndAnswer(host, async (id) => {
      decisionId = id;
      expect(host.calls()).toEqual([]); // nothing runs while it waits
      expect(await answer(serve.base, id, "approve")).toBe(200);
    });
    expect((result as { isError?: boolean }).isError, textOf(result)).toBeFalsy();
    expect(progress[0]).toMatch(/waiting for approval of decision \S+ by user:crm-owner@acme.example/);
    expect(host.calls().map((c) => ({ name: c.name, arguments: c.arguments }))).toEqual([{ name: "crm.update", arguments: forwarded }]);
    // Claimed use-once in the store before it ran.
    expect(await approvalStatus(decisionId)).toBe("executed");
    // A second approval of the same decision is refused by the service; nothing more is forwarded.
    expect(await answer(serve.base, decisionId, "approve")).toBe(409);
    expect(host.calls()).toHaveLength(1);
  });

  it("a rejection ends the wait with approval_rejected; the upstream is never called", async () => {
    const host = await proxy(["--approval-timeout-ms", "30000"]);
    const { result } = await callAndAnswer(host, (id) => answer(serve.base, id, "reject"));
    expect(vetoMeta(result)).toMatchObject({ code: "approval_rejected", action: "require_approval" });
    expect(host.calls()).toEqual([]);
  });

  it("an approval that expires unanswered: approval_expired; never forwarded, and approving it later is refused", async () => {
    const host = await proxy(["--approval-ttl-ms", "1500", "--approval-timeout-ms", "30000"]);
    const { result } = await callAndAnswer(host, async () => {});
    expect(vetoMeta(result).code).toBe("approval_expired");
    expect(await answer(serve.base, vetoMeta(result).decisionId!, "approve")).toBe(410);
    expect(host.calls()).toEqual([]);
  });

  it("a wait past --approval-timeout-ms: approval_timeout; an approval given afterwards runs nothing", async () => {
    const host = await proxy(["--approval-timeout-ms", "1500"]);
    const started = Date.now();
    const { result } = await callAndAnswer(host, async () => {});
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    expect(vetoMeta(result).code).toBe("approval_timeout");
    expect(await answer(serve.base, vetoMeta(result).decisionId!, "approve")).toBe(200);
    await new Promise((r) => setTimeout(r, 500));
    expect(host.calls()).toEqual([]);
  });

  it("a host that cancels its waiting call ends the wait; an approval given afterwards runs nothing", async () => {
    const host = await proxy(["--approval-timeout-ms", "30000"]);
    const cancel = new AbortController();
    let decisionId: string | undefined;
    const outcome = await host.client
      .callTool({ name: "crm.update", arguments: needsApproval }, CallToolResultSchema, {
        signal: cancel.signal,
        timeout: 60_000,
        onprogress: (p) => {
          decisionId ??= /decision (\S+)/.exec(p.message ?? "")?.[1];
          cancel.abort(new Error("the user stopped the agent"));
        },
      })
      .then(
        () => "answered",
        () => "cancelled",
      );
    expect(outcome).toBe("cancelled");
    expect(decisionId).toBeDefined();
    // The proxy stopped waiting: approving now claims nothing and forwards nothing.
    expect(await answer(serve.base, decisionId!, "approve")).toBe(200);
    await new Promise((r) => setTimeout(r, 1000));
    expect(host.calls()).toEqual([]);
    expect(await approvalStatus(decisionId!)).toBe("approved");
    // And the proxy is still up.
    const read = await host.client.callTool({ name: "crm.read", arguments: { object: "contact", recordId: "c_1", tenantId: "acme" } });
    expect(read.isError).toBeFalsy();
  });

  it("sends an URL elicitation to the inbox to a host that takes them; approved there, forwarded once", async () => {
    const urls: string[] = [];
    const host = await proxy(["--approval-timeout-ms", "30000", "--inbox-url", `${serve.base}/approvals/{decisionId}`], {
      capabilities: { elicitation: { url: {} } },
      setup: (client) =>
        client.setRequestHandler(ElicitRequestSchema, async (request) => {
          const params = request.params as { mode: string; url: string; elicitationId: string };
          expect(params.mode).toBe("url");
          urls.push(params.url);
          // The person follows the link and approves there; "accept" alone approves nothing.
          expect(await answer(serve.base, params.elicitationId, "approve")).toBe(200);
          return { action: "accept" };
        }),
    });
    const result = await host.client.callTool({ name: "crm.update", arguments: needsApproval }, CallToolResultSchema, { timeout: 60_000 });
    expect((result as { isError?: boolean }).isError, textOf(result)).toBeFalsy();
    expect(urls).toHaveLength(1);
    expect(urls[0]).toMatch(new RegExp(`^${serve.base}/approvals/[0-9A-Z]{26}$`));
    expect(host.calls()).toHaveLength(1);
  });

  it("a host whose user declines the URL elicitation: approval_declined, never forwarded", async () => {
    const host = await proxy(["--approval-timeout-ms", "30000", "--inbox-url", `${serve.base}/approvals/{decisionId}`], {
      capabilities: { elicitation: { url: {} } },
      setup: (client) => client.setRequestHandler(ElicitRequestSchema, async () => ({ action: "decline" })),
    });
    const started = Date.now();
    const result = await host.client.callTool({ name: "crm.update", arguments: needsApproval }, CallToolResultSchema, { timeout: 60_000 });
    expect(vetoMeta(result).code).toBe("approval_declined");
    // Ended by the decline, not by the 30 s timeout.
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(host.calls()).toEqual([]);
  });
});

describe("the approval service in the proxy (--listen, no PostgreSQL)", { timeout: 60_000 }, () => {
  it("an approval given to the proxy's own service releases the call, forwarded once", async () => {
    const host = await startProxy(["--listen", "127.0.0.1:0", "--dev-login", "--approval-timeout-ms", "30000"]);
    hosts.push(host);
    const base = /approval service listening on (http:\/\/\S+)/.exec(host.stderr())?.[1];
    expect(base).toBeDefined();
    const { result } = await callAndAnswer(host, async (id) => expect(await answer(base!, id, "approve")).toBe(200));
    expect((result as { isError?: boolean }).isError, textOf(result)).toBeFalsy();
    expect(host.calls().map((c) => c.arguments)).toEqual([forwarded]);
  });
});

describe("--schema: the proxy and veto serve on another schema of the database", { timeout: 90_000 }, () => {
  const SCHEMA = "crm_agents";

  it("an approval given through veto serve --schema releases the proxy's call on that schema, and only there", async () => {
    const migrated = spawnSync(process.execPath, [requireCli(), "db", "migrate", "--postgres", db.url, "--schema", SCHEMA], {
      encoding: "utf8",
    });
    expect(migrated.status, migrated.stderr).toBe(0);
    const other = await startServe(db.url, ["--schema", SCHEMA]);
    try {
      const host = await proxy(["--schema", SCHEMA, "--approval-timeout-ms", "30000"]);
      let decisionId = "";
      const { result } = await callAndAnswer(host, async (id) => {
        decisionId = id;
        // The default schema's service knows nothing of it; the schema's own answers it.
        expect(await answer(serve.base, id, "approve")).toBe(404);
        expect(await answer(other.base, id, "approve")).toBe(200);
      });
      expect((result as { isError?: boolean }).isError, textOf(result)).toBeFalsy();
      expect(host.calls().map((c) => c.arguments)).toEqual([forwarded]);
      expect(await approvalStatus(decisionId, SCHEMA)).toBe("executed");
      expect(await approvalStatus(decisionId)).toBeNull();
    } finally {
      await other.stop();
    }
  });

  it("a schema that was never migrated is refused at start, naming it", () => {
    const run = spawnSync(
      process.execPath,
      [
        requireCli(),
        "mcp-proxy",
        "--bundle",
        requireBundle(),
        "--postgres",
        db.url,
        "--schema",
        "never_migrated",
        ...CONTEXT_FLAGS,
        "--",
        process.execPath,
        UPSTREAM,
      ],
      { encoding: "utf8", input: "" },
    );
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(/never_migrated/);
    expect(run.stdout).toBe("");
  });
});

describe("a call the approver amended while the proxy waits (docs/contract.md §6, amend)", { timeout: 90_000 }, () => {
  const amendedTo = (amount: number) => ({ ...forwarded, changes: { amount } });

  it("amended to an allowed call through veto serve: forwarded once with the amended arguments; the result says so", async () => {
    const host = await proxy(["--approval-timeout-ms", "30000"]);
    let original = "";
    let amendedId = "";
    const { result } = await callAndAnswer(host, async (id) => {
      original = id;
      const { status, body } = await amend(serve.base, id, amendedTo(100));
      expect(status).toBe(200);
      amendedId = (body as { decision: { id: string; action: string } }).decision.id;
      expect((body as { decision: { action: string } }).decision.action).toBe("allow");
    });
    expect((result as { isError?: boolean }).isError, textOf(result)).toBeFalsy();
    expect(textOf(result)).toMatch(/^Note: the reviewer user:crm-owner@acme\.example amended this call's arguments before it ran/);
    expect(textOf(result)).toContain('"amount":100');
    expect((result as { content: { text: string }[] }).content[1]?.text).toContain('"done":"crm.update"');
    expect(vetoMeta(result)).toMatchObject({ amended: { from: original, decisionId: amendedId, by: "user:crm-owner@acme.example" } });
    expect(host.calls().map((c) => ({ name: c.name, arguments: c.arguments }))).toEqual([
      { name: "crm.update", arguments: amendedTo(100) },
    ]);
    // The original never runs; the amended call was claimed once.
    expect(await approvalStatus(original)).toBe("amended");
    const { rows } = await pgQuery(`SELECT executed_at_ms FROM veto.decisions WHERE id = $1`, [amendedId]);
    expect(rows[0]?.executed_at_ms).not.toBeNull();
  });

  it("amended to a call that needs approval (approved by the amender): forwarded once, and that approval is executed", async () => {
    const host = await proxy(["--approval-timeout-ms", "30000"]);
    let amendedId = "";
    const { result } = await callAndAnswer(host, async (id) => {
      const { body } = await amend(serve.base, id, amendedTo(8000));
      amendedId = (body as { decision: { id: string } }).decision.id;
    });
    expect((result as { isError?: boolean }).isError, textOf(result)).toBeFalsy();
    expect(host.calls().map((c) => c.arguments)).toEqual([amendedTo(8000)]);
    expect(await approvalStatus(amendedId)).toBe("executed");
  });

  it("amended to a call the policy denies: never forwarded; the host reads the policy's code", async () => {
    const host = await proxy(["--approval-timeout-ms", "30000"]);
    const { result } = await callAndAnswer(host, async (id) => {
      expect((await amend(serve.base, id, amendedTo(10_000_000))).status).toBe(200);
    });
    expect(vetoMeta(result)).toMatchObject({ code: "amount_over_limit", action: "deny" });
    expect(textOf(result)).toMatch(/^The reviewer amended the call, and the policy denied the amended call/);
    expect(host.calls()).toEqual([]);
  });

  it("amended, then the amendment rejected: never forwarded, and the rejection does not count towards escalation", async () => {
    const data = structuredClone(bundleData()) as { veto: { config: { tenants: Record<string, Record<string, unknown>> } } };
    data.veto.config.tenants["acme"]!["approvers"] = [OTHER_APPROVER, "user:cfo@acme.example"];
    const moved = await createVeto({
      bundle: requireBundle(),
      data,
      logger: pino({ level: "silent" }),
      store: postgres({ connectionString: db.url, records: true }),
    });
    try {
      const host = await proxy(["--approval-timeout-ms", "30000"]);
      const { result } = await callAndAnswer(host, async (id) => {
        const { decision } = await moved.amend({ decisionId: id, reviewerId: APPROVER, arguments: amendedTo(7000) });
        expect(decision.action).toBe("require_approval");
        await moved.reject({ decisionId: decision.id, reviewerId: "user:cfo@acme.example" });
      });
      expect(vetoMeta(result)).toMatchObject({ code: "approval_rejected" });
      expect(host.calls()).toEqual([]);
      const { rows } = await pgQuery(
        `SELECT count(*)::int AS n FROM veto.decisions WHERE approval_status = 'rejected' AND amendment IS NOT NULL AND counts_towards_escalation`,
      );
      expect(rows[0]?.n).toBe(0);
    } finally {
      await moved.close();
    }
  });

  it("a mapped tool: an amendment that maps back is forwarded as its MCP arguments; one that does not runs nothing and claims nothing", async () => {
    const map = dealToolMap();
    const host = await proxy(["--tool-map", map, "--approval-timeout-ms", "30000"]);
    const call = (deal: Record<string, unknown>, answerWith: (id: string) => Promise<unknown>) => {
      let answered: Promise<unknown> | undefined;
      return host.client
        .callTool({ name: "deal_update", arguments: { deal, reason: "upsell" } }, CallToolResultSchema, {
          timeout: 60_000,
          onprogress: (p) => {
            const id = /decision (\S+)/.exec(p.message ?? "")?.[1];
            if (answered === undefined && id !== undefined) answered = answerWith(id);
          },
        })
        .then(async (r) => (await answered, r));
    };
    const mapped = (deal: Record<string, unknown>) => ({
      object: "opportunity",
      recordId: deal["id"],
      tenantId: deal["tenant"],
      changes: deal["set"],
      amount: (deal["set"] as { amount: number }).amount,
      mcp: { name: "deal_update", arguments: { deal } },
    });
    const deal = { id: "opp_m", tenant: "acme", set: { amount: 9000 } };
    const lower = { ...deal, set: { amount: 6000 } };
    const ok = await call(deal, (id) => amend(serve.base, id, mapped(lower)));
    expect((ok as { isError?: boolean }).isError, textOf(ok)).toBeFalsy();
    expect(host.calls().map((c) => c.arguments)).toEqual([{ deal: lower }]);
    // The policy's fields changed, the MCP arguments not: what would be forwarded is not what was decided.
    let amendedId = "";
    const refused = await call(deal, async (id) => {
      const { body } = await amend(serve.base, id, { ...mapped(deal), amount: 6000, changes: { amount: 6000 } });
      amendedId = (body as { decision: { id: string } }).decision.id;
    });
    expect(vetoMeta(refused).code).toBe("call_mismatch");
    expect(host.calls()).toHaveLength(1);
    expect(await approvalStatus(amendedId)).toBe("approved");
  });
});

async function pgQuery(text: string, values: unknown[] = []): Promise<{ rows: Record<string, unknown>[] }> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}
