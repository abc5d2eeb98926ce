/**
 * Engram as a Model Context Protocol server: five tools (remember, search_memory, ask,
 * list_memories, forget) over a `Memory`, which is either the core functions the HTTP handlers
 * call, scoped by the same `Caller` (core/mcp/local.ts), or a remote Engram through the typed
 * client (`engram mcp` with ENGRAM_URL). Tool arguments are shaped for a model, their numbers
 * bounded by the API's own schemas; those schemas validate them again behind the tools, so limits
 * and codes are the API's.
 *
 * Built on the SDK's low-level `Server` rather than `McpServer` so that arguments are checked here:
 * McpServer answers a refused argument as `MCP error -32602: Input validation error: ...`, a line per
 * issue, where every other tool error is the API's `code: message` on one line.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import {
  CallToolRequestSchema,
  type CallToolResult,
  ErrorCode,
  InitializeRequestSchema,
  isJSONRPCRequest,
  type JSONRPCErrorResponse,
  type JSONRPCMessage,
  ListToolsRequestSchema,
  PingRequestSchema,
  type ToolAnnotations,
  type Tool as ToolDefinition,
} from "@modelcontextprotocol/sdk/types.js";
import type { jsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/types.js";
import type * as Api from "../../client/types";
import { fromZod, protoRefusal } from "../api/http";
import { ChatRequest, MAX_MESSAGE_CHARS } from "../chat/schema";
import { VERSION } from "../config";
import { Id, Importance, ListQuery, MAX_CONTENT_CHARS, MAX_TITLE_CHARS, TtlSeconds } from "../document/schema";
import { MAX_FILTER_DOCUMENT_IDS, SearchRequest } from "../search/schema";
import * as z from "../zod";

/** What the tools need; each call runs in one end user's scope (or the tenant's shared space). */
export interface Memory {
  remember(document: Api.DocumentInput): Promise<Api.IngestResponse>;
  search(request: Api.SearchRequest): Promise<Api.SearchResponse>;
  ask(request: Api.ChatRequest): Promise<Api.ChatResponse>;
  list(query: Api.ListDocumentsQuery): Promise<Api.DocumentList>;
  forget(id: string, hard: boolean): Promise<Api.Deleted>;
  /** Whether the shared space holds a memory of this id (read, not counted as an access). */
  inShared(id: string): Promise<boolean>;
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
/** A field the API bounds (and may default): its own schema, so the JSON Schema listed gives its range. */
const bounded = <T extends z.ZodMiniType>(schema: T, description: string) => schema.check(z.describe(description));

/**
 * The tools' argument schemas, built once per process (a server is built per HTTP request). Strict, as the
 * API's bodies are: a key the tool does not take is refused, naming it (an unknown filter key would otherwise
 * be dropped here and widen the search), and the JSON Schema listed says `additionalProperties: false`.
 */
function argumentSchemas() {
  const json = z.record(z.string(), z.json());
  const filter = optional(
    z.strictObject({
      metadata: optional(json, "Only memories whose metadata contains this JSON object"),
      documentIds: optional(
        z.array(Id).check(z.minLength(1), z.maxLength(MAX_FILTER_DOCUMENT_IDS)),
        "Only these memory ids",
      ),
      conversationId: optional(Id, "Only memories of this conversation"),
      minImportance: bounded(z.optional(Importance), "Only memories at least this important"),
      createdAfter: optional(
        z.string(),
        "ISO 8601 time with Z or an offset, or a date (its midnight UTC): only memories stored at or after it",
      ),
      createdBefore: optional(
        z.string(),
        "ISO 8601 time with Z or an offset, or a date (its midnight UTC): only memories stored before it",
      ),
    }),
    "Narrow the memories searched",
  );
  return {
    remember: z.strictObject({
      content: text(`The text to remember, in full (up to ${MAX_CONTENT_CHARS.toLocaleString("en")} characters)`),
      // The API's bound, so the JSON Schema listed gives it and every transport refuses it naming `title`. null, as
      // POST /v1/ingest reads it (and the API's schema behind the tool does), is no title.
      title: optional(z.nullable(z.string().check(z.maxLength(MAX_TITLE_CHARS))), "A short title; null is none"),
      id: optional(Id, "Your id for it; reuse it to replace the memory. Without one it is derived from the text"),
      metadata: optional(json, 'JSON tags to filter on later, e.g. {"topic": "billing"}'),
      importance: bounded(
        z.optional(Importance),
        "How much it matters, from trivia (the minimum) to critical (the maximum); default 5",
      ),
      conversationId: optional(
        z.nullable(Id),
        "Group it with a conversation: it is embedded after the two memories stored before it there; null is none",
      ),
      // null is no expiry, as in POST /v1/ingest: the API's schema behind the tool reads it so.
      ttlSeconds: bounded(
        z.optional(z.nullable(TtlSeconds)),
        "Forget it automatically after this many seconds; without it, or null, it is kept",
      ),
    }),
    search: z.strictObject({
      query: bounded(SearchRequest.shape.query, "What to look for"),
      topK: bounded(SearchRequest.shape.topK, "How many passages"),
      mode: optional(z.enum(["hybrid", "vector", "keyword"]), "hybrid (default), vector (meaning) or keyword"),
      scope: optional(
        z.enum(["all", "user", "shared"]),
        "all (default): the user's memories and shared ones; user or shared: only those",
      ),
      filter,
    }),
    ask: z.strictObject({
      question: text(`The question (up to ${MAX_MESSAGE_CHARS.toLocaleString("en")} characters)`),
      conversationId: optional(Id, "Continue this conversation"),
      topK: bounded(ChatRequest.shape.topK, "Passages to read for the answer"),
      filter,
      remember: optional(z.boolean(), "Also store the question as a memory"),
    }),
    list: z.strictObject({
      limit: bounded(ListQuery.shape.limit, "How many"),
      cursor: bounded(ListQuery.shape.cursor, "nextCursor of the previous page"),
      conversationId: optional(Id, "Only this conversation's memories"),
    }),
    forget: z.strictObject({
      id: bounded(Id, "The memory's id"),
      hard: optional(z.boolean(), "Erase now, beyond recovery"),
    }),
  };
}

function ok(summary: string, data: object): CallToolResult {
  return { content: [{ type: "text", text: summary }], structuredContent: data as Record<string, unknown> };
}

const failure = ({ code, message }: { code: string; message: string }): CallToolResult => ({
  isError: true,
  content: [{ type: "text", text: `${code}: ${message}` }],
});

const count = (n: number | undefined, noun: string) => `${n} ${noun}${n === 1 ? "" : "s"}`;

/** A passage's place in its document for the model to quote: `, pages 14-15, under Security > Laptops`. */
export function where(location: Api.Location): string {
  const [first, last] = location?.pages ?? [];
  const pages = first === undefined ? "" : first === last ? `, page ${first}` : `, pages ${first}-${last}`;
  const headings = location?.headings?.length ? `, under ${location.headings.join(" > ")}` : "";
  return pages + headings;
}

/**
 * What each leg made of a hybrid result, for the model to judge it by: the fused score is relative to the other
 * candidates (a query that matches nothing still has a first result at 0.4), its legs are not.
 */
const legsOf = (r: Api.SearchResponse["results"][number]) =>
  r.legs
    ? `; meaning ${r.legs.vector === null ? "not among the nearest" : r.legs.vector.toFixed(3)}, keywords ${r.legs.keyword === null ? "none matched" : r.legs.keyword.toFixed(3)}`
    : "";

const cite = (c: Api.Citation) =>
  `[${c.index}] ${c.title ?? c.documentId} (id ${c.documentId}, ${c.scope}${where(c.location)}, score ${c.score.toFixed(3)})`;

/**
 * A JSON Schema every MCP host can read. Left out, as the tool's own check still refuses what they refused: patterns
 * with Unicode classes (`\p{Cc}`: Python's `re` and a JavaScript RegExp without the `u` flag cannot compile them), and
 * a definition that refers to itself (a JSON value's), which some hosts refuse, read as any value; other definitions
 * are written in place.
 */
function portable(schema: Record<string, unknown>): unknown {
  const definitions = (schema.definitions ?? {}) as Record<string, unknown>;
  const refersTo = (name: string, value: unknown): boolean => JSON.stringify(value).includes(`"#/definitions/${name}"`);
  const rewrite = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(rewrite);
    if (typeof node !== "object" || node === null) return node;
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) {
      if (key === "definitions") continue;
      if (key === "$ref" && typeof value === "string") {
        const name = value.replace(/^#\/definitions\//, "");
        const target = definitions[name];
        return target === undefined || refersTo(name, target) ? {} : rewrite(target);
      }
      if (key === "pattern" && typeof value === "string" && value.includes("\\p{")) continue;
      if (key === "allOf" && Array.isArray(value)) {
        const kept = value.map(rewrite).filter((part) => Object.keys(part as object).some((k) => k !== "type"));
        if (kept.length) out.allOf = kept;
        continue;
      }
      // The names of `properties` are arguments, not keywords: each one's schema is rewritten, its name kept.
      out[key] =
        key === "properties" && typeof value === "object" && value !== null
          ? Object.fromEntries(Object.entries(value).map(([name, property]) => [name, rewrite(property)]))
          : rewrite(value);
    }
    return out;
  };
  return rewrite(schema);
}

