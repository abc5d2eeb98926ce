-- Rate-limit buckets and the cache. Both are UNLOGGED: their writes skip the WAL (and so the
-- commit's disk sync, the bottleneck of a logged limiter table under a hot key, see
-- shared/MEASURED.md). Both lose their contents after a crash or a Neon compute restart, which
-- costs little: an emptied bucket is a full budget (one extra burst), an emptied cache a cold one.
--
-- One row per (tenant, "class/subject"): its GCRA theoretical arrival time. A row whose `tat`
-- has passed holds a full budget, exactly like a missing row, so cleanup may delete it at any
-- time. No foreign key to tenants: it would add a lookup and a lock on the tenant row to every
-- new bucket, and orphaned rows expire on their own. No index on `tat` either: every decision
-- moves `tat`, and an index on it would turn those HOT updates into index writes; cleanup
-- scans this small table instead. The fillfactor leaves room on each page for HOT updates.
create unlogged table if not exists rate_limits (
  tenant_id uuid not null,
  key text not null,
  tat timestamptz not null,
  primary key (tenant_id, key)
) with (fillfactor = 70);
--> statement-breakpoint
-- One rate-limit decision (core/ratelimit explains GCRA). The decision is the one INSERT ...
-- ON CONFLICT DO UPDATE: atomic under any concurrency, judged by the database clock after the
-- row lock is granted (clock_timestamp(), not the statement's start), and a refusal fails
-- its WHERE, so it writes nothing. Only after a refusal, a read of the bucket for the
-- refusal's headers (a fresh snapshot: the function is volatile). In a function because
-- PL/pgSQL keeps both plans per connection, where an inline statement of the same shape is
-- parsed and planned on every request, which halved throughput on `pg` (bench/ratelimit.ts).
-- Returns whether the request was admitted and how far the bucket's TAT is ahead of now,
-- in seconds: after an admission the new TAT, after a refusal the unchanged one.
create or replace function rate_limit_take(
  p_tenant uuid,
  p_key text,
  p_interval float8, -- seconds between requests at the steady rate: window / limit
  p_slack float8, -- window - interval: how far ahead the TAT may be for a request to fit
  out admitted boolean,
  out ahead float8
) language plpgsql volatile as $$
begin
  insert into rate_limits as b (tenant_id, key, tat)
  values (p_tenant, p_key, clock_timestamp() + p_interval * interval '1 second')
  on conflict (tenant_id, key) do update
    set tat = greatest(b.tat, clock_timestamp()) + p_interval * interval '1 second'
    where b.tat <= clock_timestamp() + p_slack * interval '1 second'
  returning true, extract(epoch from b.tat - clock_timestamp())::float8 into admitted, ahead;
  if not found then
    select false, extract(epoch from r.tat - clock_timestamp())::float8 into admitted, ahead
    from rate_limits r where r.tenant_id = p_tenant and r.key = p_key;
  end if;
end
$$;
--> statement-breakpoint
create unlogged table if not exists cache (
  tenant_id uuid not null references tenants (id) on delete cascade,
  key text not null,
  value jsonb not null,
  expires_at timestamptz not null,
  primary key (tenant_id, key)
);
--> statement-breakpoint
create index if not exists cache_expiry on cache (expires_at);
