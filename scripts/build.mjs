// Builds dist/: the library's entries (dist/index.js and the subpath exports
// dist/postgres.js, dist/audit.js, dist/bundle.js, dist/server.js, dist/mcp.js, sharing chunks so that one
// class is one class whichever entry it came through) and the CLI
// (dist/cli.js), all ESM for Node 20. Dependencies stay external: they are
// installed beside it; so do the agent frameworks (optional peer
// dependencies), which only the integrations' entries import.
import { build } from "esbuild";
import { chmod, cp, rm } from "node:fs/promises";

await rm("dist", { recursive: true, force: true });

const common = {
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  packages: "external",
  sourcemap: true,
  logLevel: "warning",
};

await build({
  ...common,
  entryPoints: {
    index: "adapter/index.ts",
    postgres: "adapter/postgres/index.ts",
    audit: "adapter/audit/index.ts",
    bundle: "adapter/policy/index.ts",
    server: "adapter/server/index.ts",
    mcp: "adapter/mcp/index.ts",
    "ai-sdk": "adapter/integrations/ai-sdk/index.ts",
    "openai-agents": "adapter/integrations/openai-agents/index.ts",
    langchain: "adapter/integrations/langchain/index.ts",
  },
  outdir: "dist",
  splitting: true,
  // Chunks beside the entries: the PostgreSQL code finds its migrations in
  // ./migrations next to itself, whichever file it lands in.
  chunkNames: "chunk-[hash]",
});
await build({
  ...common,
  entryPoints: ["adapter/cli/main.ts"],
  outfile: "dist/cli.js",
  banner: { js: "#!/usr/bin/env node" },
});
await chmod("dist/cli.js", 0o755);
// The PostgreSQL migrations are read at run time from beside the bundle
// (adapter/postgres/migrations.ts looks in ./migrations/ next to itself).
await cp("adapter/postgres/migrations", "dist/migrations", { recursive: true });
// The inbox's script, stylesheet and icon, read at start-up from ./assets/ next
// to the module (adapter/server/inbox/routes.ts).
await cp("adapter/server/inbox/assets", "dist/assets", { recursive: true });
