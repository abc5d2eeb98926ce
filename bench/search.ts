/**
 * Search benchmark: recall@10 against exact search and latency, Engram vs hand-written SQL, on `pg`, the Neon
 * HTTP driver (local Neon-protocol server) and PGlite. Run alone with `node bin/run-ts.js bench/search.ts
 * [--quick]`, or through `npm run bench`.
 *
 * Corpus: synthetic clustered vectors with a low intrinsic dimension, like text embeddings. 100 cluster
 * centres are drawn in a 32-dimension latent space (standard normal); a chunk is a centre plus latent noise
 * (sigma 0.6), mapped to 1,536 dimensions by one fixed random Gaussian matrix, plus isotropic noise of 30% of
 * that norm, then L2-normalized. Queries are drawn the same way (same centres and projection, other noise). Text:
 * prose of 60-90 words following Zipf's law over a 20,000-word vocabulary (bench/chat.ts), and each query's text is
 * three or four words of log-uniform frequency rank between 20 and 20,000, so its keyword leg matches from tens to
 * tens of thousands of chunks, as real questions do. Five chunks a document; 2% of the
 * documents belong to `user-1` (2,000 chunks at 100,000), the rest to the shared space; metadata filters match
 * 0.1%, 1% (`{"team":"team-3"}`), 10% and 50% of the documents, each searched with the strategy Engram picks and
 * forced through the HNSW index and the exact scan. Ground truth is plain SQL over every chunk of the scope
 * (`TRUTH_SQL`), sharing no code with Engram; the hand-written baseline is one prepared statement. Loaded with a binary `vector[]` parameter,
 * marked indexed, the (partial, migrations/0005) HNSW index (m 16, ef_construction 64) built after loading, then
 * VACUUM ANALYZE: the state the indexer leaves once it has caught up.
 */
import pg from "pg";
import type { Caller } from "../core/auth";
import { config, setConfig } from "../core/config";
import { type Db, vectorLiteral } from "../core/db";
import { migrate } from "../core/db/migrate";
import { createNeonDb } from "../core/db/neon";
import { createPgDb } from "../core/db/pg";
import { createPgliteDb } from "../core/db/pglite";
import type { Embedder } from "../core/embedding";
import * as Search from "../core/search";
import * as Hnsw from "../core/search/hnsw";
import { createDatabase, dropDatabase, pgUrl, sharedNeonServer } from "../kit/db";
import { neonConnectionString } from "../kit/neon-server";
import { documentText, wordOfRank } from "./chat";
import { round, summarize } from "./support";

export const DIMS = 1536;
const LATENT = 32;
export const CLUSTERS = 100;
const PER_DOC = 5;
export const K = 10;

function random(seed: number) {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const gauss = () => Math.sqrt(-2 * Math.log(uniform() + 1e-12)) * Math.cos(2 * Math.PI * uniform());
  return { uniform, gauss };
}

/** The generator described at the top of this file. */
export function corpus(seed: number, noiseSeed = seed) {
  // Centres and projection come from the corpus seed, so queries (another noise seed) live in the same space.
  const space = random(seed);
  const projection = Float32Array.from({ length: LATENT * DIMS }, () => space.gauss() / Math.sqrt(LATENT));
  const centres = Array.from({ length: CLUSTERS }, () => Float32Array.from({ length: LATENT }, space.gauss));
  const { uniform, gauss } = noiseSeed === seed ? space : random(noiseSeed);
  const vector = (cluster: number) => {
    const centre = centres[cluster] as Float32Array;
    const z = centre.map((c) => c + 0.6 * gauss());
    const v = new Float32Array(DIMS);
    let norm = 0;
    for (let l = 0; l < LATENT; l++) {
      const zl = z[l] as number;
      const row = l * DIMS;
      for (let j = 0; j < DIMS; j++) v[j] = (v[j] as number) + zl * (projection[row + j] as number);
    }
    for (let j = 0; j < DIMS; j++) norm += (v[j] as number) ** 2;
    const noise = (0.3 * Math.sqrt(norm)) / Math.sqrt(DIMS);
    norm = 0;
    for (let j = 0; j < DIMS; j++) {
      v[j] = (v[j] as number) + noise * gauss();
      norm += (v[j] as number) ** 2;
    }
    const n = Math.sqrt(norm);
    for (let j = 0; j < DIMS; j++) v[j] = (v[j] as number) / n;
    return v;
  };
  return { uniform, vector };
}

