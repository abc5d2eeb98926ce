/**
 * `engram/ai`: Engram in the Vercel AI SDK. `engramTools(client)` gives a model Engram's search and
 * remember as tools; `engramChatTransport(...)` lets `useChat` talk to Engram's chat, which answers
 * in the AI SDK's UI message stream protocol (`format: "ui-message-stream"`). Both go through the
 * typed client (or its options); nothing here validates or decides what the API does.
 *
 *   const { text } = await generateText({ model, tools: engramTools(engram), stopWhen: stepCountIs(3), prompt });
 *   const chat = useChat({ transport: engramChatTransport({ baseUrl: "", apiKey }) });
 */
import { DefaultChatTransport, type JSONSchema7, jsonSchema, type ToolSet, tool, type UIMessage } from "ai";
import {
  type ChatMessage,
  type ClientOptions,
  createClient,
  EngramApiError,
  type EngramClient,
  type Metadata,
  type SearchMode,
} from "./index";

export interface ToolOptions {
  /** Passages a search returns (default 5). */
  topK?: number;
  mode?: SearchMode;
}

/**
 * A tool's input schema as the model reads it: `additionalProperties: false`, as the MCP tools and the API list theirs.
 * Not enforced by the AI SDK, which would tell the model its own multi-line "Invalid input for tool ...: Type validation
 * failed" instead of `code: message`: `refuseUnknownKeys` refuses a key it does not list inside the call.
 */
function objectSchema<T>(properties: Record<string, JSONSchema7>, required: string[]) {
  return {
    properties,
    inputSchema: jsonSchema<T>(
      { type: "object", properties, required, additionalProperties: false },
      { validate: (value) => ({ success: true, value: value as T }) },
    ),
  };
}

/**
 * A misspelt key would be dropped unseen (`ttl` for a TTL the tool does not take): refused, worded as the API refuses an
 * unknown body field, before anything is sent (status 0). The API checks the values.
 */
function refuseUnknownKeys(input: unknown, properties: Record<string, JSONSchema7>): void {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new EngramApiError(0, "request.invalid", "Invalid request: expected an object of the tool's arguments");
  }
  const unknown = Object.keys(input).filter((key) => !Object.hasOwn(properties, key));
  if (unknown.length === 0) return;
  const keys = unknown.map((key) => JSON.stringify(key)).join(", ");
  throw new EngramApiError(
    0,
    "request.invalid",
    `Invalid request: Unrecognized key${unknown.length > 1 ? "s" : ""}: ${keys}`,
  );
}

/**
 * Runs a tool's call with its API error worded `code: message`, as the MCP tools word it: the AI SDK gives the
 * model only the message, and the code is what tells it how to correct the call.
 */
async function worded<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (!(error instanceof EngramApiError)) throw error;
    throw new EngramApiError(error.status, error.code, `${error.code}: ${error.message}`, error);
  }
}

/** `searchMemory` and `remember`, for `generateText`/`streamText`'s `tools`. */
export function engramTools(client: EngramClient, options: ToolOptions = {}) {
  const search = objectSchema<{ query: string; topK?: number }>(
    {
      query: { type: "string", maxLength: 2000, description: "What to look for" },
      topK: { type: "integer", minimum: 1, maximum: 50, description: "How many passages" },
    },
    ["query"],
  );
  const remember = objectSchema<{ content: string; title?: string; metadata?: Metadata }>(
    {
      content: { type: "string", description: "The text to remember, in full" },
      title: { type: "string", maxLength: 1000, description: "A short title" },
      metadata: { type: "object", description: "JSON tags to filter on later" },
    },
    ["content"],
  );
  return {
    searchMemory: tool({
      description:
        "Search the user's long-term memory (Engram) for passages relevant to a query, best first, with their memory ids and where each is in its document (pages, headings).",
      inputSchema: search.inputSchema,
      execute: (input, { abortSignal }) =>
        worded(async () => {
          refuseUnknownKeys(input, search.properties);
          const { query, topK } = input;
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
        }),
    }),
    remember: tool({
      description: "Store a fact, decision or preference in the user's long-term memory (Engram) for later.",
      inputSchema: remember.inputSchema,
      execute: (document, { abortSignal }) =>
        worded(async () => {
          refuseUnknownKeys(document, remember.properties);
          const stored = await client.ingest({ documents: [document] }, { signal: abortSignal });
          const doc = stored.documents[0];
          return { id: doc?.id, status: doc?.status };
        }),
    }),
  } satisfies ToolSet;
}

/** What Engram puts on each assistant message of the stream (`message.metadata`). */
export interface EngramMessageMetadata {
  conversationId: string;
  model: string;
  usage: { promptTokens: number; completionTokens: number; embeddingTokens: number };
}

/** The client's options (the key and end user as text or a function read on every request), and the chat's. */
export interface ChatTransportOptions extends ClientOptions {
  topK?: number;
  /** Store each question as a memory too. */
  remember?: boolean;
}

const textOf = (message: UIMessage) => message.parts.map((part) => (part.type === "text" ? part.text : "")).join("");

/**
 * A `useChat` transport for `POST /v1/chat`: the conversation continues on Engram's side (the id
 * from the last answer's metadata), so each request sends only the new question.
 */
export function engramChatTransport(options: ChatTransportOptions) {
  const { topK, remember, ...clientOptions } = options;
  const engram = createClient(clientOptions);
  return new DefaultChatTransport<UIMessage<EngramMessageMetadata>>({
    api: "/v1/chat",
    // Sent by the client, as every call is: its key and end user, and a refusal thrown as EngramApiError.
    fetch: (route, init) =>
      engram.send(init?.method ?? "GET", String(route), {
        body: typeof init?.body === "string" ? JSON.parse(init.body) : undefined,
        // The transport's own (content-type, and any a `sendMessage` call adds), as a plain object.
        headers: init?.headers as Record<string, string> | undefined,
        signal: init?.signal ?? undefined,
      }),
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
          ...(topK ? { topK } : {}),
          ...(remember ? { remember: true } : {}),
          format: "ui-message-stream",
        },
      };
    },
  });
}
