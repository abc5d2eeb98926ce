/**
 * The API contract, one entry per route: its method and path (the key), the function that serves it, its
 * rate class, the request schemas the middleware chain validates with, the answer it documents (by name,
 * from core/api/schemas.ts, or its schema written in the entry) and the answers beyond those every route of
 * its kind gives. `sst.config.ts` turns it into API Gateway routes, the local server matches requests against
 * it, `http()` parses with it and types each handler's input and output, and OpenAPI, docs/api.md, the typed
 * client and the fuzz suite's requests come from it. Its runtime imports are zod schemas only: SST evaluates
 * it while deploying.
 */
import { ChatRequest, CompatChatRequest } from "../chat/schema";
import { ConversationGetQuery, ConversationListQuery } from "../conversation/schema";
import { CompatIngestRequest, DeleteQuery, GetQuery, IngestRequest, ListQuery, PatchRequest } from "../document/schema";
import { UploadForm } from "../extract/schema";
import type * as RateLimit from "../ratelimit";
import { SearchRequest } from "../search/schema";
import type * as z from "../zod";
import type { Responses } from "./schemas";

/** The Lambda function that serves a route (infra/functions.ts says where its handler is). */
export type FunctionName = "api" | "ingest" | "upload" | "search" | "chat" | "mcp";
export type Method = "GET" | "POST" | "PATCH" | "DELETE";
/** A documented answer's schema, by its name in core/api/schemas.ts (built on first use). */
export type ResponseName = keyof Responses;
/**
 * An answer's schema: by its name in core/api/schemas.ts, or written in the entry itself when no other route
 * or check shares it (a new route then needs no other file).
 */
export type Answer = ResponseName | z.ZodMiniType;

export interface RouteSpec {
  fn: FunctionName;
  /** null: open (no key, no rate limit). */
  rateClass: RateLimit.RateClass | null;
  summary: string;
  /** The query string, validated by the chain; the handler gets its output. */
  query?: z.ZodMiniObject;
  /** The JSON body, validated by the chain; the handler gets its output. */
  body?: z.ZodMiniType;
  /**
   * A body the chain hands over as it came (the upload's multipart form as bytes, MCP's JSON-RPC as JSON),
   * for its core function to read: documented by this schema, or the answer schema of that name.
   */
  rawBody?: { type: "application/json" | "multipart/form-data"; schema: Answer };
  /** The media types a request's Accept must name, which the typed client sends (default: JSON). */
  accept?: `${string}/${string}`;
  /** The 200 answer. */
  response: Answer;
  /** `stream: true` in the body answers server-sent events: their data schemas by event name. */
  streams?: Record<string, Answer>;
  /** Answers beyond those every route of its kind gives: status -> description, and its body (default: the error shape; null: none). */
  answers?: Record<string, { description: string; body?: Answer | null }>;
}

const CHAT_EVENTS = {
  citations: "ChatCitationsEvent",
  delta: "ChatDeltaEvent",
  done: "ChatDoneEvent",
  error: "ChatErrorEvent",
} as const satisfies Record<string, ResponseName>;
const NO_CONVERSATION = {
  "404": { description: "No such conversation in the caller's space (`conversation.not_found`)" },
};

