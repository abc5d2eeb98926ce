/**
 * The one place that reads the environment and SST's linked resources. Validated with zod
 * once, on first use; a bad or missing value fails with a message naming the variable.
 * On Lambda a missing secret becomes a 503 `config.missing` instead of a crash loop.
 * In the cloud (Lambda, or NODE_ENV=production) providers are never guessed from which secrets
 * happen to be readable: an unreadable OpenAiApiKey must not quietly turn into offline vectors.
 */
import { Resource } from "sst/resource";
import { version } from "../package.json";
import { EngramError } from "./error";
import * as z from "./zod";

/** package.json's: a bundle keeps only this field of it. */
export const VERSION: string = version;

const rate = z.string().check(z.regex(/^\d+\/(s|sec|second|m|min|minute|h|hour)$/, 'expected a rate like "20/min"'));

const int = (min: number, max: number) => {
  const error = `expected a whole number from ${min} to ${max}`;
  // Digits only: Number() would also read " 1536", "0x600" and "1e3".
  return z.pipe(
    z.string().check(z.regex(/^-?\d+$/, { error })),
    z.coerce.number<string>({ error }).check(z.int({ error }), z.gte(min, { error }), z.lte(max, { error })),
  );
};
/** A decimal number in a range ("0.6", "1"), named in its message as the whole numbers' are. */
const decimal = (min: number, max: number) => {
  const error = `expected a number from ${min} to ${max}`;
  return z.pipe(
    z.string().check(z.regex(/^-?(\d+\.?\d*|\.\d+)$/, { error })),
    z.coerce.number<string>({ error }).check(z.gte(min, { error }), z.lte(max, { error })),
  );
};
/** An http(s) URL: a base URL the OpenAI SDK or fetch is handed (`ftp://` passed z.url() and failed at each call). */
const httpUrl = z.url().check(z.regex(/^https?:\/\/\S+$/i, "expected an http:// or https:// URL"));

