#!/usr/bin/env node
// The call contract (docs/contract.md §1) as JSON Schema, generated from the
// zod callSchema so that the TypeScript and Python adapters validate calls
// from ONE schema. JSON Schema cannot say "not blank", so a string schema that
// carries the blank rule gets `"x-veto-not-blank": "<zod's message>"`; a zod
// record gets `"x-veto-expected": "record"` (zod names it so in its messages).
// Any other refinement makes this script fail: the Python side could not
// enforce it.
//
// usage: node scripts/call-schema.mjs [--check]   (after npm run build)
//   writes adapter/python/veto_crm/call.schema.json, or with --check exits 1
//   when the committed file differs from what the schema gives now.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const CALL_SCHEMA_FILE = fileURLToPath(new URL("../adapter/python/veto_crm/call.schema.json", import.meta.url));

/** The JSON Schema text for `callSchema`, given the zod module it was built with. */
export function callJsonSchemaText(z, callSchema) {
  const schema = z.toJSONSchema(callSchema, {
    target: "draft-2020-12",
    unrepresentable: "throw",
    override(ctx) {
      const def = ctx.zodSchema._zod.def;
      const checks = def.checks ?? [];
      if (def.type === "record") ctx.jsonSchema["x-veto-expected"] = "record";
      if (checks.length === 0) return;
      // The only refinement the contract has: a string that must not be blank.
      const blank = ctx.zodSchema.safeParse(" \t ");
      if (def.type !== "string" || checks.length !== 1 || blank.success || !ctx.zodSchema.safeParse("x").success) {
        throw new Error(
          `call-schema: a ${def.type} with a refinement JSON Schema cannot express; teach scripts/call-schema.mjs and veto_crm/call_schema.py about it`,
        );
      }
      ctx.jsonSchema["x-veto-not-blank"] = blank.error.issues[0].message;
    },
  });
  return `${JSON.stringify(schema, null, 2)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { z } = await import("zod");
  const { callSchema } = await import("../dist/index.js");
  const text = callJsonSchemaText(z, callSchema);
  if (process.argv.includes("--check")) {
    if (readFileSync(CALL_SCHEMA_FILE, "utf8") !== text) {
      console.error(`${CALL_SCHEMA_FILE} is stale: run node scripts/call-schema.mjs`);
      process.exit(1);
    }
  } else {
    writeFileSync(CALL_SCHEMA_FILE, text);
    console.log(`wrote ${CALL_SCHEMA_FILE}`);
  }
}
