import { sql } from "drizzle-orm";
import { config } from "../config";
import { db } from "../db";
import * as Reembed from "../embedding/reembed";

export interface HealthReport {
  /**
   * `degraded`: the database is unreachable (503), or most chunks of live documents are stale for this model (200,
   * `embedder.warning`).
   */
  status: "ok" | "degraded";
  database: "ok" | "unreachable";
  driver: string;
  version: string;
  /**
   * `reembedding`: tenants whose move to this model (`engram reembed`) is unfinished; `staleShare`: the share of the
   * chunks of live documents (every tenant's; not deleted, not expired) of another model, which this process's vector
   * search skips; `warning`, when that is most of them, says what to do. The three absent when unreachable;
   * `staleShare` also when not known (below).
   */
  embedder: {
    provider: string;
    model: string;
    dimensions: number;
    reembedding?: number;
    staleShare?: number;
    warning?: string;
  };
  chat: { provider: string; model: string };
}

/** Up to this many chunks, the share is counted exactly; above, it is read from the planner's statistics. */
const EXACT = 1_000;
/**
 * Above `EXACT`, up to this many chunks of deleted and expired documents are read: all of them when there are no more,
 * else a sample of their models. Each costs index and heap reads of its document and of itself (1,000: about 10 ms).
 */
const GONE_READ = 100;
/** From this share of stale chunks on, the status is `degraded`: vector search misses most of the data. */
const DEGRADED_SHARE = 0.5;

/** A live document: neither deleted softly nor past its expiry, as search reads it (core/search/scope.ts). */
const LIVE = sql`d.deleted_at is null and (d.expires_at is null or d.expires_at > now())`;

/**
 * What the share is made of, without reading every chunk, as health is asked often (load balancers, the console). Only
 * chunks of live documents count: those of a deleted or expired document wait for the cleanup (core/cleanup), and no
 * search reads them. Up to `EXACT` chunks (by `pg_class.reltuples`, kept by vacuum, ANALYZE and index builds) at
 * most `EXACT + 1` live ones are read and counted (`exact`). Above, the planner's statistics (kept by autovacuum's
 * ANALYZE, and on PGlite by `Statistics.refresh`): `chunks.embedding_model`'s `most_common_freqs` give the share of
 * every stored chunk, live or not (`total`, `stale`), `documents.deleted_at`'s `null_frac` the share of documents
 * deleted softly (`deletedShare`), and up to `GONE_READ + 1` chunks of deleted and expired documents are read through
 * their partial indexes (`goneRead`, `goneStale`). Statistics lag behind the tables by up to about a tenth (autovacuum
 * analyzes after 50 rows and 10% changed), which a threshold of half absorbs. One statement with the unfinished runs'
 * count, which is also the database probe.
 */
const probe = (model: string) => sql`
  with exact as materialized (
    select case when (select reltuples from pg_class where oid = 'chunks'::regclass) <= ${EXACT} then (
      select case when count(*) <= ${EXACT}
        then coalesce((count(*) filter (where m <> ${model}))::float8 / nullif(count(*), 0), 0) end
      from (select c.embedding_model as m from chunks c join documents d on d.key = c.document_key
            where ${LIVE} limit ${EXACT + 1}) as few)
    end as share)
  select (select count(*)::int from embedding_state where finished_at is null and model = ${model}) as reembedding,
    e.share as exact,
    (select greatest(reltuples, 0) from pg_class where oid = 'chunks'::regclass)::float8 as total,
    statistics.stale, statistics."deletedShare", gone.read as "goneRead", gone.stale as "goneStale"
  from exact e
  -- Both read only when the exact count was not made. One pass over pg_stats, a view that is slow to plan.
  cross join lateral (
    select
      max(case when s.tablename = 'chunks' then 1 - coalesce(
        s.most_common_freqs[array_position(s.most_common_vals::text::text[], ${model}::text)], 0) end)::float8 as stale,
      max(case when s.tablename = 'documents' then 1 - s.null_frac end)::float8 as "deletedShare"
    from pg_stats s
    where e.share is null and s.schemaname = current_schema()
      and ((s.tablename = 'chunks' and s.attname = 'embedding_model')
        or (s.tablename = 'documents' and s.attname = 'deleted_at'))) as statistics
  -- The documents first, each kind in its partial index's order: a plan that joins first may start parallel workers
  -- (tens of milliseconds), and a scan of the table for the first few read all of it when they were at its end.
  cross join lateral (
    select count(*)::int as read, (count(*) filter (where m <> ${model}))::int as stale
    from (
      select c.embedding_model as m
      from ((select d.key from documents d
             where e.share is null and d.deleted_at is not null order by d.deleted_at limit ${GONE_READ + 1})
            union all
            (select d.key from documents d
             where e.share is null and d.expires_at <= now() and d.deleted_at is null
             order by d.expires_at limit ${GONE_READ + 1})
            limit ${GONE_READ + 1}) as d
      join lateral (
        select embedding_model from chunks c where c.document_key = d.key limit ${GONE_READ + 1}) as c on true
      limit ${GONE_READ + 1}) as sample) as gone`;

