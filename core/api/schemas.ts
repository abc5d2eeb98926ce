/**
 * The answers' zod schemas, by the names the contract (core/api/routes.ts) refers to them by: they
 * describe what the core returns (type-checked against its types below), and handlers' replies are
 * typed from them. With the request schemas, the named ones become OpenAPI 3.1 components
 * (core/api/openapi.ts).
 */

import type { ChatEvent as ChatEventResult, ChatResponse as ChatResult } from "../chat";
import { ChatMessageInput, ChatRequest, CompatChatMessageInput, CompatChatRequest } from "../chat/schema";
import type { ConversationView as ConversationResult } from "../conversation";
import type { DocumentView as DocumentResult } from "../document";
import {
  CompatDocumentInput,
  CompatIngestRequest,
  DocumentInput,
  DocumentScope,
  IngestRequest,
  Metadata,
  PatchRequest,
} from "../document/schema";
import type { UploadResult } from "../extract/schema";
import type { IngestResult, patch } from "../ingest";
import type { SearchResponse as SearchResult } from "../search";
import { SearchFilter, SearchRequest } from "../search/schema";
import * as z from "../zod";

/** The answers, built on first use: they cost only the request that reads the OpenAPI document. */
function responseSchemas() {
  const ErrorBody = z
    .object({
      error: z.object({
        code: z.string().check(z.describe("Dotted and stable, e.g. ratelimit.exceeded; switch on this")),
        message: z.string().check(z.describe("A sentence for people")),
        details: z.optional(z.unknown()).check(z.describe("For 400s: the failing paths, e.g. documents.0.content")),
      }),
    })
    .check(z.describe("Every error has this shape"));

  const timestamp = z.string().check(z.describe("ISO 8601"));

  /** Whose space a found passage's document is in: what `GET /v1/documents/{id}?scope=` opens it with. */
  const PassageScope = DocumentScope.check(
    z.describe(
      "Whose space the document is in: `user`, the caller's own; `shared`, the tenant's (every one, without `X-User-Id`). A user's document and a shared one may have the same id: `GET /v1/documents/{id}?scope=` with this value opens this one",
    ),
  );

  const Location = z
    .nullable(
      z.object({
        pages: z.optional(
          z
            .tuple([z.number().check(z.int()), z.number().check(z.int())])
            .check(z.describe("First and last page (1-based) of a PDF the passage is on")),
        ),
        headings: z.optional(z.array(z.string()).check(z.describe("The headings above the passage, outermost first"))),
      }),
    )
    .check(z.describe("Where the passage is in its document; null when it has neither pages nor headings"));

  const OpenApiDocument = z
    .looseObject({
      openapi: z.string(),
      info: z.looseObject({ title: z.string(), version: z.string() }),
      paths: z.record(z.string(), z.unknown()),
    })
    .check(z.describe("This document"));

  const HealthResponse = z.object({
    status: z
      .enum(["ok", "degraded"])
      .check(
        z.describe(
          "`degraded`: the database is unreachable (503), or most chunks of live documents are of another embedding model than this process's (200, `embedder.warning` says what to do)",
        ),
      ),
    database: z.enum(["ok", "unreachable"]),
    driver: z.string(),
    version: z.string(),
    embedder: z.object({
      provider: z.string(),
      model: z.string(),
      dimensions: z.number().check(z.int()),
      reembedding: z.optional(
        z
          .number()
          .check(z.int(), z.describe("Tenants whose re-embedding to this model (`engram reembed`) is unfinished")),
      ),
      staleShare: z.optional(
        z
          .number()
          .check(
            z.describe(
              "Share (0 to 1, two decimals) of the chunks of live documents (not deleted, not expired), every tenant's, embedded by another model than this one: vector search skips them, keyword still finds them. Counted up to 1,000 chunks; above, read from the database's statistics (which lag by up to about a tenth), less the chunks of deleted and expired documents waiting for the cleanup; absent when the database is unreachable or a large table has no statistics yet",
            ),
          ),
      ),
      warning: z.optional(
        z
          .string()
          .check(
            z.describe(
              "When `staleShare` is 0.5 or more (`status` is then `degraded`, still 200): what the operator does, `engram reembed` with this configuration, or this process restarted with the model the others moved to",
            ),
          ),
      ),
    }),
    chat: z.object({ provider: z.string(), model: z.string() }),
  });

  const IngestResponse = z.object({
    ingestionId: z.string(),
    documents: z
      .array(
        z.object({
          id: z.string(),
          status: z.enum(["created", "updated", "unchanged"]),
          chunks: z.number().check(z.int(), z.describe("Chunks of the documents sent, those left unchanged included")),
        }),
      )
      .check(z.describe("One entry per document sent, in order; copies of one id-less text share an entry's values")),
    totals: z.object({
      documents: z.number().check(z.int(), z.describe("Distinct documents stored")),
      chunks: z.number().check(z.int()),
      embedded: z.number().check(z.int(), z.describe("Distinct chunk texts this request embedded")),
      reused: z
        .number()
        .check(
          z.int(),
          z.describe(
            "Chunks written without embedding: their text already had a vector in the caller's or the shared space, or was embedded for another chunk of this request",
          ),
        ),
    }),
    usage: z.object({ embeddingTokens: z.number().check(z.int()) }),
  });

  const UploadResponse = z.extend(IngestResponse, {
    file: z.object({
      name: z.string(),
      format: z
        .enum(["pdf", "docx", "html", "markdown", "asciidoc", "text", "csv", "json", "jsonl"])
        .check(z.describe("What the file was judged to be by its content")),
      bytes: z.number().check(z.int()),
      characters: z.number().check(z.int(), z.describe("Characters of text extracted")),
      pages: z.nullable(z.number().check(z.int())).check(z.describe("A PDF's pages")),
    }),
  });

  const SearchHit = z.object({
    documentId: z.string(),
    scope: PassageScope,
    chunkId: z.string(),
    ordinal: z.number().check(z.int()),
    content: z.string(),
    score: z.number(),
    title: z.nullable(z.string()),
    source: z.nullable(z.string()),
    metadata: Metadata,
    createdAt: timestamp,
    location: Location,
    legs: z
      .optional(
        z.object({
          vector: z.nullable(z.number()).check(z.describe("Cosine similarity, or null: not among the vector leg's")),
          keyword: z
            .nullable(z.number())
            .check(z.describe("BM25 as a share of the question's best possible, or null: no keyword match")),
        }),
      )
      .check(
        z.describe(
          "Hybrid only: what each leg made of this passage, on its own mode's scale. `score` ranks; these say why (a passage with no keyword match and a low cosine is a weak one, whatever its rank)",
        ),
      ),
  });

  const SearchResponse = z.object({
    results: z.array(SearchHit),
    mode: z.enum(["vector", "keyword", "hybrid"]),
    scale: z
      .enum(["cosine_similarity", "bm25", "fused", "rerank"])
      .check(
        z.describe(
          "What `score` means: cosine similarity in [-1, 1]; BM25 as a share of the question's best possible, in [0, 1); fused score in [0, 1]; or the re-ranking model's relevance score",
        ),
      ),
    rerank: z.optional(
      z
        .enum(["applied", "failed"])
        .check(z.describe("With a re-rank stage configured: whether it ordered the results (failed: fused order)")),
    ),
    tookMs: z.number(),
    usage: z.object({ embeddingTokens: z.number().check(z.int()) }),
    stale: z
      .number()
      .check(
        z.int(),
        z.describe(
          "Chunks in this search's scope without a vector of the active model (counted up to 1,000, which means at least; 0 in keyword mode): the vector leg does not rank them, keyword still finds them. They are chunks embedded by another model, which `engram reembed` moves to the active one, and the two conversation turns after a deleted or edited turn until they are embedded again without it (seconds on the local server and under `engram mcp` on the embedded folder; the next hourly cleanup on AWS, or `engram cleanup`)",
        ),
      ),
  });

  const Citation = z.object({
    index: z.number().check(z.int(), z.describe("The n of the [n] markers in the answer")),
    documentId: z.string(),
    scope: PassageScope,
    chunkId: z.string(),
    title: z.nullable(z.string()),
    source: z.nullable(z.string()),
    snippet: z
      .string()
      .check(
        z.describe(
          "Up to 280 characters of the passage: from its sentence that shares most words with the answer's words citing it (… marks a cut), else from its start",
        ),
      ),
    score: z.number(),
    location: Location,
  });

  const ChatUsage = z.object({
    promptTokens: z.number().check(z.int()),
    completionTokens: z.number().check(z.int()),
    embeddingTokens: z.number().check(z.int()),
  });

  const ChatResponse = z.object({
    conversationId: z.string(),
    message: z.object({ role: z.literal("assistant"), content: z.string() }),
    citations: z.array(Citation),
    model: z.string().check(z.describe('"extractive" when no chat model is configured')),
    usage: ChatUsage,
  });

  // The server-sent events of a streamed answer (`stream: true`), in order: citations, deltas, done or error.
  const ChatCitationsEvent = z.object({ citations: z.array(Citation) });
  const ChatDeltaEvent = z.object({ text: z.string().check(z.describe("The next piece of the answer")) });
  const ChatDoneEvent = z.object({
    conversationId: z.string(),
    citations: z.array(Citation).check(z.describe("The sources the answer used, numbered as its [n] markers")),
    model: z.string(),
    usage: ChatUsage,
  });
  const ChatErrorEvent = z
    .object({ error: z.object({ code: z.string(), message: z.string() }) })
    .check(z.describe("A failure after the answer started; the stream ends"));

  const DocumentView = z.object({
    id: z.string(),
    scope: z.enum(["user", "shared"]),
    title: z.nullable(z.string()),
    source: z.nullable(z.string()),
    metadata: Metadata,
    importance: z.number().check(z.int()),
    conversationId: z.nullable(z.string()),
    chunks: z.number().check(z.int()),
    contentLength: z.number().check(z.int()),
    accessCount: z.number().check(z.int()),
    lastAccessedAt: z.nullable(timestamp),
    expiresAt: z.nullable(timestamp),
    deletedAt: z.nullable(timestamp),
    createdAt: timestamp,
    updatedAt: timestamp,
    content: z.optional(z.string()).check(z.describe("Only when reading one document")),
  });

  const PatchResponse = z.extend(DocumentView, {
    status: IngestResponse.shape.documents.def.element.shape.status.check(z.describe("What the change did")),
    totals: IngestResponse.shape.totals,
  });

  const page = <K extends string, T extends z.ZodMiniType>(key: K, item: T) =>
    z.object({
      [key]: z.array(item),
      nextCursor: z.nullable(z.string()).check(z.describe("null on the last page")),
    } as { [P in K]: z.ZodMiniArray<T> } & { nextCursor: z.ZodMiniNullable<z.ZodMiniString> });

  const ConversationSummary = z.object({
    id: z.string(),
    title: z.nullable(z.string()),
    messageCount: z.number().check(z.int()),
    createdAt: timestamp,
    updatedAt: timestamp,
  });

  const ConversationView = z.extend(ConversationSummary, {
    messages: z
      .array(
        z.object({
          role: z.enum(["user", "assistant", "system"]),
          content: z.string(),
          citations: z
            .array(Citation)
            .check(z.describe("The chat's answer: the sources it used, as it answered them; none on other messages")),
          model: z.nullable(z.string()),
          usage: z.nullable(ChatUsage).check(z.describe("The chat's answer: its usage, as answered; else null")),
          createdAt: timestamp,
        }),
      )
      .check(z.describe("Oldest first: all of them, or the newest whose JSON fits in 4 MB")),
    olderCursor: z
      .nullable(z.string())
      .check(
        z.describe(
          "null when `messages` starts at the conversation's first; else pass it as `before` for the older messages",
        ),
      ),
  });

  const StatsResponse = z.object({
    tenant: z.string().check(z.describe("The tenant the API key belongs to")),
    documents: z.object({
      total: z.number().check(z.int(), z.describe("Live documents: neither deleted nor expired")),
      deleted: z
        .number()
        .check(
          z.int(),
          z.describe(
            "Soft-deleted, awaiting purge; expired documents awaiting purge are in neither count (a listing with `includeDeleted` shows them, `expiresAt` past)",
          ),
        ),
    }),
    chunks: z.number().check(z.int()),
    byConversation: z.array(z.object({ conversationId: z.string(), documents: z.number().check(z.int()) })),
    averageImportance: z.nullable(z.number()),
    totalAccessCount: z.number().check(z.int()),
    lastIngestAt: z.nullable(timestamp),
    embedding: z.object({
      model: z.string().check(z.describe("The active embedding model: searches rank only its vectors")),
      dimensions: z.number().check(z.int()),
      stale: z
        .number()
        .check(
          z.int(),
          z.describe(
            "Chunks of this space embedded by another model, waiting for `engram reembed` (keyword finds them)",
          ),
        ),
      reembed: z.nullable(
        z.object({
          model: z.string(),
          startedAt: z.string(),
          finishedAt: z.nullable(z.string()),
          reembedded: z.number().check(z.int(), z.describe("Chunks re-embedded so far (the tenant's)")),
          lastError: z.nullable(z.string()),
          runningUntil: z.nullable(z.string().check(z.describe("While a run holds the tenant: its lease's end"))),
        }),
      ),
    }),
  });

  const DocumentList = page("documents", DocumentView);
  const ConversationList = page("conversations", ConversationSummary);
  const Deleted = z.object({ id: z.string(), deleted: z.literal(true) });
  const DocumentDeleted = z.extend(Deleted, {
    hard: z.boolean().check(z.describe("Removed with its chunks now (true), or hidden and purged after retention")),
  });
  const CompatIngestResponse = z.extend(IngestResponse, { success: z.literal(true) });
  const CompatChatResponse = z.extend(ChatResponse, {
    success: z.literal(true),
    response: z.string().check(z.describe("The answer (the Digital Twin API's field)")),
    sources: z.array(
      z.object({
        id: z.string(),
        scope: PassageScope,
        title: z.nullable(z.string()),
        content: z.string(),
        score: z.number(),
        location: Location,
      }),
    ),
  });

  const JsonRpcId = z.union([z.string(), z.number()]);
  const McpMessage = z
    .object({
      jsonrpc: z.literal("2.0"),
      id: z.optional(JsonRpcId).check(z.describe("Absent on notifications")),
      method: z.string().check(z.describe("initialize, tools/list, tools/call, ...")),
      params: z.optional(z.record(z.string(), z.unknown())),
    })
    .check(
      z.describe(
        "A Model Context Protocol message (JSON-RPC 2.0). Tools: remember, search_memory, ask, list_memories, forget. A request counts once: a tool call in its route's rate class (remember: ingest, search_memory: search, ask: chat, the others: default), any other message in default",
      ),
    );
  const McpResponse = z
    .object({
      jsonrpc: z.literal("2.0"),
      id: z.nullable(JsonRpcId),
      result: z.optional(z.record(z.string(), z.unknown())),
      error: z.optional(
        z.object({ code: z.number().check(z.int()), message: z.string(), data: z.optional(z.unknown()) }),
      ),
    })
    .check(
      z.describe("The JSON-RPC answer; a failed tool call is a result with isError and the API's code and message"),
    );
  // A JSON-RPC batch (2.0, 6), answered member by member (core/mcp/batch.ts); at most the SDK's MAX_BATCH_SIZE.
  const McpBody = z
    .union([McpMessage, z.array(McpMessage).check(z.minLength(1), z.maxLength(100))])
    .check(z.describe("One message, or a batch of them (MCP 2025-03-26), each answered on its own"));
  const McpAnswer = z
    .union([McpResponse, z.array(McpResponse)])
    .check(
      z.describe(
        "A request's answer; a batch's, an array of its requests' answers in its order (a batch of notifications only is answered 202, no body)",
      ),
    );

  return {
    OpenApiDocument,
    McpMessage,
    McpBody,
    McpResponse,
    McpAnswer,
    ErrorBody,
    HealthResponse,
    IngestResponse,
    UploadResponse,
    SearchResponse,
    SearchHit,
    Citation,
    Location,
    ChatUsage,
    ChatResponse,
    ChatCitationsEvent,
    ChatDeltaEvent,
    ChatDoneEvent,
    ChatErrorEvent,
    DocumentView,
    PatchResponse,
    ConversationSummary,
    ConversationView,
    StatsResponse,
    DocumentList,
    ConversationList,
    Deleted,
    DocumentDeleted,
    CompatIngestResponse,
    CompatChatResponse,
  };
}

