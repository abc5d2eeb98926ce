import { config } from "../config";
import { createOfflineEmbedder } from "./offline";
import { createOpenAIEmbedder } from "./openai";
import type { Embedder } from "./types";

export type { Embedder, EmbedResult } from "./types";

let shared: Embedder | undefined;

/** The configured embedder, made once per process: OpenAI(-compatible) when reachable, else offline. */
export function embedder(): Embedder {
  if (shared) return shared;
  const cfg = config();
  const made =
    cfg.embedding.provider === "openai"
      ? createOpenAIEmbedder({
          apiKey: cfg.openai.apiKey ?? "not-needed",
          baseURL: cfg.openai.baseURL,
          model: cfg.embedding.model,
          dimensions: cfg.embedding.dimensions,
          timeoutMs: cfg.openai.timeoutMs,
        })
      : createOfflineEmbedder({ dimensions: cfg.embedding.dimensions });
  shared = made;
  return made;
}

/** Replaces the process's embedder (tests). */
export function useEmbedder(instance: Embedder | undefined): void {
  shared = instance;
}
