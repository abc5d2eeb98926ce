/**
 * Staged vector indexing (migrations/0005, core/search/indexer.ts): new chunks wait outside the HNSW index,
 * are found by search from the moment their ingest commits, and are moved into the index by the indexer,
 * by cleanup, and by ingests past INDEX_BACKLOG_MAX.
 */
import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "../../core/auth";
import * as Cleanup from "../../core/cleanup";
import { setConfig } from "../../core/config";
import type { Db } from "../../core/db";
import { createOfflineEmbedder } from "../../core/embedding/offline";
import * as Ingest from "../../core/ingest";
import * as Search from "../../core/search";
import * as Indexer from "../../core/search/indexer";
import { callerFor, DRIVERS, freshDb, type TestDb } from "../../kit/db";

const DIMS = 64;
const embedder = createOfflineEmbedder({ dimensions: DIMS });
const topics = ["invoice", "shipment", "warranty", "refund", "payroll", "laptop", "recipe", "deploy"];
const docs = (prefix: string, count: number) =>
  Array.from({ length: count }, (_, i) => ({
    id: `${prefix}${i}`,
    content: `Note ${prefix}${i} about the ${topics[i % topics.length]} number ${i % 97} and item ${i % 13}.`,
  }));

async function states(db: Db) {
  const rows = await db.query<{ indexed: boolean; n: number }>(
    sql`select indexed, count(*)::int as n from chunks group by indexed`,
  );
  return {
    pending: rows.find((r) => !r.indexed)?.n ?? 0,
    indexed: rows.find((r) => r.indexed)?.n ?? 0,
  };
}

beforeAll(() => setConfig({ LOG_LEVEL: "silent" }));
afterEach(() => setConfig({ LOG_LEVEL: "silent" }));

