// veto replay and replayRecords: every record that cannot be replayed is
// counted and listed with its reason, and fails --fail-on-change (a verdict
// that might have changed must not pass a rollout gate). Logs are real,
// hash-chained logs: good records from `veto eval --log`, damaged copies of
// them written through the real writer so the log still verifies.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RESERVED_FIELDS, openFileLog, readLog } from "../../adapter/audit/index.js";
import { replayRecords, type ReplayReport } from "../../adapter/audit/replay.js";
import { seededRandom } from "../helpers/generate-calls.js";
import { BUNDLE, jsonLines, read, requireBundle, requireCli, runCli, write } from "../helpers/index.js";

let dir: string;
beforeAll(() => {
  requireBundle();
  requireCli();
  dir = mkdtempSync(join(tmpdir(), "veto-replay-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Json = Record<string, unknown>;

/** Decision records of real calls, without the chain's own fields. */
async function realRecords(name: string): Promise<Json[]> {
  const log = join(dir, name);
  const r = runCli(
    ["eval", "--bundle", BUNDLE, "--log", log],
    jsonLines(read(), write({ amount: 9000 }), write({ destination: "https://gmail.com/x" })),
  );
  expect(r.status, r.stderr).toBe(0);
  return (await readLog([log])).map(({ record }) => {
    const copy: Json = structuredClone(record);
    for (const field of RESERVED_FIELDS) delete copy[field];
    return copy;
  });
}

async function writeLog(name: string, records: readonly Json[]): Promise<string> {
  const path = join(dir, name);
  const log = await openFileLog(path);
  try {
    for (const record of records) await log.write(record);
  } finally {
    await log.close();
  }
  return path;
}

/** Ways a decision record can be damaged, each with the reason replay must give. */
const DAMAGES: { name: string; damage: (r: Json) => void; reason: RegExp }[] = [
  { name: "decision_id a number", damage: (r) => (r["decision_id"] = 42), reason: /^its decision_id 42 is not a non-empty string$/ },
  { name: "decision_id empty", damage: (r) => (r["decision_id"] = ""), reason: /^its decision_id "" is not a non-empty string$/ },
  { name: "decision_id null", damage: (r) => (r["decision_id"] = null), reason: /^its decision_id null is not a non-empty string$/ },
  { name: "decision_id missing", damage: (r) => delete r["decision_id"], reason: /^its decision_id missing is not a non-empty string$/ },
  { name: "type unknown", damage: (r) => (r["type"] = "decisions"), reason: /^its type "decisions" is not one this version knows/ },
  { name: "type missing", damage: (r) => delete r["type"], reason: /^its type missing is not one this version knows/ },
  {
    name: "recent_denies negative",
    damage: (r) => (r["history"] = { recent_denies: -1 }),
    reason: /^not a decision record this version can replay \(history\.recent_denies: .*>=0/,
  },
  {
    name: "recent_denies not an integer",
    damage: (r) => (r["history"] = { recent_denies: 1.5 }),
    reason: /^not a decision record this version can replay \(history\.recent_denies: .*expected int,/,
  },
  {
    name: "recent_denies a string",
    damage: (r) => (r["history"] = { recent_denies: "2" }),
    reason: /^not a decision record this version can replay \(history\.recent_denies: .*number/,
  },
  {
    name: "action unknown",
    damage: (r) => ((r["result"] as Json)["action"] = "maybe"),
    reason: /^not a decision record this version can replay \(result\.action: /,
  },
  { name: "masked not a list", damage: (r) => (r["masked"] = "no"), reason: /^not a decision record this version can replay \(masked: / },
];

const summaryLine = (stdout: string): string => stdout.trim().split("\n").at(-1) ?? "";

describe("replay: records that cannot be replayed", () => {
  it("each kind of damage is listed with its reason and counted; good records still replay", async () => {
    const good = await realRecords("good.log");
    const records: Json[] = [];
    for (const [i, { damage }] of DAMAGES.entries()) {
      const copy = structuredClone(good[i % good.length]!);
      // Distinct ids, so no damaged record is taken for a later copy of a good one.
      if (typeof copy["decision_id"] === "string") copy["decision_id"] = `${String(copy["decision_id"])}-damaged-${i}`;
      damage(copy);
      records.push(copy);
    }
    const log = await writeLog("damaged.log", [...good, ...records]);
    const report: ReplayReport = await replayRecords(await readLog([log]), { bundle: BUNDLE });
    expect(report.decisions).toBe(good.length + DAMAGES.length);
    expect(report.unchanged).toBe(good.length);
    expect(report.changed).toEqual([]);
    expect(report.skipped).toEqual([]);
    expect(report.unreplayable.map((u) => u.line)).toEqual(DAMAGES.map((_, i) => good.length + i + 1));
    for (const [i, { name, reason }] of DAMAGES.entries()) {
      expect(report.unreplayable[i]?.reason, name).toMatch(reason);
      expect(report.unreplayable[i]?.file).toBe(log);
    }

    // The command line: every one listed, a count, and --fail-on-change fails.
    const text = runCli(["replay", "--bundle", BUNDLE, log]);
    expect(text.status, text.stderr).toBe(0);
    const listed = text.stdout.split("\n").filter((l) => l.includes(": cannot be replayed ("));
    expect(listed).toHaveLength(DAMAGES.length);
    expect(listed[0]).toBe(`?: cannot be replayed (${log} line ${good.length + 1}): its decision_id 42 is not a non-empty string`);
    expect(summaryLine(text.stdout)).toMatch(
      new RegExp(
        `^replayed ${good.length} of ${good.length + DAMAGES.length} decisions .*: 0 changed, ${good.length} unchanged, 0 skipped, ${DAMAGES.length} cannot be replayed$`,
      ),
    );
    expect(runCli(["replay", "--bundle", BUNDLE, "--fail-on-change", log]).status).toBe(1);
    const json = runCli(["replay", "--bundle", BUNDLE, "--json", "--fail-on-change", log]);
    expect(json.status).toBe(1);
    expect((JSON.parse(json.stdout) as { unreplayable: unknown[] }).unreplayable).toHaveLength(DAMAGES.length);
  });

  it("seeded: any mix of good, damaged, approval and skipped records adds up, and the gate fails exactly when one cannot be replayed", async () => {
    const seed = Number(process.env["VETO_TEST_SEED"] ?? Date.now() % 2 ** 31);
    const random = seededRandom(seed);
    const good = await realRecords("good-mix.log");
    const unreadable = runCli(["eval", "--bundle", BUNDLE, "--log", join(dir, "skip.log")], "{not json\n");
    expect(unreadable.status).toBe(0);
    const skippable = (await readLog([join(dir, "skip.log")]))[0]!.record as Json;
    for (let round = 0; round < 4; round++) {
      const records: Json[] = [];
      let damaged = 0;
      let skipped = 0;
      let replayable = 0;
      const count = 1 + Math.floor(random() * 12);
      for (let i = 0; i < count; i++) {
        const pick = random();
        const id = `round${round}-${i}`;
        if (pick < 0.35) {
          const copy = { ...structuredClone(good[i % good.length]!), decision_id: id };
          records.push(copy);
          replayable++;
        } else if (pick < 0.7) {
          const copy = { ...structuredClone(good[i % good.length]!), decision_id: id };
          DAMAGES[Math.floor(random() * DAMAGES.length)]!.damage(copy);
          records.push(copy);
          damaged++;
        } else if (pick < 0.85) {
          const copy = structuredClone(skippable);
          for (const field of RESERVED_FIELDS) delete copy[field];
          records.push({ ...copy, decision_id: id });
          skipped++;
        } else {
          records.push({ type: random() < 0.5 ? "approval" : "rejection", decision_id: id, reviewer: "user:x" });
        }
      }
      const log = await writeLog(`mix-${seed}-${round}.log`, records);
      const report = await replayRecords(await readLog([log]), { bundle: BUNDLE });
      const context = `seed ${seed}, round ${round}`;
      expect(
        [report.decisions, report.unchanged + report.changed.length, report.skipped.length, report.unreplayable.length],
        context,
      ).toEqual([replayable + damaged + skipped, replayable, skipped, damaged]);
      const gate = runCli(["replay", "--bundle", BUNDLE, "--fail-on-change", log]);
      expect(gate.status, context).toBe(damaged > 0 ? 1 : 0);
    }
  });
});
