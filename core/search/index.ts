export * as Search from "./index";

import { createHash } from "node:crypto";
import { type SQL, sql } from "drizzle-orm";
import type { Caller } from "../auth";
import * as Cache from "../cache";
import type { Location } from "../chunk/location";
import { config } from "../config";
import { arr, compile, type Db, type Query, type Row, type Statement, vectorLiteral } from "../db";
import * as Replica from "../db/replica";
import { embedder as defaultEmbedder, type Embedder } from "../embedding";
import { upstreamError } from "../error";
import * as Gate from "../gate";
import { log } from "../log";
import * as Keyword from "./keyword";
import * as Rerank from "./rerank";
import type { Mode, Scope, SearchFilter, SearchRequest } from "./schema";

export type { Mode, Scope, SearchInput } from "./schema";
export { SearchFilter, SearchRequest } from "./schema";

/**
 * What `score` means, per mode:
 * - `cosine_similarity` (vector): 1 - cosine distance, in [-1, 1], higher is closer.
 * - `bm25` (keyword): the chunk's Okapi BM25 over the question's informative words, divided by the most any chunk
 *   could score for that question (every word present, saturated), in [0, 1).
 * - `fused` (hybrid): both legs fused (docs/search.md), in [0, 1]; 1 is first in both lists.
 * - `rerank`: the re-ranking model's relevance score for the query and passage (hybrid with RERANK_URL set).
 */
export type Scale = "cosine_similarity" | "bm25" | "fused" | "rerank";
const SCALE: Record<Mode, Scale> = { vector: "cosine_similarity", keyword: "bm25", hybrid: "fused" };

export interface SearchResult {
  documentId: string;
  chunkId: string;
  ordinal: number;
  content: string;
  score: number;
  title: string | null;
  source: string | null;
  metadata: Record<string, unknown>;
  createdAt: string;
  /** Where the passage is in its document: pages, headings (core/chunk/location.ts); null when unknown. */
  location: Location | null;
}

export interface SearchResponse {
  results: SearchResult[];
  mode: Mode;
  /** Which scale `score` is on. */
  scale: Scale;
  /** Present when a re-rank stage is configured (RERANK_URL): whether it ordered these results. */
  rerank?: Rerank.Outcome;
  tookMs: number;
  usage: { embeddingTokens: number };
  /**
   * Chunks in the search's scope embedded by another model than the active one (vector and hybrid modes; 0 in
   * keyword mode): the vector leg never ranks them, the keyword leg still finds them. Counted up to
   * STALE_COUNT_MAX. They wait for `engram reembed` (core/embedding/reembed.ts).
   */
  stale: number;
}

/**
 * The stale count stops here: counting costs about 1 µs a stale chunk (12 ms for 10,000 of 100,000 on pg), paid by
 * every search during a switch; at 1,000 it stays near a millisecond. 1,000 means "at least".
 */
export const STALE_COUNT_MAX = 1_000;

export interface SearchOptions {
  signal?: AbortSignal;
  /** Defaults to the process's configured embedder. */
  embedder?: Embedder;
  /**
   * How vector candidates are found: `auto` (default) picks by the candidates' count (see `vectorCandidates`);
   * `index` and `exact` force one strategy (tests and benchmarks compare them).
   */
  strategy?: "auto" | "index" | "exact";
}

/** Candidates each list contributes to hybrid fusion, per requested result. */
const CANDIDATES_PER_RESULT = 4;
const MIN_CANDIDATES = 20;

/**
 * Searches the caller's scope: their own space and/or the tenant's shared space (never another user's or
 * tenant's), live documents only, in one SQL statement (plus, for vector work, the `SET LOCAL`s of the same
 * atomic batch). The query's embedding is cached per tenant, model and text, so a repeated query embeds nothing.
 * With a re-rank stage configured, hybrid results are then re-ordered by it (falling back to the fused order).
 */