function build() {
  const r = responseSchemas();

  /**
   * What clients send, and what the bodies share, by component name: request bodies go to
   * `components.requestBodies` (so generators leave fields with defaults optional), the rest to
   * `components.schemas`, as sent (zod's input).
   */
  const requests: Record<string, z.ZodMiniType> = {
    JsonValue: Metadata.def.valueType,
    IngestRequest,
    DocumentInput,
    CompatIngestRequest,
    CompatDocumentInput,
    PatchRequest,
    SearchRequest,
    SearchFilter,
    ChatRequest,
    ChatMessageInput,
    CompatChatRequest,
    CompatChatMessageInput,
    McpMessage: r.McpMessage,
    McpBody: r.McpBody,
  };
  /** Every answer and what they share, as answered (zod's output), by its name in `components.schemas`. */
  const responses: Record<string, z.ZodMiniType> = {
    JsonValue: Metadata.def.valueType,
    Error: r.ErrorBody,
    HealthResponse: r.HealthResponse,
    IngestResponse: r.IngestResponse,
    UploadResponse: r.UploadResponse,
    SearchResponse: r.SearchResponse,
    SearchHit: r.SearchHit,
    ChatResponse: r.ChatResponse,
    ChatUsage: r.ChatUsage,
    Citation: r.Citation,
    Location: r.Location,
    Document: r.DocumentView,
    PatchResponse: r.PatchResponse,
    DocumentList: r.DocumentList,
    Deleted: r.Deleted,
    DocumentDeleted: r.DocumentDeleted,
    ConversationSummary: r.ConversationSummary,
    ConversationList: r.ConversationList,
    Conversation: r.ConversationView,
    Stats: r.StatsResponse,
    CompatIngestResponse: r.CompatIngestResponse,
    CompatChatResponse: r.CompatChatResponse,
    McpResponse: r.McpResponse,
    McpAnswer: r.McpAnswer,
  };

  return { byName: r, requests, responses };
}

