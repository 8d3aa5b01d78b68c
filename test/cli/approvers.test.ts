// approverIdsOf: whom `--dev-login` may sign in as, for `veto serve` and
// `veto mcp-proxy --listen` alike (one function, adapter/cli/approvers.ts).
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { approverIdsOf } from "../../adapter/cli/approvers.js";
import { APPROVER, FIXTURE_DATA, OTHER_APPROVER } from "../helpers/index.js";

/** The model: every string directly in an array under a key named "approvers", at any depth. */
function model(v: unknown, key = ""): Set<string> {
  const out = new Set<string>();
  if (Array.isArray(v)) {
    for (const x of v) {
      if (key === "approvers" && typeof x === "string") out.add(x);
      else for (const y of model(x)) out.add(y);
    }
  } else if (v !== null && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) for (const y of model(x, k)) out.add(y);
  }
  return out;
}

describe("approverIdsOf", () => {
  it("names the fixture's approvers", () => {
    const ids = approverIdsOf(JSON.parse(readFileSync(FIXTURE_DATA, "utf8")));
    expect(ids).toContain(APPROVER);
    expect(ids).toContain(OTHER_APPROVER);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("every approver id of generated documents, once each, and nothing else", () => {
    const key = fc.constantFrom("approvers", "actors", "tenants", "x", "__proto__");
    const doc = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: "small" },
        fc.string(),
        fc.integer(),
        fc.constant(null),
        fc.array(tie("node")),
        fc.dictionary(key, tie("node"), { maxKeys: 4 }),
      ),
    })).node;
    fc.assert(
      fc.property(doc, (d) => {
        const ids = approverIdsOf(d);
        expect(new Set(ids).size).toBe(ids.length);
        expect(new Set(ids)).toEqual(model(d));
      }),
      { numRuns: 300 },
    );
  });
});
