export interface EmbedResult {
  vectors: Float32Array[];
  tokens: number;
}

export interface Embedder {
  readonly provider: "openai" | "offline";
  readonly model: string;
  readonly dimensions: number;
  /** Embeds texts in order; resolves with one unit-length vector per text. */
  embed(texts: string[], opts?: { signal?: AbortSignal }): Promise<EmbedResult>;
}
