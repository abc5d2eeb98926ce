export * as Gate from "./index";

import { type SQL, sql } from "drizzle-orm";
import type { Caller } from "../auth";
import * as Auth from "../auth";
import { config } from "../config";
import type { Db, Query, Row, Statement } from "../db";
import { EngramError } from "../error";
import { lru } from "../lru";
import * as RateLimit from "../ratelimit";

/**
 * The request gate: a request's API key and its rate-limit decision in one statement
 * (migrations/0014; made cheaper by 0017 and 0018), and for search and chat the work itself in the same non-interactive batch,
 * so that on Lambda (the Neon HTTP driver) such a request is one round trip to the database.
 * Nothing about a key or a limit is kept in the process: revocation and a tenant's new limits
 * hold from the next request (docs/reliability.md, "Round trips").
 *
 * A gated batch is [check, ...work, commit]. The check verifies the key and reads both buckets
 * without locks; only when both have room does it set the transaction's `engram.tenant`, which
 * the work's statements read as their tenant (`TENANT`), so a request that may not run finds
 * nothing. The exact decision (row locks, database clock) comes last, so its locks are held only
 * until the batch commits right after it, never through the work: a tenant's searches would
 * otherwise queue on its ceiling row for as long as each search runs. A request the exact
 * decision still refuses (its bucket filled between the two statements) answers 429 and its
 * work's rows are dropped unread.
 */

/** What a request presents, before the database has seen it. */
export interface Pass {
  prefix: string;
  hash: string;
  userId: string;
  rateClass: RateLimit.RateClass;
}

interface Pending {
  pass: Pass;
  settled: boolean;
  headers: Record<string, string>;
  /** The 401 the gate answered, when it refused the key. */
  keyRefused?: EngramError;
  /** The gate counted the request (and `refund` has not given it back). */
  counted?: boolean;
}

const pending = new WeakMap<Caller, Pending>();

const unchecked = (field: string): never => {
  throw new EngramError("internal", "internal", `The caller's ${field} was read before its key was checked.`);
};

/**
 * The caller of a request whose key has not been checked yet: its end user and key prefix are
 * known; reading its tenant before the gate has run throws, so no statement can run outside it.
 * Validates the header's form and `X-User-Id` (401 and 400 without a database read).
 */
export function defer(
  authorization: string | undefined,
  userIdHeader: string | undefined,
  rateClass: RateLimit.RateClass,
): Caller {
  const { prefix, hash } = Auth.keyFrom(authorization);
  const pass: Pass = { prefix, hash, userId: Auth.userIdFrom(userIdHeader), rateClass };
  // Accessors in the literal: the same enumerable, configurable getters as defineProperty would add, cheaper.
  const caller: Caller = {
    userId: pass.userId,
    keyPrefix: prefix,
    get tenantId() {
      return unchecked("tenantId");
    },
    get tenantName() {
      return unchecked("tenantName");
    },
    get rateLimits() {
      return unchecked("rateLimits");
    },
  };
  pending.set(caller, { pass, settled: false, headers: {} });
  return caller;
}

/** Classes whose work runs through the gate, in one batch with the key and the limit (search, chat retrieval). */
export const GATED: ReadonlySet<RateLimit.RateClass> = new Set(["search", "chat"]);

/**
 * Sets the class an unchecked caller's request is limited under, for a route that learns it from the
 * request's body (POST /mcp: the tool called), so the key and that class's limit are still one statement.
 */
export function reclass(caller: Caller, rateClass: RateLimit.RateClass): void {
  const state = stateOf(caller);
  if (state.settled) throw new EngramError("internal", "internal", "The gate has already run for this caller.");
  state.pass.rateClass = rateClass;
}

/** The 401 the gate answered for the caller's key, if it refused it (POST /mcp answers it over a tool's error). */
export const keyRefusalOf = (caller: Caller): EngramError | undefined => pending.get(caller)?.keyRefused;

/** Whether the caller came through the gate (checked or not yet). */
export const has = (caller: Caller | undefined): boolean => caller !== undefined && pending.has(caller);

/** Whether the caller's key has not been checked yet: its work must go through `through`. */
export const unsettled = (caller: Caller): boolean => pending.get(caller)?.settled === false;