describe.each(DRIVERS.filter((d) => d !== "pglite"))("staged indexing on %s", (driver) => {
  let t: TestDb;
  let caller: Caller;

  beforeAll(async () => {
    t = await freshDb(driver, { dimensions: DIMS });
    caller = await callerFor(t.db, "staged", "u1");
    // Enough chunks that the search takes its index path (SEARCH_EXACT_SCAN_CHUNKS is lowered below).
    await Ingest.run(t.db, caller, docs("a", 600), { embedder });
  }, 120_000);
  afterAll(() => t?.close());

  it("stores new chunks outside the index, and search finds them at once on every strategy", async () => {
    expect(await Indexer.enabled(t.db)).toBe(true);
    expect(await states(t.db)).toEqual({ pending: 600, indexed: 0 });
    setConfig({ LOG_LEVEL: "silent", SEARCH_EXACT_SCAN_CHUNKS: "0" });
    const request = { query: "note a17 about the refund", mode: "vector" as const, topK: 10 };
    const exact = await Search.query(t.db, caller, Search.SearchRequest.parse(request), {
      embedder,
      strategy: "exact",
    });
    for (const strategy of ["auto", "index"] as const) {
      const { results } = await Search.query(t.db, caller, Search.SearchRequest.parse(request), { embedder, strategy });
      expect(results.map((r) => r.chunkId)).toEqual(exact.results.map((r) => r.chunkId));
    }
  });

  it("moves them into the index in batches; two runs at once split the work and index each chunk once", async () => {
    const [a, b] = await Promise.all([
      Indexer.catchUp(t.db, { batchSize: 50, limit: 200 }),
      Indexer.catchUp(t.db, { batchSize: 50, limit: 200 }),
    ]);
    expect(a.indexed + b.indexed).toBe(400);
    expect(await states(t.db)).toEqual({ pending: 200, indexed: 400 });

    const rest = await Indexer.catchUp(t.db, { batchSize: 64 });
    expect(rest).toEqual({ indexed: 200, complete: true });
    expect(await states(t.db)).toEqual({ pending: 0, indexed: 600 });
    expect(await Indexer.catchUp(t.db)).toEqual({ indexed: 0, complete: true });
  });

  it("ranks indexed and waiting chunks together, like the exact scan", async () => {
    // Half of these wait, the rest are indexed (previous test); the index path merges both lists.
    await Ingest.run(t.db, caller, docs("b", 300), { embedder });
    expect((await states(t.db)).pending).toBe(300);
    setConfig({ LOG_LEVEL: "silent", SEARCH_EXACT_SCAN_CHUNKS: "0" });
    for (const query of ["refund note b12", "payroll item 7", "the shipment number 40"]) {
      const request = { query, mode: "vector" as const, topK: 20 };
      const exact = await Search.query(t.db, caller, Search.SearchRequest.parse(request), {
        embedder,
        strategy: "exact",
      });
      const { results } = await Search.query(t.db, caller, Search.SearchRequest.parse(request), {
        embedder,
        strategy: "index",
      });
      const overlap = results.filter((r) => exact.results.some((e) => e.chunkId === r.chunkId)).length;
      expect(overlap).toBeGreaterThanOrEqual(18);
      expect(results.some((r) => r.documentId.startsWith("b"))).toBe(true);
      expect(results.some((r) => r.documentId.startsWith("a"))).toBe(true);
    }
  });

  it("an ingest past INDEX_BACKLOG_MAX indexes as many chunks as it added before it answers", async () => {
    await Indexer.catchUp(t.db);
    setConfig({ LOG_LEVEL: "silent", INDEX_BACKLOG_MAX: "100" });
    await Ingest.run(t.db, caller, docs("c", 80), { embedder });
    expect((await states(t.db)).pending).toBe(80); // under the bound: left waiting
    await Ingest.run(t.db, caller, docs("d", 80), { embedder });
    // 160 waiting > 100: this ingest indexed its own 80.
    expect((await states(t.db)).pending).toBe(80);
  });

  it("another tenant's backlog does not slow this tenant's ingests", async () => {
    const other = await callerFor(t.db, "other-tenant");
    setConfig({ LOG_LEVEL: "silent", INDEX_BACKLOG_MAX: "100" });
    await Ingest.run(t.db, other, docs("o", 150), { embedder });
    const before = await states(t.db);
    await Ingest.run(t.db, caller, docs("e", 10), { embedder });
    // This tenant's backlog (80 + 10) is under the bound; the other tenant's 150 do not count.
    expect((await states(t.db)).pending).toBe(before.pending + 10);
  });

  it("cleanup indexes what waits, after its deletions, and reports it", async () => {
    const waiting = (await states(t.db)).pending;
    expect(waiting).toBeGreaterThan(0);
    const report = await Cleanup.run(t.db);
    expect(report).toMatchObject({ indexed: waiting, complete: true });
    expect((await states(t.db)).pending).toBe(0);
  });

  it("re-ingesting unchanged documents writes no chunk and leaves the index alone", async () => {
    const before = await states(t.db);
    await Ingest.run(t.db, caller, docs("a", 600), { embedder });
    expect(await states(t.db)).toEqual(before);
  });

  it("the background loop catches up and stops cleanly", async () => {
    await Ingest.run(t.db, caller, docs("f", 40), { embedder });
    const loop = Indexer.inBackground(t.db, { everyMs: 20 });
    for (let i = 0; i < 100 && (await states(t.db)).pending > 0; i++) await new Promise((r) => setTimeout(r, 20));
    await loop.stop();
    expect((await states(t.db)).pending).toBe(0);
  });
});

describe("staged indexing on pglite", () => {
  it("has no HNSW index, so there is nothing to catch up on and search stays exact", async () => {
    const t = await freshDb("pglite", { dimensions: DIMS });
    try {
      const caller = await callerFor(t.db, "embedded");
      await Ingest.run(t.db, caller, docs("p", 20), { embedder });
      expect(await Indexer.enabled(t.db)).toBe(false);
      expect(await Indexer.catchUp(t.db)).toEqual({ indexed: 0, complete: true });
      const { results } = await Search.query(
        t.db,
        caller,
        Search.SearchRequest.parse({ query: "refund", mode: "vector", topK: 5 }),
        { embedder },
      );
      expect(results).toHaveLength(5);
    } finally {
      await t.close();
    }
  });
});
