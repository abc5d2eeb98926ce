import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, EngramApiError, type EngramClient } from "../../client";
import * as OpenApi from "../../core/api/openapi";
import { match, routeKey, routes } from "../../core/api/routes";
import type { TestDb } from "../../kit/db";
import { type Served, served } from "../../kit/served";
import { examples } from "../../scripts/api-docs";

let t: TestDb;
let server: Served["server"];
let key: string;
let engram: EngramClient;

interface Seen {
  route: string;
  status: number;
  type: string;
  body: unknown;
}
const seen: Seen[] = [];

/** fetch, recording every answer with the route it matched. */
const recording: typeof fetch = async (input, init) => {
  const response = await fetch(input, init);
  const url = new URL(String(input));
  const found = match(init?.method ?? "GET", url.pathname);
  const type = response.headers.get("content-type") ?? "";
  const text = await response.clone().text();
  seen.push({
    route: found.kind === "route" ? routeKey(found.route) : "?",
    status: response.status,
    type,
    body: type.startsWith("application/json") ? JSON.parse(text) : text,
  });
  return response;
};

beforeAll(async () => {
  ({ t, key, server } = await served("client"));
  engram = createClient({ baseUrl: server.url, apiKey: key, fetch: recording });
});
afterAll(async () => {
  await server?.close();
  await t?.close();
});

