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
 * documents belong to `user-1` (2,000 chunks at 100,000), the rest to the shared space; `metadata.team`
 * cycles through 100 values, so `{"team":"team-3"}` matches 1%. Loaded with a binary `vector[]` parameter,
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
import { createDatabase, dropDatabase, pgUrl, sharedNeonServer } from "../test/support/db";
import { neonConnectionString } from "../test/support/neon-server";
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

/** An embedder that knows the benchmark's query vectors (a real one would make the figures about the model). */
export function knownEmbedder(qs: Query[]): Embedder {
  const byText = new Map(qs.map((q) => [q.text, q.vector]));
  return {
    provider: "offline",
    model: "bench-synthetic",
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
): Promise<{ tenantId: string; loadSeconds: number; indexSeconds: number }> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    const tenantId = (await client.query("insert into tenants (name) values ('bench') returning id")).rows[0]
      .id as string;
    const oid = (await client.query("select oid from pg_type where typname = 'vector'")).rows[0].oid as number;
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
         select $1, d.key, d.owner, t.ordinal, t.content, md5(t.content), 12, t.embedding, 'bench-synthetic', true
         from unnest($2::text[], $3::int[], $4::text[], $5::vector[]) as t(doc, ordinal, content, embedding)
         join documents d on d.tenant_id = $1 and d.id = t.doc`,
        [tenantId, docs, ordinals, contents, buffer],
      );
    }
    const loadSeconds = (performance.now() - started) / 1000;
    const indexed = performance.now();
    await client.query("set maintenance_work_mem = '2GB'");
    await client.query(
      "create index chunks_embedding on chunks using hnsw (embedding vector_cosine_ops) with (m = 16, ef_construction = 64) where indexed",
    );
    const indexSeconds = (performance.now() - indexed) / 1000;
    await client.query("vacuum analyze documents");
    await client.query("vacuum analyze chunks");
    return { tenantId, loadSeconds, indexSeconds };
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
            jsonb_build_object('team', 'team-' || (g % 100)), 'synthetic', md5(g::text), 1 + g % 10, ${PER_DOC},
            now() - make_interval(mins => g)
     from generate_series(1, $2::int) g`,
    [tenantId, docs],
  );
}

type Scenario = "unfiltered" | "metadata 1%" | "user scope" | "hybrid";
const SCENARIOS: Scenario[] = ["unfiltered", "metadata 1%", "user scope", "hybrid"];

function request(scenario: Scenario, q: Query): Parameters<typeof Search.query>[2] {
  switch (scenario) {
    case "unfiltered":
      return { query: q.text, topK: K, mode: "vector" };
    case "metadata 1%":
      return { query: q.text, topK: K, mode: "vector", filter: { metadata: { team: "team-3" } } };
    case "user scope":
      return { query: q.text, topK: K, mode: "vector", scope: "user" };
    case "hybrid":
      return { query: q.text, topK: K, mode: "hybrid" };
  }
}

/**
 * What a competent engineer would hand-write for each case, run through `pg` with nothing around it. The
 * corpus is fully indexed, so the vector lists name `c.indexed`, the partial HNSW index's predicate.
 */
