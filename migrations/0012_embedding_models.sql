-- Embedding models done safely (#17). Search ranks only chunks embedded by the active model
-- (`chunks.embedding_model`, core/search: the vector leg filters on it); chunks of another
-- model are "stale": still found by keyword, counted in the search response, and moved to the
-- active model by `engram reembed` (core/embedding/reembed.ts), which the cleanup cron and the
-- local server continue until done.
--
-- Per tenant, the model its vectors are being moved to and how far that got, in the database
-- so every Lambda and the local server see the same progress; the lease lets one run at a time
-- work on a tenant (a second run finds it taken and does nothing, so nothing is paid twice), and
-- expires if the run dies (a crash, a Lambda timeout) so the next run continues.
create table if not exists embedding_state (
  tenant_id uuid primary key references tenants (id) on delete cascade,
  model text not null,
  dimensions integer not null,
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  reembedded bigint not null default 0,
  reused bigint not null default 0,
  tokens bigint not null default 0,
  last_error text,
  runner text,
  lease_until timestamptz,
  updated_at timestamptz not null default now()
);
--> statement-breakpoint
create index if not exists embedding_state_unfinished on embedding_state (model) where finished_at is null;
