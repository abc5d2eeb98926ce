/**
 * `npm run docs:api`: writes docs/api.md (every route with its parameters, body fields, answers and
 * a curl command) and the README's curl block, from the route table, the OpenAPI document (the zod
 * schemas that validate requests) and the examples below; a route with no example written here gets
 * one derived from its schemas. test/integration/api-docs.test.ts fails when either file is out of
 * date, when an example would not pass its route's validation, and runs every example against the
 * handlers.
 *
 *   npm run docs:api [-- --check]     (--check: exit 1 when a file would change, write nothing)
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as OpenApi from "../core/api/openapi";
import { contract, type Route, type RouteKey, routes } from "../core/api/routes";

/** The parts of a JSON Schema node (as the OpenAPI document writes them) this page reads. */
interface Schema {
  $ref?: string;
  type?: string | string[];
  const?: unknown;
  enum?: unknown[];
  format?: string;
  exclusiveMinimum?: number;
  anyOf?: Schema[];
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: string[];
  description?: string;
  default?: unknown;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
}
interface Parameter {
  $ref?: string;
  name: string;
  in: string;
  required?: boolean;
  description?: string;
  schema?: Schema;
}
interface Operation {
  parameters?: Parameter[];
  requestBody?: { $ref?: string; content: Record<string, { schema?: Schema }> };
  responses: Record<string, { description: string; content?: Record<string, { schema?: Schema }> }>;
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema>; requestBodies: Record<string, Operation["requestBody"]> };
}

export interface Example {
  /** The path as sent: parameters filled in, with any query string. */
  path: string;
  body?: unknown;
  /** A multipart/form-data body instead (the upload route): `@path` is a file, relative to the repository, as curl -F. */
  form?: Record<string, string>;
  /** Header lines beyond the key, e.g. X-User-Id. */
  headers?: Record<string, string>;
}

/**
 * Examples by route key, for the routes a made-up request would not show well (most need ids that
 * exist, a file, or fields worth seeing); any other route's is derived from its schemas. Ordered as
 * a session would go (ingest before reading, delete and restore last), which is the order
 * test/integration/api-docs.test.ts runs them in; docs/api.md lists routes in the route table's order.
 */
export const EXAMPLES: Partial<Record<RouteKey, Example>> = {
  "GET /v1/health": { path: "/v1/health" },
  "GET /v1/openapi.json": { path: "/v1/openapi.json" },
  "POST /v1/ingest": {
    path: "/v1/ingest",
    body: {
      documents: [
        {
          id: "refunds",
          title: "Refund policy",
          content: "# Refunds\n\nRefunds are issued within 14 days of a return. Store credit never expires.",
          metadata: { team: "support" },
          importance: 7,
        },
        // A memory of a conversation: ingesting it opens conversation support-1, which the chat below continues.
        { id: "note-1042", content: "The customer asked about refunds for order 1042.", conversationId: "support-1" },
      ],
    },
  },
  "POST /v1/documents/upload": {
    path: "/v1/documents/upload",
    form: { file: "@test/fixtures/extract/handbook.pdf", metadata: '{"team":"hr"}' },
  },
  "GET /v1/documents": { path: "/v1/documents?limit=10" },
  "GET /v1/documents/{id}": { path: "/v1/documents/refunds" },
  "PATCH /v1/documents/{id}": { path: "/v1/documents/refunds", body: { importance: 9, ttlSeconds: null } },
  "GET /v1/stats": { path: "/v1/stats" },
  "POST /v1/search": {
    path: "/v1/search",
    body: { query: "how long do refunds take", topK: 3, filter: { metadata: { team: "support" } } },
  },
  "POST /v1/chat": {
    path: "/v1/chat",
    body: { messages: [{ role: "user", content: "What is the refund window?" }], conversationId: "support-1" },
  },
  "GET /v1/conversations": { path: "/v1/conversations" },
  "GET /v1/conversations/{id}": { path: "/v1/conversations/support-1" },
  "DELETE /v1/conversations/{id}": { path: "/v1/conversations/support-1" },
  "POST /api/ingest": {
    path: "/api/ingest",
    body: { documents: [{ id: "hours", title: "Opening hours", content: "We are open 9 to 5 on weekdays." }] },
  },
  "POST /api/chat": { path: "/api/chat", body: { messages: [{ role: "user", content: "When are you open?" }] } },
  "POST /mcp": {
    path: "/mcp",
    headers: { accept: contract["POST /mcp"].accept },
    body: {
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: { name: "search_memory", arguments: { query: "refund window" } },
    },
  },
  // A soft delete, then the restore that brings the document back: the refund policy stays for the CLI's examples
  // below them in the README (a hard delete of it had left "What is the refund window?" to note-1042).
  "DELETE /v1/documents/{id}": { path: "/v1/documents/note-1042" },
  "POST /v1/documents/{id}/restore": { path: "/v1/documents/note-1042/restore" },
};