export interface Query {
  text: string;
  vector: Float32Array;
  literal: string;
}

export function queries(count: number): Query[] {
  const { uniform, vector } = corpus(42, 7);
  const seen = new Set<string>();
  return Array.from({ length: count }, () => {
    const cluster = Math.floor(uniform() * CLUSTERS);
    const v = vector(cluster);
    let text = "";
    while (text === "" || seen.has(text)) {
      const n = 3 + Math.floor(uniform() * 2);
      text = Array.from({ length: n }, () => wordOfRank(20 * 1000 ** uniform())).join(" ");
    }
    seen.add(text);
    return { text, vector: v, literal: vectorLiteral(v) };
  });
}

/** The model the benchmark's corpus is stored as: its vectors are synthetic, no model's. */
export const BENCH_MODEL = "bench-synthetic";

/** An embedder that knows the benchmark's query vectors (a real one would make the figures about the model). */
export function knownEmbedder(qs: Query[]): Embedder {
  const byText = new Map(qs.map((q) => [q.text, q.vector]));
  return {
    provider: "offline",
    model: BENCH_MODEL,
    dimensions: DIMS,
    async embed(texts) {
      return {
        vectors: texts.map((t) => byText.get(t) ?? new Float32Array(DIMS).fill(1 / Math.sqrt(DIMS))),
        tokens: 0,
      };
    },
  };
}

/** The benchmark tenant's end user `user-1`, as the auth middleware would produce. */
export const benchCaller = (tenantId: string): Caller => ({
  tenantId,
  tenantName: "bench",
  keyPrefix: "bench",
  userId: "user-1",
  rateLimits: {},
});

export async function loadPg(
  url: string,
  chunks: number,
  options: { maintenanceWorkMem?: string } = {},
): Promise<{ tenantId: string; loadSeconds: number; indexSeconds: number; notices: string[] }> {
  const notices: string[] = [];
  const client = new pg.Client(url);
  await client.connect();
  // pgvector says here when the graph outgrows maintenance_work_mem (the build then slows down).
  client.on("notice", (notice) => notices.push(notice.message ?? ""));
  try {
    const tenantId = (await client.query("insert into tenants (name) values ('bench') returning id")).rows[0]
      .id as string;
    const oid = (await client.query("select oid from pg_type where typname = 'vector'")).rows[0].oid as number;
    // The index migrations/0002 makes on a new database; the loaded model's own is built once, after the load.
    await client.query("drop index if exists chunks_embedding");
    await seedDocuments((text, params) => client.query(text, params), tenantId, chunks / PER_DOC);
    const { uniform, vector } = corpus(42);
    const started = performance.now();
    const batch = 1000;
    for (let start = 0; start < chunks; start += batch) {
      const count = Math.min(batch, chunks - start);
      const each = 4 + 4 * DIMS;
      // A binary vector[] parameter: array header, then per element its length, dim, unused, floats (big-endian).
      const buffer = Buffer.alloc(20 + count * (4 + each));
      buffer.writeInt32BE(1, 0);
      buffer.writeInt32BE(0, 4);
      buffer.writeInt32BE(oid, 8);
      buffer.writeInt32BE(count, 12);
      buffer.writeInt32BE(1, 16);
      const docs: string[] = [];
      const ordinals: number[] = [];
      const contents: string[] = [];
      for (let i = 0; i < count; i++) {
        const row = start + i;
        const cluster = Math.floor(uniform() * CLUSTERS);
        const v = vector(cluster);
        let offset = 20 + i * (4 + each);
        buffer.writeInt32BE(each, offset);
        buffer.writeInt16BE(DIMS, offset + 4);
        buffer.writeInt16BE(0, offset + 6);
        offset += 8;
        for (let j = 0; j < DIMS; j++) buffer.writeFloatBE(v[j] as number, offset + 4 * j);
        docs.push(`doc-${Math.floor(row / PER_DOC) + 1}`);
        ordinals.push(row % PER_DOC);
        contents.push(chunkText(uniform, cluster, row));
      }
      await client.query(
        `insert into chunks (tenant_id, document_key, owner, ordinal, content, content_hash, tokens, embedding, embedding_model, indexed)
         select $1, d.key, d.owner, t.ordinal, t.content, md5(t.content), 12, t.embedding, $6, true
         from unnest($2::text[], $3::int[], $4::text[], $5::vector[]) as t(doc, ordinal, content, embedding)
         join documents d on d.tenant_id = $1 and d.id = t.doc`,
        [tenantId, docs, ordinals, contents, buffer, BENCH_MODEL],
      );
    }
    const loadSeconds = (performance.now() - started) / 1000;
    const indexed = performance.now();
    await client.query(`set maintenance_work_mem = '${options.maintenanceWorkMem ?? "2GB"}'`);
    await client.query(Hnsw.createStatement(BENCH_MODEL, "vector_cosine_ops", { concurrently: false }));
    const indexSeconds = (performance.now() - indexed) / 1000;
    await client.query("vacuum analyze documents");
    await client.query("vacuum analyze chunks");
    return { tenantId, loadSeconds, indexSeconds, notices };
  } finally {
    await client.end();
  }
}

