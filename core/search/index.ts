export * as Search from "./index";

import { createHash } from "node:crypto";
import { type SQL, sql } from "drizzle-orm";
import type { Caller } from "../auth";
import type { Location } from "../chunk/location";
import { config } from "../config";
import { compile, constant, type Db, type Query, type Row, type Statement } from "../db";
import * as Replica from "../db/replica";
import type { DocumentScope, Metadata } from "../document/schema";
import { embedder as defaultEmbedder, type Embedder } from "../embedding";
import * as Gate from "../gate";
import * as Keyword from "./keyword";
import * as QueryEmbedding from "./query-embedding";
import * as Rerank from "./rerank";
import type { Mode, SearchRequest } from "./schema";
import { owners, scopeAndFilters } from "./scope";
import * as Vector from "./vector";

export { normalizeQuery } from "./query-embedding";
export type { Mode, Scope, SearchInput } from "./schema";
export { SearchFilter, SearchRequest } from "./schema";
export { owners, type Where } from "./scope";
export { STALE_COUNT_MAX } from "./vector";

/** Empties this process's memories: query embeddings and scope sizes (tests of what lies underneath). */
export const forgetRecentQueries = (): void => {
  QueryEmbedding.recentQueries.clear();
  Vector.scopeSizes.clear();
};

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
  /**
   * Whose space the document is in: `user`, the caller's own; `shared`, the tenant's (every result of a caller
   * without an end user). With `documentId` it names the one document `GET /v1/documents/{id}?scope=` opens.
   */
  scope: DocumentScope;
  chunkId: string;
  ordinal: number;
  content: string;
  score: number;
  title: string | null;
  source: string | null;
  metadata: Metadata;
  createdAt: string;
  /** Where the passage is in its document: pages, headings (core/chunk/location.ts); null when unknown. */
  location: Location | null;
  /**
   * Hybrid only: each leg's own score for this passage, on its mode's scale (cosine similarity; BM25 as a share of
   * the question's best possible), null where that leg did not find it. `score` ranks; these say why.
   */
  legs?: { vector: number | null; keyword: number | null };
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

export interface SearchOptions {
  signal?: AbortSignal;
  /** Defaults to the process's configured embedder. */
  embedder?: Embedder;
  /**
   * How vector candidates are found: `auto` (default) picks by the candidates' count (see `vectorCandidates`);
   * `index` and `exact` force one strategy (tests and benchmarks compare them).
   */
  strategy?: "auto" | "index" | "exact";
  /**
   * Hybrid's keyword leg gathers as keyword mode's does (its cap, and the commoner words' matches): set when the
   * vector leg found nothing, as during a switch of embedding models (see `finish`).
   */
  wideKeyword?: boolean;
  /** The query's vector, already embedded (that second search): nothing is embedded again. */
  queryVector?: string;
}

/** Candidates each list contributes to hybrid fusion, per requested result. */
const CANDIDATES_PER_RESULT = 4;
/**
 * How far down each list hybrid fusion reads, whatever `topK`: the lists' length at topK 10, where fusion was
 * chosen. A fixed depth keeps a larger topK from reordering the first results (docs/search.md, "Fusion").
 */
const FUSION_DEPTH = 40;

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
  if (gateFirst(db, caller, request, options)) await Gate.open(db, caller);
  // Made before the query is embedded, so the replica's mark lookup (if any) overlaps the embedding.
  const reader = Gate.unsettled(caller) ? undefined : Replica.reader(db, caller.tenantId);
  const search = await plan(db, caller, request, options);
  const rows = reader
    ? await search.run(reader)
    : ((await Gate.through(db, caller, [search.statement], search.settings))[0] ?? []);
  return search.finish(rows);
}

/**
 * Whether the gate must run on its own before the search (search and chat's retrieval): with a read replica (its
 * decision writes, so it stays on the primary), or when the search would pay a model to embed its query for a key the
 * gate has not checked and this process has not seen accepted (a round trip more, once per key and process), so no
 * made-up key costs the operator an embedding. The offline embedder costs nothing and waits for no one.
 */
