/** engram/client without a server: stream parsing, errors, health, opt-in 429 retries, and what its bundle holds. */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { describe, expect, it, vi } from "vitest";
import { type ChatEvent, chatEvents, createClient, EngramApiError } from "../../client";

const bytes = (text: string, size: number) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      const encoded = new TextEncoder().encode(text);
      for (let i = 0; i < encoded.length; i += size) controller.enqueue(encoded.slice(i, i + size));
      controller.close();
    },
  });

async function collect(stream: AsyncIterable<ChatEvent>): Promise<ChatEvent[]> {
  const out: ChatEvent[] = [];
  for await (const event of stream) out.push(event);
  return out;
}

/** A fetch answering each call with the next of `answers`, recording requests. */
function fakeFetch(answers: (() => Response)[]) {
  const calls: { url: string; init: RequestInit | undefined }[] = [];
  const fetch = (async (url: string, init?: RequestInit) => {
    calls.push({ url, init });
    const answer = answers[Math.min(calls.length - 1, answers.length - 1)];
    return answer?.() ?? new Response("{}");
  }) as typeof globalThis.fetch;
  return { fetch, calls };
}

const json =
  (status: number, body: unknown, headers: Record<string, string> = {}) =>
  () =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

describe("chat stream parsing", () => {
  const stream =
    'event: citations\ndata: {"citations":[]}\n\nevent: delta\r\ndata: {"text":"Hi [1]."}\r\n\r\n: keep-alive\n\nevent: done\ndata: {"model":"x"}\n\n';

  it("yields the same typed events however the bytes are split", async () => {
    const whole = await collect(chatEvents(bytes(stream, stream.length)));
    expect(whole.map((e) => e.event)).toEqual(["citations", "delta", "done"]);
    expect(whole[1]).toEqual({ event: "delta", data: { text: "Hi [1]." } });
    for (const size of [1, 2, 3, 7, 13]) expect(await collect(chatEvents(bytes(stream, size)))).toEqual(whole);
  });

  it("drops an event whose blank line never came, and gives an error event its request id", async () => {
    const events = await collect(
      chatEvents(
        bytes('event: error\ndata: {"error":{"code":"chat.failed","message":"m"}}\n\nevent: delta\ndata: {}', 5),
        "r-1",
      ),
    );
    expect(events).toEqual([
      { event: "error", data: { error: { code: "chat.failed", message: "m" }, requestId: "r-1" } },
    ]);
  });
});

describe("chatStream()", () => {
  const sse = (text: string) => () =>
    new Response(bytes(text, 7), {
      status: 200,
      headers: { "content-type": "text/event-stream", "x-request-id": "r-9" },
    });

  it("throws EngramApiError with the error event's code and message when the answer fails part-way", async () => {
    const { fetch } = fakeFetch([
      sse(
        'event: citations\ndata: {"citations":[]}\n\nevent: delta\ndata: {"text":"Refunds take"}\n\n' +
          'event: error\ndata: {"error":{"code":"chat.failed","message":"The model provider failed."}}\n\n',
      ),
    ]);
    const seen: string[] = [];
    const stream = createClient({ baseUrl: "http://x", fetch }).chatStream({
      messages: [{ role: "user", content: "Refunds?" }],
    });
    const error = await (async () => {
      for await (const e of stream) seen.push(e.event === "delta" ? e.data.text : e.event);
    })().catch((e) => e);
    expect(seen).toEqual(["citations", "Refunds take"]);
    expect(error).toBeInstanceOf(EngramApiError);
    expect(error).toMatchObject({
      status: 200,
      code: "chat.failed",
      message: "The model provider failed.",
      requestId: "r-9",
    });
  });
});

