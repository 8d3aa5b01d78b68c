// The `veto` command line (docs/contract.md §8), run as built: node dist/cli.js.
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUNDLE, bundleData, jsonLines, read, requireBundle, requireCli, runCli, write } from "../helpers/index.js";

let dir: string;
beforeAll(() => {
  requireBundle();
  requireCli();
  dir = mkdtempSync(join(tmpdir(), "veto-cli-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const veto = runCli;

const lines = jsonLines;

describe("veto eval", () => {
  it("writes one contract-shaped decision per line, in order, sharing one deny history", () => {
    const deny = write({ destination: "ana@gmail.com" });
    const input = lines(read(), write({ amount: 9000 }), "{not json", "", deny, " \t ", deny, deny, read());
    // 9 lines, 9 decisions: blank and whitespace-only lines are invalid_input too.
    const records = join(dir, "records.jsonl");
    const r = veto(["eval", "--bundle", BUNDLE, "--records", records], input);
    expect(r.status).toBe(0);
    const decisions = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    // Every line has its decision, in order (the final newline ends the last line, it adds none).
    expect(decisions.map((d) => [d["action"], d["escalated"], (d["reasons"] as { code: string }[]).map((x) => x.code)])).toEqual([
      ["allow", false, ["read_only"]],
      ["require_approval", false, ["production_amount"]],
      ["deny", false, ["invalid_input"]],
      ["deny", false, ["invalid_input"]],
      ["deny", false, ["blocked_destination"]],
      ["deny", false, ["invalid_input"]],
      ["deny", false, ["blocked_destination"]],
      ["deny", false, ["blocked_destination"]],
      // The unparsable and blank lines name no actor, so only the three blocked calls count.
      ["deny", true, ["repeated_denies"]],
    ]);
    for (const d of decisions) {
      expect(Object.keys(d).sort()).toEqual(["action", "approvers", "bundle", "escalated", "id", "reason", "reasons", "timestamp"]);
    }
    expect(decisions[2]!["reason"]).toMatch(/not valid JSON/);
    expect(decisions[3]!["reason"]).toMatch(/the line is blank/);
    expect(decisions[5]!["reason"]).toMatch(/the line is blank/);
    // Every decision has its record, in the records file.
    const recorded = readFileSync(records, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(recorded.map((x) => x["decision_id"])).toEqual(decisions.map((d) => d["id"]));
  });

  it("records on a stderr that fails (/dev/full): every call denied with record_unavailable, exit 2", () => {
    const full = openSync("/dev/full", "w");
    try {
      const run = spawnSync("node", [requireCli(), "eval", "--bundle", BUNDLE], {
        input: lines(read(), write({ amount: 9000 }), read()),
        stdio: ["pipe", "pipe", full],
        encoding: "utf8",
      });
      expect(run.status).toBe(2);
      const decisions = run.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { action: string; reason: string; reasons: { code: string }[] });
      expect(decisions.map((d) => [d.action, d.reasons.map((x) => x.code)])).toEqual(Array(3).fill(["deny", ["record_unavailable"]]));
      expect(decisions[0]?.reason).toMatch(/standard error failed .*ENOSPC/);
    } finally {
      closeSync(full);
    }
  });

  it("a records file that is not a regular file (/dev/full) is refused at once: exit 2 with one line, no decision", () => {
    const r = veto(["eval", "--bundle", BUNDLE, "--records", "/dev/full"], lines(read(), write({ amount: 9000 }), read()));
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe("veto: cannot open records file /dev/full: /dev/full is not a regular file (it is a character device)\n");
  });

  it("judges amounts by their text on the line, which JSON.parse does not keep (docs/contract.md §9)", () => {
    // As doubles these are 250000 (the limit: needs approval), 0 and 4999.99 (allowed).
    // Four invalid_input denies escalate agent:support-triage; the last two lines are another actor's.
    const call = (amount: string, field = "amount", changes: Record<string, unknown> = {}, actorId = "agent:support-triage"): string =>
      JSON.stringify(write({ changes: { [field]: "@", ...changes } }, { actorId })).replace('"@"', amount);
    const input = [
      call("250000.00000000001"),
      call("1e-400", "Refund_Amount"),
      call("4999.9900000000000000001"),
      // Duplicate keys: the last one is the call, as JSON.parse reads it.
      call("250000.00000000001").replace('"changes":{', '"changes":{"amount":1},"changes":{'),
      call("250000.00000000001", "x", { amount: 1 }, "agent:sales-assistant"),
      call("250000.000000000000", "amount", {}, "agent:sales-assistant"),
    ].join("\n");
    const r = veto(["eval", "--bundle", BUNDLE, "--records", join(dir, "amounts.jsonl")], `${input}\n`);
    expect(r.status, r.stderr).toBe(0);
    const decisions = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { action: string; reason: string; reasons: { code: string }[] });
    expect(decisions.map((d) => [d.action, d.reasons.map((x) => x.code)])).toEqual([
      ["deny", ["invalid_input"]],
      ["deny", ["invalid_input"]],
      ["deny", ["invalid_input"]],
      ["deny", ["invalid_input"]],
      // The imprecise text is the value of "x", not an amount; the amount is 1.
      ["allow", ["low_value"]],
      ["require_approval", ["production_amount"]],
    ]);
    expect(decisions[0]!.reason).toMatch(
      /arguments\.changes\.amount: an amount must have at most 15 significant digits .*250000\.00000000001 has 17/,
    );
  });

  it("records go to stderr when no --records file is given", () => {
    const r = veto(["eval", "--bundle", BUNDLE], lines(read()));
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stderr.trim())).toMatchObject({ msg: "veto decision", type: "decision" });
  });

  it("--data replaces the data document", () => {
    const data = bundleData();
    data.veto.config["environments"] = ["staging"];
    const file = join(dir, "data.json");
    writeFileSync(file, JSON.stringify(data));
    const r = veto(["eval", "--bundle", BUNDLE, "--data", file, "--records", join(dir, "r2.jsonl")], lines(read()));
    expect(JSON.parse(r.stdout)).toMatchObject({ action: "deny", reasons: [{ code: "unknown_environment" }] });
  });

  it.each([
    ["a missing bundle", ["eval", "--bundle", "/nonexistent.tar.gz"], /^veto: cannot read bundle/],
    ["a bundle that is not one", ["eval", "--bundle", "/etc/hostname"], /^veto: bundle .* is not a readable/],
    ["a missing data file", ["eval", "--bundle", BUNDLE, "--data", "/nonexistent.json"], /^veto: cannot read data file/],
    ["a data file that is not JSON", ["eval", "--bundle", BUNDLE, "--data", "/etc/hostname"], /^veto: data file .* is not valid JSON/],
  ])("exits 2 with one line on stderr for %s", (_name, args, message) => {
    const r = veto(args, lines(read()));
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  });

  it("exits 2 on unusable data", () => {
    const file = join(dir, "bad-data.json");
    writeFileSync(file, JSON.stringify({ veto: { config: { escalation: { window_seconds: "soon" } } } }));
    const r = veto(["eval", "--bundle", BUNDLE, "--data", file], lines(read()));
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/data document .* is unusable/);
  });

  it("exits 2 with usage when called wrongly", () => {
    expect(veto(["eval"]).status).toBe(2);
    expect(veto(["frobnicate"]).stderr).toMatch(/unknown command frobnicate/);
    expect(veto([]).status).toBe(2);
  });
});

describe("veto hash", () => {
  it("prints the version hash", () => {
    const r = veto(["hash", BUNDLE]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
  });
  it("exits 2 on a file that is not a bundle", () => {
    const r = veto(["hash", "/etc/hostname"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^veto: bundle \/etc\/hostname is not a readable/);
  });
});