describe("engram/client against the local server", () => {
  it("calls every route with typed requests and answers", async () => {
    expect((await engram.health()).database).toBe("ok");
    expect((await engram.openapi()).openapi).toBe("3.1.0");
    const ingested = await engram.ingest({
      documents: [
        {
          id: "refunds",
          title: "Refunds",
          content: "Refunds are issued within 14 days.",
          metadata: { team: ["support"] },
        },
        { id: "hours", content: "We are open 9 to 5 on weekdays.", conversationId: "c-1" },
      ],
    });
    expect(ingested.documents.map((d) => d.status)).toEqual(["created", "created"]);
    expect((await engram.documents.list({ limit: 1 })).nextCursor).not.toBeNull();
    expect((await engram.documents.get("refunds", { track: false })).content).toContain("14 days");
    const patched = await engram.documents.update("refunds", { importance: 9, ttlSeconds: null });
    expect(patched).toMatchObject({ importance: 9, status: "updated" });
    expect((await engram.stats()).documents.total).toBe(2);
    const found = await engram.search({ query: "refund window", topK: 1, filter: { metadata: { team: ["support"] } } });
    expect(found.results[0]?.documentId).toBe("refunds");
    const answer = await engram.chat({ messages: [{ role: "user", content: "How long do refunds take?" }] });
    expect(answer.citations[0]?.documentId).toBe("refunds");
    const events = [];
    for await (const event of engram.chatStream({
      messages: [{ role: "user", content: "When are you open?" }],
      conversationId: answer.conversationId,
    }))
      events.push(event);
    expect(events.map((e) => e.event)).toEqual(["citations", ...events.slice(1, -1).map(() => "delta"), "done"]);
    const conversations = await engram.conversations.list();
    expect(conversations.conversations[0]?.id).toBe(answer.conversationId);
    expect((await engram.conversations.get(answer.conversationId)).messages).toHaveLength(4);
    expect(await engram.conversations.delete(answer.conversationId)).toMatchObject({ deleted: true });
    // A `format` slipped past the types (plain JavaScript) still gives Engram's own events, which the type promises.
    const untyped = { messages: [{ role: "user", content: "When are you open?" }], format: "ui-message-stream" };
    const kinds = [];
    for await (const event of engram.chatStream(untyped as never)) kinds.push(event.event);
    expect(kinds[0]).toBe("citations");
    expect(kinds.at(-1)).toBe("done");
    expect((await engram.compat.ingest({ documents: [{ id: "x", content: "Compat text." }] })).success).toBe(true);
    expect((await engram.compat.chat({ messages: [{ role: "user", content: "Compat?" }] })).success).toBe(true);
    expect(await engram.documents.delete("refunds", { hard: true })).toMatchObject({ id: "refunds", deleted: true });
  });

  it("calls every route by its key through call(), with its docs example", async () => {
    const own = createClient({ baseUrl: server.url, apiKey: key, userId: "examples", fetch: recording });
    for (const { route, example, derived } of examples()) {
      const [path = "", search = ""] = example.path.split("?");
      const found = match(route.method, path);
      const form = example.form && new FormData();
      for (const [name, value] of Object.entries(example.form ?? {})) {
        if (!value.startsWith("@")) form?.set(name, value);
        else form?.set(name, new Blob([readFileSync(join(import.meta.dirname, "../..", value.slice(1)))]), value);
      }
      const input = {
        params: found.kind === "route" ? found.params : {},
        query: Object.fromEntries(new URLSearchParams(search)),
        ...(example.body === undefined ? {} : { body: example.body }),
        ...(form ? { form } : {}),
      };
      // The input is typed per route; here it comes from the example, checked against the schemas elsewhere.
      const answer = await own
        .call(route.key, input as never, { headers: example.headers })
        .catch((error: EngramApiError) => (derived && error.status === 404 ? {} : Promise.reject(error)));
      expect(typeof answer, route.key).toBe("object");
    }
  });

  it("throws typed errors carrying the API's code", async () => {
    const missing = await engram.documents.get("nope").catch((e) => e);
    expect(missing).toBeInstanceOf(EngramApiError);
    expect(missing).toMatchObject({ status: 404, code: "document.not_found" });
    await expect(engram.search({ query: "" })).rejects.toMatchObject({ status: 400, code: "request.invalid" });
    // An empty filter is the API's to refuse: left out, it would have listed every document.
    await expect(engram.documents.list({ conversationId: "" })).rejects.toMatchObject({
      status: 400,
      code: "request.invalid",
    });
    await expect(engram.chat({ messages: [] })).rejects.toMatchObject({ code: "chat.no_messages" });
    // Typed as required; left out all the same (plain JavaScript), the API's own code for it.
    await expect(engram.chat({} as never)).rejects.toMatchObject({ status: 400, code: "chat.no_messages" });
    await expect(
      engram.chat({ messages: [{ role: "user", content: "x" }], conversationId: "nope" }),
    ).rejects.toMatchObject({
      status: 404,
    });
    const anonymous = createClient({ baseUrl: server.url, fetch: recording });
    await expect(anonymous.stats()).rejects.toMatchObject({ status: 401, code: "auth.missing_key" });
    const badUser = createClient({ baseUrl: server.url, apiKey: key, userId: "not valid!", fetch: recording });
    await expect(badUser.stats()).rejects.toMatchObject({ status: 400, code: "user.invalid_id" });
  });

  it("health() at a wrong base URL throws the route's 404 instead of resolving with it", async () => {
    const wrong = createClient({ baseUrl: `${server.url}/wrong`, fetch: recording });
    const refused = await wrong.health().catch((e) => e);
    expect(refused).toBeInstanceOf(EngramApiError);
    expect(refused).toMatchObject({ status: 404, code: "route.not_found" });
  });

  it("gives POST /mcp's JSON-RPC refusals a code that is text: the API's when they carry one", async () => {
    const list = { jsonrpc: "2.0", id: 1, method: "tools/list" } as const;
    await expect(engram.call("POST /mcp", { body: list }, { accept: "text/html" })).rejects.toMatchObject({
      status: 406,
      code: "jsonrpc.-32000",
    });
    // A `__proto__` key survives JSON.parse as a key of its own, and is refused as on every route.
    const proto = JSON.parse('{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"__proto__":{}}}');
    await expect(engram.call("POST /mcp", { body: proto })).rejects.toMatchObject({
      status: 400,
      code: "request.invalid",
    });
    // JSON-RPC 1.0: no message the contract types, refused with a bare JSON-RPC code.
    await expect(engram.call("POST /mcp", { body: { ...list, jsonrpc: "1.0" } as never })).rejects.toMatchObject({
      status: 400,
      code: "jsonrpc.-32600",
    });
    // Answered with 200, as JSON-RPC errors to a well-formed request are: thrown all the same.
    const unknownTool = {
      jsonrpc: "2.0",
      id: 4,
      method: "tools/call",
      params: { name: "nope", arguments: {} },
    } as const;
    await expect(engram.call("POST /mcp", { body: unknownTool })).rejects.toMatchObject({
      status: 200,
      code: "jsonrpc.-32602",
      message: expect.stringMatching(/^Unknown tool nope/),
    });
  });

  it("calls POST /mcp with the Accept it requires: a request, a batch answered member by member, a notification", async () => {
    const list = (id: number) => ({ jsonrpc: "2.0", id, method: "tools/list" }) as const;
    const notification = { jsonrpc: "2.0", method: "notifications/initialized" } as const;
    expect((await engram.call("POST /mcp", { body: list(1) })).result?.tools).toHaveLength(5);
    const batch = await engram.call("POST /mcp", { body: [list(2), notification, { ...list(3), method: "nope" }] });
    expect(batch?.map((answer) => [answer.id, answer.error?.code ?? "result"])).toEqual([
      [2, "result"],
      [3, -32601],
    ]);
    expect(await engram.call("POST /mcp", { body: notification })).toBeUndefined();
    expect(await engram.call("POST /mcp", { body: [notification] })).toBeUndefined();
  });

  it("reaches the MCP endpoint through send()", async () => {
    const mcp = (body: object) =>
      engram.send("POST", "/mcp", { body, accept: "application/json, text/event-stream" }).then((r) => r.json());
    const listed = await mcp({ jsonrpc: "2.0", id: 1, method: "tools/list" });
    expect(listed.result.tools).toHaveLength(5);
    const called = await mcp({
      jsonrpc: "2.0",
      id: 2,
      method: "tools/call",
      params: { name: "search_memory", arguments: { query: "refund" } },
    });
    expect(called.result.structuredContent.mode).toBe("hybrid");
    await engram
      .send("POST", "/mcp", { body: { jsonrpc: "2.0", method: "notifications/initialized" } })
      .catch(() => {});
    await engram
      .send("POST", "/mcp", { body: { jsonrpc: "2.0", id: 3, method: "tools/list" }, accept: "text/html" })
      .catch((error) => expect(error.status).toBe(406));
  });

  it("scopes to the end user it names", async () => {
    const alice = createClient({ baseUrl: server.url, apiKey: key, userId: "alice", fetch: recording });
    const bob = createClient({ baseUrl: server.url, apiKey: key, userId: "bob", fetch: recording });
    await alice.ingest({ documents: [{ id: "diary", content: "Alice's private diary entry about tulips." }] });
    expect((await alice.search({ query: "tulips", scope: "user" })).results).toHaveLength(1);
    expect((await bob.search({ query: "tulips", scope: "user" })).results).toHaveLength(0);
    await expect(bob.documents.get("diary")).rejects.toMatchObject({ status: 404 });
  });

  it("uploads a file as multipart/form-data and reads the refusal of a scan", async () => {
    const engram = createClient({ baseUrl: server.url, apiKey: key, fetch: recording });
    const fixture = (name: string) =>
      new File([readFileSync(join(import.meta.dirname, "../fixtures/extract", name))], name);
    const uploaded = await engram.documents.upload(fixture("handbook.docx"), {
      metadata: { team: "hr" },
      importance: 6,
    });
    expect(uploaded).toMatchObject({
      documents: [{ id: "handbook.docx", status: "created" }],
      file: { format: "docx" },
    });
    expect((await engram.documents.get("handbook.docx")).metadata).toEqual({ team: "hr" });
    await expect(engram.documents.upload(fixture("scanned.pdf"))).rejects.toMatchObject({
      status: 422,
      code: "extract.no_text",
    });

    // Blobs without a name: each its own document, its id derived from its content, as /v1/ingest derives it.
    const first = await engram.documents.upload(new Blob(["Nameless note one: the boiler is serviced in May."]));
    const second = await engram.documents.upload(new Blob(["Nameless note two: the roof was fixed in June."]));
    const again = await engram.documents.upload(new Blob(["Nameless note one: the boiler is serviced in May."]));
    expect(first.documents[0]).toMatchObject({ id: expect.stringMatching(/^doc_/), status: "created" });
    expect(second.documents[0]).toMatchObject({ id: expect.stringMatching(/^doc_/), status: "created" });
    expect(second.documents[0]?.id).not.toBe(first.documents[0]?.id);
    expect(again.documents[0]).toEqual({ ...first.documents[0], status: "unchanged" });
    expect((await engram.documents.get(first.documents[0]?.id ?? "")).source).toBeNull();
  });
});

