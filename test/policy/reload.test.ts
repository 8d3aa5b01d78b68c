// Hot reload from a bundle server: a local node:http server speaks
// OPA's bundle service conventions (ETag / If-None-Match / 304); bundles are
// built and signed by the real opa with the TEST-ONLY key. A new bundle is
// picked up, a bad one is refused while the last good one stays in force, and
// swapping under concurrent load loses or mixes no decision.
import { createHash, createPrivateKey, sign } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BundleLoadError, BundleRollbackError, BundleSignatureError, VetoOptionsError, type BundleChangeEvent, type Decision, type DecisionEventRecord, type Veto } from "../../adapter/index.js";
import { bundleVersionHashOfTarball } from "../../adapter/policy/index.js";
import { BUNDLE, MemorySink, makeVeto, requireBundle, requireOpa, write, type TestVeto } from "../helpers/index.js";
import { seededRandom } from "../helpers/generate-calls.js";
import { filesOf, key, opaBuildWasm, pem, policyCopy, repack, signaturesJson, tokenParts, withFile } from "../helpers/signing.js";

/** A bundle server: serves `bytes` with a strong ETag, answers 304 to a matching If-None-Match. */
class BundleServer {
  readonly requests: IncomingHttpHeaders[] = [];
  #bytes: Buffer = Buffer.alloc(0);
  #etag = "";
  /** Answer every request with this status, or never answer ("hang"). */
  failWith: number | "hang" | undefined;
  readonly #server: Server;

