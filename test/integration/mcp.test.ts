/**
 * The MCP server as agents reach it: the official SDK's Client over Streamable HTTP (POST /mcp on
 * the local server, through the same chain as every route) and over stdio (`engram mcp`, on the
 * local store and against a remote Engram). Tools, their scoping, and their errors.
 */
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer } from "../../cli/server";
import * as Admission from "../../core/admission";
import { MAX_BODY_BYTES } from "../../core/api/http";
import * as Auth from "../../core/auth";
import { ChatRequest } from "../../core/chat/schema";
import { setConfig } from "../../core/config";
import { useDb } from "../../core/db";
import { Importance, ListQuery, TtlSeconds } from "../../core/document/schema";
import * as RateLimit from "../../core/ratelimit";
import { SearchRequest } from "../../core/search/schema";
import * as z from "../../core/zod";
import { freshDb, type TestDb } from "../../kit/db";

let t: TestDb;
let server: Awaited<ReturnType<typeof startServer>>;
let acme: string;
let globex: string;
const clients: Client[] = [];

beforeAll(async () => {
  setConfig({ EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive", LOG_LEVEL: "silent" });
  t = await freshDb("pg");
  useDb(t.db);
  acme = (await Auth.createKey(t.db, "acme")).key;
  globex = (await Auth.createKey(t.db, "globex")).key;
  server = await startServer({ port: 0 });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  await server?.close();
  await t?.close();
});

async function overHttp(key: string, userId?: string): Promise<Client> {
  const headers: Record<string, string> = { authorization: `Bearer ${key}` };
  if (userId) headers["x-user-id"] = userId;
  const client = new Client({ name: "engram-test", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${server.url}/mcp`), { requestInit: { headers } }));
  clients.push(client);
  return client;
}

/** The environment `engram mcp` runs in: the test database, offline models, and `env`. */
const mcpEnv = (env: Record<string, string>) => ({
  PATH: process.env.PATH ?? "",
  EMBEDDING_PROVIDER: "offline",
  CHAT_PROVIDER: "extractive",
  DATABASE_URL: t.url ?? "",
  ...env,
});

async function overStdio(env: Record<string, string>): Promise<Client> {
  const client = new Client({ name: "engram-test", version: "1.0.0" });
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: ["bin/engram.js", "mcp"],
    env: mcpEnv(env),
    stderr: "pipe",
  });
  await client.connect(transport);
  clients.push(client);
  return client;
}

const NL = Buffer.from("\n");

/**
 * `engram mcp` driven by hand, as a black-box tester does: writes `lines` to stdin and a last `ping`,
 * reads stdout until that ping is answered, then closes stdin; returns every line it wrote as JSON.
 */
async function byHand(lines: (string | Buffer)[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ["bin/engram.js", "mcp"], { env: mcpEnv(env) });
  const exited = new Promise<number | null>((resolve) => child.once("close", resolve));
  child.stdin.write(
    Buffer.concat([...lines, rpc("last", "ping")].map((line) => Buffer.concat([Buffer.from(line), NL]))),
  );
  const replies: any[] = [];
  for await (const line of createInterface({ input: child.stdout })) {
    replies.push(JSON.parse(line));
    if (replies.at(-1).id === "last") child.stdin.end();
  }
  return { replies, exitCode: await exited };
}

/**
 * `printf ... | engram mcp`: an initialize, then `lines`, written and stdin closed at once, without waiting for
 * answers (the last line without its newline unless `newline`); every reply, and the exit code.
 */
async function piped(env: Record<string, string>, lines: string[], newline = true) {
  const child = spawn(process.execPath, ["bin/engram.js", "mcp"], { env: mcpEnv(env) });
  const exited = new Promise<number | null>((resolve) => child.once("close", resolve));
  const all = [
    rpc(1, "initialize", {
      protocolVersion: "2025-06-18",
      capabilities: {},
      clientInfo: { name: "pipe", version: "1" },
    }),
    rpc(undefined, "notifications/initialized"),
    ...lines,
  ].join("\n");
  child.stdin.end(newline ? `${all}\n` : all);
  const replies: any[] = [];
  for await (const line of createInterface({ input: child.stdout })) replies.push(JSON.parse(line));
  return { replies, exitCode: await exited };
}

/** `engram mcp` started with `env` (and `args`) and nothing on stdin: how it exits, and what it wrote. */
async function start(env: Record<string, string>, args: string[] = []) {
  const child = spawn(process.execPath, ["bin/engram.js", "mcp", ...args], { env: mcpEnv(env) });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  const exitCode = await new Promise<number | null>((resolve) => {
    child.once("close", resolve);
    child.stdin.end();
  });
  return { exitCode, stdout, stderr };
}

/** An initialize's params, as a client of MCP 2025-06-18 sends them. */
const INITIALIZE = { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "by-hand", version: "1" } };

const rpc = (id: number | string | undefined, method: string, params?: object) =>
  JSON.stringify({ jsonrpc: "2.0", ...(id === undefined ? {} : { id }), method, ...(params ? { params } : {}) });

/** POSTs `text` to /mcp as it is, JSON or not (bytes as they are, UTF-8 or not). */
const postMcpText = (text: string | Uint8Array<ArrayBuffer>, key: string, userId?: string) =>
  fetch(`${server.url}/mcp`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${key}`,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...(userId ? { "x-user-id": userId } : {}),
    },
    body: text,
  });
const postMcp = (body: unknown, key: string, userId?: string) => postMcpText(JSON.stringify(body), key, userId);

/** A `tools/call` message. */
const toolCall = (id: number, name: string, args: object) => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name, arguments: args },
});

const call = async (client: Client, name: string, args: Record<string, unknown> = {}) =>
  (await client.callTool({ name, arguments: args })) as CallToolResult & { structuredContent?: any };
const textOf = (result: CallToolResult) => result.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");

/** Every tool, in the order an agent would use them; returns what it stored. */
async function exercise(client: Client, tag: string) {
  const stored = await call(client, "remember", {
    content: `The ${tag} office wifi password is tangerine-42.`,
    title: `${tag} wifi`,
    metadata: { topic: "it" },
  });
  expect(stored.isError, textOf(stored)).toBeFalsy();
  const id = stored.structuredContent.documents[0].id as string;
  const found = await call(client, "search_memory", { query: "wifi password", filter: { metadata: { topic: "it" } } });
  expect(found.structuredContent.results[0].documentId).toBe(id);
  expect(textOf(found)).toContain(`id ${id}`);
  const answer = await call(client, "ask", { question: "What is the wifi password?" });
  expect(answer.structuredContent.citations[0].documentId).toBe(id);
  expect(textOf(answer)).toMatch(/\[1\]/);
  const listed = await call(client, "list_memories", {});
  expect(listed.structuredContent.documents.map((d: { id: string }) => d.id)).toContain(id);
  return id;
}

