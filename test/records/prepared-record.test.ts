/**
 * A record prepared once and sealed later (adapter/records/chain.ts
 * prepareRecord, what grouped PostgreSQL writes use) is sealed exactly as
 * sealRecord seals it, and its parts rebuild that line: generated records,
 * seeded (fast-check), any seq and previous hash.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GENESIS_HASH, prepareRecord, sealRecord } from "../../adapter/records/chain.js";

const SEED = Number(process.env.VETO_PREPARED_SEED ?? Date.now() % 2 ** 31);

const key = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom("a", "hash_", "prev", "prev_hash2", "s", "seq_", "z", "é", "😀", "__proto__"),
);
const record = fc
  .dictionary(key, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 12 })
  .filter((r) => !["seq", "prev_hash", "hash", "checkpoint"].some((k) => Object.prototype.hasOwnProperty.call(r, k)));
const hash = fc.oneof(
  fc.constant(GENESIS_HASH),
  fc.stringMatching(/^[0-9a-f]{64}$/).map((h) => `sha256:${h}`),
);

describe("prepareRecord", () => {
  it(`seals as sealRecord does, and its parts rebuild the line (seed ${SEED})`, () => {
    fc.assert(
      fc.property(record, fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), hash, (r, seq, prev) => {
        const want = sealRecord(r, seq, prev);
        const prepared = prepareRecord(r);
        expect(prepared.seal(seq, prev)).toEqual(want);
        const [a, b, c, d] = prepared.parts;
        const line = [a, `"hash":"${want.hash}"`, b, `"prev_hash":"${prev}"`, c, `"seq":${seq}`, d].filter((p) => p !== null).join(",");
        expect(`{${line}}`).toBe(want.text);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it("refuses what sealRecord refuses", () => {
    expect(() => prepareRecord({ seq: 1 })).toThrow(/reserved/);
    expect(() => prepareRecord({ text: "\ud800" })).toThrow(/lone surrogate/);
    expect(() => prepareRecord([])).toThrow(/JSON object/);
  });
});
