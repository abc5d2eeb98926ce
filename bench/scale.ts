/**
 * The scale curve (#24): `npm run bench -- --scale` loads 10k, 100k, 300k and 1M chunks of 1,536 dimensions
 * (`--scale=10k,100k` picks sizes, `--queries=N` the queries per scenario, 100 by default) and reports for each
 * size: the HNSW build's time and size, table and index bytes, the working set a search touches (the RAM it needs
 * to stay in memory), search p50/p95 and recall@10 unfiltered, with a 1% metadata filter and hybrid, and ingest at
 * that size (the write path's chunks/s, then the indexer moving them into the graph).
 *
 * Corpus, queries and ground truth are bench/search.ts's (`loadPg`, `truth`, `timeEngram`): the same seed at every
 * size, so each corpus is the next one's prefix. Each size is written to bench/results/scale.json as soon as it is
 * measured (a stopped run keeps what it measured), then scale.md and scale.svg are redrawn from that file; each
 * size's row says which run measured it. docs/scale.md reads the curve.
 */
import { readFileSync, writeFileSync } from "node:fs";
import pg from "pg";
import { config, setConfig } from "../core/config";
import { migrate } from "../core/db/migrate";
import { createPgDb } from "../core/db/pg";
import { createOfflineEmbedder } from "../core/embedding/offline";
import * as Ingest from "../core/ingest";
import * as Hnsw from "../core/search/hnsw";
import * as Indexer from "../core/search/indexer";
import { createDatabase, dropDatabase, pgUrl } from "../kit/db";
import { documentText } from "./chat";
import {
  BENCH_MODEL,
  benchCaller,
  DIMS,
  exactBound,
  FILTERS,
  K,
  knownEmbedder,
  loadPg,
  type Query,
  queries,
  recall,
  type Scenario,
  timeEngram,
  truth,
} from "./search";
import { round, table } from "./support";

export const SIZES: Record<string, number> = { "10k": 10_000, "100k": 100_000, "300k": 300_000, "1m": 1_000_000 };
const SCENARIOS: Scenario[] = ["unfiltered", "filter 1%", "hybrid"];
/** Chunks ingested through Engram's write path at each size, in requests of 100 one-chunk documents. */
const INGESTED = 2_000;
const RESULTS = new URL("./results/scale.json", import.meta.url);
const MB = 1024 * 1024;

interface SearchRow {
  scenario: Scenario;
  strategy: string;
  "recall@10": number;
  "full topK": boolean;
  "p50 ms": number;
  "p95 ms": number;
}

export interface SizeResult {
  run: string;
  chunks: number;
  queries: number;
  "load rows/s": number;
  "HNSW build s": number;
  maintenance_work_mem: string;
  "build notices": string[];
  "heap MB": number;
  "TOAST MB": number;
  "HNSW MB": number;
  "other indexes MB": number;
  "documents MB": number;
  "index pages / query": number;
  "heap+TOAST pages / query": number;
  "working set MB (vector)": number;
  "working set MB (hybrid)": number;
  search: SearchRow[];
  "ingest chunks/s": number;
  "indexer chunks/s": number;
  seconds: number;
}

/** `--scale` alone: every size; `--scale=10k,300k`: those. */
export function sizesFrom(argv: string[]): number[] {
  const arg = argv.find((a) => a === "--scale" || a.startsWith("--scale="));
  if (!arg || arg === "--scale") return Object.values(SIZES);
  return arg
    .slice(8)
    .split(",")
    .map((s) => {
      const n = SIZES[s.toLowerCase()] ?? Number(s);
      if (!Number.isInteger(n) || n < 1_000 || n % 5 !== 0) throw new Error(`--scale: unknown size ${s}`);
      return n;
    });
}

/**
 * Enough maintenance_work_mem for the whole graph (about 8 kB a 1,536-dimension chunk: one 6 kB element a page;
 * the 10k index measured 78 MB), so the build does not fall back to its slower path; capped at 8 GB, a third of
 * this machine.
 */
const buildMemory = (chunks: number) => `${Math.min(8, Math.max(1, Math.ceil((chunks * 8 * 1024) / 1024 ** 3)))}GB`;

async function relationSizes(url: string) {
  const client = new pg.Client(url);
  await client.connect();
  try {
    const { rows } = await client.query<Record<string, string>>(
      `
      select pg_relation_size('chunks') as heap,
             pg_table_size('chunks') - pg_relation_size('chunks') as toast,
             pg_relation_size($1::regclass) as hnsw,
             pg_indexes_size('chunks') - pg_relation_size($1::regclass) as other,
             pg_total_relation_size('documents') as documents,
             coalesce((select sum(pg_relation_size(indexrelid)) from pg_index i join pg_class c on c.oid = i.indexrelid
                       join pg_am a on a.oid = c.relam where i.indrelid = 'chunks'::regclass and a.amname = 'gin'), 0)
               as gin`,
      [Hnsw.name(BENCH_MODEL)],
    );
    const r = rows[0] as Record<string, string>;
    return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Number(v)])) as Record<
      "heap" | "toast" | "hnsw" | "other" | "documents" | "gin",
      number
    >;
  } finally {
    await client.end();
  }
}

