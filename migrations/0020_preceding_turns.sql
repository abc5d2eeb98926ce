-- A conversation turn is embedded after the turns before it (docs/search.md, "Conversation turns"): an answer
-- ("Mostly abstract painting.") is found by what it answers ("What kind of art do you make?"). The text is
-- kept beside the chunk so that a re-embedding embeds exactly what ingest did; it is never returned, and the
-- keyword leg does not index it. Turns stored before this migration get it when re-chunked.
alter table chunks add column if not exists preceding text not null default '';
