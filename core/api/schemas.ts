/**
 * The zod schemas behind each route, by route key: the request schemas are the very ones the
 * handlers validate with, imported from where they live; the response schemas describe what the
 * core returns (type-checked against its types below). core/api/openapi.ts turns them into
 * OpenAPI 3.1.
 */
import * as z from "zod";
import type { ChatResponse as ChatResult } from "../chat";
import { ChatMessageInput, ChatRequest, CompatChatRequest } from "../chat/schema";
import { ConversationListQuery } from "../conversation/schema";
import {
  CompatIngestRequest,
  DeleteQuery,
  DocumentInput,
  GetQuery,
  IngestRequest,
  ListQuery,
  Metadata,
  PatchRequest,
} from "../document/schema";
import type { IngestResult } from "../ingest";
import type { SearchResponse as SearchResult } from "../search";
import { SearchFilter, SearchRequest } from "../search/schema";

/** The answers, built on first use: they cost only the request that reads the OpenAPI document. */
function responseSchemas() {
  const ErrorBody = z
    .object({
      error: z.object({
        code: z.string().describe("Dotted and stable, e.g. ratelimit.exceeded; switch on this"),
        message: z.string().describe("A sentence for people"),
        details: z.unknown().optional().describe("For 400s: the failing paths, e.g. documents.0.content"),
      }),
    })
    .describe("Every error has this shape");

  const timestamp = z.string().describe("ISO 8601");

  const HealthResponse = z.object({
    status: z.enum(["ok", "degraded"]),
    database: z.enum(["ok", "unreachable"]),
    driver: z.string(),
    version: z.string(),
    embedder: z.object({ provider: z.string(), model: z.string(), dimensions: z.number().int() }),
    chat: z.object({ provider: z.string(), model: z.string() }),
  });

  const IngestResponse = z.object({
    ingestionId: z.string(),
    documents: z.array(
      z.object({ id: z.string(), status: z.enum(["created", "updated", "unchanged"]), chunks: z.number().int() }),
    ),
    totals: z.object({
      documents: z.number().int(),
      chunks: z.number().int(),
      embedded: z.number().int().describe("Chunks embedded by this request"),
      reused: z.number().int().describe("Chunks whose text did not change and kept their embeddings"),
    }),
    usage: z.object({ embeddingTokens: z.number().int() }),
  });

  const SearchHit = z.object({
    documentId: z.string(),
    chunkId: z.string(),
    ordinal: z.number().int(),
    content: z.string(),
    score: z.number(),
    title: z.string().nullable(),
    source: z.string().nullable(),
    metadata: z.record(z.string(), z.unknown()),
    createdAt: timestamp,
  });

  const SearchResponse = z.object({
    results: z.array(SearchHit),
    mode: z.enum(["vector", "keyword", "hybrid"]),
    scale: z
      .enum(["cosine_similarity", "ts_rank_cd", "rrf"])
      .describe("What `score` means: cosine similarity in [-1, 1], keyword rank in [0, 1), fused rank in (0, 1]"),
    tookMs: z.number(),
    usage: z.object({ embeddingTokens: z.number().int() }),
  });

  const Citation = z.object({
    index: z.number().int().describe("The n of the [n] markers in the answer"),
    documentId: z.string(),
    chunkId: z.string(),
    title: z.string().nullable(),
    source: z.string().nullable(),
    snippet: z.string(),
    score: z.number(),
  });

  const ChatResponse = z.object({
    conversationId: z.string(),
    message: z.object({ role: z.literal("assistant"), content: z.string() }),
    citations: z.array(Citation),
    model: z.string().describe('"extractive" when no chat model is configured'),
    usage: z.object({
      promptTokens: z.number().int(),
      completionTokens: z.number().int(),
      embeddingTokens: z.number().int(),
    }),
  });

  const DocumentView = z.object({
    id: z.string(),
    scope: z.enum(["user", "shared"]),
    title: z.string().nullable(),
    source: z.string().nullable(),
    metadata: z.record(z.string(), z.unknown()),
    importance: z.number().int(),
    conversationId: z.string().nullable(),
    chunks: z.number().int(),
    contentLength: z.number().int(),
    accessCount: z.number().int(),
    lastAccessedAt: timestamp.nullable(),
    expiresAt: timestamp.nullable(),
    deletedAt: timestamp.nullable(),
    createdAt: timestamp,
    updatedAt: timestamp,
    content: z.string().optional().describe("Only when reading one document"),
  });

  const page = <T extends z.ZodType>(key: string, item: T) =>
    z.object({ [key]: z.array(item), nextCursor: z.string().nullable().describe("null on the last page") });

  const ConversationSummary = z.object({
    id: z.string(),
    title: z.string().nullable(),
    messageCount: z.number().int(),
    createdAt: timestamp,
    updatedAt: timestamp,
  });

  const ConversationView = ConversationSummary.extend({
    messages: z.array(
      z.object({
        role: z.enum(["user", "assistant", "system"]),
        content: z.string(),
        citations: z.array(z.unknown()),
        model: z.string().nullable(),
        usage: z.record(z.string(), z.number()).nullable(),
        createdAt: timestamp,
      }),
    ),
  });

  const StatsResponse = z.object({
    documents: z.object({
      total: z.number().int().describe("Live documents"),
      deleted: z.number().int().describe("Soft-deleted, awaiting purge"),
    }),
    chunks: z.number().int(),
    byConversation: z.array(z.object({ conversationId: z.string(), documents: z.number().int() })),
    averageImportance: z.number().nullable(),
    totalAccessCount: z.number().int(),
    lastIngestAt: timestamp.nullable(),
  });

  const DocumentList = page("documents", DocumentView);
  const ConversationList = page("conversations", ConversationSummary);
  const Deleted = z.object({ id: z.string(), deleted: z.literal(true) }).catchall(z.unknown());
  const CompatIngestResponse = IngestResponse.extend({ success: z.literal(true) });
  const CompatChatResponse = ChatResponse.extend({
    response: z.string().describe("The answer (the Digital Twin API's field)"),
    sources: z.array(
      z.object({ id: z.string(), title: z.string().nullable(), content: z.string(), score: z.number() }),
    ),
  });

  return {
    ErrorBody,
    HealthResponse,
    IngestResponse,
    SearchResponse,
    Citation,
    ChatResponse,
    DocumentView,
    ConversationSummary,
    ConversationView,
    StatsResponse,
    DocumentList,
    ConversationList,
    Deleted,
    CompatIngestResponse,
    CompatChatResponse,
  };
}