/**
 * Pages an index-served nearest-neighbour query touches (Engram's vector leg: `ORDER BY embedding <=> q LIMIT 4k`
 * with the distance computed from the row), counted by the statistics views around a fresh connection's queries:
 * the HNSW index's pages, and the chunk rows' heap and TOAST pages (the vectors are TOASTed).
 */
async function pageAccesses(url: string, tenantId: string, qs: Query[]) {
  const client = new pg.Client(url);
  await client.connect();
  try {
    await client.query(`set hnsw.ef_search = ${config().search.efSearch}`);
    await client.query("set hnsw.iterative_scan = relaxed_order");
    const snapshot = async () => {
      await client.query("select pg_stat_clear_snapshot()");
      const { rows } = await client.query<{ index: string; heap: string }>(
        `
        select (select idx_blks_hit + idx_blks_read from pg_statio_user_indexes where indexrelid = $1::regclass) as index,
               (select heap_blks_hit + heap_blks_read + coalesce(toast_blks_hit, 0) + coalesce(toast_blks_read, 0)
                       + coalesce(tidx_blks_hit, 0) + coalesce(tidx_blks_read, 0)
                from pg_statio_user_tables where relname = 'chunks') as heap`,
        [Hnsw.name(BENCH_MODEL)],
      );
      return { index: Number(rows[0]?.index), heap: Number(rows[0]?.heap) };
    };
    const text = `select c.id, c.embedding <=> $1::vector as distance from chunks c
                  where c.indexed and c.embedding_model = $3 and c.tenant_id = $2
                  order by c.embedding <=> $1::vector limit ${4 * K}`;
    for (const q of qs) await client.query(text, [q.literal, tenantId, BENCH_MODEL]); // warm
    await client.query("select pg_stat_force_next_flush()");
    const before = await snapshot();
    for (const q of qs) await client.query(text, [q.literal, tenantId, BENCH_MODEL]);
    // The backend writes its counters when it goes idle after this statement.
    await client.query("select pg_stat_force_next_flush()");
    const after = await snapshot();
    return {
      index: round((after.index - before.index) / qs.length, 0),
      heap: round((after.heap - before.heap) / qs.length, 0),
    };
  } finally {
    await client.end();
  }
}