describe("errors", () => {
  it("throws EngramApiError with the API's code, message, details and request id", async () => {
    const { fetch } = fakeFetch([
      json(
        400,
        { error: { code: "request.invalid", message: "Invalid request", details: [{ path: "query" }] } },
        { "x-request-id": "r-2" },
      ),
    ]);
    const error = await createClient({ baseUrl: "http://x", apiKey: "k", fetch })
      .search({ query: "q" })
      .catch((e) => e);
    expect(error).toBeInstanceOf(EngramApiError);
    expect(error).toMatchObject({
      status: 400,
      code: "request.invalid",
      message: "Invalid request",
      details: [{ path: "query" }],
      requestId: "r-2",
    });
  });

  it("reports a server it cannot reach as status 0, network.unreachable", async () => {
    const client = createClient({ baseUrl: "http://127.0.0.1:9", apiKey: "k" });
    await expect(client.stats()).rejects.toMatchObject({ status: 0, code: "network.unreachable" });
  });

  it("says in one line that the TLS handshake failed when an https URL names a plain-http server", async () => {
    const server = createServer((_, res) => res.end("{}"));
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    try {
      const base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const error = await createClient({ baseUrl: base, apiKey: "k" })
        .stats()
        .catch((e) => e);
      // OpenSSL's own words ran over two lines: "...:SSL routines:ssl3_get_record:wrong version number:../deps/...".
      expect(error).toMatchObject({
        status: 0,
        code: "network.unreachable",
        message: `TLS handshake with ${base} failed (does it speak plain http?)`,
      });
    } finally {
      await new Promise((done) => server.close(done));
    }
  });

  it("gives a JSON-RPC error (POST /mcp) the API's code it carries, else jsonrpc.<number>: always text", async () => {
    const { fetch } = fakeFetch([
      json(400, {
        jsonrpc: "2.0",
        id: null,
        error: { code: -32700, message: "Parse error: not JSON.", data: { code: "request.invalid_json" } },
      }),
      json(406, { jsonrpc: "2.0", id: null, error: { code: -32000, message: "Not Acceptable: accept both types" } }),
    ]);
    const client = createClient({ baseUrl: "http://x", fetch });
    const body = { jsonrpc: "2.0", id: 1, method: "tools/list" } as const;
    await expect(client.call("POST /mcp", { body })).rejects.toMatchObject({
      status: 400,
      code: "request.invalid_json",
      message: "Parse error: not JSON.",
    });
    await expect(client.call("POST /mcp", { body })).rejects.toMatchObject({
      status: 406,
      code: "jsonrpc.-32000",
      message: "Not Acceptable: accept both types",
    });
  });

  it("throws a JSON-RPC error POST /mcp answers with 200, and resolves a batch's answers and a tool's error result", async () => {
    const unknownTool = { jsonrpc: "2.0", id: 1, error: { code: -32602, message: "Unknown tool nope" } };
    const coded = {
      jsonrpc: "2.0",
      id: 2,
      error: { code: -32000, message: "m", data: { code: "ratelimit.exceeded" } },
    };
    const toolError = { jsonrpc: "2.0", id: 3, result: { isError: true, content: [] } };
    const { fetch } = fakeFetch([
      json(200, unknownTool, { "x-request-id": "r-7" }),
      json(200, coded),
      json(200, [unknownTool, toolError]),
      json(200, toolError),
    ]);
    const client = createClient({ baseUrl: "http://x", fetch });
    const call = { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "nope", arguments: {} } } as const;
    const refused = await client.call("POST /mcp", { body: call }).catch((e) => e);
    expect(refused).toBeInstanceOf(EngramApiError);
    expect(refused).toMatchObject({
      status: 200,
      code: "jsonrpc.-32602",
      message: "Unknown tool nope",
      requestId: "r-7",
    });
    await expect(client.call("POST /mcp", { body: call })).rejects.toMatchObject({ code: "ratelimit.exceeded" });
    await expect(client.call("POST /mcp", { body: [call] })).resolves.toEqual([unknownTool, toolError]);
    await expect(client.call("POST /mcp", { body: call })).resolves.toEqual(toolError);
  });

  it("is recognised across copies of the client module (engram/ai bundles its own)", async () => {
    vi.resetModules();
    const copy = await import("../../client/index");
    expect(copy.EngramApiError).not.toBe(EngramApiError);
    expect(new copy.EngramApiError(404, "document.not_found", "m")).toBeInstanceOf(EngramApiError);
    expect(new EngramApiError(404, "document.not_found", "m")).toBeInstanceOf(copy.EngramApiError);
    expect(new Error("m")).not.toBeInstanceOf(EngramApiError);
  });

  it("sends the key, the end user, JSON and query values as text", async () => {
    const { fetch, calls } = fakeFetch([json(200, { documents: [], nextCursor: null })]);
    await createClient({ baseUrl: "http://x/", apiKey: "egm_k", userId: "u-1", fetch }).documents.list({
      limit: 5,
      includeDeleted: true,
    });
    expect(calls[0]?.url).toBe("http://x/v1/documents?limit=5&includeDeleted=true");
    expect(calls[0]?.init?.headers).toMatchObject({ authorization: "Bearer egm_k", "x-user-id": "u-1" });
  });

  it("sends an empty query value as given, for the API to refuse, instead of leaving the filter out", async () => {
    const { fetch, calls } = fakeFetch([json(200, { documents: [], nextCursor: null })]);
    const engram = createClient({ baseUrl: "http://x", fetch });
    await engram.documents.list({ conversationId: "" });
    await engram.call("GET /v1/conversations/{id}", { params: { id: "c" }, query: { before: "" } });
    expect(calls.map((c) => c.url)).toEqual([
      "http://x/v1/documents?conversationId=",
      "http://x/v1/conversations/c?before=",
    ]);
  });

  it("refuses an empty userId, which would have sent no X-User-Id and so written to the shared space", async () => {
    const { fetch, calls } = fakeFetch([json(200, { ok: 1 })]);
    expect(() => createClient({ baseUrl: "http://x", userId: "", fetch })).toThrow(
      new TypeError(
        "engram/client: userId is empty, which the API refuses (user.invalid_id): leave it out (or return null) for the tenant's shared space",
      ),
    );
    // Read on every request: refused then, before anything is sent.
    const refused = await createClient({ baseUrl: "http://x", userId: () => "", fetch })
      .ingest({ documents: [{ content: "A secret." }] })
      .catch((e) => e);
    expect(refused).toBeInstanceOf(EngramApiError);
    expect(refused).toMatchObject({ status: 0, code: "user.invalid_id" });
    expect(calls).toEqual([]);
    // null or undefined is the shared space, as leaving it out is.
    await createClient({ baseUrl: "http://x", userId: () => null, fetch }).stats();
    expect(calls[0]?.init?.headers).not.toHaveProperty("x-user-id");
  });

  it("refuses an empty path id before sending it, as it refuses an empty userId: sent, it would name no route", async () => {
    const { fetch, calls } = fakeFetch([json(200, {})]);
    const engram = createClient({ baseUrl: "http://x", apiKey: "egm_k", fetch });
    const attempts: [string, () => Promise<unknown>][] = [
      ["documents.get", () => engram.documents.get("")],
      ["documents.update", () => engram.documents.update("", { importance: 2 })],
      ["documents.delete", () => engram.documents.delete("")],
      ["documents.restore", () => engram.documents.restore("")],
      ["conversations.get", () => engram.conversations.get("")],
      ["conversations.delete", () => engram.conversations.delete("")],
      // A URL drops these segments: /v1/documents/../restore would be POST /v1/restore.
      ["call .", () => engram.call("POST /v1/documents/{id}/restore", { params: { id: "." } })],
      ["call ..", () => engram.call("GET /v1/documents/{id}", { params: { id: ".." } })],
    ];
    for (const [name, attempt] of attempts) {
      const refused = await attempt().catch((e) => e);
      expect(refused, name).toBeInstanceOf(EngramApiError);
      expect(refused, name).toMatchObject({ status: 0, code: "request.invalid" });
    }
    expect(calls).toEqual([]);
    const restore = await engram.documents.restore("").catch((e) => e);
    expect(restore.message).toBe(
      'engram/client: id "" cannot be sent as {id} of POST /v1/documents/{id}/restore: no item has an empty id, nor . or ..',
    );
    // An id that only looks like one of them is a segment like any other.
    await engram.documents.get("...");
    expect(calls.map((c) => c.url)).toEqual(["http://x/v1/documents/..."]);
  });

  it("refuses at creation a baseUrl with no http(s) scheme, which every call would fail as network.unreachable", () => {
    for (const baseUrl of ["localhost:4311", "127.0.0.1:4311", "ftp://x", "api.example.com"]) {
      expect(() => createClient({ baseUrl }), baseUrl).toThrow(TypeError);
    }
    expect(() => createClient({ baseUrl: "localhost:4311" })).toThrow(
      'engram/client: baseUrl "localhost:4311" is not an http(s) URL (write it as http://localhost:4311), nor "" for the page\'s origin',
    );
    for (const baseUrl of ["", "/engram", "http://localhost:4311", "HTTPS://api.example.com/"]) {
      expect(() => createClient({ baseUrl }), baseUrl).not.toThrow();
    }
  });
});

