/**
 * quoteLiteral writes the literal pg's escapeLiteral writes, for any text: a
 * group's records and decision rows reach the server as these literals
 * (adapter/postgres/batch.ts), so a difference would change what is stored.
 */
import fc from "fast-check";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { quoteLiteral } from "../../adapter/postgres/connection.js";

const SEED = 20261201;
const escapeLiteral = (text: string): string => new pg.Client().escapeLiteral(text);

describe("quoteLiteral", () => {
  it("equals pg's escapeLiteral on the texts that need care", () => {
    for (const text of ["", "'", "''", "\\", "a\\'b", "' E'x", "\\\\'", '{"a":"\\u0000\\n"}', "é😀'\\"]) {
      expect(quoteLiteral(text)).toBe(escapeLiteral(text));
    }
  });

  it(`equals pg's escapeLiteral on generated text (seed ${SEED})`, () => {
    const char = fc.constantFrom("'", "\\", "a", "E", " ", '"', "é", "😀", "\n");
    const text = fc.oneof(
      fc.string({ unit: "binary" }),
      fc.array(char).map((cs) => cs.join("")),
    );
    fc.assert(
      fc.property(text, (t) => quoteLiteral(t) === escapeLiteral(t)),
      { seed: SEED, numRuns: 2000 },
    );
  });
});