async function measure(chunks: number, count: number, run: string): Promise<SizeResult> {
  const started = performance.now();
  const qs = queries(count);
  const embedder = knownEmbedder(qs);
  const name = await createDatabase();
  const url = pgUrl(name);
  const db = createPgDb(url);
  try {
    await migrate(db, { embeddingDimensions: DIMS, searchTextConfig: "english" });
    const maintenanceWorkMem = buildMemory(chunks);
    process.stderr.write(`scale: ${chunks} chunks: loading, HNSW with maintenance_work_mem ${maintenanceWorkMem}\n`);
    const loaded = await loadPg(url, chunks, { maintenanceWorkMem });
    const bytes = await relationSizes(url);
    const pages = await pageAccesses(url, loaded.tenantId, qs.slice(0, 20));
    const caller = benchCaller(loaded.tenantId);
    const [filtered] = await db.query<{ n: number }>({
      text: `select count(*)::int as n from chunks c join documents d on d.key = c.document_key
             where c.tenant_id = $1 and d.metadata @> $2::jsonb`,
      params: [loaded.tenantId, JSON.stringify(FILTERS["filter 1%"])],
    });
    const search: SearchRow[] = [];
    for (const scenario of SCENARIOS) {
      process.stderr.write(`scale: ${chunks} chunks: ${scenario}\n`);
      const exact = await truth(db, caller, scenario, qs, embedder);
      const timed = await timeEngram(db, caller, scenario, qs, embedder);
      const n = scenario === "filter 1%" ? Number(filtered?.n) : chunks;
      search.push({
        scenario,
        strategy: `auto (${n <= exactBound(chunks) ? "exact" : "index"}: ${n} chunks)`,
        "recall@10": recall(timed.ids, exact),
        "full topK": timed.ids.every((ids) => ids.length === K),
        "p50 ms": timed.p50,
        "p95 ms": timed.p95,
      });
    }

    // The write path at this size: staged ingest, then the indexer's HNSW inserts into the graph of this size.
    process.stderr.write(`scale: ${chunks} chunks: ingest\n`);
    // Stored as the corpus's model, so the indexer inserts into the graph of this size, not into a new model's.
    const offline = { ...createOfflineEmbedder({ dimensions: DIMS }), model: BENCH_MODEL };
    const ingestStarted = performance.now();
    let stored = 0;
    for (let r = 0; r < INGESTED / 100; r++) {
      const docs = Array.from({ length: 100 }, (_, i) => ({
        id: `ingest-${r}-${i}`,
        content: documentText(chunks + r * 100 + i),
      }));
      stored += (await Ingest.run(db, caller, docs, { embedder: offline })).totals.chunks;
    }
    const ingestSeconds = (performance.now() - ingestStarted) / 1000;
    const indexStarted = performance.now();
    const { indexed } = await Indexer.catchUp(db, {
      model: BENCH_MODEL,
      tenantId: loaded.tenantId,
      limit: stored,
      budgetMs: Number.POSITIVE_INFINITY,
    });
    const indexSeconds = (performance.now() - indexStarted) / 1000;

    const vectorSet = bytes.hnsw + bytes.heap + bytes.toast + bytes.documents;
    return {
      run,
      chunks,
      queries: count,
      "load rows/s": round(chunks / loaded.loadSeconds, 0),
      "HNSW build s": round(loaded.indexSeconds, 1),
      maintenance_work_mem: maintenanceWorkMem,
      "build notices": loaded.notices,
      "heap MB": round(bytes.heap / MB, 0),
      "TOAST MB": round(bytes.toast / MB, 0),
      "HNSW MB": round(bytes.hnsw / MB, 0),
      "other indexes MB": round(bytes.other / MB, 0),
      "documents MB": round(bytes.documents / MB, 0),
      "index pages / query": pages.index,
      "heap+TOAST pages / query": pages.heap,
      "working set MB (vector)": round(vectorSet / MB, 0),
      "working set MB (hybrid)": round((vectorSet + bytes.gin) / MB, 0),
      search,
      "ingest chunks/s": round(stored / ingestSeconds, 0),
      "indexer chunks/s": round(indexed / indexSeconds, 0),
      seconds: round((performance.now() - started) / 1000, 0),
    };
  } finally {
    await db.close();
    await dropDatabase(name);
  }
}

type Stored = { sizes: Record<string, SizeResult> };

function readStored(): Stored {
  try {
    return JSON.parse(readFileSync(RESULTS, "utf8")) as Stored;
  } catch {
    return { sizes: {} };
  }
}

const sizeRows = (results: SizeResult[]) =>
  results.map((r) => ({
    chunks: r.chunks,
    run: r.run,
    "load rows/s": r["load rows/s"],
    "HNSW build s": r["HNSW build s"],
    maintenance_work_mem: r.maintenance_work_mem,
    "heap MB": r["heap MB"],
    "TOAST MB": r["TOAST MB"],
    "HNSW MB": r["HNSW MB"],
    "other indexes MB": r["other indexes MB"],
    "documents MB": r["documents MB"],
    "index pages / query": r["index pages / query"],
    "heap+TOAST pages / query": r["heap+TOAST pages / query"],
    "working set MB (vector)": r["working set MB (vector)"],
    "working set MB (hybrid)": r["working set MB (hybrid)"],
    "ingest chunks/s": r["ingest chunks/s"],
    "indexer chunks/s": r["indexer chunks/s"],
    "size s": r.seconds,
  }));

const searchRows = (results: SizeResult[]) =>
  results.flatMap((r) => r.search.map((s) => ({ chunks: r.chunks, queries: r.queries, ...s })));

function markdown(results: SizeResult[]): string {
  const notices = results.flatMap((r) => r["build notices"].map((n) => `- ${r.chunks} chunks: ${n}`));
  return [
    "# Engram scale curve",
    "",
    "Written by `npm run bench -- --scale`; each size's row names the run that measured it (the machine: 2 cores,",
    "24 GB, PostgreSQL 15 with shared_buffers 6 GB, pgvector 0.8; whether other work shared it, the run's notes say). How to read",
    "it: docs/scale.md.",
    "",
    "![p95 latency and recall@10 against size](scale.svg)",
    "",
    "## Storage, build and ingest",
    "",
    table(sizeRows(results)),
    "",
    "Working set: the HNSW index, the chunks' heap and TOAST (a query reads the rows and vectors of its candidates,",
    "anywhere in the table) and the documents; hybrid adds the keyword (GIN) index.",
    "",
    "## Search (recall@10 against plain-SQL exact search; hybrid's against Engram's exact strategy)",
    "",
    table(searchRows(results)),
    "",
    ...(notices.length ? ["## Build notices", "", ...notices, ""] : []),
  ].join("\n");
}

