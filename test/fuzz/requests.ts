/**
 * Hand-written request generators for the routes of the route table (any other route's are derived from
 * its contract: ./contract.ts), and the helpers both use. Each route's requests come in two flavours,
 * half and half: *clean* (every field well-formed, so requests get past validation and
 * exercise the database, the embedder and the chat path) and *wild* (any field may be hostile, the
 * body broken, the key or X-User-Id wrong).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import type { RouteKey } from "../../core/api/routes";
import type { EventInput } from "../../kit/events";
import { multipart, multipartType, type Part } from "../../kit/multipart";
import {
  anyJson,
  arrayText,
  bodyOf,
  contentText,
  cursorText,
  deepJson,
  encodePathSegment,
  filterText,
  hostileKey,
  hostileString,
  numberText,
  objectOf,
  objectText,
  pathId,
  queryValue,
  str,
} from "./arbitraries";

/** What the generators aim at: real keys, and ids, conversations and cursors that exist. */
export interface Ctx {
  key: string;
  otherKey: string;
  docIds: string[];
  conversations: string[];
  documentCursors: string[];
  conversationCursors: string[];
}

type Arb<T> = fc.Arbitrary<T>;
export type Build = (c: Ctx, wild: boolean) => Arb<EventInput>;

/** The clean value, or in a wild request sometimes a hostile one. */
export const either = <T>(wild: boolean, clean: Arb<T>, hostile: Arb<T>): Arb<T> =>
  wild ? fc.oneof({ weight: 3, arbitrary: clean }, { weight: 1, arbitrary: hostile }) : clean;

/** A JSON field's text: the clean value, or in a wild request sometimes any JSON at all. */
export const jsonField = (wild: boolean, clean: Arb<string>): Arb<string> =>
  wild ? fc.oneof({ weight: 5, arbitrary: clean }, { weight: 1, arbitrary: fc.oneof(anyJson, deepJson) }) : clean;

/** An object of optional fields; wild ones may carry hostile extra keys (`__proto__`, duplicates). */
export const object = (wild: boolean, fields: Record<string, Arb<string>>, required: string[] = []): Arb<string> =>
  wild
    ? objectOf(fields, required)
    : fc
        .record(fields, { requiredKeys: required })
        .map((record) => objectText(Object.entries(record as Record<string, string>)));

export const body = (wild: boolean, valid: Arb<string>) => (wild ? bodyOf(valid) : valid);

function headers(c: Ctx, wild: boolean): Arb<Record<string, string>> {
  const auth = either<string | undefined>(
    wild,
    fc.constant(`Bearer ${c.key}`),
    fc.oneof(
      fc.constantFrom<string | undefined>(
        undefined,
        `Bearer ${c.otherKey}`,
        "Bearer",
        "Bearer ",
        `bearer ${c.key}`,
        `Bearer  ${c.key}  `,
        `Basic ${c.key}`,
        `Bearer egm_${"A".repeat(32)}`,
        `Bearer ${c.key}x`,
        `Bearer ${c.key.slice(0, -1)}`,
        `Bearer ${c.key} extra`,
        `Bearer ${c.key}\u0000`,
        `Bearer ${c.key.toUpperCase()}`,
      ),
      hostileString.map((s) => `Bearer ${s}`),
    ),
  );
  const user = either<string | undefined>(
    wild,
    fc.constantFrom(undefined, "alice", "alice", "bob"),
    fc.oneof(
      fc.constantFrom<string | undefined>(
        "ALICE",
        "alice.",
        " alice",
        "alice ",
        "\u0430lice",
        "\uff41lice",
        "alice\u200B",
        "a".repeat(128),
        "a".repeat(129),
        "alice,bob",
        "a:b@c.d-e_f",
        "",
      ),
      fc.stringMatching(/^[A-Za-z0-9._:@-]{1,128}$/),
      hostileString,
    ),
  );
  const extra = wild
    ? fc.array(
        fc.tuple(
          fc.constantFrom("content-type", "origin", "x-forwarded-for", "cookie", "accept", "x-request-id", "range"),
          hostileString,
        ),
        { maxLength: 2 },
      )
    : fc.constant([] as [string, string][]);
  return fc.tuple(auth, user, extra).map(([a, u, e]) => {
    const h: Record<string, string> = Object.fromEntries(e);
    if (a !== undefined) h.authorization = a;
    if (u !== undefined) h["x-user-id"] = u;
    return h;
  });
}

