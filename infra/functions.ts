/**
 * The one inventory of Lambda functions: each one's handler file and export, settings (each with its
 * reason), bundle budget and esbuild plugins, and the CORS policy both HTTP entry points share.
 * `sst.config.ts`, `npm run build`, the local server and the tests all read it. Plain data (no SST
 * globals) so they can. API Gateway's HTTP API gives up at 30 s, so no function behind it may run
 * longer than 29 s.
 */
import { CORS } from "../core/api/cors";
import type { FunctionName } from "../core/api/routes";

// Node.js 22 LTS, matching the bundles' esbuild target (node22); nodejs24.x is a one-line change.
export const runtime = "nodejs22.x" as const;

const common = {
  runtime,
  // Graviton: 20% cheaper per GB-second than x86, and the bundles hold no native code to rebuild.
  architecture: "arm64" as const,
  logging: { retention: "1 month" as const, format: "json" as const },
  // The offline embedder's word vectors (5.6 MB), read only by the offline embedder and by extractive answers (chat
  // without a model); the path under the function's root is the one core/embedding/offline.ts looks for.
  copyFiles: [{ from: "core/embedding/words.bin" }],
  nodejs: {
    format: "esm" as const,
    minify: true,
    // No maps in the zip: they are 8x the bundle, and Node parses them at start with
    // --enable-source-maps. keepNames (SST's default) keeps function names in stack traces.
    sourcemap: false,
    // Lambda bundles hold the Neon HTTP driver only (pg and PGlite stubbed out); `npm run build`
    // uses the same plugins and checks the result.
    plugins: "infra/esbuild-plugins.mjs",
  },
};

// The upload function also stands in for `canvas`, which the parsers try and do without.
const uploads = { ...common.nodejs, plugins: "infra/esbuild-plugins-upload.mjs" };
// The MCP server also leaves out the SDK's Zod 3 support and ajv, which its tools never reach.
const mcpPlugins = { ...common.nodejs, plugins: "infra/esbuild-plugins-mcp.mjs" };

/**
 * Reserved concurrency per function: their sum is the most database connections the deployment holds at once,
 * kept under Neon's smallest compute's limit, and each is a ceiling on its route's flood
 * (docs/deploy.md#reserved-concurrency). Raise them together with the compute size.
 */
export const reservedConcurrency = {
  api: 12, // reads and small writes, quick
  ingest: 8, // long (up to 29 s) and heavy; tenants get at most 4 at once each (core/admission)
  search: 30, // the most requests, each one short statement
  chat: 15, // mostly waiting on the model, one or two statements
  mcp: 8,
  upload: 4, // one file each, parsed (PDF, Word) before it is ingested; counts in the ingest admission too
  chatStream: 10,
  cleanup: 1, // hourly; never two at once
};

export const functionSettings = {
  // Reads and small writes: one or two Neon round trips. 1024 MB because Lambda's CPU scales with
  // memory, and a cold start's import is CPU-bound.
  api: {
    ...common,
    concurrency: { reserved: reservedConcurrency.api },
    memory: "1024 MB" as const,
    timeout: "10 seconds" as const,
  },
  // Chunking, hashing and JSON-encoding up to 6 MB plus the embedding calls: one full vCPU
  // (1769 MB), and the most API Gateway allows.
  ingest: {
    ...common,
    concurrency: { reserved: reservedConcurrency.ingest },
    memory: "1769 MB" as const,
    timeout: "29 seconds" as const,
  },
  // One embedding call (or a cache hit) and one SQL statement; leaves room for one upstream retry.
  search: {
    ...common,
    concurrency: { reserved: reservedConcurrency.search },
    memory: "1024 MB" as const,
    timeout: "15 seconds" as const,
  },
  // POST /v1/documents/upload: the only bundle with the document parsers (pdf.js, mammoth, linkedom),
  // so /v1/ingest starts as fast as before. Memory for the largest files' parse (docs/extract.md has the peaks)
  // and the CPU extraction spends.
  upload: {
    ...common,
    concurrency: { reserved: reservedConcurrency.upload },
    memory: "1769 MB" as const,
    timeout: "29 seconds" as const,
    nodejs: uploads,
  },
  // Mostly waiting on the chat model, which is billed per millisecond: less memory; API Gateway's limit.
  chat: {
    ...common,
    concurrency: { reserved: reservedConcurrency.chat },
    memory: "512 MB" as const,
    timeout: "29 seconds" as const,
  },
  // MCP tools (POST /mcp): each call is one ingest, search, chat or read; `ask` waits on the chat model.
  mcp: {
    ...common,
    concurrency: { reserved: reservedConcurrency.mcp },
    memory: "1024 MB" as const,
    timeout: "29 seconds" as const,
    nodejs: mcpPlugins,
  },
  // The function URL has no 30 s gateway in front: long answers, with the model's retries, may stream for minutes.
  chatStream: {
    ...common,
    concurrency: { reserved: reservedConcurrency.chatStream },
    memory: "512 MB" as const,
    timeout: "3 minutes" as const,
  },
  // Bounded batches within the time it has left (functions/cron/cleanup.ts); an hourly job needs no speed.
  cleanup: {
    ...common,
    concurrency: { reserved: reservedConcurrency.cleanup },
    memory: "256 MB" as const,
    timeout: "5 minutes" as const,
  },
};