export function gateFirst(
  db: Db,
  caller: Caller,
  request: { mode: SearchRequest["mode"] },
  options: { embedder?: Embedder } = {},
): boolean {
  if (!Gate.unsettled(caller)) return false;
  if (Replica.replicaOf(db)) return true;
  return (
    request.mode !== "keyword" &&
    (options.embedder ?? defaultEmbedder()).provider !== "offline" &&
    !Gate.vouched(caller)
  );
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
  const n = request.mode === "hybrid" ? Math.min(Math.max(k * CANDIDATES_PER_RESULT, FUSION_DEPTH), 200) : k;
  const who = owners(caller.userId, request.scope);
  const tenant = Gate.tenantOf(caller);
  const where = scopeAndFilters(tenant, caller.userId, request.scope, request.filter);

  let embeddingTokens = 0;
  let remember: (() => Promise<void>) | undefined;
  let vector: string | undefined;
  const model = (options.embedder ?? defaultEmbedder()).model;
  if (request.mode !== "keyword") {
    const embedded = options.queryVector
      ? { literal: options.queryVector, tokens: 0, remember: undefined }
      : await QueryEmbedding.embed(db, caller, request.query, options);
    vector = embedded.literal;
    embeddingTokens = embedded.tokens;
    remember = embedded.remember;
  }
  options.signal?.throwIfAborted();

  const ctes: SQL[] = [];
  let probed: string | undefined; // the scope-size memo's key, when this statement probes the scope
  let strategy = db.capabilities.hnsw ? (options.strategy ?? "auto") : "exact";
  if (vector !== undefined) {
    if (strategy === "auto") {
      const key = `${Gate.memoryKeyOf(caller)}/${who.join(",")}/${JSON.stringify(request.filter)}`;
      const large = Vector.scopeSizes.get(key);
      if (large === undefined) probed = key;
      else strategy = large ? "index" : "exact";
    }
    ctes.push(Vector.staleCount(model, where));
    ctes.push(...Vector.vectorCandidates(vector, model, where, n, strategy, cfg.exactScanChunks));
  }
  if (request.mode !== "vector") {
    const cap = request.mode === "hybrid" && !options.wideKeyword ? HYBRID_KEYWORD_MATCHES : KEYWORD_MATCHES;
    ctes.push(
      ...Keyword.candidates({
        text: request.query,
        textConfig: cfg.textConfig,
        tenantId: tenant,
        owners: who,
        where,
        n,
        cap,
        // Hybrid without filters needs no fill: its short gathering holds every chunk with a rarer word, and the
        // vector leg answers for the rest (docs/search.md, "Bounded work").
        fill: request.mode === "keyword" || where.narrowed || options.wideKeyword === true,
        // The vector leg's first FUSION_DEPTH, which no topK changes (see FUSION_DEPTH).
        ...(vector === undefined
          ? {}
          : { alongside: sql`select id from vec order by distance, id limit ${constant(FUSION_DEPTH)}` }),
      }),
    );
  }
  // A question naming an identifier is answered where its exact term is: the keyword leg counts for more.
  const keywordWeight = Keyword.namesIdentifier(request.query)
    ? Math.max(cfg.keywordWeight, IDENTIFIER_KEYWORD_WEIGHT)
    : cfg.keywordWeight;
  const fusion = { kind: cfg.fusion, keywordWeight, rrfK: cfg.rrfK };
  const final = finalSelect(request.mode, k, reranking ? undefined : request.minScore, fusion, probed !== undefined);
  // With a vector leg, the stale count rides on every row, and on a row of its own (chunkId null) when no result.
  const statement =
    vector === undefined
      ? sql`with ${sql.join(ctes, sql`, `)} ${final}`
      : sql`with ${sql.join(ctes, sql`, `)}
        select f.*, s.n as stale, exists (select 1 from vec) as "vectorFound"
        from stale s left join (${final}) f on true order by f.position`;

  // Without the HNSW index (PGlite, embedded in-process) the settings for its scan and the server's planner, and a
  // named statement, have nothing to serve.
  const inProcess = !db.capabilities.hnsw;
  // A search known to take the HNSW index, without filters, runs one plan made for any values (docs/search.md,
  // "Statement settings"): every value that steers its plan is a constant of the text.
  const reusable = vector !== undefined && strategy === "index" && !where.narrowed;
  const searchSettings = inProcess ? undefined : Vector.settings(Math.max(cfg.efSearch, n), reusable);
  return {
    statement: inProcess ? statement : prepared(statement),
    settings: searchSettings,
    async run(db) {
      const search = inProcess ? db.query(statement) : db.query(prepared(statement), { settings: searchSettings });
      return (await Promise.all([search, remember?.()]))[0];
    },
    async finish(rows) {
      const large = (rows[0] as { scopeLarge?: boolean } | undefined)?.scopeLarge;
      if (probed !== undefined && typeof large === "boolean")
        Vector.scopeSizes.set(probed, large, Vector.SCOPE_SIZE_TTL_SECONDS);
      const stale = Number((rows[0] as { stale?: number } | undefined)?.stale ?? 0);
      // No vector of the active model in scope (every chunk stale: a switch of models under way): hybrid is its keyword
      // leg alone, whose short gathering counts on the vector leg for the rest. Searched again as keyword mode
      // gathers, so the stale chunks are found by keyword as well in hybrid as in keyword mode. The statement says
      // whether the vector leg found anything (an empty result alone does not: a high minScore); the query's vector is
      // handed over, so the second statement embeds nothing.
      const vectorFound = (rows[0] as { vectorFound?: boolean } | undefined)?.vectorFound;
      if (request.mode === "hybrid" && !options.wideKeyword && stale > 0 && vectorFound === false && vector) {
        const wide = await query(db, caller, request, { ...options, wideKeyword: true, queryVector: vector });
        return { ...wide, usage: { embeddingTokens: embeddingTokens + wide.usage.embeddingTokens } };
      }

      let results = (rows as unknown as ResultRow[]).filter((row) => row.chunkId != null).map(toResult);
      let scale = SCALE[request.mode];
      let rerank: Rerank.Outcome | undefined;
      if (reranking && cfg.rerank) {
        // minScore is on the fused scale (the endpoint's scores have one of their own): it chooses the candidates,
        // and the endpoint orders them, so which results come back does not depend on whether it answered.
        if (request.minScore !== undefined) results = results.filter((r) => r.score >= (request.minScore as number));
        const reranked = await Rerank.apply(cfg.rerank, request.query, results, options.signal);
        rerank = reranked.outcome;
        if (reranked.outcome === "applied") scale = "rerank";
        results = reranked.results.slice(0, request.topK);
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

interface ResultRow extends Omit<SearchResult, "createdAt" | "score" | "legs"> {
  score: number | string;
  createdAt: Date | string;
  vectorScore?: number | string | null;
  keywordScore?: number | string | null;
}

const orNull = (value: number | string | null | undefined) => (value == null ? null : Number(value));

const toResult = (row: ResultRow): SearchResult => ({
  documentId: row.documentId,
  scope: row.scope,
  chunkId: String(row.chunkId),
  ordinal: Number(row.ordinal),
  content: row.content,
  score: Number(row.score),
  title: row.title ?? null,
  source: row.source ?? null,
  metadata: row.metadata ?? {},
  createdAt: new Date(row.createdAt).toISOString(),
  location: row.location ?? null,
  ...(row.vectorScore !== undefined || row.keywordScore !== undefined
    ? { legs: { vector: orNull(row.vectorScore), keyword: orNull(row.keywordScore) } }
    : {}),
});

/**
 * The statement named by its text, so `pg` parses and analyses each shape of search (mode, scope, which filters)
 * once per connection: 0.2-0.4 ms of the 1.1 ms the server spent before executing. The request's values are
 * parameters and the code's a few constants, so the shapes are few. A search known to take the index without
 * filters keeps one plan too; any other is planned for its values (`reusable` in `plan`, docs/search.md).
 */
function prepared(statement: SQL): Statement {
  const compiled = compile(statement);
  return { ...compiled, name: `search_${createHash("sha1").update(compiled.text).digest("base64url")}` };
}

/**
 * Keyword matches ranked per search: hybrid ranks fewer (its vector leg carries part of the answer), keyword
 * mode more. Matches come from the question's rarest words first (see `Keyword.candidates`), so the cap cuts
 * the common-word tail, where BM25 gives least.
 */
export const HYBRID_KEYWORD_MATCHES = 300;
/**
 * The keyword leg's least weight in hybrid for a question that names an identifier (`Keyword.namesIdentifier`):
 * the offline vector leg reads `sqlite3_prepare_v2` as its spelling, and near-tied keyword scores were reordered by
 * it (docs/search.md, "Fusion", measured).
 */
export const IDENTIFIER_KEYWORD_WEIGHT = 0.8;
export const KEYWORD_MATCHES = 5000;

interface Fusion {
  kind: "rrf" | "score";
  keywordWeight: number;
  rrfK: number;
}

function finalSelect(mode: Mode, k: number, minScore: number | undefined, fusion: Fusion, probed: boolean): SQL {
  const kw = fusion.keywordWeight;
  // The vector leg's share, as the decimal it is (1 - 0.7 is 0.30000000000000004 in floating point, which the
  // scores of results only that leg found would show).
  const vw = Number((1 - kw).toPrecision(12));
  // Each list as (id, g, rn): its goodness g, higher is better (a distance negated, which is exact), and its rank,
  // so fusion can stop at FUSION_DEPTH: a chunk ranked deeper scores 0 from that list.
  // Each list also carries its own score out (vg, kg), so a hybrid result can say what each leg made of it.
  const lists: [weight: number, list: SQL][] = [
    [
      vw,
      sql`select id, -distance as g, row_number() over (order by distance, id) as rn, -distance as vg, null::float8 as kg from vec`,
    ],
    [
      kw,
      sql`select id, rank as g, row_number() over (order by rank desc, id) as rn, null::float8 as vg, rank as kg from kw`,
    ],
  ];
  const depth = FUSION_DEPTH;
  // Per list: `w`, its share of the score at that depth, and `t`, the same over the whole list. Hybrid's `tail` (the
  // sum of t) orders only what scores 0 at that depth: the results of a topK past it.
  const fused = (leg: (weight: number, list: SQL) => SQL, scale = sql``) =>
    sql`select id, sum(w)${scale} as score, sum(t) as tail, max(vg) as vg, max(kg) as kg from (${sql.join(
      lists.map(([weight, list]) => leg(weight, list)),
      sql` union all `,
    )}) u group by id`;
  const ranked =
    mode === "vector"
      ? sql`select id, 1 - distance as score from vec`
      : mode === "keyword"
        ? sql`select id, rank / (select top from kwmax) as score from kw`
        : fusion.kind === "rrf"
          ? // Weighted reciprocal rank fusion, scaled so that first in both lists is 1.
            fused(
              (weight, list) => sql`
                select id, case when rn <= ${constant(depth)} then t else 0 end as w, t, vg, kg from (
                  select id, rn, vg, kg, ${constant(weight)}::float8 / (${constant(fusion.rrfK)} + rn) as t from (${list}) l) l`,
              sql` * ${constant(fusion.rrfK + 1)}::float8`,
            )
          : // Convex combination of each list's scores, min-max normalized between its best and its score at
            // FUSION_DEPTH (or its last, if shorter); absent or deeper: 0.
            fused(
              (weight, list) => sql`
                select id,
                  ${constant(weight)}::float8 * case when rn > ${constant(depth)} then 0 else coalesce((g - ref) / nullif(best - ref, 0), 1) end as w,
                  ${constant(weight)}::float8 * coalesce((g - worst) / nullif(best - worst, 0), 1) as t, vg, kg
                from (
                  select id, g, rn, vg, kg, max(g) over () as best, min(g) over () as worst,
                         min(g) filter (where rn <= ${constant(depth)}) over () as ref
                  from (${list}) l) l`,
            );
  // The best k are picked before the join, so only they are looked up in `chunks` and `documents` (every
  // candidate is live already: both legs checked it).
  const order = mode === "hybrid" ? sql`score desc, tail desc, id` : sql`score desc, id`;
  return sql`
    select c.id::text as "chunkId", d.id as "documentId",
           case when d.owner = '' then 'shared' else 'user' end as scope, c.ordinal, c.content, r.score,
           d.title, d.source, d.metadata, d.created_at as "createdAt", c.location,
           r.position${probed ? sql`, (select large from probe) as "scopeLarge"` : sql``}${
             mode === "hybrid"
               ? sql`, 1 + r.vg as "vectorScore", r.kg / (select top from kwmax) as "keywordScore"`
               : sql``
           }
    from (
      select id, score, ${mode === "hybrid" ? sql`vg, kg, ` : sql``}row_number() over (order by ${order}) as position from (${ranked}) f
      ${minScore === undefined ? sql`` : sql`where score >= ${minScore}`}
      order by ${order}
      limit ${k}) r
    join chunks c on c.id = r.id
    join documents d on d.key = c.document_key
    order by r.position`;
}
