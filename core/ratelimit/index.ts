export * as RateLimit from "./index";

import { sql } from "drizzle-orm";
import type { Caller } from "../auth";
import { config } from "../config";
import { arr, type Db } from "../db";
import { EngramError, inputError } from "../error";
import { log } from "../log";
import {
  bucketKey,
  CLASSES,
  ceilingFor,
  ceilingKey,
  ceilingName,
  closed,
  headers,
  type Limits,
  type Outcome,
  outcome,
  parseRate,
  policyFor,
  type Rate,
  type RateClass,
  verdict,
} from "./policy";

export * from "./policy";

/**
 * Every decision is one statement, on the database's clock, and nothing about a bucket lives
 * in the process between requests. A request on its own (always, on Lambda) is one round trip
 * of `DECIDE`, a plain statement. Requests that arrive while this process already has
 * `IN_FLIGHT` decisions running wait for one of them to finish, then go together in one call
 * of `rate_limit_take_many` (migrations/0008): what is already queued, never held back by a
 * timer. Still one atomic statement per batch, so instances and pools stay exact together;
 * it only saves the per-statement cost (a round trip, parsing the reply, a transaction), which
 * is most of a decision: 16 clients over 10,000 keys made 13,300 decisions/s one statement
 * each and 35,000 batched (bench/ratelimit.ts). Two in flight, not one (which measured a few
 * percent faster here): a statement waiting for a bucket's row lock, held by another
 * instance, then stalls only half of this process's decisions.
 */
const IN_FLIGHT = 2;
/** Bounds one statement's size; more waiting requests go in the next. */
const MAX_BATCH = 500;

/**
 * One decision for one request. A bucket already full in the statement's snapshot is refused
 * from that read, without its row lock: under a hot key almost every decision is one, and a
 * TAT only grows, so the refusal stands (migrations/0007). Any other request is decided by
 * `INSERT ... ON CONFLICT DO UPDATE` under the row lock, on the clock read after the lock was
 * granted. If the bucket filled up between the snapshot and the lock, the update rewrites the
 * row unchanged with `admitted = 0`: that refusal then reads the committed TAT, which its
 * headers need, from RETURNING instead of from a second statement. `admitted` is the
 * column rate_limit_take_many needs (0008). Named, so `pg` parses it once per connection and,
 * its parameters being scalars, soon plans it once too (an inline statement planned on every
 * call halved throughput; PL/pgSQL's rate_limit_take, which this replaces, cost 10% more
 * server time a decision than this plain statement).
 */
const DECIDE = `
  with seen as (
    select r.tat, clock_timestamp() as now from rate_limits r where r.tenant_id = $1::uuid and r.key = $2::text
  ), refused as (
    select 0 as admitted, extract(epoch from s.tat - s.now)::float8 as ahead
    from seen s where s.tat > s.now + $4::float8 * interval '1 second'
  ), taken as (
    insert into rate_limits as b (tenant_id, key, tat, admitted)
    select $1::uuid, $2::text, clock_timestamp() + $3::float8 * interval '1 second', 1
    where not exists (select from refused)
    on conflict (tenant_id, key) do update set (tat, admitted) = (
      select case when fits then greatest(b.tat, c.now) + $3::float8 * interval '1 second' else b.tat end, fits::integer
      from clock_timestamp() as c (now), lateral (select b.tat <= c.now + $4::float8 * interval '1 second' as fits) f)
    returning b.admitted, extract(epoch from b.tat - clock_timestamp())::float8 as ahead
  )
  select admitted, ahead from refused union all select admitted, ahead from taken`;

const DECIDE_MANY = "select bucket, admitted, ahead from rate_limit_take_many($1, $2, $3, $4, $5)";

interface Waiting {
  tenantId: string;
  key: string;
  interval: number;
  slack: number;
  resolve(result: { admitted: boolean; ahead: number }): void;
  reject(error: unknown): void;
}

interface Queue {
  running: number;
  waiting: Waiting[];
}

const queues = new WeakMap<Db, Queue>();

/** The bucket of `waiting` requests as one map key. */
const bucketOf = (w: Pick<Waiting, "tenantId" | "key">) => `${w.tenantId}\u0000${w.key}`;

/** Starts statements while fewer than IN_FLIGHT run, each for everything that has queued. */
function pump(db: Db, queue: Queue): void {
  while (queue.running < IN_FLIGHT && queue.waiting.length > 0) {
    const buckets = takeBatch(queue);
    queue.running++;
    run(db, buckets).finally(() => {
      queue.running--;
      pump(db, queue);
    });
  }
}

