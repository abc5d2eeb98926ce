/**
 * `engram/ai`: Engram in the Vercel AI SDK. `engramTools(client)` gives a model Engram's search and
 * remember as tools; `engramChatTransport(...)` lets `useChat` talk to Engram's chat, which answers
 * in the AI SDK's UI message stream protocol (`format: "ui-message-stream"`). Both go through the
 * typed client (or its options); nothing here validates or decides what the API does.
 *
 *   const { text } = await generateText({ model, tools: engramTools(engram), stopWhen: stepCountIs(3), prompt });
 *   const chat = useChat({ transport: engramChatTransport({ baseUrl: "", apiKey }) });
 */
import { DefaultChatTransport, jsonSchema, type ToolSet, tool, type UIMessage } from "ai";
import type { ChatMessage, EngramClient, Metadata, SearchMode } from "./index";

export interface ToolOptions {
  /** Passages a search returns (default 5). */
  topK?: number;
  mode?: SearchMode;
}

/** `searchMemory` and `remember`, for `generateText`/`streamText`'s `tools`. */
export function engramTools(client: EngramClient, options: ToolOptions = {}) {
  return {
    searchMemory: tool({
      description:
        "Search the user's long-term memory (Engram) for passages relevant to a query, best first, with their memory ids and where each is in its document (pages, headings).",
      inputSchema: jsonSchema<{ query: string; topK?: number }>({
        type: "object",
        properties: {
          query: { type: "string", description: "What to look for" },
          topK: { type: "integer", minimum: 1, maximum: 50, description: "How many passages" },
        },
        required: ["query"],
        additionalProperties: false,
      }),
      execute: async ({ query, topK }, { abortSignal }) => {
        const found = await client.search(
          { query, topK: topK ?? options.topK, mode: options.mode },
          { signal: abortSignal },
        );
        return found.results.map((r) => ({
          documentId: r.documentId,
          scope: r.scope,
          title: r.title,
          content: r.content,
          score: r.score,
          location: r.location,
        }));
      },
    }),
    remember: tool({
      description: "Store a fact, decision or preference in the user's long-term memory (Engram) for later.",
      inputSchema: jsonSchema<{ content: string; title?: string; metadata?: Metadata }>({
        type: "object",
        properties: {
          content: { type: "string", description: "The text to remember, in full" },
          title: { type: "string", description: "A short title" },
          metadata: { type: "object", description: "JSON tags to filter on later" },
        },
        required: ["content"],
        additionalProperties: false,
      }),
      execute: async (document, { abortSignal }) => {
        const stored = await client.ingest({ documents: [document] }, { signal: abortSignal });
        const doc = stored.documents[0];
        return { id: doc?.id, status: doc?.status };
      },
    }),
  } satisfies ToolSet;
}

/** What Engram puts on each assistant message of the stream (`message.metadata`). */
export interface EngramMessageMetadata {
  conversationId: string;
  model: string;
  usage: { promptTokens: number; completionTokens: number; embeddingTokens: number };
}

export interface ChatTransportOptions {
  /** Engram's URL ("" for the page's own origin). */
  baseUrl: string;
  apiKey?: string;
  userId?: string;
  topK?: number;
  /** Store each question as a memory too. */
  remember?: boolean;
  fetch?: typeof fetch;
}

const textOf = (message: UIMessage) => message.parts.map((part) => (part.type === "text" ? part.text : "")).join("");

/**
 * A `useChat` transport for `POST /v1/chat`: the conversation continues on Engram's side (the id
 * from the last answer's metadata), so each request sends only the new question.
 */
export function engramChatTransport(options: ChatTransportOptions) {
  const headers: Record<string, string> = {};
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
  if (options.userId) headers["x-user-id"] = options.userId;
  return new DefaultChatTransport<UIMessage<EngramMessageMetadata>>({
    api: `${options.baseUrl.replace(/\/+$/, "")}/v1/chat`,
    headers,
    fetch: options.fetch,
    prepareSendMessagesRequest: ({ messages }) => {
      const earlier = messages.findLast((m) => m.role === "assistant" && m.metadata?.conversationId);
      const conversationId = earlier?.metadata?.conversationId;
      const turns: ChatMessage[] = messages
        .filter((m) => m.role === "user" || m.role === "assistant")
        .map((m) => ({ role: m.role, content: textOf(m) }))
        .filter((m) => m.content.trim() !== "");
      return {
        body: {
          messages: conversationId ? turns.slice(-1) : turns,
          ...(conversationId ? { conversationId } : {}),
          ...(options.topK ? { topK: options.topK } : {}),
          ...(options.remember ? { remember: true } : {}),
          format: "ui-message-stream",
        },
      };
    },
  });
}