export async function query(
  db: Db,
  caller: Caller,
  request: SearchRequest,
  options: SearchOptions = {},
): Promise<SearchResponse> {
  // A request through the gate (core/gate) searches in one batch with its key and limit checks: one round trip.
  // With a read replica the gate (a decision, so a write) stays on the primary and runs first, then the search
  // reads the replica once it has the tenant's writes (core/db/replica.ts): two round trips.
  if (Replica.replicaOf(db) && Gate.unsettled(caller)) await Gate.open(db, caller);
  // Made before the query is embedded, so the replica's mark lookup (if any) overlaps the embedding.
  const reader = Gate.unsettled(caller) ? undefined : Replica.reader(db, caller.tenantId);
  const search = await plan(db, caller, request, options);
  const rows = reader
    ? await search.run(reader)
    : ((await Gate.through(db, caller, [search.statement], search.settings))[0] ?? []);
  return search.finish(rows);
}

/** A search ready to run: its one statement (and settings), and what turns its rows into the response. */
export interface Planned {
  statement: Query;
  settings?: Record<string, string>;
  /** Runs the statement on its own (a caller already known), on the primary or the tenant's replica reader. */
  run(db: Replica.Reader): Promise<Row[]>;
  finish(rows: Row[]): Promise<SearchResponse>;
}

/**
 * Everything a search does before its statement runs: the query's vector (embedded or remembered) and the
 * statement, whose tenant is `Gate.tenantOf(caller)`, so it can run in the gate's batch (core/chat does).
 */
export async function plan(
  db: Db,
  caller: Caller,
  request: SearchRequest,
  options: SearchOptions = {},
): Promise<Planned> {
  const started = performance.now();
  const cfg = config().search;
  const reranking = request.mode === "hybrid" && cfg.rerank !== undefined;
  // With a re-rank stage the statement returns its candidates, cut to topK after re-ranking.
  const k = reranking ? Math.max(request.topK, cfg.rerank?.candidates ?? 0) : request.topK;
  const n = request.mode === "hybrid" ? Math.min(Math.max(k * CANDIDATES_PER_RESULT, MIN_CANDIDATES), 200) : k;
  const who = owners(caller.userId, request.scope);
  const tenant = Gate.tenantOf(caller);
  const where = scopeAndFilters(tenant, caller.userId, request.scope, request.filter);

  let embeddingTokens = 0;
  let remember: (() => Promise<void>) | undefined;
  let vector: string | undefined;
  const model = (options.embedder ?? defaultEmbedder()).model;
  if (request.mode !== "keyword") {
    const embedded = await embedQuery(db, caller, request.query, options);
    vector = embedded.literal;
    embeddingTokens = embedded.tokens;
    remember = embedded.remember;
  }
  options.signal?.throwIfAborted();

  const ctes: SQL[] = [];
  let probed: string | undefined; // the scope-size memo's key, when this statement probes the scope
  if (vector !== undefined) {
    let strategy = db.driver === "pglite" ? "exact" : (options.strategy ?? "auto");
    if (strategy === "auto") {
      const key = `${Gate.memoryKeyOf(caller)}/${who.join(",")}/${JSON.stringify(request.filter)}`;
      const large = scopeSizes.get(key);
      if (large === undefined) probed = key;
      else strategy = large ? "index" : "exact";
    }
    ctes.push(staleCount(model, where));
    ctes.push(...vectorCandidates(vector, model, where, n, strategy, cfg.exactScanChunks));
  }
  if (request.mode !== "vector") {
    const cap = request.mode === "hybrid" ? HYBRID_KEYWORD_MATCHES : KEYWORD_MATCHES;
    ctes.push(
      ...Keyword.candidates({
        text: request.query,
        textConfig: cfg.textConfig,
        tenantId: tenant,
        owners: who,
        where,
        n,
        cap,
      }),
    );
  }
  const fusion = { kind: cfg.fusion, keywordWeight: cfg.keywordWeight, rrfK: cfg.rrfK };
  const final = finalSelect(request.mode, k, reranking ? undefined : request.minScore, fusion, probed !== undefined);
  // With a vector leg, the stale count rides on every row, and on a row of its own (chunkId null) when no result.
  const statement =
    vector === undefined
      ? sql`with ${sql.join(ctes, sql`, `)} ${final}`
      : sql`with ${sql.join(ctes, sql`, `)}
        select f.*, s.n as stale from stale s left join (${final}) f on true order by f.position`;

  // PGlite has neither the HNSW index nor JIT.
  const pglite = db.driver === "pglite";
  const searchSettings = pglite ? undefined : settings(Math.max(cfg.efSearch, n));
  return {
    statement: pglite ? statement : prepared(statement),
    settings: searchSettings,
    async run(db) {
      const search = pglite ? db.query(statement) : db.query(prepared(statement), { settings: searchSettings });
      return (await Promise.all([search, remember?.()]))[0];
    },
    async finish(rows) {
      const large = (rows[0] as { scopeLarge?: boolean } | undefined)?.scopeLarge;
      if (probed !== undefined && typeof large === "boolean") scopeSizes.set(probed, large, SCOPE_SIZE_TTL_SECONDS);
      const stale = Number((rows[0] as { stale?: number } | undefined)?.stale ?? 0);

      let results = (rows as unknown as ResultRow[]).filter((row) => row.chunkId != null).map(toResult);
      let scale = SCALE[request.mode];
      let rerank: Rerank.Outcome | undefined;
      if (reranking && cfg.rerank) {
        const reranked = await Rerank.apply(cfg.rerank, request.query, results, options.signal);
        rerank = reranked.outcome;
        if (reranked.outcome === "applied") scale = "rerank";
        results = reranked.results;
        if (request.minScore !== undefined && reranked.outcome !== "applied") {
          results = results.filter((r) => r.score >= (request.minScore as number));
        }
        results = results.slice(0, request.topK);
      }

      return {
        results,
        mode: request.mode,
        scale,
        ...(rerank ? { rerank } : {}),
        tookMs: Math.round((performance.now() - started) * 10) / 10,
        usage: { embeddingTokens },
        stale,
      };
    },
  };
}

