import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { type SQL, sql } from "drizzle-orm";
import * as Background from "../background";
import { embeddingText } from "../chunk/context";
import { config } from "../config";
import { arr, type Db, vectorLiteral } from "../db";
import { sqlState } from "../db/errors";
import { EngramError, upstreamError } from "../error";
import { log } from "../log";
import * as Hnsw from "../search/hnsw";
import * as Tokens from "../tokens";
import { OFFLINE_MODEL } from "./offline";
import type { Embedder } from "./types";

/**
 * Moves a tenant's chunks to the active embedding model (#17). Search ranks only chunks of the active model
 * (core/search `vectorCandidates`); the others are "stale" until this re-embeds them.
 *
 * - Resumable and idempotent: progress is the chunks themselves (`embedding_model`), so a run that dies (crash,
 *   Lambda timeout, provider down) loses at most the batch it was embedding, and the next run picks up what is
 *   still stale. Running it with nothing stale does nothing.
 * - Each batch is one statement: the chunks' new vectors and the tenant's progress land together or not at all.
 *   A chunk is written only while still of the old model and while this run holds the tenant's lease.
 * - Concurrency-safe: one run at a time per tenant, by a lease in `embedding_state` (migrations/0012), renewed
 *   each batch and expiring if the run dies; a second run finds the tenant taken and does nothing, so no text is
 *   embedded (paid for) twice.
 * - Reuse: a text (context + content, `embeddingText`, as ingest embeds it) already embedded by the active model
 *   for this tenant is not embedded again; its vector is copied (`chunks_reuse`).
 * - Rate limits: the embedder's own retries honour 429 and Retry-After (core/provider/retry.ts); when they give up, the
 *   run stops cleanly, records the error and says how much is left.
 * - Re-embedded chunks go straight into the new model's own HNSW index (core/search/hnsw.ts), in the batch's own
 *   statement: one new row version per chunk, where writing them `indexed = false` for the indexer to flip made two
 *   (twice the dead rows, so twice the autovacuums) for the same inserts. That graph starts empty and holds only the
 *   new model's vectors; the old model's is not touched. The inserts are most of a batch's time (docs/search.md).
 */

export interface Options {
  tenantId: string;
  /** The active model's embedder (the process's configured one). */
  embedder: Embedder;
  /** Chunks per batch (one embedding call, one write). Default 256: larger batches measured no faster (docs/search.md). */
  batchSize?: number;
  /**
   * After each batch, rest `pace` times as long as its write took. The write is the database's work (its HNSW
   * inserts, a core's worth), so at 1 a re-embed takes at most about half of what it would, and the searches on
   * that database keep their share; 0: no rest. Default REEMBED_PACE (1). Measured: docs/search.md.
   */
  pace?: number;
  /** Stop starting new batches after this long. Default: no limit. */
  budgetMs?: number;
  /** Stop after this many chunks (tests, bounded steps). */
  limit?: number;
  /**
   * Called after each batch: `done`, the chunks this run moved; `total`, those plus the chunks still to move, counted
   * again each time (chunks of another model can arrive or be deleted during the run), so `done <= total`.
   */
  onProgress?: (progress: { done: number; total: number }) => void;
  signal?: AbortSignal;
  /**
   * How long the lease lasts without renewal: a run that dies (SIGKILL, a Lambda timeout) blocks others this long.
   * Default 2 minutes, longer than one batch's embedding call with its retries (30 s timeouts, waits summing to at most 10 s).
   */
  leaseMs?: number;
  /**
   * Continuing a run begun before (the cleanup, the local server's loop): it moves what the record asks, only the
   * turns whose context was dropped when that is what it was begun for. Otherwise (`engram reembed`) every stale chunk.
   */
  continuing?: boolean;
}

export interface Report {
  model: string;
  /** Chunks of another model when the run started. */
  stale: number;
  /** Chunks moved to the model by this run: embedded, or given an existing vector of the same text. */
  reembedded: number;
  /** Of those, how many took an existing vector instead of an embedding call. */
  reused: number;
  tokens: number;
  /** Chunks still of another model when the run stopped. */
  remaining: number;
  /** Why it stopped before the end: `busy` (another run holds the tenant), `budget`, `limit`, or `error`. */
  stopped?: "busy" | "budget" | "limit" | "error";
  /** With `stopped: "error"`: what failed (the next run continues from the same place). */
  error?: string;
  /** With `stopped: "busy"`: until when the other run's lease holds. */
  busyUntil?: string;
}

