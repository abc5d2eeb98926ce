/**
 * `halfvec` against `vector` at 1,536 dimensions (#17), which decides the column type below pgvector's 2,000-dimension
 * HNSW limit (migrations/0015; above it `halfvec` is the only indexable type). bench/search.ts's corpus (100,000
 * chunks, `--quick` 5,000) is loaded as `vector`, its HNSW index built and timed, and Engram's searches measured; the
 * column is then converted to `halfvec` in place (the very same vectors, rounded to 16 bits), its index built and
 * timed, and the same searches measured again. Recall@10 is always against the exact top 10 of the 32-bit vectors,
 * computed before the conversion by bench/search.ts's plain SQL (hybrid: Engram's exact strategy on them).
 */
import pg from "pg";
import { config, setConfig } from "../core/config";
import { loadMigrations, migrate } from "../core/db/migrate";
import { createPgDb } from "../core/db/pg";
import * as Hnsw from "../core/search/hnsw";
import { createDatabase, dropDatabase, pgUrl } from "../kit/db";
import {
  BENCH_MODEL,
  benchCaller,
  DIMS,
  knownEmbedder,
  loadPg,
  queries,
  recall,
  type Scenario,
  timeEngram,
  truth,
} from "./search";
import { round } from "./support";

/** Unfiltered and 10%: the HNSW index; 1% (1,000 chunks at 100,000) and the user's 2%: exact scans; hybrid. */
const SCENARIOS: Scenario[] = ["unfiltered", "filter 10%", "filter 1%", "user scope", "hybrid"];

export async function benchHalfvec(opts: { quick: boolean }): Promise<Record<string, unknown>[]> {
  setConfig({ LOG_LEVEL: "silent" });
  const chunks = opts.quick ? 5_000 : 100_000;
  const qs = queries(opts.quick ? 30 : 200);
  const embedder = knownEmbedder(qs);
  const settings = { embeddingDimensions: DIMS, searchTextConfig: "english" };
  const name = await createDatabase();
  const url = pgUrl(name);
  let db = createPgDb(url);
  const admin = new pg.Client(url);
  const rows: Record<string, unknown>[] = [];
  try {
    await migrate(db, settings);
    const loaded = await loadPg(url, chunks);
    await admin.connect();
    const caller = benchCaller(loaded.tenantId);
    const exact = new Map<Scenario, string[][]>();
    for (const scenario of SCENARIOS) exact.set(scenario, await truth(db, caller, scenario, qs, embedder));

    const measure = async (type: string, buildSeconds: number) => {
      const [size] = (
        await admin.query(
          "select pg_relation_size($1::regclass) as index, pg_table_size('chunks') as tbl, (select avg(pg_column_size(embedding)) from chunks) as col",
          [Hnsw.name(BENCH_MODEL)],
        )
      ).rows;
      for (const scenario of SCENARIOS) {
        const timed = await timeEngram(db, caller, scenario, qs, embedder);
        rows.push({
          type,
          chunks,
          scenario,
          "recall@10": recall(timed.ids, exact.get(scenario) as string[][]),
          "p50 ms": timed.p50,
          "p95 ms": timed.p95,
          ...(scenario === "unfiltered"
            ? {
                "index MB": round(Number(size.index) / 1048576, 1),
                "table MB": round(Number(size.tbl) / 1048576, 1),
                "vector bytes": Math.round(Number(size.col)),
                "build s": round(buildSeconds, 1),
              }
            : {}),
        });
      }
    };
    await measure(`vector(${DIMS})`, loaded.indexSeconds);

    // The same vectors as halfvec, stored inline as migrations/0015 stores them, and its own chunk_embedding().
    await admin.query(`drop index ${Hnsw.name(BENCH_MODEL)}`);
    await admin.query(
      `alter table chunks alter column embedding type halfvec(${DIMS}), alter column embedding set storage plain`,
    );
    const typed = loadMigrations(settings)
      .find((m) => m.id === "0015_halfvec")
      ?.statements.at(-1);
    if (!typed) throw new Error("migrations/0015_halfvec.sql defines no chunk_embedding()");
    await admin.query(typed);
    await admin.query("set maintenance_work_mem = '2GB'"); // as loadPg builds the vector index
    const started = performance.now();
    await admin.query(Hnsw.createStatement(BENCH_MODEL, "halfvec_cosine_ops", { concurrently: false }));
    const buildSeconds = (performance.now() - started) / 1000;
    await admin.query("vacuum analyze chunks");
    // A new pool: the old connections' prepared search statements were made for the vector column.
    await db.close();
    db = createPgDb(url);
    await measure(`halfvec(${DIMS})`, buildSeconds);
    rows.push({ type: "note", note: `ef_search ${config().search.efSearch}; HNSW m 16, ef_construction 64` });
    return rows;
  } finally {
    await admin.end().catch(() => {});
    await db.close().catch(() => {});
    await dropDatabase(name);
  }
}