/**
 * Takes up to MAX_BATCH waiting requests, grouped by bucket in arrival order. A request for a
 * bucket already in the batch under another rate (its tenant's override just changed) waits
 * for the next one: a statement decides a bucket once, under one rate.
 */
function takeBatch(queue: Queue): Waiting[][] {
  const buckets = new Map<string, Waiting[]>();
  const later: Waiting[] = [];
  let taken = 0;
  for (const w of queue.waiting) {
    const group = buckets.get(bucketOf(w));
    const first = group?.[0];
    if (taken === MAX_BATCH || (first && (first.interval !== w.interval || first.slack !== w.slack))) {
      later.push(w);
      continue;
    }
    if (group) group.push(w);
    else buckets.set(bucketOf(w), [w]);
    taken++;
  }
  queue.waiting = later;
  return [...buckets.values()];
}

async function run(db: Db, buckets: Waiting[][]): Promise<void> {
  try {
    const only = buckets.length === 1 && buckets[0]?.length === 1 ? buckets[0][0] : undefined;
    if (only) {
      const [row] = await db.query<{ admitted: number; ahead: number }>({
        name: "rate_limit_decide",
        text: DECIDE,
        params: [only.tenantId, only.key, only.interval, only.slack],
      });
      if (!row) throw new Error("rate limit decision returned no row");
      only.resolve({ admitted: row.admitted === 1, ahead: row.ahead });
      return;
    }
    const firsts = buckets.map((group) => group[0] as Waiting);
    const rows = await db.query<{ bucket: number; admitted: number; ahead: number }>({
      name: "rate_limit_take_many",
      text: DECIDE_MANY,
      params: [
        firsts.map((w) => w.tenantId),
        firsts.map((w) => w.key),
        buckets.map((group) => group.length),
        firsts.map((w) => w.interval),
        firsts.map((w) => w.slack),
      ],
    });
    if (rows.length !== buckets.length) throw new Error("rate limit decision returned no row for a bucket");
    for (const row of rows) {
      const group = buckets[row.bucket - 1] as Waiting[];
      // The database moved the TAT in whole microseconds; request j of the k admitted saw it
      // (k - 1 - j) intervals short of where the batch left it. The rest were refused on it.
      const step = Math.round((group[0] as Waiting).interval * 1e6) / 1e6;
      for (const [j, w] of group.entries()) {
        w.resolve(
          j < row.admitted
            ? { admitted: true, ahead: row.ahead - (row.admitted - 1 - j) * step }
            : { admitted: false, ahead: row.ahead },
        );
      }
    }
  } catch (error) {
    // Requests already resolved ignore this; the others fail as the statement did.
    for (const group of buckets) for (const w of group) w.reject(error);
  }
}

/** Counts one request against a bucket (`key` within the tenant). Needs `rate.limit >= 1`. */
export async function decide(db: Db, tenantId: string, key: string, rate: Rate): Promise<Outcome> {
  const interval = rate.windowSeconds / rate.limit;
  let queue = queues.get(db);
  if (!queue) {
    queue = { running: 0, waiting: [] };
    queues.set(db, queue);
  }
  const q = queue;
  const { admitted, ahead } = await new Promise<{ admitted: boolean; ahead: number }>((resolve, reject) => {
    q.waiting.push({ tenantId, key, interval, slack: rate.windowSeconds - interval, resolve, reject });
    pump(db, q);
  });
  return outcome(rate, admitted, ahead);
}

const DECIDE_PAIR = `
  select admitted, refused_by as "refusedBy", ahead, ceiling_ahead as "ceilingAhead"
  from rate_limit_take_pair($1::uuid, $2::text, $3::float8, $4::float8, $5::text, $6::float8, $7::float8)`;

const DECIDE_PAIRS = `
  select request, admitted, refused_by as "refusedBy", ahead, ceiling_ahead as "ceilingAhead"
  from rate_limit_take_pairs($1, $2, $3, $4, $5, $6, $7)`;

interface PairRow {
  admitted: boolean;
  refusedBy: "user" | "tenant" | null;
  ahead: number;
  ceilingAhead: number;
}

interface WaitingPair {
  tenantId: string;
  key: string;
  interval: number;
  slack: number;
  ceilingKey: string;
  ceilingInterval: number;
  ceilingSlack: number;
  resolve(row: PairRow): void;
  reject(error: unknown): void;
}