/** In the order docs/api.md lists them. */
export const contract = {
  "GET /v1/health": {
    fn: "api",
    rateClass: null,
    summary: "Service and database health",
    response: "HealthResponse",
    answers: {
      "503": {
        description:
          'The database is unreachable: the same report, with `database: "unreachable"`; or, before a report can be made, a missing secret (`config.missing`) in the error shape',
        body: "HealthResponse",
      },
    },
  },
  "GET /v1/openapi.json": {
    fn: "api",
    rateClass: null,
    summary: "This API's OpenAPI 3.1 document",
    response: "OpenApiDocument",
  },
  "POST /v1/ingest": {
    fn: "ingest",
    rateClass: "ingest",
    summary: "Add or replace documents",
    body: IngestRequest,
    response: "IngestResponse",
  },
  "POST /v1/documents/upload": {
    fn: "upload",
    rateClass: "ingest",
    summary:
      "Upload one file (PDF, Word, web page, Markdown, AsciiDoc, text, CSV; JSON as one document of its raw text)",
    rawBody: { type: "multipart/form-data", schema: UploadForm },
    response: "UploadResponse",
    answers: {
      "415": { description: "A file type Engram cannot read (`extract.unsupported_type`), named by its content" },
      "422": {
        description:
          "Encrypted (`extract.encrypted`), corrupt (`extract.corrupt`), no text layer (`extract.no_text`: scanned?) or empty (`extract.empty`); nothing is stored",
      },
    },
  },
  "GET /v1/documents": {
    fn: "api",
    rateClass: "default",
    summary: "List documents, newest first",
    query: ListQuery,
    response: "DocumentList",
  },
  "GET /v1/documents/{id}": {
    fn: "api",
    rateClass: "default",
    summary: "Read one document",
    query: GetQuery,
    response: "DocumentView",
  },
  "PATCH /v1/documents/{id}": {
    fn: "ingest",
    rateClass: "ingest",
    summary: "Change a document",
    body: PatchRequest,
    response: "PatchResponse",
  },
  "DELETE /v1/documents/{id}": {
    fn: "api",
    rateClass: "default",
    summary: "Delete a document",
    query: DeleteQuery,
    response: "DocumentDeleted",
  },
  "POST /v1/documents/{id}/restore": {
    fn: "api",
    rateClass: "default",
    summary: "Restore a soft-deleted document (before the cleanup purges it)",
    response: "DocumentView",
  },
  "GET /v1/stats": {
    fn: "api",
    rateClass: "default",
    summary: "Counts for the caller's space",
    response: "StatsResponse",
  },
  "POST /v1/search": {
    fn: "search",
    rateClass: "search",
    summary: "Hybrid, vector or keyword search",
    body: SearchRequest,
    response: "SearchResponse",
  },
  "POST /v1/chat": {
    fn: "chat",
    rateClass: "chat",
    summary: "Answer from the caller's documents with citations",
    body: ChatRequest,
    response: "ChatResponse",
    streams: CHAT_EVENTS,
    answers: NO_CONVERSATION,
  },
  "GET /v1/conversations": {
    fn: "api",
    rateClass: "default",
    summary: "List conversations, newest first",
    query: ConversationListQuery,
    response: "ConversationList",
  },
  "GET /v1/conversations/{id}": {
    fn: "api",
    rateClass: "default",
    summary: "One conversation with its messages (the newest 4 MB of them, and a cursor for the older)",
    query: ConversationGetQuery,
    response: "ConversationView",
  },
  "DELETE /v1/conversations/{id}": {
    fn: "api",
    rateClass: "default",
    summary: "Delete a conversation",
    response: "Deleted",
  },
  "POST /api/ingest": {
    fn: "ingest",
    rateClass: "ingest",
    summary: "Digital Twin compatibility: ingest",
    body: CompatIngestRequest,
    response: "CompatIngestResponse",
  },
  "POST /api/chat": {
    fn: "chat",
    rateClass: "chat",
    summary: "Digital Twin compatibility: chat",
    body: CompatChatRequest,
    response: "CompatChatResponse",
    streams: CHAT_EVENTS,
    answers: NO_CONVERSATION,
  },
  "POST /mcp": {
    fn: "mcp",
    rateClass: "default",
    summary: "Model Context Protocol server (Streamable HTTP, stateless)",
    rawBody: { type: "application/json", schema: "McpBody" },
    accept: "application/json, text/event-stream",
    response: "McpAnswer",
    answers: {
      "202": {
        description: "A notification or a response, or a batch of nothing else: accepted, no body",
        body: null,
      },
      "400": {
        description:
          "A JSON-RPC error, id null: -32700 Parse error for a body that is not JSON, -32600 Invalid Request for JSON that is no JSON-RPC 2.0 message, an empty batch, a batch of more than 100 messages or with two members that would be answered with one id, or a body refused as on any route (nested deeper than 64 levels, a `__proto__` key; the API's code in `error.data.code`); or, in the API's error shape, an X-User-Id that is not 1-128 of `[A-Za-z0-9._:@-]` (`user.invalid_id`)",
        body: "McpResponse",
      },
      "413": { description: "Body over 6 MB: a JSON-RPC -32600 error (`request.too_large`)", body: "McpResponse" },
      "406": {
        description: "Accept must name application/json and text/event-stream (a JSON-RPC error)",
        body: "McpResponse",
      },
      "415": { description: "Content-Type must be application/json (a JSON-RPC error)", body: "McpResponse" },
    },
  },
} satisfies Record<`${Method} /${string}`, RouteSpec>;

