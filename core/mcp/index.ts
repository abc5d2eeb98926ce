/**
 * Engram as a Model Context Protocol server: five tools (remember, search_memory, ask,
 * list_memories, forget) over a `Memory`, which is either the core functions the HTTP handlers
 * call, scoped by the same `Caller` (core/mcp/local.ts), or a remote Engram through the typed
 * client (`engram mcp` with ENGRAM_URL). Tool arguments are shaped for a model; the API's own
 * schemas validate them behind the tools, so limits and codes are the API's.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { jsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/types.js";
import type * as Api from "../../client/types";
import { VERSION } from "../config";
import * as z from "../zod";

/** What the tools need; each call runs in one end user's scope (or the tenant's shared space). */
export interface Memory {
  remember(document: Api.DocumentInput): Promise<Api.IngestResponse>;
  search(request: Api.SearchRequest): Promise<Api.SearchResponse>;
  ask(request: Api.ChatRequest): Promise<Api.ChatResponse>;
  list(query: Api.ListDocumentsQuery): Promise<Api.DocumentList>;
  forget(id: string, hard: boolean): Promise<Api.Deleted>;
}

/** An error as the API would answer it: `{ code, message }`. */
export type Describe = (error: unknown) => { code: string; message: string };

/**
 * The SDK validates JSON Schemas (elicitation answers, tool output schemas) with ajv, which it would
 * build for every server, that is every HTTP request (half a millisecond and much garbage). Engram's
 * tools declare neither, so nothing is ever validated this way.
 */
const noJsonSchemaValidation: jsonSchemaValidator = {
  getValidator: () => {
    throw new Error("Engram's MCP server validates no JSON Schemas (no elicitation, no output schemas).");
  },
};

const text = (value: string) => z.string().check(z.describe(value));
const optional = <T extends z.ZodMiniType>(schema: T, description: string) =>
  z.optional(schema).check(z.describe(description));
const int = (description: string) => z.optional(z.number().check(z.int())).check(z.describe(description));

/** The tools' argument schemas, built once per process (a server is built per HTTP request). */
function argumentSchemas() {
  const json = z.record(z.string(), z.json());
  const filter = optional(
    z.object({
      metadata: optional(json, "Only memories whose metadata contains this JSON object"),
      documentIds: optional(z.array(z.string()), "Only these memory ids"),
      conversationId: optional(z.string(), "Only memories of this conversation"),
      minImportance: int("Only memories at least this important (1-10)"),
      createdAfter: optional(z.string(), "ISO 8601 time: only memories stored at or after it"),
      createdBefore: optional(z.string(), "ISO 8601 time: only memories stored before it"),
    }),
    "Narrow the memories searched",
  );
  return {
    remember: z.object({
      content: text("The text to remember, in full (up to 1,000,000 characters)"),
      title: optional(z.string(), "A short title"),
      id: optional(
        z.string(),
        "Your id for it; reuse it to replace the memory. Without one it is derived from the text",
      ),
      metadata: optional(json, 'JSON tags to filter on later, e.g. {"topic": "billing"}'),
      importance: int("1 (trivia) to 10 (critical); default 5"),
      conversationId: optional(
        z.string(),
        "Group it with a conversation: it is embedded after the two memories stored before it there",
      ),
      ttlSeconds: int("Forget it automatically after this many seconds"),
    }),
    search: z.object({
      query: text("What to look for"),
      topK: int("How many passages (1-50, default 5)"),
      mode: optional(z.enum(["hybrid", "vector", "keyword"]), "hybrid (default), vector (meaning) or keyword"),
      scope: optional(
        z.enum(["all", "user", "shared"]),
        "all (default): the user's memories and shared ones; user or shared: only those",
      ),
      filter,
    }),
    ask: z.object({
      question: text("The question"),
      conversationId: optional(z.string(), "Continue this conversation"),
      topK: int("Passages to read for the answer (1-50, default 5)"),
      filter,
      remember: optional(z.boolean(), "Also store the question as a memory"),
    }),
    list: z.object({
      limit: int("How many (1-100, default 20)"),
      cursor: optional(z.string(), "nextCursor of the previous page"),
      conversationId: optional(z.string(), "Only this conversation's memories"),
    }),
    forget: z.object({
      id: text("The memory's id"),
      hard: optional(z.boolean(), "Erase now, beyond recovery"),
    }),
  };
}
let schemas: ReturnType<typeof argumentSchemas> | undefined;

function ok(summary: string, data: object): CallToolResult {
  return { content: [{ type: "text", text: summary }], structuredContent: data as Record<string, unknown> };
}