/** The `RateLimit` headers of the caller's decision (empty until it is made). */
export const headersOf = (caller: Caller): Record<string, string> => pending.get(caller)?.headers ?? {};

/**
 * The tenant of a statement, as SQL: a parameter for a known caller; for an unsettled one, the
 * tenant the gate's check opened the batch for (null, which matches no row, when it did not).
 */
export const tenantOf = (caller: Caller): SQL =>
  unsettled(caller) ? sql`nullif(current_setting('engram.tenant', true), '')::uuid` : sql`${caller.tenantId}`;

/**
 * A name for the caller in process memories (query vectors, scope sizes): its tenant, or its whole key's hash until
 * known (its prefix alone, which `keys list` shows, let anyone with no key probe what a tenant had searched).
 */
export const memoryKeyOf = (caller: Caller): string =>
  unsettled(caller) ? `key:${stateOf(caller).pass.hash}` : caller.tenantId;

/**
 * Hashes of keys this process's gate accepted lately. A paid embedding before the gate has checked a key (one round
 * trip for key, limit and search) is only spent for one of these: any well-formed made-up key had cost the operator
 * an embedding per request. A key revoked since is still refused by the gate, after one embedding.
 */
const accepted = lru<true>(4096);
const ACCEPTED_SECONDS = 600;

/** Whether the caller's key is one this process's gate accepted lately (a settled caller's was just accepted). */
export const vouched = (caller: Caller): boolean =>
  !unsettled(caller) || accepted.get(stateOf(caller).pass.hash) === true;

const GATE = `
  select tenant as "tenantId", tenant_name as "tenantName", limits as "rateLimits",
         own_limit as "ownLimit", own_window as "ownWindow", ceil_limit as "ceilingLimit", ceil_window as "ceilingWindow",
         admitted, refused_by as "refusedBy", ahead, ceiling_ahead as "ceilingAhead"
  from request_gate($1::text, $2::text, $3::text, $4::text, $5::text, $6::float8, $7::float8, $8::float8, $9::float8, $10::text)`;

interface GateRow {
  tenantId: string | null;
  tenantName: string | null;
  rateLimits: Record<string, string> | null;
  ownLimit: number | null;
  ownWindow: number | null;
  ceilingLimit: number | null;
  ceilingWindow: number | null;
  admitted: boolean | null;
  refusedBy: "auth" | "closed" | "user" | "tenant" | null;
  ahead: number | null;
  ceilingAhead: number | null;
}

type Mode = "decide" | "check" | "commit";

/**
 * The gate's statement. Named, so `pg` parses it once per connection; the check's text also
 * carries the work's transaction-local settings (no statement of their own on `pg`).
 */
function statement(pass: Pass, mode: Mode, settings: Record<string, string> = {}): Statement {
  const own = RateLimit.parseRate(config().rateLimit.defaults[pass.rateClass]);
  const ceiling = RateLimit.parseRate(config().rateLimit.ceilings[pass.rateClass]);
  const params: unknown[] = [
    pass.prefix,
    pass.hash,
    pass.rateClass,
    RateLimit.bucketKey({ userId: pass.userId, keyPrefix: pass.prefix }, pass.rateClass),
    RateLimit.ceilingKey(pass.rateClass),
    own.limit,
    own.windowSeconds,
    ceiling.limit,
    ceiling.windowSeconds,
    mode,
  ];
  const names = Object.keys(settings).sort();
  if (!names.length) return { name: `request_gate_${mode}`, text: GATE, params };
  const calls = names.map((_, i) => `set_config($${11 + 2 * i}, $${12 + 2 * i}, true)`);
  for (const name of names) params.push(name, settings[name]);
  return {
    name: `request_gate_${mode}_${names.length}`,
    text: `select g.* from (${GATE}) g, lateral (select ${calls.join(", ")}) s`,
    params,
  };
}

