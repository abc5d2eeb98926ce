/**
 * The vector leg of a search: its statement settings, the nearest chunks (`vec`) by the HNSW index or an exact
 * scan, and the count of chunks another model embedded (`stale`). Why each choice: the comments below and
 * docs/search.md.
 */
import { type SQL, sql } from "drizzle-orm";
import { constant } from "../db";
import { lru } from "../lru";
import type { Where } from "./scope";

/** The stale count stops here ("at least"): every search during a switch pays for counting (docs/search.md). */
export const STALE_COUNT_MAX = 1_000;

/**
 * Settings for the search statement: no JIT and no parallel workers (each costs more than the statement takes);
 * plans for each call's values, but for a search `reusable` by one plan, which skips about 2 ms of planning a call
 * (docs/search.md, "Statement settings").
 */
export function settings(efSearch: number, reusable = false): Record<string, string> {
  return {
    "hnsw.ef_search": String(Math.min(efSearch, 1000)),
    "hnsw.iterative_scan": "relaxed_order",
    jit: "off",
    max_parallel_workers_per_gather: "0",
    plan_cache_mode: reusable ? "force_generic_plan" : "force_custom_plan",
  };
}

/**
 * The `vec(id, distance)` CTE: the `n` chunks nearest the query vector, exactly ordered, of the active `model` only
 * (another model's vectors are not comparable with the query's, #17).
 *
 * Exact scan when the scope's candidates number at most max(SEARCH_EXACT_SCAN_CHUNKS, sqrt(60 * N)) (N from
 * pg_class), else the HNSW index with pgvector's iterative scan, where that bound is where the two cost the same;
 * an exact scan fills in when the index scan comes back short, and chunks not yet indexed are always scanned
 * exactly beside it. PGlite has no HNSW index: always exact. The measurements behind the bound: docs/search.md,
 * "Vector leg: exact scan or HNSW index"; each model's own graph: "The index: one HNSW graph per model".
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
  // Documents are joined by key alone: the chunk's own tenant and owner (`where.chunks`) are its document's.
  // Named on `d` as well, they let a planner without statistics (a table loaded a moment ago) scan the scope's
  // documents once per chunk: 130 ms for 1,000 chunks, quadratic (docs/search.md, "Vector leg").
  const all = sql`
    select c.id, c.embedding <=> (select v from q) as distance
    from chunks c join documents d on d.key = c.document_key
    where ${where.chunks} and c.embedding_model = ${constant(model)} and ${where.documents}`;
  // `offset 0` keeps the sort above the distances: the HNSW index cannot serve it, so this stays exact.
  const exactly = (gate: SQL) => sql`
    select id, distance from (${all} and ${gate} offset 0) s order by distance, id limit ${constant(n)}`;
  if (strategy === "exact") return [q, sql`vec as materialized (${exactly(sql`true`)})`];

  // Whether the matching documents hold more chunks than the bound: a running sum of the chunk counts documents
  // carry, stopping at the first document past it (at most bound + 1 documents, each holding a chunk or more). A
  // CTE of its own so it is planned for every row it may return (docs/search.md, "Vector leg").
  const scoped = sql`scoped as materialized (
      select d.chunk_count from documents d where ${where.scope} and ${where.documents}
      limit (select t from bound) + 1)`;
  const large = sql`exists (
      select 1 from (
        select sum(chunk_count) over (rows between unbounded preceding and current row) as running from scoped) x
      where running > (select t from bound))`;
  const approxCount = sql`(select count(*) from approx)`;
  return [
    q,
    sql`bound as materialized (
      select greatest(${constant(minExact)}, sqrt(60 * greatest(reltuples, 0)))::int as t from pg_class where oid = 'chunks'::regclass)`,
    ...(strategy === "index"
      ? [sql`probe as materialized (select true as large)`]
      : [scoped, sql`probe as materialized (select ${large} as large)`]),
    // Indexed chunks through the active model's own HNSW index (core/search/hnsw.ts: its predicate is `indexed` and
    // the model, which this `where` implies once the plan has the values); chunks not yet indexed (migrations/0005) by exact scan
    // through `chunks_pending`, so a chunk is found from the moment its ingest commits.
    sql`approx as materialized (
      select c.id, c.embedding <=> (select v from q) as distance
      from chunks c
      where (select large from probe) and c.indexed and c.embedding_model = ${constant(model)} and ${where.chunks}
        and exists (select 1 from documents d where d.key = c.document_key and ${where.documents})
      order by c.embedding <=> (select v from q)
      limit ${constant(n)})`,
    sql`pending as materialized (
      select c.id, c.embedding <=> (select v from q) as distance
      from chunks c
      where (select large from probe) and not c.indexed and c.embedding_model = ${constant(model)} and ${where.chunks}
        and exists (select 1 from documents d where d.key = c.document_key and ${where.documents})
      order by distance, c.id
      limit ${constant(n)})`,
    // Runs when the scope is small (approx is then empty) or when the index scan came back short.
    sql`exact as materialized (${exactly(sql`${approxCount} < ${constant(n)}`)})`,
    sql`vec as (
      select id, distance from exact
      union all (
        select id, distance from (select id, distance from approx union all select id, distance from pending) s
        where ${approxCount} >= ${constant(n)}
        order by distance, id
        limit ${constant(n)}))`,
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
      where ${where.chunks} and (c.embedding_model < ${constant(model)} or c.embedding_model > ${constant(model)})
        and ${where.documents}
      limit ${constant(STALE_COUNT_MAX)}) s)`;
}

/**
 * Whether a scope (tenant, owners, filters) held more chunks than the exact scan's bound when last probed, kept
 * 30 s so the next searches skip the probe. A stale answer is slower, never wrong: the index path falls back to
 * the exact scan when it comes back short, and the exact scan is exact at any size.
 */
export const scopeSizes = lru<boolean>(1024);
export const SCOPE_SIZE_TTL_SECONDS = 30;
