/**
 * Embedding models done safely (#17): search ranks only the active model's vectors, the rest are counted as
 * `stale` and still found by keyword; `Reembed.run` moves them over in atomic batches, resumes after a fault
 * with nothing lost and nothing embedded twice, runs once per tenant at a time, and reuses vectors of the same text.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Caller } from "../../core/auth";
import * as Cleanup from "../../core/cleanup";
import { setConfig } from "../../core/config";
import { compile, type Db, useDb } from "../../core/db";
import * as Document from "../../core/document";
import { embedder as configuredEmbedder, type Embedder } from "../../core/embedding";
import { OFFLINE_MODEL } from "../../core/embedding/offline";
import { createOpenAIEmbedder, type OpenAIEmbedderOptions } from "../../core/embedding/openai";
import * as Reembed from "../../core/embedding/reembed";
import * as Health from "../../core/health";
import * as Ingest from "../../core/ingest";
import * as Search from "../../core/search";
import { callerFor, DRIVERS, freshDb, type TestDb } from "../../kit/db";
import { type FakeOpenAI, fakeEmbedding, startOpenAIServer } from "../../kit/openai-server";

const DIMS = 64;

/**
 * Two "models" that embed a text to the very same vector: were a search ever to compare one model's chunks with
 * the other's query, the chunk holding the query's own text would come first with a score of 1.
 */
function model(name: string, options: { failOnCall?: number; dimensions?: number } = {}) {
  const seen: string[] = [];
  let calls = 0;
  const embedder: Embedder = {
    provider: "openai",
    model: name,
    dimensions: DIMS,
    async embed(texts) {
      calls++;
      if (calls === options.failOnCall) throw Object.assign(new Error("injected: provider down"), { status: 503 });
      seen.push(...texts);
      return { vectors: texts.map((t) => fakeEmbedding(t, options.dimensions ?? DIMS)), tokens: texts.length * 10 };
    },
  };
  return { embedder, seen, calls: () => calls };
}

const docs = (prefix: string, count: number) =>
  Array.from({ length: count }, (_, i) => ({
    id: `${prefix}${i}`,
    content: `Memo ${prefix}${i} about the ${["invoice", "laptop", "refund", "deploy"][i % 4]} number ${i}.`,
  }));

async function models(db: Db): Promise<Record<string, number>> {
  const rows = await db.query<{ m: string; n: number }>(
    sql`select embedding_model as m, count(*)::int as n from chunks group by embedding_model`,
  );
  return Object.fromEntries(rows.map((r) => [r.m, r.n]));
}

async function modelOf(db: Db, chunkIds: string[]): Promise<string[]> {
  const rows = await db.query<{ m: string }>(
    sql`select distinct embedding_model as m from chunks where id = any(${`{${chunkIds.join(",")}}`}::bigint[])`,
  );
  return rows.map((r) => r.m);
}

/** Chunks of `model` outside the HNSW index (migrations/0005), waiting for the indexer. */
async function waiting(db: Db, model: string): Promise<number> {
  const [row] = await db.query<{ n: number }>(
    sql`select count(*)::int as n from chunks where embedding_model = ${model} and not indexed`,
  );
  return Number(row?.n);
}

beforeAll(() => setConfig({ LOG_LEVEL: "silent", SEARCH_QUERY_CACHE_TTL_SECONDS: "0" }));

