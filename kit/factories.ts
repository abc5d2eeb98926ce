/** Small factories for documents, embedders and paragraphs of text. */
import type { Embedder } from "../core/embedding";
import { createOfflineEmbedder } from "../core/embedding/offline";

/**
 * Rate limits (per end user and per tenant) far above anything a suite or benchmark sends, for the ones that measure
 * or test a path rather than the limiter's refusals.
 */
export const UNLIMITED: Record<string, string> = {
  RATE_LIMIT_CHAT: "100000/min",
  RATE_LIMIT_SEARCH: "100000/min",
  RATE_LIMIT_INGEST: "100000/min",
  RATE_LIMIT_DEFAULT: "100000/min",
  RATE_LIMIT_TENANT_CHAT: "1000000/min",
  RATE_LIMIT_TENANT_SEARCH: "1000000/min",
  RATE_LIMIT_TENANT_INGEST: "1000000/min",
  RATE_LIMIT_TENANT_DEFAULT: "1000000/min",
};

const WORDS =
  "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu refund invoice shipping policy customer support warranty billing account password login server latency database vector index query memory".split(
    " ",
  );

/** Deterministic pseudo-random prose: `paragraphs` paragraphs of `sentences` sentences. */
export function prose(seed: number, paragraphs = 3, sentences = 5): string {
  let x = seed * 2654435761 + 1;
  const next = () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x;
  };
  const out: string[] = [];
  for (let p = 0; p < paragraphs; p++) {
    const ss: string[] = [];
    for (let s = 0; s < sentences; s++) {
      const n = 8 + (next() % 10);
      const words = Array.from({ length: n }, () => WORDS[next() % WORDS.length]);
      ss.push(`${words.join(" ").replace(/^./, (c) => c.toUpperCase())}.`);
    }
    out.push(ss.join(" "));
  }
  return out.join("\n\n");
}

export interface CountingEmbedder extends Embedder {
  calls: number;
  inputs: number;
  /** Make the next n calls fail. */
  failNext(n: number, error?: Error): void;
}

/** The offline embedder, counting calls and inputs, with a switch to fail. */
export function countingEmbedder(dimensions = 1536): CountingEmbedder {
  const inner = createOfflineEmbedder({ dimensions });
  let failures = 0;
  let failure = new Error("embedding service failed");
  const wrapped: CountingEmbedder = {
    provider: inner.provider,
    model: inner.model,
    dimensions: inner.dimensions,
    calls: 0,
    inputs: 0,
    failNext(n, error) {
      failures = n;
      if (error) failure = error;
    },
    async embed(texts, opts) {
      wrapped.calls++;
      wrapped.inputs += texts.length;
      if (failures > 0) {
        failures--;
        throw failure;
      }
      return inner.embed(texts, opts);
    },
  };
  return wrapped;
}
