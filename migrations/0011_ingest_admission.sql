-- Admission for ingests: each tenant may have at most a few ingests, and a bounded number of
-- request bytes, in flight at once, across every process and Lambda instance, so one tenant's
-- bulk load cannot take every database connection and all the memory (core/admission). One row
-- per ingest in flight, deleted when it ends; a process that dies leaves its row to expire
-- (after the longest an ingest may run). UNLOGGED like the rate limits: a crash empties it, which
-- only forgets ingests that died with it.
create unlogged table if not exists ingest_leases (
  tenant_id uuid not null,
  id uuid not null,
  bytes bigint not null,
  expires_at timestamptz not null,
  primary key (tenant_id, id)
);
--> statement-breakpoint
-- Takes a lease when the tenant has fewer than p_max_count ingests in flight and room for
-- p_bytes more (a request alone is always let in, whatever its size: the body limit bounds it).
-- The tenant's advisory lock makes count-then-insert atomic; other tenants never wait on it.
create or replace function ingest_admit(
  p_tenant uuid,
  p_id uuid,
  p_bytes bigint,
  p_max_count integer,
  p_max_bytes bigint,
  p_ttl_seconds float8,
  out admitted boolean,
  out in_flight integer,
  out bytes_in_flight bigint
) language plpgsql volatile as $$
begin
  perform pg_advisory_xact_lock(hashtextextended(p_tenant::text, 1734438261));
  delete from ingest_leases l where l.tenant_id = p_tenant and l.expires_at <= clock_timestamp();
  select count(*)::integer, coalesce(sum(l.bytes), 0)::bigint into in_flight, bytes_in_flight
  from ingest_leases l where l.tenant_id = p_tenant;
  admitted := in_flight < p_max_count and (in_flight = 0 or bytes_in_flight + p_bytes <= p_max_bytes);
  if admitted then
    insert into ingest_leases (tenant_id, id, bytes, expires_at)
    values (p_tenant, p_id, p_bytes, clock_timestamp() + p_ttl_seconds * interval '1 second');
  end if;
end
$$;
