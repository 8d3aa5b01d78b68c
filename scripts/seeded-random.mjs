// The one seeded pseudo-random generator of the tests and the benchmark
// (test/helpers/generate-calls.ts, bench/mix.mjs): mulberry32, small, fast and
// good enough to spread cases. The same seed gives the same sequence on every
// run and machine, so a failing case is reproduced from the seed it prints
// and the benchmark measures the same calls each time. Not for secrets.

/** A function returning the next number in [0, 1) of the sequence `seed` (taken as an unsigned 32-bit integer) starts. */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
