-- One round trip per request on Lambda (docs/reliability.md, "Round trips"): the API key and the
-- rate-limit decision in one statement, and for search and chat the work itself in the same
-- non-interactive batch, gated by that statement's verdict.
--
-- rate_limit_take_pair, same rules and results as 0010 in fewer statements: both buckets read
-- in one index scan; the tenant's row locked with FOR UPDATE when it exists (0010 rewrote it
-- unchanged to lock it, a row version each decision); both new TATs written by one INSERT ...
-- ON CONFLICT. Four statements where an admission took six. Still: refused from the snapshot
-- without a lock when either bucket is already full, otherwise decided under the tenant row's
-- lock, taken before the user row's, on the clock read after both locks.
create or replace function rate_limit_take_pair(
  p_tenant uuid,
  p_key text,
  p_interval float8,
  p_slack float8,
  p_ceiling_key text,
  p_ceiling_interval float8,
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
  select max(r.tat) filter (where r.key = p_ceiling_key), max(r.tat) filter (where r.key = p_key)
  into v_tenant, v_user
  from rate_limits r where r.tenant_id = p_tenant and r.key in (p_key, p_ceiling_key);
  v_now := clock_timestamp();
  if coalesce(v_user > v_now + p_slack * interval '1 second', false)
     or coalesce(v_tenant > v_now + p_ceiling_slack * interval '1 second', false) then
    admitted := false;
    refused_by := case when coalesce(v_user > v_now + p_slack * interval '1 second', false) then 'user' else 'tenant' end;
    ahead := coalesce(extract(epoch from v_user - v_now)::float8, 0);
    ceiling_ahead := coalesce(extract(epoch from v_tenant - v_now)::float8, 0);
    return;
  end if;

  select r.tat into v_tenant from rate_limits r where r.tenant_id = p_tenant and r.key = p_ceiling_key for update;
  if not found then
    insert into rate_limits as b (tenant_id, key, tat) values (p_tenant, p_ceiling_key, clock_timestamp())
    on conflict (tenant_id, key) do update set tat = b.tat
    returning b.tat into v_tenant;
  end if;
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

  v_tenant := greatest(v_tenant, v_now) + p_ceiling_interval * interval '1 second';
  v_user := greatest(v_user, v_now) + p_interval * interval '1 second';
  -- Both rows are ours: the tenant's locked above, the user's locked or, when missing, only ever
  -- created under the tenant row's lock.
  insert into rate_limits as b (tenant_id, key, tat)
  values (p_tenant, p_ceiling_key, v_tenant), (p_tenant, p_key, v_user)
  on conflict (tenant_id, key) do update set tat = excluded.tat;
  admitted := true;
  refused_by := null;
  v_now := clock_timestamp();
  ahead := extract(epoch from v_user - v_now)::float8;
  ceiling_ahead := extract(epoch from v_tenant - v_now)::float8;
end
$$;
--> statement-breakpoint
-- A tenant's rate override as core/ratelimit's parseRate reads it ("20/min"): null when absent or
-- malformed (the configured default applies, as in policyFor).
create or replace function engram_rate(p_value text, out lim float8, out win float8)
language sql immutable as $$
  select m[1]::numeric::float8,
    case m[2] when 's' then 1 when 'sec' then 1 when 'second' then 1 when 'm' then 60 when 'min' then 60
      when 'minute' then 60 when 'h' then 3600 when 'hour' then 3600 end
  from regexp_match(btrim(p_value, E' \t\n\r\f\v'), '^(\d+)/([a-z]+)$') m
  where m[2] in ('s', 'sec', 'second', 'm', 'min', 'minute', 'h', 'hour')
    and m[1]::numeric <= 9007199254740991
$$;
--> statement-breakpoint
-- The request gate: the API key (by prefix and SHA-256 hash, not revoked) and the request's two
-- buckets (core/ratelimit: the caller's own and the tenant's ceiling, their rates from the
-- tenant's overrides, else the defaults passed in) in one statement. Modes:
--   decide: the whole decision, as RateLimit.enforce makes it, for a request whose work follows
--           in its own statements; when admitted it also sets `engram.tenant` (below) for statements
--           of the same batch (an ingest's admission).
--   check:  first statement of a gated batch (core/gate): the key, and both buckets read from
--           the snapshot without locks or writes. When both have room it sets the
--           transaction-local `engram.tenant`, the tenant every later statement of the batch
--           reads through; otherwise it stays unset and they find nothing.
--   commit: last statement of that batch: if the check opened the gate for this tenant, the
--           exact decision under the row locks (held only until the batch commits, right after).
--           Otherwise nothing (admitted null): the check's verdict stands.
-- Returns the tenant (null when the key is not valid), the rates in force and the decision:
-- refused_by 'auth' (no such key), 'closed' (a limit of 0), 'user' or 'tenant'; null when admitted.
-- The key's last_used_at moves at most once a minute, when a decision was made.
create or replace function request_gate(
  p_prefix text,
  p_hash text,
  p_class text,
  p_key text,
  p_ceiling_key text,
  p_limit float8,
  p_window float8,
  p_ceiling_limit float8,
  p_ceiling_window float8,
  p_mode text,
  out tenant uuid,
  out tenant_name text,
  out limits jsonb,
  out own_limit float8,
  out own_window float8,
  out ceil_limit float8,
  out ceil_window float8,
  out admitted boolean,
  out refused_by text,
  out ahead float8,
  out ceiling_ahead float8
) language plpgsql volatile as $$
#variable_conflict use_column
declare
  v_key uuid;
  v_used timestamptz;
  v_lim float8;
  v_win float8;
  v_now timestamptz;
  v_user timestamptz;
  v_tenant timestamptz;
  v_interval float8;
  v_ceiling_interval float8;
begin
  select k.id, k.last_used_at, t.id, t.name, t.rate_limits into v_key, v_used, tenant, tenant_name, limits
  from api_keys k join tenants t on t.id = k.tenant_id
  where k.prefix = p_prefix and k.hash = p_hash and k.revoked_at is null;
  if v_key is null then
    admitted := false;
    refused_by := 'auth';
    return;
  end if;

  -- Most tenants override nothing: no parse then.
  own_limit := p_limit;
  own_window := p_window;
  if limits ? p_class then
    select r.lim, r.win into v_lim, v_win from engram_rate(limits ->> p_class) r;
    own_limit := coalesce(v_lim, p_limit);
    own_window := coalesce(v_win, p_window);
  end if;
  ceil_limit := p_ceiling_limit;
  ceil_window := p_ceiling_window;
  if limits ? ('tenant.' || p_class) then
    select r.lim, r.win into v_lim, v_win from engram_rate(limits ->> ('tenant.' || p_class)) r;
    ceil_limit := coalesce(v_lim, p_ceiling_limit);
    ceil_window := coalesce(v_win, p_ceiling_window);
  end if;
  if ceil_limit / ceil_window < own_limit / own_window then
    ceil_limit := own_limit;
    ceil_window := own_window;
  end if;
  if own_limit = 0 or ceil_limit = 0 then
    admitted := false;
    refused_by := 'closed';
    return;
  end if;
  v_interval := own_window / own_limit;
  v_ceiling_interval := ceil_window / ceil_limit;

  if p_mode = 'check' then
    select max(r.tat) filter (where r.key = p_ceiling_key), max(r.tat) filter (where r.key = p_key)
    into v_tenant, v_user
    from rate_limits r where r.tenant_id = tenant and r.key in (p_key, p_ceiling_key);
    v_now := clock_timestamp();
    if coalesce(v_user > v_now + (own_window - v_interval) * interval '1 second', false)
       or coalesce(v_tenant > v_now + (ceil_window - v_ceiling_interval) * interval '1 second', false) then
      admitted := false;
      refused_by := case when coalesce(v_user > v_now + (own_window - v_interval) * interval '1 second', false)
        then 'user' else 'tenant' end;
      ahead := coalesce(extract(epoch from v_user - v_now)::float8, 0);
      ceiling_ahead := coalesce(extract(epoch from v_tenant - v_now)::float8, 0);
      return;
    end if;
    perform set_config('engram.tenant', tenant::text, true);
    admitted := true;
    return;
  end if;

  if p_mode = 'commit' and current_setting('engram.tenant', true) is distinct from tenant::text then
    admitted := null;
    return;
  end if;
  select d.admitted, d.refused_by, d.ahead, d.ceiling_ahead into admitted, refused_by, ahead, ceiling_ahead
  from rate_limit_take_pair(tenant, p_key, v_interval, own_window - v_interval,
                            p_ceiling_key, v_ceiling_interval, ceil_window - v_ceiling_interval) d;
  -- A decision's batch may go on (an ingest's admission, core/admission): for this tenant, if admitted.
  if p_mode = 'decide' and admitted then
    perform set_config('engram.tenant', tenant::text, true);
  end if;
  if v_used is null or v_used < now() - interval '1 minute' then
    update api_keys set last_used_at = now()
    where id = v_key and (last_used_at is null or last_used_at < now() - interval '1 minute');
  end if;
end
$$;
