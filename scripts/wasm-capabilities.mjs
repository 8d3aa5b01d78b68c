#!/usr/bin/env node
// Writes an OPA capabilities file restricted to the builtins that OPA's WASM
// target implements natively (internal/compiler/wasm builtinsFunctions in OPA
// v1.22). Builtins the JavaScript SDK re-implements (sprintf, regex.split,
// yaml.*) or lacks (time.*, http.send, crypto, JWT) are left out, as are
// native ones whose behaviour we do not need (regex, glob, base64, net, json
// but json.marshal): a policy that needs them must not compile. json.marshal
// is in: on both evaluators it gives back an input number's JSON text verbatim,
// which is how the policy reads an amount's precision (amount.rego).
//
// usage: node scripts/wasm-capabilities.mjs <opa> <output.json>
import { execFileSync } from "node:child_process";
import { renameSync, writeFileSync } from "node:fs";

const NATIVE = new Set([
  // comparison and assignment
  "eq",
  "assign",
  "equal",
  "neq",
  "gt",
  "gte",
  "lt",
  "lte",
  "internal.member_2",
  "internal.member_3",
  // numbers
  "plus",
  "minus",
  "mul",
  "div",
  "rem",
  "abs",
  "round",
  "ceil",
  "floor",
  "numbers.range",
  "to_number",
  // sets and aggregates
  "and",
  "or",
  "intersection",
  "union",
  "count",
  "sum",
  "product",
  "max",
  "min",
  "sort",
  "all",
  "any",
  // types
  "is_number",
  "is_string",
  "is_boolean",
  "is_array",
  "is_set",
  "is_object",
  "is_null",
  "type_name",
  // arrays and objects
  "array.concat",
  "array.flatten",
  "array.reverse",
  "array.slice",
  "object.filter",
  "object.get",
  "object.keys",
  "object.remove",
  "object.union",
  "object.union_n",
  // strings
  "concat",
  "format_int",
  "indexof",
  "substring",
  "lower",
  "upper",
  "contains",
  "startswith",
  "endswith",
  "strings.reverse",
  "split",
  "replace",
  "strings.replace_n",
  // encoding
  "json.marshal",
  "trim",
  "trim_left",
  "trim_prefix",
  "trim_right",
  "trim_suffix",
  "trim_space",
]);

const [opa, output] = process.argv.slice(2);
if (!opa || !output) {
  console.error("usage: node scripts/wasm-capabilities.mjs <opa> <output.json>");
  process.exit(2);
}
const current = JSON.parse(execFileSync(opa, ["capabilities", "--current"], { encoding: "utf8" }));
const builtins = current.builtins.filter((b) => NATIVE.has(b.name));
const missing = [...NATIVE].filter((name) => !builtins.some((b) => b.name === name));
if (missing.length > 0) {
  console.error(`wasm-capabilities: this OPA lacks ${missing.join(", ")}`);
  process.exit(1);
}
const restricted = { ...current, builtins };
delete restricted.wasm_abi_versions;
restricted.wasm_abi_versions = current.wasm_abi_versions;
// Written aside and renamed into place: builds running at once (the tests
// build candidate bundles in parallel) never read a half-written file.
const partial = `${output}.${process.pid}.tmp`;
writeFileSync(partial, `${JSON.stringify(restricted, null, 2)}\n`);
renameSync(partial, output);