export interface Estimate {
  model: string;
  /** Chunks of another model. */
  chunks: number;
  /** Distinct texts among them with no vector of this model yet: what would be sent to the provider. */
  texts: number;
  /** Estimated tokens of those texts (ceil(characters / 4) each, as the OpenAI embedder batches). */
  tokens: number;
}

/**
 * The active embedding model as configured, without building the embedder (which would bring the OpenAI SDK into
 * functions that never embed): what stats and health report and what search ranks.
 */
export function active(): { provider: "openai" | "offline"; model: string; dimensions: number } {
  const e = config().embedding;
  return { provider: e.provider, model: e.provider === "openai" ? e.model : OFFLINE_MODEL, dimensions: e.dimensions };
}

/** Chunks that are stale for `model`: two ranges over `chunks_reuse` (tenant, model, hash), which skip the rest. */
const staleFor = (tenantId: string | SQL, model: string) =>
  sql`c.tenant_id = ${tenantId} and (c.embedding_model < ${model} or c.embedding_model > ${model})`;

/** The model of a chunk whose context was dropped, until it is re-embedded: no model's, so no search ranks it. */
export const CONTEXT_DROPPED = "engram:context-dropped";

/** What a run moves: every stale chunk, or (a run begun for dropped turn context) only those turns. */
const movedBy = (tenantId: string, model: string, contextOnly: boolean) =>
  contextOnly ? sql`c.tenant_id = ${tenantId} and c.embedding_model = ${CONTEXT_DROPPED}` : staleFor(tenantId, model);

const countOf = async (db: Db, where: SQL) =>
  Number((await db.query<{ n: number }>(sql`select count(*)::int as n from chunks c where ${where}`))[0]?.n ?? 0);

/** How many of the tenant's chunks are of another model than `model`. */
export async function pending(db: Db, tenantId: string, model: string): Promise<number> {
  return countOf(db, staleFor(tenantId, model));
}

/** What a run would do, without doing it: chunks, texts to embed and their estimated tokens. */
export async function estimate(db: Db, tenantId: string, model: string): Promise<Estimate> {
  const [row] = await db.query<{ chunks: number; texts: number; tokens: number }>(sql`
    with stale as (
      select c.content_hash, count(*) as n, max(length(c.context) + length(c.preceding) + length(c.content)) as chars, bool_or(c.context <> '') as ctx
      from chunks c where ${staleFor(tenantId, model)} group by c.content_hash),
    todo as (
      select * from stale s where not exists (
        select 1 from chunks k where k.tenant_id = ${tenantId} and k.embedding_model = ${model} and k.content_hash = s.content_hash))
    select (select coalesce(sum(n), 0)::int from stale) as chunks, (select count(*)::int from todo) as texts,
           (select coalesce(sum(ceil((chars + case when ctx then 2 else 0 end) / 4.0)), 0)::int from todo) as tokens`);
  return { model, chunks: Number(row?.chunks ?? 0), texts: Number(row?.texts ?? 0), tokens: Number(row?.tokens ?? 0) };
}

/** Tenants holding chunks of another model than `model`, by name (`engram reembed --all-tenants`). */
export async function tenantsWithStale(db: Db, model: string): Promise<{ id: string; name: string }[]> {
  return db.query<{ id: string; name: string }>(sql`
    select t.id, t.name from tenants t
    where exists (select 1 from chunks c where ${staleFor(sql`t.id`, model)})
    order by t.name`);
}

/** The tenant's re-embedding state for the active model, as stats and health show it. */
export interface State {
  model: string;
  /** Chunks of another model than the active one. */
  pending: number;
  /**
   * The record of the tenant's last re-embedding, when it was to the active model. A move begun to another model (say
   * one that failed before the configuration went back) is that model's to report and continue, as health counts only
   * moves to the active model: nothing run with this one finishes it.
   */
  run?: {
    model: string;
    startedAt: string;
    finishedAt: string | null;
    reembedded: number;
    lastError: string | null;
    runningUntil: string | null;
  };
}

