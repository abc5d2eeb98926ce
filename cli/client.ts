/**
 * How CLI commands reach Engram: through a running local server's HTTP API when one owns the
 * embedded data folder (PGlite is single-process), otherwise in-process on the database.
 */
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

export type Client =
  | { kind: "http"; url: string; headers: Record<string, string> }
  | { kind: "local"; db: Db; caller: Caller };

export async function connect(target: Target): Promise<Client> {
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
    const headers: Record<string, string> = { authorization: `Bearer ${key}`, "content-type": "application/json" };
    if (target.user) headers["x-user-id"] = target.user;
    return { kind: "http", url: server.url, headers };
  }
  const db = await openLocalDb();
  const tenant = await Tenant.ensure(db, target.tenant);
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

/** How often one call waits out a 429 before giving up (the server names the wait in Retry-After). */
const RATE_LIMIT_RETRIES = 20;

/**
 * Calls the server's API; an error answer becomes one EngramError line. A 429 (the server's rate
 * limit: nothing was done) is waited out as its Retry-After says and sent again, so a folder
 * bigger than a minute's ingest allowance arrives whole, slower; `onWait` hears each wait.
 */
export async function request<T>(
  client: Extract<Client, { kind: "http" }>,
  method: string,
  path: string,
  body?: unknown,
  onWait?: (seconds: number) => void,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${client.url}${path}`, {
      method,
      headers: client.headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    }).catch((error) => {
      throw new EngramError(
        "unavailable",
        "server.unreachable",
        `cannot reach the local server at ${client.url}: ${error.message}`,
      );
    });
    const payload = (await res.json().catch(() => ({}))) as T & { error?: { code: string; message: string } };
    if (res.ok) return payload;
    const retryAfter = Number(res.headers.get("retry-after") ?? Number.NaN);
    if (res.status === 429 && attempt < RATE_LIMIT_RETRIES && Number.isFinite(retryAfter) && retryAfter >= 0) {
      const seconds = Math.max(retryAfter, 0.1);
      onWait?.(seconds);
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      continue;
    }
    throw new EngramError(
      "upstream",
      payload.error?.code ?? "server.error",
      payload.error?.message ?? `HTTP ${res.status}`,
    );
  }
}