describe("health()", () => {
  const report = {
    status: "degraded",
    database: "unreachable",
    driver: "pg",
    version: "1",
    embedder: { provider: "offline", model: "m", dimensions: 8 },
    chat: { provider: "extractive", model: "extractive" },
  };
  const html = (status: number) => () =>
    new Response("<html>Bad Gateway</html>", { status, headers: { "content-type": "text/html" } });
  const healthOf = (answer: () => Response) =>
    createClient({ baseUrl: "http://x", fetch: fakeFetch([answer]).fetch }).health();

  it("resolves with the report of a 503: the database is unreachable, the service still answers", async () => {
    await expect(healthOf(json(503, report))).resolves.toEqual(report);
  });

  it("throws EngramApiError for an answer that is no health report: an error body, a proxy's page", async () => {
    const notFound = json(404, { error: { code: "route.not_found", message: "No route GET /wrong/v1/health." } });
    await expect(healthOf(notFound)).rejects.toMatchObject({ status: 404, code: "route.not_found" });
    const missing = json(503, { error: { code: "config.missing", message: "m" } });
    await expect(healthOf(missing)).rejects.toMatchObject({ status: 503, code: "config.missing" });
    const gateway = await healthOf(html(502)).catch((e) => e);
    expect(gateway).toBeInstanceOf(EngramApiError);
    expect(gateway).toMatchObject({ status: 502, code: "http.502" });
    await expect(healthOf(html(200))).rejects.toMatchObject({ status: 200, code: "health.unexpected_answer" });
  });

  it("says why it cannot reach the server, as every other call does", async () => {
    const client = createClient({ baseUrl: "http://127.0.0.1:9" });
    const failed = await client.health().catch((e) => e);
    expect(failed).toMatchObject({ status: 0, code: "network.unreachable" });
    expect(failed.message).toBe((await client.stats().catch((e) => e)).message);
    expect(failed.message).toMatch(/^Cannot reach Engram at http:\/\/127\.0\.0\.1:9: \S/);
  });
});

