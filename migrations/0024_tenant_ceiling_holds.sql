-- A tenant's own ceiling holds as set, also below one end user's rate (core/ratelimit/policy.ts `ceilingFor`): it was
-- lifted to that rate, so `engram tenants set-limits --search 1000/min --tenant-search 5/min` admitted a thousand
-- searches a minute. Only the configured default ceiling is still lifted. request_gate as in 0022 otherwise.
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
  v_touch boolean;
  v_now float8;
  v_user float8;
  v_tenant float8;
  v_tenant_row tid;
  v_tenant_version xid;
  v_lim float8;
  v_win float8;
  v_interval float8;
  v_ceiling_interval float8;
  v_stale boolean := false;
begin
  -- The commit of a batch whose check refused: the check's row is the answer.
  if p_mode = 'commit' and coalesce(current_setting('engram.tenant', true), '') = '' then
    return;
  end if;

  -- Times as epoch seconds (float8): date_part, not extract (numeric since PostgreSQL 14), and float arithmetic
  -- below, not intervals. Overrides come parsed (tenants.rates).
  select k.id, k.last_used_at is null or k.last_used_at < now() - interval '1 minute',
         t.id, t.name, t.rate_limits,
         (t.rates -> p_class ->> 0)::float8, (t.rates -> p_class ->> 1)::float8,
         (t.rates -> ('tenant.' || p_class) ->> 0)::float8, (t.rates -> ('tenant.' || p_class) ->> 1)::float8,
         date_part('epoch', c.tat), c.ctid, c.xmin, date_part('epoch', u.tat), date_part('epoch', clock_timestamp())
  into v_key, v_touch, tenant, tenant_name, limits, own_limit, own_window, v_lim, v_win,
       v_tenant, v_tenant_row, v_tenant_version, v_user, v_now
  from api_keys k join tenants t on t.id = k.tenant_id
    left join rate_ceilings c on c.tenant_id = t.id and c.key = p_ceiling_key
    left join rate_limits u on u.tenant_id = t.id and u.key = p_key
  where k.prefix = p_prefix and k.hash = p_hash and k.revoked_at is null;
  if v_key is null then
    admitted := false;
    refused_by := 'auth';
    return;
  end if;

  -- Most tenants override nothing: the defaults passed in.
  if own_limit is null then
    own_limit := p_limit;
    own_window := p_window;
  end if;
  -- The default ceiling is lifted to one end user's rate; a ceiling the tenant set holds as set.
  if v_lim is null then
    v_lim := p_ceiling_limit;
    v_win := p_ceiling_window;
    if v_lim / v_win < own_limit / own_window then
      v_lim := own_limit;
      v_win := own_window;
    end if;
  end if;
  ceil_limit := v_lim;
  ceil_window := v_win;
  if own_limit = 0 or ceil_limit = 0 then
    admitted := false;
    refused_by := 'closed';
    return;
  end if;
  if p_mode = 'commit' and current_setting('engram.tenant', true) is distinct from tenant::text then
    return;
  end if;
  v_interval := own_window / own_limit;
  v_ceiling_interval := ceil_window / ceil_limit;
  -- Under its own policy a bucket is never more than one window ahead. One that is was filled under a slower
  -- policy since changed: it counts as full under the new one, no more, so new limits hold from the next request.
  if v_user - v_now > own_window then
    v_user := v_now + own_window;
    v_stale := true;
  end if;
  if v_tenant - v_now > ceil_window then
    v_tenant := v_now + ceil_window;
    v_stale := true;
  end if;

  -- Full in the snapshot: refused from it (a TAT only grows, so the refusal stands).
  if v_user - v_now > own_window - v_interval or v_tenant - v_now > ceil_window - v_ceiling_interval then
    admitted := false;
    refused_by := case when v_user - v_now > own_window - v_interval then 'user' else 'tenant' end;
    ahead := coalesce(v_user - v_now, 0);
    ceiling_ahead := coalesce(v_tenant - v_now, 0);
    -- Rare (a policy just changed): the full bucket of the new policy is written, or the stored one would keep
    -- refusing. Never moves a TAT up: least() against what a concurrent decision may have written since.
    if v_stale then
      update rate_limits u set tat = least(u.tat, to_timestamp(v_user))
      where u.tenant_id = tenant and u.key = p_key and u.tat > to_timestamp(v_user);
      update rate_ceilings c set tat = least(c.tat, to_timestamp(v_tenant))
      where c.tenant_id = tenant and c.key = p_ceiling_key and c.tat > to_timestamp(v_tenant);
    end if;
    return;
  end if;
  if p_mode = 'check' then
    perform set_config('engram.tenant', tenant::text, true);
    admitted := true;
    return;
  end if;

  -- Both fit in the snapshot. Write both new TATs if the ceiling row is still the version the
  -- snapshot read (same place, same transaction); otherwise decide again under the locks.
  if v_tenant is not null then
    v_tenant := greatest(v_tenant, v_now) + v_ceiling_interval;
    v_user := greatest(v_user, v_now) + v_interval;
    with ceiling as (
      update rate_ceilings c set tat = to_timestamp(v_tenant)
      where c.ctid = v_tenant_row and c.xmin = v_tenant_version and c.tenant_id = tenant and c.key = p_ceiling_key
      returning c.tenant_id
    )
    insert into rate_limits as b (tenant_id, key, tat)
    select c.tenant_id, p_key, to_timestamp(v_user) from ceiling c
    on conflict (tenant_id, key) do update set tat = excluded.tat;
    if found then
      admitted := true;
      ahead := v_user - v_now;
      ceiling_ahead := v_tenant - v_now;
    end if;
  end if;
  if admitted is null then
    select d.admitted, d.refused_by, d.ahead, d.ceiling_ahead into admitted, refused_by, ahead, ceiling_ahead
    from rate_limit_take_pair(tenant, p_key, v_interval, own_window - v_interval,
                              p_ceiling_key, v_ceiling_interval, ceil_window - v_ceiling_interval) d;
  end if;
  -- A decision's batch may go on (an ingest's admission, core/admission): for this tenant, if admitted.
  if p_mode = 'decide' and admitted then
    perform set_config('engram.tenant', tenant::text, true);
  end if;
  if v_touch then
    update api_keys set last_used_at = now()
    where id = v_key and (last_used_at is null or last_used_at < now() - interval '1 minute');
  end if;
end
$$;