/** A tool as listed, and its call: arguments checked, then run on one caller's memory. */
interface Tool {
  definition: ToolDefinition;
  call(memory: Memory, describe: Describe, args: unknown): Promise<CallToolResult>;
}

function tool<S extends z.ZodMiniObject>(
  definition: Omit<ToolDefinition, "inputSchema"> & { annotations: ToolAnnotations },
  args: S,
  run: (memory: Memory, args: z.output<S>, describe: Describe) => Promise<CallToolResult>,
): Tool {
  // As the SDK's McpServer lists a zod schema: what a client may send (defaults optional), draft 7.
  const inputSchema = portable(
    z.toJSONSchema(args, { target: "draft-7", io: "input" }),
  ) as ToolDefinition["inputSchema"];
  return {
    definition: { ...definition, inputSchema },
    async call(memory, describe, input) {
      // A `__proto__` key would vanish in the parse (a metadata field dropped, a filter widened): refused as the HTTP
      // API refuses it. Over HTTP the body's check already did; on stdio the SDK's JSON.parse keeps it as data.
      const refused = protoRefusal(input);
      if (refused) return failure(refused);
      const parsed = z.safeParse(args, input);
      // Spec 2025-11-25 (SEP-1303; the SDK installed speaks it): arguments that fail the tool's schema are a
      // tool error, which the model sees and can correct, not a -32602 protocol error. Worded as the API words it.
      if (!parsed.success) return failure(fromZod(parsed.error));
      try {
        return await run(memory, parsed.data, describe);
      } catch (error) {
        // An error becomes a tool error with the API's code and message, never a crash.
        return failure(describe(error));
      }
    },
  };
}