function rawSql(scenario: Scenario, tenantId: string, efSearch: number): { settings: string[]; text: string } {
  const select = `select c.id::text, d.id as document_id, c.ordinal, c.content, d.title, d.source, d.metadata, d.created_at`;
  const live = `d.deleted_at is null and (d.expires_at is null or d.expires_at > now())`;
  const settings = [
    `set local hnsw.ef_search = ${efSearch}`,
    "set local hnsw.iterative_scan = relaxed_order",
    "set local jit = off",
  ];
  switch (scenario) {
    case "unfiltered":
      return {
        settings,
        text: `${select}, 1 - (c.embedding <=> $1::vector) as score from chunks c join documents d on d.key = c.document_key
               where c.tenant_id = '${tenantId}' and c.owner = any('{user-1,""}') and c.indexed and ${live}
               order by c.embedding <=> $1::vector limit ${K}`,
      };
    case "metadata 1%":
      return {
        settings,
        text: `${select}, 1 - (c.embedding <=> $1::vector) as score from chunks c join documents d on d.key = c.document_key
               where c.tenant_id = '${tenantId}' and c.owner = any('{user-1,""}') and ${live}
                 and d.metadata @> '{"team":"team-3"}' order by score desc limit ${K}`,
      };
    case "user scope":
      return {
        settings,
        text: `${select}, 1 - (c.embedding <=> $1::vector) as score from chunks c join documents d on d.key = c.document_key
               where c.tenant_id = '${tenantId}' and c.owner = 'user-1' and ${live} order by score desc limit ${K}`,
      };
    case "hybrid":
      return {
        settings,
        text: `with v as (select c.id, row_number() over (order by c.embedding <=> $1::vector) as r from chunks c
                          where c.tenant_id = '${tenantId}' and c.owner = any('{user-1,""}') and c.indexed
                          order by c.embedding <=> $1::vector limit ${4 * K}),
                    q as (select replace(plainto_tsquery('english', $2)::text, ' & ', ' | ')::tsquery as q),
                    k as (select c.id, row_number() over (order by ts_rank_cd(c.tsv, (select q from q)) desc) as r
                          from chunks c where c.tsv @@ (select q from q)
                            and c.tenant_id = '${tenantId}' and c.owner = any('{user-1,""}')
                          order by ts_rank_cd(c.tsv, (select q from q)) desc limit ${4 * K}),
                    f as (select id, sum(1.0 / (60 + r)) as score from (select * from v union all select * from k) u group by id)
               ${select}, f.score from f join chunks c on c.id = f.id join documents d on d.key = c.document_key
               where ${live} order by f.score desc limit ${K}`,
      };
  }
}

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
): Promise<Timed> {
  for (const q of qs) await Search.query(db, caller, request(scenario, q), { embedder }); // warm cache and buffers
  const samples: number[] = [];
  const ids: string[][] = [];
  for (const q of qs) {
    const started = performance.now();
    const { results } = await Search.query(db, caller, request(scenario, q), { embedder });
    samples.push(performance.now() - started);
    ids.push(results.map((r) => r.chunkId));
  }
  return { ...summarize(samples), ids };
}

async function timeRaw(url: string, tenantId: string, scenario: Scenario, qs: Query[], efSearch: number) {
  const client = new pg.Client(url);
  await client.connect();
  const { settings, text } = rawSql(scenario, tenantId, efSearch);
  const once = async (q: Query) => {
    await client.query("begin");
    for (const s of settings) await client.query(s);
    const params = scenario === "hybrid" ? [q.literal, q.text] : [q.literal];
    const rows = (await client.query(text, params)).rows;
    await client.query("commit");
    return rows;
  };
  for (const q of qs) await once(q);
  const samples: number[] = [];
  for (const q of qs) {
    const started = performance.now();
    await once(q);
    samples.push(performance.now() - started);
  }
  await client.end();
  return summarize(samples);
}

/** Exact top-k chunk ids (the index switched off), per query. */
export async function truth(db: Db, caller: Caller, scenario: Scenario, qs: Query[], embedder: Embedder) {
  const out: string[][] = [];
  for (const q of qs) {
    const { results } = await Search.query(db, caller, request(scenario, q), { embedder, strategy: "exact" });
    out.push(results.map((r) => r.chunkId));
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
             select $1, d.key, d.owner, t.ordinal, t.content, md5(t.content), 12, t.embedding::vector, 'bench-synthetic'
             from unnest($2::text[], $3::int[], $4::text[], $5::text[]) as t(doc, ordinal, content, embedding)
             join documents d on d.tenant_id = $1 and d.id = t.doc`,
      params: [
        tenantId,
        rows.map((r) => r.doc),
        rows.map((r) => r.ordinal),
        rows.map((r) => r.text),
        rows.map((r) => r.v),
      ],
    });
  }
  const loadSeconds = (performance.now() - started) / 1000;
  await db.query({ text: "analyze", params: [] });
  const caller = benchCaller(tenantId);
  const rows: Record<string, unknown>[] = [];
  for (const scenario of ["unfiltered", "hybrid"] as const) {
    const timed = await timeEngram(db, caller, scenario, qs, embedder);
    rows.push({
      driver: "pglite",
      chunks,
      scenario,
      "recall@10": "1 (exact)",
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
    for (const scenario of SCENARIOS) {
      const exact = await truth(pgDb, caller, scenario, qs, embedder);
      const engram = await timeEngram(pgDb, caller, scenario, qs, embedder);
      const raw = await timeRaw(url, loaded.tenantId, scenario, qs, efSearch);
      const viaNeon = await timeEngram(neonDb, caller, scenario, qs, embedder);
      const full = engram.ids.every((ids) => ids.length === K);
      rows.push({
        driver: "pg",
        chunks,
        scenario,
        "recall@10": recall(engram.ids, exact),
        "full topK": full,
        "p50 ms": engram.p50,
        "p95 ms": engram.p95,
        "raw p50 ms": raw.p50,
        "raw p95 ms": raw.p95,
        "p95 / raw": round(engram.p95 / raw.p95),
        "neon-http p50 ms": viaNeon.p50,
        "neon-http p95 ms": viaNeon.p95,
      });
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
