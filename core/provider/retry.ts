/**
 * The retry policy of every call to the model provider (embeddings and chat). The `openai` SDK's
 * own retries are disabled (maxRetries: 0, core/provider/index.ts) so that every call follows it:
 *
 * - bounded retries (`maxRetries` retries after the first attempt);
 * - exponential backoff with full jitter: wait = random(0, min(maxDelayMs, baseDelayMs * 2^n));
 * - an upstream `retry-after-ms` / `Retry-After` (delta-seconds or HTTP date) replaces the
 *   computed backoff; if it (or the waits before it, summed) asks for more than `maxDelayMs` we
 *   do not wait at all and give up at once, so the caller can surface `retryAfterSeconds` to its
 *   own client instead of holding a serverless invocation open (two 20 s Retry-Afters had run a
 *   search into its own 30 s deadline, a 503 `request.timeout` with the wrong Retry-After);
 * - a per-attempt timeout (covering the whole attempt, body included);
 * - the caller's AbortSignal aborts the in-flight request and any backoff sleep, and is
 *   rethrown as the signal's reason (never retried, never wrapped).
 *
 * This module deliberately does not know the project's error type: callers pass
 * `toError` to build the error thrown when retries are exhausted.
 */
import { APIConnectionError, APIError, APIUserAbortError } from "openai";

export interface RetryPolicy {
  /** Retries after the first attempt (0 = single attempt). */
  maxRetries: number;
  /** Backoff base: the n-th retry waits random(0, min(maxDelayMs, baseDelayMs * 2^n)). */
  baseDelayMs: number;
  /** Cap on the waits of one call, summed. An upstream Retry-After past it makes us give up immediately. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY_BASE_MS = 500;
/** Within a search function's 15 s (infra/functions.ts), beside the attempts themselves. */
export const DEFAULT_RETRY_MAX_DELAY_MS = 10_000;
/** The longest Retry-After passed on to a client: an HTTP date years ahead is no instruction to wait years. */
const MAX_RETRY_AFTER_MS = 3_600_000;

/** What the retry loop needs to know about a failed attempt. */
export interface AttemptFailure {
  retryable: boolean;
  /** HTTP status of the upstream response, when there was one. */
  status: number | undefined;
  /** Wait requested by the upstream (retry-after-ms / Retry-After), in milliseconds. */
  retryAfterMs: number | undefined;
}

/** Thrown (internally) when one attempt exceeded its time budget. Retryable. */
export class AttemptTimeoutError extends Error {
  constructor(public readonly timeoutMs: number) {
    super(`upstream request timed out after ${timeoutMs} ms`);
    this.name = "AttemptTimeoutError";
  }
}

/**
 * Parses `retry-after-ms` (milliseconds, non-standard, sent by OpenAI) or `Retry-After`
 * (delta-seconds or an HTTP date). Returns milliseconds (>= 0) or undefined.
 */
export function parseRetryAfterMs(
  headers: Pick<Headers, "get"> | null | undefined,
  now: number = Date.now(),
): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get("retry-after-ms");
  if (ms != null && ms.trim() !== "") {
    const n = Number(ms.trim());
    if (Number.isFinite(n) && n >= 0) return n;
  }
  const ra = headers.get("retry-after");
  if (ra == null || ra.trim() === "") return undefined;
  const trimmed = ra.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** Full-jitter exponential backoff for the `retryIndex`-th retry (0-based). */
export function backoffDelayMs(
  retryIndex: number,
  baseDelayMs: number,
  maxDelayMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** Math.min(retryIndex, 30));
  return Math.floor(random() * ceiling);
}

/**
 * Decides the wait before the next attempt, or `undefined` to give up
 * (not retryable, retries exhausted, or Retry-After beyond the cap).
 */