/** What `probe` reads. */
export interface Probe {
  /** The share counted from the chunks of live documents, when there are at most `EXACT` chunks; else null. */
  exact: number | null;
  /** Chunks stored, live or not (`pg_class.reltuples`). */
  total: number;
  /** The share of them of another model (`pg_stats`); null when never analyzed. */
  stale: number | null;
  /** The share of documents deleted softly (`pg_stats`); null when never analyzed. */
  deletedShare: number | null;
  /** Chunks of deleted or expired documents read, up to `GONE_READ + 1`, and how many of them are of another model. */
  goneRead: number;
  goneStale: number;
}

/**
 * The share, 0 to 1, of live documents' chunks that are of another model than the active one; undefined when there
 * are no statistics to read it from. Above `EXACT` chunks: the stale chunks less the stale ones of deleted and expired
 * documents, of all chunks less those of deleted and expired documents. Those are the ones read when they were all
 * read; else as many as the soft-deleted share of the chunks (documents of the average length; expired ones, which the
 * hourly cleanup purges, not estimated), of another model as often as the ones read.
 */
export function staleShareOf(p: Probe): number | undefined {
  if (p.exact !== null) return p.exact;
  if (p.stale === null) return undefined;
  const all = p.goneRead <= GONE_READ;
  const gone = all ? p.goneRead : Math.min(p.total, Math.max(p.goneRead, p.total * (p.deletedShare ?? 0)));
  const goneStale = all ? p.goneStale : gone * (p.goneStale / p.goneRead);
  const live = p.total - gone;
  if (live < 1) return 0;
  return Math.min(1, Math.max(0, (p.total * p.stale - goneStale) / live));
}

/** Service health; `database` is probed with one query. */
export async function check(): Promise<HealthReport> {
  const cfg = config();
  // Described from configuration: building the embedder would pull the OpenAI SDK into functions that never embed.
  const e = Reembed.active();
  const found = await db()
    .then((d) => d.query<Record<"reembedding" | keyof Probe, number | string | null>>(probe(e.model)))
    .then(([row]) => {
      // Numbers as the drivers give them (float8 may come as a string).
      const n = (v: number | string | null | undefined) => (v === null || v === undefined ? null : Number(v));
      const share = staleShareOf({
        exact: n(row?.exact),
        total: n(row?.total) ?? 0,
        stale: n(row?.stale),
        goneRead: n(row?.goneRead) ?? 0,
        goneStale: n(row?.goneStale) ?? 0,
        deletedShare: n(row?.deletedShare),
      });
      return {
        reembedding: n(row?.reembedding) ?? 0,
        staleShare: share === undefined ? undefined : Math.round(share * 100) / 100,
      };
    })
    .catch(() => undefined);
  const reachable =
    found !== undefined ||
    (await db()
      .then((d) => d.ping())
      .catch(() => false));
  const staleShare = found?.staleShare;
  const warning =
    staleShare !== undefined && staleShare >= DEGRADED_SHARE
      ? `${Math.round(staleShare * 100)}% of the stored chunks were embedded by another model than ${e.model}, so vector search skips them (keyword search still finds them): ` +
        (found?.reembedding
          ? "a re-embedding to this model is under way (`engram reembed` or `/v1/stats` shows how far)"
          : `run \`engram reembed\` configured for ${e.model} to move them to it, or, if the other processes have moved to another model, restart this one configured as they are`)
      : undefined;
  return {
    status: reachable && !warning ? "ok" : "degraded",
    database: reachable ? "ok" : "unreachable",
    driver: cfg.database.driver,
    version: cfg.version,
    embedder: {
      provider: e.provider,
      model: e.model,
      dimensions: e.dimensions,
      ...(found === undefined ? {} : { reembedding: found.reembedding }),
      ...(staleShare === undefined ? {} : { staleShare }),
      ...(warning ? { warning } : {}),
    },
    chat:
      cfg.chat.provider === "openai"
        ? { provider: "openai", model: cfg.chat.model }
        : { provider: "extractive", model: "extractive" },
  };
}
