/**
 * Chat model client for OpenAI and OpenAI-compatible chat completion endpoints.
 *
 * Retries follow core/llm/retry.ts (the SDK's own retries are disabled). Streams are
 * retried only before the first token has been yielded; after that a failure is thrown
 * as an UpstreamError. `timeoutMs` bounds each non-streaming attempt; for streams it is
 * the time allowed to the first chunk and between chunks (time spent by the consumer
 * between reads does not count). Aborting `signal` aborts the upstream HTTP request and
 * rejects with the signal's reason.
 */
import type {
  ChatCompletionChunk,
  ChatCompletionCreateParamsBase,
  ChatCompletionMessageParam,
} from "openai/resources/chat/completions";
import { UpstreamError } from "../embedding/openai";
import {
  type AttemptFailure,
  AttemptTimeoutError,
  abortReason,
  classifyUpstreamError,
  createUpstreamClient,
  DEFAULT_RETRY_BASE_MS,
  DEFAULT_RETRY_MAX_DELAY_MS,
  describeUpstreamError,
  planRetry,
  retryAfterSeconds,
  sleep,
  startAttempt,
  withRetry,
} from "./retry";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface ChatUsage {
  promptTokens: number;
  completionTokens: number;
}

export interface ChatCallOptions {
  signal?: AbortSignal;
  maxTokens?: number;
  temperature?: number;
}

export type ChatStreamEvent = { type: "delta"; text: string } | { type: "done"; usage: ChatUsage };

export interface ChatModel {
  readonly model: string;
  complete(messages: ChatMessage[], opts?: ChatCallOptions): Promise<{ content: string; usage: ChatUsage }>;
  /** Streams deltas; retries (bounded, backoff+jitter, Retry-After) only before the first token. */
  stream(messages: ChatMessage[], opts?: ChatCallOptions): AsyncIterable<ChatStreamEvent>;
}

