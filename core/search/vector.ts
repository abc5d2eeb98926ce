/**
 * The vector leg of a search: its statement settings, the nearest chunks (`vec`) by the HNSW index or an exact
 * scan, and the count of chunks another model embedded (`stale`). Why each choice: the comments below and
 * docs/search.md.
 */
import { type SQL, sql } from "drizzle-orm";
import { lru } from "./lru";
import type { Where } from "./scope";

/**
 * The stale count stops here: counting costs about 1 µs a stale chunk (12 ms for 10,000 of 100,000 on pg), paid by
 * every search during a switch; at 1,000 it stays near a millisecond. 1,000 means "at least".
 */
export const STALE_COUNT_MAX = 1_000;

/**
 * Transaction-local settings for the search statement. JIT off: the exact and fallback branches are planned
 * with the whole table's cost even when never run, which crosses `jit_above_cost` and spent 80-250 ms
 * compiling here. No parallel workers: the keyword list of a common-word query was planned as a parallel bitmap
 * heap scan, and starting a worker costs a few milliseconds of a statement meant to take a few.
 */
export function settings(efSearch: number): Record<string, string> {
  return {
    "hnsw.ef_search": String(Math.min(efSearch, 1000)),
    "hnsw.iterative_scan": "relaxed_order",
    jit: "off",
    max_parallel_workers_per_gather: "0",
    plan_cache_mode: "force_custom_plan",
  };
}

/**
 * The `vec(id, distance)` CTE: the `n` chunks nearest the query vector, exactly ordered, of the active `model` only
 * (another model's vectors are not comparable with the query's, #17).
 *
 * Exact scan when the scope's candidates number at most max(SEARCH_EXACT_SCAN_CHUNKS, sqrt(60 * N)) (N from
 * pg_class), else the HNSW index with pgvector's iterative scan, where that bound is where the two cost the same;
 * an exact scan fills in when the index scan comes back short, and chunks not yet indexed are always scanned
 * exactly beside it. PGlite has no HNSW index: always exact. The measurements behind the bound and the
 * behaviour during a model switch: docs/search.md, "Vector leg: exact scan or HNSW index".
 */