describe("MCP over Streamable HTTP (POST /mcp)", () => {
  it("lists five tools with schemas and annotations written for a model", async () => {
    const client = await overHttp(acme);
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual([
      "ask",
      "forget",
      "list_memories",
      "remember",
      "search_memory",
    ]);
    const byName = Object.fromEntries(tools.map((tool) => [tool.name, tool]));
    expect(byName.search_memory?.annotations?.readOnlyHint).toBe(true);
    expect(byName.list_memories?.annotations?.readOnlyHint).toBe(true);
    expect(byName.forget?.annotations?.destructiveHint).toBe(true);
    expect(byName.remember?.inputSchema.required).toEqual(["content"]);
    for (const tool of tools) expect(tool.description?.length).toBeGreaterThan(40);
    // Readable by every host: no self-referencing $ref, and every pattern compiles without the `u` flag (as hosts
    // compile them; Unicode classes such as \p{Cc} do not), while the tool's own check still applies them.
    const listed = JSON.stringify(tools.map((tool) => tool.inputSchema));
    expect(listed).not.toContain("$ref");
    for (const [, pattern] of listed.matchAll(/"pattern":("(?:[^"\\]|\\.)*")/g)) {
      expect(() => new RegExp(JSON.parse(pattern as string))).not.toThrow();
      expect(new RegExp(JSON.parse(pattern as string)).test("kyoto")).toBe(true);
    }
    expect(byName.search_memory?.inputSchema.properties?.filter).toMatchObject({
      properties: { documentIds: { minItems: 1 }, conversationId: { minLength: 1 } },
    });
  });

  it("lists each number argument with the range the HTTP API's schema gives it, not any safe integer", async () => {
    const { tools } = await (await overHttp(acme)).listTools();
    const byName = Object.fromEntries(tools.map((tool) => [tool.name, tool.inputSchema as any]));
    const range = (schema: z.ZodMiniType) => {
      const { minimum, maximum } = z.toJSONSchema(schema, { io: "input" }) as { minimum: number; maximum: number };
      return { type: "integer", minimum, maximum };
    };
    const listed = {
      "remember importance": byName.remember.properties.importance,
      "remember ttlSeconds": byName.remember.properties.ttlSeconds,
      "search_memory topK": byName.search_memory.properties.topK,
      "search_memory filter.minImportance": byName.search_memory.properties.filter.properties.minImportance,
      "ask topK": byName.ask.properties.topK,
      "ask filter.minImportance": byName.ask.properties.filter.properties.minImportance,
      "list_memories limit": byName.list_memories.properties.limit,
    };
    expect(listed).toEqual({
      "remember importance": expect.objectContaining(range(Importance)),
      // null is also listed: no expiry, as POST /v1/ingest reads it.
      "remember ttlSeconds": expect.objectContaining({
        anyOf: [expect.objectContaining(range(TtlSeconds)), { type: "null" }],
      }),
      "search_memory topK": expect.objectContaining(range(SearchRequest.shape.topK)),
      "search_memory filter.minImportance": expect.objectContaining(range(Importance)),
      "ask topK": expect.objectContaining(range(ChatRequest.shape.topK)),
      "ask filter.minImportance": expect.objectContaining(range(Importance)),
      "list_memories limit": expect.objectContaining(range(ListQuery.shape.limit)),
    });
    expect(JSON.stringify(tools)).not.toContain(String(Number.MAX_SAFE_INTEGER));
    // Text the API bounds is listed with its bound too.
    expect(byName.remember.properties.title).toMatchObject({
      anyOf: [{ type: "string", maxLength: 1000 }, { type: "null" }],
    });
    expect(byName.list_memories.properties.cursor).toMatchObject({ type: "string", maxLength: 200 });
    expect(byName.search_memory.properties.query).toMatchObject({ type: "string", maxLength: 2000 });
  });

  it("remembers, searches, answers with citations, lists and forgets", async () => {
    const client = await overHttp(acme, "alice");
    const id = await exercise(client, "http");
    const forgot = await call(client, "forget", { id, hard: true });
    expect(forgot.structuredContent).toMatchObject({ id, deleted: true });
    expect((await call(client, "search_memory", { query: "wifi password" })).structuredContent.results).toEqual([]);
  });

  it("names where each passage is in its document (pages, headings) in search_memory and ask", async () => {
    const client = await overHttp(acme, "lena");
    const content =
      "# Security\n\nA lost laptop is reported to the security desk within one hour.\fThe desk is on floor two.";
    const stored = await call(client, "remember", { content, title: "Handbook" });
    const id = stored.structuredContent.documents[0].id as string;
    const found = await call(client, "search_memory", { query: "lost laptop security desk" });
    const location = { pages: [1, 2], headings: ["Security"] };
    expect(found.structuredContent.results[0]).toMatchObject({ documentId: id, scope: "user", location });
    expect(textOf(found)).toContain(
      `(id ${id}, user, chunk ${found.structuredContent.results[0].chunkId}, pages 1-2, under Security, score`,
    );
    // Each leg's own score, which says whether the match is real (the fused score only ranks).
    const { vector, keyword } = found.structuredContent.results[0].legs;
    expect(textOf(found)).toContain(`; meaning ${vector.toFixed(3)}, keywords ${keyword.toFixed(3)})`);
    const answer = await call(client, "ask", { question: "Where is a lost laptop reported?" });
    // A citation is located where the sentence it cites is: page 1 of the passage's two.
    const cited = { pages: [1, 1], headings: ["Security"] };
    expect(answer.structuredContent.citations[0]).toMatchObject({ documentId: id, scope: "user", location: cited });
    expect(textOf(answer)).toMatch(/\[1\] Handbook \(id [^,]+, user, page 1, under Security, score/);
  });

  it("scopes every tool to the end user and tenant the request names", async () => {
    const alice = await overHttp(acme, "alice");
    const bob = await overHttp(acme, "bob");
    const other = await overHttp(globex, "alice");
    const id = (await call(alice, "remember", { content: "Alice keeps her spare key under the blue pot." }))
      .structuredContent.documents[0].id;
    for (const client of [bob, other]) {
      expect((await call(client, "search_memory", { query: "spare key blue pot" })).structuredContent.results).toEqual(
        [],
      );
      const answer = await call(client, "ask", { question: "Where is the spare key?" });
      expect(answer.structuredContent.citations).toEqual([]);
      expect(textOf(answer)).not.toContain("blue pot");
      expect(JSON.stringify((await call(client, "list_memories")).structuredContent)).not.toContain(id);
      const forget = await call(client, "forget", { id });
      expect(forget.structuredContent).toMatchObject({ id, deleted: false });
      expect(textOf(forget)).toMatch(/^Nothing to forget/);
    }
    expect(
      (await call(alice, "search_memory", { query: "spare key blue pot" })).structuredContent.results,
    ).toHaveLength(1);
  });

  it("answers wrong or missing arguments and the API's limits as tool errors naming the argument, in one line", async () => {
    const client = await overHttp(acme);
    const missing = await call(client, "search_memory", {});
    expect([missing.isError, textOf(missing)]).toEqual([
      true,
      "request.invalid: Invalid request at query: Invalid input: expected string, received undefined",
    ]);
    const wrong = await call(client, "remember", { content: 42, importance: "high", ttlSeconds: -1 });
    expect([wrong.isError, textOf(wrong)]).toEqual([
      true,
      expect.stringMatching(/^request\.invalid: [^\n]*\bcontent\b/),
    ]);
    const outOfRange = await call(client, "remember", { content: "A fact.", importance: 11 });
    expect(textOf(outOfRange)).toBe(
      "request.invalid: Invalid request at importance: Too big: expected number to be <=10",
    );
    const nested = await call(client, "search_memory", { query: "x", filter: { minImportance: 0 } });
    expect(textOf(nested)).toMatch(/^request\.invalid: Invalid request at filter\.minImportance: Too small/);
    const big = await call(client, "remember", { content: "x".repeat(1_000_001) });
    expect(big.isError).toBe(true);
    expect(textOf(big)).toMatch(/^document\.too_large: content is 1000001 characters; the limit is 1000000/);
    const empty = await call(client, "ask", { question: "   " });
    expect(textOf(empty)).toMatch(/chat\.empty_message/);
    const badId = await call(client, "forget", { id: "" });
    expect(textOf(badId)).toMatch(/request\.invalid.*\bid\b/);
  });

  it("refuses an argument no tool takes, at the top level or in filter, naming it as POST /v1/search does", async () => {
    const client = await overHttp(acme, "ivan");
    const res = await fetch(`${server.url}/v1/search`, {
      method: "POST",
      headers: { authorization: `Bearer ${acme}`, "content-type": "application/json" },
      body: JSON.stringify({ query: "x", filter: { foo: 1 } }),
    });
    const api = (await res.json()).error;
    expect([res.status, api.code]).toEqual([400, "request.invalid"]);
    const refusals = await Promise.all([
      call(client, "search_memory", { query: "x", filter: { foo: 1 } }),
      call(client, "ask", { question: "x?", filter: { documentIds: ["a"], foo: 1 } }),
      call(client, "remember", { content: "hi", bogus: 1 }),
      call(client, "search_memory", { query: "x", topk: 3 }),
      call(client, "list_memories", { limitt: 5 }),
      call(client, "forget", { id: "x", hrad: true }),
    ]);
    expect(refusals.map((r) => [r.isError, textOf(r)])).toEqual([
      [true, `request.invalid: ${api.message}`],
      [true, 'request.invalid: Invalid request at filter: Unrecognized key: "foo"'],
      [true, 'request.invalid: Invalid request: Unrecognized key: "bogus"'],
      [true, 'request.invalid: Invalid request: Unrecognized key: "topk"'],
      [true, 'request.invalid: Invalid request: Unrecognized key: "limitt"'],
      [true, 'request.invalid: Invalid request: Unrecognized key: "hrad"'],
    ]);
    expect(api.message).toBe('Invalid request at filter: Unrecognized key: "foo"');
    expect((await call(client, "list_memories")).structuredContent.documents).toEqual([]);
    // What is refused is what is listed: no other key, in the arguments or their filter.
    const { tools } = await client.listTools();
    for (const tool of tools) expect([tool.name, tool.inputSchema.additionalProperties]).toEqual([tool.name, false]);
    const filters = tools.flatMap((tool) => (tool.inputSchema.properties?.filter as any) ?? []);
    expect(filters.map((filter) => filter.additionalProperties)).toEqual([false, false]);
  });

  it("admits remember as POST /v1/ingest is: refused ingest.busy while the tenant's ingests fill its slots", async () => {
    const { tenantId, tenantName } = await Auth.authenticate(t.db, `Bearer ${acme}`);
    const owner = { tenantId, tenantName, keyPrefix: "test", userId: "", rateLimits: {} };
    const held = [];
    for (let i = 0; i < 4; i++) held.push(await Admission.admitIngest(t.db, owner, 10)); // the default 4 slots
    const client = await overHttp(acme, "ines");
    try {
      const busy = await call(client, "remember", { content: "Ines parks on level two." });
      expect([busy.isError, textOf(busy)]).toEqual([true, expect.stringMatching(/^ingest\.busy: /)]);
    } finally {
      for (const release of held) await release();
    }
    const stored = await call(client, "remember", { content: "Ines parks on level two." });
    expect(stored.isError).toBeFalsy();
  });

  it("remembers with ttlSeconds null as POST /v1/ingest does: no expiry, and still refuses a TTL out of shape", async () => {
    const client = await overHttp(acme, "hana");
    const expiresAt = async (id: string) =>
      (await call(client, "list_memories")).structuredContent.documents.find((d: { id: string }) => d.id === id)
        ?.expiresAt;
    const memory = { id: "umbrella", content: "Hana keeps a spare umbrella in the second drawer." };
    expect((await call(client, "remember", { ...memory, ttlSeconds: 3600 })).isError).toBeFalsy();
    expect(await expiresAt("umbrella")).toEqual(expect.any(String));

    const kept = await call(client, "remember", { ...memory, ttlSeconds: null });
    expect([Boolean(kept.isError), kept.structuredContent?.documents[0].status]).toEqual([false, "updated"]);
    expect(await expiresAt("umbrella")).toBeNull();
    const fresh = await call(client, "remember", { content: "Hana's locker code is 4471.", ttlSeconds: null });
    expect(await expiresAt(fresh.structuredContent.documents[0].id)).toBeNull();

    for (const ttlSeconds of [-1, 1.5, "3600"]) {
      const refused = await call(client, "remember", { content: "Never stored.", ttlSeconds });
      expect([refused.isError, textOf(refused)]).toEqual([
        true,
        expect.stringMatching(/^request\.invalid: Invalid request at ttlSeconds: /),
      ]);
    }
  });

  it("remembers with title and conversationId null as POST /v1/ingest does: none, as if left out", async () => {
    const client = await overHttp(acme, "nils");
    const titled = { id: "bike", content: "Nils locks his bike at the north rack.", title: "Bike" };
    expect((await call(client, "remember", titled)).isError).toBeFalsy();

    const result = await call(client, "remember", { ...titled, title: null, conversationId: null });

    expect([result.isError, textOf(result)]).toEqual([undefined, expect.stringMatching(/^Remembered as id bike /)]);
    const [stored] = (await call(client, "list_memories")).structuredContent.documents;
    expect([stored.id, stored.title, stored.conversationId]).toEqual(["bike", null, null]);
  });

  it("answers a malformed tools/call (no params, arguments not an object, an unknown tool) with -32602 in one sentence", async () => {
    const headers = {
      authorization: `Bearer ${acme}`,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
    };
    const errorOf = async (params?: object) => {
      const res = await fetch(`${server.url}/mcp`, { method: "POST", headers, body: rpc(7, "tools/call", params) });
      return (await res.json()).error;
    };
    expect(await errorOf()).toEqual({
      code: -32602,
      message: "Invalid params for tools/call at params: Invalid input: expected object, received undefined",
    });
    expect(await errorOf({ name: "search_memory", arguments: "wifi" })).toEqual({
      code: -32602,
      message: expect.stringMatching(/^Invalid params for tools\/call at params\.arguments: [^\n]+$/),
    });
    expect(await errorOf({ name: "recall", arguments: {} })).toEqual({
      code: -32602,
      message: expect.stringMatching(
        /^Unknown tool recall; the tools are remember, search_memory, ask, list_memories, forget$/,
      ),
    });
  });

  it("forgets idempotently: forgetting a memory already gone succeeds and says it was not there", async () => {
    const client = await overHttp(acme, "gina");
    const stored = await call(client, "remember", { content: "Gina parks on level three." });
    expect(textOf(stored)).toMatch(/ \(created, 1 chunk\)\.$/);
    const id = stored.structuredContent.documents[0].id as string;
    expect(textOf(await call(client, "list_memories"))).toContain(`(${"Gina parks on level three.".length} characters`);
    expect((await call(client, "forget", { id })).structuredContent).toMatchObject({ id, deleted: true });
    const again = await call(client, "forget", { id });
    expect([Boolean(again.isError), again.structuredContent]).toEqual([false, { id, deleted: false, hard: false }]);
    expect(textOf(again)).toBe(`Nothing to forget: no memory ${id} here (already forgotten, or never stored).`);
    // Other arguments are another call: hard erases the forgotten memory now, and a repeat of that changes nothing.
    expect((await call(client, "forget", { id, hard: true })).structuredContent).toEqual({
      id,
      deleted: true,
      hard: true,
    });
    expect((await call(client, "forget", { id, hard: true })).structuredContent).toEqual({
      id,
      deleted: false,
      hard: true,
    });
  });

  it("forgets nothing of a shared memory for a user, saying it is shared, and keeps it", async () => {
    const tenant = await overHttp(acme);
    const content = "Travel policy: economy class for flights under six hours.";
    const id = (await call(tenant, "remember", { content, id: "travel-policy" })).structuredContent.documents[0].id;
    const zoe = await overHttp(acme, "zoe");
    for (const hard of [false, true]) {
      const kept = await call(zoe, "forget", { id, hard });
      expect([Boolean(kept.isError), kept.structuredContent]).toEqual([
        false,
        { id, deleted: false, hard, shared: true },
      ]);
      expect(textOf(kept)).toMatch(/^Nothing of this user's to forget: travel-policy is a shared memory/);
    }
    const found = await call(zoe, "search_memory", { query: "travel policy economy flights" });
    expect(found.structuredContent.results[0]).toMatchObject({ documentId: id, scope: "shared" });
    // A memory of that id in neither space is still "nothing to forget".
    expect(textOf(await call(zoe, "forget", { id: "no-such-policy" }))).toMatch(/^Nothing to forget/);
  });

  it("spends the tool's own rate class: search_memory is limited like POST /v1/search", async () => {
    await Auth.createKey(t.db, "limited").then(async ({ key }) => {
      await RateLimit.setLimits(t.db, "limited", { search: "1/min" });
      const client = await overHttp(key);
      expect((await call(client, "search_memory", { query: "anything" })).isError).toBeFalsy();
      const refused = await call(client, "search_memory", { query: "anything" });
      expect(textOf(refused)).toMatch(/^ratelimit\.exceeded/);
      expect((await call(client, "list_memories")).isError).toBeFalsy();
    });
  });

  it("makes one rate-limit decision a request: a tool call in its own class only, anything else in default", async () => {
    const { key } = await Auth.createKey(t.db, "one-decision");
    await RateLimit.setLimits(t.db, "one-decision", { default: "3/min", search: "100/min" });
    const client = await overHttp(key); // initialize and notifications/initialized: 2 of default's 3
    for (let i = 0; i < 4; i++) {
      expect((await call(client, "search_memory", { query: `anything ${i}` })).isError).toBeFalsy();
    }
    const res = await fetch(`${server.url}/mcp`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${key}`,
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 9,
        method: "tools/call",
        params: { name: "search_memory", arguments: { query: "anything" } },
      }),
    });
    expect(res.headers.get("ratelimit-policy")).toMatch(/;q=100;/);
    expect((await call(client, "list_memories")).isError).toBeFalsy(); // default's third
    expect(textOf(await call(client, "list_memories"))).toMatch(/^ratelimit\.exceeded/);
    await expect(client.listTools()).rejects.toThrow(/ratelimit\.exceeded/);
  });

  it("runs a batch's tool calls in its order: a forget after a remember forgets it", async () => {
    const { key } = await Auth.createKey(t.db, "ordered-batch");
    const res = await postMcp(
      [
        toolCall(1, "remember", { id: "b1", content: "The spare key is under the blue flowerpot." }),
        toolCall(2, "forget", { id: "b1" }),
        toolCall(3, "list_memories", {}),
      ],
      key,
      "orderly",
    );
    const answers = (await res.json()) as { id: number; result: { structuredContent: object } }[];
    const byId = (id: number) => answers.find((a) => a.id === id)?.result.structuredContent;
    expect(byId(2)).toMatchObject({ id: "b1", deleted: true });
    expect(JSON.stringify(byId(3))).not.toContain("b1");
  });

  it("says a batch's refusal in its headers when some of its calls were admitted before it", async () => {
    const { key } = await Auth.createKey(t.db, "paced-batch");
    await RateLimit.setLimits(t.db, "paced-batch", { default: "3/min", search: "3/min" });
    for (const name of ["list_memories", "search_memory"]) {
      const args = name === "search_memory" ? { query: "anything" } : {};
      const res = await postMcp(
        Array.from({ length: 6 }, (_, i) => toolCall(i + 1, name, args)),
        key,
        `batch-${name}`,
      );
      const answers = (await res.json()) as { result: { isError?: boolean } }[];

      // A batch's calls run in its order: the first three are admitted, the last three refused.
      expect(answers.map((a) => a.result.isError === true)).toEqual([false, false, false, true, true, true]);
      expect(res.headers.get("ratelimit")).toMatch(/;r=0;t=\d+$/);
      expect(res.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
    }
  });

  it("answers a batch's later tool calls by their own limits when its first was refused", async () => {
    const { key } = await Auth.createKey(t.db, "refused-first");
    await RateLimit.setLimits(t.db, "refused-first", { search: "3/min" });
    const search = (id: number) => toolCall(id, "search_memory", { query: "anything" });
    for (let i = 0; i < 3; i++) expect((await postMcp(search(1), key, "q1")).status).toBe(200);

    const res = await postMcp(
      [search(1), search(2), toolCall(3, "remember", { id: "after", content: "Stored after a refused search." })],
      key,
      "q1",
    );

    const answers = (await res.json()) as { id: number; result: CallToolResult }[];
    expect(answers.map((a) => [a.id, a.result.isError === true, textOf(a.result).split(":")[0]])).toEqual([
      [1, true, "ratelimit.exceeded"],
      [2, true, "ratelimit.exceeded"],
      [3, false, expect.stringMatching(/^Remembered as id after /)],
    ]);
    expect(res.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
    const listed = await (await postMcp(toolCall(4, "list_memories", {}), key, "q1")).json();
    expect(listed.result.structuredContent.documents.map((d: { id: string }) => d.id)).toEqual(["after"]);
  });

  it("counts a batch's messages that call no tool once, in default, beside its tool calls, and refuses them each", async () => {
    const { key } = await Auth.createKey(t.db, "mixed-batch");
    await RateLimit.setLimits(t.db, "mixed-batch", { default: "1/min" });
    const batch = [
      toolCall(1, "search_memory", { query: "anything" }),
      { jsonrpc: "2.0", id: 2, method: "tools/list" },
      { jsonrpc: "2.0", id: 3, method: "ping" },
      { jsonrpc: "2.0", method: "notifications/initialized" },
    ];
    type Answer = { id: number; result?: CallToolResult & { tools?: unknown[] }; error?: object };

    // tools/list, ping and the notification: one of default's one.
    const first = (await (await postMcp(batch, key, "m1")).json()) as Answer[];
    expect(first.map((a) => [a.id, a.error === undefined])).toEqual([
      [1, true],
      [2, true],
      [3, true],
    ]);

    const res = await postMcp(batch, key, "m1");
    const second = (await res.json()) as Answer[];
    expect(res.status).toBe(200);
    expect(second[0]?.result?.isError).toBeFalsy();
    const refusal = {
      code: -32000,
      message: expect.stringMatching(/retry in \d+ s\.$/),
      data: { code: "ratelimit.exceeded" },
    };
    expect(second.slice(1)).toEqual([
      { jsonrpc: "2.0", id: 2, error: refusal },
      { jsonrpc: "2.0", id: 3, error: refusal },
    ]);
    expect(res.headers.get("ratelimit-policy")).toBe('"default";q=1;w=60');
    expect(res.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
    // The same tools/list alone is refused as the route would.
    expect((await postMcp(batch[1], key, "m1")).status).toBe(429);
  });

  it("refuses a batch's other messages with the tool's refusal beside it when default is closed", async () => {
    const { key } = await Auth.createKey(t.db, "closed-default");
    await RateLimit.setLimits(t.db, "closed-default", { default: "0/min", search: "0/min" });
    const res = await postMcp(
      [
        toolCall(1, "search_memory", { query: "anything" }),
        { jsonrpc: "2.0", id: 2, method: "tools/list" },
        { jsonrpc: "2.0", id: 3, method: "ping" },
      ],
      key,
    );
    const answers = (await res.json()) as { id: number; result?: CallToolResult; error?: { data: object } }[];
    expect(res.status).toBe(200);
    expect(textOf(answers[0]?.result as CallToolResult)).toMatch(/^ratelimit\.exceeded: /);
    expect(answers.slice(1).map((a) => [a.id, a.error?.data])).toEqual([
      [2, { code: "ratelimit.exceeded" }],
      [3, { code: "ratelimit.exceeded" }],
    ]);
  });

  it("answers a rate-limited tool call as the tool's error, with the refusing policy's RateLimit headers and Retry-After", async () => {
    const { key } = await Auth.createKey(t.db, "paced");
    await RateLimit.setLimits(t.db, "paced", { chat: "1/min", search: "1/min", default: "1/min" });
    // ask and search_memory decide in their retrieval's batch; list_memories before it runs; a batch's second call alone.
    const cases = [
      { user: "u1", policy: '"chat";q=1;w=60', body: toolCall(1, "ask", { question: "Anything?" }) },
      { user: "u2", policy: '"search";q=1;w=60', body: toolCall(1, "search_memory", { query: "anything" }) },
      { user: "u3", policy: '"default";q=1;w=60', body: toolCall(1, "list_memories", {}) },
      {
        user: "u4",
        policy: '"default";q=1;w=60',
        body: [toolCall(1, "list_memories", {}), toolCall(2, "list_memories", {})],
      },
    ];
    for (const { user, policy, body } of cases) {
      const admitted = Array.isArray(body) ? undefined : await postMcp(body, key, user);
      expect([admitted?.headers.get("ratelimit-policy"), admitted?.headers.get("retry-after")]).toEqual(
        admitted ? [policy, null] : [undefined, undefined],
      );
      const refused = await postMcp(body, key, user);
      const answers = [await refused.json()].flat();
      expect([refused.status, answers.at(-1).result]).toEqual([
        200,
        {
          isError: true,
          content: [{ type: "text", text: expect.stringMatching(/^ratelimit\.exceeded: .*retry in \d+ s\.$/) }],
        },
      ]);
      expect({
        policy: refused.headers.get("ratelimit-policy"),
        ratelimit: refused.headers.get("ratelimit"),
        retryAfter: refused.headers.get("retry-after"),
      }).toEqual({
        policy,
        ratelimit: expect.stringMatching(/;r=0;t=\d+$/),
        retryAfter: expect.stringMatching(/^[1-9]\d*$/),
      });
    }
  });

  it("answers JSON that is no JSON-RPC 2.0 message, or a batch it cannot read, -32600 Invalid Request with id null", async () => {
    const list = { jsonrpc: "2.0", id: 1, method: "tools/list" };
    const bodies = [
      { ...list, jsonrpc: "1.0" },
      { id: 13, method: "tools/list" },
      { ...list, id: null },
      { ...list, id: { a: 1 } },
      [],
      Array.from({ length: 101 }, (_, i) => ({ ...list, id: i })),
      // Two requests with one id: both would run, and one answer be lost.
      [list, { ...list, method: "ping" }],
      // A member refused with the id of a request: the client could not tell their answers apart.
      [list, { ...list, jsonrpc: "1.0" }],
    ];
    for (const body of bodies) {
      const res = await postMcp(body, acme);
      expect([JSON.stringify(body), res.status, await res.json()]).toEqual([
        JSON.stringify(body),
        400,
        { jsonrpc: "2.0", id: null, error: { code: -32600, message: expect.stringMatching(/^Invalid Request: /) } },
      ]);
    }
    // The key is still checked first: without a good one, it is 401 whatever the body.
    expect((await postMcp([], "egm_nope")).status).toBe(401);
    expect((await postMcpText("", "egm_nope")).status).toBe(401);
    expect((await (await postMcp(list, acme)).json()).result.tools).toHaveLength(5);
    // A batch is answered with an array, a batch of one too; a lone message with an object.
    const one = await (await postMcp([list], acme)).json();
    expect([Array.isArray(one), one[0]?.result.tools.length]).toEqual([true, 5]);
  });

  it("answers each member of a batch on its own (JSON-RPC 2.0, 6): a malformed one with its error, the others as if alone", async () => {
    const { key } = await Auth.createKey(t.db, "batch-members");
    const res = await postMcp(
      [
        toolCall(1, "remember", { id: "kept", content: "The batch's good members still run." }),
        { jsonrpc: "1.0", id: 2, method: "ping" },
        { foo: "boo" },
        42,
        { jsonrpc: "2.0", id: 5, method: "initialize", params: INITIALIZE },
        { jsonrpc: "2.0", method: "notifications/initialized" },
        { jsonrpc: "2.0", id: 7, method: "no/such" },
        toolCall(8, "list_memories", {}),
      ],
      key,
      "members",
    );
    expect(res.status).toBe(200);
    const answers = await res.json();
    expect(answers.map((a: { id: unknown; error?: { code: number } }) => [a.id, a.error?.code])).toEqual([
      [1, undefined],
      [2, -32600],
      [null, -32600],
      [null, -32600],
      [5, -32600],
      [7, -32601],
      [8, undefined],
    ]);
    expect(answers[1].error.message).toMatch(/^Invalid Request: batch\[1\] is no JSON-RPC 2\.0 message/);
    expect(answers[4].error.message).toMatch(/^Invalid Request: batch\[4\] is initialize/);
    expect(answers[6].result.structuredContent.documents.map((d: { id: string }) => d.id)).toEqual(["kept"]);

    // A batch of malformed members only, or of them and notifications, is answered with their errors.
    for (const body of [[{ foo: "boo" }], [{ jsonrpc: "2.0", method: "notifications/initialized" }, { id: 3 }]]) {
      const only = await postMcp(body, key, "members");
      expect([only.status, await only.json()]).toEqual([
        200,
        [
          {
            jsonrpc: "2.0",
            id: body.length === 1 ? null : 3,
            error: { code: -32600, message: expect.stringMatching(/^Invalid Request: batch\[\d\] is no JSON-RPC/) },
          },
        ],
      ]);
    }
  });

  it("answers a body that is not JSON -32700 Parse error, and one it cannot take -32600, with id null and the API's code", async () => {
    const post = (body: string) => postMcpText(body, acme);
    const cases: [string, number, string][] = [
      ['{"jsonrpc": "2.0", "id": 1, "method": "tools/list"', -32700, "request.invalid_json"],
      ["not json at all", -32700, "request.invalid_json"],
      ["", -32700, "request.invalid_json"],
      ["   ", -32700, "request.invalid_json"],
      [`${"[".repeat(100)}${"]".repeat(100)}`, -32600, "request.too_deep"],
      ['{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"__proto__": {}}}', -32600, "request.invalid"],
    ];
    for (const [body, code, apiCode] of cases) {
      const res = await post(body);
      expect([body.slice(0, 20), res.status, await res.json()]).toEqual([
        body.slice(0, 20),
        400,
        {
          jsonrpc: "2.0",
          id: null,
          error: {
            code,
            message: expect.stringMatching(code === -32700 ? /^Parse error: / : /^Invalid Request: /),
            data: { code: apiCode },
          },
        },
      ]);
    }
    const huge = await post(
      `{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "pad": "${"x".repeat(6 * 1024 * 1024)}"}`,
    );
    expect([huge.status, await huge.json()]).toEqual([
      413,
      {
        jsonrpc: "2.0",
        id: null,
        error: {
          code: -32600,
          message: expect.stringMatching(/^Invalid Request: /),
          data: { code: "request.too_large" },
        },
      },
    ]);
    // The other routes keep the API's shape for the same body.
    const search = await fetch(`${server.url}/v1/search`, {
      method: "POST",
      headers: { authorization: `Bearer ${acme}`, "content-type": "application/json" },
      body: "not json at all",
    });
    expect((await search.json()).error.code).toBe("request.invalid_json");
  });

  it("answers 401 in the API's error shape without a key or with a bad one, and 405 to GET", async () => {
    const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" });
    const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
    for (const authorization of [undefined, "Bearer egm_nope"]) {
      const res = await fetch(`${server.url}/mcp`, {
        method: "POST",
        body,
        headers: authorization ? { ...headers, authorization } : headers,
      });
      expect(res.status).toBe(401);
      expect((await res.json()).error.code).toMatch(/^auth\./);
    }
    const get = await fetch(`${server.url}/mcp`, { headers: { authorization: `Bearer ${acme}` } });
    expect(get.status).toBe(405);
  });
});

// Each test starts `engram mcp` processes, which compile the CLI with tsx: slow on a busy machine.
describe("MCP over stdio (engram mcp)", { timeout: 120_000 }, () => {
  it("serves the local store, scoped by ENGRAM_USER_ID, and survives bad calls", async () => {
    const carol = await overStdio({ ENGRAM_USER_ID: "carol" });
    const dave = await overStdio({ ENGRAM_USER_ID: "dave" });
    expect((await carol.listTools()).tools).toHaveLength(5);
    const bad = await call(carol, "remember", {});
    expect([bad.isError, textOf(bad)]).toEqual([true, expect.stringMatching(/content/)]);
    const id = await exercise(carol, "stdio");
    expect((await call(dave, "search_memory", { query: "wifi password" })).structuredContent.results).toEqual([]);
    expect((await call(dave, "forget", { id })).structuredContent).toMatchObject({ id, deleted: false });
    expect((await call(carol, "forget", { id })).structuredContent).toMatchObject({ id, deleted: true });
  });

  it("answers an unreadable line -32700 and a line that is no JSON-RPC message -32600 (id null), and reads on", async () => {
    const { replies, exitCode } = await byHand([
      rpc(1, "initialize", {
        protocolVersion: "2025-06-18",
        capabilities: {},
        clientInfo: { name: "by-hand", version: "1" },
      }),
      rpc(undefined, "notifications/initialized"),
      "this is not json",
      '{"jsonrpc": "2.0", "id": 2, "method": "tools/list"',
      '{"hello": "world"}',
      rpc(3, "tools/list"),
      rpc(4, "tools/call"),
      rpc(5, "tools/call", { name: "remember", arguments: {} }),
      // A batch of one (MCP 2025-03-26, which the server negotiates): answered with an array of one.
      `[${rpc(6, "ping")}]`,
    ]);
    const byId = (id: unknown) => replies.filter((reply) => reply.id === id);
    const notOneMessage = {
      code: -32600,
      message:
        'Invalid Request: a line must be a JSON-RPC 2.0 message ("jsonrpc": "2.0", an id that is a string or an integer) or a non-empty batch of them',
    };
    // The API's code, as POST /mcp gives it for a body that is no JSON.
    const notJson = { code: "request.invalid_json" };
    expect(byId(null)).toEqual([
      {
        jsonrpc: "2.0",
        id: null,
        error: { code: -32700, message: expect.stringMatching(/^Parse error: .*JSON/), data: notJson },
      },
      {
        jsonrpc: "2.0",
        id: null,
        error: { code: -32700, message: expect.stringMatching(/^Parse error: /), data: notJson },
      },
      { jsonrpc: "2.0", id: null, error: notOneMessage },
    ]);
    expect(replies.filter(Array.isArray)).toEqual([[{ jsonrpc: "2.0", id: 6, result: {} }]]);
    expect(byId(3)[0].result.tools).toHaveLength(5);
    expect(byId(4)[0].error).toEqual({
      code: -32602,
      message: "Invalid params for tools/call at params: Invalid input: expected object, received undefined",
    });
    expect(byId(5)[0].result).toMatchObject({
      isError: true,
      content: [{ text: expect.stringMatching(/^request\.invalid: .*content/) }],
    });
    expect(byId("last")[0].result).toEqual({});
    expect(replies).toHaveLength(9);
    expect(exitCode).toBe(0);
  });

  it("refuses a line that is not UTF-8 -32700 as POST /mcp refuses such a body, storing nothing, and reads on", async () => {
    // Latin-1 é: decoded leniently, it was stored as U+FFFD and answered "Remembered".
    const remember = (id: number) =>
      Buffer.from(
        `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"remember","arguments":{"content":"caf\xe9 latin1"}}}`,
        "latin1",
      );
    const { replies, exitCode } = await byHand(
      [
        rpc(1, "initialize", {
          protocolVersion: "2025-06-18",
          capabilities: {},
          clientInfo: { name: "t", version: "1" },
        }),
        rpc(undefined, "notifications/initialized"),
        remember(2),
        rpc(3, "tools/call", { name: "list_memories", arguments: {} }),
      ],
      { ENGRAM_USER_ID: "latin1" },
    );
    const http = await (await postMcpText(remember(2), acme)).json();
    expect(http).toMatchObject({ id: null, error: { code: -32700, data: { code: "request.invalid_utf8" } } });
    expect(replies.filter((reply) => reply.id === null)).toEqual([
      { jsonrpc: "2.0", id: null, error: { ...http.error, message: "Parse error: The line is not valid UTF-8." } },
    ]);
    expect(replies.find((reply) => reply.id === 2)).toBeUndefined();
    expect(replies.find((reply) => reply.id === 3).result.structuredContent.documents).toEqual([]);
    expect(exitCode).toBe(0);
  });

  it("answers a batch line as POST /mcp answers the batch: each member on its own, in one array", async () => {
    const batch = [
      { jsonrpc: "2.0", id: 1, method: "ping" },
      { jsonrpc: "1.0", id: 2, method: "ping" },
      { foo: "boo" },
      42,
      { jsonrpc: "2.0", id: 5, method: "initialize", params: INITIALIZE },
      { jsonrpc: "2.0", method: "notifications/initialized" },
      { jsonrpc: "2.0", id: 7, method: "no/such" },
      toolCall(8, "list_memories", {}),
      toolCall(9, "remember", { id: "in-batch", content: "Remembered inside a batch." }),
      toolCall(10, "forget", { id: "in-batch" }),
    ];
    const { replies, exitCode } = await byHand(
      [
        rpc(0, "initialize", INITIALIZE),
        rpc(undefined, "notifications/initialized"),
        JSON.stringify(batch),
        // Only notifications: nothing to answer. Empty: refused whole, id null.
        JSON.stringify([{ jsonrpc: "2.0", method: "notifications/initialized" }]),
        "[]",
        // Not JSON: refused as any such line is.
        `[${rpc(11, "ping")}`,
      ],
      { ENGRAM_USER_ID: "batch-stdio" },
    );
    const http = await (await postMcp(batch.slice(0, 8), acme, "batch-http")).json();
    const arrays = replies.filter(Array.isArray);
    expect(arrays).toHaveLength(1);
    const [answers] = arrays as any[][];
    expect(answers?.slice(0, 7)).toEqual(http);
    expect(answers?.slice(7).map((a: { id: number; result: CallToolResult }) => [a.id, textOf(a.result)])).toEqual([
      [9, expect.stringMatching(/^Remembered as id in-batch /)],
      [10, "Forgot in-batch."],
    ]);
    // A refusal is written at once, answers when their handler runs: the order between them is not the point.
    const others = replies.filter((reply) => !Array.isArray(reply));
    expect(others).toHaveLength(4);
    expect(others).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id: 0, result: expect.anything() }),
        { jsonrpc: "2.0", id: null, error: { code: -32600, message: expect.stringMatching(/^Invalid Request: /) } },
        {
          jsonrpc: "2.0",
          id: null,
          error: {
            code: -32700,
            message: expect.stringMatching(/^Parse error: /),
            data: { code: "request.invalid_json" },
          },
        },
        { jsonrpc: "2.0", id: "last", result: {} },
      ]),
    );
    expect(exitCode).toBe(0);
  });

  it("runs tool calls in the order they came, and answers a last line sent without its newline", async () => {
    const { replies, exitCode } = await piped(
      { ENGRAM_USER_ID: "orderly" },
      [
        rpc(2, "tools/call", {
          name: "remember",
          arguments: { id: "zeb", content: "The zebra Ziggy lives in enclosure 42." },
        }),
        rpc(3, "tools/call", { name: "list_memories", arguments: {} }),
        rpc(4, "tools/call", { name: "forget", arguments: { id: "zeb" } }),
        rpc(5, "tools/call", { name: "list_memories", arguments: {} }),
      ],
      false,
    );
    const byId = (id: number) => replies.find((reply) => reply.id === id)?.result;
    expect(replies.map((reply) => reply.id).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(JSON.stringify(byId(3).structuredContent)).toContain("zeb");
    expect(byId(4).structuredContent).toMatchObject({ id: "zeb", deleted: true });
    expect(JSON.stringify(byId(5).structuredContent)).not.toContain("zeb");
    expect(exitCode).toBe(0);
  });

  it("answers a line over POST /mcp's body limit as POST /mcp answers such a body, and serves the lines after it", async () => {
    // Just over the 6 MB POST /mcp refuses (it had been read and run), and more than the SDK's reader holds (10 MB:
    // it had closed, and the server ended without a word).
    const over = rpc(2, "tools/call", { name: "remember", arguments: { content: "x".repeat(MAX_BODY_BYTES) } });
    const huge = rpc(3, "tools/call", { name: "remember", arguments: { content: "x ".repeat(5_500_000) } });
    const { replies, exitCode } = await piped({ ENGRAM_USER_ID: "huge" }, [over, huge, rpc(4, "ping")]);
    const http = await postMcpText(over, acme);
    const refusal = { ...(await http.json()).error, message: "Invalid Request: The line is larger than 6 MB." };
    expect([http.status, refusal.data]).toEqual([413, { code: "request.too_large" }]);
    expect(replies).toEqual([
      expect.objectContaining({ id: 1 }),
      { jsonrpc: "2.0", id: null, error: refusal },
      { jsonrpc: "2.0", id: null, error: refusal },
      { jsonrpc: "2.0", id: 4, result: {} },
    ]);
    expect(exitCode).toBe(0);
  });

  it("answers every request read before stdin closed, a batch's too, also through a server", async () => {
    // The tool calls are still in flight when stdin closes.
    const { replies, exitCode } = await piped({ ENGRAM_URL: server.url, ENGRAM_API_KEY: acme }, [
      rpc(2, "tools/call", { name: "search_memory", arguments: { query: "anything at all" } }),
      JSON.stringify([toolCall(3, "list_memories", {}), toolCall(4, "search_memory", { query: "anything" })]),
    ]);
    expect(replies.map((reply) => reply.id ?? reply.map((a: { id: number }) => a.id))).toEqual(
      expect.arrayContaining([1, 2, [3, 4]]),
    );
    expect(replies).toHaveLength(3);
    expect(replies.find((reply) => reply.id === 2).result.structuredContent).toHaveProperty("results");
    expect(exitCode).toBe(0);
  });

  it("refuses a __proto__ key in a tool's arguments on stdio, as the HTTP API does, instead of dropping it", async () => {
    // Written by hand: JSON.stringify of an object literal would make `__proto__` the prototype, not a key.
    const remember = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"remember","arguments":{"content":"Proto note.","metadata":{"__proto__":{"a":1},"b":3}}}}`;
    const search = `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search_memory","arguments":{"query":"note","filter":{"metadata":{"__proto__":{"team":"x"}}}}}}`;
    // At the top of the arguments, which the SDK parses (and loses the key in) before the tool sees them.
    const top = `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"search_memory","arguments":{"query":"lemons","__proto__":{"topK":1}}}}`;
    const { replies } = await byHand([
      rpc(1, "initialize", {
        protocolVersion: "2025-06-18",
        capabilities: {},
        clientInfo: { name: "t", version: "1" },
      }),
      rpc(undefined, "notifications/initialized"),
      remember,
      search,
      top,
    ]);
    const text = (id: number) => replies.find((reply) => reply.id === id)?.result;
    expect([text(2)?.isError, text(2)?.content[0].text]).toEqual([
      true,
      'request.invalid: The key "__proto__" (at metadata.__proto__) is not accepted; rename it.',
    ]);
    expect([text(3)?.isError, text(3)?.content[0].text]).toEqual([
      true,
      'request.invalid: The key "__proto__" (at filter.metadata.__proto__) is not accepted; rename it.',
    ]);
    expect([text(4)?.isError, text(4)?.content[0].text]).toEqual([
      true,
      'request.invalid: The key "__proto__" (at __proto__) is not accepted; rename it.',
    ]);
  });

  it("ignores blank and whitespace-only lines, answering none of them, and still answers a malformed one -32700", async () => {
    const { replies, exitCode } = await byHand([
      "",
      "\r",
      " \t \r",
      rpc(1, "ping"),
      "",
      `  ${rpc(2, "ping")}\r`,
      "   ",
      "{not json",
    ]);
    // A refusal is written at once, answers when their handler runs: the order between them is not the point.
    expect(replies).toHaveLength(4);
    expect(replies).toEqual(
      expect.arrayContaining([
        {
          jsonrpc: "2.0",
          id: null,
          error: {
            code: -32700,
            message: expect.stringMatching(/^Parse error: /),
            data: { code: "request.invalid_json" },
          },
        },
        { jsonrpc: "2.0", id: 1, result: {} },
        { jsonrpc: "2.0", id: 2, result: {} },
        { jsonrpc: "2.0", id: "last", result: {} },
      ]),
    );
    expect(exitCode).toBe(0);
  });

  it("refuses to start, in one line on stderr and a non-zero exit, what would fail every tool call", async () => {
    const refusals = await Promise.all([
      start({ ENGRAM_URL: server.url }),
      start({ ENGRAM_URL: "localhost:3000", ENGRAM_API_KEY: globex }),
      start({ ENGRAM_URL: server.url, ENGRAM_API_KEY: "egm_nope" }),
      start({ ENGRAM_USER_ID: "not a user id!" }),
      // An empty one (a config template's unfilled value) would put a user's memories in the shared space.
      start({ ENGRAM_USER_ID: "" }),
      start({ ENGRAM_URL: server.url, ENGRAM_API_KEY: globex, ENGRAM_USER_ID: "x".repeat(129) }),
      // A mistyped tenant, which would otherwise have been created to hold the memories.
      start({}, ["--tenant", "acmee"]),
      // A well-formed key the remote Engram does not know, asked once at start.
      start({ ENGRAM_URL: server.url, ENGRAM_API_KEY: `egm_${"A".repeat(32)}` }),
      // A remote Engram serves the key's tenant: a --tenant would be ignored.
      start({ ENGRAM_URL: server.url, ENGRAM_API_KEY: globex }, ["--tenant", "acme"]),
    ]);
    expect(refusals).toEqual([
      {
        exitCode: 1,
        stdout: "",
        stderr: expect.stringMatching(/^engram: ENGRAM_URL \(--url\) needs .*ENGRAM_API_KEY.*\n$/),
      },
      { exitCode: 1, stdout: "", stderr: "engram: ENGRAM_URL (--url) is not an http(s) URL: localhost:3000\n" },
      {
        exitCode: 1,
        stdout: "",
        stderr: expect.stringMatching(/^engram: ENGRAM_API_KEY \(--key\) is refused: [^\n]+\n$/),
      },
      {
        exitCode: 1,
        stdout: "",
        stderr: expect.stringMatching(/^engram: ENGRAM_USER_ID \(--user\) "not a user id!" is refused: [^\n]+\n$/),
      },
      {
        exitCode: 1,
        stdout: "",
        stderr: "engram: ENGRAM_USER_ID (--user) is empty: leave it out for the shared space\n",
      },
      {
        exitCode: 1,
        stdout: "",
        stderr: expect.stringMatching(/^engram: ENGRAM_USER_ID \(--user\) "x+" is refused: /),
      },
      { exitCode: 1, stdout: "", stderr: "engram: No tenant named acmee.\n" },
      {
        exitCode: 1,
        stdout: "",
        stderr: `engram: ENGRAM_API_KEY (--key) is refused by ${server.url}: The API key is not valid or has been revoked.\n`,
      },
      {
        exitCode: 1,
        stdout: "",
        stderr: "engram: with --url (ENGRAM_URL) the API key names the tenant: drop --tenant\n",
      },
    ]);
  });

  it("names the tool's own argument in a refusal on every transport (title, not documents.0.title)", async () => {
    const transports = [
      await overHttp(acme, "tess"),
      await overStdio({ ENGRAM_USER_ID: "tess" }),
      await overStdio({ ENGRAM_URL: server.url, ENGRAM_API_KEY: acme, ENGRAM_USER_ID: "tess" }),
    ];
    for (const client of transports) {
      const long = await call(client, "remember", { content: "A fact.", title: "t".repeat(1001) });
      expect([long.isError, textOf(long)]).toEqual([
        true,
        "request.invalid: Invalid request at title: Too big: expected string to have <=1000 characters",
      ]);
      // Past the API's 200 characters a cursor is one it never made, as GET /v1/documents says of it.
      const cursor = await call(client, "list_memories", { cursor: "c".repeat(201) });
      expect(textOf(cursor)).toBe("request.invalid_cursor: The cursor is not one this API returned.");
    }
  });

  it("words what the model reads for MCP: remember starts a conversation, list_memories lists the user's own", async () => {
    const transports = [
      await overHttp(acme, "uma"),
      await overStdio({ ENGRAM_URL: server.url, ENGRAM_API_KEY: acme, ENGRAM_USER_ID: "uma" }),
    ];
    for (const client of transports) {
      const unknown = await call(client, "ask", { question: "Where were we?", conversationId: "nope" });
      expect([unknown.isError, textOf(unknown)]).toEqual([
        true,
        'conversation.not_found: No conversation with id "nope" to continue. Leave conversationId out to start one (its id is in the answer), or remember something with this conversationId first.',
      ]);
      const { tools } = await client.listTools();
      expect(tools.find((tool) => tool.name === "list_memories")?.description).toMatch(
        /^List this user's own stored memories .*Shared memories are not listed here; search_memory and ask find them/,
      );
    }
  });

  it("talks to a remote Engram with ENGRAM_URL and ENGRAM_API_KEY", async () => {
    const client = await overStdio({ ENGRAM_URL: server.url, ENGRAM_API_KEY: globex, ENGRAM_USER_ID: "erin" });
    const id = await exercise(client, "remote");
    expect((await call(client, "forget", { id })).structuredContent).toMatchObject({ id, deleted: true });
    const again = await call(client, "forget", { id });
    expect([Boolean(again.isError), again.structuredContent]).toEqual([false, { id, deleted: false, hard: false }]);
    const wrong = await call(client, "search_memory", { query: "x", topK: 500 });
    expect(textOf(wrong)).toMatch(/^request\.invalid: .*topK/);
  });

  it("takes an Engram URL copied with the API's /v1, as the other commands do", async () => {
    for (const url of [`${server.url}/v1`, `${server.url}/v1/`]) {
      // Its routes had been /v1/v1/...: the key's check said the Engram did not answer, and every call failed.
      const started = await start({ ENGRAM_URL: url, ENGRAM_API_KEY: globex });
      expect([started.exitCode, started.stderr]).toEqual([0, ""]);
      const client = await overStdio({ ENGRAM_URL: url, ENGRAM_API_KEY: globex, ENGRAM_USER_ID: "v1" });
      const found = await call(client, "search_memory", { query: "anything" });
      expect([found.isError, found.structuredContent?.results]).toEqual([undefined, []]);
    }
  });

  it("answers a tool call the server's rate limit refuses at once, as the tool's error, instead of waiting it out", async () => {
    const { key } = await Auth.createKey(t.db, "paced-stdio");
    await RateLimit.setLimits(t.db, "paced-stdio", { search: "1/min" });
    const client = await overStdio({ ENGRAM_URL: server.url, ENGRAM_API_KEY: key, ENGRAM_USER_ID: "quick" });
    expect((await call(client, "search_memory", { query: "anything" })).isError).toBeFalsy();
    // Waited out (60 s), the call outlived the client's own timeout, set shorter here, and ran after it gave up.
    const refused = (await client.callTool({ name: "search_memory", arguments: { query: "anything" } }, undefined, {
      timeout: 20_000,
    })) as CallToolResult;
    expect([refused.isError, textOf(refused)]).toEqual([
      true,
      expect.stringMatching(/^ratelimit\.exceeded: .*retry in \d+ s/),
    ]);
  });

  it("re-embeds in the background on the store itself: the turns after a forgotten one are found by meaning again", async () => {
    // The embedded folder: its only process does the work a server or the cleanup does for a Postgres.
    const folder = mkdtempSync(join(tmpdir(), "engram-mcp-"));
    const client = await overStdio({ ENGRAM_USER_ID: "turns", DATABASE_URL: "", ENGRAM_DATA_DIR: folder });
    const turns = [
      "I moved to Lisbon in March for the new job.",
      "The flat in Alfama has a view of the river.",
      "We should reserve a table at the fado restaurant on Friday.",
    ];
    for (const [i, content] of turns.entries()) {
      const stored = await call(client, "remember", { content, id: `turn-${i + 1}`, conversationId: "lisbon" });
      expect(stored.isError, textOf(stored)).toBeFalsy();
    }
    expect((await call(client, "forget", { id: "turn-1" })).structuredContent).toMatchObject({ deleted: true });
    // Their context held the forgotten turn: stale (out of vector search) until re-embedded, which nothing did here.
    const query = { query: "reserve a table at the fado restaurant", mode: "vector", scope: "user" };
    let found: string[] = [];
    for (let waited = 0; waited < 60_000 && !found.includes("turn-3"); waited += 1_000) {
      found = (await call(client, "search_memory", query)).structuredContent.results.map(
        (r: { documentId: string }) => r.documentId,
      );
      if (!found.includes("turn-3")) await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    expect(found).toContain("turn-3");
  });

  it("on the embedded folder, ends its background work and closes the database on SIGTERM instead of dying mid-write", async () => {
    const folder = mkdtempSync(join(tmpdir(), "engram-mcp-"));
    const env = mcpEnv({ DATABASE_URL: "", ENGRAM_DATA_DIR: folder, ENGRAM_USER_ID: "sig" });
    const child = spawn(process.execPath, ["bin/engram.js", "mcp"], { env });
    const lines = createInterface({ input: child.stdout });
    const answered = new Promise((resolve) => lines.once("line", resolve));
    child.stdin.write(
      `${rpc(1, "tools/call", { name: "remember", arguments: { content: "Kept across a SIGTERM." } })}\n`,
    );
    await answered;
    const exited = new Promise<[number | null, string | null]>((resolve) =>
      child.once("exit", (code, signal) => resolve([code, signal])),
    );
    child.kill("SIGTERM");
    // Exited by itself (code 0), not killed by the signal.
    expect(await exited).toEqual([0, null]);
    const again = await overStdio({ DATABASE_URL: "", ENGRAM_DATA_DIR: folder, ENGRAM_USER_ID: "sig" });
    expect(textOf(await call(again, "search_memory", { query: "kept across a SIGTERM" }))).toContain("Kept across");
  });

  it("reports an unreachable remote Engram as a tool error and stays up", async () => {
    const client = await overStdio({ ENGRAM_URL: "http://127.0.0.1:9", ENGRAM_API_KEY: globex });
    for (let i = 0; i < 2; i++) {
      const result = await call(client, "search_memory", { query: "anything" });
      expect([result.isError, textOf(result)]).toEqual([
        true,
        expect.stringMatching(/^network\.unreachable: Cannot reach/),
      ]);
    }
    expect((await client.listTools()).tools).toHaveLength(5);
  });
});