interface ResultRow extends Omit<SearchResult, "createdAt" | "score"> {
  score: number | string;
  createdAt: Date | string;
}

const toResult = (row: ResultRow): SearchResult => ({
  documentId: row.documentId,
  chunkId: String(row.chunkId),
  ordinal: Number(row.ordinal),
  content: row.content,
  score: Number(row.score),
  title: row.title ?? null,
  source: row.source ?? null,
  metadata: row.metadata ?? {},
  createdAt: new Date(row.createdAt).toISOString(),
  location: row.location ?? null,
});

/** The owners a scope reads: '' is the tenant's shared space; a caller without an end user *is* the shared space. */
export function owners(userId: string, scope: Scope): string[] {
  if (scope === "shared") return [""];
  if (scope === "user") return [userId];
  return userId ? [userId, ""] : [""];
}

export interface Where {
  /** On chunks `c`: tenant and owner (denormalized from the document, served by `chunks_scope`). */
  chunks: SQL;
  /** On documents `d`: tenant and owner. */
  scope: SQL;
  /** On documents `d`: liveness and the request's filters. */
  documents: SQL;
  /** Whether the request filters documents beyond scope and liveness. */
  narrowed: boolean;
}

function scopeAndFilters(tenant: SQL, userId: string, scope: Scope, filter: SearchFilter): Where {
  const who = owners(userId, scope);
  const conditions: SQL[] = [];
  if (filter.metadata) conditions.push(sql`d.metadata @> ${JSON.stringify(filter.metadata)}::jsonb`);
  if (filter.documentIds) conditions.push(sql`d.id = any(${arr(filter.documentIds)}::text[])`);
  if (filter.conversationId !== undefined) conditions.push(sql`d.conversation_id = ${filter.conversationId}`);
  if (filter.minImportance !== undefined) conditions.push(sql`d.importance >= ${filter.minImportance}`);
  if (filter.createdAfter) conditions.push(sql`d.created_at >= ${filter.createdAfter}::timestamptz`);
  if (filter.createdBefore) conditions.push(sql`d.created_at < ${filter.createdBefore}::timestamptz`);
  // Document ids and conversations name few documents: find their keys once through documents' unique and
  // conversation indexes, then their chunks through `chunks_document`. Documents are otherwise joined by
  // key alone: without statistics (PGlite never autovacuums) the planner matched a tenant/owner condition on
  // documents to `documents_recent` inside a nested loop and read every document once per chunk (1.8 s for
  // 2,000 chunks); by key, the worst case is one primary key lookup a chunk.
  const named: SQL[] = [];
  if (filter.documentIds) named.push(sql`k.id = any(${arr(filter.documentIds)}::text[])`);
  if (filter.conversationId !== undefined) named.push(sql`k.conversation_id = ${filter.conversationId}`);
  const keys = named.length
    ? sql` and c.document_key = any(array(
        select k.key from documents k
        where k.tenant_id = ${tenant} and k.owner = any(${arr(who)}::text[]) and ${sql.join(named, sql` and `)}))`
    : sql``;
  return {
    chunks: sql`c.tenant_id = ${tenant} and c.owner = any(${arr(who)}::text[])${keys}`,
    scope: sql`d.tenant_id = ${tenant} and d.owner = any(${arr(who)}::text[])`,
    documents: sql.join(
      [sql`d.deleted_at is null and (d.expires_at is null or d.expires_at > now())`, ...conditions],
      sql` and `,
    ),
    narrowed: conditions.length > 0,
  };
}

