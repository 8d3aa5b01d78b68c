#!/usr/bin/env node
// The call contract (docs/contract.md §1) as JSON Schema, generated from the
// zod callSchema so that the TypeScript and Python adapters validate calls
// from ONE schema. JSON Schema cannot say "not blank", so a string schema that
// carries the blank rule gets `"x-veto-not-blank": "<zod's message>"`; a zod
// record gets `"x-veto-expected": "record"` (zod names it so in its messages).
// Any other refinement makes this script fail: the Python side could not
// enforce it.
//
// The same schema gives the field table of docs/contract.md §1 (between its
// call-fields markers), so the contract's list of fields cannot drift either.
//
// usage: node scripts/call-schema.mjs [--check]
//   writes adapter/python/veto_crm/call.schema.json and the table in
//   docs/contract.md, or with --check exits 1 when either committed file
//   differs from what the schema gives now (`make check` runs it).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

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

export const CONTRACT_FILE = fileURLToPath(new URL("../docs/contract.md", import.meta.url));
const BEGIN = "<!-- call-fields: generated from callSchema by scripts/call-schema.mjs; do not edit -->";
const END = "<!-- /call-fields -->";

/** A JSON Schema node's type in words, as docs/contract.md §1 states it. */
function typeWords(node) {
  if (node.type === "string") return node["x-veto-not-blank"] === undefined ? "string" : "string, not blank (§9)";
  if (node.type === "array") return `array of ${typeWords(node.items)}s`;
  if (node.type === "object" && node["x-veto-expected"] === "record") return "object (any members)";
  if (node.type === "object") return node.additionalProperties === false ? "object (only these members)" : "object (other members allowed)";
  if (node.type === "number") return "number";
  throw new Error(`call-schema: no words for a ${JSON.stringify(node.type)} field; teach scripts/call-schema.mjs`);
}

/**
 * The call's fields as a Markdown table (docs/contract.md §1), from the same
 * JSON Schema: every field, its type, and whether it is required. Nested
 * objects list their own fields after them, one level down.
 */
export function callFieldsTable(z, callSchema) {
  const schema = JSON.parse(callJsonSchemaText(z, callSchema));
  const rows = ["| field | type | required |", "|---|---|---|"];
  const walk = (node, prefix) => {
    const required = new Set(node.required ?? []);
    for (const [name, child] of Object.entries(node.properties ?? {})) {
      const path = `${prefix}${name}`;
      rows.push(`| \`${path}\` | ${typeWords(child)} | ${required.has(name) ? "yes" : "no"} |`);
      if (child.type === "object" && child.properties !== undefined) walk(child, `${path}.`);
    }
  };
  walk(schema, "");
  return `${rows.join("\n")}\n`;
}

/** docs/contract.md with its generated call-fields table replaced by `table`. */
export function contractWithTable(text, table) {
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (start === -1 || end < start) throw new Error(`${CONTRACT_FILE} has no ${BEGIN} ... ${END} block`);
  return `${text.slice(0, start + BEGIN.length)}\n${table}${text.slice(end)}`;
}

/** callSchema from the TypeScript source (bundled with esbuild, so no build is needed: `make check` runs this). */
async function loadCallSchema() {
  const { build } = await import("esbuild");
  const entry = fileURLToPath(new URL("../adapter/call/input.ts", import.meta.url));
  const out = await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "node",
    write: false,
    logLevel: "error",
    external: ["zod"],
  });
  // Inside the repository, so that the bundle's `import "zod"` finds node_modules.
  const buildDir = fileURLToPath(new URL("../.build", import.meta.url));
  mkdirSync(buildDir, { recursive: true });
  const dir = mkdtempSync(join(buildDir, "call-schema-"));
  try {
    const file = join(dir, "input.mjs");
    writeFileSync(file, out.outputFiles[0].text);
    return (await import(pathToFileURL(file).href)).callSchema;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { z } = await import("zod");
  const callSchema = await loadCallSchema();
  const outputs = [
    [CALL_SCHEMA_FILE, callJsonSchemaText(z, callSchema)],
    [CONTRACT_FILE, contractWithTable(readFileSync(CONTRACT_FILE, "utf8"), callFieldsTable(z, callSchema))],
  ];
  if (process.argv.includes("--check")) {
    const stale = outputs.filter(([file, text]) => readFileSync(file, "utf8") !== text).map(([file]) => file);
    if (stale.length > 0) {
      console.error(`${stale.join(", ")}: stale, not what callSchema gives: run node scripts/call-schema.mjs`);
      process.exit(1);
    }
    console.log("call-schema: call.schema.json and the field table of docs/contract.md §1 follow callSchema");
  } else {
    for (const [file, text] of outputs) writeFileSync(file, text);
    console.log(`wrote ${outputs.map(([file]) => file).join(", ")}`);
  }
}