function buildTools(): Map<string, Tool> {
  const args = argumentSchemas();
  const tools = [
    tool(
      {
        name: "remember",
        title: "Remember",
        description:
          "Store a piece of text in long-term memory so it can be found later by meaning or keywords. The same text stored again (or an existing id given) replaces that memory with this call's fields: one left out takes its default (importance 5; no title, metadata, conversation or expiry), so give them again to keep them; the same text with the same fields changes nothing.",
        annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
      },
      args.remember,
      async (memory, args) => {
        const result = await memory.remember(args);
        const doc = result.documents[0];
        return ok(`Remembered as id ${doc?.id} (${doc?.status}, ${count(doc?.chunks, "chunk")}).`, result);
      },
    ),
    tool(
      {
        name: "search_memory",
        title: "Search memory",
        description:
          "Find the stored passages most relevant to a query, best first, each with its memory id, whose it is (user: this user's own; shared: the shared memories all users read), title, score and where it is in its document (pages, headings). Use short descriptive queries; hybrid mode (default) matches by meaning and by keywords. Its score only ranks the results against each other; each result also gives its meaning and keyword scores, and one with no keywords matched and a low meaning score is likely unrelated.",
        annotations: { readOnlyHint: true, openWorldHint: false },
      },
      args.search,
      async (memory, args) => {
        const result = await memory.search(args);
        const lines = result.results.map(
          (r, i) =>
            `${i + 1}. ${r.title ?? r.documentId} (id ${r.documentId}, ${r.scope}, chunk ${r.chunkId}${where(r.location)}, score ${r.score.toFixed(3)}${legsOf(r)})\n${r.content}`,
        );
        return ok(lines.length ? lines.join("\n\n") : "Nothing in memory matches.", result);
      },
    ),
    tool(
      {
        name: "ask",
        title: "Ask memory",
        description:
          "Answer a question from stored memories only, with [n] citations naming the memories used. Pass conversationId to continue an earlier exchange.",
        annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
      },
      args.ask,
      async (memory, { question, ...rest }, describe) => {
        let result: Api.ChatResponse;
        try {
          result = await memory.ask({ messages: [{ role: "user", content: question }], ...rest });
        } catch (error) {
          const refused = describe(error);
          if (refused.code !== "conversation.not_found") return failure(refused);
          // The API's sentence says to ingest a document; here the way to start a conversation is remember.
          return failure({
            code: refused.code,
            message: `No conversation with id ${JSON.stringify(rest.conversationId)} to continue. Leave conversationId out to start one (its id is in the answer), or remember something with this conversationId first.`,
          });
        }
        const sources = result.citations.map(cite).join("\n");
        return ok(
          `${result.message.content}${sources ? `\n\nSources:\n${sources}` : ""}\n\nconversationId: ${result.conversationId}`,
          result,
        );
      },
    ),
    tool(
      {
        name: "list_memories",
        title: "List memories",
        description:
          "List this user's own stored memories (without a user, the shared space's), newest first, with ids and titles (not their text). Shared memories are not listed here; search_memory and ask find them. Page with cursor.",
        annotations: { readOnlyHint: true, openWorldHint: false },
      },
      args.list,
      async (memory, args) => {
        const result = await memory.list(args);
        const lines = result.documents.map(
          (d) =>
            `- ${d.id}${d.title ? `: ${d.title}` : ""} (${count(d.contentLength, "character")}, importance ${d.importance})`,
        );
        const more = result.nextCursor ? `\n\nMore: cursor ${result.nextCursor}` : "";
        return ok(lines.length ? `${lines.join("\n")}${more}` : "No memories stored.", result);
      },
    ),
    tool(
      {
        name: "forget",
        title: "Forget",
        description:
          "Delete one memory by id: this user's own (without a user, the shared space's). It disappears from search at once; with hard it is erased now instead of after the retention period. Forgetting a memory that is already gone changes nothing and says so. Shared memories (scope shared in search results) are read-only to a user: forgetting one changes nothing and says so.",
        // Idempotent as the spec means it (a repeat has no further effect), and answered so: a retry after a lost
        // answer finds the memory gone, which is what was asked, so it succeeds rather than reading as a failure.
        annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
      },
      args.forget,
      async (memory, { id, hard = false }, describe) => {
        try {
          return ok(`Forgot ${id}.`, await memory.forget(id, hard));
        } catch (error) {
          const refused = describe(error);
          if (refused.code !== "document.not_found") return failure(refused);
          // Said as it is: told "nothing to forget", the model would think it gone while search still finds it. Not an
          // error: a retry after the user's own memory of that id was forgotten must still succeed (idempotent).
          if (await memory.inShared(id)) {
            return ok(
              `Nothing of this user's to forget: ${id} is a shared memory, which every user reads and only the tenant (without a user) can forget.`,
              { id, deleted: false, hard, shared: true },
            );
          }
          return ok(`Nothing to forget: no memory ${id} here (already forgotten, or never stored).`, {
            id,
            deleted: false,
            hard,
          });
        }
      },
    ),
  ];
  return new Map(tools.map((t) => [t.definition.name, t]));
}
let tools: Map<string, Tool> | undefined;

