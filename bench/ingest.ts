/**
 * Ingest throughput: 10,000 one-chunk documents of ~500 characters with 1,536-dimension
 * vectors, in requests of 100 documents, through Engram's write path on each driver, with
 * the offline embedder; then the same corpus again (must embed 0). Also the store step alone
 * (embeddings precomputed) to separate embedding cost from database cost.
 */
import { sql } from "drizzle-orm";
import { splitIntoChunks } from "../core/chunk/split";
import type { DriverName } from "../core/db";
import type { Embedder } from "../core/embedding";
import { createOfflineEmbedder, embedOffline } from "../core/embedding/offline";
import { Ingest } from "../core/ingest";
import { callerFor, freshDb } from "../test/support/db";
import { prose } from "../test/support/factories";
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

async function one(driver: DriverName, chunks: number, storeOnly: boolean, withoutIndex = false) {
  const t = await freshDb(driver);
  try {
    if (withoutIndex && driver !== "pglite") await t.db.query(sql`drop index chunks_embedding`);
    const db = countingDb(t.db);
    const caller = await callerFor(t.db, "bench");
    const requests = Array.from({ length: Math.ceil(chunks / 100) }, (_, r) =>
      Array.from({ length: 100 }, (_, i) => ({ id: `d${r}-${i}`, content: prose(r * 100 + i, 1, 5).slice(0, 500) })),
    );
    const embedder = storeOnly
      ? await precomputed(
          requests.map((docs) => docs.map((d) => d.content)),
          1536,
        )
      : createOfflineEmbedder({ dimensions: 1536 });
    const started = performance.now();
    let stored = 0;
    for (const docs of requests) stored += (await Ingest.run(db, caller, docs, { embedder })).totals.chunks;
    const seconds = (performance.now() - started) / 1000;
    const tripsPerRequest = db.roundTrips / requests.length;

    const again = performance.now();
    let embedded = 0;
    for (const docs of requests) embedded += (await Ingest.run(db, caller, docs, { embedder })).totals.embedded;
    const againSeconds = (performance.now() - again) / 1000;
    return {
      scenario: `ingest${storeOnly ? ", store only (precomputed vectors)" : " (offline embedder)"}${withoutIndex ? ", no HNSW index" : ""}`,
      driver,
      chunks: stored,
      "chunks/s": Math.round(stored / seconds),
      "round trips/request": round(tripsPerRequest, 1),
      "re-ingest embedded": embedded,
      "re-ingest s": round(againSeconds),
    };
  } finally {
    await t.close();
  }
}

export async function benchIngest(opts: { quick: boolean }): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  const big = opts.quick ? 2_000 : 10_000;
  const small = opts.quick ? 500 : 2_000;
  for (const driver of ["pg", "neon-http", "pglite"] as DriverName[]) {
    const n = driver === "pglite" ? small : big;
    rows.push(await one(driver, n, false));
    rows.push(await one(driver, n, true));
    // What the write path itself does when the HNSW index is not maintained on insert.
    if (driver !== "pglite") rows.push(await one(driver, n, true, true));
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table } = await import("./support");
  console.log(table(await benchIngest({ quick: process.argv.includes("--quick") })));
  process.exit(0);
}
