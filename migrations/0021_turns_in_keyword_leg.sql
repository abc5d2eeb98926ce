-- The keyword leg also reads the turns before a conversation turn (docs/search.md, "Conversation turns"): an
-- answer rarely repeats the words of the question it answers, the turn that asked it does. They enter the
-- full-text vector with weight C, which the keyword leg counts as a fifth of an occurrence in the turn itself.
-- The column is rebuilt (a table rewrite, as in 0009), then the statistics of the owners that have such turns.
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