describe.each(DRIVERS)("switching embedding models on %s", (driver) => {
  let t: TestDb;
  let caller: Caller;
  const search = (request: Search.SearchInput, options: Search.SearchOptions) =>
    Search.query(t.db, caller, Search.SearchRequest.parse(request), options);
  const old = model("model-old");

  beforeAll(async () => {
    t = await freshDb(driver, { dimensions: DIMS });
    caller = await callerFor(t.db, "switch", "u1");
    await Ingest.run(t.db, caller, [...docs("a", 40), { id: "trap", content: "alpha bravo charlie" }], {
      embedder: old.embedder,
    });
  }, 120_000);
  afterAll(() => t?.close());

  it("never ranks another model's vectors, counts them as stale, and keyword still finds them", async () => {
    const next = model("model-new").embedder;
    const strategies = driver === "pglite" ? (["exact"] as const) : (["exact", "index", "auto"] as const);
    for (const strategy of strategies) {
      const vector = await search(
        { query: "alpha bravo charlie", mode: "vector", topK: 5 },
        { embedder: next, strategy },
      );
      expect(vector.results).toEqual([]);
      expect(vector.stale).toBe(41);
    }
    const hybrid = await search({ query: "alpha bravo charlie", mode: "hybrid" }, { embedder: next });
    expect(hybrid.results.map((r) => r.documentId)).toEqual(["trap"]);
    expect(hybrid.stale).toBe(41);
    const keyword = await search({ query: "alpha bravo", mode: "keyword" }, { embedder: next });
    expect(keyword.stale).toBe(0);
    // The old model still ranks its own (what a process not yet switched sees).
    const before = await search({ query: "alpha bravo charlie", mode: "vector", topK: 1 }, { embedder: old.embedder });
    expect(before.results[0]).toMatchObject({ documentId: "trap" });
    expect(before.results[0]?.score).toBeCloseTo(1, 5);
  });

  it("estimates a dry run in chunks, texts and tokens without embedding anything", async () => {
    const next = model("model-new");
    const estimate = await Reembed.estimate(t.db, caller.tenantId, "model-new");
    expect(estimate).toMatchObject({ model: "model-new", chunks: 41, texts: 41 });
    expect(estimate.tokens).toBeGreaterThan(41 * 5);
    expect(next.calls()).toBe(0);
  });

  it("stops cleanly when the provider fails half-way, and the next run resumes: nothing lost, nothing embedded twice", async () => {
    const failing = model("model-new", { failOnCall: 3 });
    const first = await Reembed.run(t.db, { tenantId: caller.tenantId, embedder: failing.embedder, batchSize: 10 });
    expect(first).toMatchObject({ stopped: "error", stale: 41, reembedded: 20, remaining: 21 });
    expect(first.error).toMatch(/provider down/);
    expect(await models(t.db)).toEqual({ "model-old": 21, "model-new": 20 });
    // Written straight into the HNSW index (one row version, no indexer pass); PGlite keeps no index.
    expect(await waiting(t.db, "model-new")).toBe(driver === "pglite" ? 20 : 0);

    // Mid-switch: every vector result is of the new model. (Queries are embedded apart from the counted runs.)
    const queries = model("model-new").embedder;
    for (const query of ["memo about the refund", "alpha bravo charlie", "laptop number 7"]) {
      const r = await search(
        { query, mode: "hybrid", topK: 10 },
        {
          embedder: queries,
        },
      );
      expect(r.stale).toBe(21);
      const v = await search(
        { query, mode: "vector", topK: 10 },
        {
          embedder: queries,
        },
      );
      expect(
        await modelOf(
          t.db,
          v.results.map((x) => x.chunkId),
        ),
      ).toEqual(v.results.length ? ["model-new"] : []);
    }

    const resumed = model("model-new");
    const second = await Reembed.run(t.db, { tenantId: caller.tenantId, embedder: resumed.embedder, batchSize: 10 });
    expect(second).toMatchObject({ stale: 21, reembedded: 21, remaining: 0 });
    expect(second.stopped).toBeUndefined();
    const all = [...failing.seen, ...resumed.seen];
    expect(new Set(all).size).toBe(all.length); // nothing embedded twice
    expect(all).toHaveLength(41); // nothing lost
    expect(await models(t.db)).toEqual({ "model-new": 41 });

    const after = await search({ query: "alpha bravo charlie", mode: "vector", topK: 1 }, { embedder: queries });
    expect(after.results[0]).toMatchObject({ documentId: "trap" });
    expect(after.stale).toBe(0);
    if (driver !== "pglite") {
      expect(await waiting(t.db, "model-new")).toBe(0);
      // Found through the HNSW index alone: the re-embedded vectors are in the graph.
      const indexed = await search(
        { query: "alpha bravo charlie", mode: "vector", topK: 1 },
        { embedder: queries, strategy: "index" },
      );
      expect(indexed.results[0]).toMatchObject({ documentId: "trap" });
      expect(indexed.results[0]?.score).toBeCloseTo(1, 5);
    }
    const state = await Reembed.state(t.db, caller.tenantId, "model-new");
    expect(state).toMatchObject({ model: "model-new", pending: 0, run: { model: "model-new", reembedded: 41 } });
    expect(state.run?.finishedAt).toBeTruthy();
  });

  it("has nothing to do once done", async () => {
    const again = model("model-new");
    expect(await Reembed.run(t.db, { tenantId: caller.tenantId, embedder: again.embedder })).toMatchObject({
      stale: 0,
      reembedded: 0,
      remaining: 0,
    });
    expect(again.calls()).toBe(0);
  });

  it("reuses a vector already computed for the same text and model, and two runs at once embed each text once", async () => {
    const other = await callerFor(t.db, "switch", "u2");
    // u2 stores the same texts as u1 (already of model-new) plus new ones, with the old model.
    await Ingest.run(t.db, other, [...docs("a", 10), ...docs("c", 30)], { embedder: old.embedder });
    const next = model("model-new");
    const [a, b] = await Promise.all([
      Reembed.run(t.db, { tenantId: caller.tenantId, embedder: next.embedder, batchSize: 8 }),
      Reembed.run(t.db, { tenantId: caller.tenantId, embedder: next.embedder, batchSize: 8 }),
    ]);
    expect(a.reembedded + b.reembedded).toBe(40);
    expect(next.seen).toHaveLength(30);
    expect(a.reused + b.reused).toBe(10);
    expect(await models(t.db)).toEqual({ "model-new": 81 });
  });

  it("refuses vectors of the wrong dimension: the batch fails with a clear error and nothing is written", async () => {
    const wrong = model("model-wrong", { dimensions: 32 });
    const report = await Reembed.run(t.db, { tenantId: caller.tenantId, embedder: wrong.embedder });
    expect(report).toMatchObject({ stopped: "error", reembedded: 0, remaining: 81 });
    expect(report.error).toMatch(/returned 32-dimension vectors; 64 are configured/);
    expect(await models(t.db)).toEqual({ "model-new": 81 });
  });

  it("is continued by the scheduled cleanup once begun, with the configured embedder, until done", async () => {
    setConfig({ LOG_LEVEL: "silent", SEARCH_QUERY_CACHE_TTL_SECONDS: "0", EMBEDDING_DIMENSIONS: String(DIMS) });
    try {
      expect((await Cleanup.run(t.db)).reembedded).toBe(0); // nothing begun: the cron pays for nothing
      expect((await Document.stats(t.db, caller)).embedding).toMatchObject({ model: OFFLINE_MODEL, stale: 41 });
      await Reembed.begin(t.db, caller.tenantId, OFFLINE_MODEL, DIMS);
      const first = await Cleanup.run(t.db, { budgetMs: 60_000 });
      expect(first).toMatchObject({ reembedded: 81, complete: true });
      expect(await models(t.db)).toEqual({ [OFFLINE_MODEL]: 81 });
      expect(await Reembed.unfinished(t.db, OFFLINE_MODEL)).toEqual([]);
      const stats = (await Document.stats(t.db, caller)).embedding;
      expect(stats).toMatchObject({ model: OFFLINE_MODEL, dimensions: DIMS, stale: 0 });
      expect(stats.reembed).toMatchObject({ model: OFFLINE_MODEL, reembedded: 81, lastError: null });
      expect(stats.reembed?.finishedAt).toBeTruthy();
    } finally {
      setConfig({ LOG_LEVEL: "silent", SEARCH_QUERY_CACHE_TTL_SECONDS: "0" });
    }
  });

  it("reports in stats only a move to the active model: one to a model configured no more stays that model's until a run of the active one", async () => {
    setConfig({ LOG_LEVEL: "silent", SEARCH_QUERY_CACHE_TTL_SECONDS: "0", EMBEDDING_DIMENSIONS: String(DIMS) });
    try {
      useDb(t.db);
      const back = await callerFor(t.db, "went-back", "u1");
      await Ingest.run(t.db, back, docs("g", 3), { embedder: configuredEmbedder() });
      const reembedding = async () => (await Health.check()).embedder.reembedding;
      const before = await reembedding();
      // `engram reembed` configured for another model, whose provider is down; then the configuration goes back.
      const gone = model("model-gone", { failOnCall: 1 });
      const failed = await Reembed.run(t.db, { tenantId: back.tenantId, embedder: gone.embedder });
      expect(failed).toMatchObject({ stopped: "error", reembedded: 0, remaining: 3 });

      expect((await Document.stats(t.db, back)).embedding).toEqual({
        model: OFFLINE_MODEL,
        dimensions: DIMS,
        stale: 0,
        reembed: null,
      });
      expect(await reembedding()).toBe(before);
      // Kept for that model: configured again, its processes report it and continue it.
      expect((await Reembed.state(t.db, back.tenantId, "model-gone")).run).toMatchObject({
        finishedAt: null,
        lastError: expect.stringMatching(/provider down/),
      });
      expect(await Reembed.unfinished(t.db, "model-gone")).toContain(back.tenantId);
      const gave = (await Reembed.state(t.db, back.tenantId, "model-gone")).run?.startedAt as string;

      // `engram reembed` with the active model finds nothing to do: the record is then its own, started over.
      await new Promise((resolve) => setTimeout(resolve, 5));
      const nothing = await Reembed.run(t.db, { tenantId: back.tenantId, embedder: configuredEmbedder() });
      expect(nothing).toMatchObject({ stale: 0, reembedded: 0 });
      const own = (await Document.stats(t.db, back)).embedding.reembed;
      expect(own).toMatchObject({ model: OFFLINE_MODEL, reembedded: 0, lastError: null, runningUntil: null });
      expect(own?.finishedAt).toBeTruthy();
      expect(Date.parse(own?.startedAt as string)).toBeGreaterThan(Date.parse(gave));
      expect(await Reembed.unfinished(t.db, "model-gone")).not.toContain(back.tenantId);
    } finally {
      setConfig({ LOG_LEVEL: "silent", SEARCH_QUERY_CACHE_TTL_SECONDS: "0" });
    }
  });

  it("leaves a run another process holds to it when asked to begin another, and says which", async () => {
    const held = await callerFor(t.db, "held-run");
    await t.db.query(sql`
      insert into embedding_state (tenant_id, model, dimensions, runner, lease_until)
      values (${held.tenantId}, 'model-held', ${DIMS}, 'other-process', now() + interval '1 minute')`);

    const asked = await Reembed.begin(t.db, held.tenantId, "model-new", DIMS);

    expect(asked.busy).toMatchObject({ model: "model-held" });
    expect((await Reembed.state(t.db, held.tenantId, "model-held")).run).toMatchObject({ finishedAt: null });
    expect((await Reembed.state(t.db, held.tenantId, "model-new")).run).toBeUndefined();
    await t.db.query(
      sql`update embedding_state set lease_until = null, finished_at = now() where tenant_id = ${held.tenantId}`,
    );
    expect(await Reembed.begin(t.db, held.tenantId, "model-new", DIMS)).toEqual({});
    expect((await Reembed.state(t.db, held.tenantId, "model-new")).run).toMatchObject({
      model: "model-new",
      finishedAt: null,
    });
  });

  it("stops at once when interrupted between batches, and a run that died holding the lease is taken over when it expires", async () => {
    const other = await callerFor(t.db, "interrupted", "u1");
    await Ingest.run(t.db, other, docs("i", 30), { embedder: old.embedder });
    const abort = new AbortController();
    const first = model("model-new");
    const stopped = await Reembed.run(t.db, {
      tenantId: other.tenantId,
      embedder: first.embedder,
      batchSize: 10,
      signal: abort.signal,
      onProgress: ({ done }) => done >= 10 && abort.abort(new Error("interrupted")),
    });
    expect(stopped).toMatchObject({ stopped: "error", error: "interrupted", reembedded: 10, remaining: 20 });

    // A run that died: its lease still holds, so nothing is done (and nothing paid) until it expires.
    await t.db.query(sql`
      update embedding_state set runner = 'dead', lease_until = now() + interval '1 minute' where tenant_id = ${other.tenantId}`);
    const second = model("model-new");
    const busy = await Reembed.run(t.db, { tenantId: other.tenantId, embedder: second.embedder });
    expect(busy).toMatchObject({ stopped: "busy", reembedded: 0, remaining: 20 });
    expect(second.calls()).toBe(0);
    await t.db.query(
      sql`update embedding_state set lease_until = now() - interval '1 second' where tenant_id = ${other.tenantId}`,
    );
    const resumed = await Reembed.run(t.db, { tenantId: other.tenantId, embedder: second.embedder });
    expect(resumed).toMatchObject({ reembedded: 20, remaining: 0 });
    expect([...first.seen, ...second.seen]).toHaveLength(30);
    expect(new Set([...first.seen, ...second.seen]).size).toBe(30);
  });

  it("moves the whole tenant when asked while a run for dropped turn context only holds it", async () => {
    const asked = await callerFor(t.db, "asked-whole", "u1");
    await Ingest.run(t.db, asked, docs("w", 10), { embedder: old.embedder });
    // A turn's context was dropped (core/ingest/turns.ts) and a run for it alone begun, to model-whole.
    await t.db.query(sql`
      update chunks set embedding_model = ${Reembed.CONTEXT_DROPPED}
      where id = (select min(id) from chunks where tenant_id = ${asked.tenantId})`);
    await t.db.query(Reembed.beginning(sql`select ${asked.tenantId}::uuid`, "model-whole", DIMS, true));
    let release = () => {};
    let holding = () => {};
    const held = new Promise<void>((resolve) => (holding = resolve));
    const target = model("model-whole");
    const slow: Embedder = {
      ...target.embedder,
      embed: async (texts, options) => {
        holding();
        await new Promise<void>((resolve) => (release = resolve));
        return target.embedder.embed(texts, options);
      },
    };
    const loop = Reembed.run(t.db, { tenantId: asked.tenantId, embedder: slow, continuing: true });
    await held;

    // The operator asks for everything (engram reembed through the server, start --reembed) while it holds the lease.
    expect(await Reembed.begin(t.db, asked.tenantId, "model-whole", DIMS)).toEqual({});
    release();
    await loop;

    expect((await Reembed.state(t.db, asked.tenantId, "model-whole")).run?.finishedAt).toBeNull();
    const next = await Reembed.run(t.db, { tenantId: asked.tenantId, embedder: target.embedder, continuing: true });
    expect(next).toMatchObject({ reembedded: 9, remaining: 0 });
    expect((await Reembed.state(t.db, asked.tenantId, "model-whole")).run?.finishedAt).toBeTruthy();
  });

  it("reports progress that never passes its total when chunks of another model arrive or leave during the run", async () => {
    const busy = await callerFor(t.db, "arriving", "u1");
    await Ingest.run(t.db, busy, docs("p", 20), { embedder: old.embedder });
    const target = model("model-new");
    let calls = 0;
    // While the run embeds: a process still on the old model stores 15 more chunks (first batch), and a document
    // not yet moved is deleted (second batch). The run moves what is stale when it reads, so both change its total.
    const meanwhile: Embedder = {
      ...target.embedder,
      embed: async (texts, options) => {
        calls++;
        if (calls === 1) await Ingest.run(t.db, busy, docs("q", 15), { embedder: old.embedder });
        if (calls === 2) {
          const old = await t.db.query<{ id: string; content: string }>(sql`
            select d.id, c.content from documents d join chunks c on c.document_key = d.key
            where d.tenant_id = ${busy.tenantId} and c.embedding_model = 'model-old'`);
          const left = old.find((c) => !texts.some((x) => x.includes(c.content)));
          await Document.remove(t.db, busy, String(left?.id), { hard: true });
        }
        return target.embedder.embed(texts, options);
      },
    };
    const progress: { done: number; total: number }[] = [];
    const report = await Reembed.run(t.db, {
      tenantId: busy.tenantId,
      embedder: meanwhile,
      batchSize: 10,
      onProgress: (p) => progress.push(p),
    });

    expect(report).toMatchObject({ stale: 20, reembedded: 34, remaining: 0 });
    for (const p of progress) expect(p.done, JSON.stringify(progress)).toBeLessThanOrEqual(p.total);
    // The last report is the whole run, done: 20 + 15 arrived - 1 deleted.
    expect(progress.at(-1)).toEqual({ done: 34, total: 34 });
  });

  it("counts as stale in stats what a search counts: live documents' chunks, not a soft-deleted one's", async () => {
    const other = await callerFor(t.db, "stale-live", "u1");
    await Ingest.run(t.db, other, docs("s", 3), { embedder: old.embedder });
    await Document.remove(t.db, other, "s0", { hard: false });
    const searched = await Search.query(t.db, other, Search.SearchRequest.parse({ query: "memo", mode: "vector" }), {
      embedder: configuredEmbedder(),
    });
    expect(searched.stale).toBe(2);
    expect((await Document.stats(t.db, other)).embedding.stale).toBe(2);
  });
});

