-- Two more things the full-text column reads (docs/search.md, "Options and identifiers as written" and "One
-- spelling of each character"); the question gets the same (core/search/keyword.ts). The column is rebuilt (a table
-- rewrite, as in 0026), then every owner's statistics.
--
-- 1. Command-line options and snake_case identifiers as written. The parser drops an option's dashes, so `-t`,
--    `-a` and `-s` (psql's, pg_dump's, xargs's) were stop words and matched nothing, `-user` and `-type` were the
--    English words, and `-N` was `-n`; `to_char` was `char` and `is_superuser` `superus`, as `to` and `is` are stop
--    words. Each option is now also a lexeme as written (case kept: `-N` is not `-n`), and each snake_case name one
--    in lower case. The parser's words stay beside them.
-- 2. Unicode's compatibility form, NFKC, so that `café` typed on one keyboard meets `café` written with a combining
--    accent (macOS, some PDFs), `ﬁle` with a ligature meets `file`, and full-width `ＳＥＬＥＣＴ` meets `SELECT`. The
--    stored text comes back as it was sent.

-- Text already in that form is returned as it is, found by a length count when ASCII (about a microsecond for a
-- chunk) and by Postgres's quick check otherwise (some 30 µs for 1,800 characters of accented prose, against 200 µs
-- for its tsvector); normalize() on every chunk had cost 50% more for each tsvector even of ASCII text. The body is
-- one immutable expression, so Postgres inlines it into the column's expression: called as a function, the calls
-- cost 12% of the ingest benchmark's rate. Postgres normalizes only in a UTF8 database; in another encoding, which
-- Engram does not otherwise expect, text is searched as it is rather than fail every write.
do $$ begin
  if current_setting('server_encoding') = 'UTF8' then
    create or replace function search_normal_form(t text) returns text language sql immutable parallel safe as $f$
      select case when octet_length(t) = length(t) or t is nfkc normalized then t else normalize(t, NFKC) end
    $f$;
  else
    create or replace function search_normal_form(t text) returns text language sql immutable parallel safe as $f$
      select t
    $f$;
  end if;
end $$;
--> statement-breakpoint
-- An option: one or two dashes and a letter, after no letter, digit, `_` or `-` (so not `e-mail`, `5-10` or `-5`).
-- Also read by the keyword leg, which leaves a question's options out of its words: counted as the option and as
-- its word, `--porcelain` outweighed the rest of "git status --porcelain for scripts", whose page fell to fifth.
create or replace function search_option_pattern() returns text language sql immutable parallel safe as $$
  select '(^|[^[:alnum:]_-])(--?[A-Za-z][A-Za-z0-9_-]*)'
$$;
--> statement-breakpoint
-- The options and snake_case names of a text as lexemes of their own, positioned in their order (the term frequency
-- counts positions). Names over 100 characters are left out: a lexeme's limit is 2,047 bytes, and no option or
-- identifier is that long. Text without a `-` or a `_` is not matched against the patterns at all.
create or replace function search_code_lexemes(t text) returns tsvector language sql immutable parallel safe as $$
  select case when strpos(t, '-') = 0 then ''::tsvector else coalesce((
    select string_agg(quote_literal(r.m[2]) || ':' || least(r.o, 16383), ' ')::tsvector
    from regexp_matches(t, search_option_pattern(), 'g') with ordinality as r(m, o)
    where length(r.m[2]) <= 100), ''::tsvector) end
  || case when strpos(t, '_') = 0 then ''::tsvector else coalesce((
    select string_agg(quote_literal(lower(r.m[1])) || ':' || least(r.o, 16383), ' ')::tsvector
    from regexp_matches(t, '([[:alnum:]]+(_[[:alnum:]]+)+)', 'g') with ordinality as r(m, o)
    where length(r.m[1]) <= 100), ''::tsvector) end
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