/**
 * The statement named by its text, so `pg` parses and analyses each shape of search (mode, scope, which filters)
 * once per connection: 0.2-0.4 ms of the 1.1 ms the server spent before executing. Every value is a parameter,
 * so the shapes are few. The plan is still made for each call's values (`plan_cache_mode` below): a generic plan
 * cannot know whether a scope is small enough for the exact scan.
 */
function prepared(statement: SQL): Statement {
  const compiled = compile(statement);
  return { ...compiled, name: `search_${createHash("sha1").update(compiled.text).digest("base64url")}` };
}

/**
 * Transaction-local settings for the search statement. JIT off: the exact and fallback branches are planned
 * with the whole table's cost even when never run, which crosses `jit_above_cost` and spent 80-250 ms
 * compiling here. No parallel workers: the keyword list of a common-word query was planned as a parallel bitmap
 * heap scan, and starting a worker costs a few milliseconds of a statement meant to take a few.
 */
function settings(efSearch: number): Record<string, string> {
  return {
    "hnsw.ef_search": String(Math.min(efSearch, 1000)),
    "hnsw.iterative_scan": "relaxed_order",
    jit: "off",
    max_parallel_workers_per_gather: "0",
    plan_cache_mode: "force_custom_plan",
  };
}

/**
 * The `vec(id, distance)` CTE: the `n` chunks nearest the query vector, exactly ordered.
 *
 * Two strategies, chosen inside the statement from a bounded count of the candidate chunks:
 * - exact: compute the distance of every candidate and sort (recall 1). Cost grows with the candidates:
 *   about 2 µs a chunk here (measured: 1,000 chunks 2.7 ms, 2,000 4.0 ms, 5,000 18 ms, 10,000 40 ms).
 * - HNSW: `ORDER BY embedding <=> q LIMIT n` on the index, with pgvector 0.8's iterative scan (relaxed order,
 *   re-sorted here) so that filters applied during the scan still fill `n`. Its cost grows as the filter
 *   narrows (measured at 100,000 chunks, ef_search 100-200: 20% of rows 6 ms, 10% 13 ms, 5% 15 ms, 2% 12-19 ms,
 *   1% 20-23 ms, 0.5% 42-77 ms) and its recall drops (0.5%: 0.90).
 * They cross near 2,400 candidates at 100,000 chunks; as HNSW's cost follows the selectivity s = m / N and the
 * exact scan's the count m, the crossing m* = sqrt(c * N) with c ~ 60 (1M chunks: ~7,700; 10M: ~24,000).
 * So: exact when the candidates number at most max(SEARCH_EXACT_SCAN_CHUNKS, sqrt(60 * N)), N from pg_class.
 * Counting stops at that bound (the matching documents' chunk counts, see below). Should the index
 * scan still come back short (stale statistics, `hnsw.max_scan_tuples` reached), an exact scan fills in.
 * Chunks the indexer has not reached yet (`indexed = false`) are always scanned exactly beside the index scan;
 * a large backlog of them makes searches slower (about 2 µs a pending chunk in scope) until it catches up.
 * PGlite has no HNSW index (see migrations/0002): always exact there.
 *
 * Only chunks of the active `model` are ranked (#17): a vector of another model, even of the same length, is
 * not comparable with the query's. Re-embedded chunks are written `indexed = false` (core/embedding/reembed.ts)
 * and enter the HNSW graph through the indexer like new ones, so the graph serves the active model's vectors
 * from the staged design of migrations/0005; a stale chunk's old vector stays in the graph until its
 * re-embedding replaces the row, and while many do, the index scan filters them out (iterative scan) and, if it
 * comes back short, the exact scan below fills in: slower during a switch, never wrong. See docs/search.md.
 */