export async function state(db: Db, tenantId: string, model: string): Promise<State> {
  const [rows, count] = await Promise.all([
    db.query<{
      model: string;
      startedAt: Date | string;
      finishedAt: Date | string | null;
      reembedded: number | string;
      lastError: string | null;
      leaseUntil: Date | string | null;
    }>(sql`
      select model, started_at as "startedAt", finished_at as "finishedAt", reembedded, last_error as "lastError",
             case when lease_until > now() then lease_until end as "leaseUntil"
      from embedding_state where tenant_id = ${tenantId} and model = ${model}`),
    pending(db, tenantId, model),
  ]);
  const row = rows[0];
  const iso = (v: Date | string | null) => (v === null ? null : new Date(v).toISOString());
  return {
    model,
    pending: count,
    ...(row
      ? {
          run: {
            model: row.model,
            startedAt: iso(row.startedAt) as string,
            finishedAt: iso(row.finishedAt),
            reembedded: Number(row.reembedded),
            lastError: row.lastError,
            runningUntil: iso(row.leaseUntil),
          },
        }
      : {}),
  };
}

/**
 * Records that the tenant's chunks are to move to `model`, without doing any of it: the cleanup cron and the local
 * server's background loop then continue it (`continueUnfinished`). A no-op while a run for `model` is unfinished.
 */
export async function begin(
  db: Db,
  tenantId: string,
  model: string,
  dimensions: number,
): Promise<{ busy?: { model: string; until: string } }> {
  await db.query(beginning(sql`select ${tenantId}::uuid`, model, dimensions));
  // This process's loop may be waiting out failures (Background.repeat): the run asked for starts now.
  for (const wake of wakers) wake();
  // A run of this model for dropped turn context only, which may hold the lease: it is to move everything now (it
  // does not finish the record while this says so, and the next pass moves the rest).
  await db.query(sql`
    update embedding_state set context_only = false, updated_at = now()
    where tenant_id = ${tenantId} and model = ${model} and finished_at is null and context_only`);
  const [held] = await db.query<{ model: string; until: Date | string }>(sql`
    select model, lease_until as until from embedding_state
    where tenant_id = ${tenantId} and model <> ${model} and lease_until > now()`);
  return held ? { busy: { model: held.model, until: new Date(held.until).toISOString() } } : {};
}

/**
 * `begin` for each tenant of a query, as a statement (or a common table expression) of its own. `contextOnly`: a run
 * for the turns whose context was dropped only (core/ingest/turns.ts), which a run of the whole tenant includes.
 */
export function beginning(tenants: SQL, model: string, dimensions: number, contextOnly = false): SQL {
  return sql`
    insert into embedding_state as s (tenant_id, model, dimensions, context_only)
    select t, ${model}::text, ${dimensions}::int, ${contextOnly}::boolean from (${tenants}) as x(t)
    on conflict (tenant_id) do update set
      model = excluded.model, dimensions = excluded.dimensions, started_at = now(), finished_at = null,
      reembedded = 0, reused = 0, tokens = 0, last_error = null, updated_at = now(),
      context_only = excluded.context_only
    -- A run another process holds (its lease) keeps its model: overwritten, it went on writing its own model's
    -- vectors under this one's name, and this one's request was lost when it finished.
    where (s.model <> excluded.model or s.finished_at is not null or (s.context_only and not excluded.context_only))
      and (s.lease_until is null or s.lease_until < now())`;
}

/**
 * Continues every unfinished re-embedding to the embedder's model, tenant after tenant, within the time budget
 * (the cleanup cron, the local server). Tenants another run holds are left to it.
 */
export async function continueUnfinished(
  db: Db,
  embedder: Embedder,
  options: { budgetMs: number; batchSize?: number; signal?: AbortSignal },
): Promise<{ reembedded: number; complete: boolean }> {
  const started = performance.now();
  let reembedded = 0;
  let complete = true;
  for (const tenantId of await unfinished(db, embedder.model)) {
    const budgetMs = options.budgetMs - (performance.now() - started);
    if (budgetMs <= 0 || options.signal?.aborted) return { reembedded, complete: false };
    const report = await run(db, {
      tenantId,
      embedder,
      budgetMs,
      batchSize: options.batchSize,
      continuing: true,
      signal: options.signal,
    });
    reembedded += report.reembedded;
    if (report.remaining > 0) complete = false;
  }
  return { reembedded, complete };
}

