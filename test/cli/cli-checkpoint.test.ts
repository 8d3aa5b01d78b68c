// Signed checkpoints from the command line, run as built (node dist/cli.js):
// veto eval --log --signing-key, veto log verify --public-key
// [--expect-checkpoint] [--require-checkpointed], veto log checkpoint --out.
import { generateKeyPairSync } from "node:crypto";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ed25519, parseEntry, seal } from "../helpers/checkpoint.js";
import { BUNDLE, jsonLines, read, requireBundle, requireCli, runCli as veto, write } from "../helpers/index.js";

let dir: string;
const key = ed25519();
const other = ed25519();
let signingKey: string;
let publicKey: string;
let otherPublic: string;

beforeAll(() => {
  requireBundle();
  requireCli();
  dir = mkdtempSync(join(tmpdir(), "veto-cli-checkpoint-"));
  signingKey = join(dir, "signing.pem");
  publicKey = join(dir, "signing.pub");
  otherPublic = join(dir, "other.pub");
  writeFileSync(signingKey, key.privatePem, { mode: 0o600 });
  writeFileSync(publicKey, key.publicPem);
  writeFileSync(otherPublic, other.publicPem);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CALLS = [read(), write({ amount: 1000 }), write({ amount: 9000 }), read(), write({ destination: "https://gmail.com/x" })];

/** `veto eval --log` of CALLS with the signing key; the log's path. */
function signedEval(name: string, extra: string[] = []): string {
  const log = join(dir, name);
  const r = veto(["eval", "--bundle", BUNDLE, "--log", log, "--signing-key", signingKey, ...extra], jsonLines(...CALLS));
  expect(r.status, r.stderr).toBe(0);
  return log;
}

const lines = (log: string): string[] => readFileSync(log, "utf8").split("\n").slice(0, -1);

describe("veto eval --log --signing-key, then veto log verify --public-key", () => {
  it("signs at open, every N records and at close; verify prints what the last checkpoint covers", () => {
    const log = signedEval("signed.jsonl", ["--checkpoint-every", "2"]);
    const entries = lines(log).map(parseEntry);
    const reasons = entries.map((e) => (e["checkpoint"] as { reason: string } | undefined)?.reason ?? "record");
    expect(reasons).toEqual(["open", "record", "record", "interval", "record", "record", "interval", "record", "close"]);
    const close = entries.at(-1)!;
    const r = veto(["log", "verify", log, "--public-key", publicKey, "--require-checkpointed"]);
    expect(r).toEqual({
      status: 0,
      stderr: "",
      stdout:
        `${log}: 5 records and 4 checkpoints (seq 1..9), head ${close.hash}\n` +
        `${log}: last checkpoint line 9 covers seq 1..8 (close, ${(close["checkpoint"] as { time: string }).time}), key ${key.keyId}, signature verified\n`,
    });
    // Without the key: the same consistency, and it says the signatures were not checked.
    expect(veto(["log", "verify", log]).stdout).toContain("signature not checked (give --public-key)");
    // With another key only: the first checkpoint is named.
    expect(veto(["log", "verify", log, "--public-key", otherPublic])).toEqual({
      status: 1,
      stdout: "",
      stderr: `veto: log verify failed: ${log}: line 1: checkpoint signed by key ${key.keyId}, which is not among the public keys given\n`,
    });
  });

  it("a signed log cannot be appended to without its key: exit 2, nothing decided", () => {
    const log = signedEval("keyed-only.jsonl");
    const before = readFileSync(log, "utf8");
    const r = veto(["eval", "--bundle", BUNDLE, "--log", log], jsonLines(read()));
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`holds signed checkpoints (the last by key ${key.keyId}); open it with its signing key`);
    expect(readFileSync(log, "utf8")).toBe(before);
  });

  it("a forged record appended: reported as not covered, an error with --require-checkpointed", () => {
    const log = signedEval("appended.jsonl");
    const last = parseEntry(lines(log).at(-1)!);
    appendFileSync(
      log,
      `${seal({ type: "approval", decision_id: "01JFORGED", reviewer_id: "user:x", seq: last.seq + 1, prev_hash: last.hash })}\n`,
    );
    const line = last.seq + 1;
    const lenient = veto(["log", "verify", log, "--public-key", publicKey]);
    expect(lenient.status).toBe(0);
    expect(lenient.stdout).toContain(`${log}: 1 record after the last checkpoint (from line ${line}), not yet covered by a signature\n`);
    expect(veto(["log", "verify", log, "--public-key", publicKey, "--require-checkpointed"])).toEqual({
      status: 1,
      stdout: "",
      stderr: `veto: log verify failed: ${log}: line ${line}: 1 record after the last checkpoint (line ${line - 1}), not covered by a signature\n`,
    });
  });
});

describe("veto log checkpoint --out, then veto log verify --expect-checkpoint", () => {
  it("an auditor saves a checkpoint; the log may grow past it but not shrink below it", () => {
    const log = signedEval("audited.jsonl");
    const saved = join(dir, "audited.checkpoint");
    const save = veto(["log", "checkpoint", "--out", saved, "--public-key", publicKey, log]);
    const closing = lines(log).at(-1)!;
    expect(save).toEqual({
      status: 0,
      stderr: "",
      stdout: `${log}: saved the checkpoint at line ${lines(log).length} (covers seq 1..${lines(log).length - 1}, head ${parseEntry(closing).prev_hash}) to ${saved}\n`,
    });
    expect(readFileSync(saved, "utf8")).toBe(`${closing}\n`);
    // More decisions later: still holds the saved checkpoint.
    expect(veto(["eval", "--bundle", BUNDLE, "--log", log, "--signing-key", signingKey], jsonLines(read())).status).toBe(0);
    expect(veto(["log", "verify", log, "--public-key", publicKey, "--expect-checkpoint", saved, "--require-checkpointed"]).status).toBe(0);
    // Cut back below it (to an earlier checkpoint, so nothing looks uncovered): only the saved checkpoint shows it.
    const all = lines(log);
    const keep = all.findIndex((l) => l.includes('"reason":"open"')) + 1;
    writeFileSync(
      log,
      all
        .slice(0, keep)
        .map((l) => `${l}\n`)
        .join(""),
    );
    expect(veto(["log", "verify", log, "--public-key", publicKey, "--require-checkpointed"]).status).toBe(0);
    expect(veto(["log", "verify", log, "--public-key", publicKey, "--expect-checkpoint", saved])).toEqual({
      status: 1,
      stdout: "",
      stderr: `veto: log verify failed: ${log}: the log ends at seq ${keep}, below the saved checkpoint at seq ${parseEntry(closing).seq}\n`,
    });
  });

  it("a saved checkpoint that does not parse or was not signed by a given key: exit 2 or 1, said plainly", () => {
    const log = signedEval("saved-bad.jsonl");
    const bad = join(dir, "bad.checkpoint");
    writeFileSync(bad, lines(log).at(-1)!.replace('"close"', '"interval"'));
    expect(veto(["log", "verify", log, "--public-key", publicKey, "--expect-checkpoint", bad])).toMatchObject({
      status: 2,
      stderr: `veto: saved checkpoint ${bad}: hash mismatch\n`,
    });
    const saved = join(dir, "good.checkpoint");
    expect(veto(["log", "checkpoint", "--out", saved, "--public-key", publicKey, log]).status).toBe(0);
    expect(veto(["log", "verify", log, "--public-key", otherPublic, "--expect-checkpoint", saved])).toMatchObject({
      status: 1,
      stderr: expect.stringContaining(`the saved checkpoint is signed by key ${key.keyId}, which is not among the public keys given`),
    });
  });
});

describe("usage", () => {
  it("refuses flags that cannot work, exit 2", () => {
    const log = signedEval("usage.jsonl");
    const ec = join(dir, "ec.pub");
    writeFileSync(ec, generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }).toString());
    const cases: [string[], string, RegExp][] = [
      [
        ["log", "verify", log, "--require-checkpointed"],
        "",
        /^veto: --expect-checkpoint and --require-checkpointed need --public-key FILE\n/,
      ],
      [["log", "verify", log, "--public-key", join(dir, "missing.pub")], "", /^veto: cannot read public key .*missing\.pub: ENOENT/],
      [["log", "verify", log, "--public-key", ec], "", /^veto: verifyLog: publicKeys: must be an Ed25519 key, got ec\n$/],
      [
        ["log", "verify", log, "--public-key", publicKey, "--expect-checkpoint", log],
        "",
        /^veto: saved checkpoint .*: not a single checkpoint line/,
      ],
      [
        ["log", "verify", log, join(dir, "signed.jsonl"), "--public-key", publicKey, "--expect-checkpoint", log],
        "",
        /^veto: --expect-checkpoint holds one log to it: give one PATH\n/,
      ],
      [["log", "checkpoint", "--public-key", publicKey, log], "", /^veto: log checkpoint needs --out FILE\n/],
      [["log", "checkpoint", "--out", join(dir, "x"), log], "", /^veto: log checkpoint needs --public-key FILE/],
      [
        ["eval", "--bundle", BUNDLE, "--signing-key", signingKey],
        jsonLines(read()),
        /^veto: --signing-key and --checkpoint-every sign a decision log: they need --log PATH\n/,
      ],
      [
        ["eval", "--bundle", BUNDLE, "--log", join(dir, "n.jsonl"), "--checkpoint-every", "5"],
        "",
        /^veto: --checkpoint-every needs --signing-key FILE\n/,
      ],
      [
        ["eval", "--bundle", BUNDLE, "--log", join(dir, "n.jsonl"), "--signing-key", signingKey, "--checkpoint-every", "0"],
        "",
        /^veto: --checkpoint-every must be a positive integer, got 0\n/,
      ],
      [
        ["eval", "--bundle", BUNDLE, "--log", join(dir, "n.jsonl"), "--signing-key", publicKey],
        "",
        /^veto: cannot open decision log .*: checkpointKey: not a usable private key/,
      ],
    ];
    for (const [args, stdin, stderr] of cases) {
      const r = veto(args, stdin);
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stderr, args.join(" ")).toMatch(stderr);
    }
  });
});
