-- A conversation turn is embedded after the turns before it (docs/search.md, "Conversation turns"): an answer
-- ("Mostly abstract painting.") is found by what it answers ("What kind of art do you make?"). The text is
-- kept beside the chunk so that a re-embedding embeds exactly what ingest did; it is never returned, and the
-- keyword leg does not index them. Turns stored before this migration get it when re-chunked.
alter table chunks add column if not exists preceding text not null default '';
--> statement-breakpoint
-- Ingest reads the last turns of a conversation before a key: with the key in the index that is a few entries
-- read backwards, where the index without it read and sorted every turn of the conversation (a 1,000-turn
-- conversation cost each ingest request milliseconds). It serves whatever the old one did.
create index if not exists documents_conversation_turns on documents (tenant_id, owner, conversation_id, key)
  where conversation_id is not null;
--> statement-breakpoint
drop index if exists documents_conversation;
