/**
 * The API's request and response types, taken from the route contract (core/api/routes.ts): the zod
 * schemas that validate each route's requests and describe its answers. What the server accepts is
 * `z.input` of its schema (fields with defaults optional), what it answers is `z.output`. Type-only imports: nothing of the server
 * reaches a bundle of the client.
 */
import type { contract, ParamsOf, QueryOf, RequestBodyOf, ResponseOf, RouteKey, SchemaOf } from "../core/api/routes";
import type { Responses } from "../core/api/schemas";
import type { ChatMessageInput, Role } from "../core/chat/schema";
import type { DocumentInput as DocumentInputSchema } from "../core/document/schema";
import type { SearchFilter as SearchFilterSchema } from "../core/search/schema";
import type * as z from "../core/zod";

type Out<K extends keyof Responses> = z.output<Responses[K]>;

// Requests: what a client may send.
export type DocumentInput = z.input<typeof DocumentInputSchema>;
/** Metadata: a JSON object, flat or nested (at most 8 KB). */
export type Metadata = NonNullable<DocumentInput["metadata"]>;
export type IngestRequest = RequestBodyOf<"POST /v1/ingest">;
export type PatchRequest = RequestBodyOf<"PATCH /v1/documents/{id}">;
export type SearchFilter = z.input<typeof SearchFilterSchema>;
export type SearchRequest = RequestBodyOf<"POST /v1/search">;
/** A message; its role is checked as text (for its own error code), but only these three pass. */
export type ChatMessage = Omit<z.input<typeof ChatMessageInput>, "role"> & { role: Role };
/**
 * A body as a client sends it: a chat's `messages` required, as OpenAPI and the docs say (its schema defaults the
 * list only to refuse a missing one with a code of its own, chat.no_messages), each message's role one of the three.
 */
type ClientBody<B> = B extends { messages?: (infer M)[] }
  ? Omit<B, "messages"> & { messages: (Omit<M, "role"> & { role: Role })[] }
  : B;
export type ChatRequest = ClientBody<RequestBodyOf<"POST /v1/chat">>;
/** The parameters that take back a cursor an answer gave (`nextCursor`, `olderCursor`), which is null at the end. */
type CursorParameter = "cursor" | "before";
/**
 * A route's query string, as the values they mean (numbers and booleans are sent as text), each optional; a cursor
 * may be null, as the answer gave it, and is then left out. Only cursors: a null filter (`conversationId`) left out
 * would widen the answer to everything.
 */
type QueryInput<K extends RouteKey> = {
  [P in keyof QueryOf<K>]?: QueryOf<K>[P] | (P extends CursorParameter ? null : never);
};
export type ListDocumentsQuery = QueryInput<"GET /v1/documents">;
export type GetDocumentQuery = QueryInput<"GET /v1/documents/{id}">;
export type DeleteDocumentQuery = QueryInput<"DELETE /v1/documents/{id}">;
export type ListConversationsQuery = QueryInput<"GET /v1/conversations">;
export type GetConversationQuery = QueryInput<"GET /v1/conversations/{id}">;