const chunkText = (_uniform: () => number, _cluster: number, row: number) => documentText(row);

async function seedDocuments(
  run: (text: string, params: unknown[]) => Promise<unknown>,
  tenantId: string,
  docs: number,
) {
  await run(
    `insert into documents (tenant_id, owner, id, title, metadata, content, content_hash, importance, chunk_count, created_at)
     select $1, case when g % 50 = 7 then 'user-1' else '' end, 'doc-' || g, 'Document ' || g,
            jsonb_build_object('team', 'team-' || (g % 100), 's01', g % 1000 = 0, 's10', g % 10 = 0, 's50', g % 2 = 0),
            'synthetic', md5(g::text), 1 + g % 10, ${PER_DOC},
            now() - make_interval(mins => g)
     from generate_series(1, $2::int) g`,
    [tenantId, docs],
  );
}

export type Scenario =
  | "unfiltered"
  | "filter 0.1%"
  | "filter 1%"
  | "filter 10%"
  | "filter 50%"
  | "user scope"
  | "hybrid";
/** Metadata filters matching 0.1%, 1%, 10% and 50% of the documents (see `seedDocuments`). */
export const FILTERS: Partial<Record<Scenario, Record<string, string | boolean>>> = {
  "filter 0.1%": { s01: true },
  "filter 1%": { team: "team-3" },
  "filter 10%": { s10: true },
  "filter 50%": { s50: true },
};
const SCENARIOS: Scenario[] = [
  "unfiltered",
  "filter 0.1%",
  "filter 1%",
  "filter 10%",
  "filter 50%",
  "user scope",
  "hybrid",
];

function request(scenario: Scenario, q: Query): Search.SearchInput {
  if (scenario === "hybrid") return { query: q.text, topK: K, mode: "hybrid" };
  if (scenario === "user scope") return { query: q.text, topK: K, mode: "vector", scope: "user" };
  const metadata = FILTERS[scenario];
  return { query: q.text, topK: K, mode: "vector", ...(metadata ? { filter: { metadata } } : {}) };
}

const LIVE = "d.deleted_at is null and (d.expires_at is null or d.expires_at > now())";
/** The scenario's scope and filter as plain SQL: $2 the tenant, $3 the owners, $4 the metadata filter. */
const scopeSql = (scenario: Scenario) =>
  `c.tenant_id = $2 and c.owner = any($3::text[]) and ${LIVE}${FILTERS[scenario] ? " and d.metadata @> $4::jsonb" : ""}`;
