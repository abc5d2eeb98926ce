/**
 * The limiter's policy, with no database: which rate applies to a caller and class, whose bucket a request
 * counts against, and what a decision means in headers and errors. The store that decides (core/ratelimit)
 * builds on it.
 */
import type { Caller } from "../auth";
import { config } from "../config";
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

/** The classes a route can be limited under (core/api/routes.ts gives each route its own). */
export const CLASSES = ["chat", "search", "ingest", "default"] as const;
export type RateClass = (typeof CLASSES)[number];

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

/** A tenant's override key for its ceiling of a class in `tenants.rate_limits` (`"tenant.chat"`). */
export const ceilingName = (rateClass: RateClass) => `tenant.${rateClass}` as const;

const perSecond = (rate: Rate) => rate.limit / rate.windowSeconds;

/**
 * The tenant-wide ceiling for a class: the tenant's override, as set; else the configured default, lifted to one end
 * user's own rate when below it (a tenant that raised its users' rate would otherwise find them held to a ceiling it
 * never chose). An override below the users' rate is the tenant's choice and holds: one user alone can reach it.
 */
export function ceilingFor(caller: Pick<Caller, "tenantId" | "rateLimits">, rateClass: RateClass): Rate {
  const own = policyFor(caller, rateClass);
  const override = caller.rateLimits?.[ceilingName(rateClass)];
  let ceiling: Rate | undefined;
  if (override !== undefined) {
    try {
      ceiling = parseRate(override);
    } catch {
      log.warn("ignoring a malformed rate-limit ceiling", { tenantId: caller.tenantId, rateClass, value: override });
    }
  }
  if (ceiling) return ceiling;
  const byDefault = parseRate(config().rateLimit.ceilings[rateClass]);
  return perSecond(byDefault) < perSecond(own) ? own : byDefault;
}

/** A bucket's state after a decision, in the units of the headers. */
export interface Outcome {
  admitted: boolean;
  /** Requests that would be admitted right now. */
  remaining: number;
  /**
   * The `RateLimit` header's `t`: whole seconds until the budget is full again; on a refusal, until the next request
   * fits, which is `retryAfterSeconds` (the draft: Retry-After is no earlier than the reset), so the two never differ.
   */
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
  // A refused caller's next quota comes when one request fits, not when the budget is full: one wait, in both headers.
  const wait = Math.max(1, Math.ceil(backlog + interval - rate.windowSeconds - EPSILON));
  return { admitted, remaining: 0, resetSeconds: wait, retryAfterSeconds: wait };
}

/**
 * `RateLimit-Policy` and `RateLimit` in the IETF draft's structured-field form, named after the policy: the route
 * class (`"chat"`) for the caller's own bucket, `"tenant.chat"` for the tenant's ceiling (as `Limits` names it).
 */
export function headers(name: string, rate: Rate, state: Pick<Outcome, "remaining" | "resetSeconds">) {
  return {
    "ratelimit-policy": `"${name}";q=${rate.limit};w=${rate.windowSeconds}`,
    ratelimit: `"${name}";r=${state.remaining};t=${state.resetSeconds}`,
  };
}

/** The bucket of a request: per class, per end user when there is one, else per API key; keyless requests per address. */
export const bucketKey = (caller: Pick<Caller, "userId" | "keyPrefix" | "clientAddress">, rateClass: RateClass) =>
  `${rateClass}/${
    caller.clientAddress !== undefined
      ? `a:${caller.clientAddress}`
      : caller.userId
        ? `u:${caller.userId}`
        : `k:${caller.keyPrefix}`
  }`;

/** The tenant-wide bucket of a class, which every end user of the tenant shares. */
export const ceilingKey = (rateClass: RateClass) => `${rateClass}/tenant`;

/** The name the headers give a policy: the class for the caller's own rate, `tenant.<class>` for the ceiling. */
const policyName = (rateClass: RateClass, tenant: boolean) => (tenant ? `tenant.${rateClass}` : rateClass);

/**
 * A class's requests in a refusal's words: `default` is no kind a user knows ("Too many default requests"), only the
 * routes that are not search, chat or ingest.
 */
const requestsOf = (rateClass: RateClass) => (rateClass === "default" ? "requests" : `${rateClass} requests`);

/** 429 for a class whose limit (the caller's own or the tenant's ceiling) is 0. */
export function closed(rateClass: RateClass, rate: Rate, ceiling: Rate): EngramError {
  const shut = rate.limit === 0 ? rate : ceiling;
  return new EngramError(
    "rate_limited",
    "ratelimit.exceeded",
    rateClass === "default"
      ? "This tenant's default limit is 0: no requests other than search, chat and ingest are allowed."
      : `This tenant's ${rateClass} limit is 0: no ${rateClass} requests are allowed.`,
    {
      retryAfterSeconds: shut.windowSeconds,
      headers: headers(policyName(rateClass, rate.limit !== 0), shut, {
        remaining: 0,
        resetSeconds: shut.windowSeconds,
      }),
    },
  );
}

/** A decision's headers when it admitted, else its 429 (the refusing policy's headers and Retry-After). */
export function verdict(
  rateClass: RateClass,
  rate: Rate,
  ceiling: Rate,
  result: { own: Outcome; ceiling: Outcome; refusedBy: "user" | "tenant" | null },
): Record<string, string> {
  // The headers describe the policy nearer to refusing; of a refusal, the one with the longer wait: the decision names
  // the caller's own limit when both are full, and its wait alone, if shorter, would send the retry to the ceiling.
  const tenantBinds =
    result.refusedBy === null
      ? result.ceiling.remaining < result.own.remaining
      : result.refusedBy === "tenant" || result.ceiling.retryAfterSeconds > result.own.retryAfterSeconds;
  const [name, binding, state] = tenantBinds
    ? ([policyName(rateClass, true), ceiling, result.ceiling] as const)
    : ([policyName(rateClass, false), rate, result.own] as const);
  const fields = headers(name, binding, state);
  if (result.refusedBy === null) return fields;
  throw new EngramError(
    "rate_limited",
    "ratelimit.exceeded",
    tenantBinds
      ? `Too many ${requestsOf(rateClass)} for this tenant: its ceiling, shared by all its users, is ${ceiling.limit} per ${ceiling.windowSeconds} s; retry in ${state.retryAfterSeconds} s.`
      : `Too many ${requestsOf(rateClass)}: the limit is ${rate.limit} per ${rate.windowSeconds} s; retry in ${state.retryAfterSeconds} s.`,
    { retryAfterSeconds: state.retryAfterSeconds, headers: fields },
  );
}

/**
 * Whether an answer did no work and asks for a retry in a moment (`database.busy`: no connection was free, or Postgres
 * rolled the request back; nothing was written), so the request costs no token: a client following Retry-After
 * through a busy second had spent its whole budget on 503s, then met 429 for the rest of the window.
 */
export const costsNothing = (error: unknown): boolean => error instanceof EngramError && error.code === "database.busy";

/**
 * Whether an answer's count is given back (`refund`): `costsNothing`, or an ingest refused for its tenant's ingests in
 * flight (`ingest.busy`, core/admission). The `RateLimit` field made when it was counted would say a request spent that
 * was not, and a reset other than the answer's Retry-After: such an answer carries `RateLimit-Policy` alone.
 */
export const givenBack = (error: unknown): boolean =>
  costsNothing(error) || (error instanceof EngramError && error.code === "ingest.busy");

/** Per-class overrides: `chat` is each end user's rate, `tenant.chat` the tenant's ceiling. */
export type Limits = Partial<Record<RateClass | `tenant.${RateClass}`, string | null>>;