export function planRetry(
  failure: AttemptFailure,
  retriesDone: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number | undefined {
  if (!failure.retryable || retriesDone >= policy.maxRetries) return undefined;
  if (failure.retryAfterMs !== undefined) {
    return failure.retryAfterMs > policy.maxDelayMs ? undefined : failure.retryAfterMs;
  }
  return backoffDelayMs(retriesDone, policy.baseDelayMs, policy.maxDelayMs, random);
}

/** Sleeps `ms`, rejecting with the signal's reason if it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}

const NETWORK_ERROR_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
  "ENOTFOUND",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

/** Classifies an error thrown by the openai SDK (or by fetch/JSON parsing underneath it). */
export function classifyUpstreamError(err: unknown): AttemptFailure {
  if (err instanceof AttemptTimeoutError) {
    return { retryable: true, status: undefined, retryAfterMs: undefined };
  }
  if (err instanceof APIUserAbortError) {
    return { retryable: false, status: undefined, retryAfterMs: undefined };
  }
  if (err instanceof APIConnectionError) {
    return { retryable: true, status: undefined, retryAfterMs: undefined };
  }
  if (err instanceof APIError) {
    const status = typeof err.status === "number" ? err.status : undefined;
    const headers = err.headers instanceof Headers ? err.headers : undefined;
    const retryAfterMs = parseRetryAfterMs(headers);
    const hint = headers?.get("x-should-retry");
    let retryable: boolean;
    if (hint === "true") retryable = true;
    else if (hint === "false") retryable = false;
    // status undefined: an error event inside an SSE stream (server-side failure).
    else retryable = status === undefined || status === 408 || status === 409 || status === 429 || status >= 500;
    return { retryable, status, retryAfterMs };
  }
  // A 200 whose body is not valid JSON (truncated/proxied response).
  if (err instanceof SyntaxError) {
    return { retryable: true, status: undefined, retryAfterMs: undefined };
  }
  // undici surfaces socket failures while reading a body as TypeError("terminated"), etc.
  if (err instanceof TypeError) {
    return { retryable: true, status: undefined, retryAfterMs: undefined };
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && NETWORK_ERROR_CODES.has(code)) {
    return { retryable: true, status: undefined, retryAfterMs: undefined };
  }
  return { retryable: false, status: undefined, retryAfterMs: undefined };
}

/**
 * The signal and timer of one attempt: aborts when the caller's signal aborts or when
 * the timer fires. The timer can be paused/restarted (used for stream idle timeouts).
 */
export interface Attempt {
  readonly signal: AbortSignal;
  readonly timedOut: boolean;
  /** (Re)starts the timer with the full timeout. */
  restartTimer(): void;
  pauseTimer(): void;
  /** Aborts the attempt (no-op if already aborted) and detaches from the caller's signal. */
  dispose(): void;
}

export function startAttempt(timeoutMs: number, parent?: AbortSignal): Attempt {
  const controller = new AbortController();
  let timedOut = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const onParentAbort = () => controller.abort(parent ? abortReason(parent) : undefined);
  if (parent?.aborted) onParentAbort();
  else parent?.addEventListener("abort", onParentAbort, { once: true });
  const pauseTimer = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
  const restartTimer = () => {
    pauseTimer();
    if (controller.signal.aborted) return;
    timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new AttemptTimeoutError(timeoutMs));
    }, timeoutMs);
  };
  restartTimer();
  return {
    signal: controller.signal,
    get timedOut() {
      return timedOut;
    },
    restartTimer,
    pauseTimer,
    dispose() {
      pauseTimer();
      parent?.removeEventListener("abort", onParentAbort);
      if (!controller.signal.aborted) controller.abort();
    },
  };
}

export interface WithRetryOptions extends RetryPolicy {
  /** Per-attempt timeout (whole attempt, including reading the body). */
  timeoutMs: number;
  signal?: AbortSignal;
  classify?: (err: unknown) => AttemptFailure;
  /** Builds the error thrown when giving up (not retryable or retries exhausted). */
  toError: (err: unknown, failure: AttemptFailure, attempts: number) => Error;
  random?: () => number;
}

/**
 * Runs `fn` with a per-attempt timeout and bounded retries.
 * `fn` must pass the given signal to the request so timeouts/aborts cancel it.
 */
export async function withRetry<T>(
  fn: (signal: AbortSignal, attempt: number) => Promise<T>,
  opts: WithRetryOptions,
): Promise<T> {
  const classify = opts.classify ?? classifyUpstreamError;
  let waited = 0;
  for (let retries = 0; ; retries++) {
    opts.signal?.throwIfAborted();
    const attempt = startAttempt(opts.timeoutMs, opts.signal);
    let error: unknown;
    try {
      return await fn(attempt.signal, retries + 1);
    } catch (err) {
      error = err;
    } finally {
      attempt.dispose();
    }
    if (opts.signal?.aborted) throw abortReason(opts.signal);
    if (attempt.timedOut) error = new AttemptTimeoutError(opts.timeoutMs);
    const failure = classify(error);
    const delay = planRetry(failure, retries, { ...opts, maxDelayMs: opts.maxDelayMs - waited }, opts.random);
    if (delay === undefined) throw opts.toError(error, failure, retries + 1);
    waited += delay;
    await sleep(delay, opts.signal);
  }
}

/** Retry-After as whole seconds (rounded up), for surfacing to API clients. */
export function retryAfterSeconds(failure: AttemptFailure): number | undefined {
  return failure.retryAfterMs === undefined
    ? undefined
    : Math.ceil(Math.min(failure.retryAfterMs, MAX_RETRY_AFTER_MS) / 1000);
}

/** Short human description of an upstream failure, for error messages. */
export function describeUpstreamError(err: unknown): string {
  if (err instanceof AttemptTimeoutError) return err.message;
  if (err instanceof APIError && typeof err.status === "number") return `HTTP ${err.status}: ${err.message}`;
  if (err instanceof SyntaxError) return `invalid response body (${err.message})`;
  if (err instanceof Error) return err.message;
  return String(err);
}
