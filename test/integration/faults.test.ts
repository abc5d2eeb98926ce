/**
 * Faults: the database going away in the middle of a request (the Neon-protocol server stopped,
 * a `pg` backend terminated, a commit whose answer is lost), the embedder and the chat model
 * failing in each way the fake OpenAI server can, and Lambda's deadline arriving mid-request.
 *
 * After each: the client got an honest status (502 for a failed upstream, 503 with Retry-After
 * when waiting helps), the data is the state before the request or the state after it, never a
 * mix, and sending the same request again is safe: it succeeds, and once more changes nothing.
 */
import { neonConfig } from "@neondatabase/serverless";
import type { APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { sql } from "drizzle-orm";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import * as Auth from "../../core/auth";
import { setConfig } from "../../core/config";
import { type Db, useDb } from "../../core/db";
import { mapDbError } from "../../core/db/errors";
import { createPgDb } from "../../core/db/pg";
import { type Embedder, useEmbedder } from "../../core/embedding";
import { createOfflineEmbedder } from "../../core/embedding/offline";
import { createOpenAIEmbedder } from "../../core/embedding/openai";
import * as Search from "../../core/search";
import { callerFor, freshDb, pgUrl, type TestDb } from "../../kit/db";
import { apiEvent, type EventInput, invoke, lambdaContext, type Response } from "../../kit/events";
import { prose, UNLIMITED } from "../../kit/factories";
import { type FakeOpenAI, startOpenAIServer } from "../../kit/openai-server";

let fake: FakeOpenAI;
let pgT: TestDb;
let neonT: TestDb;
const keys = new Map<Db, string>();
let scenario = 0;

const UPSTREAM_TIMEOUT_MS = 400;

/** The embedder production builds from OPENAI_BASE_URL, with a faster retry policy for tests. */
const openAiEmbedder = (apiKey = fake.apiKey): Embedder =>
  createOpenAIEmbedder({
    apiKey,
    baseURL: fake.url,
    model: "text-embedding-3-small",
    dimensions: 1536,
    timeoutMs: UPSTREAM_TIMEOUT_MS,
    maxRetries: 1,
    retryBaseMs: 10,
  });

function configure() {
  setConfig({
    LOG_LEVEL: "silent",
    OPENAI_API_KEY: fake.apiKey,
    OPENAI_BASE_URL: fake.url,
    EMBEDDING_PROVIDER: "openai",
    CHAT_PROVIDER: "openai",
    CHAT_TIMEOUT_MS: String(UPSTREAM_TIMEOUT_MS),
    CHAT_MAX_RETRIES: "1",
    ...UNLIMITED,
  });
  useEmbedder(openAiEmbedder());
}

beforeAll(async () => {
  fake = await startOpenAIServer();
  configure();
  pgT = await freshDb("pg");
  neonT = await freshDb("neon-http");
  for (const t of [pgT, neonT]) keys.set(t.db, (await Auth.createKey(t.db, "acme")).key);
}, 60_000);
afterAll(async () => {
  await fake?.close();
  await pgT?.close();
  await neonT?.close();
});
afterEach(() => {
  fake.reset();
  neonT?.neon?.setDown(false);
  neonConfig.fetchFunction = undefined;
  configure();
});

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

/** Everything a request could write, in a stable order (ids, contents, timestamps, embeddings). */
async function snapshot(db: Db) {
  const [documents, chunks, conversations, messages] = await Promise.all([
    db.query(sql`
      select tenant_id, owner, id, title, source, metadata, content_hash, importance, conversation_id, chunk_count,
             access_count, expires_at, deleted_at, created_at, updated_at
      from documents order by tenant_id, owner, id`),
    db.query(sql`
      select d.owner, d.id as document, c.id, c.ordinal, c.content_hash, c.embedding_model, md5(c.embedding::text) as v
      from chunks c join documents d on d.key = c.document_key order by d.owner, d.id, c.ordinal`),
    db.query(sql`select tenant_id, owner, id, title, created_at, updated_at from conversations order by owner, id`),
    db.query(sql`select owner, conversation_id, role, content, citations from messages order by id`),
  ]);
  return { documents, chunks, conversations, messages };
}

const headers = (db: Db, user: string) => ({ authorization: `Bearer ${keys.get(db)}`, "x-user-id": user });

/** An ingest that updates one document, keeps one and adds one, for a new user of its own. */
async function ingestCase(db: Db) {
  const user = `u${++scenario}`;
  const tag = `scenario ${scenario} ${Date.now()}`;
  const base = [
    { id: "a", content: `${prose(scenario, 3, 4)} Version one of ${tag}.`, title: "A" },
    { id: "b", content: `${prose(scenario + 100, 2, 4)} Stays as it is in ${tag}.`, title: "B" },
  ];
  const seeded = await invoke({
    method: "POST",
    path: "/v1/ingest",
    headers: headers(db, user),
    body: { documents: base },
  });
  expect(seeded.status).toBe(200);
  const documents = [
    { id: "a", content: `${prose(scenario, 3, 4)} Version two of ${tag}, with a new ending.`, title: "A2" },
    base[1],
    { id: "c", content: `${prose(scenario + 200, 2, 3)} Brand new in ${tag}.`, metadata: { n: scenario } },
  ];
  return {
    user,
    request: { method: "POST", path: "/v1/ingest", headers: headers(db, user), body: { documents } } as EventInput,
  };
}

function expectError(res: Response, status: number, code: string | RegExp, retryAfter?: string | "any") {
  expect([res.status, res.body?.error?.code], JSON.stringify(res.body)).toEqual([status, expect.stringMatching(code)]);
  expect(res.body.error.message).toEqual(expect.any(String));
  expect(res.headers["x-request-id"]).toBeTruthy();
  if (retryAfter === "any") expect(res.headers["retry-after"]).toMatch(/^\d+$/);
  else if (retryAfter !== undefined) expect(res.headers["retry-after"]).toBe(retryAfter);
}

/**
 * The failed request has run; `settle` waits for anything it left running. The state now must be
 * the state before or the state after success; then the same request succeeds, and once more
 * is "unchanged" and embeds nothing.
 */
async function expectBeforeOrAfter(db: Db, request: EventInput, before: unknown, settle?: () => Promise<void>) {
  await settle?.();
  const middle = await snapshot(db);
  const retried = await invoke(request);
  expect(retried.status, JSON.stringify(retried.body)).toBe(200);
  const after = await snapshot(db);
  expect([before, after]).toContainEqual(middle);
  const again = await invoke(request);
  expect(again.status).toBe(200);
  expect(again.body.documents.map((d: { status: string }) => d.status)).toEqual([
    "unchanged",
    "unchanged",
    "unchanged",
  ]);
  expect(again.body.totals.embedded).toBe(0);
  expect(await snapshot(db)).toEqual(after);
  return { middle, after, before };
}

/** An embedder that runs `hook` once the vectors are in hand: the request is past its reads, before its write. */
function embedderThen(hook: () => void | Promise<void>): Embedder {
  const inner = openAiEmbedder();
  return {
    ...inner,
    async embed(texts, opts) {
      const result = await inner.embed(texts, opts);
      await hook();
      return result;
    },
  };
}

/** Invokes a route's function with a Lambda context that has only `remainingMs` left. */
async function invokeWithin(remainingMs: number, input: EventInput): Promise<Response> {
  const modules = {
    ingest: () => import("../../functions/http/ingest"),
    search: () => import("../../functions/http/search"),
  };
  const { handler } = await (input.path.includes("search") ? modules.search : modules.ingest)();
  const deadline = Date.now() + remainingMs;
  const context: Context = { ...lambdaContext(), getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()) };
  const result = (await handler(apiEvent(input), context)) as APIGatewayProxyStructuredResultV2;
  const responseHeaders: Record<string, string> = {};
  for (const [k, v] of Object.entries(result.headers ?? {})) responseHeaders[k.toLowerCase()] = String(v);
  return { status: result.statusCode ?? 200, headers: responseHeaders, body: JSON.parse(result.body ?? "null") };
}

