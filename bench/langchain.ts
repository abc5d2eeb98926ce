/**
 * LangChain's `PGVectorStore` (@langchain/community, default settings) beside Engram, in the same run, on the same
 * local Postgres and the same data. Run alone with `node bin/run-ts.js bench/langchain.ts [--quick]`, or through
 * `npm run bench` (`--only=langchain`).
 *
 * Ingest: the corpus of bench/ingest.ts (one-chunk documents of ~500 characters of `prose`, 100 a request), its
 * 1,536-dimension vectors precomputed, so both sides measure storage alone. Engram takes them through `Ingest.run` on
 * `pg` (bench/ingest.ts's "store only" row); LangChain through `addDocuments` with an `Embeddings` that hands back
 * the same vectors, into the table `PGVectorStore.initialize` creates (no index, no text search column), once 100
 * documents a call and once all in one call (its default 500 rows a statement). Twice: with the offline embedder's
 * vectors, as bench/ingest.ts, which are sparse, so LangChain's vectors-as-text are short; and with dense vectors,
 * as a model returns, whose text form is six times longer. Each timed part starts after a CHECKPOINT.
 *
 * Search: the corpus and the query vectors of bench/search.ts (unfiltered scenario), loaded for Engram as there (its
 * HNSW index built), then copied row for row into LangChain's table with INSERT ... SELECT (same text and vectors,
 * the chunk id and document metadata in `metadata`), VACUUM ANALYZE on both. LangChain with its defaults has no
 * vector index, so every query scans the table; that is slow, so this runs at 10,000 rows and 200 queries (2,000 and
 * 20 with --quick, whose ingest is 1,000 chunks), and Engram is measured at the same size here. Recall@10 is against
 * Engram's exact search over the same rows.
 */
import { PGVectorStore } from "@langchain/community/vectorstores/pgvector";
import { Document } from "@langchain/core/documents";
import { Embeddings } from "@langchain/core/embeddings";
import pg from "pg";
import { splitIntoChunks } from "../core/chunk/split";
import { setConfig } from "../core/config";
import type { Embedder } from "../core/embedding";
import { createOfflineEmbedder } from "../core/embedding/offline";
import * as Ingest from "../core/ingest";
import { callerFor, freshDb } from "../kit/db";
import { prose } from "../kit/factories";
import {
  benchCaller,
  CLUSTERS,
  corpus,
  DIMS,
  K,
  knownEmbedder,
  loadPg,
  type Query,
  queries,
  recall,
  timeEngram,
  truth,
} from "./search";
import { round, summarize } from "./support";

/**
 * Hands back vectors computed beforehand: as LangChain `Embeddings` (plain arrays, made up front so the timed part
 * does not pay for copying them) and as an Engram `Embedder` (the same values as Float32Array).
 */
class Precomputed extends Embeddings {
  private readonly arrays: Map<string, number[]>;
  constructor(private readonly vectors: Map<string, Float32Array>) {
    super({});
    this.arrays = new Map([...vectors].map(([text, v]) => [text, Array.from(v)]));
  }
  private get(text: string): number[] {
    const v = this.arrays.get(text);
    if (!v) throw new Error(`no precomputed vector for ${JSON.stringify(text.slice(0, 40))}`);
    return v;
  }
  async embedDocuments(texts: string[]) {
    return texts.map((t) => this.get(t));
  }
  async embedQuery(text: string) {
    return this.get(text);
  }
  embedder(): Embedder {
    return {
      provider: "offline",
      model: "bench-precomputed",
      dimensions: DIMS,
      embed: async (texts) => ({ vectors: texts.map((t) => this.vectors.get(t) as Float32Array), tokens: 0 }),
    };
  }
}

/** bench/ingest.ts's requests: 100 one-chunk documents each. */
const ingestRequests = (chunks: number) =>
  Array.from({ length: Math.ceil(chunks / 100) }, (_, r) =>
    Array.from({ length: 100 }, (_, i) => ({ id: `d${r}-${i}`, content: prose(r * 100 + i, 1, 5).slice(0, 500) })),
  );

