import { type SQL, sql } from "drizzle-orm";
import { config } from "../config";
import type { Db } from "../db";
import { retriedOn } from "../db/errors";
import * as Reembed from "../embedding/reembed";
import * as Turns from "../ingest/turns";
import { log } from "../log";
import * as Hnsw from "../search/hnsw";
import * as Indexer from "../search/indexer";

export interface Options {
  /** Days a soft-deleted document is kept before it is purged; default SOFT_DELETE_RETENTION_DAYS. */
  retentionDays?: number;
  /** Rows deleted per statement (each its own short transaction). */
  batchSize?: number;
  /** Stop starting new batches after this long; what is left waits for the next run. */
  budgetMs?: number;
}

export interface Report {
  removed: {
    rateLimits: number;
    cache: number;
    ingestions: number;
    expiredDocuments: number;
    deletedDocuments: number;
    /** Keyword statistics rows whose count fell to zero (a lexeme no chunk of that space holds any more). */
    searchTerms: number;
  };
  /** Chunks moved into the HNSW index (core/search/indexer.ts), after the deletions, in the time left. */
  indexed: number;
  /** Chunks moved to the active embedding model by unfinished re-embeddings (core/embedding/reembed.ts). */
  reembedded: number;
  /** HNSW indexes dropped, last: those of models no chunk uses any more (core/search/hnsw.ts). */
  droppedIndexes: string[];
  /** False when the time budget ran out with work left. */
  complete: boolean;
  tookMs: number;
}

type Kind = Exclude<keyof Report["removed"], "searchTerms">;

/**
 * One bounded batch of each kind. Rows are picked with `FOR UPDATE SKIP LOCKED`, so two runs
 * at once split the work instead of queueing on each other, and a row a request is writing
 * right now is left for the next run. Every condition uses the database clock and matches
 * what readers treat as gone (a document is live while `expires_at > now()`), so nothing live
 * is touched. Chunks go with their documents (ON DELETE CASCADE).
 */
const batches: Record<Kind, (limit: number, retentionDays: number) => SQL> = {
  rateLimits: (limit) => sql`
    delete from rate_limits where (tenant_id, key) in (
      select tenant_id, key from rate_limits where tat < now() limit ${limit} for update skip locked)`,
  cache: (limit) => sql`
    delete from cache where (tenant_id, key) in (
      select tenant_id, key from cache where expires_at <= now() limit ${limit} for update skip locked)`,
  ingestions: (limit) => sql`
    delete from ingestions where id in (
      select id from ingestions where expires_at <= now() limit ${limit} for update skip locked)`,
  expiredDocuments: (limit) => sql`
    delete from documents where key in (
      select key from documents where expires_at <= now() limit ${limit} for update skip locked)`,
  deletedDocuments: (limit, retentionDays) => sql`
    delete from documents where key in (
      select key from documents where deleted_at < now() - ${retentionDays}::int * interval '1 day'
      limit ${limit} for update skip locked)`,
};

/**
 * What else a batch's statement does with the rows it removed (`gone`): an expired conversation turn leaves the
 * context of the turns after it (core/ingest/turns.ts). A soft-deleted one left it when it was deleted.
 */
const after: Partial<Record<Kind, () => { returning: SQL; ctes: SQL }>> = {
  expiredDocuments: () => ({
    returning: sql`key, tenant_id, owner, conversation_id`,
    ctes: Turns.forgetting(
      sql`select tenant_id, owner, conversation_id, key from gone where conversation_id is not null`,
    ),
  }),
};

/**
 * Keyword statistics rows (migrations/0009) that count nothing: the triggers leave a lexeme's row at zero when its
 * last chunk goes. Rows an ingest holds are skipped, and an ingest that wanted a row this deletes waits for the
 * delete and inserts it again from zero, which is what it held. Run after the deletions that make them.
 */
const zeroTerms = (limit: number) => sql`
  delete from search_terms where (tenant_id, owner, lexeme) in (
    select tenant_id, owner, lexeme from search_terms where chunks = 0 and length = 0
    limit ${limit} for update skip locked)`;