/** Builds the server with its tools; one per request on HTTP (stateless), one per process on stdio. */
export function server(memory: Memory, describe: Describe): Server {
  tools ??= buildTools();
  const known = tools;
  const listed = { tools: [...known.values()].map((t) => t.definition) };
  const mcp = new Server(
    { name: "engram", title: "Engram memory", version: VERSION },
    {
      capabilities: { tools: {} },
      instructions:
        "Engram is the user's long-term memory. Search it (search_memory) or ask it (ask) before answering from what you remember; store facts, decisions and preferences worth keeping with remember; forget removes one by id.",
      jsonSchemaValidator: noJsonSchemaValidation,
    },
  );
  mcp.setRequestHandler(ListToolsRequestSchema, () => listed);
  // Tool calls run one after another in the order they came, as a client sending `remember` then `forget` without
  // waiting means them: the SDK starts each on arrival, and the forget found nothing while the remember was storing.
  let previous: Promise<unknown> = Promise.resolve();
  mcp.setRequestHandler(CallToolRequestSchema, ({ params }) => {
    const called = known.get(params.name);
    // An unknown tool is a protocol error (-32602), in the spec as in the SDK's McpServer.
    // Not an McpError, whose message starts "MCP error -32602: ", which a client's McpError then prefixes again.
    if (!called) {
      const message = `Unknown tool ${params.name}; the tools are ${[...known.keys()].join(", ")}`;
      throw Object.assign(new Error(message), { code: ErrorCode.InvalidParams });
    }
    const run = previous.then(() => called.call(memory, describe, params.arguments ?? {}));
    previous = run.catch(() => undefined);
    return run;
  });
  return mcp;
}

