-- A re-embedding begun because a conversation turn was deleted or edited (core/ingest/turns.ts) moves only the turns
-- whose context it dropped. It had moved every stale chunk of the tenant: with a new model configured and no
-- `engram reembed` run yet, one end user's delete re-embedded (and billed) the whole tenant. An operator's run (and
-- any begun as a whole) clears the flag.
alter table embedding_state add column if not exists context_only boolean not null default false;