describe("call(routeKey, input)", () => {
  it("sends any route of the contract by its key: path parameters encoded, query as text, body as JSON", async () => {
    const { fetch, calls } = fakeFetch([json(200, { id: "a/b", deleted: true }), json(200, { status: "updated" })]);
    const client = createClient({ baseUrl: "http://x", apiKey: "egm_k", fetch });
    const deleted = await client.call("DELETE /v1/documents/{id}", { params: { id: "a/b" }, query: { hard: true } });
    expect(deleted.deleted).toBe(true);
    await client.call("PATCH /v1/documents/{id}", { params: { id: "r 1" }, body: { importance: 9 } });
    expect(calls.map((c) => `${c.init?.method} ${c.url}`)).toEqual([
      "DELETE http://x/v1/documents/a%2Fb?hard=true",
      "PATCH http://x/v1/documents/r%201",
    ]);
    expect(calls[1]?.init?.body).toBe('{"importance":9}');
  });

  it("answers an empty success with undefined, and a success that is not JSON with EngramApiError", async () => {
    const { fetch } = fakeFetch([
      () => new Response(null, { status: 202 }),
      () => new Response("<html>Welcome to nginx</html>", { status: 200, headers: { "content-type": "text/html" } }),
    ]);
    const client = createClient({ baseUrl: "http://x", apiKey: "egm_k", fetch });
    const notified = await client.call("POST /mcp", { body: { jsonrpc: "2.0", method: "notifications/initialized" } });
    expect(notified).toBeUndefined();
    const error = await client.stats().catch((e) => e);
    expect(error).toBeInstanceOf(EngramApiError);
    expect(error).toMatchObject({ status: 200, code: "response.not_json" });
    expect(error.message).toContain("text/html");
    // A stream asked for and answered with a page: an error, not a stream of no events.
    const page = fakeFetch([
      () => new Response("<html>Welcome</html>", { status: 200, headers: { "content-type": "text/html" } }),
    ]);
    const streamed = createClient({ baseUrl: "http://x", apiKey: "egm_k", fetch: page.fetch }).chatStream({
      messages: [{ role: "user", content: "Hi?" }],
    });
    await expect(collect(streamed)).rejects.toMatchObject({ status: 200, code: "response.not_event_stream" });
  });

  it("sends the Accept a route requires: POST /mcp's two types (Streamable HTTP answers 406 without), else JSON", async () => {
    const { fetch, calls } = fakeFetch([json(200, { jsonrpc: "2.0", id: 1, result: { tools: [] } })]);
    const client = createClient({ baseUrl: "http://x", apiKey: "egm_k", fetch });
    const list = { jsonrpc: "2.0", id: 1, method: "tools/list" } as const;
    await client.call("POST /mcp", { body: list });
    await client.call("POST /mcp", { body: list }, { accept: "application/json" });
    await client.call("GET /v1/stats");
    const accepts = calls.map((c) => (c.init?.headers as Record<string, string> | undefined)?.accept);
    expect(accepts).toEqual(["application/json, text/event-stream", "application/json", "application/json"]);
  });

  it("types POST /mcp's answer by the body sent: a request's response, a batch's array, nothing for notifications", async () => {
    const response = { jsonrpc: "2.0", id: 1, result: { tools: [] } };
    const { fetch } = fakeFetch([
      json(200, response),
      () => new Response(null, { status: 202 }),
      json(200, [response, { ...response, id: 2 }]),
      () => new Response(null, { status: 202 }),
    ]);
    const client = createClient({ baseUrl: "http://x", apiKey: "egm_k", fetch });
    const request = (id: number) => ({ jsonrpc: "2.0", id, method: "tools/list" }) as const;
    const notification = { jsonrpc: "2.0", method: "notifications/initialized" } as const;
    const answered: { id: string | number | null } = await client.call("POST /mcp", { body: request(1) });
    const nothing: undefined = await client.call("POST /mcp", { body: notification });
    const batch: { id: string | number | null }[] = await client.call("POST /mcp", { body: [request(1), request(2)] });
    const notified: undefined = await client.call("POST /mcp", { body: [notification, notification] });
    expect([answered.id, nothing, batch.map((r) => r.id), notified]).toEqual([1, undefined, [1, 2], undefined]);
    const unchecked = [
      // @ts-expect-error: a notification is answered with nothing (202), not a response to read
      async () => (await client.call("POST /mcp", { body: notification })).result,
      // @ts-expect-error: a batch is answered with an array of responses, or nothing when it held only notifications
      async () => (await client.call("POST /mcp", { body: [request(1), notification] })).length,
    ];
    expect(unchecked).toHaveLength(2);
  });

  it("refuses at compile time a key no route has, a missing parameter and a body the route does not take", async () => {
    const { fetch, calls } = fakeFetch([json(200, {})]);
    const client = createClient({ baseUrl: "http://x", fetch });
    const refused = [
      // @ts-expect-error: no route is keyed "GET /v1/stat"
      () => client.call("GET /v1/stat"),
      // @ts-expect-error: the path has an {id}, so params.id is required
      () => client.call("GET /v1/documents/{id}", {}),
      // @ts-expect-error: a search's body needs a query
      () => client.call("POST /v1/search", { body: { topK: 3 } }),
      // @ts-expect-error: the answer is typed from the contract: a stats answer has no `results`
      async () => (await client.call("GET /v1/stats")).results,
    ];
    // A route that takes nothing needs no input.
    expect((await client.call("GET /v1/stats")).chunks).toBeUndefined();
    expect(calls.map((c) => c.url)).toEqual(["http://x/v1/stats"]);
    expect(refused).toHaveLength(4);
  });
});