/** The requests the server answers, by method, with the SDK's schema for each. */
const REQUESTS = new Map<string, z.ZodMiniType>(
  [InitializeRequestSchema, PingRequestSchema, ListToolsRequestSchema, CallToolRequestSchema].map((schema) => [
    schema.shape.method.value,
    schema,
  ]),
);

/**
 * A request whose params fail the SDK's own schema for its method, as JSON-RPC's -32602 in one sentence.
 * The SDK parses params before any handler runs and answers a failure as -32603 with zod's issues as JSON
 * (`tools/call` without params), which no handler can change; so it is caught before the SDK sees it.
 */
function malformed(message: JSONRPCMessage): JSONRPCErrorResponse | undefined {
  if (!isJSONRPCRequest(message)) return undefined;
  const schema = REQUESTS.get(message.method);
  const parsed = schema && z.safeParse(schema, message);
  if (!parsed || parsed.success) return undefined;
  const issue = parsed.error.issues[0];
  const at = issue?.path.length ? ` at ${issue.path.map(String).join(".")}` : "";
  return {
    jsonrpc: "2.0",
    id: message.id,
    error: { code: ErrorCode.InvalidParams, message: `Invalid params for ${message.method}${at}: ${issue?.message}` },
  };
}

/**
 * A tool call whose arguments hold a `__proto__` key, answered as the tool's refusal. The SDK's parse of the call
 * drops such a key before any tool sees its arguments (at their top: a `topK` under it vanished unsaid), so it is
 * read here, from the message as the transport parsed it. Over HTTP the body's own check refused it already.
 */
function protoKeyed(message: JSONRPCMessage): JSONRPCMessage | undefined {
  if (!isJSONRPCRequest(message) || message.method !== "tools/call") return undefined;
  const refused = protoRefusal((message.params as { arguments?: unknown } | undefined)?.arguments);
  return refused ? { jsonrpc: "2.0", id: message.id, result: failure(refused) } : undefined;
}

/** Connects a server built here to a transport, answering malformed requests itself (see `malformed`). */
export async function connect(mcp: Server, transport: Transport): Promise<void> {
  await mcp.connect(transport);
  const receive = transport.onmessage;
  transport.onmessage = (message, extra) => {
    const refusal = malformed(message) ?? protoKeyed(message);
    if (refusal) transport.send(refusal).catch((error: Error) => transport.onerror?.(error));
    else receive?.(message, extra);
  };
}
