-- Ingest speed (issue #16; figures in docs/scale.md, "Ingest"). A chunk row with a vector of over 1,000 dimensions
-- (kept inline by 0004 and 0015) is over 4 KB, above the 2 KB from which Postgres shrinks a row, so every insert
-- compressed the chunk's content and tsv and moved them to the TOAST table (more rows, index entries and WAL a
-- chunk), although the page such a row fills alone had room for them: 12% of a 100-chunk insert's time. With
-- toast_tuple_target at its maximum a row is shrunk only when it would not fit its page. Smaller vectors leave it
-- as it was: two of their rows share a page, which inline text would stop. Applies to rows written from now on.
do $$
begin
  if {{EMBEDDING_DIMENSIONS}} > 1000 then
    alter table chunks set (toast_tuple_target = 8160);
  end if;
end
$$;