const rawParams = (scenario: Scenario, tenantId: string, q: Query) => [
  q.literal,
  tenantId,
  scenario === "user scope" ? ["user-1"] : ["user-1", ""],
  ...(FILTERS[scenario] ? [JSON.stringify(FILTERS[scenario])] : []),
  ...(scenario === "hybrid" ? [q.text] : []),
];

/**
 * What a competent engineer would hand-write for each case: one statement, prepared once per connection (as
 * Engram's are on `pg`), naming the loaded model's HNSW index predicate (`c.indexed` and the model: the corpus is
 * fully indexed), the same settings set once per session, hybrid's keyword list ranking at most as many matches as
 * Engram's does (`HYBRID_KEYWORD_MATCHES`), the nearest chunks by the index-served
 * `ORDER BY embedding <=> q LIMIT k` re-sorted (pgvector's relaxed iterative scan), joined rows returned.
 */
function rawSql(scenario: Scenario): string {
  const columns = "c.id::text, d.id as document_id, c.ordinal, c.content, d.title, d.source, d.metadata, d.created_at";
  if (scenario !== "hybrid") {
    return `select * from (
              select ${columns}, c.embedding <=> $1::vector as distance
              from chunks c join documents d on d.key = c.document_key
              where c.indexed and c.embedding_model = '${BENCH_MODEL}' and ${scopeSql(scenario)}
              order by c.embedding <=> $1::vector limit ${K}) s
            order by distance`;
  }
  return `with v as (select c.id, row_number() over (order by c.embedding <=> $1::vector) as r from chunks c
                     join documents d on d.key = c.document_key where c.indexed and c.embedding_model = '${BENCH_MODEL}' and ${scopeSql(scenario)}
                     order by c.embedding <=> $1::vector limit ${4 * K}),
               q as (select replace(plainto_tsquery('english', $4)::text, ' & ', ' | ')::tsquery as q),
               m as (select c.id, c.tsv from chunks c join documents d on d.key = c.document_key
                     where c.tsv @@ (select q from q) and ${scopeSql(scenario)}
                     limit ${Search.HYBRID_KEYWORD_MATCHES}),
               k as (select m.id, row_number() over (order by ts_rank_cd(m.tsv, (select q from q)) desc) as r
                     from m order by ts_rank_cd(m.tsv, (select q from q)) desc limit ${4 * K}),
               f as (select id, sum(1.0 / (60 + r)) as score from (select * from v union all select * from k) u group by id)
          select ${columns}, f.score from f join chunks c on c.id = f.id join documents d on d.key = c.document_key
          order by f.score desc limit ${K}`;
}

/**
 * The exact top k by plain SQL sharing no code with Engram: the distance wrapped (`+ 0`) so no index can serve the
 * order, every chunk of the scope compared.
 */
const TRUTH_SQL = (scenario: Scenario) => `
  select c.id::text as id from chunks c join documents d on d.key = c.document_key
  where ${scopeSql(scenario)}
  order by (c.embedding <=> $1::vector) + 0, c.id limit ${K}`;

/** Which strategy `auto` takes: exact when the scope's candidates number at most this bound (core/search). */
export const exactBound = (chunks: number) => Math.max(config().search.exactScanChunks, Math.sqrt(60 * chunks));

interface Timed {
  p50: number;
  p95: number;
  ids: string[][];
}

export async function timeEngram(
  db: Db,
  caller: Caller,
  scenario: Scenario,
  qs: Query[],
  embedder: Embedder,
  strategy: "auto" | "index" | "exact" = "auto",
): Promise<Timed> {
  const options = { embedder, strategy };
  for (const q of qs) await Search.query(db, caller, Search.SearchRequest.parse(request(scenario, q)), options); // warm cache and buffers
  const samples: number[] = [];
  const ids: string[][] = [];
  for (const q of qs) {
    const started = performance.now();
    const { results } = await Search.query(db, caller, Search.SearchRequest.parse(request(scenario, q)), options);
    samples.push(performance.now() - started);
    ids.push(results.map((r) => r.chunkId));
  }
  return { ...summarize(samples), ids };
}

