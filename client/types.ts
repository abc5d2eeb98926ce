/**
 * The API's request and response types, taken from the zod schemas that validate requests and
 * describe answers (core/api/schemas.ts): what the server accepts is `z.input` of its schema (fields
 * with defaults optional), what it answers is `z.output`. Type-only imports: nothing of the server
 * reaches a bundle of the client.
 */
import type { Responses } from "../core/api/schemas";
import type { ChatMessageInput, ChatRequest as ChatRequestSchema, Role } from "../core/chat/schema";
import type { ConversationListQuery } from "../core/conversation/schema";
import type {
  DeleteQuery,
  DocumentInput as DocumentInputSchema,
  GetQuery,
  IngestRequest as IngestRequestSchema,
  ListQuery,
  PatchRequest as PatchRequestSchema,
} from "../core/document/schema";
import type { SearchFilter as SearchFilterSchema, SearchRequest as SearchRequestSchema } from "../core/search/schema";
import type * as z from "../core/zod";

type Out<K extends keyof Responses> = z.output<Responses[K]>;

// Requests: what a client may send.
export type DocumentInput = z.input<typeof DocumentInputSchema>;
/** Metadata: a JSON object, flat or nested (at most 8 KB). */
export type Metadata = NonNullable<DocumentInput["metadata"]>;
export type IngestRequest = z.input<typeof IngestRequestSchema>;
export type PatchRequest = z.input<typeof PatchRequestSchema>;
export type SearchFilter = z.input<typeof SearchFilterSchema>;
export type SearchRequest = z.input<typeof SearchRequestSchema>;
/** A message; its role is checked as text (for its own error code), but only these three pass. */
export type ChatMessage = Omit<z.input<typeof ChatMessageInput>, "role"> & { role: Role };
export type ChatRequest = Omit<z.input<typeof ChatRequestSchema>, "messages"> & { messages?: ChatMessage[] };
/** Query strings, as the values they mean (numbers and booleans are sent as text). */
export type ListDocumentsQuery = Partial<z.output<typeof ListQuery>>;
export type GetDocumentQuery = Partial<z.output<typeof GetQuery>>;
export type DeleteDocumentQuery = Partial<z.output<typeof DeleteQuery>>;
export type ListConversationsQuery = Partial<z.output<typeof ConversationListQuery>>;

// Answers.
export type ErrorBody = Out<"ErrorBody">;
export type Health = Out<"HealthResponse">;
export type IngestResponse = Out<"IngestResponse">;
export type DocumentStatus = IngestResponse["documents"][number]["status"];
export type SearchResponse = Out<"SearchResponse">;
export type SearchResult = SearchResponse["results"][number];
export type SearchMode = SearchResponse["mode"];
export type Citation = Out<"Citation">;
/** Where a passage is in its document: `{ pages: [14, 15] }` (PDF), `{ headings: [...] }`, both, or null. */
export type Location = Out<"Location">;
export type UploadResponse = Out<"UploadResponse">;
/** The fields sent with an uploaded file (`documents.upload`). */
export interface UploadFields {
  id?: string;
  title?: string;
  metadata?: Metadata;
  importance?: number;
  conversationId?: string;
}
export type ChatResponse = Out<"ChatResponse">;
export type ChatUsage = ChatResponse["usage"];
export type DocumentView = Out<"DocumentView">;
export type DocumentList = Out<"DocumentList">;
export type Deleted = Out<"Deleted">;
export type Stats = Out<"StatsResponse">;
export type ConversationSummary = Out<"ConversationSummary">;
export type ConversationList = Out<"ConversationList">;
export type ConversationView = Out<"ConversationView">;
export type StoredMessage = ConversationView["messages"][number];
export type PatchResponse = Out<"PatchResponse">;
export type CompatIngestResponse = Out<"CompatIngestResponse">;
export type CompatChatResponse = Out<"CompatChatResponse">;

/** A streamed answer's events, in order: one `citations`, `delta`s, then `done` (or `error`). */
export type ChatEvent =
  | { event: "citations"; data: Out<"ChatCitationsEvent"> }
  | { event: "delta"; data: Out<"ChatDeltaEvent"> }
  | { event: "done"; data: Out<"ChatDoneEvent"> }
  | { event: "error"; data: Out<"ChatErrorEvent"> & { requestId?: string | null } };
export type ChatDone = Out<"ChatDoneEvent">;
