/**
 * The optional re-rank stage: hybrid's best candidates go to a cross-encoder behind the common `/rerank` shape
 * (query + documents in, an index and relevance score per document out), as served by Cohere, Jina and Hugging
 * Face's text-embeddings-inference. Any failure (timeout, refusal, a malformed answer) leaves the fused order and
 * says so: re-ranking may improve a search, never break it.
 */
import { log } from "../log";

export type Outcome = "applied" | "failed";

export interface Settings {
  url: string;
  model: string | undefined;
  apiKey: string | undefined;
  timeoutMs: number;
}

interface Scored {
  content: string;
  score: number;
}

/**
 * Re-orders `results` by the endpoint's scores (each result's `score` becomes its relevance score), or returns
 * them unchanged with outcome `failed`.
 */
export async function apply<T extends Scored>(
  settings: Settings,
  query: string,
  results: T[],
  signal?: AbortSignal,
): Promise<{ results: T[]; outcome: Outcome }> {
  if (results.length === 0) return { results, outcome: "applied" };
  const timeout = AbortSignal.timeout(settings.timeoutMs);
  try {
    const response = await fetch(settings.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(settings.apiKey ? { authorization: `Bearer ${settings.apiKey}` } : {}),
      },
      // `documents` for Cohere/Jina, `texts` for text-embeddings-inference; each ignores the other's field.
      body: JSON.stringify({
        ...(settings.model ? { model: settings.model } : {}),
        query,
        documents: results.map((r) => r.content),
        texts: results.map((r) => r.content),
        top_n: results.length,
      }),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    if (!response.ok) throw new Error(`re-rank endpoint answered ${response.status}`);
    const scores = parseScores(await response.json(), results.length);
    const order = results.map((result, i) => ({ result, score: scores[i] as number, i }));
    order.sort((a, b) => b.score - a.score || a.i - b.i);
    return { results: order.map(({ result, score }) => ({ ...result, score })), outcome: "applied" };
  } catch (error) {
    signal?.throwIfAborted();
    log.warn("search: re-rank failed, results keep the fused order", { error: (error as Error).message });
    return { results, outcome: "failed" };
  }
}

/**
 * Scores by document position from `{ results: [{ index, relevance_score }] }` (Cohere, Jina) or
 * `[{ index, score }]` (text-embeddings-inference). Throws unless every document gets one finite score.
 */
export function parseScores(body: unknown, count: number): number[] {
  const list = Array.isArray(body) ? body : (body as { results?: unknown } | null)?.results;
  if (!Array.isArray(list)) throw new Error("re-rank answer has no results list");
  const scores: (number | undefined)[] = new Array(count).fill(undefined);
  for (const item of list) {
    const { index, relevance_score, score } = (item ?? {}) as Record<string, unknown>;
    const value = typeof relevance_score === "number" ? relevance_score : score;
    if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index >= count) {
      throw new Error("re-rank answer has an index out of range");
    }
    if (typeof value !== "number" || !Number.isFinite(value)) throw new Error("re-rank answer has a non-numeric score");
    scores[index] = value;
  }
  if (scores.some((s) => s === undefined)) throw new Error("re-rank answer left documents unscored");
  return scores as number[];
}
