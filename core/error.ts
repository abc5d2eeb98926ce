/**
 * The one error hierarchy. Core throws `EngramError`s with a `kind` (which maps to an HTTP
 * status in exactly one place, `statusOf`) and a dotted `code` clients can switch on.
 */
export type ErrorKind =
  | "input"
  | "auth"
  | "forbidden"
  | "not_found"
  | "method_not_allowed"
  | "conflict"
  | "too_large"
  | "uri_too_long"
  | "unsupported_media_type"
  | "unprocessable"
  | "rate_limited"
  | "upstream"
  | "unavailable"
  | "internal";

const STATUS: Record<ErrorKind, number> = {
  input: 400,
  auth: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  too_large: 413,
  uri_too_long: 414,
  unsupported_media_type: 415,
  unprocessable: 422,
  rate_limited: 429,
  upstream: 502,
  unavailable: 503,
  internal: 500,
};

export class EngramError extends Error {
  readonly kind: ErrorKind;
  readonly code: string;
  readonly details: unknown;
  /** Seconds the client should wait before retrying (becomes `Retry-After`). */
  readonly retryAfterSeconds: number | undefined;
  /** Extra response headers, e.g. rate-limit state on a 429. */
  readonly headers: Record<string, string> | undefined;

  constructor(
    kind: ErrorKind,
    code: string,
    message: string,
    options: {
      cause?: unknown;
      details?: unknown;
      retryAfterSeconds?: number;
      headers?: Record<string, string>;
    } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "EngramError";
    this.kind = kind;
    this.code = code;
    this.details = options.details;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.headers = options.headers;
  }

  get status(): number {
    return STATUS[this.kind];
  }
}

export const statusOf = (kind: ErrorKind): number => STATUS[kind];

/** The `error` of every error answer, a JSON body's or a stream's `error` event's. */
export interface ErrorBody {
  code: string;
  message: string;
  details?: unknown;
}

/**
 * What a failure tells the client: an EngramError's code, message and details; anything else is
 * `internal`, naming the request so its log line can be found, and never leaks its message. Nor
 * does an EngramError of kind `internal`: its message says what broke inside, for the log.
 */
export function errorBody(error: unknown, requestId?: string): ErrorBody {
  if (!(error instanceof EngramError) || error.kind === "internal") {
    return {
      code: error instanceof EngramError ? error.code : "internal",
      message: `Something went wrong on our side${requestId ? ` (request ${requestId})` : ""}.`,
    };
  }
  const body: ErrorBody = { code: error.code, message: error.message };
  if (error.details !== undefined) body.details = error.details;
  return body;
}

export const inputError = (code: string, message: string, details?: unknown) =>
  new EngramError("input", code, message, { details });
export const unavailable = (code: string, message: string, cause?: unknown, retryAfterSeconds = 1) =>
  new EngramError("unavailable", code, message, { cause, retryAfterSeconds });

/**
 * An embedding or chat model failure (after the client's own retries) as a 502, or a 503 when
 * the upstream was rate limiting us; keeps the upstream's `Retry-After`.
 */
export function upstreamError(error: unknown, what: "embedding" | "chat"): unknown {
  if (error instanceof EngramError) return error;
  if ((error as { name?: string })?.name === "AbortError") return error;
  const e = error as { status?: number; retryAfterSeconds?: number; message?: string };
  const label = what === "embedding" ? "The embedding service" : "The chat model";
  // The upstream refused the request's size (a 413, or OpenAI's 400 for too many tokens): the
  // client's request is too large for it, not our failure and not worth a retry.
  if (
    e?.status === 413 ||
    (e?.status === 400 && /maximum context length|tokens per request|too many tokens|too large/i.test(e.message ?? ""))
  ) {
    return new EngramError(
      "too_large",
      "request.too_large",
      `${label} refused the request as too large: ${e.message ?? "no reason given"}`,
      { cause: error },
    );
  }
  // OpenAI answers an account out of credit with a 429 too: no retry will clear it, and "try again later" had hidden
  // the provider's word for it. By its code only: Azure's ordinary rate limit names a "quotaincrease" page.
  if (e?.status === 429 && (e as { code?: unknown }).code === "insufficient_quota") {
    return new EngramError(
      "upstream",
      `${what}.failed`,
      `${label} refused the request: this deployment's account has no quota left (insufficient_quota); its operator must check the plan and billing.`,
      { cause: error },
    );
  }
  if (e?.status === 429) {
    return new EngramError(
      "unavailable",
      `${what}.rate_limited`,
      `${label} is rate limiting requests; try again later.`,
      {
        cause: error,
        retryAfterSeconds: e.retryAfterSeconds ?? 5,
      },
    );
  }
  // The provider's own words about its credentials name the operator's key ("Incorrect API key provided:
  // sk-***1234"): the client is told what failed, the log (the cause) keeps what the provider said.
  if (e?.status === 401 || e?.status === 403) {
    return new EngramError(
      "upstream",
      `${what}.failed`,
      `${label} refused this deployment's credentials (HTTP ${e.status}); its operator must check the API key.`,
      { cause: error },
    );
  }
  const message = (e?.message ?? "unknown error").replace(/\b(sk-|Bearer\s+)[\w*.-]{6,}/gi, "$1…");
  return new EngramError("upstream", `${what}.failed`, `${label} failed: ${message}`, {
    cause: error,
    retryAfterSeconds: e?.retryAfterSeconds,
  });
}
