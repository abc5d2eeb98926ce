/**
 * One HNSW index per embedding model (core/search/hnsw.ts): a switch gives the new model its own graph, search plans
 * its vector leg on the active model's, a failed build is rebuilt (but not while another process builds it), two
 * processes ensuring at once build it once, an existing database's shared index is replaced, and cleanup drops the
 * graphs no chunk uses any more, never the active model's.
 */
import { sql } from "drizzle-orm";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "../../core/auth";
import * as Cleanup from "../../core/cleanup";
import { setConfig } from "../../core/config";
import type { Db } from "../../core/db";
import { createNeonDb } from "../../core/db/neon";
import { createPgDb } from "../../core/db/pg";
import type { Embedder } from "../../core/embedding";
import { createOfflineEmbedder, OFFLINE_MODEL } from "../../core/embedding/offline";
import * as Reembed from "../../core/embedding/reembed";
import * as Ingest from "../../core/ingest";
import * as Search from "../../core/search";
import * as Hnsw from "../../core/search/hnsw";
import * as Indexer from "../../core/search/indexer";
import { callerFor, DRIVERS, freshDb, pgUrl, preparedSearchPlan, searchPlan, type TestDb } from "../../kit/db";
import { neonConnectionString } from "../../kit/neon-server";

const DIMS = 64;
const offline = createOfflineEmbedder({ dimensions: DIMS });
/** The offline embedder under another model's name: its vectors are another model's as far as Engram can tell. */
const renamed = (model: string): Embedder => ({ ...offline, model });
const docs = (prefix: string, count: number) =>
  Array.from({ length: count }, (_, i) => ({
    id: `${prefix}${i}`,
    content: `Memo ${prefix}${i} about the ${["invoice", "laptop", "refund", "deploy"][i % 4]} number ${i}.`,
  }));

/** The per-model indexes on chunks (and the shared one, while it exists), with their validity and oid. */
async function indexes(db: Db): Promise<Record<string, { valid: boolean; oid: number }>> {
  const rows = await db.query<{ name: string; valid: boolean; oid: number }>(sql`
    select c.relname as name, i.indisvalid as valid, c.oid::int as oid
    from pg_index i join pg_class c on c.oid = i.indexrelid
    where i.indrelid = 'chunks'::regclass and c.relname like 'chunks\\_embedding%'`);
  return Object.fromEntries(rows.map((r) => [r.name, { valid: r.valid, oid: Number(r.oid) }]));
}

/** A second handle on the same database: another process, with nothing remembered. */
function another(t: TestDb): Db {
  if (t.driver === "neon-http") {
    return createNeonDb(neonConnectionString(t.database as string, t.neon?.port as number), {
      fetchEndpoint: t.neon?.url,
    });
  }
  return createPgDb(pgUrl(t.database as string));
}

beforeAll(() => setConfig({ LOG_LEVEL: "silent", SEARCH_QUERY_CACHE_TTL_SECONDS: "0" }));