describe("re-embedding against an OpenAI-compatible server (pg)", () => {
  let t: TestDb;
  let server: FakeOpenAI;
  let caller: Caller;
  const embedderFor = (model: string, overrides: Partial<OpenAIEmbedderOptions> = {}) =>
    createOpenAIEmbedder({
      apiKey: server.apiKey,
      baseURL: server.url,
      model,
      dimensions: DIMS,
      maxRetries: 2,
      retryBaseMs: 5,
      ...overrides,
    });

  beforeAll(async () => {
    [t, server] = await Promise.all([freshDb("pg", { dimensions: DIMS }), startOpenAIServer()]);
    caller = await callerFor(t.db, "openai", "u1");
    await Ingest.run(t.db, caller, docs("o", 30), { embedder: model("model-old").embedder });
  }, 120_000);
  afterAll(async () => {
    await Promise.all([t?.close(), server?.close()]);
  });

  it("refuses a model whose vectors are not the configured dimension (768 for 64): nothing written", async () => {
    server.modelDimensions["local-768"] = 768;
    const report = await Reembed.run(t.db, { tenantId: caller.tenantId, embedder: embedderFor("local-768") });
    expect(report).toMatchObject({ stopped: "error", reembedded: 0, remaining: 30 });
    expect(report.error).toMatch(/768|dimension/);
    expect(await models(t.db)).toEqual({ "model-old": 30 });
  });

  it("waits out 429s with Retry-After, and when the provider stays down stops, then continues on the next run", async () => {
    server.failNext(2, { status: 429, retryAfter: 0 });
    const first = await Reembed.run(t.db, {
      tenantId: caller.tenantId,
      embedder: embedderFor("text-embedding-3-small"),
      batchSize: 10,
      limit: 10,
    });
    expect(first).toMatchObject({ reembedded: 10, remaining: 20, stopped: "limit" });

    server.failNext(3, { status: 503 }); // the first attempt and both retries of the next batch
    const down = await Reembed.run(t.db, {
      tenantId: caller.tenantId,
      embedder: embedderFor("text-embedding-3-small"),
      batchSize: 10,
    });
    expect(down).toMatchObject({ stopped: "error", reembedded: 0, remaining: 20 });

    const inputs = server.stats.embeddedInputs;
    const rest = await Reembed.run(t.db, {
      tenantId: caller.tenantId,
      embedder: embedderFor("text-embedding-3-small"),
    });
    expect(rest).toMatchObject({ reembedded: 20, remaining: 0 });
    expect(server.stats.embeddedInputs - inputs).toBe(20);
    expect(await models(t.db)).toEqual({ "text-embedding-3-small": 30 });
  });
});

