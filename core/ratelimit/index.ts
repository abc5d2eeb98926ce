export * as RateLimit from "./index";

import { sql } from "drizzle-orm";
import type { RateClass } from "../api/routes";
import type { Caller } from "../auth";
import { config } from "../config";
import { arr, type Db, type Statement } from "../db";
import { EngramError, inputError } from "../error";
import { log } from "../log";

/**
 * The limiter is GCRA (the generic cell rate algorithm), not a sliding window: a bucket is one
 * timestamp, its theoretical arrival time (TAT), so each decision is arithmetic on one row
 * that one `INSERT ... ON CONFLICT DO UPDATE` can make atomically. It refills smoothly (one
 * request every window/limit seconds, a burst of at most `limit`), has no window edges to
 * burst across, and a bucket whose TAT has passed is the same as no bucket, so cleanup can
 * delete it whenever it likes. A sliding-window counter needs two counters per key and only
 * approximates; a sliding log stores a row per request.
 */

export const CLASSES: readonly RateClass[] = ["chat", "search", "ingest", "default"];

export interface Rate {
  limit: number;
  windowSeconds: number;
}

const UNITS = new Map(Object.entries({ s: 1, sec: 1, second: 1, m: 60, min: 60, minute: 60, h: 3600, hour: 3600 }));
const RATE = /^(\d+)\/([a-z]+)$/;

/** Parses `"20/min"` into `{ limit: 20, windowSeconds: 60 }`; units s/sec/second, m/min/minute, h/hour. */
export function parseRate(value: string): Rate {
  const match = RATE.exec(value.trim());
  const unit = match ? UNITS.get(match[2] as string) : undefined;
  const limit = Number(match?.[1]);
  if (!match || unit === undefined || !Number.isSafeInteger(limit)) {
    throw inputError(
      "ratelimit.invalid_rate",
      `${JSON.stringify(value)} is not a rate: expected a count, "/" and a unit (s, sec, second, m, min, minute, h, hour), like "20/min".`,
      { value },
    );
  }
  return { limit, windowSeconds: unit };
}

/** The rate in force for a caller and class: the tenant's override, else the configured default. */
export function policyFor(caller: Pick<Caller, "tenantId" | "rateLimits">, rateClass: RateClass): Rate {
  const override = caller.rateLimits?.[rateClass];
  if (override !== undefined) {
    try {
      return parseRate(override);
    } catch {
      // setLimits validates; a bad value written around it must not fail every request.
      log.warn("ignoring a malformed rate-limit override", { tenantId: caller.tenantId, rateClass, value: override });
    }
  }
  return parseRate(config().rateLimit.defaults[rateClass]);
}

/** A bucket's state after a decision, in the units of the headers. */
export interface Outcome {
  admitted: boolean;
  /** Requests that would be admitted right now. */
  remaining: number;
  /** Whole seconds until the budget is full again. */
  resetSeconds: number;
  /** Whole seconds (at least 1) until the next request would be admitted; 0 when admitted. */
  retryAfterSeconds: number;
}

// Microsecond timestamps meet float division: never let 18.9999999 requests round down to 18.
const EPSILON = 1e-6;

/**
 * Turns the bucket's TAT (as seconds ahead of the decision) into the header values. After an
 * admission `ahead` is the new TAT; after a refusal it is the unchanged one.
 */
export function outcome(rate: Rate, admitted: boolean, ahead: number): Outcome {
  const interval = rate.windowSeconds / rate.limit;
  const backlog = Math.max(0, ahead);
  if (admitted) {
    return {
      admitted,
      remaining: Math.max(0, Math.min(rate.limit, Math.floor((rate.windowSeconds - backlog) / interval + EPSILON))),
      resetSeconds: Math.ceil(backlog - EPSILON),
      retryAfterSeconds: 0,
    };
  }
  return {
    admitted,
    remaining: 0,
    resetSeconds: Math.max(1, Math.ceil(backlog - EPSILON)),
    retryAfterSeconds: Math.max(1, Math.ceil(backlog + interval - rate.windowSeconds - EPSILON)),
  };
}

/** `RateLimit-Policy` and `RateLimit` in the IETF draft's structured-field form. */
export function headers(name: string, rate: Rate, state: Pick<Outcome, "remaining" | "resetSeconds">) {
  return {
    "ratelimit-policy": `"${name}";q=${rate.limit};w=${rate.windowSeconds}`,
    ratelimit: `"${name}";r=${state.remaining};t=${state.resetSeconds}`,
  };
}