/** A value the schema allows, as small as it can be: required fields only, defaults where there are some. */
function sampleOf(node: Schema, doc: Document, depth = 0): unknown {
  const n = node.$ref ? deref(node, doc) : node;
  if (depth > 8) return null;
  if (n.default !== undefined) return n.default;
  if (n.const !== undefined) return n.const;
  if (n.enum?.length) return n.enum[0];
  if (n.anyOf?.length)
    return sampleOf(n.anyOf.find((m) => m.type !== "null") ?? (n.anyOf[0] as Schema), doc, depth + 1);
  const type = Array.isArray(n.type) ? (n.type.find((t) => t !== "null") ?? "null") : n.type;
  switch (type) {
    case "string": {
      if (n.format === "date-time") return "2026-01-01T00:00:00Z";
      const text = "example".padEnd(n.minLength ?? 0, "x");
      return n.maxLength === undefined ? text : text.slice(0, n.maxLength);
    }
    case "integer":
    case "number":
      return n.minimum ?? (n.exclusiveMinimum === undefined ? Math.min(1, n.maximum ?? 1) : n.exclusiveMinimum + 1);
    case "boolean":
      return true;
    case "null":
      return null;
    case "array":
      return Array.from({ length: Math.max(1, n.minItems ?? 0) }, () => sampleOf(n.items ?? {}, doc, depth + 1));
    case "object":
      return Object.fromEntries(
        (n.required ?? []).map((name) => [name, sampleOf(n.properties?.[name] ?? {}, doc, depth + 1)]),
      );
    default:
      return "example";
  }
}

/**
 * An example made from a route's schemas: path parameters `example`, required query parameters and body
 * fields only. None for a file upload, or when the result would not pass the route's own validation.
 */
export function derivedExample(route: Route): Example | undefined {
  const doc = OpenApi.document() as unknown as Document;
  const op = doc.paths[route.path]?.[route.method.toLowerCase()] as Operation;
  if (route.rawBody?.type === "multipart/form-data") return undefined;
  const query = new URLSearchParams();
  for (const p of (op.parameters ?? []).filter((p) => p.in === "query" && p.required)) {
    query.set(p.name, String(sampleOf(p.schema ?? {}, doc)));
  }
  const requestBody = op.requestBody?.$ref
    ? (deref(op.requestBody as Schema, doc) as Operation["requestBody"])
    : op.requestBody;
  const schema = requestBody?.content["application/json"]?.schema;
  const body = schema ? sampleOf(schema, doc) : undefined;
  const path = route.path.replaceAll(/\{\w+\}/g, "example") + (query.size ? `?${query}` : "");
  if (route.query && !route.query.safeParse(Object.fromEntries(query)).success) return undefined;
  if (body !== undefined && !OpenApi.bodySchema(route)?.safeParse(body).success) return undefined;
  return { path, ...(body === undefined ? {} : { body }) };
}

/** A route's example: the one written above, else one derived from its schemas (or none). */
export const exampleFor = (route: Route): Example | undefined => EXAMPLES[route.key] ?? derivedExample(route);

/**
 * Every example in the order a session runs them: those written above, then the derived ones, before the
 * closing delete when there is one.
 */
