/**
 * Ingest throughput: 10,000 one-chunk documents of ~500 characters with 1,536-dimension
 * vectors, in requests of 100 documents, through Engram's write path on each driver, with
 * the offline embedder; then the same corpus again (must embed 0). Also the store step alone
 * (embeddings precomputed) to separate embedding cost from database cost, four requests in
 * flight (a client sending batches in parallel), the indexer's rate moving staged chunks into
 * the HNSW index (its first 2,000), and ingest with INDEX_BACKLOG_MAX=0 (each request indexes its own chunks,
 * as before staging; 2,000 chunks, it is slow), and conversation turns (the same documents as turns of one conversation
 * a request: each is embedded after the turns before it, read back from the database for a request's first two).
 */
import { splitIntoChunks } from "../core/chunk/split";
import { setConfig } from "../core/config";
import type { DriverName } from "../core/db";
import type { Embedder } from "../core/embedding";
import { createOfflineEmbedder, embedOffline } from "../core/embedding/offline";
import * as Ingest from "../core/ingest";
import * as Indexer from "../core/search/indexer";
import { callerFor, freshDb } from "../kit/db";
import { prose } from "../kit/factories";
import { countingDb, round } from "./support";

/** Precomputes the chunks' vectors so a run measures storage alone. */
async function precomputed(texts: string[][], dimensions: number): Promise<Embedder> {
  const inner = createOfflineEmbedder({ dimensions });
  const cache = new Map<string, Float32Array>();
  for (const batch of texts) {
    const chunks = batch.flatMap((text) => splitIntoChunks(text).map((c) => c.content));
    const { vectors } = await inner.embed(chunks);
    for (const [i, t] of chunks.entries()) cache.set(t, vectors[i] as Float32Array);
  }
  return {
    ...inner,
    embed: async (batch) => ({ vectors: batch.map((t) => cache.get(t) ?? embedOffline(t, dimensions)), tokens: 0 }),
  };
}

interface Case {
  driver: DriverName;
  chunks: number;
  /** Vectors precomputed, so the run measures storage alone. */
  storeOnly?: boolean;
  /** Requests in flight at once (a client sending its batches in parallel). */
  concurrency?: number;
  /** INDEX_BACKLOG_MAX=0: every ingest indexes what it added before answering (no staging). */
  indexNow?: boolean;
  /** Then time the indexer moving the staged chunks into the HNSW index. */
  drain?: boolean;
  /** Each request's documents are turns of one conversation, continued by the next request's. */
  turns?: boolean;
}

async function one({
  driver,
  chunks,
  storeOnly = false,
  concurrency = 1,
  indexNow = false,
  drain = false,
  turns = false,
}: Case) {
  setConfig({ LOG_LEVEL: "silent", INDEX_BACKLOG_MAX: indexNow ? "0" : undefined });
  const t = await freshDb(driver);
  try {
    const db = countingDb(t.db);
    const caller = await callerFor(t.db, "bench");
    const requests = Array.from({ length: Math.ceil(chunks / 100) }, (_, r) =>
      Array.from({ length: 100 }, (_, i) => ({
        id: `d${r}-${i}`,
        content: prose(r * 100 + i, 1, 5).slice(0, 500),
        ...(turns ? { conversationId: `c${Math.floor(r / 10)}` } : {}),
      })),
    );
    const embedder = storeOnly
      ? await precomputed(
          requests.map((docs) => docs.map((d) => d.content)),
          1536,
        )
      : createOfflineEmbedder({ dimensions: 1536 });
    const ingestAll = async (count: (r: Ingest.IngestResult) => number) => {
      let total = 0;
      let next = 0;
      const worker = async () => {
        while (next < requests.length) {
          const docs = requests[next++] as (typeof requests)[number];
          const result = await Ingest.run(db, caller, docs, { embedder });
          total += count(result);
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
      return total;
    };
    const started = performance.now();
    const stored = await ingestAll((r) => r.totals.chunks);
    const seconds = (performance.now() - started) / 1000;
    const tripsPerRequest = db.roundTrips / requests.length;

    let drained: number | undefined;
    if (drain) {
      const from = performance.now();
      const { indexed } = await Indexer.catchUp(t.db, { limit: 2_000, budgetMs: Number.POSITIVE_INFINITY });
      drained = Math.round(indexed / ((performance.now() - from) / 1000));
    }

    const again = performance.now();
    const embedded = await ingestAll((r) => r.totals.embedded);
    const againSeconds = (performance.now() - again) / 1000;
    const how = [
      storeOnly ? "store only (precomputed vectors)" : "offline embedder",
      concurrency > 1 ? `${concurrency} requests in flight` : "one request at a time",
      driver === "pglite"
        ? "no vector index (embedded)"
        : indexNow
          ? "indexed before answering"
          : "staged for the index",
      ...(turns ? ["conversation turns"] : []),
    ];
    return {
      scenario: `ingest: ${how.join(", ")}`,
      driver,
      chunks: stored,
      "chunks/s": Math.round(stored / seconds),
      "round trips/request": round(tripsPerRequest, 1),
      "indexer chunks/s": drained,
      "re-ingest embedded": embedded,
      "re-ingest s": round(againSeconds),
    };
  } finally {
    setConfig({ LOG_LEVEL: "silent" });
    await t.close();
  }
}

export async function benchIngest(opts: { quick: boolean }): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  const big = opts.quick ? 1_000 : 10_000;
  const small = opts.quick ? 300 : 2_000;
  for (const driver of ["pg", "neon-http"] as DriverName[]) {
    rows.push(await one({ driver, chunks: big, drain: true }));
    rows.push(await one({ driver, chunks: big, turns: true }));
    rows.push(await one({ driver, chunks: big, concurrency: 4 }));
    rows.push(await one({ driver, chunks: big, storeOnly: true }));
    // What every ingest paid before staging: the HNSW insert of each new chunk.
    rows.push(await one({ driver, chunks: opts.quick ? 200 : 2_000, indexNow: true }));
  }
  rows.push(await one({ driver: "pglite", chunks: small }));
  rows.push(await one({ driver: "pglite", chunks: small, turns: true }));
  rows.push(await one({ driver: "pglite", chunks: small, storeOnly: true }));
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table } = await import("./support");
  console.log(table(await benchIngest({ quick: process.argv.includes("--quick") })));
  process.exit(0);
}
