/**
 * The console's only way to data: Engram's HTTP API on the page's own origin, through the typed
 * client (engram/client). Every response is reported to listeners (status strip: rate-limit
 * headers, request ids); a request that cannot reach the server reports the server lost.
 */
import { createClient, EngramApiError } from "../../client";
import type { Health } from "../../client/types";

export { EngramApiError as ApiError };

type ApiError = EngramApiError;

export interface ResponseInfo {
  method: string;
  path: string;
  status: number;
  requestId: string | null;
  rateLimit: string | null;
  rateLimitPolicy: string | null;
  at: Date;
}

export interface Credentials {
  key: string | null;
  userId: string | null;
}

const responseListeners = new Set<(info: ResponseInfo) => void>();
const reachListeners = new Set<(reachable: boolean) => void>();

export const onResponse = (fn: (info: ResponseInfo) => void) => void responseListeners.add(fn);
/** `false` when a request could not reach the server, `true` when one did again. */
export const onReachability = (fn: (reachable: boolean) => void) => void reachListeners.add(fn);

let reachable = true;
function setReachable(value: boolean) {
  if (value === reachable) return;
  reachable = value;
  for (const fn of reachListeners) fn(value);
}
export const isReachable = () => reachable;

export const credentials: Credentials = { key: null, userId: null };

/** fetch, observed: reachability and every response's status and rate-limit headers. */
async function observed(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  const headers = new Headers(init?.headers);
  if (!headers.get("authorization")) {
    throw new EngramApiError(401, "auth.missing_key", "No API key: enter one at the top of the page.");
  }
  let response: Response;
  try {
    response = await fetch(input, { ...init, cache: "no-store" });
  } catch (error) {
    if ((error as Error).name === "AbortError") throw error;
    setReachable(false);
    throw new EngramApiError(0, "network.unreachable", "Cannot reach the Engram server.");
  }
  setReachable(true);
  const url = new URL(String(input instanceof Request ? input.url : input), location.href);
  const info: ResponseInfo = {
    method: init?.method ?? "GET",
    path: url.pathname,
    status: response.status,
    requestId: response.headers.get("x-request-id"),
    rateLimit: response.headers.get("ratelimit"),
    rateLimitPolicy: response.headers.get("ratelimit-policy"),
    at: new Date(),
  };
  for (const fn of responseListeners) fn(info);
  return response;
}

/** The typed client every view calls; the key and end user are read from `credentials` on each request. */
export const engram = createClient({
  baseUrl: "",
  apiKey: () => credentials.key,
  userId: () => credentials.userId,
  fetch: observed,
});

/** Throws unless `key` opens this server: one cheap authenticated request (GET /v1/stats) before the key is used. */
export async function checkKey(key: string): Promise<void> {
  await createClient({ baseUrl: "", apiKey: key, userId: () => credentials.userId, fetch: observed }).stats();
}

/** The health report; a 503 (database unreachable) still carries one. */
export async function health(signal?: AbortSignal): Promise<Health> {
  try {
    const response = await fetch("/v1/health", { cache: "no-store", signal });
    setReachable(true);
    return (await response.json()) as Health;
  } catch (error) {
    if ((error as Error).name === "AbortError") throw error;
    setReachable(false);
    throw new EngramApiError(0, "network.unreachable", "Cannot reach the Engram server.");
  }
}

/** What the local server hands a page opened on the same machine. */
export async function localConfig(): Promise<{ key: string | null }> {
  try {
    const response = await fetch("/console/config.json", { cache: "no-store" });
    return response.ok ? ((await response.json()) as { key: string | null }) : { key: null };
  } catch {
    return { key: null };
  }
}

export const describeError = (error: unknown): ApiError =>
  error instanceof EngramApiError
    ? error
    : new EngramApiError(0, "console.error", error instanceof Error ? error.message : String(error));