/**
 * Every row has the same columns in the same order. "Engram faster x": Engram's chunks/s over LangChain's for
 * ingest, LangChain's p95 over Engram's for search.
 */
const COLUMNS = {
  scenario: "",
  system: "",
  how: "",
  chunks: 0,
  queries: undefined as number | undefined,
  "chunks/s": undefined as number | undefined,
  "recall@10": undefined as number | undefined,
  "p50 ms": undefined as number | undefined,
  "p95 ms": undefined as number | undefined,
  "Engram faster x": undefined as number | undefined,
};
type Row = typeof COLUMNS;
const entry = (values: Partial<Row>): Row => ({ ...COLUMNS, ...values });

async function checkpoint(url: string) {
  const client = new pg.Client(url);
  await client.connect();
  await client.query("checkpoint");
  await client.end();
}

/**
 * The chunks' vectors, made before timing: the offline embedder's (sparse: hashed n-grams fill about a hundred of the
 * 1,536 components, so their text form is short) or dense ones like a model's, from bench/search.ts's generator.
 */
async function vectorsFor(texts: string[], dense: boolean) {
  const vectors = new Map<string, Float32Array>();
  if (dense) {
    const { vector } = corpus(42);
    for (const [i, text] of texts.entries()) vectors.set(text, vector(i % CLUSTERS));
  } else {
    const offline = createOfflineEmbedder({ dimensions: DIMS });
    for (let start = 0; start < texts.length; start += 100) {
      const batch = texts.slice(start, start + 100);
      const { vectors: embedded } = await offline.embed(batch);
      for (const [i, text] of batch.entries()) vectors.set(text, embedded[i] as Float32Array);
    }
  }
  let nonzero = 0;
  for (const v of vectors.values()) for (const x of v) if (x !== 0) nonzero++;
  return { vectors, nonzero: Math.round(nonzero / vectors.size) };
}

async function benchIngestSideBySide(chunks: number, dense: boolean): Promise<Row[]> {
  setConfig({ LOG_LEVEL: "silent" });
  const requests = ingestRequests(chunks);
  const split = (docs: (typeof requests)[number]) =>
    docs.flatMap((d) =>
      splitIntoChunks(d.content).map((c) => new Document({ pageContent: c.content, metadata: { documentId: d.id } })),
    );
  const { vectors, nonzero } = await vectorsFor(
    requests.flatMap((docs) => split(docs).map((d) => d.pageContent)),
    dense,
  );
  const embeddings = new Precomputed(vectors);
  const rows: Row[] = [];
  const kind = dense ? "dense vectors" : "offline embedder's vectors";
  const scenario = `ingest, store only: ${kind} (${nonzero} of ${DIMS} nonzero)`;
  const row = (system: string, how: string, stored: number, seconds: number) => {
    rows.push(entry({ scenario, system, how, chunks: stored, "chunks/s": Math.round(stored / seconds) }));
  };
  const t = await freshDb("pg");
  const url = t.url as string;
  try {
    const caller = await callerFor(t.db, "bench");
    const embedder = embeddings.embedder();
    await checkpoint(url);
    let started = performance.now();
    let stored = 0;
    for (const docs of requests) stored += (await Ingest.run(t.db, caller, docs, { embedder })).totals.chunks;
    row("Engram", "Ingest.run, 100 documents a request", stored, (performance.now() - started) / 1000);

    const lcTable = async (tableName: string, add: (store: PGVectorStore) => Promise<void>, how: string) => {
      const store = await PGVectorStore.initialize(embeddings, {
        postgresConnectionOptions: { connectionString: url },
        tableName,
        dimensions: DIMS,
      });
      try {
        await checkpoint(url);
        started = performance.now();
        await add(store);
        const seconds = (performance.now() - started) / 1000;
        const counted = await store.pool.query(`select count(*)::int as n from ${tableName}`);
        row("LangChain", how, counted.rows[0].n as number, seconds);
      } finally {
        await store.end();
      }
    };
    await lcTable(
      "langchain_per_request",
      async (store) => {
        for (const docs of requests) await store.addDocuments(split(docs));
      },
      "PGVectorStore.addDocuments, 100 documents a call",
    );
    await lcTable(
      "langchain_all",
      (store) => store.addDocuments(requests.flatMap(split)).then(() => undefined),
      "PGVectorStore.addDocuments, all in one call (500 rows a statement)",
    );
  } finally {
    await t.close();
  }
  const engram = rows[0]?.["chunks/s"] as number;
  for (const r of rows.slice(1)) r["Engram faster x"] = round(engram / (r["chunks/s"] as number), 1);
  return rows;
}