describe("pacing a re-embed (pg)", () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await freshDb("pg", { dimensions: DIMS });
  }, 120_000);
  afterAll(() => t?.close());

  /**
   * The database with each re-embed write (the statement that moves a batch) made 150 ms slower, noting when
   * each write starts.
   */
  const slowWrites = (db: Db, starts: number[]): Db => ({
    ...db,
    query: (async (query, options) => {
      const moving = compile(query).text.includes("with held");
      if (moving) starts.push(performance.now());
      const rows = await db.query(query, options);
      if (moving) await new Promise((r) => setTimeout(r, 150));
      return rows;
    }) as Db["query"],
  });

  // Gaps between a batch's end and the next write, not whole durations: a loaded machine only lengthens the
  // work, and comparing two runs' totals failed when the unpaced one happened to be slower.
  it("rests `pace` times as long as each batch's write took, and not at all at pace 0", async () => {
    const old = model("model-old");
    const gaps = async (tenant: string, pace: number) => {
      const caller = await callerFor(t.db, tenant);
      await Ingest.run(t.db, caller, docs(tenant, 30), { embedder: old.embedder });
      const starts: number[] = [];
      const ends: number[] = [];
      const report = await Reembed.run(slowWrites(t.db, starts), {
        tenantId: caller.tenantId,
        embedder: model("model-new").embedder,
        batchSize: 10,
        pace,
        onProgress: () => ends.push(performance.now()),
      });
      expect(report).toMatchObject({ reembedded: 30, remaining: 0 });
      expect(starts).toHaveLength(3);
      return starts.slice(1).map((start, i) => start - (ends[i] ?? Number.NaN));
    };

    // Each write took at least 150 ms, so pace 4 rests at least 600 ms before the next batch is even read.
    const paced = await gaps("p4", 4);
    expect(paced).toHaveLength(2);
    for (const gap of paced) expect(gap).toBeGreaterThanOrEqual(4 * 150 - 5);
    const unpaced = await gaps("p0", 0);
    for (const gap of unpaced) expect(gap).toBeLessThan(4 * 150 - 5);
  });

  it("keeps the vectors an ingest paid for: a document's unchanged chunks of the old model move to the new one", async () => {
    const kept = await callerFor(t.db, "kept", "u1");
    const sections = (last: string) =>
      ["Refunds", "Shipping", "Returns"]
        .map((h, i) => `## ${h}\n\n${`Sentence ${i} about ${h.toLowerCase()}. `.repeat(60)}`)
        .concat(`## Changes\n\n${last}`)
        .join("\n\n");
    const before = model("model-before");
    await Ingest.run(t.db, kept, [{ id: "policy", content: sections("Nothing changed yet.") }], {
      embedder: before.embedder,
    });
    const after = model("model-after");

    const result = await Ingest.run(t.db, kept, [{ id: "policy", content: sections("One sentence changed.") }], {
      embedder: after.embedder,
    });

    const byModel = await t.db.query<{ m: string; n: number }>(sql`
      select embedding_model as m, count(*)::int as n from chunks where tenant_id = ${kept.tenantId} group by 1`);
    expect(byModel).toEqual([{ m: "model-after", n: result.totals.chunks }]);
    expect(result.totals.embedded).toBe(after.seen.length);
    expect(await waiting(t.db, "model-after")).toBeGreaterThanOrEqual(result.totals.chunks);
    // Nothing left for a re-embedding to pay for again.
    expect(await Reembed.pending(t.db, kept.tenantId, "model-after")).toBe(0);
  });
});

