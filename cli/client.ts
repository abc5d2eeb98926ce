/**
 * How CLI commands reach Engram: through a running local server's HTTP API when one owns the
 * embedded data folder (PGlite is single-process), otherwise in-process on the database.
 */
import { createClient, type EngramClient } from "../client";
import type { Caller } from "../core/auth";
import { config } from "../core/config";
import type { Db } from "../core/db";
import { EngramError } from "../core/error";
import * as Tenant from "../core/tenant";
import { LOCAL_TENANT, openLocalDb, runningServer, storedLocalKey } from "./local";

export interface Target {
  tenant: string;
  user?: string;
  /** An API key for talking to a running server (default: the local tenant's kept key). */
  key?: string;
}

export type Client = { kind: "http"; url: string; api: EngramClient } | { kind: "local"; db: Db; caller: Caller };

/** How often one call waits out a 429 before giving up (the server names the wait in Retry-After). */
const RATE_LIMIT_RETRIES = 20;

/**
 * The typed client (engram/client) for a running server. A 429 (the server's rate limit: nothing
 * was done) is waited out as its Retry-After says and sent again, so a folder bigger than a
 * minute's ingest allowance arrives whole, slower; `onWait` hears each wait.
 */
export function remote(
  url: string,
  options: { apiKey?: string; userId?: string; onWait?: (seconds: number) => void } = {},
): EngramClient {
  return createClient({
    baseUrl: url,
    apiKey: options.apiKey,
    userId: options.userId,
    retry: { retries: RATE_LIMIT_RETRIES, maxWaitSeconds: Number.POSITIVE_INFINITY, onWait: options.onWait },
  });
}

/**
 * `create: false` for commands that only read: a mistyped `--tenant` is then refused (`tenant.not_found`)
 * instead of creating an empty tenant and answering from it. The `local` tenant is always made.
 */
export async function connect(
  target: Target,
  options: { onWait?: (seconds: number) => void; create?: boolean } = {},
): Promise<Client> {
  const { onWait, create = true } = options;
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
    return { kind: "http", url: server.url, api: remote(server.url, { apiKey: key, userId: target.user, onWait }) };
  }
  const db = await openLocalDb();
  const tenant =
    create || target.tenant === LOCAL_TENANT
      ? await Tenant.ensure(db, target.tenant)
      : await Tenant.get(db, target.tenant).catch(async (error) => {
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
