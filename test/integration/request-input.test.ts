/**
 * Inputs a black-box pass found read loosely, through the real chain (the Lambda handler and the local server):
 * page sizes only as decimal digits, a query parameter given twice, lengths counted in characters (code points),
 * and an ingested `ttlSeconds: null`.
 */
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FunctionName, match } from "../../core/api/routes";
import type { TestDb } from "../../kit/db";
import { apiEvent, invoke, lambdaContext, load } from "../../kit/events";
import { multipart, multipartType } from "../../kit/multipart";
import { type Served, served } from "../../kit/served";

const PAGE_LIMIT = "limit must be a whole number from 1 to 100";
const EMOJI = "\u{1F600}"; // one character, two UTF-16 units

let t: TestDb;
let key: string;
let server: Served["server"];

beforeAll(async () => {
  ({ t, key, server } = await served("acme"));
});
afterAll(async () => {
  await server?.close();
  await t?.close();
});

const auth = () => ({ authorization: `Bearer ${key}` });
const ingest = (documents: unknown[], path = "/v1/ingest") =>
  invoke({ method: "POST", path, headers: auth(), body: { documents } });

/**
 * Sends a query string to the Lambda handler as API Gateway v2 does: `rawQueryString` as given, and
 * `queryStringParameters` decoded, a repeated name's values joined with commas.
 */
async function viaGateway(method: string, path: string, rawQuery: string) {
  const joined: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(rawQuery)) {
    joined[name] = name in joined ? `${joined[name]},${value}` : value;
  }
  const event: APIGatewayProxyEventV2 = {
    ...apiEvent({ method, path, headers: auth() }),
    rawQueryString: rawQuery,
    queryStringParameters: joined,
  };
  const found = match(method, path);
  const fn: FunctionName = found.kind === "route" ? found.route.fn : "api";
  const { handler } = await load(fn);
  const result = await handler(event, lambdaContext());
  return { status: result.statusCode ?? 200, body: JSON.parse(result.body || "{}") };
}

/** Through the local server, the query string exactly as written. */
async function viaServer(method: string, pathAndQuery: string) {
  const res = await fetch(`${server.url}${pathAndQuery}`, { method, headers: auth() });
  return { status: res.status, body: await res.json() };
}

describe("a page's limit", () => {
  it.each(["0x5", "1e1", "+5", "%205", "5%20", "1_0", "5.0", "%EF%BC%95"])(
    "refuses limit=%s on both list routes, on the Lambda path and the local server",
    async (limit) => {
      for (const path of ["/v1/documents", "/v1/conversations"]) {
        for (const res of [
          await viaGateway("GET", path, `limit=${limit}`),
          await viaServer("GET", `${path}?limit=${limit}`),
        ]) {
          expect(res.status, `${path} ${limit}`).toBe(400);
          expect(res.body.error.code).toBe("request.invalid");
          expect(res.body.error.message).toContain(PAGE_LIMIT);
        }
      }
    },
  );

  it("takes plain decimal digits, leading zeros included", async () => {
    await ingest([
      { id: "page-a", content: "The first document of the page test." },
      { id: "page-b", content: "The second document of the page test." },
    ]);
    for (const limit of ["1", "01"]) {
      const res = await viaServer("GET", `/v1/documents?limit=${limit}`);
      expect(res.status, limit).toBe(200);
      expect(res.body.documents).toHaveLength(1);
      expect(res.body.nextCursor).toEqual(expect.any(String));
    }
    expect((await viaServer("GET", "/v1/documents?limit=100")).status).toBe(200);
  });
});

