/**
 * Embedder for OpenAI and OpenAI-compatible embedding endpoints (e.g. Ollama's /v1).
 *
 * - Texts are batched into requests bounded by `maxInputsPerRequest` (OpenAI allows 2048)
 *   and `maxTokensPerRequest` (OpenAI allows 300k tokens per request), counted with the
 *   one token estimate (core/tokens.ts); a single text above the token budget goes alone in
 *   its own request (the upstream enforces its per-input limit).
 * - Batches run with bounded concurrency (4); results keep input order. The first
 *   failing batch aborts the others.
 * - Retries are ours (core/provider), not the SDK's.
 * - `dimensions` is only sent to models that accept it (text-embedding-3-*); every
 *   returned vector is checked against the configured dimensions and normalized.
 */
import * as Provider from "../provider";
import * as Tokens from "../tokens";
import type { Embedder, EmbedResult } from "./types";

export interface OpenAIEmbedderOptions {
  apiKey: string;
  /** Defaults to https://api.openai.com/v1. */
  baseURL?: string;
  model: string;
  dimensions: number;
  /** Per-request (per-attempt) timeout. Default 30 s. */
  timeoutMs?: number;
  /** Retries after the first attempt, per batch. Default 3. */
  maxRetries?: number;
  /** Default 2048 (OpenAI's limit). */
  maxInputsPerRequest?: number;
  /** Estimated tokens per request (core/tokens.ts). Default 300_000 (OpenAI's limit). */
  maxTokensPerRequest?: number;
  /** Concurrent requests per embed() call. Default 4. */
  concurrency?: number;
  /** Backoff base in ms (full jitter). Default 500. */
  retryBaseMs?: number;
  /** Cap on one call's backoff and Retry-After waits, summed. Default 10 s. */
  retryMaxDelayMs?: number;
  /**
   * Wire format requested from the server. Default "base64" (4 bytes per value instead of
   * ~20 chars of JSON). Responses in either format are accepted regardless.
   */
  encodingFormat?: "base64" | "float";
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RETRIES = 3;
const DEFAULT_MAX_INPUTS = 2048;
const DEFAULT_MAX_TOKENS = 300_000;
const DEFAULT_CONCURRENCY = 4;

/** Models that accept the `dimensions` parameter (Matryoshka-trained OpenAI models). */
export function supportsDimensionsParam(model: string): boolean {
  return /^text-embedding-3-/.test(model);
}

/** Splits texts into contiguous batches within both limits. Returns [start, end) index pairs. */
export function planBatches(
  texts: readonly string[],
  maxInputs: number,
  maxTokens: number,
): Array<[start: number, end: number]> {
  const batches: Array<[number, number]> = [];
  let start = 0;
  let tokens = 0;
  for (let i = 0; i < texts.length; i++) {
    const t = Tokens.estimate(texts[i] as string);
    const count = i - start;
    if (count > 0 && (count >= maxInputs || tokens + t > maxTokens)) {
      batches.push([start, i]);
      start = i;
      tokens = 0;
    }
    tokens += t;
  }
  if (start < texts.length) batches.push([start, texts.length]);
  return batches;
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  return v;
}

function nonNegativeInt(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer, got ${v}`);
  return v;
}

function decodeEmbedding(raw: unknown): Float32Array {
  if (typeof raw === "string") {
    const bytes = Buffer.from(raw, "base64");
    if (bytes.byteLength % 4 !== 0) throw new Error("base64 embedding is not a whole number of float32 values");
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out = new Float32Array(bytes.byteLength / 4);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
    return out;
  }
  if (Array.isArray(raw)) {
    const out = new Float32Array(raw.length);
    for (let i = 0; i < raw.length; i++) {
      const x = raw[i];
      if (typeof x !== "number") throw new Error("embedding contains a non-number");
      out[i] = x;
    }
    return out;
  }
  throw new Error("embedding is neither a float array nor a base64 string");
}

/** Normalizes in place to unit L2 norm; throws on zero/non-finite vectors. */
function normalize(v: Float32Array): Float32Array {
  let sum = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i] as number;
    sum += x * x;
  }
  const norm = Math.sqrt(sum);
  if (!Number.isFinite(norm) || norm === 0) throw new Error("embedding has zero or non-finite norm");
  if (Math.abs(norm - 1) > 1e-6) for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) / norm;
  return v;
}

interface RawEmbeddingResponse {
  data?: Array<{ index?: number; embedding?: unknown }>;
  usage?: { prompt_tokens?: number; total_tokens?: number };
}

export function createOpenAIEmbedder(opts: OpenAIEmbedderOptions): Embedder {
  const model = opts.model;
  if (!model) throw new TypeError("model is required");
  const dimensions = positiveInt("dimensions", opts.dimensions, 0);
  const timeoutMs = positiveInt("timeoutMs", opts.timeoutMs, DEFAULT_TIMEOUT_MS);
  const maxRetries = nonNegativeInt("maxRetries", opts.maxRetries, DEFAULT_MAX_RETRIES);
  const maxInputs = positiveInt("maxInputsPerRequest", opts.maxInputsPerRequest, DEFAULT_MAX_INPUTS);
  const maxTokens = positiveInt("maxTokensPerRequest", opts.maxTokensPerRequest, DEFAULT_MAX_TOKENS);
  const concurrency = positiveInt("concurrency", opts.concurrency, DEFAULT_CONCURRENCY);
  const baseDelayMs = nonNegativeInt("retryBaseMs", opts.retryBaseMs, Provider.DEFAULT_RETRY.baseDelayMs);
  const maxDelayMs = nonNegativeInt("retryMaxDelayMs", opts.retryMaxDelayMs, Provider.DEFAULT_RETRY.maxDelayMs);
  const encodingFormat = opts.encodingFormat ?? "base64";
  const sendDimensions = supportsDimensionsParam(model);

  const client = Provider.client({ apiKey: opts.apiKey, baseURL: opts.baseURL, timeoutMs });

  const fail = (message: string, cause?: unknown) =>
    new Provider.UpstreamError(`embedding model ${model}: ${message}`, undefined, undefined, { cause });

  async function embedBatch(
    texts: string[],
    signal: AbortSignal,
  ): Promise<{ vectors: Float32Array[]; tokens: number }> {
    const response = await Provider.call(
      `embedding request to ${model}`,
      (attemptSignal) =>
        client.embeddings.create(
          {
            model,
            input: texts,
            encoding_format: encodingFormat,
            ...(sendDimensions ? { dimensions } : {}),
          },
          { signal: attemptSignal, maxRetries: 0, timeout: timeoutMs },
        ) as unknown as Promise<RawEmbeddingResponse>,
      {
        maxRetries,
        baseDelayMs,
        maxDelayMs,
        timeoutMs,
        signal,
      },
    );

    const data = response?.data;
    if (!Array.isArray(data) || data.length !== texts.length) {
      throw fail(`expected ${texts.length} embeddings, got ${Array.isArray(data) ? data.length : "none"}`);
    }
    const vectors: Array<Float32Array | undefined> = new Array(texts.length);
    for (let i = 0; i < data.length; i++) {
      const item = data[i];
      const index = typeof item?.index === "number" ? item.index : i;
      if (!Number.isInteger(index) || index < 0 || index >= texts.length || vectors[index] !== undefined) {
        throw fail(`invalid or duplicate embedding index ${index}`);
      }
      let vector: Float32Array;
      try {
        vector = decodeEmbedding(item?.embedding);
      } catch (err) {
        throw fail((err as Error).message, err);
      }
      if (vector.length !== dimensions) {
        throw fail(
          `returned a ${vector.length}-dimensional vector but ${dimensions} dimensions are configured` +
            (sendDimensions ? "" : ` (model ${model} does not accept the dimensions parameter)`),
        );
      }
      try {
        vectors[index] = normalize(vector);
      } catch (err) {
        throw fail((err as Error).message, err);
      }
    }
    const reported = response.usage?.prompt_tokens ?? response.usage?.total_tokens;
    const tokens =
      typeof reported === "number" && Number.isFinite(reported)
        ? reported
        : texts.reduce((n, t) => n + Tokens.estimate(t), 0);
    return { vectors: vectors as Float32Array[], tokens };
  }

  return {
    provider: "openai",
    model,
    dimensions,
    async embed(texts: string[], embedOpts?: { signal?: AbortSignal }): Promise<EmbedResult> {
      const callerSignal = embedOpts?.signal;
      callerSignal?.throwIfAborted();
      if (texts.length === 0) return { vectors: [], tokens: 0 };
      for (const t of texts) {
        if (typeof t !== "string") throw new TypeError("embed() expects an array of strings");
      }

      const batches = planBatches(texts, maxInputs, maxTokens);
      const results: Float32Array[] = new Array(texts.length);
      let tokens = 0;

      // One controller for the whole call: the first failure cancels sibling batches.
      const controller = new AbortController();
      const onCallerAbort = () => controller.abort(callerSignal?.reason);
      callerSignal?.addEventListener("abort", onCallerAbort, { once: true });
      let next = 0;
      let firstError: unknown;
      const worker = async () => {
        while (firstError === undefined && next < batches.length) {
          const [start, end] = batches[next++] as [number, number];
          try {
            const r = await embedBatch(texts.slice(start, end), controller.signal);
            for (let i = 0; i < r.vectors.length; i++) results[start + i] = r.vectors[i] as Float32Array;
            tokens += r.tokens;
          } catch (err) {
            if (firstError === undefined) {
              firstError = err;
              controller.abort(err);
            }
          }
        }
      };
      try {
        await Promise.all(Array.from({ length: Math.min(concurrency, batches.length) }, worker));
      } finally {
        callerSignal?.removeEventListener("abort", onCallerAbort);
      }
      if (callerSignal?.aborted) throw callerSignal.reason;
      if (firstError !== undefined) throw firstError;
      return { vectors: results, tokens };
    },
  };
}