describe("answers sent back", () => {
  it("writes a document's metadata, or a search hit's, back as it was read: the same JSON type both ways", async () => {
    const document = { id: "refunds", metadata: { team: "support", tags: ["a", 1, null], deep: { n: true } } };
    const { fetch, calls } = fakeFetch([
      json(200, document),
      json(200, { ...document, status: "unchanged" }),
      json(200, { results: [{ documentId: "refunds", metadata: document.metadata }] }),
      json(200, { documents: [] }),
    ]);
    const engram = createClient({ baseUrl: "http://x", fetch });
    const read = await engram.documents.get("refunds");
    await engram.documents.update(read.id, { metadata: read.metadata });
    const found = await engram.search({ query: "refunds" });
    await engram.ingest({ documents: [{ content: "Refunds take 14 days.", metadata: found.results[0]?.metadata }] });
    expect(calls[1]?.init?.body).toBe(JSON.stringify({ metadata: document.metadata }));
    expect(JSON.parse(String(calls[3]?.init?.body)).documents[0].metadata).toEqual(document.metadata);
  });
});

describe("chat", () => {
  it("requires its messages at compile time, as OpenAPI and the docs do, on every way to send a chat", async () => {
    const { fetch, calls } = fakeFetch([json(200, { conversationId: "c", citations: [] })]);
    const engram = createClient({ baseUrl: "http://x", fetch });
    await engram.chat({ messages: [{ role: "user", content: "Refunds?" }], topK: 3 });
    expect(JSON.parse(String(calls[0]?.init?.body))).toEqual({
      messages: [{ role: "user", content: "Refunds?" }],
      topK: 3,
      stream: false,
    });
    const refused = [
      // @ts-expect-error: no messages (the API's 400 chat.no_messages)
      () => engram.chat({}),
      // @ts-expect-error: no messages
      () => engram.chatStream({ topK: 3 }),
      // @ts-expect-error: no messages
      () => engram.compat.chat({ conversationId: "c" }),
      // @ts-expect-error: no messages
      () => engram.call("POST /v1/chat", { body: {} }),
      // @ts-expect-error: no messages
      () => engram.call("POST /api/chat", { body: {} }),
      // @ts-expect-error: a role the API refuses
      () => engram.call("POST /api/chat", { body: { messages: [{ role: "robot", content: "Hi" }] } }),
    ];
    expect(refused).toHaveLength(6);
  });
});