const KB = 1024;

export interface Lambda {
  /** The handler's source file, from the repository's root. */
  file: string;
  /** The export Lambda calls. */
  export: string;
  /** Minified size budget in bytes (`npm run build`); none for a function bundled from another's file. */
  budget?: number;
  settings: (typeof functionSettings)[keyof typeof functionSettings];
}

/**
 * The functions behind the HTTP API, one per function name the route contract (core/api/routes.ts) uses.
 * Budgets sit a few percent above each bundle as built with the whole OpenAI SDK (docs/deploy.md#bundles):
 * an alarm for a dependency that creeps in, not a goal.
 */
export const httpFunctions = {
  api: { file: "functions/http/api.ts", export: "handler", budget: 330 * KB, settings: functionSettings.api },
  ingest: { file: "functions/http/ingest.ts", export: "handler", budget: 470 * KB, settings: functionSettings.ingest },
  // pdf.js alone is most of it; only this function holds the parsers (EXTRACTORS in scripts/build.ts). Asciidoctor's
  // 380 KB is evaluated only when an AsciiDoc file comes (core/extract/asciidoc.ts).
  upload: {
    file: "functions/http/upload.ts",
    export: "handler",
    budget: 3.5 * 1024 * KB,
    settings: functionSettings.upload,
  },
  search: { file: "functions/http/search.ts", export: "handler", budget: 470 * KB, settings: functionSettings.search },
  chat: { file: "functions/http/chat.ts", export: "handler", budget: 510 * KB, settings: functionSettings.chat },
  mcp: { file: "functions/http/mcp.ts", export: "handler", budget: 670 * KB, settings: functionSettings.mcp },
} satisfies Record<FunctionName, Lambda>;

/** Every Lambda: the HTTP API's, the chat function's streaming URL (the chat file's other export), the hourly cleanup. */
export const lambdas = {
  ...httpFunctions,
  chatStream: { file: "functions/http/chat.ts", export: "streamHandler", settings: functionSettings.chatStream },
  cleanup: {
    file: "functions/cron/cleanup.ts",
    export: "handler",
    budget: 410 * KB,
    settings: functionSettings.cleanup,
  },
} satisfies Record<string, Lambda>;

/** The handler as SST names it: `functions/http/api.handler`. */
export const handlerOf = (lambda: Lambda) => `${lambda.file.replace(/\.ts$/, "")}.${lambda.export}`;

/**
 * CORS for the HTTP API and the chat function URL, from the one policy in core/api/cors.ts that
 * the handlers and the local server's preflight answers also read. Both AWS entry points answer
 * preflight requests themselves.
 */
export const cors = {
  allowOrigins: CORS.allowOrigins,
  allowMethods: CORS.allowMethods,
  allowHeaders: CORS.allowHeaders,
  exposeHeaders: CORS.exposeHeaders,
  maxAge: `${CORS.maxAgeSeconds} seconds` as const,
};