export function examples(): { route: Route; example: Example; derived: boolean }[] {
  const byKey = new Map(routes.map((route) => [route.key, route]));
  const written = Object.entries(EXAMPLES).map(([key, example]) => ({
    route: byKey.get(key as RouteKey) as Route,
    example: example as Example,
    derived: false,
  }));
  const derived = routes.flatMap((route) => {
    const example = EXAMPLES[route.key] ? undefined : derivedExample(route);
    return example ? [{ route, example, derived: true }] : [];
  });
  const last = written.at(-1);
  return last?.route.method === "DELETE" ? [...written.slice(0, -1), ...derived, last] : [...written, ...derived];
}

const root = fileURLToPath(new URL("..", import.meta.url));
export const API_DOCS = "docs/api.md";
const README = "README.md";
const CURL_BEGIN = "<!-- curl:begin (npm run docs:api writes this block) -->";
const CURL_END = "<!-- curl:end -->";

/** The shell command for a route's example; `$API` and `$KEY` are set once above the commands. */
export function curlOf(route: Route, example: Example): string {
  const parts = [`curl -s${route.method === "GET" ? "" : ` -X ${route.method}`} "$API${example.path}"`];
  if (route.auth) parts.push(`-H "Authorization: Bearer $KEY"`);
  for (const [name, value] of Object.entries(example.headers ?? {})) parts.push(`-H '${name}: ${value}'`);
  if (example.body !== undefined) {
    parts.push(`-H 'content-type: application/json'`);
    parts.push(`-d '${JSON.stringify(example.body).replaceAll("'", "'\\''")}'`);
  }
  for (const [name, value] of Object.entries(example.form ?? {})) {
    parts.push(`-F '${name}=${value.replaceAll("'", "'\\''")}'`);
  }
  return parts.join(" ");
}

const anchor = (route: Route) =>
  `${route.method} ${route.path}`
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, "")
    .replaceAll(" ", "-");
const cell = (text: unknown) =>
  String(text ?? "")
    .replaceAll("|", "\\|")
    .replaceAll("\n", " ");

/** A JSON Schema node as a short type: `string`, `array of [Document](#document)`, `"a" \| "b"`. */
function typeOf(node: Schema): string {
  if (node.$ref) {
    const name = node.$ref.split("/").at(-1) ?? "";
    return `[${name}](#${name.toLowerCase()})`;
  }
  if (node.enum) return node.enum.map((v) => JSON.stringify(v)).join(" \\| ");
  if (node.anyOf) return node.anyOf.map(typeOf).join(" or ");
  if (node.type === "array") return `array of ${node.items ? typeOf(node.items) : "anything"}`;
  if (Array.isArray(node.type)) return node.type.join(" or ");
  // The format tells apart what would read "string or string" (a timestamp or a date).
  if (node.type === "string" && node.format) return `string (${node.format})`;
  return node.type ?? "any JSON";
}

/** Limits a JSON Schema node states: lengths, ranges, counts, defaults. */
function limitsOf(node: Schema): string[] {
  const out: string[] = [];
  const range = (lo: unknown, hi: unknown, unit: string) => {
    if (lo !== undefined && hi !== undefined) out.push(`${lo}-${hi}${unit}`);
    else if (lo !== undefined) out.push(`at least ${lo}${unit}`);
    else if (hi !== undefined) out.push(`at most ${hi}${unit}`);
  };
  range(node.minLength, node.maxLength, " characters");
  range(node.minimum, node.maximum, "");
  range(node.minItems, node.maxItems, " items");
  for (const member of node.anyOf ?? []) out.push(...limitsOf(member));
  if (node.default !== undefined) out.push(`default ${JSON.stringify(node.default)}`);
  return out;
}

function fieldsTable(schema: Schema, doc: Document): string[] {
  const target = schema.$ref ? deref(schema, doc) : schema;
  const required = new Set<string>(target.required ?? []);
  const lines = ["| field | type | required | notes |", "| --- | --- | --- | --- |"];
  for (const [name, raw] of Object.entries(target.properties ?? {})) {
    const node = raw.$ref ? { ...deref(raw, doc), $ref: raw.$ref } : raw;
    const notes = [node.description, ...limitsOf(node)].filter(Boolean).join("; ");
    lines.push(`| \`${name}\` | ${typeOf(raw)} | ${required.has(name) ? "yes" : ""} | ${cell(notes)} |`);
  }
  return lines;
}