/**
 * Deletes expired rate-limit buckets, cache entries and ingestion records, documents past
 * their TTL, and soft-deleted documents past the retention, then keyword statistics left at zero, in bounded batches (taking turns,
 * so one large backlog cannot starve the others) until done or out of time. Idempotent and
 * safe to run concurrently. Logs one structured line and returns the counts.
 */
export async function run(db: Db, options: Options = {}): Promise<Report> {
  const retentionDays = options.retentionDays ?? config().softDeleteRetentionDays;
  const batchSize = options.batchSize ?? 1000;
  const budgetMs = options.budgetMs ?? 60_000;
  if (!Number.isInteger(retentionDays) || retentionDays < 0)
    throw new RangeError("retentionDays must be an integer >= 0");
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError("batchSize must be an integer >= 1");

  const started = performance.now();
  const removed: Report["removed"] = {
    rateLimits: 0,
    cache: 0,
    ingestions: 0,
    expiredDocuments: 0,
    deletedDocuments: 0,
    searchTerms: 0,
  };
  const count = async (batch: SQL, then?: { returning: SQL; ctes: SQL }) => {
    const statement = then
      ? sql`with gone as (${batch} returning ${then.returning}), ${then.ctes} select count(*)::int as n from gone`
      : sql`with gone as (${batch} returning 1) select count(*)::int as n from gone`;
    // A batch's chunks move the keyword statistics of every owner they belong to, one row trigger at a time for the
    // turns a deleted turn leaves: against a concurrent write to the same owners' rows that can deadlock, and Postgres
    // aborts one side (40P01). The batch is one transaction and idempotent: run it again.
    return retriedOn(
      async () => (await db.query<{ n: number }>(statement))[0]?.n ?? 0,
      ["40P01"],
      (attempt) => log.warn("a cleanup batch was chosen as a deadlock's victim; running it again", { attempt }),
    );
  };
  let pending = Object.keys(batches) as Kind[];
  while (pending.length > 0 && performance.now() - started < budgetMs) {
    const next: Kind[] = [];
    for (const kind of pending) {
      if (performance.now() - started >= budgetMs) {
        next.push(kind);
        continue;
      }
      const n = await count(batches[kind](batchSize, retentionDays), after[kind]?.());
      removed[kind] += n;
      if (n === batchSize) next.push(kind);
    }
    pending = next;
  }
  let termsLeft = pending.length > 0;
  while (!termsLeft) {
    if (performance.now() - started >= budgetMs) {
      termsLeft = true;
      break;
    }
    const n = await count(zeroTerms(batchSize));
    removed.searchTerms += n;
    if (n < batchSize) break;
  }
  const model = Reembed.active().model;
  const index = await Indexer.catchUp(db, {
    model,
    budgetMs: termsLeft ? 0 : Math.max(0, budgetMs - (performance.now() - started)),
  });
  const reembed = await continueReembedding(db, model, index.complete ? budgetMs - (performance.now() - started) : 0);
  // After the re-embedding, so a switch that just finished frees its old model's graph in the same run.
  const droppedIndexes = await Hnsw.retire(db, model);
  const report: Report = {
    removed,
    indexed: index.indexed,
    reembedded: reembed.reembedded,
    droppedIndexes,
    complete: !termsLeft && index.complete && reembed.complete,
    tookMs: Math.round(performance.now() - started),
  };
  log.info("cleanup", {
    ...removed,
    indexed: index.indexed,
    reembedded: reembed.reembedded,
    droppedIndexes,
    complete: report.complete,
    tookMs: report.tookMs,
  });
  return report;
}

/** Continues re-embeddings `engram reembed` started and did not finish, in the time left (none: only checks). */
async function continueReembedding(
  db: Db,
  model: string,
  budgetMs: number,
): Promise<{ reembedded: number; complete: boolean }> {
  if (!(await Reembed.unfinished(db, model)).length) return { reembedded: 0, complete: true };
  if (budgetMs <= 0) return { reembedded: 0, complete: false };
  // Loaded only with work to do: the embedder brings the OpenAI SDK.
  const { embedder } = await import("../embedding");
  return Reembed.continueUnfinished(db, embedder(), { budgetMs });
}
