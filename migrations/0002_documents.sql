-- Documents, their chunks (with embeddings), conversations, messages and ingestion records.
-- `owner` is the end user's id, or '' for the tenant's shared space (not NULL, so that the
-- unique keys hold for shared rows too).
create table if not exists conversations (
  tenant_id uuid not null references tenants (id) on delete cascade,
  owner text not null default '',
  id text not null,
  title text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (tenant_id, owner, id)
);
--> statement-breakpoint
create index if not exists conversations_recent on conversations (tenant_id, owner, updated_at desc, id desc);
--> statement-breakpoint
create table if not exists documents (
  key bigint generated always as identity primary key,
  tenant_id uuid not null references tenants (id) on delete cascade,
  owner text not null default '',
  id text not null,
  title text,
  source text,
  metadata jsonb not null default '{}'::jsonb,
  content text not null,
  content_hash text not null,
  importance smallint not null default 5 check (importance between 1 and 10),
  access_count integer not null default 0,
  last_accessed_at timestamptz,
  conversation_id text,
  chunk_count integer not null default 0,
  expires_at timestamptz,
  deleted_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, owner, id)
);
--> statement-breakpoint
create index if not exists documents_recent on documents (tenant_id, owner, created_at desc, key desc);
--> statement-breakpoint
create index if not exists documents_metadata on documents using gin (metadata jsonb_path_ops);
--> statement-breakpoint
create index if not exists documents_conversation on documents (tenant_id, owner, conversation_id) where conversation_id is not null;
--> statement-breakpoint
create index if not exists documents_expiry on documents (expires_at) where expires_at is not null;
--> statement-breakpoint
create index if not exists documents_deleted on documents (deleted_at) where deleted_at is not null;
--> statement-breakpoint
create table if not exists chunks (
  id bigint generated always as identity primary key,
  tenant_id uuid not null references tenants (id) on delete cascade,
  document_key bigint not null references documents (key) on delete cascade,
  owner text not null,
  ordinal integer not null,
  content text not null,
  content_hash text not null,
  tokens integer not null,
  embedding vector({{EMBEDDING_DIMENSIONS}}) not null,
  embedding_model text not null,
  tsv tsvector generated always as (to_tsvector('{{SEARCH_TEXT_CONFIG}}'::regconfig, content)) stored,
  created_at timestamptz not null default now()
);
--> statement-breakpoint
create index if not exists chunks_document on chunks (document_key, ordinal);
--> statement-breakpoint
create index if not exists chunks_scope on chunks (tenant_id, owner);
--> statement-breakpoint
create index if not exists chunks_reuse on chunks (tenant_id, embedding_model, content_hash);
--> statement-breakpoint
create index if not exists chunks_tsv on chunks using gin (tsv);
--> statement-breakpoint
-- HNSW needs no training data, so it is right from an empty table (unlike IVFFlat). Skipped on
-- embedded PGlite, where inserting into it costs ~50 ms a row and exact scans are fast enough,
-- and above pgvector's 2,000-dimension HNSW limit (such databases search by exact scan).
do $$
begin
  if coalesce(current_setting('engram.embedded', true), '') <> 'on' and {{EMBEDDING_DIMENSIONS}} <= 2000 then
    create index if not exists chunks_embedding on chunks using hnsw (embedding vector_cosine_ops)
      with (m = 16, ef_construction = 64);
  end if;
end
$$;
--> statement-breakpoint
create table if not exists messages (
  id bigint generated always as identity primary key,
  tenant_id uuid not null,
  owner text not null,
  conversation_id text not null,
  role text not null check (role in ('user', 'assistant', 'system')),
  content text not null,
  citations jsonb not null default '[]'::jsonb,
  model text,
  usage jsonb,
  created_at timestamptz not null default now(),
  foreign key (tenant_id, owner, conversation_id) references conversations (tenant_id, owner, id) on delete cascade
);
--> statement-breakpoint
create index if not exists messages_conversation on messages (tenant_id, owner, conversation_id, id);
--> statement-breakpoint
create table if not exists ingestions (
  id text primary key,
  tenant_id uuid not null references tenants (id) on delete cascade,
  owner text not null,
  documents jsonb not null,
  document_count integer not null,
  chunk_count integer not null,
  embedded integer not null,
  reused integer not null,
  embedding_tokens integer not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null default now() + interval '30 days'
);
--> statement-breakpoint
create index if not exists ingestions_tenant on ingestions (tenant_id, owner, created_at desc);
--> statement-breakpoint
create index if not exists ingestions_expiry on ingestions (expires_at);
