import { sql } from "drizzle-orm";
import * as Background from "../background";
import type { Db, Query } from "../db";
import * as Reembed from "../embedding/reembed";
import * as Hnsw from "./hnsw";

/**
 * Moves chunks into their model's HNSW index (migrations/0005, ./hnsw.ts): new chunks are stored `indexed = false`,
 * outside the partial index, so an ingest does not pay the index's insert cost (milliseconds a
 * 1,536-dimension row); search scans them exactly until this flips them, which inserts them into
 * the graph. Run by the local server in the background, by the cleanup cron, by `engram index`,
 * and by an ingest that would leave its tenant more than INDEX_BACKLOG_MAX chunks behind.
 */

export interface Options {
  /** The active model, whose HNSW index must exist before its chunks are flipped; default: the configured one. */
  model?: string;
  /** Only this tenant's chunks (an ingest catching up on its own backlog). */
  tenantId?: string;
  /** Stop after this many chunks. */
  limit?: number;
  /** Chunks per transaction: each batch commits on its own, so the work done survives an interruption. */
  batchSize?: number;
  /** Stop starting new batches after this long. */
  budgetMs?: number;
}

export interface Report {
  indexed: number;
  /** False when the limit or the time budget stopped it with chunks left. */
  complete: boolean;
}

/** Whether this database has HNSW indexes (not on PGlite, nor above 4,000 dimensions: search is exact there). */
export const enabled = async (db: Db): Promise<boolean> => (await Hnsw.available(db)) !== undefined;

/**
 * Indexes pending chunks in batches until none are left, the limit is reached or the time is up.
 * Rows are claimed with `FOR UPDATE SKIP LOCKED`, so concurrent runs split the work; flipping an
 * already indexed row is impossible (the claim reads `not indexed`), so running twice is harmless.
 */
export async function catchUp(db: Db, options: Options = {}): Promise<Report> {
  if (!(await enabled(db))) return { indexed: 0, complete: true };
  // Flipped into a model's graph that does not exist yet, its chunks would be searched by a scan of every one.
  await Hnsw.ensure(db, options.model ?? Reembed.active().model);
  const batchSize = options.batchSize ?? 200;
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const budgetMs = options.budgetMs ?? 30_000;
  const tenant = options.tenantId === undefined ? sql`true` : sql`tenant_id = ${options.tenantId}`;
  const started = performance.now();
  let indexed = 0;
  while (indexed < limit && performance.now() - started < budgetMs) {
    const want = Math.min(batchSize, limit - indexed);
    const [row] = await db.query<{ n: number }>(sql`
      with claimed as (
        select id from chunks where not indexed and ${tenant} limit ${want} for update skip locked),
      done as (
        update chunks c set indexed = true from claimed where c.id = claimed.id returning 1)
      select count(*)::int as n from done`);
    const n = row?.n ?? 0;
    indexed += n;
    if (n < want) return { indexed, complete: true };
  }
  return { indexed, complete: false };
}

/** Counts the tenant's chunks waiting for the index, up to `atMost + 1`: one row, `n`. */
export function backlogQuery(tenantId: string, atMost: number): Query {
  return sql`
    select count(*)::int as n from (
      select 1 from chunks where not indexed and tenant_id = ${tenantId} limit ${atMost + 1}) p`;
}

/**
 * Keeps catching up while the process lives (the local server; Lambdas rely on the cron and on
 * ingests): a pass every `everyMs`, each within `budgetMs`. `stop` waits for the pass under way.
 */
export function inBackground(
  db: Db,
  options: { model?: string; everyMs?: number; budgetMs?: number } = {},
): Background.Background {
  return Background.repeat("indexer", options.everyMs ?? 2_000, async () => {
    await catchUp(db, { model: options.model, budgetMs: options.budgetMs ?? 5_000 });
  });
}
