#!/usr/bin/env node
// The dependency rules of adapter/, checked on the TypeScript parser's view of
// every import (type-only imports and re-exports included):
//   - no cycles;
//   - the layers follow the flow (README "Architecture"): a module imports its
//     own layer or a lower one, never one further down the flow;
//   - nothing outside postgres/ and cli/ imports postgres/ (an optional backend:
//     it imports the core, the core never imports it); nothing imports cli/;
//   - no step imports the orchestrator (veto.ts) or a public entry;
//   - only mcp/ imports the MCP SDK (the core never depends on it).
//   - an agent framework (optional peer dependency) is imported only by its
//     own integration folder, adapter/integrations/<name>/.
//
//   node scripts/check-architecture.mjs [ROOT]   exit 1 listing each violation
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const root = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), "..");
const SRC = "adapter";

/** Layers in the order of the flow, lowest first. A path prefix (relative to adapter/) picks the layer; the longest prefix wins. */
export const LAYERS = [
  ["common", ["common/"]],
  ["call", ["call/"]],
  ["policy", ["policy/"]],
  ["records", ["records/"]],
  ["history", ["history/"]],
  ["approvals", ["approvals/"]],
  ["orchestrator", ["veto.ts"]],
  ["integrations", ["audit/", "postgres/", "server/", "mcp/", "integrations/"]],
  ["entry", ["index.ts", "entries/"]],
  ["cli", ["cli/", "cli.ts"]],
];
/** Agent frameworks by the integration folder that alone may import them. */
export const FRAMEWORKS = [
  ["ai-sdk", /^(ai|@ai-sdk\/[^/]+)(\/|$)/],
  ["openai-agents", /^@openai\/agents(-[a-z]+)?(\/|$)/],
  ["langchain", /^(langchain|@langchain\/[^/]+)(\/|$)/],
];

/** Entry files: what the package exports. Nothing but the CLI imports them. */
const ENTRIES = (file) => file === "index.ts" || file.startsWith("entries/");

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) return walk(full);
    return /\.ts$/.test(name) && !/\.d\.ts$/.test(name) ? [full] : [];
  });
}

function layerOf(file) {
  let best;
  for (const [index, [name, prefixes]] of LAYERS.entries()) {
    for (const prefix of prefixes) {
      if ((file === prefix || file.startsWith(prefix)) && (best === undefined || prefix.length > best.prefix.length))
        best = { name, index, prefix };
    }
  }
  return best;
}

function importsOf(full) {
  const source = ts.createSourceFile(full, readFileSync(full, "utf8"), ts.ScriptTarget.ES2022, true);
  const found = [];
  const visit = (node) => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      found.push({ spec: node.moduleSpecifier.text, line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1 });
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      found.push({ spec: node.arguments[0].text, line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1 });
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      found.push({ spec: node.argument.literal.text, line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

export function checkArchitecture(base) {
  const srcDir = join(base, SRC);
  const files = walk(srcDir).map((f) => relative(srcDir, f));
  const known = new Set(files);
  const graph = new Map();
  const problems = [];
  for (const file of files) {
    const edges = [];
    for (const { spec, line } of importsOf(join(srcDir, file))) {
      if (!spec.startsWith(".")) {
        if (spec.startsWith("@modelcontextprotocol/") && !file.startsWith("mcp/"))
          problems.push(`${SRC}/${file}:${line}: imports ${spec}: only ${SRC}/mcp/ imports the MCP SDK`);
        const framework = FRAMEWORKS.find(([, pattern]) => pattern.test(spec));
        if (framework !== undefined && !file.startsWith(`integrations/${framework[0]}/`))
          problems.push(`${SRC}/${file}:${line}: imports ${spec}: only ${SRC}/integrations/${framework[0]}/ imports that framework`);
        continue;
      }
      const target = normalize(join(dirname(file), spec)).replace(/\.js$/, ".ts");
      if (!known.has(target)) {
        problems.push(`${SRC}/${file}:${line}: imports ${spec}, which is not a module of ${SRC}/`);
        continue;
      }
      edges.push(target);
      const from = layerOf(file);
      const to = layerOf(target);
      const where = `${SRC}/${file}:${line}: imports ${SRC}/${target}`;
      if (from === undefined) problems.push(`${SRC}/${file}: is in no layer (add its folder to LAYERS in scripts/check-architecture.mjs)`);
      if (from === undefined || to === undefined) continue;
      if (to.name === "cli" && from.name !== "cli") problems.push(`${where}: nothing imports the CLI`);
      else if (target.startsWith("postgres/") && !file.startsWith("postgres/") && from.name !== "cli" && !ENTRIES(file))
        problems.push(`${where}: only postgres/, the CLI and its entry import the PostgreSQL backend`);
      else if (ENTRIES(target) && from.name !== "cli") problems.push(`${where}: a public entry is imported by nothing but the CLI`);
      else if (to.name === "orchestrator" && from.index < to.index) problems.push(`${where}: a step never imports the orchestrator`);
      else if (to.index > from.index && !(from.name === "integrations" && to.name === "integrations" && sameFolder(file, target)))
        problems.push(`${where}: layer ${from.name} must not import layer ${to.name}, which comes later in the flow`);
    }
    graph.set(file, edges);
  }
  for (const cycle of cycles(graph)) problems.push(`cycle: ${cycle.map((f) => `${SRC}/${f}`).join(" -> ")}`);
  return { files: files.length, problems };
}

function sameFolder(a, b) {
  return a.split("/")[0] === b.split("/")[0];
}

/** Every elementary cycle found by depth-first search (one per back edge). */
function cycles(graph) {
  const found = [];
  const state = new Map();
  const stack = [];
  const visit = (node) => {
    state.set(node, 1);
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 1) found.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 2);
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return found;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { files, problems } = checkArchitecture(root);
  if (problems.length > 0) {
    console.error(problems.join("\n"));
    console.error(`check-architecture: ${problems.length} violation(s) in ${files} modules`);
    process.exit(1);
  }
  console.log(`check-architecture: ${files} modules, no cycles, every import follows the flow`);
}
