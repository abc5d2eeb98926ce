/**
 * Models above 2,000 dimensions (#17, migrations/0015): text-embedding-3-large's 3,072 dimensions through the
 * OpenAI-compatible fake on every driver: stored as `halfvec`, ingested, re-embedded into, found by search, and
 * served by the HNSW index on `pg`; a database made before 0015 with 3,072 dimensions is converted keeping its rows.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "../../core/auth";
import { setConfig } from "../../core/config";
import type { Db } from "../../core/db";
import { migrate } from "../../core/db/migrate";
import { createPgDb } from "../../core/db/pg";
import { createOpenAIEmbedder } from "../../core/embedding/openai";
import * as Reembed from "../../core/embedding/reembed";
import * as Ingest from "../../core/ingest";
import * as Search from "../../core/search";
import * as Hnsw from "../../core/search/hnsw";
import * as Indexer from "../../core/search/indexer";
import {
  callerFor,
  createDatabase,
  DRIVERS,
  dropDatabase,
  freshDb,
  migrateBefore,
  pgUrl,
  searchPlan,
  type TestDb,
} from "../../kit/db";
import { type FakeOpenAI, startOpenAIServer } from "../../kit/openai-server";

const LARGE = "text-embedding-3-large";
const DIMS = 3072;
const topics = ["invoice", "laptop", "refund", "deploy", "payroll", "warranty"];
const docs = (prefix: string, count: number) =>
  Array.from({ length: count }, (_, i) => ({
    id: `${prefix}${i}`,
    content: `Memo ${prefix}${i} about the ${topics[i % topics.length]} number ${i}.`,
  }));

const columnType = async (db: Db) =>
  (
    await db.query<{ t: string }>(sql`
      select format_type(atttypid, atttypmod) as t from pg_attribute
      where attrelid = 'chunks'::regclass and attname = 'embedding'`)
  )[0]?.t;

let server: FakeOpenAI;
const embedder = (model = LARGE) =>
  createOpenAIEmbedder({ apiKey: server.apiKey, baseURL: server.url, model, dimensions: DIMS, retryBaseMs: 5 });

beforeAll(async () => {
  setConfig({ LOG_LEVEL: "silent", SEARCH_QUERY_CACHE_TTL_SECONDS: "0", EMBEDDING_DIMENSIONS: String(DIMS) });
  server = await startOpenAIServer();
});
afterAll(() => server?.close());

describe.each(DRIVERS)("a 3,072-dimension model on %s", (driver) => {
  let t: TestDb;
  let caller: Caller;

  beforeAll(async () => {
    t = await freshDb(driver, { dimensions: DIMS });
    caller = await callerFor(t.db, "large", "u1");
  }, 120_000);
  afterAll(() => t?.close());

  it("stores halfvec(3072), ingests through the provider and finds the chunk a question names", async () => {
    expect(await columnType(t.db)).toBe("halfvec(3072)");
    const requests = server.stats.embeddingRequests;
    const ingested = await Ingest.run(t.db, caller, docs("m", 24), { embedder: embedder() });
    expect(ingested.totals).toMatchObject({ chunks: 24, embedded: 24 });
    expect(server.stats.embeddingRequests).toBeGreaterThan(requests);
    const sent = server.requests.filter((r) => r.path.endsWith("/embeddings")).at(-1)?.body;
    expect(sent).toMatchObject({ model: LARGE, dimensions: DIMS });

    // The fake embeds a text to the same vector every time: the chunk whose text is the question comes first.
    const question = "Memo m7 about the laptop number 7.";
    for (const mode of ["vector", "hybrid"] as const) {
      const found = await Search.query(t.db, caller, Search.SearchRequest.parse({ query: question, mode, topK: 3 }), {
        embedder: embedder(),
      });
      expect(found.results[0]?.documentId).toBe("m7");
      expect(found.stale).toBe(0);
      if (mode === "vector") expect(found.results[0]?.score).toBeCloseTo(1, 2); // 16-bit floats: within 1e-3
    }
  });

  it("re-embeds another 3,072-dimension model's chunks into it, then ranks them", async () => {
    server.modelDimensions["local-3072"] = DIMS; // an OpenAI-compatible server's model (no `dimensions` sent)
    await Ingest.run(t.db, caller, docs("old", 6), { embedder: embedder("local-3072") });
    const question = "Memo old4 about the payroll number 4.";
    const before = await Search.query(t.db, caller, Search.SearchRequest.parse({ query: question, mode: "vector" }), {
      embedder: embedder(),
    });
    expect(before.stale).toBe(6);
    expect(before.results.map((r) => r.documentId)).not.toContain("old4");

    const report = await Reembed.run(t.db, { tenantId: caller.tenantId, embedder: embedder(), batchSize: 4 });
    expect(report).toMatchObject({ reembedded: 6, remaining: 0 });
    const after = await Search.query(t.db, caller, Search.SearchRequest.parse({ query: question, mode: "vector" }), {
      embedder: embedder(),
    });
    expect(after.stale).toBe(0);
    expect(after.results[0]?.documentId).toBe("old4");
  });

  it("finds it through the HNSW index once the indexer has run (PGlite has none: exact scans)", async () => {
    expect(await Indexer.enabled(t.db)).toBe(driver !== "pglite");
    await Indexer.catchUp(t.db, { model: LARGE, budgetMs: 60_000 });
    const found = await Search.query(
      t.db,
      caller,
      Search.SearchRequest.parse({ query: "Memo m11 about the warranty number 11.", mode: "vector", topK: 3 }),
      { embedder: embedder(), strategy: "index" },
    );
    expect(found.results[0]?.documentId).toBe("m11");
  });
});

describe("the search statement on pg", () => {
  let t: TestDb;
  let caller: Caller;

  beforeAll(async () => {
    t = await freshDb("pg", { dimensions: DIMS });
    caller = await callerFor(t.db, "large");
    await Ingest.run(t.db, caller, docs("m", 12), { embedder: embedder() });
    await Indexer.catchUp(t.db, { model: LARGE, budgetMs: 60_000 });
  }, 120_000);
  afterAll(() => t?.close());

  it("plans its vector leg on the halfvec HNSW index (EXPLAIN)", async () => {
    // The HNSW index can serve the order only when the query's type is the column's.
    const plan = await searchPlan(t.db, (spy) =>
      Search.query(
        spy,
        caller,
        Search.SearchRequest.parse({ query: "Memo m3 about the deploy number 3.", mode: "vector", topK: 3 }),
        { embedder: embedder(), strategy: "index" },
      ),
    );
    expect(plan).toContain(`Index Scan using ${Hnsw.name(LARGE)} on chunks`);
  });
});

describe("a database made before migration 0015 with 3,072 dimensions (pg)", () => {
  it("is converted to halfvec with its vectors, indexed, and searchable", async () => {
    const settings = { embeddingDimensions: DIMS, searchTextConfig: "english" };
    const name = await createDatabase();
    const db = createPgDb(pgUrl(name));
    try {
      // Migrate as the previous release did (up to 0013), then store chunks in the old `vector(3072)` column.
      await migrateBefore(db, settings, "0014");
      expect(await columnType(db)).toBe("vector(3072)");
      const caller = await callerFor(db, "upgrade");
      // The previous release's search and ingest named `vector`: ingest with a statement of its own.
      const [vector] = (await embedder().embed(["Memo u2 about the refund number 2."])).vectors;
      await db.query(sql`
        insert into documents (tenant_id, id, content, content_hash, chunk_count) values (${caller.tenantId}, 'u2', 'x', 'h', 1)`);
      await db.query(sql`
        insert into chunks (tenant_id, document_key, owner, ordinal, content, content_hash, tokens, embedding, embedding_model)
        select ${caller.tenantId}, key, '', 0, 'Memo u2 about the refund number 2.', 'h', 9,
               ${`[${Array.from(vector as Float32Array).join(",")}]`}::vector, ${LARGE}
        from documents where id = 'u2'`);

      expect(await migrate(db, settings)).toContain("0015_halfvec");
      expect(await columnType(db)).toBe("halfvec(3072)");
      expect(await Indexer.enabled(db)).toBe(true);
      // The shared index 0015 built is replaced by the model's own, of the column's type.
      await Hnsw.ensure(db, LARGE);
      const [index] = await db.query<{ def: string | null; shared: boolean }>(
        sql`select pg_get_indexdef(to_regclass(${Hnsw.name(LARGE)})) as def, to_regclass('chunks_embedding') is not null as shared`,
      );
      expect(index).toEqual({ def: expect.stringContaining("halfvec_cosine_ops"), shared: false });
      const [storage] = await db.query<{ s: string }>(
        sql`select attstorage as s from pg_attribute where attrelid = 'chunks'::regclass and attname = 'embedding'`,
      );
      expect(storage?.s).toBe("p"); // inline, as migrations/0004 keeps `vector`s
      const found = await Search.query(
        db,
        caller,
        Search.SearchRequest.parse({ query: "Memo u2 about the refund number 2.", mode: "vector", topK: 1 }),
        { embedder: embedder() },
      );
      expect(found.results[0]).toMatchObject({ documentId: "u2" });
      expect(found.results[0]?.score).toBeCloseTo(1, 2);
    } finally {
      await db.close();
      await dropDatabase(name);
    }
  }, 120_000);
});