/** LangChain answering each query as a user would: `similaritySearchWithScore` (embeds, then one SELECT). */
async function timeLangChain(store: PGVectorStore, qs: Query[]) {
  const ask = (q: Query) => store.similaritySearchWithScore(q.text, K);
  for (const q of qs) await ask(q); // warm buffers, as timeEngram does
  const samples: number[] = [];
  const ids: string[][] = [];
  for (const q of qs) {
    const started = performance.now();
    const hits = await ask(q);
    samples.push(performance.now() - started);
    ids.push(hits.map(([doc]) => String(doc.metadata.chunkId)));
  }
  return { ...summarize(samples), ids };
}

async function benchSearchSideBySide(chunks: number, count: number): Promise<Row[]> {
  setConfig({ LOG_LEVEL: "silent" });
  const qs = queries(count);
  const embedder = knownEmbedder(qs);
  const t = await freshDb("pg");
  const url = t.url as string;
  const rows: Row[] = [];
  try {
    const loaded = await loadPg(url, chunks);
    const caller = benchCaller(loaded.tenantId);
    const exact = await truth(t.db, caller, "unfiltered", qs, embedder);
    const engram = await timeEngram(t.db, caller, "unfiltered", qs, embedder);

    const byText = new Map(qs.map((q) => [q.text, q.vector]));
    const store = await PGVectorStore.initialize(new Precomputed(byText), {
      postgresConnectionOptions: { connectionString: url },
      tableName: "langchain_pg_embedding",
      dimensions: DIMS,
    });
    try {
      await store.pool.query(
        `insert into langchain_pg_embedding (text, metadata, embedding)
         select c.content, jsonb_build_object('chunkId', c.id::text, 'documentId', d.id) || d.metadata, c.embedding
         from chunks c join documents d on d.key = c.document_key order by c.id`,
      );
      await store.pool.query("vacuum analyze langchain_pg_embedding");
      const lc = await timeLangChain(store, qs);
      const same = { scenario: "search: unfiltered vector, k 10", chunks, queries: count };
      rows.push(
        entry({
          ...same,
          system: "Engram",
          how: "Search.query, HNSW m 16, ef_construction 64 (as bench/search.ts)",
          "recall@10": recall(engram.ids, exact),
          "p50 ms": engram.p50,
          "p95 ms": engram.p95,
        }),
        entry({
          ...same,
          system: "LangChain",
          how: "PGVectorStore.similaritySearchWithScore, its defaults: no vector index, SELECT *",
          "recall@10": recall(lc.ids, exact),
          "p50 ms": lc.p50,
          "p95 ms": lc.p95,
          "Engram faster x": round(lc.p95 / engram.p95, 1),
        }),
      );
    } finally {
      await store.end();
    }
  } finally {
    await t.close();
  }
  return rows;
}

export async function benchLangChain(opts: { quick: boolean }): Promise<Row[]> {
  // --quick is a smoke run: small enough to keep this scenario near 15 s on a busy machine.
  const ingestChunks = opts.quick ? 1_000 : 10_000;
  return [
    ...(await benchIngestSideBySide(ingestChunks, false)),
    ...(await benchIngestSideBySide(ingestChunks, true)),
    ...(await benchSearchSideBySide(opts.quick ? 2_000 : 10_000, opts.quick ? 20 : 200)),
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table } = await import("./support");
  console.log(table(await benchLangChain({ quick: process.argv.includes("--quick") })));
  process.exit(0);
}
