// The conformance vectors the Python adapter is checked against
// (test/conformance/vectors.json, scripts/conformance-vectors.mjs): the
// TypeScript adapter must still answer every step as recorded there, so
// the two adapters cannot drift apart unnoticed. After a deliberate change
// of behaviour, regenerate them (npm run build && make test-bundles &&
// node scripts/conformance-vectors.mjs) and make the Python adapter follow.
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import * as core from "../../adapter/index.js";
import * as audit from "../../adapter/audit/index.js";
import { resumeApproval } from "../../adapter/veto.js";
import { VECTORS_FILE, computeVectors } from "../../scripts/conformance-vectors.mjs";
import { requireBundle } from "../helpers/index.js";

interface Step {
  readonly expected: { readonly records: readonly { readonly record: Record<string, unknown>; readonly hash: string }[] } & Record<
    string,
    unknown
  >;
}
interface Vectors {
  readonly suites: readonly { readonly name: string; readonly steps: readonly Step[] }[];
}

const adapter = { ...core, ...audit, resumeApproval };
const committed = JSON.parse(readFileSync(VECTORS_FILE, "utf8")) as Vectors;
let fresh: Vectors;

beforeAll(async () => {
  fresh = (await computeVectors(adapter, requireBundle())) as Vectors;
});

describe("conformance vectors", () => {
  for (const suite of committed.suites) {
    it(`${suite.name}: the TypeScript adapter still answers and records every step as the vectors say`, () => {
      const now = fresh.suites.find((s) => s.name === suite.name);
      expect(now?.steps.length).toBe(suite.steps.length);
      suite.steps.forEach((step, i) => {
        // As JSON text carries them (-0 is 0 there).
        expect(JSON.parse(JSON.stringify(now?.steps[i])), `${suite.name} step ${i}`).toEqual(step);
      });
    });
  }

  it("the records' hashes are the file log's: the same record sealed by FileDecisionLog as its first line", async () => {
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { join } = await import("node:path").then((m) => ({ join: (...parts: string[]) => m.join(...parts) }));
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "veto-vectors-"));
    try {
      const step = committed.suites[0]?.steps[0];
      const record = step?.expected.records[0];
      expect(record).toBeDefined();
      const log = await adapter.openFileLog(join(dir, "log.jsonl"));
      const written = await log.write(record!.record);
      await log.close();
      expect(written.hash).toBe(record!.hash);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