const pairQueues = new WeakMap<Db, { running: number; waiting: WaitingPair[] }>();

/**
 * Like `pump` and `takeBatch` for single buckets: at most IN_FLIGHT statements, each for what has
 * queued (up to MAX_BATCH); a bucket asked for under another rate than the batch already holds
 * it under waits for the next statement.
 */
function pumpPairs(db: Db, queue: { running: number; waiting: WaitingPair[] }): void {
  while (queue.running < IN_FLIGHT && queue.waiting.length > 0) {
    const rates = new Map<string, string>();
    const batch: WaitingPair[] = [];
    const later: WaitingPair[] = [];
    for (const w of queue.waiting) {
      const rate = `${w.interval}/${w.slack}/${w.ceilingInterval}/${w.ceilingSlack}`;
      const own = `${w.tenantId}\u0000${w.key}`;
      const shared = `${w.tenantId}\u0000${w.ceilingKey}`;
      const clash = (rates.has(own) && rates.get(own) !== rate) || (rates.has(shared) && rates.get(shared) !== rate);
      if (batch.length === MAX_BATCH || clash) {
        later.push(w);
        continue;
      }
      rates.set(own, rate);
      rates.set(shared, rate);
      batch.push(w);
    }
    queue.waiting = later;
    queue.running++;
    runPairs(db, batch).finally(() => {
      queue.running--;
      pumpPairs(db, queue);
    });
  }
}

async function runPairs(db: Db, batch: WaitingPair[]): Promise<void> {
  try {
    const only = batch.length === 1 ? batch[0] : undefined;
    if (only) {
      const [row] = await db.query<PairRow>({
        name: "rate_limit_decide_pair",
        text: DECIDE_PAIR,
        params: [
          only.tenantId,
          only.key,
          only.interval,
          only.slack,
          only.ceilingKey,
          only.ceilingInterval,
          only.ceilingSlack,
        ],
      });
      if (!row) throw new Error("rate limit decision returned no row");
      only.resolve(row);
      return;
    }
    const column = <T>(f: (w: WaitingPair) => T) => batch.map(f);
    const rows = await db.query<PairRow & { request: number }>({
      name: "rate_limit_take_pairs",
      text: DECIDE_PAIRS,
      params: [
        column((w) => w.tenantId),
        column((w) => w.key),
        column((w) => w.interval),
        column((w) => w.slack),
        column((w) => w.ceilingKey),
        column((w) => w.ceilingInterval),
        column((w) => w.ceilingSlack),
      ],
    });
    if (rows.length !== batch.length) throw new Error("rate limit decision returned no row for a request");
    for (const row of rows) batch[row.request - 1]?.resolve(row);
  } catch (error) {
    for (const w of batch) w.reject(error);
  }
}

/**
 * Counts one request against two buckets at once, both of which must have room: the caller's
 * own and the tenant's ceiling for the class (migrations/0010). A refusal moves neither and
 * creates no bucket for the caller. One statement: a request on its own is one round trip;
 * requests queued behind two running decisions go together, as single buckets do.
 */
export async function decidePair(
  db: Db,
  tenantId: string,
  key: string,
  rate: Rate,
  ceilingBucket: string,
  ceiling: Rate,
): Promise<{ own: Outcome; ceiling: Outcome; refusedBy: "user" | "tenant" | null }> {
  const interval = rate.windowSeconds / rate.limit;
  const ceilingInterval = ceiling.windowSeconds / ceiling.limit;
  let queue = pairQueues.get(db);
  if (!queue) {
    queue = { running: 0, waiting: [] };
    pairQueues.set(db, queue);
  }
  const q = queue;
  const row = await new Promise<PairRow>((resolve, reject) => {
    q.waiting.push({
      tenantId,
      key,
      interval,
      slack: rate.windowSeconds - interval,
      ceilingKey: ceilingBucket,
      ceilingInterval,
      ceilingSlack: ceiling.windowSeconds - ceilingInterval,
      resolve,
      reject,
    });
    pumpPairs(db, q);
  });
  return {
    own: outcome(rate, row.refusedBy !== "user" && row.admitted, row.ahead),
    ceiling: outcome(ceiling, row.refusedBy !== "tenant" && row.admitted, row.ceilingAhead),
    refusedBy: row.admitted ? null : row.refusedBy,
  };
}