/** p95 latency and recall@10 against size (log scale), one line per scenario: a hand-written SVG. */
export function chart(results: SizeResult[]): string {
  const sizes = results.map((r) => r.chunks);
  const colours: Record<string, string> = { unfiltered: "#1f77b4", "filter 1%": "#2ca02c", hybrid: "#d62728" };
  const W = 360;
  const H = 220;
  const pad = { left: 52, right: 12, top: 28, bottom: 40 };
  const lo = Math.log10(Math.min(...sizes, 10_000));
  const hi = Math.log10(Math.max(...sizes, 1_000_000));
  const x = (n: number) => pad.left + ((Math.log10(n) - lo) / (hi - lo || 1)) * (W - pad.left - pad.right);
  const label = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : `${n / 1_000}k`);
  const panel = (dx: number, title: string, key: "p95 ms" | "recall@10", min: number, max: number, unit: string) => {
    const y = (v: number) => pad.top + (1 - (v - min) / (max - min)) * (H - pad.top - pad.bottom);
    const ticks = Array.from({ length: 5 }, (_, i) => min + ((max - min) * i) / 4);
    const parts = [
      `<g transform="translate(${dx},0)">`,
      `<text x="${W / 2}" y="16" text-anchor="middle" font-weight="bold">${title}</text>`,
      ...ticks.map(
        (t) =>
          `<line x1="${pad.left}" x2="${W - pad.right}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/>` +
          `<text x="${pad.left - 4}" y="${y(t) + 4}" text-anchor="end">${round(t, 2)}${unit}</text>`,
      ),
      ...[10_000, 100_000, 300_000, 1_000_000].map(
        (n) =>
          `<line x1="${x(n)}" x2="${x(n)}" y1="${pad.top}" y2="${H - pad.bottom}" stroke="#eee"/>` +
          `<text x="${x(n)}" y="${H - pad.bottom + 14}" text-anchor="middle">${label(n)}</text>`,
      ),
      `<text x="${(pad.left + W - pad.right) / 2}" y="${H - 6}" text-anchor="middle">chunks (log scale)</text>`,
    ];
    for (const scenario of SCENARIOS) {
      const points = results.flatMap((r) => {
        const s = r.search.find((row) => row.scenario === scenario);
        return s ? [[x(r.chunks), y(Math.min(max, Math.max(min, s[key])))] as const] : [];
      });
      const colour = colours[scenario];
      parts.push(
        `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${points.map((p) => p.map((v) => round(v, 1)).join(",")).join(" ")}"/>`,
        ...points.map(([px, py]) => `<circle cx="${round(px, 1)}" cy="${round(py, 1)}" r="3" fill="${colour}"/>`),
      );
    }
    parts.push("</g>");
    return parts.join("\n");
  };
  const p95s = results.flatMap((r) => r.search.map((s) => s["p95 ms"]));
  const top = Math.max(20, Math.ceil(Math.max(...p95s, 0) / 10) * 10);
  const recalls = results.flatMap((r) => r.search.map((s) => s["recall@10"]));
  const floor = Math.min(0.9, Math.floor(Math.min(...recalls, 1) * 20) / 20);
  const legend = SCENARIOS.map(
    (s, i) =>
      `<rect x="${60 + i * 130}" y="${H + 4}" width="12" height="12" fill="${colours[s]}"/>` +
      `<text x="${76 + i * 130}" y="${H + 14}">${s}</text>`,
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H + 24}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    panel(0, "search p95 (ms)", "p95 ms", 0, top, ""),
    panel(W, "recall@10", "recall@10", floor, 1, ""),
    ...legend,
    "</svg>",
    "",
  ].join("\n");
}

export async function benchScale(sizes: number[], count: number): Promise<Record<string, unknown>[]> {
  setConfig({ LOG_LEVEL: "silent" });
  const run = new Date().toISOString();
  for (const chunks of sizes) {
    const result = await measure(chunks, count, run);
    // Written per size, so a long run that is stopped keeps every size it finished.
    const stored = readStored();
    stored.sizes[String(chunks)] = result;
    const all = Object.values(stored.sizes).sort((a, b) => a.chunks - b.chunks);
    writeFileSync(RESULTS, `${JSON.stringify(stored, null, 2)}\n`);
    writeFileSync(new URL("./results/scale.md", import.meta.url), `${markdown(all)}\n`);
    writeFileSync(new URL("./results/scale.svg", import.meta.url), chart(all));
    process.stderr.write(`${table(sizeRows([result]))}\n\n${table(searchRows([result]))}\n\n`);
  }
  const all = Object.values(readStored().sizes).filter((r) => sizes.includes(r.chunks));
  return [...sizeRows(all), ...searchRows(all)];
}