export interface RouteSchemas {
  query?: z.ZodObject;
  body?: z.ZodType;
  /** The 200 answer; undefined for the OpenAPI document itself. */
  response?: z.ZodType;
  /** `stream: true` in the body answers server-sent events. */
  streams?: boolean;
}

function build() {
  const r = responseSchemas();

  /** By route key (`METHOD /path`, as in core/api/routes.ts); the OpenAPI test checks every route has one. */
  const schemas: Record<string, RouteSchemas> = {
    "GET /v1/health": { response: r.HealthResponse },
    "GET /v1/openapi.json": {},
    "POST /v1/ingest": { body: IngestRequest, response: r.IngestResponse },
    "GET /v1/documents": { query: ListQuery, response: r.DocumentList },
    "GET /v1/documents/{id}": { query: GetQuery, response: r.DocumentView },
    "PATCH /v1/documents/{id}": { body: PatchRequest, response: r.DocumentView },
    "DELETE /v1/documents/{id}": { query: DeleteQuery, response: r.Deleted },
    "GET /v1/stats": { response: r.StatsResponse },
    "POST /v1/search": { body: SearchRequest, response: r.SearchResponse },
    "POST /v1/chat": { body: ChatRequest, response: r.ChatResponse, streams: true },
    "GET /v1/conversations": { query: ConversationListQuery, response: r.ConversationList },
    "GET /v1/conversations/{id}": { response: r.ConversationView },
    "DELETE /v1/conversations/{id}": { response: r.Deleted },
    "POST /api/ingest": { body: CompatIngestRequest, response: r.CompatIngestResponse },
    "POST /api/chat": { body: CompatChatRequest, response: r.CompatChatResponse, streams: true },
  };

  /** Every body and answer, and what they share, by its name in `components.schemas`. */
  const named: Record<string, z.ZodType> = {
    JsonValue: Metadata.valueType,
    IngestRequest,
    DocumentInput,
    CompatIngestRequest,
    PatchRequest,
    SearchRequest,
    SearchFilter,
    ChatRequest,
    ChatMessageInput,
    Error: r.ErrorBody,
    HealthResponse: r.HealthResponse,
    IngestResponse: r.IngestResponse,
    SearchResponse: r.SearchResponse,
    ChatResponse: r.ChatResponse,
    Citation: r.Citation,
    Document: r.DocumentView,
    DocumentList: r.DocumentList,
    Deleted: r.Deleted,
    ConversationSummary: r.ConversationSummary,
    ConversationList: r.ConversationList,
    Conversation: r.ConversationView,
    Stats: r.StatsResponse,
    CompatIngestResponse: r.CompatIngestResponse,
    CompatChatResponse: r.CompatChatResponse,
  };

  return { schemas, named };
}

let built: ReturnType<typeof build> | undefined;

/**
 * The schemas by route key, and the named ones (`components.schemas`). The response schemas are
 * made on the first call, so a cold start that never serves the OpenAPI document skips them.
 */
export function routeSchemas(): { schemas: Record<string, RouteSchemas>; named: Record<string, z.ZodType> } {
  built ??= build();
  return built;
}

// The documented answers must stay what the core returns: this fails to compile when they drift.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Expect<T extends true> = T;
type Responses = ReturnType<typeof responseSchemas>;
export type ResponsesMatchCore = [
  Expect<Same<z.output<Responses["IngestResponse"]>, IngestResult>>,
  Expect<Same<z.output<Responses["SearchResponse"]>, SearchResult>>,
  Expect<Same<z.output<Responses["ChatResponse"]>, ChatResult>>,
];