describe("call() on a chat route", () => {
  it("refuses a body that asks for a stream before sending it, naming what reads one, and takes a JSON one", async () => {
    const { fetch, calls } = fakeFetch([json(200, { conversationId: "c", citations: [] })]);
    const engram = createClient({ baseUrl: "http://x", fetch });
    const messages = [{ role: "user", content: "Refunds?" }] as const;
    const events = await engram
      .call("POST /v1/chat", { body: { messages: [...messages], stream: true } as never })
      .catch((e) => e);
    expect(events).toBeInstanceOf(EngramApiError);
    expect(events).toMatchObject({ status: 0, code: "chat.stream_in_call" });
    expect(events.message).toBe(
      'engram/client: call("POST /v1/chat") reads a JSON answer, and stream: true asks for events: chatStream() reads them',
    );
    const ui = { messages: [...messages], format: "ui-message-stream" } as never;
    await expect(engram.call("POST /api/chat", { body: ui })).rejects.toMatchObject({
      status: 0,
      code: "chat.stream_in_call",
      message: expect.stringContaining("engramChatTransport"),
    });
    expect(calls).toEqual([]);
    await engram.call("POST /v1/chat", { body: { messages: [...messages], stream: false } });
    expect(calls).toHaveLength(1);
    const refused = [
      // @ts-expect-error: call() reads JSON; a stream is chatStream()'s to read
      () => engram.call("POST /v1/chat", { body: { messages: [...messages], stream: true } }),
      // @ts-expect-error: the UI message stream is useChat's to read
      () => engram.call("POST /api/chat", { body: { messages: [...messages], format: "ui-message-stream" } }),
    ];
    expect(refused).toHaveLength(2);
  });
});