/**
 * Holds the row lock of a user's document in an open transaction on its own connection, so an
 * ingest that upserts it waits inside its batch. `waiter()` finds the waiting backend.
 */
async function lockDocument(t: TestDb, user: string, id: string) {
  const client = new pg.Client({ connectionString: t.url });
  await client.connect();
  await client.query("begin");
  await client.query("select 1 from documents where owner = $1 and id = $2 for update", [user, id]);
  const waiter = async (): Promise<number> => {
    for (let i = 0; i < 200; i++) {
      const { rows } = await client.query<{ pid: number }>(
        "select pid from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()",
      );
      if (rows[0]) return rows[0].pid;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error("no backend waited for the lock");
  };
  return {
    waiter,
    terminate: async (pid: number) => void (await client.query("select pg_terminate_backend($1)", [pid])),
    release: async () => {
      await client.query("rollback");
      await client.end();
    },
  };
}

/** Waits until no other backend of the database is in a statement or a transaction (a released write has finished). */
async function settled(t: TestDb) {
  const client = new pg.Client({ connectionString: t.url });
  await client.connect();
  try {
    for (let i = 0; i < 200; i++) {
      const { rows } = await client.query(
        "select 1 from pg_stat_activity where datname = current_database() and state <> 'idle' and pid <> pg_backend_pid()",
      );
      if (!rows.length) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The embedder fails
// ---------------------------------------------------------------------------------------------------------------

describe.each(["pg", "neon-http"] as const)("the embedder failing during ingest on %s", (driver) => {
  const T = () => (driver === "pg" ? pgT : neonT);
  const cases: { name: string; arm: () => void; status: number; code: string; retryAfter?: string }[] = [
    {
      name: "500s on every attempt",
      arm: () => fake.failNext(2, { status: 500 }),
      status: 502,
      code: "embedding.failed",
    },
    {
      name: "429 with a Retry-After longer than we wait",
      arm: () => fake.failNext(2, { status: 429, retryAfter: 30 }),
      status: 503,
      code: "embedding.rate_limited",
      retryAfter: "30",
    },
    {
      name: "429 with a short Retry-After on every attempt",
      arm: () => fake.failNext(2, { status: 429, retryAfter: 1 }),
      status: 503,
      code: "embedding.rate_limited",
      retryAfter: "1",
    },
    {
      name: "answers slower than the timeout",
      arm: () => {
        fake.delayMs = UPSTREAM_TIMEOUT_MS * 3;
      },
      status: 502,
      code: "embedding.failed",
    },
    {
      name: "answers 200 with a malformed body",
      arm: () => fake.malformedNext(2),
      status: 502,
      code: "embedding.failed",
    },
  ];

  it.each(cases)(
    "$name: $status $code, nothing written, the retry is safe",
    async ({ arm, status, code, retryAfter }) => {
      useDb(T().db);
      const { request } = await ingestCase(T().db);
      const before = await snapshot(T().db);
      arm();
      const failed = await invoke(request);
      fake.reset();
      expectError(failed, status, code, retryAfter);
      const { middle } = await expectBeforeOrAfter(T().db, request, before);
      expect(middle).toEqual(before);
    },
  );

  it("retries a transient 500 itself and succeeds", async () => {
    useDb(T().db);
    const { request } = await ingestCase(T().db);
    fake.reset();
    fake.failNext(1, { status: 500 });
    const res = await invoke(request);
    expect(res.status).toBe(200);
    expect(fake.stats.embeddingRequests).toBe(2);
  });

  it("fails a search with 502 or 503 and Retry-After, and writes no cache entry", async () => {
    useDb(T().db);
    const cached = async () =>
      Number((await T().db.query<{ n: number }>(sql`select count(*)::int as n from cache`))[0]?.n);
    const before = await cached();
    const search = (query: string) =>
      invoke({ method: "POST", path: "/v1/search", headers: headers(T().db, "searcher"), body: { query } });

    fake.failNext(2, { status: 500 });
    expectError(await search("refunds after a failure"), 502, "embedding.failed");
    fake.failNext(2, { status: 429, retryAfter: 60 });
    expectError(await search("refunds after a failure"), 503, "embedding.rate_limited", "60");
    expect(await cached()).toBe(before);

    fake.reset();
    expect((await search("refunds after a failure")).status).toBe(200);
    // Through the chain a search is one round trip with its key and limit (core/gate): its query vector stays in
    // the process's memory, never a database round trip of its own.
    expect(await cached()).toBe(before);
    // A caller already known (the CLI, MCP over stdio) shares vectors through the database's cache, once they exist.
    const known = await callerFor(T().db, "acme", "searcher");
    fake.failNext(2, { status: 500 });
    await expect(
      Search.query(T().db, known, Search.SearchRequest.parse({ query: "refunds once known" })),
    ).rejects.toThrow();
    expect(await cached()).toBe(before);
    fake.reset();
    await Search.query(T().db, known, Search.SearchRequest.parse({ query: "refunds once known" }));
    expect(await cached()).toBe(before + 1);
  });

  it("tells a client the provider refused the deployment's key without repeating what it said of the key", async () => {
    useDb(T().db);
    useEmbedder(openAiEmbedder("sk-operators-secret-9876"));
    try {
      const res = await invoke({
        method: "POST",
        path: "/v1/search",
        headers: headers(T().db, "searcher"),
        body: { query: "a key the provider refuses" },
      });
      expectError(res, 502, "embedding.failed");
      expect(res.body.error.message).toBe(
        "The embedding service refused this deployment's credentials (HTTP 401); its operator must check the API key.",
      );
    } finally {
      useEmbedder(openAiEmbedder());
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The database goes away
// ---------------------------------------------------------------------------------------------------------------

describe("the database going away mid-request", () => {
  it("Neon: stops between the ingest's reads and its write; 503 with Retry-After, nothing written", async () => {
    const { db, neon } = neonT;
    useDb(db);
    const { request } = await ingestCase(db);
    const before = await snapshot(db);
    useEmbedder(embedderThen(() => neon?.setDown(true)));
    const failed = await invoke(request);
    neon?.setDown(false);
    useEmbedder(openAiEmbedder());
    expectError(failed, 503, "database.unavailable", "any");
    const { middle } = await expectBeforeOrAfter(db, request, before);
    expect(middle).toEqual(before);
  });

  it("Neon: the ingest's commit lands but its answer is lost; 503, the state is the new one, the retry is unchanged", async () => {
    const { db } = neonT;
    useDb(db);
    const { request } = await ingestCase(db);
    const before = await snapshot(db);
    let drop = true;
    neonConfig.fetchFunction = async (url: string, init: RequestInit) => {
      const response = await fetch(url, init);
      // The ingest's write batch (its key, limit and admission batch comes first, since the gate).
      const body = String(init.body);
      if (drop && body.startsWith('{"queries"') && body.includes("insert into chunks")) {
        drop = false;
        await response.arrayBuffer();
        throw new TypeError("fetch failed");
      }
      return response;
    };
    const failed = await invoke(request);
    neonConfig.fetchFunction = undefined;
    expectError(failed, 503, "database.unavailable", "any");
    const { middle, after } = await expectBeforeOrAfter(db, request, before);
    expect(middle).toEqual(after);
  });

  it("Neon: stops during a search; 503 with Retry-After, then searches again", async () => {
    const { db, neon } = neonT;
    useDb(db);
    useEmbedder(embedderThen(() => neon?.setDown(true)));
    const body = { query: "refund window for a stopped database" };
    const failed = await invoke({ method: "POST", path: "/v1/search", headers: headers(db, "searcher"), body });
    neon?.setDown(false);
    useEmbedder(openAiEmbedder());
    expectError(failed, 503, "database.unavailable", "any");
    expect((await invoke({ method: "POST", path: "/v1/search", headers: headers(db, "searcher"), body })).status).toBe(
      200,
    );
  });

  it("pg: the ingest's backend is terminated inside its transaction; 503, nothing written", async () => {
    useDb(pgT.db);
    const { request, user } = await ingestCase(pgT.db);
    const before = await snapshot(pgT.db);
    const lock = await lockDocument(pgT, user, "a");
    const pending = invoke(request);
    await lock.terminate(await lock.waiter());
    await lock.release();
    expectError(await pending, 503, "database.unavailable", "any");
    const { middle } = await expectBeforeOrAfter(pgT.db, request, before);
    expect(middle).toEqual(before);
  });

  it("pg: the search's backend is terminated; 503, then searches again", async () => {
    useDb(pgT.db);
    const client = new pg.Client({ connectionString: pgT.url });
    await client.connect();
    await client.query("begin");
    await client.query("lock table chunks in access exclusive mode");
    const body = { query: "refund window for a terminated backend" };
    const pending = invoke({ method: "POST", path: "/v1/search", headers: headers(pgT.db, "searcher"), body });
    let pid: number | undefined;
    for (let i = 0; i < 200 && !pid; i++) {
      const { rows } = await client.query<{ pid: number }>(
        "select pid from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()",
      );
      pid = rows[0]?.pid;
      if (!pid) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await client.query("select pg_terminate_backend($1)", [pid]);
    await client.query("rollback");
    await client.end();
    expectError(await pending, 503, "database.unavailable", "any");
    const again = await invoke({ method: "POST", path: "/v1/search", headers: headers(pgT.db, "searcher"), body });
    expect(again.status).toBe(200);
  });

  it("unreachable from the start: health says so with 503, every route answers 503 with Retry-After", async () => {
    const gone = createPgDb("postgres://postgres@127.0.0.1:1/engram");
    useDb(gone);
    try {
      const health = await invoke({ method: "GET", path: "/v1/health" });
      expect(health.status).toBe(503);
      expect(health.body).toMatchObject({ status: "degraded", database: "unreachable" });
      for (const request of [
        { method: "GET", path: "/v1/documents" },
        { method: "POST", path: "/v1/ingest", body: { documents: [{ content: "x" }] } },
        { method: "POST", path: "/v1/search", body: { query: "x" } },
        { method: "POST", path: "/v1/chat", body: { messages: [{ role: "user", content: "x" }] } },
      ]) {
        expectError(await invoke({ ...request, headers: headers(pgT.db, "u") }), 503, "database.unavailable", "any");
      }
    } finally {
      await gone.close();
    }
  });

  it("a database that does not exist (dropped, a wrong name): 503 with Retry-After, not 500", async () => {
    const missing = createPgDb(pgUrl("engram_no_such_database"));
    useDb(missing);
    try {
      expectError(
        await invoke({ method: "GET", path: "/v1/documents", headers: headers(pgT.db, "u") }),
        503,
        "database.unavailable",
        "any",
      );
      const health = await invoke({ method: "GET", path: "/v1/health" });
      expect(health.status).toBe(503);
    } finally {
      await missing.close();
    }
  });

  it("a database that refuses connections (allow_connections off, for maintenance): 503, not 500", async () => {
    const name = `engram_closed_${process.pid}`;
    const admin = new pg.Client({ connectionString: pgUrl("postgres") });
    await admin.connect();
    await admin.query(`drop database if exists ${name}`);
    await admin.query(`create database ${name} allow_connections false`);
    const closed = createPgDb(pgUrl(name));
    useDb(closed);
    try {
      // Postgres says 55000 "database ... is not currently accepting connections": no query can run until an
      // operator opens it again.
      expectError(
        await invoke({ method: "POST", path: "/v1/search", headers: headers(pgT.db, "u"), body: { query: "x" } }),
        503,
        "database.unavailable",
        "any",
      );
    } finally {
      await closed.close();
      await admin.query(`drop database if exists ${name}`);
      await admin.end();
    }
  });

  it("Neon unreachable from the start: 503 with Retry-After, not 500", async () => {
    useDb(neonT.db);
    neonConfig.fetchFunction = async () => {
      throw new TypeError("fetch failed", {
        cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
      });
    };
    const res = await invoke({ method: "GET", path: "/v1/documents", headers: headers(neonT.db, "u") });
    neonConfig.fetchFunction = undefined;
    expectError(res, 503, "database.unavailable", "any");
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Lambda's deadline
// ---------------------------------------------------------------------------------------------------------------

describe.each(["pg", "neon-http"] as const)("Lambda's deadline arriving mid-request on %s", (driver) => {
  const T = () => (driver === "pg" ? pgT : neonT);
  it("during the embedding: 503 request.timeout with Retry-After, the upstream call stopped, nothing written", async () => {
    useDb(T().db);
    const { request } = await ingestCase(T().db);
    const before = await snapshot(T().db);
    useEmbedder(
      createOpenAIEmbedder({
        apiKey: fake.apiKey,
        baseURL: fake.url,
        model: "text-embedding-3-small",
        dimensions: 1536,
      }),
    );
    fake.delayMs = 5_000;
    const started = Date.now();
    const failed = await invokeWithin(500, request);
    expect(Date.now() - started).toBeLessThan(2_000);
    fake.reset();
    useEmbedder(openAiEmbedder());
    expectError(failed, 503, "request.timeout", "any");
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(fake.stats.requestsAborted).toBe(1);
    const { middle } = await expectBeforeOrAfter(T().db, request, before);
    expect(middle).toEqual(before);
  });

  it("during the atomic write: 503 request.timeout, and the write that finishes later is whole", async () => {
    useDb(T().db);
    const { request, user } = await ingestCase(T().db);
    const before = await snapshot(T().db);
    const lock = await lockDocument(T(), user, "a");
    const pending = invokeWithin(1_500, request);
    await lock.waiter(); // the write's transaction is open and waits: the deadline comes inside it
    expectError(await pending, 503, "request.timeout", "any");
    await lock.release();
    const { middle, after } = await expectBeforeOrAfter(T().db, request, before, () => settled(T()));
    expect(middle).toEqual(after);
  });

  it("one request's deadline does not cut short another request running beside it", async () => {
    useDb(T().db);
    const slow = await ingestCase(T().db);
    const short = await ingestCase(T().db);
    // Slower than the short deadline, well within the embedder's timeout.
    fake.delayMs = 300;
    const [patient, hurried] = await Promise.all([
      invokeWithin(20_000, slow.request),
      invokeWithin(200, short.request),
    ]);
    expectError(hurried, 503, "request.timeout", "any");
    expect(patient.status, JSON.stringify(patient.body)).toBe(200);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The chat model fails
// ---------------------------------------------------------------------------------------------------------------

describe.each(["pg", "neon-http"] as const)("the chat model failing on %s", (driver) => {
  const T = () => (driver === "pg" ? pgT : neonT);
  const ask = (body: Record<string, unknown>, user = "chatter") =>
    invoke({ method: "POST", path: "/v1/chat", headers: headers(T().db, user), body });
  const question = (content: string) => ({ messages: [{ role: "user", content }] });

  beforeAll(async () => {
    useDb(T().db);
    const seeded = await invoke({
      method: "POST",
      path: "/v1/ingest",
      headers: headers(T().db, "chatter"),
      body: { documents: [{ id: "refunds", content: "Refunds are issued within 14 days of a return." }] },
    });
    expect(seeded.status).toBe(200);
  });
  // Retrieval embeds offline: only the chat model talks to the fake server.
  const offline = () => useEmbedder(createOfflineEmbedder({ dimensions: 1536 }));

  const cases: { name: string; arm: () => void; status: number; code: string; retryAfter?: string }[] = [
    {
      name: "429 with a Retry-After longer than we wait",
      arm: () => fake.failNext(2, { status: 429, retryAfter: 60 }),
      status: 503,
      code: "chat.rate_limited",
      retryAfter: "60",
    },
    { name: "500s on every attempt", arm: () => fake.failNext(2, { status: 500 }), status: 502, code: "chat.failed" },
    {
      name: "answers slower than the timeout",
      arm: () => {
        fake.delayMs = UPSTREAM_TIMEOUT_MS * 3;
      },
      status: 502,
      code: "chat.failed",
    },
    { name: "answers 200 with a malformed body", arm: () => fake.malformedNext(2), status: 502, code: "chat.failed" },
    {
      name: "drops the stream before its first token, every attempt",
      arm: () => fake.dropNextStreams(2, 0),
      status: 502,
      code: "chat.failed",
    },
  ];

  it.each(cases)("$name: $status $code, no turn and no memory stored, the retry answers", async (c) => {
    useDb(T().db);
    offline();
    const streams = c.name.includes("stream");
    const body = { ...question(`What is the refund window? (${c.name})`), remember: true, stream: streams };
    const before = await snapshot(T().db);
    c.arm();
    const failed = await ask(body);
    fake.reset();
    expectError(failed, c.status, c.code, c.retryAfter);
    expect(await snapshot(T().db)).toEqual(before);
    const retried = await ask(body);
    expect(retried.status).toBe(200);
    const after = await snapshot(T().db);
    expect(after.messages.length).toBe(before.messages.length + 2);
  });

  it("drops the stream after the first tokens: the answer ends with an error event and nothing is stored", async () => {
    useDb(T().db);
    offline();
    const before = await snapshot(T().db);
    fake.dropNextStreams(1, 2);
    const res = await ask({ ...question("What is the refund window? (dropped)"), remember: true, stream: true });
    expect(res.status).toBe(200);
    const events = String(res.body)
      .split("\n\n")
      .filter((frame) => frame.trim())
      .map((frame) => /^event: (.*)$/m.exec(frame)?.[1]);
    expect(events[0]).toBe("citations");
    expect(events).toContain("delta");
    expect(events.at(-1)).toBe("error");
    expect(String(res.body)).toMatch(/"code":"chat\.failed"/);
    expect(await snapshot(T().db)).toEqual(before);
  });

  // With `remember`, the memory document and the turn are one batch: the database failing under it leaves the
  // state before (no memory, no empty conversation), so the client's retry starts from scratch.
  it("the database failing while storing a remembered turn leaves the state before", async () => {
    offline();
    let batches = 0;
    const inner = T().db;
    const flaky: Db = {
      ...inner,
      driver: inner.driver,
      query: (q, o) => inner.query(q, o),
      batch: async () => {
        batches++;
        throw mapDbError(new Error("Connection terminated unexpectedly"));
      },
    };
    useDb(flaky);
    const before = await snapshot(T().db);
    const failed = await ask({ ...question("Remember that my parcel is blue"), remember: true });
    useDb(T().db);
    expectError(failed, 503, "database.unavailable", "any");
    expect(batches).toBe(1);
    expect(await snapshot(T().db)).toEqual(before);
    // The retry stores the memory and the turn together.
    const retried = await ask({ ...question("Remember that my parcel is blue"), remember: true });
    expect(retried.status, JSON.stringify(retried.body)).toBe(200);
    const after = await snapshot(T().db);
    const memories = (s: typeof before) => s.documents.filter((d) => String(d.id).startsWith("mem_"));
    expect(memories(after)).toHaveLength(memories(before).length + 1);
    expect(after.messages).toHaveLength(before.messages.length + 2);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// PATCH's two steps
// ---------------------------------------------------------------------------------------------------------------

describe.each(["pg", "neon-http"] as const)("PATCH with the database failing after its write on %s", (driver) => {
  const T = () => (driver === "pg" ? pgT : neonT);
  it("changes content and clears the TTL together, or neither", async () => {
    useDb(T().db);
    useEmbedder(createOfflineEmbedder({ dimensions: 1536 }));
    const user = `patcher${++scenario}`;
    const created = await invoke({
      method: "POST",
      path: "/v1/ingest",
      headers: headers(T().db, user),
      body: { documents: [{ id: "p", content: "Expiring text.", ttlSeconds: 3600 }] },
    });
    expect(created.status).toBe(200);
    const request: EventInput = {
      method: "PATCH",
      path: "/v1/documents/p",
      headers: headers(T().db, user),
      body: { content: "Kept for good.", ttlSeconds: null },
    };
    // Fail the first statement after the write's batch (the old code's separate TTL update).
    let armed = false;
    const inner = T().db;
    const flaky: Db = {
      ...inner,
      driver: inner.driver,
      query: async (q, o) => {
        if (armed) {
          armed = false;
          throw mapDbError(new Error("Connection terminated unexpectedly"));
        }
        return inner.query(q, o);
      },
      batch: async (queries) => {
        const result = await inner.batch(queries);
        armed = true;
        return result;
      },
    };
    const before = await snapshot(T().db);
    useDb(flaky);
    const failed = await invoke(request);
    useDb(T().db);
    expectError(failed, 503, "database.unavailable", "any");
    const middle = await snapshot(T().db);
    const retried = await invoke(request);
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ expiresAt: null, content: "Kept for good." });
    const after = await snapshot(T().db);
    expect([before, after]).toContainEqual(middle);
  });
});