let built: ReturnType<typeof build> | undefined;

/**
 * The answers by the names the contract (core/api/routes.ts) gives them, and the named schemas of
 * `components`. The response schemas are made on the first call, so a cold start that never serves
 * the OpenAPI document skips them.
 */
export function routeSchemas(): ReturnType<typeof build> {
  built ??= build();
  return built;
}

// The documented answers must stay what the core returns: this fails to compile when they drift.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Expect<T extends true> = T;
/** What JSON makes of a value: dates become ISO strings. */
type Wire<T> = T extends Date
  ? string
  : T extends [unknown, ...unknown[]]
    ? { [K in keyof T]: Wire<T[K]> }
    : T extends (infer U)[]
      ? Wire<U>[]
      : T extends object
        ? { [K in keyof T]: Wire<T[K]> }
        : T;
/** Every response schema by name: the typed client (client/) takes its answer types from these. */
export type Responses = ReturnType<typeof responseSchemas>;
type StreamEvents = {
  [K in ChatEventResult["event"]]: z.output<Responses[`Chat${Capitalize<K>}Event`]>;
};
export type ResponsesMatchCore = [
  Expect<Same<{ [E in ChatEventResult as E["event"]]: E["data"] }, StreamEvents>>,
  Expect<Same<z.output<Responses["IngestResponse"]>, IngestResult>>,
  Expect<Same<z.output<Responses["UploadResponse"]>, UploadResult>>,
  Expect<Same<z.output<Responses["SearchResponse"]>, SearchResult>>,
  Expect<Same<z.output<Responses["ChatResponse"]>, ChatResult>>,
  Expect<Same<z.output<Responses["DocumentView"]>, Wire<DocumentResult>>>,
  Expect<Same<z.output<Responses["PatchResponse"]>, Wire<Awaited<ReturnType<typeof patch>>>>>,
  Expect<Same<z.output<Responses["ConversationView"]>, Wire<ConversationResult>>>,
];
