export * as RateLimit from "./index";

import type { RateClass } from "../api/routes";
import type { Caller } from "../auth";
import type { Db } from "../db";

/**
 * Counts one request against the caller's budget for a route class; resolves with the
 * `RateLimit-Policy`/`RateLimit` headers, or throws 429 `ratelimit.exceeded`.
 * (Placeholder until the limiter lands: admits everything.)
 */
export async function enforce(_db: Db, _caller: Caller, _rateClass: RateClass): Promise<Record<string, string>> {
  return {};
}
