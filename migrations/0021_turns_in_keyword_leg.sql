-- The keyword leg also reads the turns before a conversation turn (docs/search.md, "Conversation turns"): an
-- answer rarely repeats the words of the question it answers, the turn that asked it does. They enter the
-- full-text vector with weight C, which the keyword leg counts as a fifth of an occurrence in the turn itself.
-- The column is rebuilt (a table rewrite, as in 0009), then the statistics of the owners that have such turns.
-- A turn's text leaves the turns after it by an UPDATE of `preceding` (core/ingest/turns.ts), which now changes
-- their tsv: a row trigger on that column moves the statistics (a statement trigger with transition tables cannot
-- be limited to a column, and would run on every indexer flip).
drop index if exists chunks_tsv;
--> statement-breakpoint
alter table chunks drop column if exists tsv;
--> statement-breakpoint
alter table chunks add column tsv tsvector generated always as (
  setweight(to_tsvector('{{SEARCH_TEXT_CONFIG}}'::regconfig, context), 'B')
  || to_tsvector('{{SEARCH_TEXT_CONFIG}}'::regconfig, content)
  || setweight(to_tsvector('{{SEARCH_TEXT_CONFIG}}'::regconfig, preceding), 'C')
) stored;
--> statement-breakpoint
create index if not exists chunks_tsv on chunks using gin (tsv);
--> statement-breakpoint
create temporary table turn_owners on commit drop as
  select distinct tenant_id, owner from chunks where preceding <> '';
--> statement-breakpoint
delete from search_terms s using turn_owners o where s.tenant_id = o.tenant_id and s.owner = o.owner;
--> statement-breakpoint
insert into search_terms (tenant_id, owner, lexeme, chunks, length)
select c.tenant_id, c.owner, '', count(*), sum(length(c.tsv))
from chunks c join turn_owners o on o.tenant_id = c.tenant_id and o.owner = c.owner group by c.tenant_id, c.owner
union all
select c.tenant_id, c.owner, l, count(*), 0
from chunks c join turn_owners o on o.tenant_id = c.tenant_id and o.owner = c.owner
cross join lateral unnest(tsvector_to_array(c.tsv)) l
group by c.tenant_id, c.owner, l;
--> statement-breakpoint
-- The owner's '' row first, always (key order, as the insert and delete triggers take theirs): a concurrent writer of
-- the same owner waits on it instead of meeting this statement's other rows in another order.
create or replace function search_terms_moved() returns trigger language plpgsql as $$
begin
  insert into search_terms as s (tenant_id, owner, lexeme, chunks, length)
  select tenant_id, owner, lexeme, sum(n), sum(len) from (
    select old.tenant_id as tenant_id, old.owner as owner, '' as lexeme, -1 as n, -length(old.tsv) as len
    union all
    select new.tenant_id, new.owner, '', 1, length(new.tsv)
    union all
    select old.tenant_id, old.owner, l, -1, 0 from unnest(tsvector_to_array(old.tsv)) l
    union all
    select new.tenant_id, new.owner, l, 1, 0 from unnest(tsvector_to_array(new.tsv)) l
  ) x
  group by tenant_id, owner, lexeme
  having lexeme = '' or sum(n) <> 0
  order by tenant_id, owner, lexeme
  on conflict (tenant_id, owner, lexeme) do update
    set chunks = s.chunks + excluded.chunks, length = s.length + excluded.length;
  return null;
end
$$;
--> statement-breakpoint
drop trigger if exists chunks_terms_moved on chunks;
--> statement-breakpoint
create trigger chunks_terms_moved after update of preceding on chunks
  for each row when (old.tsv is distinct from new.tsv) execute function search_terms_moved();