describe("a stored conversation", () => {
  it("types its messages' citations and usage as the chat's answer gives them", async () => {
    const citation = {
      index: 1,
      documentId: "refunds",
      scope: "shared",
      chunkId: "7",
      title: "Refunds",
      source: null,
      snippet: "Refunds take 14 days.",
      score: 0.8,
      location: { pages: [2, 2] },
    };
    const usage = { promptTokens: 120, completionTokens: 9, embeddingTokens: 4 };
    const answer = { role: "assistant", content: "14 days [1].", citations: [citation], model: "m", usage };
    const { fetch } = fakeFetch([json(200, { id: "conv_1", messages: [answer], olderCursor: null })]);
    const conversation = await createClient({ baseUrl: "http://x", fetch }).conversations.get("conv_1");
    const [stored] = conversation.messages;
    const cited: { documentId: string; scope: "user" | "shared"; pages?: [number, number] }[] = (
      stored?.citations ?? []
    ).map((c) => ({ documentId: c.documentId, scope: c.scope, pages: c.location?.pages }));
    const tokens: number | undefined = stored?.usage?.promptTokens;
    expect(cited).toEqual([{ documentId: "refunds", scope: "shared", pages: [2, 2] }]);
    expect(tokens).toBe(120);
  });
});

describe("paging", () => {
  it("takes back the cursors an answer gave, null on the last page meaning none", async () => {
    const { fetch, calls } = fakeFetch([
      json(200, { documents: [], nextCursor: "c2" }),
      json(200, { documents: [], nextCursor: null }),
      json(200, { documents: [], nextCursor: null }),
      json(200, { conversations: [], nextCursor: null }),
      json(200, { conversations: [], nextCursor: null }),
      json(200, { id: "conv_1", messages: [], olderCursor: null }),
      json(200, { id: "conv_1", messages: [], olderCursor: null }),
      json(200, { documents: [], nextCursor: null }),
    ]);
    const engram = createClient({ baseUrl: "http://x", fetch });
    const first = await engram.documents.list({ limit: 2 });
    const last = await engram.documents.list({ limit: 2, cursor: first.nextCursor });
    await engram.documents.list({ limit: 2, cursor: last.nextCursor });
    const conversations = await engram.conversations.list();
    await engram.conversations.list({ cursor: conversations.nextCursor });
    const conversation = await engram.conversations.get("conv_1");
    await engram.conversations.get("conv_1", { before: conversation.olderCursor });
    await engram.call("GET /v1/documents", { query: { cursor: last.nextCursor } });
    expect(calls.map((c) => c.url)).toEqual([
      "http://x/v1/documents?limit=2",
      "http://x/v1/documents?limit=2&cursor=c2",
      "http://x/v1/documents?limit=2",
      "http://x/v1/conversations",
      "http://x/v1/conversations",
      "http://x/v1/conversations/conv_1",
      "http://x/v1/conversations/conv_1",
      "http://x/v1/documents",
    ]);
    // @ts-expect-error: only a cursor may be null: a null filter left out would list every document
    const refused = () => engram.documents.list({ conversationId: null });
    expect(refused).toBeTypeOf("function");
  });
});

