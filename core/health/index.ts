import { sql } from "drizzle-orm";
import { config } from "../config";
import { db } from "../db";
import * as Reembed from "../embedding/reembed";

export interface HealthReport {
  /** `degraded`: the database is unreachable (503), or most stored chunks are stale for this model (200, `embedder.warning`). */
  status: "ok" | "degraded";
  database: "ok" | "unreachable";
  driver: string;
  version: string;
  /**
   * `reembedding`: tenants whose move to this model (`engram reembed`) is unfinished; `staleShare`: the share of the
   * stored chunks (every tenant's) of another model, which this process's vector search skips; `warning`, when that
   * is most of them, says what to do. The three absent when unreachable; `staleShare` also when not known (below).
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
/** From this share of stale chunks on, the status is `degraded`: vector search misses most of the data. */
const DEGRADED_SHARE = 0.5;

/**
 * The share of stale chunks without reading the chunks, as health is asked often (load balancers, the console): up
 * to `EXACT` chunks (by `pg_class.reltuples`, kept by vacuum, ANALYZE and index builds) at most `EXACT + 1` rows are
 * read and counted; above, the column's statistics (`pg_stats.most_common_freqs` of `chunks.embedding_model`, which
 * autovacuum's ANALYZE keeps, and on PGlite `Statistics.refresh`): one catalog row. Those lag behind the chunks by up
 * to about a tenth of the table (autovacuum analyzes after 50 rows and 10% changed), which a threshold of half
 * absorbs. Null when neither is there (a large table never analyzed). One statement with the unfinished runs' count,
 * which is also the database probe.
 */
const probe = (model: string) => sql`
  select (select count(*)::int from embedding_state where finished_at is null and model = ${model}) as reembedding,
    coalesce(
      case when (select reltuples from pg_class where oid = 'chunks'::regclass) <= ${EXACT} then (
        select case when count(*) <= ${EXACT}
          then coalesce((count(*) filter (where m <> ${model}))::float8 / nullif(count(*), 0), 0) end
        from (select embedding_model as m from chunks limit ${EXACT + 1}) as few)
      end,
      (select 1 - coalesce(s.most_common_freqs[array_position(s.most_common_vals::text::text[], ${model}::text)], 0)
       from pg_stats s
       where s.schemaname = current_schema() and s.tablename = 'chunks' and s.attname = 'embedding_model')
    )::float8 as stale`;

/** Service health; `database` is probed with one query. */
export async function check(): Promise<HealthReport> {
  const cfg = config();
  // Described from configuration: building the embedder would pull the OpenAI SDK into functions that never embed.
  const e = Reembed.active();
  const found = await db()
    .then((d) => d.query<{ reembedding: number; stale: number | string | null }>(probe(e.model)))
    .then(([row]) => ({
      reembedding: Number(row?.reembedding ?? 0),
      staleShare:
        row?.stale === null || row?.stale === undefined ? undefined : Math.round(Number(row.stale) * 100) / 100,
    }))
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
