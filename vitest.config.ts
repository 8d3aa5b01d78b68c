import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // AI SDK 7 needs Node 22: vitest.node22.config.ts runs these under it.
    exclude: ["**/node_modules/**", "test/integrations/ai-sdk/**"],
    // The differential test evaluates thousands of calls through both the WASM
    // bundle and one `opa eval` process; give it room on a 2-core machine.
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