/** Tenants whose last started re-embedding to `model` is unfinished (what the cron and the local server continue). */
export async function unfinished(db: Db, model: string): Promise<string[]> {
  const rows = await db.query<{ tenantId: string }>(sql`
    select tenant_id as "tenantId" from embedding_state
    where finished_at is null and model = ${model} and (lease_until is null or lease_until < now())`);
  return rows.map((r) => r.tenantId);
}

/** Re-embeds the tenant's stale chunks with `options.embedder`, in batches, until none are left or it must stop. */
export async function run(db: Db, options: Options): Promise<Report> {
  const { tenantId, embedder } = options;
  const model = embedder.model;
  const batchSize = options.batchSize ?? 256;
  const leaseMs = options.leaseMs ?? 2 * 60_000;
  const budgetMs = options.budgetMs ?? Number.POSITIVE_INFINITY;
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const pace = options.pace ?? config().embedding.reembedPace;
  const runner = randomUUID();
  const started = performance.now();
  const [recorded] = options.continuing
    ? await db.query<{ contextOnly: boolean }>(sql`
        select context_only as "contextOnly" from embedding_state
        where tenant_id = ${tenantId} and model = ${model} and finished_at is null`)
    : [];
  let contextOnly = recorded?.contextOnly === true;
  let moving = movedBy(tenantId, model, contextOnly);
  const stale = await countOf(db, moving);
  const report: Report = { model, stale, reembedded: 0, reused: 0, tokens: 0, remaining: stale };
  if (stale === 0) {
    // (A record asked meanwhile to move everything stays unfinished: the next pass moves it.)
    await finish(db, tenantId, model, embedder.dimensions, undefined, contextOnly);
    return report;
  }

  // Its vectors go straight into its own graph (below), which must exist first: built before the lease is taken.
  await Hnsw.ensure(db, model);
  // Take the tenant's lease (a new model starts the record over); nothing comes back while another run holds it.
  const [lease] = await db.query<{ ok: boolean; contextOnly: boolean }>(sql`
    insert into embedding_state as s (tenant_id, model, dimensions, runner, lease_until, context_only)
    values (${tenantId}, ${model}, ${embedder.dimensions}, ${runner}, now() + ${leaseMs}::int * interval '1 millisecond',
            ${contextOnly}::boolean)
    on conflict (tenant_id) do update set
      runner = excluded.runner, lease_until = excluded.lease_until, updated_at = now(), last_error = null,
      -- Never narrowed by a run: an operator's request to move everything, made since this run read the record, stays.
      context_only = case when s.model = excluded.model and s.finished_at is null
                          then s.context_only and excluded.context_only else excluded.context_only end,
      finished_at = null, dimensions = excluded.dimensions,
      started_at = case when s.model = excluded.model and s.finished_at is null then s.started_at else now() end,
      reembedded = case when s.model = excluded.model and s.finished_at is null then s.reembedded else 0 end,
      reused = case when s.model = excluded.model and s.finished_at is null then s.reused else 0 end,
      tokens = case when s.model = excluded.model and s.finished_at is null then s.tokens else 0 end,
      model = excluded.model
    where s.lease_until is null or s.lease_until < now()
    returning true as ok, context_only as "contextOnly"`);
  if (!lease) {
    const [other] = await db.query<{ until: Date | string }>(
      sql`select lease_until as until from embedding_state where tenant_id = ${tenantId}`,
    );
    return { ...report, stopped: "busy", busyUntil: other ? new Date(other.until).toISOString() : undefined };
  }
  if (contextOnly && !lease.contextOnly) {
    // Asked since to move everything: this run does, so its count is of everything too.
    contextOnly = false;
    moving = movedBy(tenantId, model, false);
    report.stale = report.remaining = await countOf(db, moving);
  }

  const hnsw = (await Hnsw.available(db)) !== undefined;
  try {
    while (report.reembedded < limit) {
      if (performance.now() - started >= budgetMs) {
        report.stopped = "budget";
        break;
      }
      options.signal?.throwIfAborted();
      const want = Math.min(batchSize, limit - report.reembedded);
      const moved = await batch(db, tenantId, moving, embedder, runner, want, leaseMs, hnsw, options.signal);
      if (moved.lost) throw new EngramError("conflict", "reembed.lease_lost", "another run took over this tenant");
      report.reembedded += moved.n;
      report.reused += moved.reused;
      report.tokens += moved.tokens;
      if (options.onProgress) {
        // The total is what is done plus what is left now, not the count before the run: each batch moves what is
        // stale when it reads, so chunks of another model stored meanwhile (a process on the old model ingesting,
        // turns whose context was dropped) are moved too, and deleted ones never are (done had reached 34 of 20).
        // A range count over `chunks_reuse`, only when someone follows the progress (the cron does not).
        options.onProgress({ done: report.reembedded, total: report.reembedded + (await countOf(db, moving)) });
      }
      if (moved.claimed < want) break;
      // Never as long as the lease, which the next batch's write renews.
      if (pace > 0) await rest(Math.min(moved.writeMs * pace, leaseMs / 2), options.signal);
    }
    if (report.reembedded >= limit && report.stopped === undefined) report.stopped = "limit";
  } catch (error) {
    report.stopped = "error";
    report.error = error instanceof Error ? error.message : String(error);
    log.warn("reembed: stopped; the next run continues", { tenantId, model, error: report.error });
  }
  report.remaining = await countOf(db, moving);
  // A run for dropped context only does not finish a record asked meanwhile to move everything (`begin`).
  const finished =
    report.remaining === 0 && (await finish(db, tenantId, model, embedder.dimensions, runner, contextOnly));
  if (!finished) {
    await db.query(sql`
      update embedding_state set runner = null, lease_until = null, last_error = ${report.error ?? null}, updated_at = now()
      where tenant_id = ${tenantId} and runner = ${runner}`);
  }
  return report;
}