function vectorCandidates(
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
function staleCount(model: string, where: Where): SQL {
  return sql`stale as materialized (
    select count(*)::int as n from (
      select 1 from chunks c join documents d on d.key = c.document_key
      where ${where.chunks} and (c.embedding_model < ${model} or c.embedding_model > ${model})
        and ${where.scope} and ${where.documents}
      limit ${STALE_COUNT_MAX}) s)`;
}

/**
 * Keyword matches ranked per search: hybrid ranks fewer (its vector leg carries part of the answer), keyword
 * mode more. Matches come from the question's rarest words first (see `Keyword.candidates`), so the cap cuts
 * the common-word tail, where BM25 gives least.
 */
export const HYBRID_KEYWORD_MATCHES = 300;
export const KEYWORD_MATCHES = 5000;

interface Fusion {
  kind: "rrf" | "score";
  keywordWeight: number;
  rrfK: number;
}

function finalSelect(mode: Mode, k: number, minScore: number | undefined, fusion: Fusion, probed: boolean): SQL {
  const kw = fusion.keywordWeight;
  const ranked =
    mode === "vector"
      ? sql`select id, 1 - distance as score from vec`
      : mode === "keyword"
        ? sql`select id, rank / (select top from kwmax) as score from kw`
        : fusion.kind === "rrf"
          ? // Weighted reciprocal rank fusion, scaled so that first in both lists is 1.
            sql`select id, sum(w) * ${fusion.rrfK + 1}::float8 as score from (
                select id, ${1 - kw}::float8 / (${fusion.rrfK} + row_number() over (order by distance, id)) as w from vec
                union all
                select id, ${kw}::float8 / (${fusion.rrfK} + row_number() over (order by rank desc, id)) as w from kw
              ) u group by id`
          : // Convex combination of each list's scores, min-max normalized within the list (absent: 0).
            sql`select id, sum(w) as score from (
                select id, ${1 - kw}::float8 * coalesce((max(distance) over () - distance) / nullif(max(distance) over () - min(distance) over (), 0), 1) as w from vec
                union all
                select id, ${kw}::float8 * coalesce((rank - min(rank) over ()) / nullif(max(rank) over () - min(rank) over (), 0), 1) as w from kw
              ) u group by id`;
  return sql`
    select c.id::text as "chunkId", d.id as "documentId", c.ordinal, c.content, r.score,
           d.title, d.source, d.metadata, d.created_at as "createdAt", c.location,
           row_number() over (order by r.score desc, c.id) as position${probed ? sql`, (select large from probe) as "scopeLarge"` : sql``}
    from (${ranked}) r
    join chunks c on c.id = r.id
    join documents d on d.key = c.document_key
    ${minScore === undefined ? sql`` : sql`where r.score >= ${minScore}`}
    order by r.score desc, c.id
    limit ${k}`;
}

/** The query text as embedded and cached: Unicode NFC, trimmed, whitespace runs collapsed. */
export const normalizeQuery = (text: string) => text.normalize("NFC").trim().replace(/\s+/g, " ");

/** A small least-recently-used map whose entries also expire (process clock). */
function lru<T>(max: number) {
  const entries = new Map<string, { value: T; until: number }>();
  return {
    get(key: string): T | undefined {
      const entry = entries.get(key);
      if (!entry) return undefined;
      entries.delete(key);
      if (entry.until <= Date.now()) return undefined;
      entries.set(key, entry); // most recently used last
      return entry.value;
    },
    set(key: string, value: T, ttlSeconds: number): void {
      entries.delete(key);
      entries.set(key, { value, until: Date.now() + ttlSeconds * 1000 });
      if (entries.size > max) entries.delete(entries.keys().next().value as string);
    },
    clear: () => entries.clear(),
  };
}

/**
 * The last few hundred query embeddings of this process, in front of the database cache: a warm Lambda or the
 * local server answers a repeated query without the cache's round trip (0.5 ms, and 18 KB of vector text, at
 * 1,536 dimensions). Keyed by tenant like the database cache (by key before the gate has named the tenant);
 * entries live no longer than the cache's TTL.
 * Only what the same (model, dimensions, text) always embeds to is kept, so no instance can hold a stale one.
 */
const recentQueries = lru<string>(256);

/**
 * Whether a scope (tenant, owners, filters) held more chunks than the exact scan's bound when last probed, for
 * 30 s: the next searches of it skip the probe and go straight to the strategy it chose (0.3-0.6 ms of planning
 * and execution). Either answer, however stale, still gives correct results: the index path falls back to the
 * exact scan when it comes back short, and the exact scan is exact at any size (only slower, for at most 30 s,
 * if the scope grew past the bound meanwhile).
 */
const scopeSizes = lru<boolean>(1024);
const SCOPE_SIZE_TTL_SECONDS = 30;

/** Empties this process's memories: query embeddings and scope sizes (tests of what lies underneath). */
export const forgetRecentQueries = (): void => {
  recentQueries.clear();
  scopeSizes.clear();
};

async function embedQuery(
  db: Db,
  caller: Caller,
  text: string,
  options: SearchOptions,
): Promise<{ literal: string; tokens: number; remember?: () => Promise<void> }> {
  const embedder = options.embedder ?? defaultEmbedder();
  const normalized = normalizeQuery(text);
  // The offline embedder computes a query's vector in microseconds: caching it in the database would only add the
  // cache's two round trips to every search.
  const ttl = embedder.provider === "offline" ? 0 : config().search.queryCacheTtlSeconds;
  const digest = createHash("sha256").update(normalized).digest("hex");
  const key = `search:embedding:${embedder.model}:${embedder.dimensions}:${digest}`;
  const local = `${Gate.memoryKeyOf(caller)}/${key}`;
  // Before the gate has run the tenant is unknown, and the database's cache would cost a round trip of its own:
  // a gated search (Lambda's) uses this process's memory only.
  const shared = !Gate.unsettled(caller);
  if (ttl > 0) {
    const recent = recentQueries.get(local);
    if (recent) return { literal: recent, tokens: 0 };
  }
  if (ttl > 0 && shared) {
    const cached = await Cache.get<unknown>(db, caller.tenantId, key);
    if (typeof cached === "string" && cached.startsWith("[")) {
      recentQueries.set(local, cached, ttl);
      return { literal: cached, tokens: 0 };
    }
  }
  const result = await embedder.embed([normalized], { signal: options.signal }).catch((error) => {
    throw upstreamError(error, "embedding");
  });
  const vector = result.vectors[0];
  if (!vector || vector.length !== embedder.dimensions) {
    throw upstreamError(new Error(`expected one ${embedder.dimensions}-dimension vector`), "embedding");
  }
  const literal = vectorLiteral(vector);
  if (ttl > 0) recentQueries.set(local, literal, ttl);
  // Stored beside the search, not before it; a failed write only costs a later embedding call.
  const remember =
    ttl > 0 && shared
      ? () =>
          Cache.set(db, caller.tenantId, key, literal, ttl).catch((error) => {
            log.warn("search: could not cache the query embedding", { error });
          })
      : undefined;
  return { literal, tokens: result.tokens, remember };
}