function deref(node: Schema, doc: Document): Schema {
  const path = String(node.$ref).replace(/^#\//, "").split("#")[0]?.split("/") ?? [];
  let at: unknown = doc;
  for (const key of path) at = (at as Record<string, unknown> | undefined)?.[key];
  return (at as Schema | undefined) ?? {};
}

function section(route: Route, doc: Document): string[] {
  const op = doc.paths[route.path]?.[route.method.toLowerCase()] as Operation;
  const example = exampleFor(route);
  const out = [`### ${route.method} ${route.path}`, ""];
  const who = !route.auth
    ? "Open: no key, no rate limit."
    : route.fn === "mcp"
      ? // Its class is the tool's, known once the message is read (core/mcp/http.ts).
        `Needs a key; a tool call counts in its route's rate class (\`remember\` as POST /v1/ingest, \`search_memory\` as POST /v1/search, \`ask\` as POST /v1/chat), the other tools and any other message in the \`${route.rateClass}\` one; a batch's messages no tool spent for (\`tools/list\`, \`ping\`, notifications, a malformed member, a tool call refused before its tool ran) count once together. A tool call the limit refuses is that tool's error, in a 200 answer with the 429's headers; in a batch calling a tool, the other requests the limit refuses are each answered with a JSON-RPC error -32000 whose \`data.code\` is \`ratelimit.exceeded\`, and the tool calls' answers stand; a lone message, or a batch calling no tool, is refused 429. A JSON-RPC batch (MCP 2025-03-26) is answered with an array in its order, each member on its own: one that is no JSON-RPC 2.0 message, or an \`initialize\`, gets its own -32600 error (its id, or null when it has none), and the others are answered as if sent alone.`
      : `Needs a key; counted in the \`${route.rateClass}\` rate class.`;
  out.push(`${route.summary}. Served by the \`${route.fn}\` function. ${who}`, "");
  const params = (op.parameters ?? []).filter((p) => !p.$ref && p.in !== "header");
  if (params.length) {
    out.push("| parameter | in | type | notes |", "| --- | --- | --- | --- |");
    for (const p of params) {
      const notes = [p.description, ...limitsOf(p.schema ?? {})].filter(Boolean).join("; ");
      out.push(`| \`${p.name}\` | ${p.in} | ${typeOf(p.schema ?? {})} | ${cell(notes)} |`);
    }
    out.push("");
  }
  const requestBody = op.requestBody?.$ref
    ? (deref(op.requestBody as Schema, doc) as Operation["requestBody"])
    : op.requestBody;
  const body = (requestBody?.content["application/json"] ?? requestBody?.content["multipart/form-data"])?.schema;
  if (body) {
    const name = op.requestBody?.$ref?.split("/").at(-1);
    const target = body.$ref ? deref(body, doc) : body;
    if (target.properties) out.push(`Body: ${name ? `\`${name}\`` : typeOf(body)}`, "", ...fieldsTable(body, doc), "");
    else {
      // A body of one of several shapes (POST /mcp: a message or a batch of them): the shapes' fields are under Schemas.
      const notes = [target.description, ...limitsOf(target)].filter(Boolean).join("; ");
      out.push(`Body: ${name ? `\`${name}\`, ` : ""}${typeOf(target)}${notes ? `. ${notes}` : ""}`, "");
    }
  }
  out.push("Answers:", "");
  for (const [status, r] of Object.entries(op.responses)) {
    const schema = r.content?.["application/json"]?.schema;
    out.push(`- \`${status}\` ${r.description}${status === "200" && schema ? `: ${typeOf(schema)}` : ""}`);
  }
  out.push("");
  // An answer written in its contract entry has no section under Schemas: its fields go here.
  const answer = op.responses["200"]?.content?.["application/json"]?.schema;
  if (answer?.properties) out.push("The answer:", "", ...fieldsTable(answer, doc), "");
  if (example) out.push("```sh", curlOf(route, example), "```", "");
  return out;
}