async function timeRaw(url: string, tenantId: string, scenario: Scenario, qs: Query[], efSearch: number) {
  const client = new pg.Client(url);
  await client.connect();
  for (const setting of [`hnsw.ef_search = ${efSearch}`, "hnsw.iterative_scan = relaxed_order", "jit = off"]) {
    await client.query(`set ${setting}`);
  }
  const text = rawSql(scenario);
  const name = `raw_${scenario.replace(/\W/g, "_")}`;
  const once = async (q: Query) =>
    (await client.query<{ id: string }>({ name, text, values: rawParams(scenario, tenantId, q) })).rows;
  for (const q of qs) await once(q);
  const samples: number[] = [];
  const ids: string[][] = [];
  for (const q of qs) {
    const started = performance.now();
    const rows = await once(q);
    samples.push(performance.now() - started);
    ids.push(rows.map((r) => r.id));
  }
  await client.end();
  return { ...summarize(samples), ids };
}

/**
 * The exact top-k chunk ids per query: plain SQL (`TRUTH_SQL`) for vector scenarios; for hybrid, whose fusion has no
 * independent definition, Engram's own exact strategy (so its figure says what the index costs the fusion).
 */
export async function truth(db: Db, caller: Caller, scenario: Scenario, qs: Query[], embedder: Embedder) {
  const out: string[][] = [];
  for (const q of qs) {
    if (scenario === "hybrid") {
      const { results } = await Search.query(db, caller, Search.SearchRequest.parse(request(scenario, q)), {
        embedder,
        strategy: "exact",
      });
      out.push(results.map((r) => r.chunkId));
    } else {
      const rows = await db.query<{ id: string }>({
        text: TRUTH_SQL(scenario),
        params: rawParams(scenario, caller.tenantId, q),
      });
      out.push(rows.map((r) => r.id));
    }
  }
  return out;
}

export function recall(got: string[][], expected: string[][]) {
  let hit = 0;
  let total = 0;
  got.forEach((ids, i) => {
    const want = new Set(expected[i]);
    total += want.size;
    hit += ids.filter((id) => want.has(id)).length;
  });
  return total ? round(hit / total, 3) : 1;
}

async function benchPglite(chunks: number, qs: Query[], embedder: Embedder) {
  const db = await createPgliteDb("memory://");
  await migrate(db, { embeddingDimensions: DIMS, searchTextConfig: "english" });
  const tenantId = (
    (
      await db.query<{ id: string }>({ text: "insert into tenants (name) values ('bench') returning id", params: [] })
    )[0] as { id: string }
  ).id;
  await seedDocuments((text, params) => db.query({ text, params }), tenantId, chunks / PER_DOC);
  const { uniform, vector } = corpus(42);
  const started = performance.now();
  for (let start = 0; start < chunks; start += 500) {
    const rows = Array.from({ length: Math.min(500, chunks - start) }, (_, i) => {
      const cluster = Math.floor(uniform() * CLUSTERS);
      const row = start + i;
      return {
        doc: `doc-${Math.floor(row / PER_DOC) + 1}`,
        ordinal: row % PER_DOC,
        v: vectorLiteral(vector(cluster)),
        text: chunkText(uniform, cluster, row),
      };
    });
    await db.query({
      text: `insert into chunks (tenant_id, document_key, owner, ordinal, content, content_hash, tokens, embedding, embedding_model)
             select $1, d.key, d.owner, t.ordinal, t.content, md5(t.content), 12, t.embedding::vector, $6
             from unnest($2::text[], $3::int[], $4::text[], $5::text[]) as t(doc, ordinal, content, embedding)
             join documents d on d.tenant_id = $1 and d.id = t.doc`,
      params: [
        tenantId,
        rows.map((r) => r.doc),
        rows.map((r) => r.ordinal),
        rows.map((r) => r.text),
        rows.map((r) => r.v),
        BENCH_MODEL,
      ],
    });
  }
  const loadSeconds = (performance.now() - started) / 1000;
  await db.query({ text: "analyze", params: [] });
  const caller = benchCaller(tenantId);
  const rows: Record<string, unknown>[] = [];
  for (const scenario of ["unfiltered", "hybrid"] as const) {
    const exact = await truth(db, caller, scenario, qs, embedder);
    const timed = await timeEngram(db, caller, scenario, qs, embedder);
    rows.push({
      driver: "pglite",
      chunks,
      scenario,
      "recall@10": recall(timed.ids, exact),
      "p50 ms": timed.p50,
      "p95 ms": timed.p95,
      note: `loaded at ${round(chunks / loadSeconds, 0)} rows/s`,
    });
  }
  await db.close();
  return rows;
}

