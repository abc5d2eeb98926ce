/** `POST /v1/search` and `Search.query` through every driver: modes, scope, filters, cache, bad input. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "../../core/auth";
import * as Auth from "../../core/auth";
import { setConfig } from "../../core/config";
import { type Db, useDb } from "../../core/db";
import * as Document from "../../core/document";
import type { DocumentInput } from "../../core/document/schema";
import { type Embedder, useEmbedder } from "../../core/embedding";
import { createOfflineEmbedder } from "../../core/embedding/offline";
import { EngramError } from "../../core/error";
import * as Ingest from "../../core/ingest";
import * as Search from "../../core/search";
import * as Indexer from "../../core/search/indexer";
import { callerFor, DIMENSIONS, DRIVERS, freshDb, type TestDb } from "../../kit/db";
import { invoke } from "../../kit/events";
import { documents, questions } from "../fixtures/retrieval/corpus";

/**
 * The offline embedder's vectors behind a paid model's name, counting the texts it is asked to embed: search caches
 * the query vectors of remote models only (the offline embedder's cost nothing to compute again).
 */
function counting(dimensions: number): Embedder & { calls: number; fail: boolean } {
  const inner = createOfflineEmbedder({ dimensions });
  const wrapper = {
    provider: "openai" as const,
    model: inner.model,
    dimensions: inner.dimensions,
    calls: 0,
    fail: false,
    async embed(texts: string[], opts?: { signal?: AbortSignal }) {
      wrapper.calls += 1;
      if (wrapper.fail) throw Object.assign(new Error("upstream down"), { status: 500 });
      return inner.embed(texts, opts);
    },
  };
  return wrapper;
}

const doc = (id: string, content: string, extra: Partial<DocumentInput> = {}): DocumentInput => ({
  id,
  content,
  ...extra,
});

beforeAll(() => {
  setConfig({ LOG_LEVEL: "silent" });
});

