-- Keyword search that ranks like a search engine (docs/search.md): chunks carry their context
-- (document title and heading path), their full-text vector covers it, and per-owner term
-- statistics let the keyword leg rank by BM25 in one statement.
--
-- 1. Context: searched (keyword and vector) beside the chunk, never returned as its content.
--    Existing chunks get their document's title; their heading paths and contextual vectors
--    come with their next ingest (see README, "Upgrading").
alter table chunks add column if not exists context text not null default '';
--> statement-breakpoint
update chunks c set context = coalesce(d.title, '') from documents d where d.key = c.document_key and c.context = '' and d.title is not null;
--> statement-breakpoint
-- 2. The full-text vector now covers the context too (weight B, so it stays distinguishable).
drop index if exists chunks_tsv;
--> statement-breakpoint
alter table chunks drop column if exists tsv;
--> statement-breakpoint
alter table chunks add column tsv tsvector generated always as (
  setweight(to_tsvector('{{SEARCH_TEXT_CONFIG}}'::regconfig, context), 'B') || to_tsvector('{{SEARCH_TEXT_CONFIG}}'::regconfig, content)
) stored;
--> statement-breakpoint
create index if not exists chunks_tsv on chunks using gin (tsv);
--> statement-breakpoint
-- 3. BM25 statistics per tenant and owner: for each lexeme, how many chunks hold it; under the
--    empty lexeme (which no tsvector holds), how many chunks there are and their summed lengths
--    (distinct lexemes a chunk). Per owner, not per tenant, so one end user's documents never move
--    the scores another sees. Kept by statement triggers on chunks, so a write and the statistics
--    it changes commit together on every driver. Soft-deleted documents still count until purged.
create table if not exists search_terms (
  tenant_id uuid not null,
  owner text not null,
  lexeme text not null,
  chunks bigint not null,
  length bigint not null default 0,
  primary key (tenant_id, owner, lexeme)
) with (fillfactor = 80);
--> statement-breakpoint
-- Rows are added in key order, so concurrent writers of one owner lock shared lexemes in the
-- same order and wait for each other instead of deadlocking.
create or replace function search_terms_count() returns trigger language plpgsql as $$
declare
  sign int := case when tg_op = 'INSERT' then 1 else -1 end;
begin
  insert into search_terms as s (tenant_id, owner, lexeme, chunks, length)
  select tenant_id, owner, lexeme, sign * sum(n), sign * sum(len) from (
    select c.tenant_id, c.owner, '' as lexeme, count(*) as n, sum(length(c.tsv)) as len
    from changed c group by c.tenant_id, c.owner
    union all
    select c.tenant_id, c.owner, l, count(*), 0
    from changed c cross join lateral unnest(tsvector_to_array(c.tsv)) l
    group by c.tenant_id, c.owner, l
  ) x
  group by tenant_id, owner, lexeme
  order by tenant_id, owner, lexeme
  on conflict (tenant_id, owner, lexeme) do update
    set chunks = s.chunks + excluded.chunks, length = s.length + excluded.length;
  return null;
end
$$;
--> statement-breakpoint
drop trigger if exists chunks_terms_added on chunks;
--> statement-breakpoint
create trigger chunks_terms_added after insert on chunks
  referencing new table as changed for each statement execute function search_terms_count();
--> statement-breakpoint
drop trigger if exists chunks_terms_removed on chunks;
--> statement-breakpoint
create trigger chunks_terms_removed after delete on chunks
  referencing old table as changed for each statement execute function search_terms_count();
--> statement-breakpoint
-- Chunk text is never updated in place (ingest replaces rows), so no update trigger: an UPDATE
-- trigger with transition tables cannot be limited to columns and would run on every indexer flip.
delete from search_terms;
--> statement-breakpoint
insert into search_terms (tenant_id, owner, lexeme, chunks, length)
select tenant_id, owner, '', count(*), sum(length(tsv)) from chunks group by tenant_id, owner
union all
select tenant_id, owner, l, count(*), 0 from chunks cross join lateral unnest(tsvector_to_array(tsv)) l
group by tenant_id, owner, l;
--> statement-breakpoint
-- 4. OR of many tsqueries (the keyword leg matches any informative word of a question).
create or replace aggregate tsquery_any(tsquery) (sfunc = tsquery_or, stype = tsquery);
