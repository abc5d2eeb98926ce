/**
 * The console's only way to data: Engram's HTTP API on the page's own origin. Every response
 * is reported to listeners (status strip: rate-limit headers, request ids); a request that
 * cannot reach the server reports the server lost.
 */
import { readEvents } from "./sse";
import type { ChatEvent, Health } from "./types";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId: string | null = null,
    /** Seconds to wait before retrying (429, some 503s). */
    readonly retryAfter: number | null = null,
    readonly details: unknown = undefined,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

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

type Query = Record<string, string | number | boolean | null | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  signal?: AbortSignal;
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

function url(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
  }
  const search = params.toString();
  return search ? `${path}?${search}` : path;
}

function retryAfterOf(headers: Headers): number | null {
  const value = headers.get("retry-after");
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

async function errorOf(response: Response): Promise<ApiError> {
  const requestId = response.headers.get("x-request-id");
  let code = `http.${response.status}`;
  let message = `The server answered ${response.status} ${response.statusText}.`.replace(" .", ".");
  let details: unknown;
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string; details?: unknown } };
    if (body.error?.code) code = body.error.code;
    if (body.error?.message) message = body.error.message;
    details = body.error?.details;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, message, requestId, retryAfterOf(response.headers), details);
}

/** Sends one request; resolves with the response, or throws `ApiError` for any failure but an abort. */
async function send(method: string, path: string, options: RequestOptions, accept: string): Promise<Response> {
  if (!credentials.key) throw new ApiError(401, "auth.missing_key", "No API key: enter one at the top of the page.");
  const headers: Record<string, string> = { accept, authorization: `Bearer ${credentials.key}` };
  if (credentials.userId) headers["x-user-id"] = credentials.userId;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(url(path, options.query), {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
      cache: "no-store",
    });
  } catch (error) {
    if ((error as Error).name === "AbortError") throw error;
    setReachable(false);
    throw new ApiError(0, "network.unreachable", "Cannot reach the Engram server.");
  }
  setReachable(true);
  const info: ResponseInfo = {
    method,
    path,
    status: response.status,
    requestId: response.headers.get("x-request-id"),
    rateLimit: response.headers.get("ratelimit"),
    rateLimitPolicy: response.headers.get("ratelimit-policy"),
    at: new Date(),
  };
  for (const fn of responseListeners) fn(info);
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const response = await send(method, path, options, "application/json");
  return (await response.json()) as T;
}

export const get = <T>(path: string, query?: Query, signal?: AbortSignal) => request<T>("GET", path, { query, signal });
export const post = <T>(path: string, body: unknown, signal?: AbortSignal) =>
  request<T>("POST", path, { body, signal });

/** The health report; a 503 (database unreachable) still carries one. */
export async function health(signal?: AbortSignal): Promise<Health> {
  try {
    const response = await fetch("/v1/health", { cache: "no-store", signal });
    setReachable(true);
    return (await response.json()) as Health;
  } catch (error) {
    if ((error as Error).name === "AbortError") throw error;
    setReachable(false);
    throw new ApiError(0, "network.unreachable", "Cannot reach the Engram server.");
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

/**
 * `POST /v1/chat` with `stream: true`, as events. EventSource cannot POST, so the body is read
 * with fetch and parsed here.
 */
export async function* chatStream(body: Record<string, unknown>, signal: AbortSignal): AsyncGenerator<ChatEvent> {
  const response = await send("POST", "/v1/chat", { body: { ...body, stream: true }, signal }, "text/event-stream");
  if (!response.body) throw new ApiError(0, "chat.no_body", "The answer arrived without a body.");
  const requestId = response.headers.get("x-request-id");
  for await (const event of readEvents(response.body)) {
    let data: unknown;
    try {
      data = JSON.parse(event.data);
    } catch {
      continue;
    }
    // A failure after the answer started arrives as an event; it belongs to this request.
    if (event.event === "error") data = { ...(data as object), requestId };
    yield { event: event.event, data } as ChatEvent;
  }
}

export const describeError = (error: unknown): ApiError =>
  error instanceof ApiError
    ? error
    : new ApiError(0, "console.error", error instanceof Error ? error.message : String(error));
