-- The words inside the parser's compound tokens are searchable too (docs/search.md, "Words inside paths and
-- dotted names"). Postgres's parser keeps a path (/usr/lib/python3/dist-packages), a file or dotted name
-- (pg_hba.conf, os.path.join), a URL's host and path and an e-mail address each as one lexeme, so `dist-packages`,
-- `pg_hba` or `join` never met them. Their words are indexed as well, after the chunk's own; the question gets the
-- same (core/search/keyword.ts). The column is rebuilt (a table rewrite, as in 0009 and 0021), then every owner's
-- statistics, as most chunks of technical text hold such a token.

-- Those tokens' words as plain text ('' when none): the default parser's (OID 3722, fixed in the catalog) tokens
-- email 4, host 6, url_path 18 and file 19; a URL (5) is also read as its host and path. Cut at every character but
-- letters, digits, `_` and `-`, which the parser then reads as in running text (`dist-packages` as the question's
-- `dist-packages` is read: the whole word and its parts, so its phrase matches too). Read from the parser
-- itself, so a word it already cuts out is never counted twice; that doubles the cost of a chunk's tsvector on
-- technical text (a regular expression for such runs added a sixth, but counted the words of `e.g.` and the like
-- twice, and ranked the Git set's answers lower: docs/search.md). Prose without a `.`, `/` or `@` between letters
-- is not parsed again.
create or replace function search_compound_words(t text) returns text language sql immutable parallel safe as $$
  select case when t ~ '[[:alnum:]][./@][[:alnum:]]' then coalesce((
    select string_agg(regexp_replace(p.token, '[^[:alnum:]_-]+', ' ', 'g'), ' ')
    from ts_parse(3722, t) p where p.tokid in (4, 6, 18, 19)), '') else '' end
$$;
--> statement-breakpoint
drop trigger if exists chunks_terms_moved on chunks;
--> statement-breakpoint
drop index if exists chunks_tsv;
--> statement-breakpoint
alter table chunks drop column if exists tsv;
--> statement-breakpoint
alter table chunks add column tsv tsvector generated always as (
  setweight(to_tsvector('{{SEARCH_TEXT_CONFIG}}'::regconfig, context), 'B')
  || to_tsvector('{{SEARCH_TEXT_CONFIG}}'::regconfig, content)
  || setweight(to_tsvector('{{SEARCH_TEXT_CONFIG}}'::regconfig, preceding), 'C')
  || setweight(to_tsvector('{{SEARCH_TEXT_CONFIG}}'::regconfig, search_compound_words(context)), 'B')
  || to_tsvector('{{SEARCH_TEXT_CONFIG}}'::regconfig, search_compound_words(content))
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