export interface ChatModelOptions {
  apiKey: string;
  /** Defaults to https://api.openai.com/v1. */
  baseURL?: string;
  model: string;
  /** Per-attempt timeout; for streams, max wait for the first/next chunk. Default 60 s. */
  timeoutMs?: number;
  /** Retries after the first attempt. Default 2. */
  maxRetries?: number;
  /** Backoff base in ms (full jitter). Default 500. */
  retryBaseMs?: number;
  /** Cap on a single backoff/Retry-After wait. Default 20 s. */
  retryMaxDelayMs?: number;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_RETRIES = 2;
/** Rough per-message overhead (role, separators) used when estimating prompt tokens. */
const MESSAGE_OVERHEAD_TOKENS = 4;

/** Token estimate (ceil(chars/4)) used when the server reports no usage. */
export function estimatePromptTokens(messages: readonly ChatMessage[]): number {
  return messages.reduce((n, m) => n + Math.ceil(m.content.length / 4) + MESSAGE_OVERHEAD_TOKENS, 0);
}

function estimateCompletionTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/**
 * OpenAI deprecated `max_tokens` for `max_completion_tokens` (and reasoning models reject
 * `max_tokens`), while many compatible servers (Ollama, LM Studio) only know `max_tokens`.
 */
function isOfficialOpenAI(baseURL: string | undefined): boolean {
  if (!baseURL) return true;
  try {
    return new URL(baseURL).hostname === "api.openai.com";
  } catch {
    return false;
  }
}

export function createChatModel(opts: ChatModelOptions): ChatModel {
  const model = opts.model;
  if (!model) throw new TypeError("model is required");
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const policy = {
    maxRetries: opts.maxRetries ?? DEFAULT_MAX_RETRIES,
    baseDelayMs: opts.retryBaseMs ?? DEFAULT_RETRY_BASE_MS,
    maxDelayMs: opts.retryMaxDelayMs ?? DEFAULT_RETRY_MAX_DELAY_MS,
  };
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new RangeError("timeoutMs must be a positive integer");
  if (!Number.isInteger(policy.maxRetries) || policy.maxRetries < 0) {
    throw new RangeError("maxRetries must be a non-negative integer");
  }
  const official = isOfficialOpenAI(opts.baseURL);

  const client = createUpstreamClient({ apiKey: opts.apiKey, baseURL: opts.baseURL, timeoutMs });

  const toError = (err: unknown, failure: AttemptFailure, attempts: number, what: string) =>
    new UpstreamError(
      `chat ${what} to ${model} failed after ${attempts} attempt(s): ${describeUpstreamError(err)}`,
      failure.status,
      retryAfterSeconds(failure),
      { cause: err },
    );

  function params(messages: ChatMessage[], callOpts: ChatCallOptions | undefined): ChatCompletionCreateParamsBase {
    const p: ChatCompletionCreateParamsBase = {
      model,
      messages: messages.map((m): ChatCompletionMessageParam => ({ role: m.role, content: m.content })),
    };
    if (callOpts?.temperature !== undefined) p.temperature = callOpts.temperature;
    if (callOpts?.maxTokens !== undefined) {
      if (official) p.max_completion_tokens = callOpts.maxTokens;
      else p.max_tokens = callOpts.maxTokens;
    }
    return p;
  }

  async function complete(
    messages: ChatMessage[],
    callOpts?: ChatCallOptions,
  ): Promise<{ content: string; usage: ChatUsage }> {
    const body = { ...params(messages, callOpts), stream: false as const };
    const response = await withRetry(
      (signal) => client.chat.completions.create(body, { signal, maxRetries: 0, timeout: timeoutMs }),
      {
        ...policy,
        timeoutMs,
        signal: callOpts?.signal,
        toError: (err, failure, attempts) => toError(err, failure, attempts, "completion"),
      },
    );
    const choice = response?.choices?.[0];
    if (!choice) {
      throw new UpstreamError(`chat completion from ${model} has no choices`, undefined, undefined);
    }
    const content = choice.message?.content ?? "";
    const usage: ChatUsage = response.usage
      ? { promptTokens: response.usage.prompt_tokens, completionTokens: response.usage.completion_tokens }
      : { promptTokens: estimatePromptTokens(messages), completionTokens: estimateCompletionTokens(content) };
    return { content, usage };
  }

  async function* stream(messages: ChatMessage[], callOpts?: ChatCallOptions): AsyncGenerator<ChatStreamEvent> {
    const signal = callOpts?.signal;
    const body = {
      ...params(messages, callOpts),
      stream: true as const,
      stream_options: { include_usage: true },
    };
    for (let retries = 0; ; retries++) {
      signal?.throwIfAborted();
      const attempt = startAttempt(timeoutMs, signal);
      let yielded = false;
      let text = "";
      let usage: ChatUsage | undefined;
      let finished = false;
      let error: unknown;
      try {
        const chunks = await client.chat.completions.create(body, {
          signal: attempt.signal,
          maxRetries: 0,
          timeout: timeoutMs,
        });
        attempt.restartTimer();
        for await (const chunk of chunks as AsyncIterable<ChatCompletionChunk>) {
          attempt.pauseTimer();
          if (chunk.usage) {
            usage = { promptTokens: chunk.usage.prompt_tokens, completionTokens: chunk.usage.completion_tokens };
          }
          const choice = chunk.choices?.[0];
          if (choice?.finish_reason) finished = true;
          const delta = choice?.delta?.content;
          if (delta) {
            text += delta;
            yielded = true;
            yield { type: "delta", text: delta };
          }
          attempt.restartTimer();
        }
        // The SDK ends iteration silently when the request is aborted; tell the cases apart.
        if (attempt.signal.aborted) throw attempt.signal.reason;
        if (!finished) throw new TypeError("stream ended before a finish_reason was received");
        attempt.dispose();
        yield {
          type: "done",
          usage: usage ?? {
            promptTokens: estimatePromptTokens(messages),
            completionTokens: estimateCompletionTokens(text),
          },
        };
        return;
      } catch (err) {
        error = err;
      } finally {
        // Also runs when the consumer stops early (break/return): tears down the upstream request.
        attempt.dispose();
      }
      if (signal?.aborted) throw abortReason(signal);
      if (attempt.timedOut) error = new AttemptTimeoutError(timeoutMs);
      const failure = classifyUpstreamError(error);
      const delay = yielded ? undefined : planRetry(failure, retries, policy);
      if (delay === undefined) {
        if (yielded) {
          throw new UpstreamError(
            `chat stream from ${model} failed after the first token: ${describeUpstreamError(error)}`,
            failure.status,
            retryAfterSeconds(failure),
            { cause: error },
          );
        }
        throw toError(error, failure, retries + 1, "stream");
      }
      await sleep(delay, signal);
    }
  }

  return { model, complete, stream };
}