export function query(wild: boolean, fields: Record<string, Arb<string>>): Arb<Record<string, string>> {
  const extra = wild
    ? fc.array(fc.tuple(hostileKey, hostileString), { maxLength: 2 })
    : fc.constant([] as [string, string][]);
  return fc
    .tuple(fc.record(fields, { requiredKeys: [] }), extra)
    .map(([known, more]) => Object.fromEntries([...Object.entries(known as Record<string, string>), ...more]));
}

export const request = (
  c: Ctx,
  wild: boolean,
  method: string,
  path: Arb<string> | string,
  parts: { query?: Arb<Record<string, string>>; body?: Arb<string> } = {},
): Arb<EventInput> =>
  fc
    .record({
      path: typeof path === "string" ? fc.constant(path) : path,
      headers: headers(c, wild),
      query: parts.query ?? fc.constant<Record<string, string>>({}),
      rawBody: parts.body ?? fc.constant<string | undefined>(undefined),
    })
    .map(({ path: p, headers: h, query: q, rawBody }) => ({ method, path: p, headers: h, query: q, rawBody }));

// ---------------------------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------------------------

/** A huge but otherwise valid ingest: a document over the content limit, a body over 6 MB, 101 documents. */
const oversized = fc.constantFrom(
  () => objectText([["documents", arrayText([objectText([["content", str("c".repeat(1_000_001))]])])]]),
  () => objectText([["documents", arrayText([objectText([["content", str("c".repeat(6 * 1024 * 1024))]])])]]),
  () =>
    objectText([
      ["documents", arrayText(Array.from({ length: 101 }, (_, i) => objectText([["content", str(`doc ${i}`)]])))],
    ]),
);

const metadata = (wild: boolean) =>
  either(
    wild,
    fc.oneof(
      fc.constantFrom('{"team":"sales"}', "{}", '{"nested":{"deep":[1,2]}}', '{"n":1.5,"ok":true,"none":null}'),
      fc
        .dictionary(fc.string({ maxLength: 10 }), fc.string({ unit: "grapheme", maxLength: 20 }), { maxKeys: 4 })
        .map((record) => JSON.stringify(record)),
    ),
    fc.oneof(
      fc.array(fc.tuple(hostileKey, anyJson), { maxLength: 4 }).map(objectText),
      fc.constant(`{"big":${str("m".repeat(9000))}}`),
      deepJson.map((deep) => `{"deep":${deep}}`),
    ),
  );

const importance = (wild: boolean) => either(wild, fc.integer({ min: 1, max: 10 }).map(String), numberText);
const topK = (wild: boolean) => either(wild, fc.integer({ min: 1, max: 50 }).map(String), numberText);
const idOf = (c: Ctx, wild: boolean) =>
  either(
    wild,
    fc.oneof(fc.constantFrom(...c.docIds), fc.string({ unit: "grapheme", minLength: 1, maxLength: 30 })),
    hostileString,
  ).filter((id) => wild || id.trim() !== "");
const conversationOf = (c: Ctx, wild: boolean) => either(wild, fc.constantFrom(...c.conversations), hostileString);

