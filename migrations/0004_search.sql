-- Keep chunk embeddings inline in the heap row instead of TOASTed out of line. A 1,536-dimension
-- vector is 6 KB, above the 2 KB TOAST threshold, so by default every distance computed outside
-- the index first fetches it from the TOAST table: measured here, an exact scan of 100,000 chunks
-- took 520 ms TOASTed and 255 ms inline, PGlite 43 ms vs 21 ms at 5,000 (see shared/MEASURED.md),
-- and the planner, not counting the TOAST reads, misjudged the HNSW index. The text columns
-- (content, tsv) still move out of line, so a row with a vector of up to 2,000 dimensions (the
-- HNSW limit) fits in a page; larger vectors stay TOASTed. Applies to rows written from now on.
do $$
begin
  if {{EMBEDDING_DIMENSIONS}} <= 2000 then
    alter table chunks alter column embedding set storage plain;
  end if;
end
$$;