export function vectorCandidates(
  literal: string,
  model: string,
  where: Where,
  n: number,
  strategy: "auto" | "index" | "exact",
  minExact: number,
): SQL[] {
  // Of the column's type, `vector` or `halfvec` (migrations/0015), converted once rather than per row compared.
  const q = sql`q as materialized (select chunk_embedding(${literal}) as v)`;
  const all = sql`
    select c.id, c.embedding <=> (select v from q) as distance
    from chunks c join documents d on d.key = c.document_key
    where ${where.chunks} and c.embedding_model = ${model} and ${where.scope} and ${where.documents}`;
  // `offset 0` keeps the sort above the distances: the HNSW index cannot serve it, so this stays exact.
  const exactly = (gate: SQL) => sql`
    select id, distance from (${all} and ${gate} offset 0) s order by distance, id limit ${n}`;
  if (strategy === "exact") return [q, sql`vec as materialized (${exactly(sql`true`)})`];

  // Whether the matching documents hold more chunks than the bound, from the chunk counts documents carry: a
  // running sum in scan order, so the scan stops at the first document that passes the bound (about
  // bound / chunks-a-document narrow rows; 0.17 ms for 500 documents). Counting chunk rows instead read a
  // heap page per chunk wherever the visibility map was not yet set (a vector row fills a page): 2,500 pages,
  // 3.9 ms, on a freshly loaded corpus. The documents are a CTE of their own, planned for all the rows it may
  // return (at most bound + 1, which changes no answer: a document has at least one chunk): inlined into the
  // EXISTS, they were planned for a fast first row, a sequential scan of every document under a 1% metadata
  // filter (4.3 ms) instead of its GIN index (0.4 ms). A CTE is still read only as far as the EXISTS needs.
  const scoped = sql`scoped as materialized (
      select d.chunk_count from documents d where ${where.scope} and ${where.documents}
      limit (select t from bound) + 1)`;
  const large = sql`exists (
      select 1 from (
        select sum(chunk_count) over (rows between unbounded preceding and current row) as running from scoped) x
      where running > (select t from bound))`;
  // Mid-switch (stale chunks in scope, from the `stale` CTE), the HNSW graph still holds the old model's vectors
  // and a scan for the few of the active model would wade through them: while those number at most the bound,
  // scan them exactly instead (found through `chunks_reuse`: tenant, model). With nothing stale, never evaluated.
  const activeLarge = sql`(case when (select n from stale) = 0 then true else (
      select count(*) from (
        select 1 from chunks c where ${where.chunks} and c.embedding_model = ${model}
        limit (select t from bound) + 1) a) > (select t from bound) end)`;
  const approxCount = sql`(select count(*) from approx)`;
  return [
    q,
    sql`bound as materialized (
      select greatest(${minExact}, sqrt(60 * greatest(reltuples, 0)))::int as t from pg_class where oid = 'chunks'::regclass)`,
    ...(strategy === "index"
      ? [sql`probe as materialized (select true as large)`]
      : [scoped, sql`probe as materialized (select ${large} and ${activeLarge} as large)`]),
    // Indexed chunks through the (partial) HNSW index; chunks not yet indexed (migrations/0005) by exact scan
    // through `chunks_pending`, so a chunk is found from the moment its ingest commits.
    sql`approx as materialized (
      select c.id, c.embedding <=> (select v from q) as distance
      from chunks c
      where (select large from probe) and c.indexed and c.embedding_model = ${model} and ${where.chunks}
        and exists (select 1 from documents d where d.key = c.document_key and ${where.documents})
      order by c.embedding <=> (select v from q)
      limit ${n})`,
    sql`pending as materialized (
      select c.id, c.embedding <=> (select v from q) as distance
      from chunks c
      where (select large from probe) and not c.indexed and c.embedding_model = ${model} and ${where.chunks}
        and exists (select 1 from documents d where d.key = c.document_key and ${where.documents})
      order by distance, c.id
      limit ${n})`,
    // Runs when the scope is small (approx is then empty) or when the index scan came back short.
    sql`exact as materialized (${exactly(sql`${approxCount} < ${n}`)})`,
    sql`vec as (
      select id, distance from exact
      union all (
        select id, distance from (select id, distance from approx union all select id, distance from pending) s
        where ${approxCount} >= ${n}
        order by distance, id
        limit ${n}))`,
  ];
}

/**
 * The `stale(n)` CTE: the scope's live chunks of another model than `model`, up to STALE_COUNT_MAX + 1. Written as
 * two ranges (`< model`, `> model`) so `chunks_reuse` (tenant, model, hash) reads only the stale entries: two
 * index descents when there are none.
 */
export function staleCount(model: string, where: Where): SQL {
  return sql`stale as materialized (
    select count(*)::int as n from (
      select 1 from chunks c join documents d on d.key = c.document_key
      where ${where.chunks} and (c.embedding_model < ${model} or c.embedding_model > ${model})
        and ${where.scope} and ${where.documents}
      limit ${STALE_COUNT_MAX}) s)`;
}

/**
 * Whether a scope (tenant, owners, filters) held more chunks than the exact scan's bound when last probed, for
 * 30 s: the next searches of it skip the probe and go straight to the strategy it chose (0.3-0.6 ms of planning
 * and execution). Either answer, however stale, still gives correct results: the index path falls back to the
 * exact scan when it comes back short, and the exact scan is exact at any size (only slower, for at most 30 s,
 * if the scope grew past the bound meanwhile).
 */
export const scopeSizes = lru<boolean>(1024);
export const SCOPE_SIZE_TTL_SECONDS = 30;
