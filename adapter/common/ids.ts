/**
 * Decision ids: ULIDs (26 characters of Crockford base32, 48 bits of
 * milliseconds then 80 random bits), monotonic within one process like the
 * `ulid` package's monotonicFactory: an id is never smaller than the one
 * before it, even within one millisecond or when the clock steps back (the
 * random part of the last id is incremented instead).
 *
 * Written out because `ulid` draws each random character with its own
 * crypto.getRandomValues call: a fifth of protect()'s time. Here randomness
 * comes from crypto.randomFillSync in 4 KiB blocks.
 */
import { randomFillSync } from "node:crypto";

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const TIME_LEN = 10;
const RANDOM_LEN = 16;
const TIME_MAX = 2 ** 48 - 1;

export function encodeTime(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0 || ms > TIME_MAX) throw new RangeError(`ULID time out of range: ${ms}`);
  let out = "";
  for (let i = 0; i < TIME_LEN; i++) {
    const digit = ms % 32;
    out = ALPHABET.charAt(digit) + out;
    ms = (ms - digit) / 32;
  }
  return out;
}

/** A function that returns a new ULID for the given time (milliseconds since the epoch). */
export function monotonicUlid(): (nowMs: number) => string {
  const pool = Buffer.alloc(4096);
  let poolAt = pool.length;
  const digits = new Uint8Array(RANDOM_LEN);
  let lastMs = -1;
  let lastTime = "";

  const randomDigits = (): void => {
    if (poolAt + RANDOM_LEN > pool.length) {
      randomFillSync(pool);
      poolAt = 0;
    }
    // 256 is a multiple of 32: the low five bits of a uniform byte are uniform.
    for (let i = 0; i < RANDOM_LEN; i++) digits[i] = (pool[poolAt++] as number) & 31;
  };
  const increment = (): void => {
    for (let i = RANDOM_LEN - 1; i >= 0; i--) {
      if ((digits[i] as number) < 31) {
        digits[i] = (digits[i] as number) + 1;
        return;
      }
      digits[i] = 0;
    }
    throw new Error("ULID random part overflowed within one millisecond");
  };

  return (nowMs: number): string => {
    const ms = Math.floor(nowMs);
    if (ms > lastMs) {
      lastMs = ms;
      lastTime = encodeTime(ms);
      randomDigits();
    } else {
      increment();
    }
    let out = lastTime;
    for (let i = 0; i < RANDOM_LEN; i++) out += ALPHABET.charAt(digits[i] as number);
    return out;
  };
}