describe.each(DRIVERS)("search on %s", (driver) => {
  let t: TestDb;
  let db: Db;
  let embedder: ReturnType<typeof counting>;
  let shared: Caller;
  let alice: Caller;
  let bob: Caller;
  let other: Caller;
  let key: string;

  const search = (caller: Caller, request: Search.SearchInput, options = {}) =>
    Search.query(db, caller, Search.SearchRequest.parse(request), { embedder, ...options });
  const post = (body: unknown, user?: string) =>
    invoke({
      method: "POST",
      path: "/v1/search",
      headers: { authorization: `Bearer ${key}`, ...(user ? { "x-user-id": user } : {}) },
      body,
    });

  beforeAll(async () => {
    t = await freshDb(driver);
    db = t.db;
    useDb(db);
    embedder = counting(DIMENSIONS);
    useEmbedder(embedder);
    shared = await callerFor(db, "acme");
    alice = { ...shared, userId: "alice" };
    bob = { ...shared, userId: "bob" };
    other = await callerFor(db, "globex", "alice");
    key = (await Auth.createKey(db, "acme")).key;
    await Ingest.run(db, shared, documents, { embedder });
    await Ingest.run(
      db,
      alice,
      [
        doc("alice-notes", "Alice's private note: the ERR-4021 retry budget is three attempts.", {
          metadata: { team: "payments", tags: ["retry"] },
          importance: 8,
          conversationId: "conv-1",
        }),
        doc("alice-diary", "Alice's diary: bake banana bread on Sunday.", {
          metadata: { team: "home" },
          importance: 2,
        }),
      ],
      { embedder },
    );
    await Ingest.run(db, bob, [doc("bob-notes", "Bob's private note: ERR-4021 happened twice today.")], { embedder });
    await Ingest.run(db, other, [doc("globex-notes", "Globex: ERR-4021 is our code too.")], { embedder });
  });
  afterAll(async () => {
    useEmbedder(undefined);
    await t?.close();
  });

  it("finds the expected document in the top 5 for at least 90% of the labelled questions (hybrid)", async () => {
    const misses: string[] = [];
    for (const { question, expected } of questions) {
      const { results } = await search(shared, { query: question, topK: 5 });
      if (!results.some((r) => r.documentId === expected)) misses.push(`${question} -> ${expected}`);
    }
    const hitRate = 1 - misses.length / questions.length;
    const alone: string[] = [];
    for (const mode of ["vector", "keyword"] as const) {
      let hits = 0;
      for (const { question, expected } of questions) {
        const { results } = await search(shared, { query: question, topK: 5, mode });
        if (results.some((r) => r.documentId === expected)) hits++;
      }
      alone.push(`${mode} ${((hits / questions.length) * 100).toFixed(1)}%`);
    }

    console.log(
      `[${driver}] hybrid hit rate@5: ${(hitRate * 100).toFixed(1)}% of ${questions.length} (alone: ${alone.join(", ")})`,
      misses,
    );
    expect(hitRate).toBeGreaterThanOrEqual(0.9);
  });

  it("answers each mode with the documented shape and names the score's scale", async () => {
    const vector = await search(shared, { query: "return a product for a full refund", mode: "vector", topK: 3 });
    const keyword = await search(shared, { query: "refund", mode: "keyword", topK: 3 });
    const hybrid = await search(shared, { query: "refund", topK: 3 });

    expect(vector).toMatchObject({ mode: "vector", scale: "cosine_similarity" });
    expect(keyword).toMatchObject({ mode: "keyword", scale: "bm25" });
    expect(hybrid).toMatchObject({ mode: "hybrid", scale: "fused" });
    for (const response of [vector, keyword, hybrid]) {
      expect(response.results.length).toBeGreaterThan(0);
      expect(response.tookMs).toBeGreaterThanOrEqual(0);
      expect(response.results[0]).toEqual({
        documentId: "policy-refunds",
        scope: "shared",
        chunkId: expect.stringMatching(/^\d+$/),
        ordinal: 0,
        content: expect.stringContaining("full refund"),
        score: expect.any(Number),
        title: "Refund policy",
        source: null,
        metadata: {},
        createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        location: null,
        ...(response === hybrid ? { legs: { vector: expect.any(Number), keyword: expect.any(Number) } } : {}),
      });
      const scores = response.results.map((r) => r.score);
      expect(scores).toEqual([...scores].sort((a, b) => b - a));
    }
    for (const r of vector.results) expect(r.score).toBeGreaterThanOrEqual(-1);
    for (const r of vector.results) expect(r.score).toBeLessThanOrEqual(1);
    for (const r of [...keyword.results, ...hybrid.results]) expect(r.score).toBeGreaterThan(0);
    for (const r of [...keyword.results, ...hybrid.results]) expect(r.score).toBeLessThanOrEqual(1);
  });

  it("serves POST /v1/search through the middleware chain", async () => {
    const response = await post({ query: "ERR-4021 retry budget", topK: 5 }, "alice");

    expect(response.status).toBe(200);
    expect(response.body.scale).toBe("fused");
    expect(response.body.results.map((r: { documentId: string }) => r.documentId)).toContain("alice-notes");
  });

  it("reads the caller's own space plus the shared one, and never another user's or tenant's", async () => {
    // Keyword mode matches any word of the query ("err" too), and ranks the documents naming ERR-4021 first.
    const ids = async (caller: Caller, scope?: "all" | "user" | "shared") =>
      (await search(caller, { query: "ERR-4021", mode: "keyword", topK: 50, scope })).results.map((r) => r.documentId);
    const notes = ["alice-notes", "bob-notes", "globex-notes"];

    const all = await ids(alice);
    const mine = await ids(alice, "user");
    const sharedOnly = await ids(alice, "shared");
    const anonymous = await ids(shared);

    expect(all.slice(0, 2).sort()).toEqual(["alice-notes", "eng-err-4021"]);
    expect(all.filter((id) => notes.includes(id))).toEqual(["alice-notes"]);
    expect(mine).toEqual(["alice-notes"]);
    expect(sharedOnly[0]).toBe("eng-err-4021");
    expect(sharedOnly.filter((id) => notes.includes(id))).toEqual([]);
    expect(anonymous[0]).toBe("eng-err-4021");
    expect(anonymous.filter((id) => notes.includes(id))).toEqual([]);
    expect(await ids(bob)).not.toContain("alice-notes");
    expect(await ids(other)).toEqual(["globex-notes"]);
  });

  it("never returns another user's or tenant's chunks in vector or hybrid mode either", async () => {
    for (const mode of ["vector", "hybrid"] as const) {
      const { results } = await search(bob, { query: "Alice's private note ERR-4021", mode, topK: 50 });
      const ids = new Set(results.map((r) => r.documentId));
      expect(ids.has("bob-notes")).toBe(true);
      expect(ids.has("alice-notes")).toBe(false);
      expect(ids.has("globex-notes")).toBe(false);
    }
  });

  it("filters by metadata containment, document ids, conversation, importance and creation time", async () => {
    const ids = async (filter: Record<string, unknown>) =>
      (await search(alice, { query: "note diary bread ERR-4021", mode: "vector", topK: 50, filter })).results
        .map((r) => r.documentId)
        .sort();
    const future = new Date(Date.now() + 3_600_000).toISOString();

    expect(await ids({ metadata: { team: "payments" } })).toEqual(["alice-notes"]);
    expect(await ids({ metadata: { tags: ["retry"] } })).toEqual(["alice-notes"]);
    expect(await ids({ documentIds: ["alice-diary", "policy-refunds"] })).toEqual(["alice-diary", "policy-refunds"]);
    expect(await ids({ conversationId: "conv-1" })).toEqual(["alice-notes"]);
    expect(await ids({ minImportance: 6 })).toEqual(["alice-notes"]);
    expect(await ids({ createdAfter: future })).toEqual([]);
    expect((await ids({ createdBefore: future })).length).toBe(documents.length + 2);
    // A date alone is its midnight UTC, whatever the database session's time zone: tomorrow's finds nothing yet.
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    expect(await ids({ createdAfter: tomorrow })).toEqual([]);
    expect((await ids({ createdBefore: tomorrow })).length).toBe(documents.length + 2);
    expect(await ids({ metadata: { team: "payments" }, minImportance: 9 })).toEqual([]);
  });

  it("keeps hostile metadata filter strings as data: quotes, backslashes, $$ and SQL", async () => {
    const hostile = { 'we\'ird "key"': 'it\'s "quoted" \\ back\\slash $$ dollar $$; drop table chunks; --' };
    await Ingest.run(db, bob, [doc("bob-hostile", "A note with hostile metadata.", { metadata: hostile })], {
      embedder,
    });

    const found = await search(bob, {
      query: "hostile metadata",
      mode: "hybrid",
      topK: 5,
      filter: { metadata: hostile },
    });
    const partial = await search(bob, {
      query: "hostile metadata",
      topK: 5,
      filter: { metadata: { 'we\'ird "key"': "it's" } },
    });

    expect(found.results.map((r) => r.documentId)).toEqual(["bob-hostile"]);
    expect(found.results[0]?.metadata).toEqual(hostile);
    expect(partial.results).toEqual([]);
  });

  it("answers 400 naming the field for a NUL in a metadata filter or the query, never 500", async () => {
    const nulValue = await post({ query: "x", filter: { metadata: { team: "a\u0000b" } } });
    const nulKey = await post({ query: "x", filter: { metadata: { "a\u0000": "b" } } });
    const nulQuery = await post({ query: "a\u0000b" });
    const loneSurrogate = await post({ query: "caf\uD800e" });

    expect(nulValue.status).toBe(400);
    expect(nulValue.body.error.details[0].path).toBe("filter.metadata.team");
    expect(nulKey.status).toBe(400);
    expect(nulKey.body.error.details[0].path).toMatch(/^filter\.metadata/);
    expect(nulQuery.status).toBe(400);
    expect(nulQuery.body.error.details[0].path).toBe("query");
    // The same code as ingest and chat give for text Postgres cannot store.
    expect(nulQuery.body.error.code).toBe("request.invalid_text");
    expect(loneSurrogate.status).toBe(400);
    expect(loneSurrogate.body.error).toMatchObject({ code: "request.invalid_text", details: [{ path: "query" }] });
  });

  it("hides soft-deleted documents at once", async () => {
    await Ingest.run(db, bob, [doc("bob-temp", "Zanzibar quokka itinerary"), doc("bob-kept", "A quokka photo")], {
      embedder,
    });
    const before = await search(bob, { query: "Zanzibar quokka", topK: 5 });
    const keywordBefore = await search(bob, { query: "Zanzibar quokka", mode: "keyword", topK: 1 });

    await Document.remove(db, bob, "bob-temp", { hard: false });
    const after = await search(bob, { query: "Zanzibar quokka", topK: 5 });
    const vectorAfter = await search(bob, { query: "Zanzibar quokka", mode: "vector", topK: 50 });
    // The deleted chunk still ranks first among the keyword matches: the next live one takes its place.
    const keywordAfter = await search(bob, { query: "Zanzibar quokka", mode: "keyword", topK: 1 });

    expect(before.results[0]?.documentId).toBe("bob-temp");
    expect(keywordBefore.results.map((r) => r.documentId)).toEqual(["bob-temp"]);
    expect(after.results.map((r) => r.documentId)).not.toContain("bob-temp");
    expect(vectorAfter.results.map((r) => r.documentId)).not.toContain("bob-temp");
    expect(keywordAfter.results.map((r) => r.documentId)).toEqual(["bob-kept"]);
  });

  it("drops results below minScore on the mode's scale", async () => {
    const all = await search(shared, { query: "refund policy", mode: "vector", topK: 10 });
    const threshold = all.results[2]?.score ?? 1;

    const some = await search(shared, { query: "refund policy", mode: "vector", topK: 10, minScore: threshold });
    const none = await search(shared, { query: "refund policy", mode: "keyword", topK: 10, minScore: 0.999 });

    expect(some.results.length).toBe(3);
    for (const r of some.results) expect(r.score).toBeGreaterThanOrEqual(threshold);
    expect(none.results).toEqual([]);
  });

  it("makes no embedding call in keyword mode, and none for a repeated query", async () => {
    const before = embedder.calls;
    await search(shared, { query: "keyword only refund", mode: "keyword" });
    const afterKeyword = embedder.calls;

    await search(shared, { query: "a question asked twice", mode: "hybrid" });
    const afterFirst = embedder.calls;
    const second = await search(shared, { query: "  a question   asked twice ", mode: "vector" });
    const afterSecond = embedder.calls;

    expect(afterKeyword).toBe(before);
    expect(afterFirst).toBe(afterKeyword + 1);
    expect(afterSecond).toBe(afterFirst);
    expect(second.usage.embeddingTokens).toBe(0);
  });

  it("serves a repeated query from the database cache when this process has forgotten it, and from memory when the cache row is gone", async () => {
    const query = "a question remembered in two places";
    await search(shared, { query, mode: "vector" });
    const afterFirst = embedder.calls;

    Search.forgetRecentQueries(); // a fresh Lambda instance: only the database cache knows it
    const fromDb = await search(shared, { query, mode: "vector" });
    expect(embedder.calls).toBe(afterFirst);

    await db.query({ text: "delete from cache where tenant_id = $1", params: [shared.tenantId] });
    const fromMemory = await search(shared, { query, mode: "vector" });
    expect(embedder.calls).toBe(afterFirst);
    expect(fromMemory.results.map((r) => r.chunkId)).toEqual(fromDb.results.map((r) => r.chunkId));

    Search.forgetRecentQueries(); // and neither: embedded again
    await search(shared, { query, mode: "vector" });
    expect(embedder.calls).toBe(afterFirst + 1);
    // Another tenant asking the same text embeds it itself: nothing is shared across tenants.
    await search(other, { query, mode: "vector" });
    expect(embedder.calls).toBe(afterFirst + 2);
  });

  it("keeps each end user's remembered queries their own: another user's same question is embedded again", async () => {
    const query = "is my salary above the band for staff engineers";
    await search(alice, { query, mode: "vector" });
    const afterAlice = embedder.calls;
    // Shared, bob's `embeddingTokens: 0` had told him that someone in his tenant asked exactly this.
    const asBob = await search(bob, { query, mode: "vector" });
    expect([embedder.calls, asBob.usage.embeddingTokens > 0]).toEqual([afterAlice + 1, true]);
    const again = await search(alice, { query, mode: "vector" });
    expect([embedder.calls, again.usage.embeddingTokens]).toEqual([afterAlice + 1, 0]);
  });

  it("pays no embedding for a made-up key: the gate checks a key it has not seen accepted before the query is embedded", async () => {
    const before = embedder.calls;
    for (const bogus of ["egm_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1", `${key.slice(0, 16)}${"Z".repeat(20)}`.slice(0, 36)]) {
      const refused = await invoke({
        method: "POST",
        path: "/v1/search",
        headers: { authorization: `Bearer ${bogus}` },
        body: { query: `a question asked with ${bogus}` },
      });
      expect([refused.status, refused.body.error.code]).toEqual([401, "auth.invalid_key"]);
    }
    expect(embedder.calls).toBe(before);
    // A real key still searches, and is embedded for once the gate has accepted it.
    const first = await post({ query: "a question asked with the real key", mode: "vector" });
    expect([first.status, embedder.calls]).toEqual([200, before + 1]);
  });

  it("answers 502 when the query cannot be embedded, while keyword mode still works", async () => {
    embedder.fail = true;
    try {
      const failed = await search(shared, { query: "an uncached question about refunds", mode: "hybrid" }).catch(
        (e: unknown) => e,
      );
      const keyword = await search(shared, { query: "refunds", mode: "keyword" });
      const viaHttp = await post({ query: "another uncached question", mode: "vector" });

      expect(failed).toBeInstanceOf(EngramError);
      expect((failed as EngramError).status).toBe(502);
      expect(keyword.results[0]?.documentId).toBe("policy-refunds");
      expect(viaHttp.status).toBe(502);
      expect(viaHttp.body.error.code).toBe("embedding.failed");
    } finally {
      embedder.fail = false;
    }
  });

  it.each([
    [{ query: "" }, "query"],
    [{ query: "   " }, "query"],
    [{ query: "\u200b\ufeff" }, "query"],
    [{ query: "x".repeat(2001) }, "query"],
    [{ query: "x", topK: 0 }, "topK"],
    [{ query: "x", topK: 51 }, "topK"],
    [{ query: "x", topK: 2.5 }, "topK"],
    [{ query: "x", mode: "fuzzy" }, "mode"],
    [{ query: "x", scope: "everyone" }, "scope"],
    [{ query: "x", filter: "team=sales" }, "filter"],
    [{ query: "x", filter: { metadata: "sales" } }, "filter.metadata"],
    [{ query: "x", filter: { metadata: ["sales"] } }, "filter.metadata"],
    [{ query: "x", filter: { documentIds: "doc-1" } }, "filter.documentIds"],
    [{ query: "x", filter: { minImportance: 11 } }, "filter.minImportance"],
    [{ query: "x", filter: { createdAfter: "yesterday" } }, "filter.createdAfter"],
    [{ query: "x", filter: { createdBefore: "2026-13-01T00:00:00Z" } }, "filter.createdBefore"],
    [{ query: "x", filter: { team: "sales" } }, "filter"],
    [{ query: "x", mode: "vector", minScore: 1.5 }, "minScore"],
    [{ query: "x", mode: "keyword", minScore: -0.1 }, "minScore"],
    [{ query: "x", mode: "hybrid", minScore: 2 }, "minScore"],
  ])("answers 400 naming the field for %j", async (body, field) => {
    const response = await post(body);

    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe("request.invalid");
    expect(response.body.error.details.map((d: { path: string }) => d.path)).toContain(field);
  });

  it("says whose space each result's document is in, and GET opens that one when a user's id is also a shared id", async () => {
    // One id, two documents: the tenant's shared `refunds` and alice's own.
    const sharedText = "Shared refunds: a returned parcel is refunded to the original card within nine days.";
    const ownText = "Alice's refunds: she keeps her receipts in the blue folder on the kitchen shelf.";
    await Ingest.run(db, shared, [doc("refunds", sharedText)], { embedder });
    await Ingest.run(db, alice, [doc("refunds", ownText)], { embedder });
    const open = (query: Record<string, string>, user?: string, id = "refunds") =>
      invoke({
        method: "GET",
        path: `/v1/documents/${id}`,
        headers: { authorization: `Bearer ${key}`, ...(user ? { "x-user-id": user } : {}) },
        query: { track: "false", ...query },
      });
    const pairs = (results: Search.SearchResult[]) =>
      results.filter((r) => r.documentId === "refunds").map((r) => [r.scope, r.content]);

    // Each mode names each result's space; both documents of the id come back, told apart.
    const both = [
      ["shared", sharedText],
      ["user", ownText],
    ];
    for (const mode of ["hybrid", "vector"] as const) {
      const { results } = await search(alice, {
        query: "refunds",
        mode,
        topK: 50,
        filter: { documentIds: ["refunds"] },
      });
      expect(pairs(results).sort()).toEqual(both);
    }
    const keyword = await search(alice, { query: "returned parcel refunded nine days", mode: "keyword", topK: 50 });
    expect(pairs(keyword.results)[0]).toEqual(["shared", sharedText]);
    const alices = (r: Search.SearchResult) => r.documentId.startsWith("alice-") || r.content === ownText;
    for (const r of keyword.results) expect(r.scope).toBe(alices(r) ? "user" : "shared");
    // Scoped searches, and a caller without an end user: its space is the shared one.
    for (const r of (await search(alice, { query: "refunds", topK: 50, scope: "user" })).results)
      expect(r.scope).toBe("user");
    for (const r of (await search(alice, { query: "refunds", topK: 50, scope: "shared" })).results)
      expect(r.scope).toBe("shared");
    const anonymous = await search(shared, { query: "refunds", topK: 50 });
    expect(anonymous.results.length).toBeGreaterThan(0);
    for (const r of anonymous.results) expect(r.scope).toBe("shared");

    // Over HTTP, the result names its space, and GET with it opens the document holding the passage.
    const posted = await post({ query: "returned parcel refunded nine days", mode: "keyword", topK: 1 }, "alice");
    expect(posted.body.results[0]).toMatchObject({ documentId: "refunds", scope: "shared", content: sharedText });
    const opened = await open({ scope: posted.body.results[0].scope }, "alice");
    expect([opened.status, opened.body.scope, opened.body.content]).toEqual([200, "shared", sharedText]);
    // The default is unchanged: the caller's own, else the shared one; `user` is the caller's own only.
    expect((await open({}, "alice")).body).toMatchObject({ scope: "user", content: ownText });
    expect((await open({ scope: "user" }, "alice")).body).toMatchObject({ scope: "user", content: ownText });
    expect((await open({}, "bob")).body).toMatchObject({ scope: "shared", content: sharedText });
    expect((await open({ scope: "shared" }, "bob")).body).toMatchObject({ scope: "shared", content: sharedText });
    const bobsOwn = await open({ scope: "user" }, "bob");
    expect([bobsOwn.status, bobsOwn.body.error?.code]).toEqual([404, "document.not_found"]);
    // Without an end user the caller's own space is the shared one.
    for (const scope of [undefined, "user", "shared"]) {
      const res = await open(scope ? { scope } : {});
      expect([res.status, res.body.scope, res.body.content]).toEqual([200, "shared", sharedText]);
    }
    // A `track`ed read with a scope counts an access on that document alone.
    const counts = async () =>
      Promise.all(
        [shared, alice].map(
          async (c) => (await Document.get(db, c, "refunds", { track: false, scope: "user" })).accessCount,
        ),
      );
    const before = await counts();
    expect((await open({ scope: "shared", track: "true" }, "alice")).status).toBe(200);
    expect(await counts()).toEqual([(before[0] ?? 0) + 1, before[1]]);

    // Another user's or tenant's document is a plain 404 with any scope, and an unknown scope is refused.
    for (const scope of [undefined, "user", "shared"] as const) {
      const query: Record<string, string> = scope ? { scope } : {};
      for (const [user, id] of [
        ["alice", "bob-notes"],
        ["bob", "alice-notes"],
        ["alice", "globex-notes"],
        [undefined, "alice-notes"],
      ] as const) {
        const res = await open(query, user, id);
        expect([user, id, scope, res.status, res.body.error?.code]).toEqual([
          user,
          id,
          scope,
          404,
          "document.not_found",
        ]);
      }
      await expect(Document.get(db, other, "refunds", { track: false, scope })).rejects.toMatchObject({ status: 404 });
    }
    for (const scope of ["all", "everyone", "", "USER"]) {
      const res = await open({ scope }, "alice");
      expect([scope, res.status, res.body.error?.code]).toEqual([scope, 400, "request.invalid"]);
      expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain("scope");
    }
  });
});