/**
 * Counts one request against the caller's budget for a route class and against the tenant's
 * ceiling for it; resolves with the `RateLimit-Policy`/`RateLimit` headers of the nearer of the
 * two (`"default"` the caller's own, `"tenant"` the ceiling), or throws 429 `ratelimit.exceeded`
 * (with the refusing policy's headers and `Retry-After`). When the store is unreachable,
 * `RATE_LIMIT_FAIL_MODE` decides: `closed` throws 503 `ratelimit.unavailable`, `open` admits
 * without headers and logs. Requests through core/gate get the same decision inside their
 * key's statement (migrations/0014) and the same answers from `verdict`.
 */
export async function enforce(db: Db, caller: Caller, rateClass: RateClass): Promise<Record<string, string>> {
  const rate = policyFor(caller, rateClass);
  const ceiling = ceilingFor(caller, rateClass);
  if (rate.limit === 0 || ceiling.limit === 0) throw closed(rateClass, rate, ceiling);
  const result = await decidePair(
    db,
    caller.tenantId,
    bucketKey(caller, rateClass),
    rate,
    ceilingKey(rateClass),
    ceiling,
  ).catch((error: unknown) => storeDown(error, caller, rateClass));
  if (!result) return {};
  return verdict(rateClass, rate, ceiling, result);
}

/**
 * Gives back the request a decision counted for `rateClass` (`enforce`, or the gate's statement) when the request was
 * then refused for a reason of its own: an ingest past its tenant's concurrency (`ingest.busy`, Retry-After 1 s), which
 * a client following Retry-After would otherwise pay for with its whole budget. Each bucket's TAT moves back one
 * interval, never before now (no credit is banked). Best effort: a failure leaves the count, and is logged.
 */
export async function refund(db: Db, caller: Caller, rateClass: RateClass): Promise<void> {
  const rate = policyFor(caller, rateClass);
  const ceiling = ceilingFor(caller, rateClass);
  if (rate.limit === 0 || ceiling.limit === 0) return;
  const back = (table: "rate_limits" | "rate_ceilings", key: string, r: Rate) => sql`
    update ${sql.raw(table)} set tat = greatest(clock_timestamp(), tat - make_interval(secs => ${r.windowSeconds / r.limit}))
    where tenant_id = ${caller.tenantId} and key = ${key}`;
  // The ceiling's row first, as every decision locks them (migrations/0022): the other order deadlocked with them.
  await db
    .batch([
      back("rate_ceilings", ceilingKey(rateClass), ceiling),
      back("rate_limits", bucketKey(caller, rateClass), rate),
    ])
    .catch((error: unknown) => log.warn("could not give back a refused request's count", { rateClass, error }));
}

/** Rows of rate_limits for failed authentications: a tenant id no tenant has. */
const NO_TENANT = "00000000-0000-0000-0000-000000000000";

/** Addresses this process has refused, until when (ms): their next attempts are refused without a database read. */
const blocked = new Map<string, number>();

/**
 * Refuses, with 429 `auth.too_many_failures`, a client address that has spent its budget of
 * failed authentications (RATE_LIMIT_AUTH_FAILURES) and is still waiting it out: checked before
 * any key is, so a blocked address cannot keep guessing, and without a round trip.
 */
export function refuseBlockedAddress(address: string): void {
  const until = blocked.get(address);
  if (until === undefined) return;
  const wait = until - Date.now();
  if (wait <= 0) {
    blocked.delete(address);
    return;
  }
  throw tooManyFailures(Math.ceil(wait / 1000));
}

/**
 * Counts a failed authentication against its client address (API Gateway's source IP; the
 * socket's address locally). Past the budget, the failure becomes 429 `auth.too_many_failures`
 * with `Retry-After`, and this process refuses the address outright until then.
 */
export async function countFailedAuth(db: Db, address: string, failure: unknown): Promise<never> {
  const rate = parseRate(config().rateLimit.authFailures);
  if (rate.limit > 0) {
    const result = await decide(db, NO_TENANT, `auth/a:${address}`, rate).catch(() => undefined);
    if (!result || result.admitted) throw failure;
    if (blocked.size > 10_000) blocked.clear();
    blocked.set(address, Date.now() + result.retryAfterSeconds * 1000);
    throw tooManyFailures(result.retryAfterSeconds);
  }
  throw tooManyFailures(rate.windowSeconds);
}

