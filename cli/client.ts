/**
 * How CLI commands reach Engram: a deployed one's HTTP API when given its URL (ENGRAM_URL); else through
 * a running local server's HTTP API when one owns the embedded data folder (PGlite is single-process),
 * otherwise in-process on the database.
 */
import { createClient, type EngramClient } from "../client";
import type { Caller } from "../core/auth";
import * as Auth from "../core/auth";
import { config } from "../core/config";
import type { Db } from "../core/db";
import { EngramError } from "../core/error";
import * as Tenant from "../core/tenant";
import { LOCAL_TENANT, openLocalDb, runningServer, storedLocalKey } from "./local";

export interface Target {
  tenant: string;
  /** `--tenant` was given (`tenant` is otherwise the default, `local`): a key of another tenant is then refused. */
  tenantGiven?: boolean;
  user?: string;
  /** An API key for talking to a running server (default: the local tenant's kept key). */
  key?: string;
  /** Where `key` came from, as a refusal names it (`--key`, `ENGRAM_API_KEY`); by default both are named with a URL. */
  keyFrom?: string;
  /** A remote Engram (ENGRAM_URL): its API is used with `key`, whose tenant it is. */
  url?: string;
}

/**
 * The Engram a `--url` (ENGRAM_URL) names, for every command that takes one. An empty one (`ENGRAM_URL= engram ...`)
 * is none, as a shell user means it. The API's routes start /v1: a URL copied with it (`https://<api>/v1`) is the
 * Engram's own, or every route was /v1/v1/... ("No route for GET /v1/v1/stats.").
 */
