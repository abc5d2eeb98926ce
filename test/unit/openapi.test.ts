/** GET /v1/openapi.json: generated from the route table and the zod schemas that validate requests. */
import { MAX_BATCH_SIZE } from "@modelcontextprotocol/sdk/server/requestBody.js";
import { describe, expect, it } from "vitest";
import * as OpenApi from "../../core/api/openapi";
import { routeKey, routes } from "../../core/api/routes";
import { ChatRequest } from "../../core/chat/schema";
import { DocumentInput, IngestRequest, ListQuery } from "../../core/document/schema";
import { invoke } from "../../kit/events";

type Json = Record<string, any>;
const doc = OpenApi.document() as Json;

/** Follows a local `$ref` (`#/components/...`). */
function resolve(ref: string): Json {
  const target = ref
    .replace(/^#\//, "")
    .split("/")
    .reduce<Json | undefined>((node, key) => node?.[key], doc);
  if (!target) throw new Error(`unresolved $ref ${ref}`);
  return target;
}
const deref = (node: Json): Json => (node.$ref ? resolve(node.$ref) : node);

function refs(node: unknown, found: string[] = []): string[] {
  if (Array.isArray(node)) for (const item of node) refs(item, found);
  else if (node && typeof node === "object") {
    for (const [key, value] of Object.entries(node)) {
      if (key === "$ref" && typeof value === "string") found.push(value);
      else refs(value, found);
    }
  }
  return found;
}

const op = (method: string, path: string): Json => doc.paths[path][method.toLowerCase()];

describe("the OpenAPI document", () => {
  it("is OpenAPI 3.1 with bearer-key security", () => {
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
  });

  it("documents every route of the contract, each answer by a schema the contract names", () => {
    for (const route of routes) {
      const operation = op(route.method, route.path);
      expect(operation, routeKey(route)).toBeDefined();
      expect(operation.summary).toBe(route.summary);
      expect(operation.security).toEqual(route.auth ? [{ bearer: [] }] : []);
      expect(operation.responses["200"], routeKey(route)).toBeDefined();
    }
    // An answer is named in core/api/schemas.ts or written in its entry; a name nothing defines is undefined.
    for (const route of routes) expect(OpenApi.answer(route.response), route.key).toBeDefined();
    const documented = Object.entries(doc.paths as Json).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(documented.sort()).toEqual(routes.map(routeKey).sort());
  });

  it("lists chat's messages as required, as the API treats them, with no default and no internal marker", () => {
    const body = deref(deref(op("POST", "/v1/chat").requestBody).content["application/json"].schema);
    expect(body.required).toEqual(["messages"]);
    expect(body.properties.messages.default).toBeUndefined();
    expect(JSON.stringify(doc)).not.toContain("x-engram-required");
    expect(ChatRequest.safeParse({}).error?.issues[0]).toMatchObject({ params: { code: "chat.no_messages" } });
  });

  it("describes the ingest body with the zod schema's fields, required fields and limits", () => {
    const body = deref(deref(op("POST", "/v1/ingest").requestBody).content["application/json"].schema);
    expect(body.required).toEqual(["documents"]);
    const document = deref(body.properties.documents.items);
    expect(Object.keys(document.properties).sort()).toEqual(Object.keys(DocumentInput.shape).sort());
    expect(document.required).toEqual(["content"]);
    expect(document.properties.importance).toMatchObject({ type: "integer", minimum: 1, maximum: 10 });
    expect(document.properties.id).toMatchObject({ type: "string", minLength: 1, maxLength: 256 });
    // The example from the API reference passes the very schema the document was made from.
    const example = { documents: [{ id: "doc-1", content: "Refunds take 14 days.", importance: 7 }] };
    expect(IngestRequest.safeParse(example).success).toBe(true);
  });

  it("lists path and query parameters with their types and defaults", () => {
    const params = op("GET", "/v1/documents/{id}").parameters as Json[];
    expect(params).toContainEqual({ name: "id", in: "path", required: true, schema: { type: "string" } });
    const list = (op("GET", "/v1/documents").parameters as Json[]).filter((p) => p.in === "query");
    expect(list.map((p) => p.name).sort()).toEqual(Object.keys(ListQuery.shape).sort());
    expect(list.find((p) => p.name === "limit")).toMatchObject({
      required: false,
      schema: { type: "integer", minimum: 1, maximum: 100, default: 20 },
    });
  });

  it("answers errors in the one error shape, with 401 and 429 on keyed routes", () => {
    const error = resolve("#/components/schemas/Error");
    expect(error.required).toEqual(["error"]);
    expect(error.properties.error.required).toEqual(["code", "message"]);
    const ingest = op("POST", "/v1/ingest").responses;
    for (const status of ["400", "401", "413", "429", "500", "503"]) {
      expect(ingest[status].content["application/json"].schema, status).toEqual({
        $ref: "#/components/schemas/Error",
      });
    }
    expect(ingest["429"].headers["Retry-After"]).toBeDefined();
    expect(op("GET", "/v1/health").responses["401"]).toBeUndefined();
  });

  it("describes chat's server-sent events beside a 200 whose only content is JSON, so generated clients type it", () => {
    const ok = op("POST", "/v1/chat").responses["200"];
    expect(Object.keys(ok.content)).toEqual(["application/json"]);
    expect(Object.keys(ok["x-events"])).toEqual(["citations", "delta", "done", "error"]);
    expect(ok["x-events"].done.required).toEqual(["conversationId", "citations", "model", "usage"]);
  });

  it("keeps request bodies in components.requestBodies, their defaults optional, and answers as given", () => {
    const search = deref(op("POST", "/v1/search").requestBody);
    const body = search.content["application/json"].schema;
    expect(body.required).toEqual(["query"]);
    expect(body.properties.topK.default).toBe(5);
    expect(doc.components.schemas.SearchRequest).toBeUndefined();
    expect(doc.components.schemas.Deleted.required).toEqual(["id", "deleted"]);
  });

  it("types query booleans as booleans, a message's role as its three values, and JSON values as any JSON", () => {
    const hard = op("DELETE", "/v1/documents/{id}").parameters.find((p: Json) => p.name === "hard");
    expect(hard.schema).toEqual({ type: "boolean", default: false });
    const message = doc.components.schemas.ChatMessageInput;
    expect(message.properties.role).toEqual({ type: "string", enum: ["user", "assistant", "system"] });
    expect(doc.components.schemas.JsonValue.type).toBeUndefined();
  });

  it("answers a document's and a search hit's metadata as the JSON object it is sent as, one JsonValue for both", () => {
    const sent = deref(op("POST", "/v1/ingest").requestBody);
    const input = resolve(sent.content["application/json"].schema.properties.documents.items.$ref).properties.metadata;
    expect(input.additionalProperties).toEqual({ $ref: "#/components/schemas/JsonValue" });
    expect(doc.components.schemas.Document.properties.metadata).toEqual(input);
    expect(doc.components.schemas.SearchHit.properties.metadata).toEqual(input);
    // One component, not a second one zod would name itself (schema0) for the answers' side.
    expect(Object.keys(doc.components.schemas).filter((name) => /^(__)?schema\d/.test(name))).toEqual([]);
  });

  it("answers a stored message's citations and usage as the chat answered them: the one Citation and ChatUsage", () => {
    const message = doc.components.schemas.Conversation.properties.messages.items;
    expect(message.properties.citations.items).toEqual({ $ref: "#/components/schemas/Citation" });
    expect(message.properties.usage.anyOf).toEqual([{ $ref: "#/components/schemas/ChatUsage" }, { type: "null" }]);
    expect(doc.components.schemas.ChatResponse.properties.usage).toEqual({ $ref: "#/components/schemas/ChatUsage" });
    expect(doc.components.schemas.ChatUsage.required).toEqual(["promptTokens", "completionTokens", "embeddingTokens"]);
  });

  it("takes a JSON-RPC batch on POST /mcp as the server reads one, and answers an array of responses to it", () => {
    const body = deref(op("POST", "/mcp").requestBody).content["application/json"].schema;
    expect(body.anyOf).toEqual([
      { $ref: "#/components/schemas/McpMessage" },
      { type: "array", items: { $ref: "#/components/schemas/McpMessage" }, minItems: 1, maxItems: MAX_BATCH_SIZE },
    ]);
    const answer = deref(op("POST", "/mcp").responses["200"].content["application/json"].schema);
    expect(answer.anyOf).toEqual([
      { $ref: "#/components/schemas/McpResponse" },
      { type: "array", items: { $ref: "#/components/schemas/McpResponse" } },
    ]);
    expect(op("POST", "/mcp").responses["202"].content).toBeUndefined();
  });

  it("documents 404 on chat (an unknown conversation) and 400 user.invalid_id on every keyed route", () => {
    expect(op("POST", "/v1/chat").responses["404"]).toBeDefined();
    for (const route of routes.filter((r) => r.auth)) {
      expect(op(route.method, route.path).responses["400"].description, routeKey(route)).toContain("user.invalid_id");
    }
    expect(doc.servers).toHaveLength(1);
  });

  it("says the upload route stores a JSON file as one document of its raw text, as it does", async () => {
    // The CLI and console read a .json file's records; the upload route does not, which its description did not say.
    const upload = op("POST", "/v1/documents/upload");
    const form = deref(upload.requestBody).content["multipart/form-data"].schema;
    expect(upload.summary).toMatch(/JSON as one document of its raw text/);
    expect(form.properties.file.description).toMatch(
      /\.json or \.jsonl file is stored as one document of its raw text/,
    );
    const raw = '[{"id": "a", "content": "Refunds take 30 days."}]';
    const { extract } = await import("../../core/extract");
    expect((await extract(new TextEncoder().encode(raw), { name: "records.json" })).content).toBe(raw);
  });

  it("resolves every $ref inside the document", () => {
    for (const ref of new Set(refs(doc))) expect(() => resolve(ref), ref).not.toThrow();
  });

  it("is built once per process", () => {
    expect(OpenApi.document()).toBe(doc);
  });

  it("is served at GET /v1/openapi.json without a key", async () => {
    const res = await invoke({ method: "GET", path: "/v1/openapi.json" });
    expect(res.status).toBe(200);
    expect(res.body).toEqual(JSON.parse(JSON.stringify(doc)));
  });
});