/** `METHOD /path`, as API Gateway names a route: a typo in one fails to compile. */
export type RouteKey = keyof typeof contract;

export interface Route extends RouteSpec {
  key: RouteKey;
  method: Method;
  path: string;
  auth: boolean;
}

export const routes: Route[] = Object.entries(contract).map(([key, spec]: [string, RouteSpec]) => {
  const [method, path] = key.split(" ") as [Method, string];
  return { ...spec, key: key as RouteKey, method, path, auth: spec.rateClass !== null };
});

export const routeKey = (route: Pick<Route, "method" | "path">) => `${route.method} ${route.path}`;

/** Compiles `/v1/documents/{id}` into a matcher that yields path parameters. */
function compilePath(path: string): RegExp {
  const pattern = path.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\\?\{(\w+)\\?\}/g, "(?<$1>[^/]+)");
  return new RegExp(`^${pattern.replaceAll("{", "").replaceAll("}", "")}$`);
}

const compiled = routes.map((route) => ({ route, regex: compilePath(route.path) }));

export type Match =
  | { kind: "route"; route: Route; params: Record<string, string> }
  | { kind: "method_not_allowed"; allow: Method[] }
  /** A path parameter whose percent-escapes are not UTF-8 (`%ZZ`, a lone surrogate's `%ED%A0%80`). */
  | { kind: "invalid_path"; param: string }
  | { kind: "not_found" };

/** Finds the route for a request the way API Gateway would. */
export function match(method: string, path: string): Match {
  const allow: Method[] = [];
  for (const { route, regex } of compiled) {
    const m = regex.exec(path);
    if (!m) continue;
    if (route.method === method.toUpperCase()) {
      const params: Record<string, string> = {};
      for (const [k, v] of Object.entries(m.groups ?? {})) {
        const decoded = decode(v);
        if (decoded === undefined) return { kind: "invalid_path", param: k };
        params[k] = decoded;
      }
      return { kind: "route", route, params };
    }
    allow.push(route.method);
  }
  return allow.length ? { kind: "method_not_allowed", allow } : { kind: "not_found" };
}

function decode(value: string): string | undefined {
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}

// What a route's handler is given and must answer, from its contract entry.
type Spec<K extends RouteKey> = (typeof contract)[K];
type PathParams<P extends string> = P extends `${string}{${infer Name}}${infer Rest}`
  ? { [N in Name]: string } & PathParams<Rest>
  : unknown;
/** The path's parameters, by the names in its `{braces}`. */
export type ParamsOf<K extends RouteKey> = K extends `${Method} ${infer P}` ? PathParams<P> : never;
/** The query string: the contract's schema's output, or as it came. */
export type QueryOf<K extends RouteKey> =
  Spec<K> extends { query: infer Q extends z.ZodMiniType } ? z.output<Q> : Record<string, string | undefined>;
/** The body: the contract's schema's output; a raw body as the chain parsed it (JSON, or a multipart's bytes). */
export type BodyOf<K extends RouteKey> =
  Spec<K> extends { body: infer B extends z.ZodMiniType } ? z.output<B> : unknown;
/** What a client sends as the body (fields with defaults optional). */
export type RequestBodyOf<K extends RouteKey> =
  Spec<K> extends { body: infer B extends z.ZodMiniType } ? z.input<B> : never;
/** An answer's schema, named or written in the entry. */
export type SchemaOf<A> = A extends ResponseName ? Responses[A] : A extends z.ZodMiniType ? A : never;
/** The 200 answer as the API gives it. */
export type ResponseOf<K extends RouteKey> = z.output<SchemaOf<Spec<K>["response"]>>;
