/**
 * Chat model client for OpenAI and OpenAI-compatible chat completion endpoints.
 *
 * Retries follow the provider's policy (core/provider; the SDK's own retries are disabled). Streams are
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
import * as Provider from "../provider";
import * as Tokens from "../tokens";

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
  /** Cap on one call's backoff and Retry-After waits, summed. Default 10 s. */
  retryMaxDelayMs?: number;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_RETRIES = 2;
/** Rough per-message overhead (role, separators) used when estimating prompt tokens. */
const MESSAGE_OVERHEAD_TOKENS = 4;

/** The prompt's tokens by the one estimate (core/tokens.ts): budgets the prompt, and is the usage when the server reports none. */
export function estimatePromptTokens(messages: readonly ChatMessage[]): number {
  return messages.reduce((n, m) => n + Tokens.estimate(m.content) + MESSAGE_OVERHEAD_TOKENS, 0);
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
    baseDelayMs: opts.retryBaseMs ?? Provider.DEFAULT_RETRY.baseDelayMs,
    maxDelayMs: opts.retryMaxDelayMs ?? Provider.DEFAULT_RETRY.maxDelayMs,
  };
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new RangeError("timeoutMs must be a positive integer");
  if (!Number.isInteger(policy.maxRetries) || policy.maxRetries < 0) {
    throw new RangeError("maxRetries must be a non-negative integer");
  }
  const official = isOfficialOpenAI(opts.baseURL);

  const client = Provider.client({ apiKey: opts.apiKey, baseURL: opts.baseURL, timeoutMs });

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
    const response = await Provider.call(
      `chat completion to ${model}`,
      (signal) => client.chat.completions.create(body, { signal, maxRetries: 0, timeout: timeoutMs }),
      { ...policy, timeoutMs, signal: callOpts?.signal },
    );
    const choice = response?.choices?.[0];
    if (!choice) {
      throw new Provider.UpstreamError(`chat completion from ${model} has no choices`, undefined, undefined);
    }
    const content = choice.message?.content ?? "";
    const usage: ChatUsage = response.usage
      ? { promptTokens: response.usage.prompt_tokens, completionTokens: response.usage.completion_tokens }
      : { promptTokens: estimatePromptTokens(messages), completionTokens: Tokens.estimate(content) };
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
      const attempt = Provider.startAttempt(timeoutMs, signal);
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
            completionTokens: Tokens.estimate(text),
          },
        };
        return;
      } catch (err) {
        error = err;
      } finally {
        // Also runs when the consumer stops early (break/return): tears down the upstream request.
        attempt.dispose();
      }
      if (signal?.aborted) throw Provider.abortReason(signal);
      if (attempt.timedOut) error = new Provider.AttemptTimeoutError(timeoutMs);
      const failure = Provider.classifyUpstreamError(error);
      const delay = yielded ? undefined : Provider.planRetry(failure, retries, policy);
      if (delay === undefined) {
        const what = yielded
          ? `chat stream from ${model} failed after the first token`
          : `chat stream to ${model} failed after ${retries + 1} attempt(s)`;
        throw new Provider.UpstreamError(
          `${what}: ${Provider.describeUpstreamError(error)}`,
          failure.status,
          Provider.retryAfterSeconds(failure),
          { cause: error },
        );
      }
      await Provider.sleep(delay, signal);
    }
  }

  return { model, complete, stream };
}
