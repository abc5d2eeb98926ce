-- Models above 2,000 dimensions (#17): pgvector's HNSW index takes at most 2,000 dimensions of `vector` but
-- 4,000 of `halfvec` (16-bit floats), so such databases store their chunks' embeddings as `halfvec`
-- (text-embedding-3-large's 3,072 fit) and index them. At 2,000 dimensions or fewer the column stays `vector`:
-- at 1,536, `halfvec` had the same recall@10 and half the index (391 against 781 MB at 100,000 chunks) but slower
-- exact scans and hybrid searches (p95 13.8 against 9.8 ms) on a quiet machine (bench/halfvec.ts, docs/search.md).
--
-- A database made before this migration with more than 2,000 dimensions (exact scans only until now) is
-- rewritten here, once, under the table's lock, and its index built: rare, and blocking for the time it takes.
-- Kept inline like migrations/0004's `vector`s (a `halfvec` of up to 4,000 dimensions is at most 8 KB).
-- Embedded PGlite keeps no HNSW index (see migrations/0002) and scans exactly, of either type.
do $$
begin
  if {{EMBEDDING_DIMENSIONS}} > 2000 and (
    select format_type(atttypid, null) from pg_attribute where attrelid = 'chunks'::regclass and attname = 'embedding'
  ) = 'vector' then
    drop index if exists chunks_embedding;
    if {{EMBEDDING_DIMENSIONS}} <= 4000 then
      -- One statement: the rewrite the type change makes already stores the rows inline.
      alter table chunks
        alter column embedding type halfvec({{EMBEDDING_DIMENSIONS}}),
        alter column embedding set storage plain;
    else
      alter table chunks alter column embedding type halfvec({{EMBEDDING_DIMENSIONS}});
    end if;
    if coalesce(current_setting('engram.embedded', true), '') <> 'on' and {{EMBEDDING_DIMENSIONS}} <= 4000 then
      create index chunks_embedding on chunks using hnsw (embedding halfvec_cosine_ops)
        with (m = 16, ef_construction = 64) where indexed;
    end if;
  end if;
end
$$;
--> statement-breakpoint
-- `chunk_embedding(text)`: a vector's text as the type `chunks.embedding` has here (`vector` or `halfvec`, with its
-- dimensions), so statements name no type: the query vector of a search is of the column's type, which the HNSW
-- index needs, and is converted once, not per row compared.
do $$
declare
  column_type text;
  typed text;
begin
  select format_type(atttypid, null), format_type(atttypid, atttypmod) into column_type, typed
  from pg_attribute where attrelid = 'chunks'::regclass and attname = 'embedding';
  -- Dropped first: `create or replace` cannot change a function's return type.
  drop function if exists chunk_embedding(text);
  execute format(
    'create function chunk_embedding(v text) returns %s language sql immutable strict parallel safe as %L',
    column_type, format('select v::%s', typed));
end
$$;
