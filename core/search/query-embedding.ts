/**
 * A search's query vector: embedded by the configured model, or remembered (this process's recent queries, then the
 * tenant's database cache) so that a repeated query embeds nothing.
 */
import { createHash } from "node:crypto";
import type { Caller } from "../auth";
import * as Cache from "../cache";
import { config } from "../config";
import { type Db, vectorLiteral } from "../db";
import { embedder as defaultEmbedder, type Embedder } from "../embedding";
import { upstreamError } from "../error";
import * as Gate from "../gate";
import { log } from "../log";
import { lru } from "../lru";

/** The query text as embedded and cached: Unicode NFC, trimmed, whitespace runs collapsed. */
export const normalizeQuery = (text: string) => text.normalize("NFC").trim().replace(/\s+/g, " ");

/**
 * The last few hundred query embeddings of this process, in front of the database cache: a warm Lambda or the
 * local server answers a repeated query without the cache's round trip (0.5 ms, and 18 KB of vector text, at
 * 1,536 dimensions). Keyed by tenant and end user like the database cache (by key before the gate has named the tenant);
 * entries live no longer than the cache's TTL.
 * Only what the same (model, dimensions, text) always embeds to is kept, so no instance can hold a stale one.
 */
export const recentQueries = lru<string>(256);

export async function embed(
  db: Db,
  caller: Caller,
  text: string,
  options: { embedder?: Embedder; signal?: AbortSignal },
): Promise<{ literal: string; tokens: number; remember?: () => Promise<void> }> {
  const embedder = options.embedder ?? defaultEmbedder();
  const normalized = normalizeQuery(text);
  // The offline embedder computes a query's vector in microseconds: caching it in the database would only add the
  // cache's two round trips to every search.
  const ttl = embedder.provider === "offline" ? 0 : config().search.queryCacheTtlSeconds;
  const digest = createHash("sha256").update(normalized).digest("hex");
  // Each end user's own: shared across a tenant's users, a query that embedded nothing (`embeddingTokens: 0`) told one
  // user that another had asked exactly that within the cache's week.
  const key = `search:embedding:${embedder.model}:${embedder.dimensions}:${caller.userId}:${digest}`;
  const local = `${Gate.memoryKeyOf(caller)}/${key}`;
  // Before the gate has run the tenant is unknown, and the database's cache would cost a round trip of its own:
  // a gated search (Lambda's) uses this process's memory only.
  const shared = !Gate.unsettled(caller);
  if (ttl > 0) {
    const recent = recentQueries.get(local);
    if (recent) return { literal: recent, tokens: 0 };
  }
  if (ttl > 0 && shared) {
    const cached = await Cache.get<unknown>(db, caller.tenantId, key);
    if (typeof cached === "string" && cached.startsWith("[")) {
      recentQueries.set(local, cached, ttl);
      return { literal: cached, tokens: 0 };
    }
  }
  const result = await embedder.embed([normalized], { signal: options.signal }).catch((error) => {
    throw upstreamError(error, "embedding");
  });
  const vector = result.vectors[0];
  if (!vector || vector.length !== embedder.dimensions) {
    throw upstreamError(new Error(`expected one ${embedder.dimensions}-dimension vector`), "embedding");
  }
  const literal = vectorLiteral(vector);
  if (ttl > 0) recentQueries.set(local, literal, ttl);
  // Stored beside the search, not before it; a failed write only costs a later embedding call.
  const remember =
    ttl > 0 && shared
      ? () =>
          Cache.set(db, caller.tenantId, key, literal, ttl).catch((error) => {
            log.warn("search: could not cache the query embedding", { error });
          })
      : undefined;
  return { literal, tokens: result.tokens, remember };
}
