-- Tenants, their API keys and their end users. `{{...}}` values are filled in by the runner
-- (core/db/migrate.ts) from configuration and recorded in engram_meta.
create extension if not exists vector;
--> statement-breakpoint
create table if not exists engram_meta (
  key text primary key,
  value text not null
);
--> statement-breakpoint
insert into engram_meta (key, value) values
  ('embedding_dimensions', '{{EMBEDDING_DIMENSIONS}}'),
  ('search_text_config', '{{SEARCH_TEXT_CONFIG}}')
on conflict (key) do nothing;
--> statement-breakpoint
create table if not exists tenants (
  id uuid primary key default gen_random_uuid(),
  name text not null unique check (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  rate_limits jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now()
);
--> statement-breakpoint
create table if not exists api_keys (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references tenants (id) on delete cascade,
  prefix text not null unique,
  hash text not null,
  name text,
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);
--> statement-breakpoint
create index if not exists api_keys_tenant on api_keys (tenant_id);
--> statement-breakpoint
create table if not exists users (
  tenant_id uuid not null references tenants (id) on delete cascade,
  id text not null,
  email text,
  name text,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (tenant_id, id)
);
