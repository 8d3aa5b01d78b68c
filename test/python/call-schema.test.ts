// The Python adapter validates calls with the JSON Schema generated from
// callSchema (scripts/call-schema.mjs): the committed file must be what the
// zod schema gives now, so a change to the contract's types reaches both
// languages (docs/contract.md §1).
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { callSchema } from "../../adapter/call/input.js";
import { CONTRACT_KEYS } from "../../adapter/records/records.js";
import { CALL_SCHEMA_FILE, CONTRACT_FILE, callFieldsTable, callJsonSchemaText, contractWithTable } from "../../scripts/call-schema.mjs";

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

describe("the call's field lists follow callSchema (docs/contract.md §1)", () => {
  const contract = readFileSync(CONTRACT_FILE, "utf8");

  it("docs/contract.md's field table is what callSchema generates (run node scripts/call-schema.mjs)", () => {
    expect(contractWithTable(contract, callFieldsTable(z, callSchema))).toBe(contract);
  });

  it("lists every field of the schema with its type and whether it is required", () => {
    const table = callFieldsTable(z, callSchema);
    const rows = table.trim().split("\n").slice(2);
    const fields = [
      ...Object.keys(callSchema.shape),
      ...Object.keys(callSchema.shape.arguments.shape).map((k) => `arguments.${k}`),
      ...Object.keys(callSchema.shape.context.shape).map((k) => `context.${k}`),
    ];
    expect(rows.map((r) => /^\| `([^`]+)`/.exec(r)?.[1]).sort()).toEqual(fields.sort());
    expect(table).toContain("| `context.actorId` | string, not blank (§9) | yes |");
    expect(table).toContain("| `arguments.fields` | array of strings | no |");
    expect(table).toContain("| `arguments.changes` | object (any members) | no |");
  });

  it("drifts, and so fails the check, when the schema gains or changes a field", () => {
    const table = callFieldsTable(z, callSchema);
    const added = callSchema.extend({ context: callSchema.shape.context.extend({ ticketId: z.string().optional() }) });
    expect(callFieldsTable(z, added)).not.toBe(table);
    expect(callFieldsTable(z, added)).toContain("| `context.ticketId` | string | no |");
    const retyped = callSchema.extend({ arguments: callSchema.shape.arguments.extend({ amount: z.string().optional() }) });
    expect(contractWithTable(contract, callFieldsTable(z, retyped))).not.toBe(contract);
  });

  it("the masker never replaces a field the schema names: its CONTRACT_KEYS are the schema's", () => {
    expect([...CONTRACT_KEYS[""]!].sort()).toEqual(Object.keys(callSchema.shape).sort());
    expect([...CONTRACT_KEYS["/arguments"]!].sort()).toEqual(Object.keys(callSchema.shape.arguments.shape).sort());
    expect([...CONTRACT_KEYS["/context"]!].sort()).toEqual(Object.keys(callSchema.shape.context.shape).sort());
  });
});
