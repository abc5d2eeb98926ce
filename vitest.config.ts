import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["kit/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Files share one Postgres; each file works in its own schema or database.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