/** A passage's place in its document for the model to quote: `, pages 14-15, under Security > Laptops`. */
export function where(location: Api.Location): string {
  const [first, last] = location?.pages ?? [];
  const pages = first === undefined ? "" : first === last ? `, page ${first}` : `, pages ${first}-${last}`;
  const headings = location?.headings?.length ? `, under ${location.headings.join(" > ")}` : "";
  return pages + headings;
}

const cite = (c: Api.Citation) =>
  `[${c.index}] ${c.title ?? c.documentId} (id ${c.documentId}${where(c.location)}, score ${c.score.toFixed(3)})`;

/** Builds the server with its tools; one per request on HTTP (stateless), one per process on stdio. */
export function server(memory: Memory, describe: Describe): McpServer {
  schemas ??= argumentSchemas();
  const args = schemas;
  const mcp = new McpServer(
    { name: "engram", title: "Engram memory", version: VERSION },
    {
      instructions:
        "Engram is the user's long-term memory. Search it (search_memory) or ask it (ask) before answering from what you remember; store facts, decisions and preferences worth keeping with remember; forget removes one by id.",
      jsonSchemaValidator: noJsonSchemaValidation,
    },
  );
  /** Runs a tool; an error becomes a tool error with the API's code and message, never a crash. */
  const tool =
    <A>(run: (args: A) => Promise<CallToolResult>) =>
    async (args: A): Promise<CallToolResult> => {
      try {
        return await run(args);
      } catch (error) {
        const { code, message } = describe(error);
        return { isError: true, content: [{ type: "text", text: `${code}: ${message}` }] };
      }
    };

  mcp.registerTool(
    "remember",
    {
      title: "Remember",
      description:
        "Store a piece of text in long-term memory so it can be found later by meaning or keywords. Storing the same text again changes nothing; giving an existing id replaces that memory.",
      inputSchema: args.remember,
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    tool(async (args) => {
      const result = await memory.remember(args);
      const doc = result.documents[0];
      return ok(`Remembered as id ${doc?.id} (${doc?.status}, ${doc?.chunks} chunks).`, result);
    }),
  );

  mcp.registerTool(
    "search_memory",
    {
      title: "Search memory",
      description:
        "Find the stored passages most relevant to a query, best first, each with its memory id, title, score and where it is in its document (pages, headings). Use short descriptive queries; hybrid mode (default) matches by meaning and by keywords.",
      inputSchema: args.search,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    tool(async (args) => {
      const result = await memory.search(args);
      const lines = result.results.map(
        (r, i) =>
          `${i + 1}. ${r.title ?? r.documentId} (id ${r.documentId}, chunk ${r.chunkId}${where(r.location)}, score ${r.score.toFixed(3)})\n${r.content}`,
      );
      return ok(lines.length ? lines.join("\n\n") : "Nothing in memory matches.", result);
    }),
  );

  mcp.registerTool(
    "ask",
    {
      title: "Ask memory",
      description:
        "Answer a question from stored memories only, with [n] citations naming the memories used. Pass conversationId to continue an earlier exchange.",
      inputSchema: args.ask,
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    tool(async ({ question, ...rest }) => {
      const result = await memory.ask({ messages: [{ role: "user", content: question }], ...rest });
      const sources = result.citations.map(cite).join("\n");
      return ok(
        `${result.message.content}${sources ? `\n\nSources:\n${sources}` : ""}\n\nconversationId: ${result.conversationId}`,
        result,
      );
    }),
  );

  mcp.registerTool(
    "list_memories",
    {
      title: "List memories",
      description: "List stored memories, newest first, with ids and titles (not their text). Page with cursor.",
      inputSchema: args.list,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    tool(async (args) => {
      const result = await memory.list(args);
      const lines = result.documents.map(
        (d) => `- ${d.id}${d.title ? `: ${d.title}` : ""} (${d.contentLength} characters, importance ${d.importance})`,
      );
      const more = result.nextCursor ? `\n\nMore: cursor ${result.nextCursor}` : "";
      return ok(lines.length ? `${lines.join("\n")}${more}` : "No memories stored.", result);
    }),
  );

  mcp.registerTool(
    "forget",
    {
      title: "Forget",
      description:
        "Delete one memory by id. It disappears from search at once; with hard it is erased now instead of after the retention period.",
      inputSchema: args.forget,
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    tool(async ({ id, hard }) => ok(`Forgot ${id}.`, await memory.forget(id, hard ?? false))),
  );

  return mcp;
}