describe.each(DRIVERS)("filtered vector search on %s with many chunks", (driver) => {
  // Small vectors keep 2,000 inserts into an HNSW index quick; the plans are the same.
  const dims = 64;
  let t: TestDb;
  let caller: Caller;
  const embedder = createOfflineEmbedder({ dimensions: dims });
  const topics = ["invoice", "shipment", "warranty", "refund", "payroll", "laptop", "recipe", "deploy"];

  beforeAll(async () => {
    t = await freshDb(driver, { dimensions: dims });
    caller = await callerFor(t.db, "bulk", "u1");
    const docs: DocumentInput[] = [];
    for (let i = 0; i < 2000; i++) {
      const topic = topics[i % topics.length];
      docs.push(
        doc(`d${i}`, `Note ${i} about the ${topic} number ${i % 97} and item ${i % 13}.`, {
          // 1% of the documents: every 100th.
          metadata: { rare: i % 100 === 7, bucket: i % 100 },
        }),
      );
    }
    for (let i = 0; i < docs.length; i += 500) await Ingest.run(t.db, caller, docs.slice(i, i + 500), { embedder });
    if (driver !== "pglite") {
      // Half the chunks in the HNSW index, half still waiting for it: the index path reads both.
      await Indexer.catchUp(t.db, { limit: 1000 });
      await t.db.query({ text: "analyze chunks", params: [] });
    }
  }, 180_000);
  afterAll(() => t?.close());

  it("gives exact results when the remembered size of a scope has gone stale, either way", async () => {
    setConfig({ LOG_LEVEL: "silent", SEARCH_EXACT_SCAN_CHUNKS: "100" });
    Search.forgetRecentQueries();
    try {
      const request = { query: "a note about the warranty", mode: "vector" as const, topK: 10, scope: "user" as const };
      const exact = (who: Caller) =>
        Search.query(t.db, who, Search.SearchRequest.parse(request), { embedder, strategy: "exact" });
      const auto = (who: Caller) => Search.query(t.db, who, Search.SearchRequest.parse(request), { embedder });
      const docs = (prefix: string, count: number) =>
        Array.from({ length: count }, (_, i) =>
          doc(`${prefix}${i}`, `A note ${i} about the warranty of item ${i % 7}.`),
        );

      // Remembered as large (500 chunks, over the bound), then all but three deleted: the index path comes
      // back short and the exact scan fills in.
      const shrinking = { ...caller, userId: "shrinking" };
      await Ingest.run(t.db, shrinking, docs("s", 500), { embedder });
      await auto(shrinking);
      await t.db.query({
        text: "update documents set deleted_at = now() where tenant_id = $1 and owner = 'shrinking' and id not in ('s1', 's2', 's3')",
        params: [shrinking.tenantId],
      });
      const shrunk = await auto(shrinking);
      expect(shrunk.results.map((r) => r.documentId).sort()).toEqual(["s1", "s2", "s3"]);

      // Remembered as small (20 chunks), then grown past the bound: still the exact ranking.
      const growing = { ...caller, userId: "growing" };
      await Ingest.run(t.db, growing, docs("g", 20), { embedder });
      await auto(growing);
      await Ingest.run(t.db, growing, docs("h", 480), { embedder });
      const grown = await auto(growing);
      expect(grown.results.map((r) => r.chunkId)).toEqual((await exact(growing)).results.map((r) => r.chunkId));
    } finally {
      setConfig({ LOG_LEVEL: "silent" });
    }
  });

  it("ranks every keyword match in keyword mode and fills topK in hybrid when a word matches more than hybrid ranks", async () => {
    // "note" is in all 2,000 chunks, more than the matches hybrid ranks; the best of them is stored last.
    expect(2000).toBeGreaterThan(Search.HYBRID_KEYWORD_MATCHES);
    await Ingest.run(t.db, caller, [doc("noted", "Note: note this note, a note on notes.")], { embedder });

    const keyword = await Search.query(
      t.db,
      caller,
      Search.SearchRequest.parse({ query: "note", mode: "keyword", topK: 5 }),
      { embedder },
    );
    const hybrid = await Search.query(
      t.db,
      caller,
      Search.SearchRequest.parse({ query: "note", mode: "hybrid", topK: 5 }),
      { embedder },
    );

    expect(keyword.results[0]?.documentId).toBe("noted");
    expect(keyword.results).toHaveLength(5);
    expect(hybrid.results).toHaveLength(5);
  });

  it.each(["auto", "index", "exact"] as const)(
    "returns a full topK when 1% of the chunks match, using the %s strategy",
    async (strategy) => {
      const request = { query: "a note about the refund", mode: "vector" as const, topK: 10 };
      const exact = await Search.query(
        t.db,
        caller,
        Search.SearchRequest.parse({ ...request, filter: { metadata: { rare: true } } }),
        {
          embedder,
          strategy: "exact",
        },
      );

      const { results } = await Search.query(
        t.db,
        caller,
        Search.SearchRequest.parse({ ...request, filter: { metadata: { rare: true } } }),
        {
          embedder,
          strategy,
        },
      );

      expect(results).toHaveLength(10);
      for (const r of results) expect(r.metadata.rare).toBe(true);
      // The index path re-sorts its relaxed-order results exactly, so it ranks like the exact scan.
      const overlap = results.filter((r) => exact.results.some((e) => e.chunkId === r.chunkId)).length;
      expect(overlap).toBeGreaterThanOrEqual(9);
    },
  );

  it("returns every match when fewer than topK chunks match the filter", async () => {
    for (const strategy of ["auto", "index"] as const) {
      const { results } = await Search.query(
        t.db,
        caller,
        Search.SearchRequest.parse({
          query: "note",
          mode: "vector",
          topK: 10,
          filter: { documentIds: ["d1", "d2", "d3"] },
        }),
        { embedder, strategy },
      );
      expect(results.map((r) => r.documentId).sort()).toEqual(["d1", "d2", "d3"]);
    }
  });

  it("fills topK in hybrid mode when exactly topK chunks match the filter", async () => {
    const { results } = await Search.query(
      t.db,
      caller,
      Search.SearchRequest.parse({ query: "shipment", topK: 20, filter: { metadata: { bucket: 42 } } }),
      { embedder },
    );
    const wide = await Search.query(
      t.db,
      caller,
      Search.SearchRequest.parse({ query: "shipment", topK: 50, mode: "vector" }),
      { embedder },
    );

    expect(results).toHaveLength(20);
    expect(wide.results).toHaveLength(50);
  });
});