/**
 * Marks the tenant's record finished for `model` (creating it when there was nothing to do). A record of another
 * model is started over, as a run's lease starts it: it kept that run's start and count under this model's name.
 */
async function finish(
  db: Db,
  tenantId: string,
  model: string,
  dimensions: number,
  runner?: string,
  contextOnly = false,
): Promise<boolean> {
  const rows = await db.query(sql`
    insert into embedding_state as s (tenant_id, model, dimensions, finished_at)
    values (${tenantId}, ${model}, ${dimensions}, now())
    on conflict (tenant_id) do update set
      started_at = case when s.model = excluded.model then s.started_at else now() end,
      reembedded = case when s.model = excluded.model then s.reembedded else 0 end,
      reused = case when s.model = excluded.model then s.reused else 0 end,
      tokens = case when s.model = excluded.model then s.tokens else 0 end,
      finished_at = case when s.model = excluded.model then coalesce(s.finished_at, now()) else now() end,
      model = excluded.model, dimensions = excluded.dimensions,
      runner = null, lease_until = null, last_error = null, updated_at = now()
    where ${runner === undefined ? sql`(s.lease_until is null or s.lease_until < now())` : sql`s.runner = ${runner}`}
      and (${!contextOnly}::boolean or s.context_only)
    returning 1`);
  return rows.length > 0;
}

/** Waits `ms`, or until `signal` aborts (then the loop's next check throws). */
const rest = (ms: number, signal: AbortSignal | undefined) => sleep(ms, undefined, { signal }).catch(() => {});

interface Moved {
  /** How long the batch's write statement took. */
  writeMs: number;
  claimed: number;
  n: number;
  reused: number;
  tokens: number;
  lost: boolean;
}