/** docs/api.md's text. */
export function renderApiDocs(): string {
  const doc = OpenApi.document() as unknown as Document;
  const out = [
    "# HTTP API reference",
    "",
    "<!-- Written by `npm run docs:api` (scripts/api-docs.ts); `npm test` fails when it is out of date. -->",
    "",
    "Every route of Engram's HTTP API, generated from the route contract (`core/api/routes.ts`) and the zod",
    "schemas that validate each request (`core/api/schemas.ts`), the same source as `GET /v1/openapi.json`.",
    "Every example below runs in `npm test` against the handlers. Keys, scoping, errors and rate limits:",
    "[contract.md](contract.md).",
    "",
    'Errors are `{ "error": { "code", "message", "details"? } }`; switch on `code`. `X-User-Id` (optional',
    "on every route that needs a key) names the end user: writes go to their private space, reads see it",
    "plus the tenant's shared space. An `{id}` in a path is one segment, percent-encoded: the CLI names a",
    "file's document by its path, `library/json.html`, which a path writes `library%2Fjson.html`",
    "(JavaScript's `encodeURIComponent`; the typed client and the console do it for you).",
    "",
    "```sh",
    "API=http://localhost:3000          # or your stage's URL (npx sst deploy prints it)",
    "KEY=$(cat .engram/local-key)       # or a key from: npx engram keys create --tenant NAME",
    "```",
    "",
    "| route | summary |",
    "| --- | --- |",
    ...routes.map((r) => `| [\`${r.method} ${r.path}\`](#${anchor(r)}) | ${r.summary} |`),
    "",
    "## Routes",
    "",
    ...routes.flatMap((r) => section(r, doc)),
    "## Schemas",
    "",
  ];
  const schemas = doc.components.schemas;
  for (const name of Object.keys(schemas)
    .filter((n) => !n.startsWith("__"))
    .sort()) {
    const schema = schemas[name] as Schema;
    out.push(`### ${name}`, "");
    if (schema.description) out.push(schema.description, "");
    if (schema.properties) out.push(...fieldsTable(schema, doc), "");
    else out.push(`${typeOf(schema)}`, "");
  }
  return `${out.join("\n").trimEnd()}\n`;
}

/** The README's block of one curl per route, in the examples' order, so it runs top to bottom. */
export function renderCurlBlock(): string {
  const lines = [
    CURL_BEGIN,
    "<details><summary>curl for every route (top to bottom: ingest first, delete and restore last)</summary>",
    "",
    "```sh",
    "API=http://localhost:3000; KEY=$(cat .engram/local-key)",
    ...examples().map(({ route, example }) => curlOf(route, example)),
    "```",
    "",
    "</details>",
    CURL_END,
  ];
  return lines.join("\n");
}

/** The README with its curl block replaced by `block`. */
export function withCurlBlock(readme: string, block = renderCurlBlock()): string {
  const start = readme.indexOf(CURL_BEGIN);
  const end = readme.indexOf(CURL_END);
  if (start < 0 || end < start) throw new Error(`${README} has no ${CURL_BEGIN} ... ${CURL_END} block`);
  return readme.slice(0, start) + block + readme.slice(end + CURL_END.length);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const check = process.argv.includes("--check");
  const files: [string, string][] = [
    [API_DOCS, renderApiDocs()],
    [README, withCurlBlock(readFileSync(`${root}${README}`, "utf8"))],
  ];
  let stale = 0;
  for (const [file, text] of files) {
    const current = existsSync(`${root}${file}`) ? readFileSync(`${root}${file}`, "utf8") : "";
    if (current === text) continue;
    stale++;
    if (check) console.error(`${file} is out of date: run npm run docs:api`);
    else writeFileSync(`${root}${file}`, text);
  }
  if (!check) console.log(stale ? `wrote ${stale} file(s)` : "up to date");
  process.exit(check && stale ? 1 : 0);
}
