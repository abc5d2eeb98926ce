-- Words in capitals that the text configuration drops as stop words, kept as written (docs/search.md, "Keywords in
-- capitals"). SQL's keywords are English's commonest words: `OVER`, `INTO`, `DO`, `ALL`, `BETWEEN`, `BEFORE`, `NO`
-- (`NO ACTION`) and `IT` matched nothing, so "What does the OVER clause do?" was a question of one word, `clause`.
-- Each such word in capitals is now also a lexeme of its own, case kept, as an option is (migrations/0027); the
-- question gets the same when it is not written all in capitals (core/search/keyword.ts). Words the configuration
-- keeps (`SELECT`, `JSON`) are not doubled: they match their lower-case spelling as before. The column is rebuilt
-- (a table rewrite, as in 0027), then every owner's statistics.

-- Each distinct word asked of the configuration once; a word the configuration drops leaves an empty tsvector. Text
-- with no two capitals in a row is not matched against the pattern at all (tested in the column, as for 0027).
-- Some 30 µs a 1,800-character passage of SQL's reference, beside 280 µs for its tsvector; 2 µs for prose.
create or replace function search_capital_lexemes(t text) returns tsvector language sql immutable parallel safe as $$
  select coalesce((
    select string_agg(quote_literal(r.m[1]) || ':' || least(r.o, 16383), ' ')::tsvector
    from regexp_matches(t, '\m[A-Z][A-Z]+\M', 'g') with ordinality as r(m, o)
    where length(r.m[1]) <= 20 and to_tsvector('{{SEARCH_TEXT_CONFIG}}'::regconfig, r.m[1]) = ''::tsvector),
    ''::tsvector)
$$;
--> statement-breakpoint
drop trigger if exists chunks_terms_moved on chunks;
--> statement-breakpoint
drop index if exists chunks_tsv;
--> statement-breakpoint
alter table chunks drop column if exists tsv;
--> statement-breakpoint
alter table chunks add column tsv tsvector generated always as (
  setweight(to_tsvector('{{SEARCH_TEXT_CONFIG}}'::regconfig, search_normal_form(context)), 'B')
  || to_tsvector('{{SEARCH_TEXT_CONFIG}}'::regconfig, search_normal_form(content))
  || setweight(to_tsvector('{{SEARCH_TEXT_CONFIG}}'::regconfig, search_normal_form(preceding)), 'C')
  || setweight(to_tsvector('{{SEARCH_TEXT_CONFIG}}'::regconfig, search_normal_form(search_compound_words(context))), 'B')
  || to_tsvector('{{SEARCH_TEXT_CONFIG}}'::regconfig, search_normal_form(search_compound_words(content)))
  -- Tested here as well as inside: a function with subqueries is called, not inlined, and most text has neither.
  || case when strpos(context, '-') + strpos(context, '_') = 0 then ''::tsvector
          else setweight(search_code_lexemes(search_normal_form(context)), 'B') end
  || case when strpos(content, '-') + strpos(content, '_') = 0 then ''::tsvector
          else search_code_lexemes(search_normal_form(content)) end
  || case when search_normal_form(context) !~ '[A-Z][A-Z]' then ''::tsvector
          else setweight(search_capital_lexemes(search_normal_form(context)), 'B') end
  || case when search_normal_form(content) !~ '[A-Z][A-Z]' then ''::tsvector
          else search_capital_lexemes(search_normal_form(content)) end
) stored;
--> statement-breakpoint
create index if not exists chunks_tsv on chunks using gin (tsv);
--> statement-breakpoint
create trigger chunks_terms_moved after update of preceding on chunks
  for each row when (old.tsv is distinct from new.tsv) execute function search_terms_moved();
--> statement-breakpoint
delete from search_terms;
--> statement-breakpoint
insert into search_terms (tenant_id, owner, lexeme, chunks, length)
select tenant_id, owner, '', count(*), sum(length(tsv)) from chunks group by tenant_id, owner
union all
select tenant_id, owner, l, count(*), 0 from chunks cross join lateral unnest(tsvector_to_array(tsv)) l
group by tenant_id, owner, l;
