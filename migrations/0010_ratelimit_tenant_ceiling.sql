-- A request counts against two buckets: its end user's (or key's) for the route class, and the
-- tenant's ceiling for the class, which all its end users share, so inventing user ids buys
-- nothing beyond the ceiling. Both are decided in one statement and both must fit: an admission
-- moves both TATs, a refusal moves neither and creates no user bucket (a request the limiter
-- refuses leaves nothing behind for the user id it made up).
--
--   * Either bucket already full in the statement's snapshot: refused from that read, without a
--     lock (0007: a TAT only grows, so the refusal stands).
--   * Otherwise the tenant's row is locked first (created on first use), always before the user's:
--     one lock order, so no deadlocks, and every decision of a tenant and class queues on that
--     row, which makes the user row's read under it exact. The fit is judged on the clock read
--     after the lock. This serialises a tenant's decisions per class (a few microseconds each,
--     thousands a second), never one tenant's behind another's.
--
-- Returns whether the request was admitted, which bucket refused it ('user' or 'tenant', null
-- when admitted), and how far each bucket's TAT is ahead of now in seconds (0 for a missing row).
create or replace function rate_limit_take_pair(
  p_tenant uuid,
  p_key text,
  p_interval float8, -- the user bucket: seconds between requests at the steady rate (window / limit)
  p_slack float8, -- window - interval: how far ahead the TAT may be for a request to fit
  p_ceiling_key text,
  p_ceiling_interval float8, -- the same for the tenant's ceiling
  p_ceiling_slack float8,
  out admitted boolean,
  out refused_by text,
  out ahead float8,
  out ceiling_ahead float8
) language plpgsql volatile as $$
declare
  v_now timestamptz;
  v_user timestamptz;
  v_tenant timestamptz;
begin
  select r.tat into v_tenant from rate_limits r where r.tenant_id = p_tenant and r.key = p_ceiling_key;
  select r.tat into v_user from rate_limits r where r.tenant_id = p_tenant and r.key = p_key;
  v_now := clock_timestamp();
  if coalesce(v_user > v_now + p_slack * interval '1 second', false)
     or coalesce(v_tenant > v_now + p_ceiling_slack * interval '1 second', false) then
    admitted := false;
    refused_by := case when coalesce(v_user > v_now + p_slack * interval '1 second', false) then 'user' else 'tenant' end;
    ahead := coalesce(extract(epoch from v_user - v_now)::float8, 0);
    ceiling_ahead := coalesce(extract(epoch from v_tenant - v_now)::float8, 0);
    return;
  end if;

  insert into rate_limits as b (tenant_id, key, tat) values (p_tenant, p_ceiling_key, clock_timestamp())
  on conflict (tenant_id, key) do update set tat = b.tat
  returning b.tat into v_tenant;
  select r.tat into v_user from rate_limits r where r.tenant_id = p_tenant and r.key = p_key for update;
  v_now := clock_timestamp();
  if v_tenant > v_now + p_ceiling_slack * interval '1 second'
     or coalesce(v_user > v_now + p_slack * interval '1 second', false) then
    admitted := false;
    refused_by := case when coalesce(v_user > v_now + p_slack * interval '1 second', false) then 'user' else 'tenant' end;
    ahead := coalesce(extract(epoch from v_user - v_now)::float8, 0);
    ceiling_ahead := extract(epoch from v_tenant - v_now)::float8;
    return;
  end if;

  update rate_limits set tat = greatest(v_tenant, v_now) + p_ceiling_interval * interval '1 second'
  where tenant_id = p_tenant and key = p_ceiling_key
  returning tat into v_tenant;
  insert into rate_limits as b (tenant_id, key, tat) values (p_tenant, p_key, v_now + p_interval * interval '1 second')
  on conflict (tenant_id, key) do update set tat = greatest(b.tat, v_now) + p_interval * interval '1 second'
  returning b.tat into v_user;
  admitted := true;
  refused_by := null;
  v_now := clock_timestamp();
  ahead := extract(epoch from v_user - v_now)::float8;
  ceiling_ahead := extract(epoch from v_tenant - v_now)::float8;
end
$$;
--> statement-breakpoint
-- Decisions that queue up in one process go together (core/ratelimit explains when): request i
-- is (p_tenants[i], p_keys[i], ...), decided by rate_limit_take_pair one after another in one
-- statement, so duplicates of a bucket see each other's admissions. In (tenant, ceiling) order:
-- every batch locks ceiling rows in one order, and a user row only ever under its own ceiling's
-- lock, so two batches never wait on each other in a cycle. Returns one row per request.
create or replace function rate_limit_take_pairs(
  p_tenants uuid[],
  p_keys text[],
  p_intervals float8[],
  p_slacks float8[],
  p_ceiling_keys text[],
  p_ceiling_intervals float8[],
  p_ceiling_slacks float8[]
) returns table (request integer, admitted boolean, refused_by text, ahead float8, ceiling_ahead float8)
language plpgsql volatile as $$
declare
  i integer;
begin
  for i in
    select o.i from generate_subscripts(p_tenants, 1) as o (i) order by p_tenants[o.i], p_ceiling_keys[o.i], o.i
  loop
    request := i;
    select d.admitted, d.refused_by, d.ahead, d.ceiling_ahead
    into admitted, refused_by, ahead, ceiling_ahead
    from rate_limit_take_pair(p_tenants[i], p_keys[i], p_intervals[i], p_slacks[i],
                              p_ceiling_keys[i], p_ceiling_intervals[i], p_ceiling_slacks[i]) d;
    return next;
  end loop;
end
$$;
