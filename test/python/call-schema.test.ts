// The Python adapter validates calls with the JSON Schema generated from
// callSchema (scripts/call-schema.mjs): the committed file must be what the
// zod schema gives now, so a change to the contract's types reaches both
// languages (docs/contract.md §1).
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { callSchema } from "../../adapter/call/input.js";
import { CALL_SCHEMA_FILE, callJsonSchemaText } from "../../scripts/call-schema.mjs";

describe("call.schema.json", () => {
  it("is what callSchema generates (run node scripts/call-schema.mjs after changing the call contract)", () => {
    expect(readFileSync(CALL_SCHEMA_FILE, "utf8")).toBe(callJsonSchemaText(z, callSchema));
  });

  it("marks every blank-refusing string and every record, as veto_crm/call_schema.py reads them", () => {
    const schema = JSON.parse(readFileSync(CALL_SCHEMA_FILE, "utf8")) as {
      properties: Record<string, { properties?: Record<string, Record<string, unknown>> } & Record<string, unknown>>;
    };
    expect(schema.properties["tool"]?.["x-veto-not-blank"]).toBe("must not be blank");
    for (const name of ["actorId", "tenantId", "environment"]) {
      expect(schema.properties["context"]?.properties?.[name]?.["x-veto-not-blank"]).toBe("must not be blank");
    }
    expect(schema.properties["context"]?.properties?.["reason"]?.["x-veto-not-blank"]).toBeUndefined();
    expect(schema.properties["arguments"]?.properties?.["changes"]?.["x-veto-expected"]).toBe("record");
  });

  it("refuses a refinement JSON Schema cannot express, rather than dropping it", () => {
    const stricter = callSchema.extend({ tool: z.string().refine((s) => s.startsWith("crm."), { message: "must start with crm." }) });
    expect(() => callJsonSchemaText(z, stricter)).toThrow(/refinement JSON Schema cannot express/);
  });
});
