-- rate_limit_take refuses a request for a bucket that is already full without taking its row
-- lock. Under one hot key almost every decision is a refusal, and in 0003 each one queued for
-- the row lock behind the others (ON CONFLICT DO UPDATE locks the row before its WHERE says
-- no), held it for its read of the TAT, then committed: the hot key was serialised on refusals.
--
-- Still correct without the lock: a bucket's TAT only ever grows (cleanup deletes a row only
-- once its TAT has passed, and such a row is not full), so a committed TAT already beyond
-- now + slack means this request does not fit, now or at any later moment of this decision.
-- Only refusals take that path; every admission is still decided by the one INSERT ... ON
-- CONFLICT DO UPDATE under the row lock, so nothing can be over-admitted. The results, and so
-- the headers, are the same as 0003's: a refusal returns the TAT as committed, in seconds ahead.
-- Same signature and result columns, so prepared calls stay valid.
create or replace function rate_limit_take(
  p_tenant uuid,
  p_key text,
  p_interval float8, -- seconds between requests at the steady rate: window / limit
  p_slack float8, -- window - interval: how far ahead the TAT may be for a request to fit
  out admitted boolean,
  out ahead float8
) language plpgsql volatile as $$
begin
  select false, extract(epoch from r.tat - clock_timestamp())::float8 into admitted, ahead
  from rate_limits r
  where r.tenant_id = p_tenant and r.key = p_key and r.tat > clock_timestamp() + p_slack * interval '1 second';
  if found then
    return;
  end if;
  insert into rate_limits as b (tenant_id, key, tat)
  values (p_tenant, p_key, clock_timestamp() + p_interval * interval '1 second')
  on conflict (tenant_id, key) do update
    set tat = greatest(b.tat, clock_timestamp()) + p_interval * interval '1 second'
    where b.tat <= clock_timestamp() + p_slack * interval '1 second'
  returning true, extract(epoch from b.tat - clock_timestamp())::float8 into admitted, ahead;
  if not found then
    -- Filled up between the read and the insert: read it again in a fresh snapshot.
    select false, extract(epoch from r.tat - clock_timestamp())::float8 into admitted, ahead
    from rate_limits r where r.tenant_id = p_tenant and r.key = p_key;
  end if;
end
$$;
