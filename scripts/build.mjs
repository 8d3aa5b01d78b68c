// Builds dist/: the library (dist/index.js) and the CLI (dist/cli.js), both
// ESM for Node 20. Dependencies stay external: they are installed beside it.
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

await build({ ...common, entryPoints: ["adapter/index.ts"], outfile: "dist/index.js" });
await build({
  ...common,
  entryPoints: ["adapter/cli.ts"],
  outfile: "dist/cli.js",
  banner: { js: "#!/usr/bin/env node" },
});
await chmod("dist/cli.js", 0o755);
// The PostgreSQL migrations are read at run time from beside the bundle
// (adapter/postgres/migrations.ts looks in ./migrations/ next to itself).
await cp("adapter/postgres/migrations", "dist/migrations", { recursive: true });