// Answers.
export type ErrorBody = Out<"ErrorBody">;
export type Health = ResponseOf<"GET /v1/health">;
/** The API's OpenAPI 3.1 document. */
export type OpenApiDocument = ResponseOf<"GET /v1/openapi.json">;
export type IngestResponse = ResponseOf<"POST /v1/ingest">;
export type DocumentStatus = IngestResponse["documents"][number]["status"];
export type SearchResponse = ResponseOf<"POST /v1/search">;
export type SearchResult = SearchResponse["results"][number];
export type SearchMode = SearchResponse["mode"];
export type Citation = Out<"Citation">;
/** Where a passage is in its document: `{ pages: [14, 15] }` (PDF), `{ headings: [...] }`, both, or null. */
export type Location = Out<"Location">;
export type UploadResponse = ResponseOf<"POST /v1/documents/upload">;
/** The fields sent with an uploaded file (`documents.upload`). */
export interface UploadFields {
  id?: string;
  title?: string;
  /** Where the file came from (a path or URL); default: its name. */
  source?: string;
  metadata?: Metadata;
  importance?: number;
  conversationId?: string;
  ttlSeconds?: number;
}
export type ChatResponse = ResponseOf<"POST /v1/chat">;
export type ChatUsage = ChatResponse["usage"];
export type DocumentView = ResponseOf<"GET /v1/documents/{id}">;
export type DocumentList = ResponseOf<"GET /v1/documents">;
export type Deleted = ResponseOf<"DELETE /v1/conversations/{id}">;
export type DocumentDeleted = ResponseOf<"DELETE /v1/documents/{id}">;
export type Stats = ResponseOf<"GET /v1/stats">;
export type ConversationSummary = Out<"ConversationSummary">;
export type ConversationList = ResponseOf<"GET /v1/conversations">;
export type ConversationView = ResponseOf<"GET /v1/conversations/{id}">;
export type StoredMessage = ConversationView["messages"][number];
export type PatchResponse = ResponseOf<"PATCH /v1/documents/{id}">;
export type CompatIngestResponse = ResponseOf<"POST /api/ingest">;
export type CompatChatResponse = ResponseOf<"POST /api/chat">;
/** An MCP message (JSON-RPC 2.0) for POST /mcp: a request (it has an id) or a notification. */
export type McpMessage = z.input<Responses["McpMessage"]>;
export type McpResponse = Out<"McpResponse">;

/** A streamed answer's events, in order: one `citations`, `delta`s, then `done` (or `error`). */
export type ChatEvent =
  | { event: "citations"; data: Out<"ChatCitationsEvent"> }
  | { event: "delta"; data: Out<"ChatDeltaEvent"> }
  | { event: "done"; data: Out<"ChatDoneEvent"> }
  | { event: "error"; data: Out<"ChatErrorEvent"> & { requestId?: string | null } };
export type ChatDone = Out<"ChatDoneEvent">;

// Every route by its key, for `call`: a route added to the contract is callable with no change here.
type Entry<K extends RouteKey> = (typeof contract)[K];
type ParamsPart<K extends RouteKey> = keyof ParamsOf<K> extends never ? {} : { params: ParamsOf<K> };
type QueryPart<K extends RouteKey> = Entry<K> extends { query: z.ZodMiniType } ? { query?: QueryInput<K> } : {};
/** A body `call` sends a route that can stream (chat): its answer must be JSON, which is what `call` reads. */
type JsonAnswerBody<B> = Omit<B, "stream" | "format"> & {
  /** `true` answers events, which `call` cannot read: `chatStream()` reads them. */
  stream?: false;
  /** The AI SDK's UI message stream is for useChat (engram/ai's `engramChatTransport`), not `call`. */
  format?: undefined;
};
type BodyPart<K extends RouteKey> =
  Entry<K> extends { body: z.ZodMiniType }
    ? Entry<K> extends { streams: object }
      ? { body: JsonAnswerBody<ClientBody<RequestBodyOf<K>>> }
      : { body: ClientBody<RequestBodyOf<K>> }
    : Entry<K> extends { rawBody: { type: "multipart/form-data" } }
      ? { form: FormData }
      : Entry<K> extends { rawBody: { schema: infer S } }
        ? { body: z.input<SchemaOf<S>> }
        : {};
/** undefined for a route that documents a 202 with no body (POST /mcp's to a notification), which `call` resolves with. */
type EmptyAnswer<K extends RouteKey> = Entry<K> extends { answers: { "202": { body: null } } } ? undefined : never;
/**
 * Every route by its key (`METHOD /path`): what `call` sends (the path's parameters, the query, the body or
 * a multipart form) and the JSON answer it resolves with.
 */
export type Routes = {
  [K in RouteKey]: { input: ParamsPart<K> & QueryPart<K> & BodyPart<K>; response: ResponseOf<K> | EmptyAnswer<K> };
};
/** The routes whose body can ask for a streamed answer (the contract's `streams`: the chat routes). */
export type StreamingRoute = { [K in RouteKey]: Entry<K> extends { streams: object } ? K : never }[RouteKey];
/** The Accept each route requires, for the routes whose contract entry names one (the client sends it). */
export type Accepts = {
  [K in RouteKey as Entry<K> extends { accept: string } ? K : never]: Entry<K> extends { accept: infer A } ? A : never;
};
