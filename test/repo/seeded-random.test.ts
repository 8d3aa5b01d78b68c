/**
 * The one seeded generator shared by the tests and the benchmark: each
 * imports scripts/seeded-random.mjs, and its sequences are the ones every
 * printed seed and every benchmark mix was made with.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { seededRandom } from "../../scripts/seeded-random.mjs";
import { seededRandom as helperRandom } from "../helpers/generate-calls.js";

describe("seededRandom (scripts/seeded-random.mjs)", () => {
  it("is the one generator of the tests' helpers and the benchmark's mix", async () => {
    // bench/ has no type declarations: imported by a path the compiler does not follow.
    const benchMix = "../../bench/mix.mjs";
    const { seededRandom: benchRandom } = (await import(benchMix)) as { seededRandom: unknown };
    expect(helperRandom).toBe(seededRandom);
    expect(benchRandom).toBe(seededRandom);
  });

  // Values mulberry32 gave before the generator moved: a seed printed by an
  // earlier failure must still reproduce its case.
  it.each([
    [0, [0.26642920868471265, 0.0003297457005828619, 0.2232720274478197, 0.1462021479383111]],
    [1, [0.6270739405881613, 0.002735721180215478, 0.5274470399599522, 0.9810509674716741]],
    [20240606, [0.11423248564824462, 0.15701282350346446, 0.7029052365105599, 0.1882780201267451]],
    [0xffffffff, [0.8964226141106337, 0.189478256739676, 0.7156526781618595, 0.9440599093213677]],
    [-1, [0.8964226141106337, 0.189478256739676, 0.7156526781618595, 0.9440599093213677]],
  ])("seed %s starts with the same numbers as before", (seed, expected) => {
    const random = seededRandom(seed);
    expect([random(), random(), random(), random()]).toEqual(expected);
  });

  it("gives the same 10,000 numbers in [0, 1) for seed 42 as before", () => {
    const random = seededRandom(42);
    const values = Array.from({ length: 10_000 }, () => random());
    expect(values.every((v) => v >= 0 && v < 1)).toBe(true);
    expect(createHash("sha256").update(JSON.stringify(values)).digest("hex")).toBe(
      "0772e3b65b4eb1bf00c2732027322a1333d3d9ae3bc9d8fe360238ed92ee86bc",
    );
  });
});