function documentObject(c: Ctx, wild: boolean) {
  return object(
    wild,
    {
      id: jsonField(wild, idOf(c, wild).map(str)),
      content: jsonField(wild, contentText.filter((t) => wild || t.trim() !== "").map(str)),
      title: jsonField(
        wild,
        either(wild, fc.string({ maxLength: 50 }), fc.oneof(hostileString, fc.constant("t".repeat(1001)))).map(str),
      ),
      source: jsonField(wild, either(wild, fc.webUrl(), hostileString).map(str)),
      metadata: jsonField(wild, metadata(wild)),
      importance: jsonField(wild, importance(wild)),
      conversationId: jsonField(wild, conversationOf(c, wild).map(str)),
      ttlSeconds: jsonField(wild, either(wild, fc.constantFrom("3600", "86400"), numberText)),
    },
    ["content"],
  );
}

function ingestBody(c: Ctx, wild: boolean) {
  const documents = fc
    .uniqueArray(documentObject(c, wild), {
      minLength: wild ? 0 : 1,
      maxLength: 4,
      // Clean requests never repeat an id (a 400 by design).
      selector: (text) => (wild ? text : (/^\{"id":("(?:[^"\\]|\\.)*")/.exec(text)?.[1] ?? text)),
    })
    .map(arrayText);
  const valid = object(wild, { documents: jsonField(wild, documents) }, ["documents"]);
  if (!wild) return valid;
  return fc.oneof({ weight: 40, arbitrary: bodyOf(valid) }, { weight: 1, arbitrary: oversized.map((make) => make()) });
}

function searchBody(c: Ctx, wild: boolean) {
  const filter = wild
    ? filterText(c.docIds, c.conversations)
    : fc
        .record(
          {
            metadata: fc.constantFrom('{"team":"sales"}', '{"n":1}', "{}"),
            documentIds: fc
              .array(fc.constantFrom(...c.docIds), { minLength: 1, maxLength: 3 })
              .map((ids) => JSON.stringify(ids)),
            conversationId: fc.constantFrom(...c.conversations).map(str),
            minImportance: importance(false),
            createdAfter: fc.constantFrom('"2020-01-01T00:00:00Z"', '"2999-01-01T00:00:00+02:00"'),
          },
          { requiredKeys: [] },
        )
        .map((record) => objectText(Object.entries(record)));
  const mode = fc.constantFrom("vector", "keyword", "hybrid");
  return body(
    wild,
    object(
      wild,
      {
        query: jsonField(
          wild,
          either(
            wild,
            fc.oneof(
              fc.constantFrom("refund", "alpha bravo charlie", "what is the refund window?", "🧠", '"refund policy"'),
              fc.string({ unit: "grapheme", minLength: 1, maxLength: 60 }).filter((q) => q.trim() !== ""),
            ),
            fc.oneof(hostileString, fc.constant("q".repeat(2001))),
          ).map(str),
        ),
        topK: jsonField(wild, topK(wild)),
        mode: jsonField(wild, either(wild, mode, fc.constantFrom("VECTOR", "", "fuzzy")).map(str)),
        filter: jsonField(wild, filter),
        minScore: jsonField(wild, either(wild, fc.constantFrom("0", "0.01", "0.5"), numberText)),
        scope: jsonField(wild, either(wild, fc.constantFrom("all", "user", "shared"), fc.constant("none")).map(str)),
      },
      ["query"],
    ),
  );
}

/** A JSON-RPC call of one of the MCP tools, its arguments clean or hostile. */
function mcpBody(c: Ctx, wild: boolean) {
  const text = (clean: Arb<string>) => jsonField(wild, either(wild, clean, hostileString).map(str));
  const calls: Arb<[string, Arb<string>]>[] = [
    fc.constant([
      "remember",
      object(
        wild,
        {
          content: text(contentText),
          title: text(fc.string({ maxLength: 40 })),
          metadata: metadata(wild),
          importance: importance(wild),
        },
        ["content"],
      ),
    ]),
    fc.constant([
      "search_memory",
      object(
        wild,
        {
          query: text(fc.constantFrom("refund window", "alpha")),
          topK: topK(wild),
          mode: text(fc.constantFrom("hybrid", "vector", "keyword")),
        },
        ["query"],
      ),
    ]),
    fc.constant([
      "ask",
      object(
        wild,
        {
          question: text(fc.constantFrom("What is the refund window?")),
          conversationId: jsonField(wild, conversationOf(c, wild).map(str)),
        },
        ["question"],
      ),
    ]),
    fc.constant([
      "list_memories",
      object(wild, { limit: topK(wild), cursor: text(fc.constantFrom(...c.documentCursors)) }),
    ]),
    fc.constant(["forget", object(wild, { id: jsonField(wild, idOf(c, wild).map(str)) }, ["id"])]),
  ];
  const call = fc.oneof(...calls).chain(([name, args]) =>
    args.map((a) =>
      objectText([
        ["jsonrpc", '"2.0"'],
        ["id", "1"],
        ["method", '"tools/call"'],
        [
          "params",
          objectText([
            ["name", str(name)],
            ["arguments", a],
          ]),
        ],
      ]),
    ),
  );
  return body(wild, call);
}

function chatBody(c: Ctx, wild: boolean) {
  const question = fc.oneof(
    fc.constantFrom("What is the refund window?", "alpha bravo?", "🧠?", "Tell me about invoices"),
    contentText.filter((t) => t.trim() !== ""),
  );
  const earlier = object(
    wild,
    {
      role: jsonField(wild, either(wild, fc.constantFrom("user", "assistant", "system"), hostileString).map(str)),
      content: jsonField(wild, either(wild, question, hostileString).map(str)),
    },
    ["role", "content"],
  );
  const last = question.map((q) =>
    objectText([
      ["role", '"user"'],
      ["content", str(q)],
    ]),
  );
  const messages = fc
    .tuple(fc.array(earlier, { maxLength: 3 }), wild ? fc.option(last, { freq: 5 }) : last)
    .map(([before, end]) => arrayText(end === null ? before : [...before, end]));
  return body(
    wild,
    object(
      wild,
      {
        messages: jsonField(wild, messages),
        conversationId: jsonField(wild, conversationOf(c, wild).map(str)),
        topK: jsonField(wild, topK(wild)),
        filter: jsonField(wild, wild ? filterText(c.docIds, c.conversations) : fc.constant('{"minImportance":1}')),
        stream: jsonField(wild, fc.boolean().map(String)),
        remember: jsonField(wild, fc.boolean().map(String)),
      },
      ["messages"],
    ),
  );
}

function patchBody(wild: boolean) {
  return body(
    wild,
    object(wild, {
      content: jsonField(wild, contentText.filter((t) => wild || t.trim() !== "").map(str)),
      title: jsonField(wild, fc.oneof(fc.string({ maxLength: 50 }).map(str), fc.constant("null"))),
      metadata: jsonField(wild, metadata(wild)),
      importance: jsonField(wild, importance(wild)),
      ttlSeconds: jsonField(wild, either(wild, fc.constantFrom("3600", "null"), numberText)),
    }),
  );
}

function compatIngestBody(c: Ctx, wild: boolean) {
  const doc = object(
    wild,
    {
      id: jsonField(wild, idOf(c, wild).map(str)),
      content: jsonField(wild, contentText.filter((t) => wild || t.trim() !== "").map(str)),
      title: jsonField(wild, either(wild, fc.string({ maxLength: 50 }), hostileString).map(str)),
      // The Digital Twin's clients send fields of their own.
      timestamp: jsonField(wild, numberText),
    },
    ["content"],
  );
  return body(
    wild,
    object(
      wild,
      { documents: jsonField(wild, fc.array(doc, { minLength: wild ? 0 : 1, maxLength: 3 }).map(arrayText)) },
      ["documents"],
    ),
  );
}

/** Files made by real tools (test/fixtures/extract), read once. */
const FILES = ["handbook.pdf", "handbook.docx", "page.html", "scanned.pdf", "encrypted.pdf", "corrupt.pdf"].map(
  (name) => ({ name, bytes: readFileSync(join(import.meta.dirname, "../fixtures/extract", name)) }),
);

/** An upload's form: a real file or, wild, any bytes, a truncated file, hostile fields, a broken form. */
function uploadRequest(c: Ctx, wild: boolean): Arb<EventInput> {
  const file = either(
    wild,
    fc.oneof(
      fc.constantFrom(...FILES.slice(0, 3)).map((f) => ({ name: f.name, bytes: new Uint8Array(f.bytes) })),
      contentText.filter((t) => t.trim() !== "").map((t) => ({ name: "note.md", bytes: new TextEncoder().encode(t) })),
    ),
    fc.oneof(
      fc.constantFrom(...FILES).map((f) => ({ name: f.name, bytes: new Uint8Array(f.bytes) })),
      fc
        .tuple(fc.constantFrom(...FILES), fc.integer({ min: 0, max: 4000 }))
        .map(([f, n]) => ({ name: f.name, bytes: new Uint8Array(f.bytes.subarray(0, n)) })),
      fc.tuple(hostileString, fc.uint8Array({ maxLength: 2000 })).map(([name, bytes]) => ({ name, bytes })),
    ),
  );
  const text = (clean: Arb<string>) => either(wild, clean, hostileString);
  const fields = fc.record(
    {
      id: text(idOf(c, false)),
      title: text(fc.string({ maxLength: 50 })),
      metadata: wild ? fc.oneof(metadata(true), anyJson) : metadata(false),
      importance: importance(wild),
      conversationId: conversationOf(c, wild),
    },
    { requiredKeys: [] },
  );
  const form = fc.tuple(fc.option(file, { nil: undefined, freq: wild ? 5 : 100 }), fields).map(([f, more]) => {
    const parts: Part[] = Object.entries(more as Record<string, string>).map(([name, value]) => ({ name, value }));
    if (f) parts.unshift({ name: "file", value: f.bytes, filename: f.name.replace(/["\r\n]/g, "_") });
    return multipart(parts);
  });
  const type = either(
    wild,
    fc.constant(multipartType()),
    fc.constantFrom("application/json", "multipart/form-data", multipartType("other"), "text/plain"),
  );
  return fc.record({ headers: headers(c, wild), form, type }).map(({ headers: h, form: body, type: t }) => ({
    method: "POST",
    path: "/v1/documents/upload",
    headers: { ...h, "content-type": t },
    binaryBody: body,
  }));
}

// ---------------------------------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------------------------------

const documentPath = (c: Ctx, wild: boolean) =>
  (wild ? pathId(c.docIds) : fc.constantFrom(...c.docIds).map(encodePathSegment)).map((id) => `/v1/documents/${id}`);
const conversationPath = (c: Ctx, wild: boolean) =>
  (wild ? pathId(c.conversations) : fc.constantFrom(...c.conversations).map(encodePathSegment)).map(
    (id) => `/v1/conversations/${id}`,
  );
const flag = (wild: boolean) => either(wild, fc.constantFrom("true", "false", "1", "0"), queryValue);
const limit = (wild: boolean) => either(wild, fc.integer({ min: 1, max: 100 }).map(String), queryValue);

/**
 * Hand-written generators, which know what the schemas cannot say (ids that exist, real files, MCP's tools),
 * and how many cases each route gets per run (at FUZZ_SCALE=1). A route without one is fuzzed with requests
 * derived from its contract (./contract.ts).
 */
export const ROUTES: Partial<Record<RouteKey, { runs: number; build: Build }>> = {
  "GET /v1/health": { runs: 50, build: (c, w) => request(c, w, "GET", "/v1/health", { query: query(w, {}) }) },
  "GET /v1/openapi.json": { runs: 20, build: (c, w) => request(c, w, "GET", "/v1/openapi.json") },
  "POST /v1/ingest": { runs: 330, build: (c, w) => request(c, w, "POST", "/v1/ingest", { body: ingestBody(c, w) }) },
  "POST /v1/documents/upload": { runs: 120, build: uploadRequest },
  "GET /v1/documents": {
    runs: 200,
    build: (c, w) =>
      request(c, w, "GET", "/v1/documents", {
        query: query(w, {
          limit: limit(w),
          cursor: either(w, fc.constantFrom(...c.documentCursors), cursorText),
          conversationId: conversationOf(c, w),
          includeDeleted: flag(w),
        }),
      }),
  },
  "GET /v1/documents/{id}": {
    runs: 200,
    build: (c, w) => request(c, w, "GET", documentPath(c, w), { query: query(w, { track: flag(w) }) }),
  },
  "PATCH /v1/documents/{id}": {
    runs: 220,
    build: (c, w) => request(c, w, "PATCH", documentPath(c, w), { body: patchBody(w) }),
  },
  "GET /v1/stats": { runs: 60, build: (c, w) => request(c, w, "GET", "/v1/stats", { query: query(w, {}) }) },
  "POST /v1/search": { runs: 330, build: (c, w) => request(c, w, "POST", "/v1/search", { body: searchBody(c, w) }) },
  "POST /v1/chat": { runs: 240, build: (c, w) => request(c, w, "POST", "/v1/chat", { body: chatBody(c, w) }) },
  "GET /v1/conversations": {
    runs: 120,
    build: (c, w) =>
      request(c, w, "GET", "/v1/conversations", {
        query: query(w, { limit: limit(w), cursor: either(w, fc.constantFrom(...c.conversationCursors), cursorText) }),
      }),
  },
  "GET /v1/conversations/{id}": { runs: 120, build: (c, w) => request(c, w, "GET", conversationPath(c, w)) },
  "POST /api/ingest": {
    runs: 150,
    build: (c, w) => request(c, w, "POST", "/api/ingest", { body: compatIngestBody(c, w) }),
  },
  "POST /api/chat": { runs: 150, build: (c, w) => request(c, w, "POST", "/api/chat", { body: chatBody(c, w) }) },
  "POST /mcp": {
    runs: 150,
    build: (c, w) =>
      request(c, w, "POST", "/mcp", { body: mcpBody(c, w) }).map((r) => ({
        ...r,
        headers: { accept: "application/json, text/event-stream", ...r.headers },
      })),
  },
  "POST /v1/documents/{id}/restore": {
    runs: 80,
    build: (c, w) =>
      request(
        c,
        w,
        "POST",
        documentPath(c, w).map((path) => `${path}/restore`),
      ),
  },
  // Deletes last: they remove what the other routes aim at.
  "DELETE /v1/documents/{id}": {
    runs: 120,
    build: (c, w) => request(c, w, "DELETE", documentPath(c, w), { query: query(w, { hard: flag(w) }) }),
  },
  "DELETE /v1/conversations/{id}": { runs: 80, build: (c, w) => request(c, w, "DELETE", conversationPath(c, w)) },
};

/** A route's requests: clean and wild, half and half. */
export const requestsFor = (build: Build, c: Ctx): Arb<EventInput> => fc.oneof(build(c, false), build(c, true));

/** Requests no route serves: unknown paths, wrong methods. */
export const strays = (c: Ctx): Arb<EventInput> =>
  fc.record({
    method: fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "get"),
    path: fc.oneof(
      fc.constantFrom(
        "/",
        "/v1",
        "/v1/",
        "/v1/documents/",
        "/v1/documents/a/b",
        "/V1/health",
        "/v1/health/",
        "/api",
        "//v1/health",
        "/v1/ingest",
        "/v1/openapi.json",
        "/v1/search",
        "/v1/conversations/x/y",
      ),
      hostileString.map((s) => `/v1/${s}`),
    ),
    headers: headers(c, true),
    rawBody: fc.option(anyJson, { nil: undefined }),
  });