/** One batch: read up to `want` stale chunks, embed the texts with no vector yet, write all in one statement. */
async function batch(
  db: Db,
  tenantId: string,
  /** Which chunks the run moves (`movedBy`). */
  moving: SQL,
  embedder: Embedder,
  runner: string,
  want: number,
  leaseMs: number,
  /** Whether the database has the HNSW index (PGlite has none: its search scans exactly). */
  hnsw: boolean,
  signal: AbortSignal | undefined,
): Promise<Moved> {
  const model = embedder.model;
  for (let attempt = 1; ; attempt++) {
    const rows = await db.query<{
      id: string | number;
      context: string;
      preceding: string;
      content: string;
      hash: string;
      known: boolean;
    }>(sql`
      select c.id, c.context, c.preceding, c.content, c.content_hash as hash, exists (
          select 1 from chunks k where k.tenant_id = ${tenantId} and k.embedding_model = ${model}
            and k.content_hash = c.content_hash offset 0) as known
      from chunks c where ${moving}
      limit ${want}`);
    if (!rows.length) return { writeMs: 0, claimed: 0, n: 0, reused: 0, tokens: 0, lost: false };
    const texts = new Map<string, string>();
    for (const r of rows)
      if (!r.known && !texts.has(r.hash)) texts.set(r.hash, embeddingText(r.context, r.content, r.preceding));
    let tokens = 0;
    const vectors: string[] = [];
    if (texts.size) {
      const result = await embedder.embed([...texts.values()], { signal }).catch((error) => {
        throw upstreamError(error, "embedding");
      });
      for (const v of result.vectors) {
        if (v?.length !== embedder.dimensions) {
          throw new EngramError(
            "unavailable",
            "embedding.dimensions",
            `${model} returned ${v?.length ?? 0}-dimension vectors; ${embedder.dimensions} are configured (EMBEDDING_DIMENSIONS). Nothing was written`,
          );
        }
        vectors.push(vectorLiteral(v));
      }
      tokens = result.tokens || [...texts.values()].reduce((n, t) => n + Tokens.estimate(t), 0);
    }
    const ids = rows.map((r) => String(r.id));
    // Each row names its new vector by position (null: reuse one already stored), so the write reads a vector once
    // per row: a correlated lookup in a CTE of the batch's vectors rescanned it per row, time growing with the
    // batch's square (and spilling past work_mem at 1,024 chunks).
    const position = new Map([...texts.keys()].map((h, i) => [h, i + 1]));
    const slots = rows.map((r) => position.get(r.hash) ?? null);
    // Chunks that cost no embedding call: their text had a vector of this model, or came earlier in the batch.
    const reused = rows.length - texts.size;
    try {
      const writing = performance.now();
      const [row] = await db.query<{ n: number; held: boolean }>(sql`
        with held as (
          select 1 from embedding_state where tenant_id = ${tenantId} and runner = ${runner} and lease_until > now() for update),
        moved as (
          update chunks c set embedding_model = ${model}, indexed = ${hnsw},
            embedding = coalesce(chunk_embedding((${arr(vectors)}::text[])[r.slot]), (
              select k.embedding from chunks k
              where k.tenant_id = ${tenantId} and k.embedding_model = ${model} and k.content_hash = c.content_hash limit 1))
          from unnest(${arr(ids)}::bigint[], ${arr(slots)}::int[]) as r(id, slot)
          where c.id = r.id and ${moving} and exists (select 1 from held)
          returning 1),
        progress as (
          update embedding_state set reembedded = reembedded + (select count(*) from moved),
            reused = reused + ${reused}, tokens = tokens + ${tokens},
            lease_until = now() + ${leaseMs}::int * interval '1 millisecond', updated_at = now()
          where tenant_id = ${tenantId} and runner = ${runner} and exists (select 1 from held)
          returning 1)
        select (select count(*)::int from moved) as n, exists (select 1 from held) as held,
               (select count(*)::int from progress) as recorded`);
      const n = Number(row?.n ?? 0);
      const writeMs = performance.now() - writing;
      return { writeMs, claimed: rows.length, n, reused: Math.min(reused, n), tokens, lost: row?.held !== true };
    } catch (error) {
      // A vector meant for reuse was purged (its document deleted) between the read and the write: read again.
      if (attempt < 3 && sqlState(error) === "23502") continue;
      throw error;
    }
  }
}

/**
 * Keeps continuing unfinished re-embeddings while the process lives (the local server), a pass every `everyMs`
 * within `budgetMs`; a failed pass (provider down) is logged and tried again later. `stop` waits for the pass.
 */
export function inBackground(
  db: Db,
  embedder: Embedder,
  options: { everyMs?: number; budgetMs?: number } = {},
): Background.Background {
  const loop = Background.repeat("reembed", options.everyMs ?? 5_000, async (signal) => {
    const done = await continueUnfinished(db, embedder, { budgetMs: options.budgetMs ?? 10_000, signal });
    if (done.reembedded) log.info("reembed: background pass", { model: embedder.model, ...done });
  });
  const wake = () => loop.wake?.();
  wakers.add(wake);
  return {
    stop: async () => {
      wakers.delete(wake);
      await loop.stop();
    },
  };
}

/** The background loops of this process, woken by `begin`. */
const wakers = new Set<() => void>();