export async function benchSearch(opts: { quick: boolean }): Promise<Record<string, unknown>[]> {
  setConfig({ LOG_LEVEL: "silent" });
  const chunks = opts.quick ? 5_000 : 100_000;
  const count = opts.quick ? 30 : 200;
  const pgliteChunks = opts.quick ? 1_000 : 20_000;
  const efSearch = config().search.efSearch; // the same ef_search for Engram and the raw SQL
  const qs = queries(count);
  const embedder = knownEmbedder(qs);
  const rows: Record<string, unknown>[] = [];

  const name = await createDatabase();
  const url = pgUrl(name);
  const pgDb = createPgDb(url);
  const neon = await sharedNeonServer();
  const neonDb = createNeonDb(neonConnectionString(name, neon.port), { fetchEndpoint: neon.url });
  try {
    await migrate(pgDb, { embeddingDimensions: DIMS, searchTextConfig: "english" });
    const loaded = await loadPg(url, chunks);
    rows.push({
      driver: "pg",
      chunks,
      scenario: "load",
      note: `${round(chunks / loaded.loadSeconds, 0)} rows/s; HNSW build ${round(loaded.indexSeconds, 1)} s; ef_search ${efSearch}`,
    });
    const caller = benchCaller(loaded.tenantId);
    const bound = exactBound(chunks);
    for (const scenario of SCENARIOS) {
      const exact = await truth(pgDb, caller, scenario, qs, embedder);
      const raw = await timeRaw(url, loaded.tenantId, scenario, qs, efSearch);
      const [candidates] = await pgDb.query<{ n: number }>({
        text: `select count(*)::int as n from chunks c join documents d on d.key = c.document_key
               where $1::text is not null and ${scopeSql(scenario)}`,
        params: rawParams(scenario, loaded.tenantId, qs[0] as Query).slice(0, FILTERS[scenario] ? 4 : 3),
      });
      const n = Number(candidates?.n ?? 0);
      const strategies = FILTERS[scenario] ? (["auto", "index", "exact"] as const) : (["auto"] as const);
      for (const strategy of strategies) {
        const engram = await timeEngram(pgDb, caller, scenario, qs, embedder, strategy);
        const viaNeon =
          strategy === "auto" && (scenario === "unfiltered" || scenario === "hybrid")
            ? await timeEngram(neonDb, caller, scenario, qs, embedder)
            : undefined;
        rows.push({
          driver: "pg",
          chunks,
          scenario,
          strategy: strategy === "auto" ? `auto (${n <= bound ? "exact" : "index"}: ${n} chunks)` : strategy,
          "recall@10": recall(engram.ids, exact),
          "full topK": engram.ids.every((ids) => ids.length === K),
          "p50 ms": engram.p50,
          "p95 ms": engram.p95,
          ...(strategy === "auto"
            ? {
                "raw recall@10": recall(raw.ids, exact),
                "raw p50 ms": raw.p50,
                "raw p95 ms": raw.p95,
                "p95 / raw": round(engram.p95 / raw.p95),
              }
            : {}),
          ...(viaNeon ? { "neon-http p50 ms": viaNeon.p50, "neon-http p95 ms": viaNeon.p95 } : {}),
        });
      }
    }
  } finally {
    await pgDb.close();
    await neonDb.close();
    await dropDatabase(name);
  }
  rows.push(...(await benchPglite(pgliteChunks, qs.slice(0, Math.min(count, 50)), embedder)));
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table } = await import("./support");
  const rows = await benchSearch({ quick: process.argv.includes("--quick") });
  console.log(table(rows));
  process.exit(0);
}
