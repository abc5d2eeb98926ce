/** The shapes of Engram's HTTP API the console reads (see ../shared/API.md and /v1/openapi.json). */
export interface Health {
  status: "ok" | "degraded";
  database: "ok" | "unreachable";
  driver?: string;
  version: string;
  embedder: { provider: string; model: string; dimensions: number };
  chat: { provider: string; model: string };
}

export type DocStatus = "created" | "updated" | "unchanged";

export interface DocumentInput {
  id?: string;
  content: string;
  title?: string;
  source?: string;
  metadata?: Record<string, unknown>;
  importance?: number;
  conversationId?: string;
  ttlSeconds?: number;
}

export interface IngestResponse {
  ingestionId: string;
  documents: { id: string; status: DocStatus; chunks: number }[];
  totals: { documents: number; chunks: number; embedded: number; reused: number };
  usage: { embeddingTokens: number };
}

export interface DocumentView {
  id: string;
  scope: "user" | "shared";
  title: string | null;
  source: string | null;
  metadata: Record<string, unknown>;
  importance: number;
  conversationId: string | null;
  chunks: number;
  contentLength: number;
  accessCount: number;
  lastAccessedAt: string | null;
  expiresAt: string | null;
  deletedAt: string | null;
  createdAt: string;
  updatedAt: string;
  content?: string;
}

export interface DocumentList {
  documents: DocumentView[];
  nextCursor: string | null;
}

export interface Stats {
  documents: { total: number; deleted: number };
  chunks: number;
  byConversation: { conversationId: string; documents: number }[];
  averageImportance: number | null;
  totalAccessCount: number;
  lastIngestAt: string | null;
}

export type Mode = "hybrid" | "vector" | "keyword";

export interface SearchResult {
  documentId: string;
  chunkId: string;
  ordinal: number;
  content: string;
  score: number;
  title: string | null;
  source: string | null;
  metadata: Record<string, unknown>;
  createdAt: string;
}

export interface SearchResponse {
  results: SearchResult[];
  mode: Mode;
  scale?: string;
  tookMs: number;
}

export interface Citation {
  index: number;
  documentId: string;
  chunkId: string;
  title: string | null;
  source: string | null;
  snippet: string;
  score: number;
}

export interface ChatUsage {
  promptTokens: number;
  completionTokens: number;
  embeddingTokens: number;
}

export interface ChatDone {
  conversationId: string;
  citations: Citation[];
  model: string;
  usage: ChatUsage;
}

export type ChatEvent =
  | { event: "citations"; data: { citations: Citation[] } }
  | { event: "delta"; data: { text: string } }
  | { event: "done"; data: ChatDone }
  | { event: "error"; data: { error: { code: string; message: string }; requestId?: string | null } };

export interface ConversationSummary {
  id: string;
  title: string | null;
  messageCount: number;
  createdAt: string;
  updatedAt: string;
}

export interface StoredMessage {
  role: "user" | "assistant" | "system";
  content: string;
  citations: Citation[];
  model: string | null;
  createdAt: string;
}

export interface ConversationView extends ConversationSummary {
  messages: StoredMessage[];
}