const schema = z.object({
  DATABASE_URL: z.optional(z.string().check(z.regex(/^postgres(ql)?:\/\//, "expected a postgres:// URL"))),
  DATABASE_DRIVER: z.optional(z.enum(["pg", "neon-http", "pglite"])),
  DATABASE_READ_URL: z.optional(z.string().check(z.regex(/^postgres(ql)?:\/\//, "expected a postgres:// URL"))),
  // How long a search waits for the replica to replay its tenant's last write before reading the primary
  // (docs/replicas.md has the measured replay lag this bound is set against).
  DATABASE_READ_WAIT_MS: z._default(int(0, 10_000), 100),
  NEON_FETCH_ENDPOINT: z.optional(z.string().check(z.url())),
  ENGRAM_DATA_DIR: z._default(z.string().check(z.minLength(1)), ".engram"),
  DATABASE_POOL_MAX: z._default(int(1, 1000), 10),
  DATABASE_POOL_RESERVED: z._default(int(0, 999), 3),
  DATABASE_CONNECT_WAIT_MS: z._default(int(1, 60_000), 2_000),
  INGEST_CONCURRENCY_PER_TENANT: z._default(int(1, 1000), 4),
  INGEST_BYTES_PER_TENANT: z._default(int(1, 1024 * 1024 * 1024), 24 * 1024 * 1024),
  OPENAI_API_KEY: z.optional(z.string().check(z.minLength(1))),
  OPENAI_BASE_URL: z.optional(httpUrl),
  EMBEDDING_PROVIDER: z.optional(z.enum(["openai", "offline"])),
  EMBEDDING_MODEL: z._default(
    z.string().check(
      z.minLength(1),
      // A trailing space or a Windows line end ("model-a\r" from a .env file) named another model, whose vectors
      // every chunk then lacked, and printed the same as the model meant.
      z.refine((name) => name === name.trim(), "no spaces or line ends before or after the name"),
      // Vectors are told apart by their model's name: an OpenAI-compatible model named as the offline embedder's
      // would have its vectors ranked against the offline ones.
      z.refine((name) => !name.startsWith("engram-"), "names starting with engram- are the offline embedder's"),
    ),
    "text-embedding-3-small",
  ),
  EMBEDDING_DIMENSIONS: z._default(int(2, 16000), 1536),
  REEMBED_PACE: z._default(decimal(0, 100), 1),
  CHAT_PROVIDER: z.optional(z.enum(["openai", "extractive"])),
  CHAT_MODEL: z._default(z.string().check(z.minLength(1)), "gpt-4o-mini"),
  OPENAI_TIMEOUT_MS: z._default(int(100, 600_000), 30_000),
  CHAT_BASE_URL: z.optional(httpUrl),
  CHAT_TIMEOUT_MS: z._default(int(100, 600_000), 60_000),
  CHAT_MAX_RETRIES: z._default(int(0, 10), 2),
  CHAT_PROMPT_TOKENS: z._default(int(1_000, 1_000_000), 12_000),
  CHAT_MAX_ANSWER_TOKENS: z._default(int(16, 100_000), 1_024),
  PORT: z._default(int(0, 65535), 3000),
  LOG_LEVEL: z._default(z.enum(["debug", "info", "warn", "error", "silent"]), "info"),
  SOFT_DELETE_RETENTION_DAYS: z._default(int(0, 3650), 30),
  RATE_LIMIT_FAIL_MODE: z._default(z.enum(["open", "closed"]), "closed"),
  RATE_LIMIT_CHAT: z._default(rate, "20/min"),
  RATE_LIMIT_SEARCH: z._default(rate, "120/min"),
  RATE_LIMIT_INGEST: z._default(rate, "30/min"),
  RATE_LIMIT_DEFAULT: z._default(rate, "300/min"),
  // Tenant-wide ceilings, shared by all of a tenant's end users: five users at their full rate.
  RATE_LIMIT_TENANT_CHAT: z._default(rate, "100/min"),
  RATE_LIMIT_TENANT_SEARCH: z._default(rate, "600/min"),
  RATE_LIMIT_TENANT_INGEST: z._default(rate, "150/min"),
  RATE_LIMIT_TENANT_DEFAULT: z._default(rate, "1500/min"),
  RATE_LIMIT_AUTH_FAILURES: z._default(rate, "30/min"),
  KEYLESS_TENANT: z.optional(z.string().check(z.regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "expected a tenant name"))),
  CHUNK_MAX_TOKENS: z._default(int(32, 8000), 400),
  CHUNK_OVERLAP_TOKENS: z._default(int(0, 1000), 50),
  SEARCH_TEXT_CONFIG: z._default(
    z.string().check(z.regex(/^[a-z_]+$/, "expected a text search configuration name like english")),
    "english",
  ),
  // Hybrid search fuses the vector leg's first 40, whose recall is what counts: on the Python manual's labelled set
  // (4,419 chunks) recall@40 was 0.963 at 120 and 0.985 at 200; at 100,000 chunks 200 cost +0.3 / +0.7 ms p50 / p95
  // (docs/search.md, "How wide the index is searched").
  HNSW_EF_SEARCH: z._default(int(10, 1000), 200),
  SEARCH_RRF_K: z._default(int(1, 1000), 60),
  // Chosen on the labelled sets (docs/search.md, "Fusion"): the only setting whose hybrid found at least as much as
  // each of its legs on every set.
  SEARCH_FUSION: z._default(z.enum(["rrf", "score"]), "score"),
  SEARCH_KEYWORD_WEIGHT: z._default(decimal(0, 1), 0.6),
  RERANK_URL: z.optional(httpUrl),
  RERANK_MODEL: z.optional(z.string()),
  RERANK_API_KEY: z.optional(z.string()),
  // Within the search function's 15 s (infra/functions.ts) beside the embedding and the statement: a longer wait
  // ended as the request's own timeout, a 503, where a slow re-ranker is to leave the fused order.
  RERANK_TIMEOUT_MS: z._default(int(50, 10_000), 2_000),
  RERANK_CANDIDATES: z._default(int(1, 200), 30),
  SEARCH_EXACT_SCAN_CHUNKS: z._default(int(0, 1_000_000), 2500),
  SEARCH_QUERY_CACHE_TTL_SECONDS: z._default(int(0, 365 * 24 * 3600), 7 * 24 * 3600),
  INDEX_BACKLOG_MAX: z._default(int(0, 10_000_000), 10_000),
  AWS_LAMBDA_FUNCTION_NAME: z.optional(z.string()),
  NODE_ENV: z.optional(z.string()),
});

export type Env = z.infer<typeof schema>;

export interface Config {
  version: string;
  onLambda: boolean;
  database: {
    url: string | undefined;
    driver: "pg" | "neon-http" | "pglite";
    /** A streaming replica for searches (docs/replicas.md), on the primary's driver; undefined when none. */
    readUrl: string | undefined;
    /** The longest a search waits for the replica to replay its tenant's last write, then reads the primary. */
    readWaitMs: number;
    fetchEndpoint: string | undefined;
    dataDir: string;
    /** `pg` only: pool size, connections ingests can never take, and the longest wait for one. */
    poolMax: number;
    poolReserved: number;
    connectWaitMs: number;
  };
  /** Per tenant, across processes (core/admission): ingests, and request bytes of ingests, in flight at once. */
  ingestAdmission: { concurrency: number; bytes: number };
  openai: { apiKey: string | undefined; baseURL: string | undefined; timeoutMs: number };
  embedding: {
    provider: "openai" | "offline";
    /** The provider was named (EMBEDDING_PROVIDER), not inferred from what is reachable. */
    chosen: boolean;
    model: string;
    dimensions: number;
    /** A re-embed rests this many times as long as each batch's write took (core/embedding/reembed.ts). */
    reembedPace: number;
  };
  chat: {
    provider: "openai" | "extractive";
    /** The provider was named (CHAT_PROVIDER), not inferred from what is reachable. */
    chosen: boolean;
    model: string;
    /** The chat endpoint; defaults to OPENAI_BASE_URL (so embeddings and chat can live on different servers). */
    baseURL: string | undefined;
    /** Per attempt; for streams, the longest wait for the first and for each next token. */
    timeoutMs: number;
    maxRetries: number;
    /** Budget for the whole prompt (instructions, sources, history, question), in estimated tokens. */
    promptTokens: number;
    maxAnswerTokens: number;
  };
  port: number;
  logLevel: Env["LOG_LEVEL"];
  softDeleteRetentionDays: number;
  rateLimit: {
    failMode: "open" | "closed";
    defaults: { chat: string; search: string; ingest: string; default: string };
    /** Tenant-wide ceilings per class, shared by all of a tenant's end users. */
    ceilings: { chat: string; search: string; ingest: string; default: string };
    /** Failed authentications allowed per client address. */
    authFailures: string;
  };
  /** The tenant whose /api/* routes take requests without a key (the Digital Twin's clients); off when undefined. */
  keylessTenant: string | undefined;
  chunk: { maxTokens: number; overlapTokens: number };
  search: {
    textConfig: string;
    efSearch: number;
    /** Reciprocal rank fusion constant: a result at rank r adds 1 / (rrfK + r). */
    rrfK: number;
    /** How hybrid fuses its legs (docs/search.md): reciprocal rank or normalized score. */
    fusion: "rrf" | "score";
    /** The keyword leg's share of the fused score, in [0, 1]; the vector leg has the rest. */
    keywordWeight: number;
    /** The optional re-rank stage; undefined when RERANK_URL is unset. */
    rerank:
      | { url: string; model: string | undefined; apiKey: string | undefined; timeoutMs: number; candidates: number }
      | undefined;
    /** Scopes with at most this many candidate chunks (more on large tables, see core/search) are scanned exactly. */
    exactScanChunks: number;
    /** How long a query's embedding stays cached; 0 turns the cache off. */
    queryCacheTtlSeconds: number;
    /** Chunks a tenant may have waiting for the HNSW index before ingests index their own (core/search/indexer.ts). */
    indexBacklogMax: number;
  };
}

/**
 * A linked SST secret's value, or undefined when not linked (local runs). In the cloud a secret
 * that cannot be read fails naming it; locally it counts as not linked.
 */
function linked(name: string, strict: boolean): string | undefined {
  try {
    const resources = Resource as unknown as Record<string, { value?: string } | undefined>;
    if (!(name in resources)) return undefined;
    const value = resources[name]?.value;
    return value ? value : undefined;
  } catch (error) {
    if (!strict) return undefined;
    throw new EngramError("unavailable", "config.missing", `the ${name} secret cannot be read`, { cause: error });
  }
}

export function parseConfig(env: Record<string, string | undefined>): Config {
  const source: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries(env)) if (value !== "") source[key] = value;
  const parsed = schema.safeParse(source);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const variable = String(issue?.path[0] ?? "configuration");
    throw new EngramError("unavailable", "config.invalid", `${variable}: ${issue?.message ?? "invalid"}`);
  }
  const e = parsed.data;
  const onLambda = Boolean(e.AWS_LAMBDA_FUNCTION_NAME);
  const cloud = onLambda || e.NODE_ENV === "production";
  const databaseUrl = e.DATABASE_URL ?? linked("DatabaseUrl", cloud);
  if (onLambda && !databaseUrl) {
    throw new EngramError("unavailable", "config.missing", "DATABASE_URL is not set (link the DatabaseUrl secret)");
  }
  const driver = e.DATABASE_DRIVER ?? driverFor(databaseUrl);
  const readUrl = e.DATABASE_READ_URL ?? linked("DatabaseReadUrl", cloud);
  if (readUrl && driver === "pglite") {
    throw new EngramError(
      "unavailable",
      "config.invalid",
      "DATABASE_READ_URL: a read replica needs a Postgres primary (set DATABASE_URL); the embedded PGlite has no replicas",
    );
  }
  const apiKey = e.OPENAI_API_KEY ?? linked("OpenAiApiKey", cloud);
  // An OpenAI-compatible server without auth (Ollama, vLLM) needs only a base URL.
  const openaiReachable = Boolean(apiKey || e.OPENAI_BASE_URL);
  // Locally the providers follow what is reachable (a newcomer starts offline); in the cloud they are what the
  // configuration says, OpenAI unless EMBEDDING_PROVIDER=offline / CHAT_PROVIDER=extractive is chosen explicitly.
  const embeddingProvider = e.EMBEDDING_PROVIDER ?? (cloud || openaiReachable ? "openai" : "offline");
  const chatProvider = e.CHAT_PROVIDER ?? (cloud || openaiReachable || e.CHAT_BASE_URL ? "openai" : "extractive");
  // Locally too when OpenAI was chosen by name: with no key and no server, every request failed after four tries
  // toward api.openai.com.
  if (cloud || e.EMBEDDING_PROVIDER === "openai" || e.CHAT_PROVIDER === "openai") {
    const needs = [
      embeddingProvider === "openai" && !e.OPENAI_BASE_URL ? "embeddings" : undefined,
      chatProvider === "openai" && !e.CHAT_BASE_URL && !e.OPENAI_BASE_URL ? "chat" : undefined,
    ].filter(Boolean);
    if (needs.length && !apiKey) {
      throw new EngramError(
        "unavailable",
        "config.missing",
        cloud
          ? `OPENAI_API_KEY is not set (link the OpenAiApiKey secret, needed for ${needs.join(" and ")}; or choose EMBEDDING_PROVIDER=offline and CHAT_PROVIDER=extractive explicitly)`
          : `OPENAI_API_KEY is not set, needed for ${needs.join(" and ")} with the OpenAI provider chosen: set it, or OPENAI_BASE_URL for a server that needs no key (Ollama, vLLM)`,
      );
    }
  }
  return {
    version: VERSION,
    onLambda,
    database: {
      url: databaseUrl,
      driver,
      readUrl,
      readWaitMs: e.DATABASE_READ_WAIT_MS,
      fetchEndpoint: e.NEON_FETCH_ENDPOINT,
      dataDir: e.ENGRAM_DATA_DIR,
      poolMax: e.DATABASE_POOL_MAX,
      poolReserved: Math.min(e.DATABASE_POOL_RESERVED, e.DATABASE_POOL_MAX - 1),
      connectWaitMs: e.DATABASE_CONNECT_WAIT_MS,
    },
    ingestAdmission: { concurrency: e.INGEST_CONCURRENCY_PER_TENANT, bytes: e.INGEST_BYTES_PER_TENANT },
    openai: { apiKey, baseURL: e.OPENAI_BASE_URL, timeoutMs: e.OPENAI_TIMEOUT_MS },
    embedding: {
      provider: embeddingProvider,
      chosen: e.EMBEDDING_PROVIDER !== undefined,
      model: e.EMBEDDING_MODEL,
      dimensions: e.EMBEDDING_DIMENSIONS,
      reembedPace: e.REEMBED_PACE,
    },
    chat: {
      provider: chatProvider,
      chosen: e.CHAT_PROVIDER !== undefined,
      model: e.CHAT_MODEL,
      baseURL: e.CHAT_BASE_URL ?? e.OPENAI_BASE_URL,
      timeoutMs: e.CHAT_TIMEOUT_MS,
      maxRetries: e.CHAT_MAX_RETRIES,
      promptTokens: e.CHAT_PROMPT_TOKENS,
      maxAnswerTokens: e.CHAT_MAX_ANSWER_TOKENS,
    },
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    softDeleteRetentionDays: e.SOFT_DELETE_RETENTION_DAYS,
    rateLimit: {
      failMode: e.RATE_LIMIT_FAIL_MODE,
      defaults: {
        chat: e.RATE_LIMIT_CHAT,
        search: e.RATE_LIMIT_SEARCH,
        ingest: e.RATE_LIMIT_INGEST,
        default: e.RATE_LIMIT_DEFAULT,
      },
      ceilings: {
        chat: e.RATE_LIMIT_TENANT_CHAT,
        search: e.RATE_LIMIT_TENANT_SEARCH,
        ingest: e.RATE_LIMIT_TENANT_INGEST,
        default: e.RATE_LIMIT_TENANT_DEFAULT,
      },
      authFailures: e.RATE_LIMIT_AUTH_FAILURES,
    },
    keylessTenant: e.KEYLESS_TENANT,
    chunk: { maxTokens: e.CHUNK_MAX_TOKENS, overlapTokens: e.CHUNK_OVERLAP_TOKENS },
    search: {
      textConfig: e.SEARCH_TEXT_CONFIG,
      efSearch: e.HNSW_EF_SEARCH,
      rrfK: e.SEARCH_RRF_K,
      fusion: e.SEARCH_FUSION,
      keywordWeight: e.SEARCH_KEYWORD_WEIGHT,
      rerank: e.RERANK_URL
        ? {
            url: e.RERANK_URL,
            model: e.RERANK_MODEL,
            apiKey: e.RERANK_API_KEY,
            timeoutMs: e.RERANK_TIMEOUT_MS,
            candidates: e.RERANK_CANDIDATES,
          }
        : undefined,
      exactScanChunks: e.SEARCH_EXACT_SCAN_CHUNKS,
      queryCacheTtlSeconds: e.SEARCH_QUERY_CACHE_TTL_SECONDS,
      indexBacklogMax: e.INDEX_BACKLOG_MAX,
    },
  };
}

/** Neon URLs go through Neon's HTTP driver; other Postgres URLs through `pg`; none means PGlite. */
function driverFor(url: string | undefined): "pg" | "neon-http" | "pglite" {
  if (!url) return "pglite";
  const host = url.replace(/^postgres(ql)?:\/\/([^@/]*@)?/, "").split(/[/:?]/)[0] ?? "";
  return /\.neon\.(tech|build)$/.test(host) ? "neon-http" : "pg";
}

let current: Config | undefined;

/** The process's configuration, parsed from the environment on first use. */
export function config(): Config {
  current ??= parseConfig(process.env);
  return current;
}

/** Replaces the configuration (tests, and the CLI after reading its flags). */
export function setConfig(overrides: Record<string, string | undefined>): Config {
  current = undefined; // a refused configuration is not kept: the next config() reads the environment again
  current = parseConfig({ ...process.env, ...overrides });
  return current;
}