describe.each(DRIVERS)("hybrid search during a switch of models on %s", (driver) => {
  it("finds in hybrid, while every chunk is stale, what keyword mode finds: its gathering no longer counts on vectors", async () => {
    const t = await freshDb(driver, { dimensions: DIMS });
    const other = await callerFor(t.db, "switch-wide", "u1");
    const old = model("model-old");
    // More passages holding both words than hybrid's keyword leg gathers (300, in the table's order), and the best
    // match last: hybrid's vector leg finds such a passage in a search, but during a switch it has no vectors.
    const many = Array.from({ length: Search.HYBRID_KEYWORD_MATCHES + 60 }, (_, i) => ({
      id: `m${i}`,
      content: `Memo ${i}: the refund form, the travel policy and the expense rules for team ${i} are kept in the shared folder.`,
    }));
    await Ingest.run(t.db, other, many, { embedder: old.embedder });
    await Ingest.run(t.db, other, [{ id: "best", content: "Refund policy." }], { embedder: old.embedder });
    const counted = model("model-new");
    const next = counted.embedder;
    const ask = (mode: "hybrid" | "keyword") =>
      Search.query(t.db, other, Search.SearchRequest.parse({ query: "refund policy", mode, topK: 3 }), {
        embedder: next,
      });
    const keyword = await ask("keyword");
    expect(keyword.results[0]?.documentId).toBe("best");
    const hybrid = await ask("hybrid");
    expect(hybrid.stale).toBe(Search.HYBRID_KEYWORD_MATCHES + 61);
    expect(hybrid.results.map((r) => r.documentId)).toEqual(keyword.results.map((r) => r.documentId));
    // Searched twice, embedded once.
    expect(counted.calls()).toBe(1);
    // With a vector of the active model in scope, an empty result (minScore above anything) is searched once.
    await Ingest.run(t.db, other, [{ id: "fresh", content: "A refund note embedded by the new model." }], {
      embedder: next,
    });
    const statements = vi.spyOn(t.db, "query");
    const none = await Search.query(
      t.db,
      other,
      Search.SearchRequest.parse({ query: "refund policy", mode: "hybrid", minScore: 0.999 }),
      { embedder: next },
    );
    expect([none.results, statements.mock.calls.length]).toEqual([[], 1]);
    statements.mockRestore();
    await t.close();
  }, 120_000);
});