describe.each(DRIVERS.filter((d) => d !== "pglite"))("an HNSW index per model on %s", (driver) => {
  let t: TestDb;
  let caller: Caller;

  beforeAll(async () => {
    t = await freshDb(driver, { dimensions: DIMS });
    caller = await callerFor(t.db, "models");
    await Ingest.run(t.db, caller, docs("a", 40), { embedder: renamed("model-a") });
    await Indexer.catchUp(t.db, { model: "model-a" });
  }, 120_000);
  afterAll(() => t?.close());

  it("replaces the shared index of a database made before it by one per model its chunks hold", async () => {
    const present = await indexes(t.db);
    expect(present).toEqual({ [Hnsw.name("model-a")]: { valid: true, oid: expect.any(Number) } });
    expect(present).not.toHaveProperty("chunks_embedding");
  });

  it("gives a model switched to its own graph, and plans the vector leg on the active model's graph", async () => {
    const report = await Reembed.run(t.db, { tenantId: caller.tenantId, embedder: renamed("model-b") });
    expect(report).toMatchObject({ reembedded: 40, remaining: 0 });
    expect(Object.keys(await indexes(t.db)).sort()).toEqual([Hnsw.name("model-a"), Hnsw.name("model-b")].sort());

    const request = Search.SearchRequest.parse({ query: "Memo a3 about the deploy number 3.", mode: "vector" });
    let found: Search.SearchResponse | undefined;
    // The values ride as parameters, planned as constants (plan_cache_mode), so the partial index's predicate holds.
    const plan = await searchPlan(t.db, async (spy) => {
      found = await Search.query(spy, caller, request, { embedder: renamed("model-b"), strategy: "index" });
    });
    expect(found?.results[0]?.documentId).toBe("a3");
    expect(plan).toContain(`Index Scan using ${Hnsw.name("model-b")} on chunks`);
    expect(plan).not.toContain(Hnsw.name("model-a"));
  });

  it("plans a search known to take the index once for any values, still on the model's own graph", async () => {
    // Only `pg` keeps prepared statements between calls; the Neon HTTP driver plans each statement it is sent.
    if (driver !== "pg") return expect(driver).toBe("neon-http");
    const vector = Search.SearchRequest.parse({ query: "the refund memo", mode: "vector" });
    const hybrid = Search.SearchRequest.parse({ query: "the refund memo", mode: "hybrid" });
    for (const request of [vector, hybrid]) {
      const { plan, settings } = await preparedSearchPlan(t.database as string, t.db, (spy) =>
        Search.query(spy, caller, request, { embedder: renamed("model-b"), strategy: "index" }),
      );
      expect(settings.plan_cache_mode).toBe("force_generic_plan");
      // The model is a constant of the text, so the one plan can prove the partial index's predicate.
      expect(plan).toContain(`Index Scan using ${Hnsw.name("model-b")} on chunks`);
    }
    // With a filter (whose selectivity the plan must see) or a scope of unknown size, a plan for each call's values.
    const filtered = Search.SearchRequest.parse({ ...vector, filter: { metadata: { team: "a" } } });
    for (const [request, strategy] of [
      [filtered, "index"],
      [vector, "auto"],
    ] as const) {
      const { settings } = await preparedSearchPlan(t.database as string, t.db, (spy) =>
        Search.query(spy, caller, request, { embedder: renamed("model-b"), strategy }),
      );
      expect(settings.plan_cache_mode).toBe("force_custom_plan");
    }
  });

  it("is idempotent, and two processes ensuring one model at once build it once", async () => {
    const [first, second] = [another(t), another(t)];
    try {
      await Promise.all([Hnsw.ensure(first, "model-c"), Hnsw.ensure(second, "model-c")]);
      const built = (await indexes(t.db))[Hnsw.name("model-c")];
      expect(built).toEqual({ valid: true, oid: expect.any(Number) });
      await Hnsw.ensure(first, "model-c");
      await Hnsw.ensure(another(t), "model-c");
      expect((await indexes(t.db))[Hnsw.name("model-c")]).toEqual(built);
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  it("rebuilds an index a failed concurrent build left invalid", async () => {
    const before = (await indexes(t.db))[Hnsw.name("model-b")];
    // What a cancelled `create index concurrently` leaves behind: the index, marked invalid (search cannot use it).
    await t.db.query(sql`update pg_index set indisvalid = false where indexrelid = ${before?.oid}::oid`);
    const fresh = another(t);
    try {
      await Hnsw.ensure(fresh, "model-b");
    } finally {
      await fresh.close();
    }
    const after = (await indexes(t.db))[Hnsw.name("model-b")];
    expect(after?.valid).toBe(true);
    expect(after?.oid).not.toBe(before?.oid);
  });

  it("cleanup drops the graph of a model no chunk uses, never the active model's", async () => {
    // Every chunk is model-b's now; model-a's graph is unused, as is model-c's. The active model (the offline one,
    // as configured) holds no chunk here, and its graph stays.
    await Hnsw.ensure(t.db, OFFLINE_MODEL);
    // An index someone made by hand under a similar name is not one of these.
    await t.db.query(sql`create index chunks_embedding_by_hand on chunks (tokens)`);
    const report = await Cleanup.run(t.db);
    expect(report.droppedIndexes.sort()).toEqual([Hnsw.name("model-a"), Hnsw.name("model-c")].sort());
    expect(Object.keys(await indexes(t.db)).sort()).toEqual(
      ["chunks_embedding_by_hand", Hnsw.name(OFFLINE_MODEL), Hnsw.name("model-b")].sort(),
    );
    expect((await Cleanup.run(t.db)).droppedIndexes).toEqual([]);
  });

  it("and a model used again after its graph was dropped is indexed again", async () => {
    await Reembed.run(t.db, { tenantId: caller.tenantId, embedder: renamed("model-a") });
    expect((await indexes(t.db))[Hnsw.name("model-a")]?.valid).toBe(true);
  });

  it("an index another process's cleanup dropped is rebuilt once this process's belief in it lapses", async () => {
    const elsewhere = another(t);
    try {
      await Hnsw.ensure(elsewhere, "model-d");
      expect((await indexes(t.db))[Hnsw.name("model-d")]?.valid).toBe(true);
      // Another process's cleanup saw no chunk of model-d and dropped its graph.
      expect(await Hnsw.retire(t.db, OFFLINE_MODEL)).toContain(Hnsw.name("model-d"));
      await Hnsw.ensure(elsewhere, "model-d");
      expect((await indexes(t.db))[Hnsw.name("model-d")]).toBeUndefined();
      await Hnsw.ensure(elsewhere, "model-d", Date.now() + Hnsw.ENSURED_MS);
      expect((await indexes(t.db))[Hnsw.name("model-d")]?.valid).toBe(true);
    } finally {
      await elsewhere.close();
    }
  });
});

describe("an invalid index another process is still building (pg)", () => {
  it("is waited for, not dropped", async () => {
    const t = await freshDb("pg", { dimensions: DIMS });
    const writer = new pg.Client(t.url);
    const builder = new pg.Client(t.url);
    try {
      const caller = await callerFor(t.db, "busy");
      await Ingest.run(t.db, caller, docs("w", 10), { embedder: renamed("model-w") });
      await Promise.all([writer.connect(), builder.connect()]);
      // A transaction that wrote to chunks holds the concurrent build in its first wait, its index already there
      // and still invalid, until it ends.
      await writer.query("begin");
      await writer.query("update chunks set tokens = tokens where ctid = (select min(ctid) from chunks)");
      const building = builder.query(Hnsw.createStatement("model-w", "vector_cosine_ops"));
      let state: { valid: boolean; oid: number } | undefined;
      for (let i = 0; i < 100 && !state; i++) {
        state = (await indexes(t.db))[Hnsw.name("model-w")];
        if (!state) await new Promise((r) => setTimeout(r, 50));
      }
      expect(state?.valid).toBe(false);
      const ensured = Hnsw.ensure(t.db, "model-w");
      await new Promise((r) => setTimeout(r, 300));
      await writer.query("commit");
      await Promise.all([building, ensured]);
      expect((await indexes(t.db))[Hnsw.name("model-w")]).toEqual({ valid: true, oid: state?.oid });
    } finally {
      await Promise.all([writer.end(), builder.end()]);
      await t.close();
    }
  }, 60_000);
});

describe("without HNSW (PGlite)", () => {
  it("ensures nothing and searches exactly", async () => {
    const t = await freshDb("pglite", { dimensions: DIMS });
    try {
      expect(await Hnsw.available(t.db)).toBeUndefined();
      await Hnsw.ensure(t.db, "model-a");
      expect(await Hnsw.retire(t.db, "model-a")).toEqual([]);
      const caller = await callerFor(t.db, "embedded");
      await Ingest.run(t.db, caller, docs("p", 5), { embedder: offline });
      const found = await Search.query(
        t.db,
        caller,
        Search.SearchRequest.parse({ query: "Memo p2 about the refund number 2.", mode: "vector", topK: 1 }),
        { embedder: offline },
      );
      expect(found.results[0]?.documentId).toBe("p2");
    } finally {
      await t.close();
    }
  });
});