describe("a query parameter given twice", () => {
  const cases = [
    ["GET", "/v1/documents", "limit=5&limit=6", "limit"],
    ["GET", "/v1/documents", "includeDeleted=true&limit=5&includeDeleted=true", "includeDeleted"],
    ["GET", "/v1/documents/twice", "scope=user&scope=shared", "scope"],
    ["GET", "/v1/documents/twice", "track=false&track=false", "track"],
    ["DELETE", "/v1/documents/twice", "hard=true&hard=false", "hard"],
    ["GET", "/v1/conversations", "limit=5&limit=5", "limit"],
  ] as const;

  it.each(cases)("%s %s?%s is 400, naming the parameter, on the Lambda path", async (method, path, query, name) => {
    await ingest([{ id: "twice", content: "A document no refused request may touch." }]);
    const res = await viaGateway(method, path, query);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({
      code: "request.invalid",
      message: `${name} is given more than once; send each query parameter once.`,
      details: [{ path: name, message: `${name} is given more than once` }],
    });
  });

  it.each(cases)("%s %s?%s is 400, naming the parameter, on the local server", async (method, path, query, name) => {
    const res = await viaServer(method, `${path}?${query}`);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("request.invalid");
    expect(res.body.error.message).toBe(`${name} is given more than once; send each query parameter once.`);
  });

  it("deletes nothing when hard is given twice", async () => {
    await ingest([{ id: "kept", content: "Still here after a doubled delete." }]);
    expect((await viaServer("DELETE", "/v1/documents/kept?hard=true&hard=true")).status).toBe(400);
    expect((await viaServer("GET", "/v1/documents/kept?track=false")).status).toBe(200);
  });

  it("names every repeated parameter, encoded or not", async () => {
    const res = await viaServer("GET", "/v1/documents?limit=5&cursor=a&%6Cimit=6&cursor=b");
    expect(res.status).toBe(400);
    expect(res.body.error.message).toBe("limit and cursor are given more than once; send each query parameter once.");
  });

  it("leaves a repeated name the route does not take to be refused as unknown", async () => {
    const res = await viaServer("GET", "/v1/documents?lmit=5&lmit=6");
    expect(res.status).toBe(400);
    expect(res.body.error.message).toContain('Unrecognized key: "lmit"');
  });

  it("is ignored, as any query parameter is, by a route that takes none", async () => {
    expect((await viaGateway("GET", "/v1/stats", "x=1&x=2")).status).toBe(200);
    expect((await viaServer("GET", "/v1/stats?x=1&x=2")).status).toBe(200);
  });
});