/**
 * The whole decision is one call of the database function `rate_limit_take`
 * (migrations/0003_ratelimit_cache.sql, refusals revised in 0007): one round trip, the
 * database's clock, and a refusal writes nothing. Every admission is the one
 * `INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING`, atomic under the bucket's row
 * lock; a bucket whose committed TAT is already past the slack is refused by a plain read,
 * without queueing for that lock (a TAT only grows, so the refusal stands), which is what
 * keeps a hot key from serialising on its refusals.
 *
 * Named, so `pg` prepares the call once per connection: about 30% less server time a
 * decision than parsing and planning it each time. It stays a function because a refusal's
 * headers need the TAT as committed when it is decided, which only a statement in a fresh
 * snapshot reads (a plain statement keeps its start-time snapshot, stale under a hot key);
 * inside the function that costs no round trip. Plain-SQL shapes that keep this (a
 * data-modifying CTE with a `FOR UPDATE` read, or calling a function only on refusal)
 * measured no faster. No `synchronous_commit = off` either: a transaction that wrote only
 * UNLOGGED tables already commits without waiting for a WAL flush.
 */
const DECIDE = "select admitted, ahead from rate_limit_take($1, $2, $3, $4)";

/** Counts one request against a bucket (`key` within the tenant). Needs `rate.limit >= 1`. */
export async function decide(db: Db, tenantId: string, key: string, rate: Rate): Promise<Outcome> {
  const interval = rate.windowSeconds / rate.limit;
  const statement: Statement = {
    name: "rate_limit_take",
    text: DECIDE,
    params: [tenantId, key, interval, rate.windowSeconds - interval],
  };
  const [row] = await db.query<{ admitted: boolean; ahead: number | null }>(statement);
  // No TAT after a refusal: cleanup removed the bucket in between; a refusal implies at least this.
  return outcome(rate, row?.admitted ?? false, row?.ahead ?? rate.windowSeconds - interval);
}

/** The bucket of a request: per class, per end user when there is one, else per API key. */
export const bucketKey = (caller: Pick<Caller, "userId" | "keyPrefix">, rateClass: RateClass) =>
  `${rateClass}/${caller.userId ? `u:${caller.userId}` : `k:${caller.keyPrefix}`}`;

/**
 * Counts one request against the caller's budget for a route class; resolves with the
 * `RateLimit-Policy`/`RateLimit` headers, or throws 429 `ratelimit.exceeded` (with the same
 * headers and `Retry-After`). When the store is unreachable, `RATE_LIMIT_FAIL_MODE` decides:
 * `closed` throws 503 `ratelimit.unavailable`, `open` admits without headers and logs.
 */
export async function enforce(db: Db, caller: Caller, rateClass: RateClass): Promise<Record<string, string>> {
  const rate = policyFor(caller, rateClass);
  const result =
    rate.limit === 0
      ? { admitted: false, remaining: 0, resetSeconds: rate.windowSeconds, retryAfterSeconds: rate.windowSeconds }
      : await decide(db, caller.tenantId, bucketKey(caller, rateClass), rate).catch((error: unknown) =>
          storeDown(error, caller, rateClass),
        );
  if (!result) return {};
  // One policy applies to a response, so it carries the draft's conventional name, as API.md shows.
  const fields = headers("default", rate, result);
  if (result.admitted) return fields;
  throw new EngramError(
    "rate_limited",
    "ratelimit.exceeded",
    rate.limit === 0
      ? `This tenant's ${rateClass} limit is 0: no ${rateClass} requests are allowed.`
      : `Too many ${rateClass} requests: the limit is ${rate.limit} per ${rate.windowSeconds} s; retry in ${result.retryAfterSeconds} s.`,
    { retryAfterSeconds: result.retryAfterSeconds, headers: fields },
  );
}

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

export type Limits = Partial<Record<RateClass, string | null>>;

/**
 * Sets a tenant's per-class overrides (`{ chat: "20/min" }`); `null` removes one, so the
 * default applies again. Every value is checked before anything is written. Returns the
 * overrides now in force.
 */
export async function setLimits(db: Db, tenantName: string, limits: Limits): Promise<Record<string, string>> {
  const set: Record<string, string> = {};
  const unset: string[] = [];
  for (const [rateClass, value] of Object.entries(limits)) {
    if (!(CLASSES as readonly string[]).includes(rateClass)) {
      throw inputError(
        "ratelimit.invalid_class",
        `${JSON.stringify(rateClass)} is not a rate-limit class: expected one of ${CLASSES.join(", ")}.`,
        { class: rateClass },
      );
    }
    if (value === null) {
      unset.push(rateClass);
      continue;
    }
    if (value === undefined) continue;
    try {
      parseRate(value);
    } catch (error) {
      throw inputError("ratelimit.invalid_rate", `Invalid ${rateClass} limit: ${(error as Error).message}`, {
        class: rateClass,
        value,
      });
    }
    set[rateClass] = value.trim();
  }
  const rows = await db.query<{ rateLimits: Record<string, string> }>(sql`
    update tenants set rate_limits = (rate_limits || ${JSON.stringify(set)}::jsonb) - ${arr(unset)}::text[]
    where name = ${tenantName}
    returning rate_limits as "rateLimits"`);
  const row = rows[0];
  if (!row) throw new EngramError("not_found", "tenant.not_found", `No tenant named ${tenantName}.`);
  return row.rateLimits;
}
