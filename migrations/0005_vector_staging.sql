-- Staged vector indexing. Inserting a 1,536-dimension row into an HNSW index costs milliseconds
-- (graph search and link updates), which capped ingest near 300 chunks/s on `pg` against
-- 2,000+ without the index, and made a 100-document request wait seconds. So new chunks are
-- written `indexed = false` and stay out of the HNSW index, which is now partial; search reads
-- them by exact scan (through `chunks_pending`), so they are found from the moment their ingest
-- commits; the indexer (core/search/indexer.ts: the cron, the local server, `engram index`)
-- flips them to `indexed = true` in bounded batches, which inserts them into the graph.
--
-- Rows already in the index stay there: the column's fast default marks them indexed without a
-- rewrite, then new rows default to pending.
alter table chunks add column if not exists indexed boolean not null default true;
--> statement-breakpoint
alter table chunks alter column indexed set default false;
--> statement-breakpoint
create index if not exists chunks_pending on chunks (tenant_id, owner) where not indexed;
--> statement-breakpoint
do $$
begin
  if exists (select 1 from pg_indexes
    where schemaname = current_schema() and indexname = 'chunks_embedding' and indexdef not like '%WHERE%') then
    drop index chunks_embedding;
    create index chunks_embedding on chunks using hnsw (embedding vector_cosine_ops)
      with (m = 16, ef_construction = 64) where indexed;
  end if;
end
$$;