describe("a body sent to a route that takes none", () => {
  it("is refused, naming the query parameters, where it had been ignored: a DELETE with {hard: true} soft-deleted", async () => {
    await ingest([{ id: "body-delete", content: "Still here after a delete whose option was in the body." }]);
    const res = await invoke({
      method: "DELETE",
      path: "/v1/documents/body-delete",
      headers: auth(),
      body: { hard: true },
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({
      code: "request.unexpected_body",
      message: "This route takes no request body; send its options as query parameters (hard).",
    });
    expect((await viaServer("GET", "/v1/documents/body-delete?track=false")).status).toBe(200);
  });

  it("is taken when it says nothing, as clients that send {} with every request do", async () => {
    await ingest([{ id: "empty-body", content: "Deleted by a request with an empty JSON object." }]);
    const res = await invoke({ method: "DELETE", path: "/v1/documents/empty-body", headers: auth(), body: {} });
    expect(res.status).toBe(200);
    expect((await invoke({ method: "GET", path: "/v1/stats", headers: auth(), body: null })).status).toBe(200);
  });
});

describe("lengths in characters", () => {
  it("counts an emoji in a chat message as one character", async () => {
    await ingest([{ id: "smiles", content: "Smiles are answered in the customer's own words." }]);
    const at = await invoke({
      method: "POST",
      path: "/v1/chat",
      headers: auth(),
      body: { messages: [{ role: "user", content: EMOJI.repeat(32_000) }] },
    });
    expect(at.status).toBe(200);
    const over = await invoke({
      method: "POST",
      path: "/v1/chat",
      headers: auth(),
      body: { messages: [{ role: "user", content: EMOJI.repeat(32_001) }] },
    });
    expect(over.status).toBe(413);
    expect(over.body.error).toMatchObject({
      code: "chat.message_too_long",
      message: "a message is 32001 characters; the limit is 32000",
    });
  });

  it("counts an emoji in a document's content as one character", async () => {
    const over = await ingest([{ id: "too-many-smiles", content: EMOJI.repeat(1_000_001) }]);
    expect(over.status).toBe(413);
    expect(over.body.error).toMatchObject({
      code: "document.too_large",
      message: "content is 1000001 characters; the limit is 1000000",
    });
  });

  it("counts a search query's characters the same way", async () => {
    const search = (query: string) =>
      invoke({ method: "POST", path: "/v1/search", headers: auth(), body: { query, mode: "keyword" } });
    expect((await search(EMOJI.repeat(2000))).status).toBe(200);
    const over = await search(EMOJI.repeat(2001));
    expect(over.status).toBe(400);
    expect(over.body.error.message).toBe(
      "Invalid request at query: the query is 2001 characters; the limit is 2000: search with its key words",
    );
  });

  it("counts ids and titles the same way", async () => {
    const id = EMOJI.repeat(256);
    const res = await ingest([{ id, title: EMOJI.repeat(1000), content: "An emoji-named document." }]);
    expect(res.status).toBe(200);
    expect(res.body.documents).toEqual([expect.objectContaining({ id, status: "created" })]);
    const long = await ingest([{ id: EMOJI.repeat(257), content: "One character too many." }]);
    expect(long.status).toBe(400);
    expect(long.body.error.message).toBe(
      "Invalid request at documents.0.id: Too big: expected string to have <=256 characters",
    );
  });
});

describe("an ingested ttlSeconds of null", () => {
  const expiresAt = async (id: string) =>
    (await invoke({ method: "GET", path: `/v1/documents/${id}`, headers: auth(), query: { track: "false" } })).body
      .expiresAt;

  it("is no expiry on POST /v1/ingest, as leaving it out is", async () => {
    const doc = { id: "forever", content: "A memory that should outlast its first TTL." };
    expect((await ingest([{ ...doc, ttlSeconds: 3600 }])).status).toBe(200);
    expect(await expiresAt("forever")).not.toBeNull();
    const cleared = await ingest([{ ...doc, ttlSeconds: null }]);
    expect(cleared.status).toBe(200);
    expect(cleared.body.documents[0].status).toBe("updated");
    expect(await expiresAt("forever")).toBeNull();
    // The same as leaving it out: sent again either way, nothing changes.
    expect((await ingest([{ ...doc, ttlSeconds: null }])).body.documents[0].status).toBe("unchanged");
    expect((await ingest([doc])).body.documents[0].status).toBe("unchanged");
  });

  it("is no expiry on POST /api/ingest", async () => {
    const res = await ingest(
      [{ id: "twin-forever", content: "The Digital Twin's permanent memory.", ttlSeconds: null }],
      "/api/ingest",
    );
    expect(res.status).toBe(200);
    expect(await expiresAt("twin-forever")).toBeNull();
  });

  it("is still refused where a TTL is out of range", async () => {
    const res = await ingest([{ id: "never-stored", content: "Zero seconds is no TTL.", ttlSeconds: 0 }]);
    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([expect.objectContaining({ path: "documents.0.ttlSeconds" })]);
  });

  it("has the upload form's equivalent in an empty ttlSeconds field", async () => {
    const res = await invoke({
      method: "POST",
      path: "/v1/documents/upload",
      headers: { ...auth(), "content-type": multipartType() },
      binaryBody: multipart([
        { name: "file", value: "Uploaded notes that never expire.", filename: "notes.txt" },
        { name: "ttlSeconds", value: "" },
      ]),
    });
    expect(res.status).toBe(200);
    expect(await expiresAt("notes.txt")).toBeNull();
  });
});

describe("a chat body's unknown fields", () => {
  const chat = (body: unknown, path = "/v1/chat") => invoke({ method: "POST", path, headers: auth(), body });
  const conversations = async () =>
    (await invoke({ method: "GET", path: "/v1/conversations", headers: auth() })).body.conversations.length;

  it.each([
    ["a misspelt conversationId", { conversationID: "support-1" }, "conversationID"],
    ["a misspelt remember", { Remember: true }, "Remember"],
    ["a field /v1/chat does not take", { temperature: 0.2 }, "temperature"],
  ])("refuses %s on /v1/chat, naming it, and starts no conversation", async (_name, extra, field) => {
    const before = await conversations();
    const res = await chat({ messages: [{ role: "user", content: "What is the refund window?" }], ...extra });
    expect([res.status, res.body.error?.code]).toEqual([400, "request.invalid"]);
    expect(res.body.error.message).toContain(field);
    expect(await conversations()).toBe(before);
  });

  it("refuses an unknown field on a message", async () => {
    const res = await chat({ messages: [{ role: "user", content: "Refunds?", name: "bob" }] });
    expect([res.status, res.body.error?.code]).toEqual([400, "request.invalid"]);
    expect(res.body.error.message).toContain("name");
  });

  it("ignores them on /api/chat, as the Digital Twin API did", async () => {
    const res = await chat(
      { messages: [{ role: "user", content: "Refunds?", id: "m1", timestamp: 1 }], sessionId: "s" },
      "/api/chat",
    );
    expect(res.status).toBe(200);
  });
});

describe("a __proto__ key", () => {
  // As JSON text, the way a client sends it: in a JavaScript literal, __proto__ would set the prototype already.
  it.each([
    [
      "in a document's metadata",
      "/v1/ingest",
      '{"documents":[{"id":"proto","content":"x","metadata":{"__proto__":{"x":1},"a":1}}]}',
      "documents.0.metadata.__proto__",
    ],
    [
      "in a search's metadata filter",
      "/v1/search",
      '{"query":"refund","filter":{"metadata":{"__proto__":{"nomatch":true}}}}',
      "filter.metadata.__proto__",
    ],
  ])("is refused %s, naming where, not dropped", async (_name, path, body, at) => {
    const res = await fetch(`${server.url}${path}`, {
      method: "POST",
      headers: { ...auth(), "content-type": "application/json" },
      body,
    });
    const answer = await res.json();
    expect([res.status, answer.error?.code]).toEqual([400, "request.invalid"]);
    expect(answer.error.details).toEqual([expect.objectContaining({ path: at })]);
  });

  it("is data like any other in a string", async () => {
    const res = await ingest([{ id: "proto-text", content: 'The key "__proto__" is special in JavaScript.' }]);
    expect(res.status).toBe(200);
  });
});
