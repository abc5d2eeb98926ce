/**
 * The model provider: OpenAI or an OpenAI-compatible server (Ollama, vLLM, LiteLLM). The one place
 * the SDK client is made, the one error its failures become, and the retry policy every call
 * follows (./retry.ts). Embedding (core/embedding/openai.ts) and chat (core/llm) both call it.
 */
import OpenAI from "openai";
import {
  DEFAULT_RETRY_BASE_MS,
  DEFAULT_RETRY_MAX_DELAY_MS,
  describeUpstreamError,
  type RetryPolicy,
  retryAfterSeconds,
  type WithRetryOptions,
  withRetry,
} from "./retry";

export {
  AttemptTimeoutError,
  abortReason,
  classifyUpstreamError,
  describeUpstreamError,
  planRetry,
  type RetryPolicy,
  retryAfterSeconds,
  sleep,
  startAttempt,
} from "./retry";

export const OPENAI_BASE_URL = "https://api.openai.com/v1";
export const DEFAULT_RETRY = { baseDelayMs: DEFAULT_RETRY_BASE_MS, maxDelayMs: DEFAULT_RETRY_MAX_DELAY_MS };

/** A call to the model provider failed, after any retries. */
export class UpstreamError extends Error {
  constructor(
    message: string,
    public readonly status: number | undefined,
    public readonly retryAfterSeconds: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "UpstreamError";
  }
}

/** The SDK's resources Engram calls. */
export type Client = Pick<OpenAI, "chat" | "embeddings">;

/**
 * An `openai` SDK client with its own retries off and every setting passed explicitly,
 * so the SDK does not fall back to OPENAI_* environment variables (config comes from
 * options only). The SDK timeout is a backstop; the per-attempt timer in ./retry.ts is the real one.
 */
export function client(opts: { apiKey: string; baseURL?: string; timeoutMs: number }): Client {
  return new OpenAI({
    apiKey: opts.apiKey,
    baseURL: opts.baseURL ?? OPENAI_BASE_URL,
    adminAPIKey: null,
    organization: null,
    project: null,
    webhookSecret: null,
    logLevel: "warn",
    maxRetries: 0,
    timeout: opts.timeoutMs,
  });
}

/**
 * Runs one provider request under the retry policy; when it gives up, throws an UpstreamError
 * whose message starts with `what` ("embedding request to text-embedding-3-small").
 */
export function call<T>(
  what: string,
  fn: (signal: AbortSignal) => Promise<T>,
  opts: RetryPolicy & Pick<WithRetryOptions, "timeoutMs" | "signal">,
): Promise<T> {
  return withRetry(fn, {
    ...opts,
    toError: (err, failure, attempts) =>
      new UpstreamError(
        `${what} failed after ${attempts} attempt(s): ${describeUpstreamError(err)}`,
        failure.status,
        retryAfterSeconds(failure),
        { cause: err },
      ),
  });
}