  constructor() {
    this.#server = createServer((req, res) => {
      this.requests.push(req.headers);
      if (this.failWith === "hang") {
        req.resume();
      } else if (this.failWith !== undefined) {
        res.writeHead(this.failWith).end("unavailable");
      } else if (req.headers["if-none-match"] === this.#etag) {
        res.writeHead(304, { etag: this.#etag }).end();
      } else {
        res.writeHead(200, { "content-type": "application/gzip", etag: this.#etag }).end(this.#bytes);
      }
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/bundles/crm.tar.gz`;
  }

  serve(bytes: Buffer): void {
    this.#bytes = bytes;
    this.#etag = `"${createHash("sha256").update(bytes).digest("hex").slice(0, 16)}"`;
    this.failWith = undefined;
  }

  get etag(): string {
    return this.#etag;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

let dir: string;
let server: BundleServer;
/** A: the policy as committed; B: close_date is sensitive (write() needs approval); C: another blocked destination (write() allowed). */
const bundles: Record<"A" | "B" | "C" | "unusable", Buffer> = {} as never;
const hashes: Record<"A" | "B" | "C", string> = {} as never;
const verdictOf = new Map<string, Decision["action"]>();

beforeAll(async () => {
  requireBundle();
  requireOpa();
  dir = mkdtempSync(join(tmpdir(), "veto-reload-"));
  const signed = (name: string, policyDir?: string): Buffer =>
    readFileSync(
      opaBuildWasm(dir, join(dir, `${name}.tar.gz`), {
        signingKey: key("es256-private"),
        signingAlg: "ES256",
        revision: `reload-${name}`,
        ...(policyDir === undefined ? {} : { policyDir }),
      }),
    );
  bundles.A = signed("A");
  bundles.B = signed("B", policyCopy(join(dir, "b"), (d) => {
    const sensitive = d.veto.config["sensitive_fields"] as Record<string, string[]>;
    sensitive["opportunity"] = [...(sensitive["opportunity"] ?? []), "close_date"];
  }));
  bundles.C = signed("C", policyCopy(join(dir, "c"), (d) => {
    d.veto.config["blocked_destinations"] = [...(d.veto.config["blocked_destinations"] as string[]), "example.org"];
  }));
  // Signed and intact, but its data document is unusable: refused at load, not at verification.
  bundles.unusable = signed("unusable", policyCopy(join(dir, "u"), (d) => {
    d.veto.config["escalation"] = { deny_threshold: 3, window_seconds: -1 };
  }));
  for (const name of ["A", "B", "C"] as const) hashes[name] = await bundleVersionHashOfTarball(bundles[name]);
  verdictOf.set(hashes.A, "allow").set(hashes.B, "require_approval").set(hashes.C, "allow");
  expect(new Set(Object.values(hashes)).size).toBe(3);

  server = new BundleServer();
  await server.start();
});

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

let current: TestVeto | undefined;
afterEach(async () => {
  await current?.veto.close();
  current = undefined;
});

/** A record sink that takes a turn of the event loop per write, as a real one does, so decisions span reloads. */
/** A sink that takes a few milliseconds per record, as a durable one does, so decisions are still in flight when a swap lands. */
class SlowSink extends MemorySink {
  /** While set, writes wait for it: a decision made, its record not yet written. */
  hold: Promise<void> | undefined;
  /** Writes waiting on `hold`. */
  held = 0;

  override async write(record: Parameters<MemorySink["write"]>[0]): Promise<void> {
    if (this.hold !== undefined) {
      this.held++;
      await this.hold;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
    await super.write(record);
  }
}

async function serverVeto(
  options: {
    pollIntervalMs?: number;
    timeoutMs?: number;
    onBundleChange?: (e: BundleChangeEvent) => void;
    headers?: Record<string, string>;
    sink?: MemorySink;
  } = {},
): Promise<TestVeto> {
  current = await makeVeto({
    ...(options.sink === undefined ? {} : { recordSink: options.sink }),
    bundle: {
      url: server.url,
      pollIntervalMs: options.pollIntervalMs ?? 3_600_000,
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.headers === undefined ? {} : { headers: options.headers }),
    },
    verificationKey: pem("es256-public"),
    ...(options.onBundleChange === undefined ? {} : { onBundleChange: options.onBundleChange }),
  });
  return current;
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function decisionRecords(t: TestVeto): DecisionEventRecord[] {
  return t.sink.records.filter((r): r is DecisionEventRecord => r.type === "decision");
}

describe("loading from a bundle server", () => {
  it("the first bundle comes from the server; a poll sends If-None-Match and a 304 keeps it", async () => {
    server.serve(bundles.A);
    const t = await serverVeto({ headers: { authorization: "Bearer test-token" } });
    expect(t.veto.bundle).toEqual({ revision: "reload-A", hash: hashes.A });
    const first = server.requests.at(-1);
    expect(first?.["if-none-match"]).toBeUndefined();
    expect(first?.["authorization"]).toBe("Bearer test-token");

    expect(await t.veto.refreshBundle()).toEqual({ status: "not_modified" });
    expect(server.requests.at(-1)?.["if-none-match"]).toBe(server.etag);
    expect(t.veto.bundle.hash).toBe(hashes.A);
    expect(t.logLines).toContainEqual(expect.objectContaining({ component: "bundle", msg: "bundle activated", bundle: { revision: "reload-A", hash: hashes.A }, url: server.url, etag: server.etag }));
  });

  it("createVeto rejects when the first bundle cannot be had: server error, tampered, unsigned", async () => {
    server.serve(bundles.A);
    server.failWith = 503;
    await expect(serverVeto()).rejects.toThrow(BundleLoadError);
    await expect(serverVeto()).rejects.toThrow(/cannot download bundle http:\/\/127\.0\.0\.1:\d+\/bundles\/crm\.tar\.gz: HTTP 503/);
    server.serve(await withFile(bundles.A, "policy/veto/crm/tool.rego", null));
    await expect(serverVeto()).rejects.toMatchObject({ name: "BundleSignatureError", check: "file_missing" });
    server.serve(readFileSync(BUNDLE));
    await expect(serverVeto()).rejects.toMatchObject({ name: "BundleSignatureError", check: "unsigned" });
  });

  it("options: a non-http URL is refused; a path or bytes has nothing to poll", async () => {
    await expect(makeVeto({ bundle: { url: "file:///etc/passwd" } })).rejects.toThrow(/bundle\.url must be an http: or https: URL|bundle is required/);
    const t = await makeVeto();
    current = t;
    expect(await t.veto.refreshBundle()).toEqual({ status: "static" });
  });
});

describe("hot reload", () => {
  it("a new bundle is picked up: decisions name its hash, its data flips the verdict, the swap is logged and hooked", async () => {
    server.serve(bundles.A);
    const changes: BundleChangeEvent[] = [];
    const t = await serverVeto({ onBundleChange: (e) => void changes.push(e) });
    const before = await t.veto.protect(write());
    expect(before).toMatchObject({ action: "allow", bundle: { revision: "reload-A", hash: hashes.A } });

    server.serve(bundles.B);
    const refresh = await t.veto.refreshBundle();
    expect(refresh).toEqual({ status: "activated", version: { revision: "reload-B", hash: hashes.B }, previous: { revision: "reload-A", hash: hashes.A } });
    expect(t.veto.bundle.hash).toBe(hashes.B);

    const after = await t.veto.protect(write());
    expect(after).toMatchObject({ action: "require_approval", bundle: { revision: "reload-B", hash: hashes.B } });
    expect(after.reasons.map((r) => r.code)).toEqual(["sensitive_field"]);
    const records = decisionRecords(t);
    expect(records.map((r) => [r.decision_id, r.bundles["crm"]?.hash, r.result.action])).toEqual([
      [before.id, hashes.A, "allow"],
      [after.id, hashes.B, "require_approval"],
    ]);

    await until(() => changes.length === 1, "onBundleChange");
    expect(changes[0]).toEqual({ previous: { revision: "reload-A", hash: hashes.A }, current: { revision: "reload-B", hash: hashes.B }, issuedAt: null, url: server.url, etag: server.etag });
    expect(t.logLines).toContainEqual(expect.objectContaining({ level: 30, msg: "bundle activated", bundle: { revision: "reload-B", hash: hashes.B }, previous: { revision: "reload-A", hash: hashes.A } }));

    // The same version in other bytes (repacked, new ETag): downloaded and verified, nothing swapped.
    server.serve(await repack(await filesOf(bundles.B), "./"));
    expect(await t.veto.refreshBundle()).toEqual({ status: "unchanged", version: { revision: "reload-B", hash: hashes.B } });
    expect(changes).toHaveLength(1);
  });

  it("polling on its own picks up a new bundle; close() stops polling", async () => {
    server.serve(bundles.A);
    const t = await serverVeto({ pollIntervalMs: 25 });
    server.serve(bundles.C);
    await until(() => t.veto.bundle.hash === hashes.C, "the poller to activate C");
    expect((await t.veto.protect(write())).bundle.hash).toBe(hashes.C);

    await t.veto.close();
    current = undefined;
    const seen = server.requests.length;
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(server.requests.length).toBe(seen);
  });

  it.each([
    ["a tampered bundle (flipped byte in data.json)", "signature", async () => {
      const data = (await filesOf(bundles.B)).find((f) => f.name === "data.json")?.content ?? Buffer.alloc(0);
      return await withFile(bundles.B, "data.json", Buffer.from(data.toString("utf8").replace("close_date", "close_datf")));
    }, { check: "file_hash", file: "data.json" }],
    ["an extra file", "signature", async () => await withFile(bundles.B, "policy/veto/crm/extra.rego", Buffer.from("package veto.crm\n")), { check: "file_unlisted" }],
    ["an unsigned bundle", "signature", async () => readFileSync(BUNDLE), { check: "unsigned" }],
    ["a signed bundle whose data is unusable", "unusable", async () => bundles.unusable, {}],
    ["bytes that are not a bundle", "unusable", async () => Buffer.from("<html>maintenance</html>"), {}],
  ] as const)("%s is refused and decisions continue on the bundle in force", async (_label, reason, make, logged) => {
    server.serve(bundles.A);
    const t = await serverVeto();
    server.serve(await make());
    const refresh = await t.veto.refreshBundle();
    expect(refresh.status).toBe("rejected");
    if (reason === "signature") expect((refresh as { error: Error }).error).toBeInstanceOf(BundleSignatureError);
    expect(t.veto.bundle.hash).toBe(hashes.A);
    expect(await t.veto.protect(write())).toMatchObject({ action: "allow", bundle: { hash: hashes.A } });
    expect(t.logLines).toContainEqual(
      expect.objectContaining({ level: 50, component: "bundle", msg: "new bundle rejected; the bundle in force stays", reason, url: server.url, bundle: { revision: "reload-A", hash: hashes.A }, ...logged }),
    );

    // Fixed on the server: the next poll brings it in.
    server.serve(bundles.B);
    expect((await t.veto.refreshBundle()).status).toBe("activated");
    expect((await t.veto.protect(write())).bundle.hash).toBe(hashes.B);
  });

  it.each([
    ["HTTP 500", 500, /HTTP 500/],
    ["no answer within timeoutMs", "hang", /no complete answer within 200 ms/],
  ] as const)("a server that fails (%s) is logged; the bundle in force stays", async (_label, failWith, message) => {
    server.serve(bundles.A);
    const t = await serverVeto({ timeoutMs: 200 });
    server.failWith = failWith;
    const refresh = await t.veto.refreshBundle();
    expect(refresh).toMatchObject({ status: "rejected", error: { name: "BundleLoadError" } });
    expect((refresh as { error: Error }).error.message).toMatch(message);
    expect(t.logLines).toContainEqual(expect.objectContaining({ level: 50, reason: "download", msg: "new bundle rejected; the bundle in force stays" }));
    expect((await t.veto.protect(write())).bundle.hash).toBe(hashes.A);
  });

  it("a rejected bundle is logged once per distinct failure: repeats are quiet, a new failure or a recovery logs again (seeded)", async () => {
    const seed = Number(process.env["VETO_TEST_SEED"] ?? Date.now() % 2 ** 31);
    const random = seededRandom(seed);
    const tampered = await withFile(bundles.B, "policy/veto/crm/extra.rego", Buffer.from("package veto.crm\n"));
    const notABundle = Buffer.from("<html>maintenance</html>");
    type Step = "tampered" | "not_a_bundle" | "http_500" | "A" | "B";
    const steps: Step[] = ["tampered", "tampered", "tampered", "not_a_bundle", "not_a_bundle", "tampered", "A", "tampered"];
    const kinds: Step[] = ["tampered", "not_a_bundle", "http_500", "A", "B"];
    for (let i = 0; i < 24; i++) steps.push(kinds[Math.floor(random() * kinds.length)]!);

    server.serve(bundles.A);
    const t = await serverVeto();
    const rejectedLines = (): number => t.logLines.filter((l) => l["msg"] === "new bundle rejected; the bundle in force stays").length;
    let last: string | undefined;
    let expected = 0;
    for (const [i, step] of steps.entries()) {
      if (step === "http_500") server.failWith = 500;
      else server.serve(step === "tampered" ? tampered : step === "not_a_bundle" ? notABundle : bundles[step]);
      const refresh = await t.veto.refreshBundle();
      const failed = step === "tampered" || step === "not_a_bundle" || step === "http_500";
      const context = `seed ${seed} (VETO_TEST_SEED to replay), step ${i}: ${steps.slice(0, i + 1).join(" ")}`;
      expect(refresh.status === "rejected", context).toBe(failed);
      if (failed && last !== step) expected++;
      last = failed ? step : undefined;
      expect(rejectedLines(), context).toBe(expected);
    }
    expect(expected).toBeGreaterThanOrEqual(4);
  });

  it("swapping under concurrent protect load loses or mixes no decision", async () => {
    server.serve(bundles.A);
    const sink = new SlowSink();
    const t = { ...(await serverVeto({ sink })), sink };
    const calls = 2_000;
    const pending: Promise<Decision>[] = [];
    const swaps: string[] = [];
    const order = ["B", "C", "A", "B", "C", "B"] as const;

    const swap = async (next: keyof typeof hashes): Promise<void> => {
      server.serve(bundles[next]);
      const refresh = await t.veto.refreshBundle();
      expect(refresh.status).toBe("activated");
      swaps.push(t.veto.bundle.hash);
    };
    // Seven segments of calls; at the start of each of the last six a swap begins and runs
    // while calls keep coming; the previous swap is in force before the next begins.
    let swapping = Promise.resolve();
    let swapsStarted = 0;
    for (let i = 0; i < calls; i++) {
      const segment = Math.floor((i * (order.length + 1)) / calls);
      if (segment > swapsStarted) {
        await swapping;
        swapping = swap(order[swapsStarted] ?? "A");
        swapsStarted++;
      }
      pending.push(t.veto.protect(write({ recordId: `opp_${i}` })));
      if (i % 20 === 19) await new Promise((resolve) => setImmediate(resolve));
    }
    await swapping;
    const decisions = await Promise.all(pending);

    expect(swaps).toEqual([hashes.B, hashes.C, hashes.A, hashes.B, hashes.C, hashes.B]);
    expect(decisions).toHaveLength(calls);
    expect(new Set(decisions.map((d) => d.id)).size).toBe(calls);
    for (const d of decisions) {
      expect(verdictOf.has(d.bundle.hash)).toBe(true);
      expect(d.action).toBe(verdictOf.get(d.bundle.hash));
    }
    // Every bundle really decided some of the calls.
    const used = new Set(decisions.map((d) => d.bundle.hash));
    expect(used).toEqual(new Set([hashes.A, hashes.B, hashes.C]));

    // A swap that lands while a call is under way (decided, its record not yet
    // written): held deterministically, not left to the machine's timing.
    let release!: () => void;
    sink.hold = new Promise<void>((resolve) => (release = resolve));
    const held = t.veto.protect(write({ recordId: "opp_held" }));
    while (sink.held === 0) await new Promise((resolve) => setImmediate(resolve));
    server.serve(bundles.A);
    expect((await t.veto.refreshBundle()).status).toBe("activated");
    sink.hold = undefined;
    release();
    const heldDecision = await held;
    expect(heldDecision.bundle.hash).toBe(hashes.B);
    expect(heldDecision.action).toBe(verdictOf.get(hashes.B));
    expect(t.veto.bundle.hash).toBe(hashes.A);
    decisions.push(heldDecision);

    // Every decision has exactly one record, naming the same bundle and verdict.
    const records = new Map(decisionRecords(t).map((r) => [r.decision_id, r]));
    expect(records.size).toBe(calls + 1);
    for (const d of decisions) {
      const r = records.get(d.id);
      expect(r?.bundles["crm"]).toEqual(d.bundle);
      expect(r?.result.action).toBe(d.action);
    }
  });
});

describe("veto.bundle and close()", () => {
  it("veto.bundle is the bundle in force, frozen", async () => {
    server.serve(bundles.A);
    const t = await serverVeto();
    const v: Veto = t.veto;
    expect(Object.isFrozen(v.bundle)).toBe(true);
    server.serve(bundles.C);
    await v.refreshBundle();
    expect(v.bundle).toEqual({ revision: "reload-C", hash: hashes.C });
  });
});

describe("deny history retention follows the bundle in force", () => {
  it("a reloaded bundle with a longer escalation window (3 days) counts denies older than the first bundle's retention (24 h)", async () => {
    const committed = readFileSync(BUNDLE);
    const data = JSON.parse((await filesOf(committed)).find((f) => f.name === "data.json")!.content.toString("utf8")) as {
      veto: { config: Record<string, unknown> };
    };
    data.veto.config["escalation"] = { deny_threshold: 2, window_seconds: 3 * 24 * 3600 };
    const longWindow = await withFile(committed, "data.json", Buffer.from(JSON.stringify(data)));
    server.serve(committed);
    current = await makeVeto({ bundle: { url: server.url, pollIntervalMs: 3_600_000 } });
    const t = current;
    const deny = write({ destination: "https://pastebin.com/x" });
    expect((await t.veto.protect(deny)).reasons.map((r) => r.code)).toEqual(["blocked_destination"]);
    server.serve(longWindow);
    expect((await t.veto.refreshBundle()).status).toBe("activated");
    t.clock.advance(30 * 3600 * 1000);
    const second = await t.veto.protect(deny);
    expect([second.escalated, second.reasons.map((r) => r.code)]).toEqual([false, ["blocked_destination"]]);
    t.clock.advance(60_000);
    // Both denies are within the 3-day window: the threshold of 2 is reached.
    const third = await t.veto.protect(deny);
    expect([third.escalated, third.reasons.map((r) => r.code)]).toEqual([true, ["repeated_denies"]]);
    const recorded = decisionRecords(t).map((r) => r.history?.recent_denies);
    expect(recorded).toEqual([0, 1, 2]);
  });
});

describe("rollback protection (bundleRollback): the signed issue time only moves forward", () => {
  /** Signed with an `iat` claim, as scripts/sign-bundle.sh signs: policy A, B or C of the bundles above. */
  const issued: Record<string, Buffer> = {};
  beforeAll(() => {
    const signWith = (name: string, policy: "A" | "B" | "C", claims: Record<string, unknown>): void => {
      issued[name] = readFileSync(
        opaBuildWasm(dir, join(dir, `${name}.tar.gz`), {
          signingKey: key("es256-private"),
          signingAlg: "ES256",
          // The revision of the bundles above, so each policy keeps its version hash.
          revision: `reload-${policy}`,
          claims,
          ...(policy === "A" ? {} : { policyDir: join(dir, policy.toLowerCase(), "policy") }),
        }),
      );
    };
    signWith("A1000", "A", { iat: 1000 });
    signWith("B2000", "B", { iat: 2000 });
    signWith("C2000", "C", { iat: 2000 });
    signWith("C3000", "C", { iat: 3000 });
    signWith("A4000", "A", { iat: 4000 });
  });

  /** `bytes` with its token's payload changed by `edit` and signed again with the TEST-ONLY key (what only the key holder can do). */
  async function resigned(bytes: Buffer, edit: (payload: Record<string, unknown>) => Record<string, unknown>): Promise<Buffer> {
    const signatures = (await filesOf(bytes)).find((f) => f.name === ".signatures.json")!;
    const { header, payload } = tokenParts(signatures.content);
    const enc = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString("base64url");
    const input = `${enc(header)}.${enc(edit(payload))}`;
    const signature = sign("sha256", Buffer.from(input), { key: createPrivateKey(pem("es256-private")), dsaEncoding: "ieee-p1363" });
    return withFile(bytes, ".signatures.json", signaturesJson(header, edit(payload), signature));
  }

  async function protectedVeto(bundle: Buffer | { url: string; pollIntervalMs: number }, rollback: { minIssuedAt?: number } = {}, onBundleChange?: (e: BundleChangeEvent) => void): Promise<TestVeto> {
    current = await makeVeto({
      bundle,
      verificationKey: pem("es256-public"),
      bundleRollback: rollback,
      ...(onBundleChange === undefined ? {} : { onBundleChange }),
    });
    return current;
  }

  it("an older or equally old bundle is refused and the bundle in force stays; a newer one is activated; re-signing is the way back", async () => {
    server.serve(issued["B2000"]!);
    const changes: BundleChangeEvent[] = [];
    const t = await protectedVeto({ url: server.url, pollIntervalMs: 3_600_000 }, {}, (e) => void changes.push(e));
    expect(t.veto.bundle.hash).toBe(hashes.B);

    for (const older of ["A1000", "C2000"]) {
      server.serve(issued[older]!);
      const refresh = await t.veto.refreshBundle();
      expect(refresh.status, older).toBe("rejected");
      const error = (refresh as { error: Error }).error;
      expect(error).toBeInstanceOf(BundleRollbackError);
      expect(error).toMatchObject({ code: "bundle_rollback", issuedAt: older === "A1000" ? 1000 : 2000, floor: 2000 });
      expect(error.message).toMatch(/not after the bundle in force .* signed at 2000 \(1970-01-01T00:33:20\.000Z\)\); the bundle in force stays$/);
      // Still the bundle in force, and deciding.
      expect(t.veto.bundle.hash).toBe(hashes.B);
      expect(await t.veto.protect(write())).toMatchObject({ action: "require_approval", bundle: { hash: hashes.B } });
    }
    expect(t.logLines).toContainEqual(expect.objectContaining({ level: 50, reason: "rollback", issued_at: 1000, floor: 2000, msg: "new bundle rejected; the bundle in force stays" }));

    server.serve(issued["C3000"]!);
    expect(await t.veto.refreshBundle()).toMatchObject({ status: "activated", version: { hash: hashes.C } });
    await until(() => changes.length === 1, "onBundleChange");
    expect(changes[0]).toMatchObject({ current: { hash: hashes.C }, issuedAt: 3000 });

    // The bundle that was in force before is older now: refused.
    server.serve(issued["B2000"]!);
    expect(await t.veto.refreshBundle()).toMatchObject({ status: "rejected", error: { name: "BundleRollbackError" } });
    // Rolling back on purpose: the old policy signed again, later.
    server.serve(issued["A4000"]!);
    expect(await t.veto.refreshBundle()).toMatchObject({ status: "activated", version: { hash: hashes.A } });
    expect(await t.veto.protect(write())).toMatchObject({ action: "allow", bundle: { hash: hashes.A } });
  });

  it("minIssuedAt refuses an older first bundle, from a server or as bytes: createVeto rejects", async () => {
    server.serve(issued["A1000"]!);
    await expect(protectedVeto({ url: server.url, pollIntervalMs: 3_600_000 }, { minIssuedAt: 1500 })).rejects.toMatchObject({
      name: "BundleRollbackError",
      issuedAt: 1000,
      floor: 1500,
    });
    await expect(protectedVeto(issued["A1000"]!, { minIssuedAt: 1500 })).rejects.toThrow(/signed at 1000 .*, before minIssuedAt 1500/);
    // At the floor is enough.
    expect((await protectedVeto(issued["B2000"]!, { minIssuedAt: 2000 })).veto.bundle.hash).toBe(hashes.B);
  });

  it("a signature without an iat, or with one that is not a number, is refused under bundleRollback, and loads without it", async () => {
    await expect(protectedVeto(bundles.A)).rejects.toThrow("bundle refused by rollback protection: its signature carries no iat claim");
    // opa sign turns a string iat into a number; a token signed otherwise may hold anything.
    const stringIat = await resigned(issued["B2000"]!, (p) => ({ ...p, iat: "2500" }));
    const negativeIat = await resigned(issued["B2000"]!, (p) => ({ ...p, iat: -5 }));
    await expect(protectedVeto(stringIat)).rejects.toThrow(/its signature's iat claim "2500" is not a time in seconds/);
    await expect(protectedVeto(negativeIat)).rejects.toThrow(/its signature's iat claim -5 is not a time in seconds/);
    for (const bytes of [bundles.A, stringIat]) {
      current = await makeVeto({ bundle: bytes, verificationKey: pem("es256-public") });
      await current.veto.close();
      current = undefined;
    }
  });

  it("the bundle server cannot forge the issue time: a token with a changed iat does not verify", async () => {
    const files = await filesOf(issued["A1000"]!);
    const signatures = files.find((f) => f.name === ".signatures.json")!;
    const { header, payload, signature } = tokenParts(signatures.content);
    const forged = await withFile(issued["A1000"]!, ".signatures.json", signaturesJson(header, { ...payload, iat: 9999 }, signature));
    await expect(protectedVeto(forged)).rejects.toMatchObject({ name: "BundleSignatureError", check: "signature" });
  });

  it("without bundleRollback an older signed bundle replaces the one in force (the default); bundleRollback needs verificationKey", async () => {
    server.serve(issued["B2000"]!);
    const t = await serverVeto();
    server.serve(issued["A1000"]!);
    expect(await t.veto.refreshBundle()).toMatchObject({ status: "activated", version: { hash: hashes.A } });
    await expect(makeVeto({ bundle: issued["A1000"]!, bundleRollback: {} })).rejects.toThrow(VetoOptionsError);
    await expect(makeVeto({ bundle: issued["A1000"]!, bundleRollback: {} })).rejects.toThrow(/bundleRollback: needs verificationKey/);
    await expect(makeVeto({ bundle: issued["A1000"]!, verificationKey: pem("es256-public"), bundleRollback: { minIssuedAt: -1 } })).rejects.toThrow(
      /bundleRollback\.minIssuedAt/,
    );
  });
});
