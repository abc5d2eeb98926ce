-- Text is searched in Unicode's compatibility form, NFKC (docs/search.md, "One spelling of each character"), so
-- that `café` typed on one keyboard meets `café` written with a combining accent (macOS, some PDFs), `ﬁle` with
-- a ligature meets `file`, and full-width `ＳＥＬＥＣＴ` meets `SELECT`. Only the full-text column reads it: the stored
-- text comes back as it was sent. The question gets the same (core/search/keyword.ts). The column is rebuilt (a
-- table rewrite, as in 0026), then every owner's statistics, whose lexemes change for the chunks that had such text.

-- Text already in that form is returned as it is, found by a length count when ASCII (about a microsecond for a
-- chunk) and by Postgres's quick check otherwise (some 30 µs for 1,800 characters of accented prose, against 200 µs
-- for its tsvector); normalize() on every chunk had cost 50% more for each tsvector even of ASCII text. Postgres
-- normalizes only in a UTF8 database; another encoding, which Engram does not otherwise expect, keeps its text as it
-- is rather than fail every write.
create or replace function search_normal_form(t text) returns text language sql immutable parallel safe as $$
  select case when octet_length(t) = length(t) or current_setting('server_encoding') <> 'UTF8'
    or t is nfkc normalized then t else normalize(t, NFKC) end
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
