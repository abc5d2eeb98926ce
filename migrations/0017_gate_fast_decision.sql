-- The request gate's one decision made fast (issue #21; figures in docs/reliability.md, "Round trips").
-- Same signatures, modes, rules and results as 0014's functions; what changed is what a decision costs.
--
-- * Tenant ceilings get a table of their own, with fillfactor 10. A tenant's ceiling row is rewritten by
--   every admission of the tenant and class, and Postgres prunes a page's dead row versions only once its
--   free space falls below the fillfactor's reserve: in rate_limits (fillfactor 70, sparse pages) the
--   ceiling's chain of dead versions grew to dozens, and every read of the row walked it (a third of the
--   gate's server time). At fillfactor 10 a page is pruned as soon as a tenth of it is used.
-- * engram_rate (a tenant's override) is PL/pgSQL with plain string functions: 0014's SQL function was
--   planned again on every call (about 200 us each, two per request of a tenant with overrides); now
--   it is an expression the gate evaluates without a statement.
-- * The key, the tenant, its overrides and both TATs are read in one statement. A bucket already full
--   there is refused from it (0007), so a hot key's refusals stay one read-only statement.
-- * An admission is one more statement, a compare-and-set: it writes both new TATs, decided on the
--   clock read after that snapshot, only if the ceiling row is still the version the snapshot read
--   (same place, same creating transaction). User buckets are written only by transactions that also
--   rewrite their ceiling row (this compare-and-set, and rate_limit_take_pair below), so an unchanged ceiling
--   means the user's TAT read is current too: the decision is the one the locking path would make,
--   without a lock held between reading and deciding. If the ceiling changed (a concurrent decision
--   of the same tenant and class) or does not exist yet, rate_limit_take_pair decides under the locks.
create unlogged table if not exists rate_ceilings (
  tenant_id uuid not null,
  key text not null,
  tat timestamptz not null,
  primary key (tenant_id, key)
) with (fillfactor = 10);
--> statement-breakpoint
-- Ceilings decided before this migration move over (their keys end in "/tenant"; no user id, key prefix
-- or address contains a slash).
insert into rate_ceilings (tenant_id, key, tat)
select tenant_id, key, tat from rate_limits where key like '%/tenant'
on conflict (tenant_id, key) do update set tat = greatest(rate_ceilings.tat, excluded.tat);
--> statement-breakpoint
delete from rate_limits where key like '%/tenant';
--> statement-breakpoint
-- 0014's, with the ceiling in rate_ceilings: still refused from the snapshot when either bucket is
-- full, otherwise decided under the ceiling row's lock, taken before the user row's, on the clock read
-- after both locks.
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
  select (select c.tat from rate_ceilings c where c.tenant_id = p_tenant and c.key = p_ceiling_key),
         (select r.tat from rate_limits r where r.tenant_id = p_tenant and r.key = p_key)
  into v_tenant, v_user;
  v_now := clock_timestamp();
  if coalesce(v_user > v_now + p_slack * interval '1 second', false)
     or coalesce(v_tenant > v_now + p_ceiling_slack * interval '1 second', false) then
    admitted := false;
    refused_by := case when coalesce(v_user > v_now + p_slack * interval '1 second', false) then 'user' else 'tenant' end;
    ahead := coalesce(extract(epoch from v_user - v_now)::float8, 0);
    ceiling_ahead := coalesce(extract(epoch from v_tenant - v_now)::float8, 0);
    return;
  end if;

  select c.tat into v_tenant from rate_ceilings c where c.tenant_id = p_tenant and c.key = p_ceiling_key for update;
  if not found then
    insert into rate_ceilings as b (tenant_id, key, tat) values (p_tenant, p_ceiling_key, clock_timestamp())
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
  update rate_ceilings set tat = v_tenant where tenant_id = p_tenant and key = p_ceiling_key;
  insert into rate_limits as b (tenant_id, key, tat) values (p_tenant, p_key, v_user)
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
-- malformed (the configured default applies, as in policyFor). Same signature as 0014's.
create or replace function engram_rate(p_value text, out lim float8, out win float8)
language plpgsql immutable as $$
declare
  v text := btrim(p_value, E' \t\n\r\f\v');
  n text := split_part(v, '/', 1);
  u text := split_part(v, '/', 2);
  w float8 := case u when 's' then 1 when 'sec' then 1 when 'second' then 1 when 'm' then 60 when 'min' then 60
                when 'minute' then 60 when 'h' then 3600 when 'hour' then 3600 end;
begin
  -- Digits, one slash, a known unit, a safe integer: what parseRate's /^(\d+)\/([a-z]+)$/ and checks accept.
  if w is not null and n <> '' and ltrim(n, '0123456789') = '' and v = n || '/' || u then
    if n::numeric <= 9007199254740991 then
      lim := n::numeric::float8;
      win := w;
    end if;
  end if;
end
$$;
--> statement-breakpoint
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
  v_now timestamptz;
  v_user timestamptz;
  v_tenant timestamptz;
  v_tenant_row tid;
  v_tenant_version xid;
  v_interval float8;
  v_ceiling_interval float8;
  v_user_full boolean;
  v_rate record;
begin
  -- The commit of a batch whose check refused: the check's row is the answer.
  if p_mode = 'commit' and coalesce(current_setting('engram.tenant', true), '') = '' then
    admitted := null;
    return;
  end if;

  select k.id, k.last_used_at, t.id, t.name, t.rate_limits, c.tat, c.ctid, c.xmin,
         (select u.tat from rate_limits u where u.tenant_id = t.id and u.key = p_key)
  into v_key, v_used, tenant, tenant_name, limits, v_tenant, v_tenant_row, v_tenant_version, v_user
  from api_keys k join tenants t on t.id = k.tenant_id
    left join rate_ceilings c on c.tenant_id = t.id and c.key = p_ceiling_key
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
    v_rate := engram_rate(limits ->> p_class);
    own_limit := coalesce(v_rate.lim, p_limit);
    own_window := coalesce(v_rate.win, p_window);
  end if;
  ceil_limit := p_ceiling_limit;
  ceil_window := p_ceiling_window;
  if limits ? ('tenant.' || p_class) then
    v_rate := engram_rate(limits ->> ('tenant.' || p_class));
    ceil_limit := coalesce(v_rate.lim, p_ceiling_limit);
    ceil_window := coalesce(v_rate.win, p_ceiling_window);
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
  if p_mode = 'commit' and current_setting('engram.tenant', true) is distinct from tenant::text then
    admitted := null;
    return;
  end if;
  v_interval := own_window / own_limit;
  v_ceiling_interval := ceil_window / ceil_limit;

  -- Full in the snapshot: refused from it (a TAT only grows, so the refusal stands).
  v_now := clock_timestamp();
  v_user_full := coalesce(v_user > v_now + (own_window - v_interval) * interval '1 second', false);
  if v_user_full or coalesce(v_tenant > v_now + (ceil_window - v_ceiling_interval) * interval '1 second', false) then
    admitted := false;
    refused_by := case when v_user_full then 'user' else 'tenant' end;
    ahead := coalesce(extract(epoch from v_user - v_now)::float8, 0);
    ceiling_ahead := coalesce(extract(epoch from v_tenant - v_now)::float8, 0);
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
    v_tenant := greatest(v_tenant, v_now) + v_ceiling_interval * interval '1 second';
    v_user := greatest(v_user, v_now) + v_interval * interval '1 second';
    with ceiling as (
      update rate_ceilings c set tat = v_tenant
      where c.ctid = v_tenant_row and c.xmin = v_tenant_version and c.tenant_id = tenant and c.key = p_ceiling_key
      returning c.tenant_id
    )
    insert into rate_limits as b (tenant_id, key, tat)
    select c.tenant_id, p_key, v_user from ceiling c
    on conflict (tenant_id, key) do update set tat = excluded.tat;
    if found then
      admitted := true;
      ahead := extract(epoch from v_user - v_now)::float8;
      ceiling_ahead := extract(epoch from v_tenant - v_now)::float8;
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
  if v_used is null or v_used < now() - interval '1 minute' then
    update api_keys set last_used_at = now()
    where id = v_key and (last_used_at is null or last_used_at < now() - interval '1 minute');
  end if;
end
$$;