describe("429 retries", () => {
  it("are off unless asked for", async () => {
    const { fetch, calls } = fakeFetch([
      json(429, { error: { code: "ratelimit.exceeded", message: "m" } }, { "retry-after": "0" }),
    ]);
    await expect(createClient({ baseUrl: "http://x", fetch }).stats()).rejects.toMatchObject({
      status: 429,
      retryAfter: 0,
    });
    expect(calls).toHaveLength(1);
  });

  it("wait out Retry-After when asked, then stop after the given number", async () => {
    const limited = json(429, { error: { code: "ratelimit.exceeded", message: "m" } }, { "retry-after": "0" });
    const { fetch, calls } = fakeFetch([limited, limited, json(200, { ok: 1 })]);
    const waits: number[] = [];
    const client = createClient({ baseUrl: "http://x", fetch, retry: { retries: 2, onWait: (s) => waits.push(s) } });
    await expect(client.stats()).resolves.toEqual({ ok: 1 });
    expect(waits).toEqual([0.1, 0.1]);
    const again = fakeFetch([limited]);
    const once = createClient({ baseUrl: "http://x", fetch: again.fetch, retry: { retries: 1 } });
    await expect(once.stats()).rejects.toMatchObject({ code: "ratelimit.exceeded" });
    expect(again.calls).toHaveLength(2);
    expect(calls).toHaveLength(3);
  });

  it("do not wait longer than maxWaitSeconds", async () => {
    const { fetch, calls } = fakeFetch([
      json(429, { error: { code: "ratelimit.exceeded", message: "m" } }, { "retry-after": "3600" }),
    ]);
    const client = createClient({ baseUrl: "http://x", fetch, retry: { retries: 3, maxWaitSeconds: 5 } });
    await expect(client.stats()).rejects.toMatchObject({ retryAfter: 3600 });
    expect(calls).toHaveLength(1);
  });

  it("do not wait on a policy whose quota is 0: no wait would pass it", async () => {
    const shut = json(
      429,
      {
        error: { code: "ratelimit.exceeded", message: "This tenant's chat limit is 0: no chat requests are allowed." },
      },
      { "retry-after": "0", "ratelimit-policy": '"chat";q=0;w=60' },
    );
    const { fetch, calls } = fakeFetch([shut, json(200, { ok: 1 })]);
    const client = createClient({ baseUrl: "http://x", fetch, retry: { retries: 3 } });
    await expect(client.stats()).rejects.toMatchObject({ message: expect.stringContaining("limit is 0") });
    expect(calls).toHaveLength(1);
    // A quota such as 10 still waits.
    const busy = json(
      429,
      { error: { code: "ratelimit.exceeded", message: "m" } },
      {
        "retry-after": "0",
        "ratelimit-policy": '"chat";q=10;w=60',
      },
    );
    const later = fakeFetch([busy, json(200, { ok: 1 })]);
    await expect(
      createClient({ baseUrl: "http://x", fetch: later.fetch, retry: { retries: 3 } }).stats(),
    ).resolves.toEqual({ ok: 1 });
  });
});

describe("the client's bundle", () => {
  it("holds no server code and stays under 15 KB minified", async () => {
    const result = await build({
      entryPoints: [fileURLToPath(new URL("../../client/index.ts", import.meta.url))],
      bundle: true,
      minify: true,
      format: "esm",
      platform: "browser",
      write: false,
      metafile: true,
      logLevel: "silent",
    });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.filter((path) => !/^(client\/|node_modules\/eventsource-parser\/)/.test(path))).toEqual([]);
    expect(result.outputFiles[0]?.contents.byteLength).toBeLessThan(15 * 1024);
  });
});
