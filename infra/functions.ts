/**
 * Per-function Lambda settings, each with its reason. API Gateway's HTTP API gives up at 30 s,
 * so no HTTP function may run longer than that.
 */
const common = {
  runtime: "nodejs22.x" as const,
  architecture: "arm64" as const,
  logging: { retention: "1 month" as const, format: "json" as const },
  // Lambda bundles hold the Neon HTTP driver only; pg and PGlite stay out (see scripts/build.ts).
  nodejs: { format: "esm" as const, minify: true, sourcemap: true, esbuild: { external: ["pg", "@electric-sql/pglite", "@electric-sql/pglite-pgvector"] } },
};

export const functionSettings = {
  // Reads and small writes: one or two Neon round trips; 512 MB buys enough CPU for JSON work.
  api: { ...common, memory: "512 MB" as const, timeout: "10 seconds" as const },
  // Chunking and JSON-encoding up to 6 MB of text and its vectors is CPU-bound: more memory, more CPU.
  ingest: { ...common, memory: "1024 MB" as const, timeout: "29 seconds" as const },
  // One embedding call (or a cache hit) and one SQL statement.
  search: { ...common, memory: "512 MB" as const, timeout: "10 seconds" as const },
  // Waits on the chat model; streaming via the function URL may run past API Gateway's limit.
  chat: { ...common, memory: "512 MB" as const, timeout: "29 seconds" as const },
  // Bounded batches within a time budget well under the timeout.
  cleanup: { ...common, memory: "256 MB" as const, timeout: "5 minutes" as const },
};