describe("the OpenAPI document", () => {
  it("describes every answer the routes gave, status and body", () => {
    const doc = OpenApi.document() as {
      paths: Record<string, Record<string, { responses: Record<string, Response> }>>;
    };
    interface Response {
      content?: Record<string, { schema?: unknown }>;
      "x-events"?: Record<string, unknown>;
    }
    const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
    ajv.addSchema({ ...doc, $id: "engram" });
    const failures: string[] = [];
    for (const answer of seen) {
      const route = routes.find((r) => routeKey(r) === answer.route);
      if (!route) continue;
      const responses = doc.paths[route.path]?.[route.method.toLowerCase()]?.responses ?? {};
      const documented = responses[String(answer.status)];
      if (!documented) {
        failures.push(`${answer.route} ${answer.status}: not documented`);
        continue;
      }
      const mediaType = answer.type.split(";")[0] ?? "";
      if (mediaType === "text/event-stream") {
        for (const [, name, data] of String(answer.body).matchAll(/^event: (\w+)\ndata: (.*)$/gm)) {
          const schema = documented["x-events"]?.[name ?? ""];
          if (!schema) failures.push(`${answer.route} event ${name}: not documented`);
          else if (!ajv.validate(schema as object, JSON.parse(data ?? "null"))) {
            failures.push(`${answer.route} event ${name}: ${ajv.errorsText(ajv.errors)}`);
          }
        }
        continue;
      }
      if (answer.status === 202 && !answer.body) continue;
      if (!documented.content?.[mediaType]) {
        failures.push(`${answer.route} ${answer.status}: ${mediaType} not documented`);
        continue;
      }
      if (mediaType !== "application/json") continue;
      if (!documented.content[mediaType]?.schema) {
        failures.push(`${answer.route} ${answer.status}: no schema`);
        continue;
      }
      const pointer = [
        "paths",
        route.path,
        route.method.toLowerCase(),
        "responses",
        String(answer.status),
        "content",
        mediaType,
        "schema",
      ]
        .map((part) => part.replaceAll("~", "~0").replaceAll("/", "~1"))
        .join("/");
      const validate = ajv.compile({ $ref: `engram#/${pointer}` });
      if (!validate(answer.body)) failures.push(`${answer.route} ${answer.status}: ${ajv.errorsText(validate.errors)}`);
    }
    expect(failures).toEqual([]);
    const covered = new Set(seen.map((s) => s.route));
    expect(routes.map(routeKey).filter((k) => !covered.has(k))).toEqual([]);
  });
});