/** Settles the caller from a gate row: its tenant and headers, or the answer that refuses it. */
function settle(caller: Caller, state: Pending, row: GateRow | undefined): void {
  // Decided, either way: a refused request is not decided again (the chain's error path asks).
  state.settled = true;
  if (!row || row.refusedBy === "auth" || !row.tenantId) {
    state.keyRefused = new EngramError("auth", "auth.invalid_key", "The API key is not valid or has been revoked.");
    throw state.keyRefused;
  }
  // The key is good whatever the limit decides: a refused request's caller is its tenant's too, so a decision of its
  // own for a later part of the request (POST /mcp: a batch's next tool call, in its class) can read its limits.
  Object.defineProperties(caller, {
    tenantId: { value: row.tenantId, enumerable: true, writable: true, configurable: true },
    tenantName: { value: row.tenantName, enumerable: true, writable: true, configurable: true },
    rateLimits: { value: row.rateLimits ?? {}, enumerable: true, writable: true, configurable: true },
  });
  const rateClass = state.pass.rateClass;
  const rate = { limit: Number(row.ownLimit), windowSeconds: Number(row.ownWindow) };
  const ceiling = { limit: Number(row.ceilingLimit), windowSeconds: Number(row.ceilingWindow) };
  if (row.refusedBy === "closed") throw RateLimit.closed(rateClass, rate, ceiling);
  const refusedBy = row.admitted ? null : (row.refusedBy as "user" | "tenant");
  const headers = RateLimit.verdict(rateClass, rate, ceiling, {
    own: RateLimit.outcome(rate, refusedBy !== "user" && Boolean(row.admitted), Number(row.ahead)),
    ceiling: RateLimit.outcome(ceiling, refusedBy !== "tenant" && Boolean(row.admitted), Number(row.ceilingAhead)),
    refusedBy,
  });
  state.headers = headers;
  state.counted = true;
  accepted.set(state.pass.hash, true, ACCEPTED_SECONDS);
}

/**
 * Leaves uncounted a request whose answer did no work (`RateLimit.costsNothing`): a caller the gate has not decided is
 * settled with no decision and no round trip (its key unchecked, as nothing read with it; the chain then asks the
 * gate nothing), and a request it counted is given its token back (best effort, as `RateLimit.refund` is).
 */
export async function refund(db: Db, caller: Caller): Promise<void> {
  const state = pending.get(caller);
  if (state && !state.settled) state.settled = true;
  if (!state?.counted) return;
  state.counted = false;
  await RateLimit.refund(db, caller, state.pass.rateClass);
}

function stateOf(caller: Caller): Pending {
  const state = pending.get(caller);
  if (!state) throw new EngramError("internal", "internal", "This caller did not come through the gate.");
  return state;
}

/**
 * Checks the caller's key and counts the request in one statement, for a request whose work
 * follows in statements of its own. Throws 401 `auth.invalid_key` or 429 `ratelimit.exceeded`.
 * `then` are statements for the same batch that run only if the request was admitted (holding the
 * decision's row locks until the batch commits, so only a short one: an ingest's admission);
 * resolves with their rows.
 */
export async function open(db: Db, caller: Caller, then: Query[] = []): Promise<Row[][]> {
  const state = stateOf(caller);
  if (state.settled) throw new EngramError("internal", "internal", "The gate has already run for this caller.");
  const decide = statement(state.pass, "decide");
  const [rows = [], ...after] = then.length ? await db.batch([decide, ...then]) : [await db.query<Row>(decide)];
  settle(caller, state, rows[0] as GateRow | undefined);
  return after;
}

/**
 * Runs `work` gated by the caller's key and limits, in one atomic batch with them (one round trip
 * on the Neon HTTP driver): its statements read their tenant through `tenantOf(caller)`.
 * `settings` are transaction-local settings the work needs. Resolves with the work's rows and
 * leaves the caller settled; throws as `open` does, without the work's rows.
 */
export async function through(
  db: Db,
  caller: Caller,
  work: Query[],
  settings?: Record<string, string>,
): Promise<Row[][]> {
  const state = stateOf(caller);
  if (state.settled) throw new EngramError("internal", "internal", "The gate has already run for this caller.");
  const results = await db.batch([statement(state.pass, "check", settings), ...work, statement(state.pass, "commit")]);
  const check = results[0]?.[0] as GateRow | undefined;
  const commit = results[results.length - 1]?.[0] as GateRow | undefined;
  // The check refused (bad key, full bucket): its row is the answer and the work found nothing.
  if (!check?.admitted) settle(caller, state, check);
  else if (commit?.admitted === null || commit?.admitted === undefined) {
    throw new EngramError("internal", "internal", "The gate's check admitted a request its commit did not decide.");
  } else settle(caller, state, commit);
  return results.slice(1, -1);
}
