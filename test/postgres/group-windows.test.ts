/**
 * A bundle reload that changes the escalation window while decisions of one
 * key wait in the same group (docs/contract.md §3): each decision's count is
 * over its own bundle's window, not over the window of another member of
 * its group. Seeded: how many denies lie between the two windows' starts,
 * and the order the two bundles' calls join the group in.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { createVeto, type Decision } from "../../adapter/index.js";
import { PostgresStore, migrate } from "../../adapter/postgres/index.js";
import { seededRandom } from "../helpers/generate-calls.js";
import { BUNDLE, requireBundle } from "../helpers/index.js";
import { filesOf, withFile } from "../helpers/signing.js";
import { pgUrl, testDatabase } from "../helpers/postgres.js";

const SEED = Number(process.env.VETO_WINDOW_SEED ?? Date.now() % 2 ** 31);
const TENANT = "globex";
const db = testDatabase();

let server: Server;
let serving: Buffer = Buffer.alloc(0);
let etag = 0;

beforeAll(async () => {
  requireBundle();
  server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/gzip", etag: `"${etag}"` }).end(serving);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await db.dropSchemas();
});

const allow = (actorId: string): Record<string, unknown> => ({
  tool: "crm.read",
  arguments: { object: "opportunity", recordId: "opp_1", tenantId: TENANT },
  context: { actorId, tenantId: TENANT, environment: "production", reason: "group windows test" },
});

describe("PostgreSQL: one group, two bundles' windows for one key", () => {
  it(`each decision counts over its own bundle's window (seeds from ${SEED})`, { timeout: 120_000 }, async () => {
    const committed = readFileSync(BUNDLE);
    const data = JSON.parse((await filesOf(committed)).find((f) => f.name === "data.json")!.content.toString("utf8")) as {
      veto: { config: Record<string, unknown> };
    };
    data.veto.config["escalation"] = { deny_threshold: 3, window_seconds: 60 };
    const shortWindow = await withFile(committed, "data.json", Buffer.from(JSON.stringify(data)));
    for (let k = 0; k < 4; k++) {
      const seed = SEED + k;
      const random = seededRandom(seed);
      const schema = db.schema("group_windows");
      await migrate({ connectionString: pgUrl(), schema });
      // One connection: while it is held, the next groups wait to start (and go on taking members).
      const store = await PostgresStore.connect({ connectionString: pgUrl(), schema, pool: { max: 1 } });
      const longFirst = random() < 0.5;
      serving = longFirst ? committed : shortWindow;
      etag += 1;
      const veto = await createVeto({
        bundle: { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/crm.tar.gz`, pollIntervalMs: 3_600_000 },
        logger: pino({ level: "silent" }),
        store,
        recordSink: store.recordSink(),
      });
      const actor = `agent:group-windows-${seed}`;
      try {
        // Denies inside the long window (900 s) and outside the short one (60 s).
        const old = 1 + Math.floor(random() * 4);
        const now = await store.now();
        for (let i = 0; i < old; i++) {
          await db.pool.query(
            `INSERT INTO "${schema}".decisions (id, action, escalated, actor_id, tenant_id, at_ms, approvers, counts_towards_escalation)
             VALUES ($1, 'deny', false, $2, $3, $4, '{}', true)`,
            [`old-${i}`, actor, TENANT, now - 120_000 - 1000 * i],
          );
        }
        // Every other run, the store knows the key first: the group is then decided on the count it knows (one round trip).
        const known = k % 2 === 1;
        // (An escalated deny once the old denies reach the threshold: counted in both windows.)
        const extra = known && (await veto.protect(allow(actor))).action === "deny" ? 1 : 0;
        const before = store.groupStats();
        let release!: () => void;
        const held = new Promise<void>((resolve) => (release = resolve));
        let holding!: () => void;
        const holds = new Promise<void>((resolve) => (holding = resolve));
        const holder = store.unit(undefined, async () => {
          holding();
          await held;
        });
        await holds;
        // A group that waits for the connection, then the group the two calls join, before and after the reload.
        const filler = veto.protect(allow("agent:group-windows-filler"));
        await new Promise((resolve) => setTimeout(resolve, 20));
        const first = veto.protect(allow(actor));
        serving = longFirst ? shortWindow : committed;
        etag += 1;
        expect((await veto.refreshBundle()).status, `seed ${seed}`).toBe("activated");
        const second = veto.protect(allow(actor));
        release();
        await holder;
        await filler;
        const [a, b] = await Promise.all([first, second]);
        const recorded = async (d: Decision): Promise<number> => {
          const { rows } = await db.pool.query<{ line: string }>(`SELECT line FROM "${schema}".records WHERE decision_id = $1`, [d.id]);
          return (JSON.parse(rows[0]!.line) as { history: { recent_denies: number } }).history.recent_denies;
        };
        if (known) expect(store.groupStats().predicted, `seed ${seed}: predicted`).toBeGreaterThan(before.predicted);
        const [long, short] = longFirst ? [a, b] : [b, a];
        expect(await recorded(long), `seed ${seed}: the 900 s window's call counts the ${old} old denies`).toBe(
          old + extra + (!longFirst && short.action === "deny" ? 1 : 0),
        );
        expect(await recorded(short), `seed ${seed}: the 60 s window's call counts only the recent (and the group's deny before it)`).toBe(
          extra + (longFirst && long.action === "deny" ? 1 : 0),
        );
        expect([long.action, long.escalated], `seed ${seed}`).toEqual(old + extra >= 3 ? ["deny", true] : ["allow", false]);
      } finally {
        await veto.close();
        await store.close();
      }
    }
  });
});