/** Its headers name the policy `"auth"` (AUTH_FAILURE_RATE), as every limited answer names the one that refused it. */
const tooManyFailures = (retryAfterSeconds: number) =>
  new EngramError(
    "rate_limited",
    "auth.too_many_failures",
    `Too many failed authentications from this address; retry in ${retryAfterSeconds} s.`,
    {
      retryAfterSeconds,
      headers: headers("auth", parseRate(config().rateLimit.authFailures), {
        remaining: 0,
        resetSeconds: retryAfterSeconds,
      }),
    },
  );

function storeDown(error: unknown, caller: Caller, rateClass: RateClass): undefined {
  if (!(error instanceof EngramError && error.code === "database.unavailable")) throw error;
  if (config().rateLimit.failMode === "closed") {
    throw new EngramError(
      "unavailable",
      "ratelimit.unavailable",
      "The rate limiter is unavailable; try again shortly.",
      {
        cause: error,
        retryAfterSeconds: error.retryAfterSeconds ?? 1,
      },
    );
  }
  log.warn("rate limiter unavailable; admitting (RATE_LIMIT_FAIL_MODE=open)", {
    tenantId: caller.tenantId,
    rateClass,
    error: error.cause ?? error,
  });
  return undefined;
}

const LIMIT_NAMES: readonly string[] = [...CLASSES, ...CLASSES.map(ceilingName)];

/**
 * Sets a tenant's overrides (`{ chat: "20/min", "tenant.chat": "200/min" }`); `null` removes
 * one, so the default applies again. Every value is checked before anything is written. Returns
 * the overrides now in force.
 */
export async function setLimits(db: Db, tenantName: string, limits: Limits): Promise<Record<string, string>> {
  const set: Record<string, string> = {};
  const unset: string[] = [];
  for (const [rateClass, value] of Object.entries(limits)) {
    if (!LIMIT_NAMES.includes(rateClass)) {
      throw inputError(
        "ratelimit.invalid_class",
        `${JSON.stringify(rateClass)} is not a rate-limit class: expected one of ${LIMIT_NAMES.join(", ")}.`,
        { class: rateClass },
      );
    }
    if (value === null) {
      unset.push(rateClass);
      continue;
    }
    if (value === undefined) continue;
    let count: number;
    try {
      count = parseRate(value).limit;
    } catch (error) {
      throw inputError("ratelimit.invalid_rate", `Invalid ${rateClass} limit: ${(error as Error).message}`, {
        class: rateClass,
        value,
      });
    }
    // Stored as it is read back and shown (`00005/min` is 5/min), its unit as written.
    set[rateClass] = `${count}/${value.trim().split("/")[1]}`;
  }
  const rows = await db.query<{ id: string; rateLimits: Record<string, string> }>(sql`
    update tenants set rate_limits = (rate_limits || ${JSON.stringify(set)}::jsonb) - ${arr(unset)}::text[]
    where name = ${tenantName}
    returning id, rate_limits as "rateLimits"`);
  const row = rows[0];
  if (!row) throw new EngramError("not_found", "tenant.not_found", `No tenant named ${tenantName}.`);
  const clamps = fullUnder({ tenantId: row.id, rateLimits: row.rateLimits }, [...Object.keys(set), ...unset]);
  if (clamps.length) await db.batch(clamps);
  return row.rateLimits;
}

/**
 * A raise holds from when it is made: the tenant's buckets of the classes changed, filled under slower limits (more
 * than a window ahead), count as full under the new ones from now, as the gate would count them at their next
 * request. Counted only then, the first request after a raise from `1/hour` to `1000/min` was refused, however long
 * after the raise it came.
 */
function fullUnder(tenant: Pick<Caller, "tenantId" | "rateLimits">, changed: string[]) {
  const classes = CLASSES.filter((c) => changed.includes(c) || changed.includes(ceilingName(c)));
  return classes.flatMap((rateClass) => {
    const own = policyFor(tenant, rateClass).windowSeconds;
    const ceiling = ceilingFor(tenant, rateClass).windowSeconds;
    return [
      sql`update rate_limits set tat = now() + make_interval(secs => ${own})
          where tenant_id = ${tenant.tenantId} and key like ${`${rateClass}/%`}
            and tat > now() + make_interval(secs => ${own})`,
      sql`update rate_ceilings set tat = now() + make_interval(secs => ${ceiling})
          where tenant_id = ${tenant.tenantId} and key = ${ceilingKey(rateClass)}
            and tat > now() + make_interval(secs => ${ceiling})`,
    ];
  });
}