export function engramUrl(given: string | undefined): string | undefined {
  return given?.replace(/\/v1\/*$/, "") || undefined;
}

/**
 * Refuses at start what would make every call fail: a URL that is not http(s), a remote Engram without a key, a
 * key or an end user the API would refuse. Thrown, it is the CLI's one line on stderr and a non-zero exit.
 */
export function checkTarget(
  target: { url?: string; key?: string; keyFrom?: string; user?: string },
  // Where the user may come from, to name it: ENGRAM_USER_ID counts for `engram mcp`, and with a URL.
  userFromEnv = target.url !== undefined,
): void {
  const refuse = (what: string, error: unknown) => {
    const reason = error instanceof EngramError ? error.message : String(error);
    throw new EngramError("input", "cli.invalid_option", `${what} is refused: ${reason}`);
  };
  if (target.url !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(target.url);
    } catch {}
    if (url?.protocol !== "http:" && url?.protocol !== "https:") {
      throw new EngramError("input", "cli.invalid_option", `ENGRAM_URL (--url) is not an http(s) URL: ${target.url}`);
    }
    if (!target.key) {
      throw new EngramError(
        "input",
        "cli.invalid_option",
        "ENGRAM_URL (--url) needs the API key of that Engram: set ENGRAM_API_KEY or pass --key",
      );
    }
  }
  if (target.key) {
    try {
      Auth.keyFrom(`Bearer ${target.key}`);
    } catch (error) {
      // Without a URL only --key is read (ENGRAM_API_KEY counts only with one).
      refuse(target.keyFrom ?? (target.url !== undefined ? "ENGRAM_API_KEY (--key)" : "--key"), error);
    }
  }
  // An empty user is refused, not taken as the shared space: `--user "$ID"` with $ID unset would otherwise store an
  // end user's memories where every user of the tenant reads them. Leaving it out is the shared space.
  if (target.user !== undefined) {
    const name = userFromEnv ? "ENGRAM_USER_ID (--user)" : "--user";
    if (target.user === "") {
      throw new EngramError("input", "cli.invalid_option", `${name} is empty: leave it out for the shared space`);
    }
    try {
      Auth.userIdFrom(target.user);
    } catch (error) {
      refuse(`${name} ${JSON.stringify(target.user)}`, error);
    }
  }
}

/**
 * The tenant a command works in on the database itself: a key's, checked as the server checks it (never silently
 * the `local` tenant's), else the one named (created when `create`, and `local` always).
 */
async function tenantOf(db: Db, target: Target, create: boolean): Promise<{ id: string; name: string }> {
  if (target.key !== undefined) {
    const caller = await Auth.authenticate(db, `Bearer ${target.key}`);
    if ((target.tenantGiven || target.tenant !== LOCAL_TENANT) && target.tenant !== caller.tenantName) {
      throw keyOfAnother(caller.tenantName, target.tenant);
    }
    return { id: caller.tenantId, name: caller.tenantName };
  }
  if (target.tenant === LOCAL_TENANT) return Tenant.ensure(db, LOCAL_TENANT);
  if (!create) return Tenant.get(db, target.tenant);
  return ensureSaid(db, target.tenant);
}

/**
 * The tenant named, created when missing and then said on stderr, as a new database is: a mistyped --tenant would
 * otherwise put files or a key in a tenant nobody reads. A name that differs from a tenant's only in case is named.
 */
export async function ensureSaid(db: Db, name: string): Promise<{ id: string; name: string }> {
  const found = await Tenant.byName(db, name);
  if (found) return found;
  Tenant.checkName(name); // refused in one line, before saying it is new
  const others = await Tenant.sameButCase(db, name);
  const last = others.at(-1);
  const hint =
    last === undefined
      ? ""
      : ` (names are case-sensitive: ${others.length === 1 ? `${last} is another tenant` : `${others.slice(0, -1).join(", ")} and ${last} are other tenants`})`;
  process.stderr.write(`engram: new tenant ${name}${hint}\n`);
  return Tenant.ensure(db, name);
}

const keyOfAnother = (keyTenant: string, named: string) =>
  new EngramError(
    "input",
    "cli.invalid_option",
    `--key is an API key of tenant ${keyTenant}, not ${named}: pass one of the two`,
  );

export type Client = { kind: "http"; url: string; api: EngramClient } | { kind: "local"; db: Db; caller: Caller };

/** How often one call waits out a 429 before giving up (the server names the wait in Retry-After). */
const RATE_LIMIT_RETRIES = 20;
/**
 * The longest wait a command sits out; a longer Retry-After (a limit of a few an hour) is the command's error at once:
 * `engram search` under `--search 1/hour` sat for an hour.
 */
const RATE_LIMIT_MAX_WAIT_SECONDS = 60;

/**
 * The typed client (engram/client) for a running server. A 429 (the server's rate limit: nothing
 * was done) is waited out as its Retry-After says (up to a minute) and sent again, so a folder bigger than a
 * minute's ingest allowance arrives whole, slower; `onWait` hears each wait.
 */
export function remote(
  url: string,
  options: { apiKey?: string; userId?: string; onWait?: (seconds: number) => void; waitOutRateLimits?: boolean } = {},
): EngramClient {
  return createClient({
    baseUrl: url,
    apiKey: options.apiKey,
    userId: options.userId,
    // Not waited out, only a 429 that asks for a second at most (`ingest.busy`, the tenant's ingests in flight), twice.
    retry:
      options.waitOutRateLimits === false
        ? { retries: 2, maxWaitSeconds: 1 }
        : { retries: RATE_LIMIT_RETRIES, maxWaitSeconds: RATE_LIMIT_MAX_WAIT_SECONDS, onWait: options.onWait },
  });
}

/** How long the local server has to answer its health check before a command gives up on it. */
const PROBE_SECONDS = 10;

/**
 * A server that was stopped (SIGSTOP, a debugger) still accepts connections, and a command waited on it for fetch's
 * five minutes: its health is asked first, bounded, and a silence is said in one line naming the process.
 */
async function probe(api: EngramClient, server: { pid: number; url: string }): Promise<void> {
  try {
    await api.health({ signal: AbortSignal.timeout(PROBE_SECONDS * 1000) });
  } catch (error) {
    if ((error as Error).name !== "TimeoutError") return; // any other answer is the command's to meet
    throw new EngramError(
      "conflict",
      "data.in_use",
      `${config().database.dataDir} is held by the local server (${server.url}, pid ${server.pid}), which did not answer within ${PROBE_SECONDS} s: wait for it, or stop it (kill ${server.pid})`,
    );
  }
}

/**
 * `create: false` for commands that only read: a mistyped `--tenant` is then refused (`tenant.not_found`)
 * instead of creating an empty tenant and answering from it. The `local` tenant is always made.
 */
export async function connect(
  target: Target,
  options: { onWait?: (seconds: number) => void; create?: boolean; waitOutRateLimits?: boolean } = {},
): Promise<Client> {
  // A wait the server asks for is said, so a command does not seem to hang (ingest shows it on its progress line).
  const {
    onWait = (seconds: number) => console.error(`engram: rate limited by the server: waiting ${seconds} s`),
    create = true,
    waitOutRateLimits,
  } = options;
  // A key or an end user the API would refuse is refused here too, whichever way the command goes: stored under a
  // user id the API refuses, a memory could never be read through it.
  checkTarget(target);
  if (target.url !== undefined) {
    return {
      kind: "http",
      url: target.url,
      api: remote(target.url, { apiKey: target.key, userId: target.user, onWait, waitOutRateLimits }),
    };
  }
  const server = runningServer();
  if (server) {
    const key = target.key ?? (target.tenant === LOCAL_TENANT ? storedLocalKey() : undefined);
    if (!key) {
      throw new EngramError(
        "conflict",
        "data.in_use",
        `${config().database.dataDir} is in use by the local server (${server.url}); pass --key for tenant ${target.tenant}`,
      );
    }
    const api = remote(server.url, { apiKey: key, userId: target.user, onWait, waitOutRateLimits });
    await probe(api, server);
    // As on the database itself: a key of another tenant than the one named is refused, not silently used.
    if (target.key !== undefined && target.tenantGiven) {
      const { tenant } = await api.stats();
      if (tenant !== target.tenant) throw keyOfAnother(tenant, target.tenant);
    }
    return { kind: "http", url: server.url, api };
  }
  const db = await openLocalDb();
  const tenant = await tenantOf(db, target, create).catch(async (error) => {
    await db.close();
    throw error;
  });
  return {
    kind: "local",
    db,
    caller: {
      tenantId: tenant.id,
      tenantName: tenant.name,
      keyPrefix: "cli",
      userId: target.user ?? "",
      rateLimits: {},
    },
  };
}
