/**
 * Re-embedding (#17): a tenant's chunks, loaded as another model's (`bench-synthetic`), moved to the offline
 * embedder by `Reembed.run` while searches run back to back on the same pool; the same searches idle before it (as
 * the loaded model's process runs them) and after it, once every chunk is of the active model and in the HNSW
 * index. The bar: search p95 during the re-embed within 2x its idle p95. `--reembed-minutes=N` stops the
 * re-embed after N minutes (then only the idle figure before it exists); `--reembed-pace=N` sets its rest after each
 * batch, in multiples of the batch's write (default REEMBED_PACE's, 1); `--reembed-chunks=N` loads N chunks
 * instead of 100,000 (5,000 with `--quick`). The row also splits the re-embed's time per batch into embedding, the
 * read and the write (whose HNSW inserts are most of it: docs/search.md), and gives the WAL it wrote and the load
 * average, without which no figure here means much on a shared machine.
 */
import { loadavg } from "node:os";
import pg from "pg";
import { config, setConfig } from "../core/config";
import { compile, type Db } from "../core/db";
import { migrate } from "../core/db/migrate";
import { createPgDb } from "../core/db/pg";
import { createOfflineEmbedder } from "../core/embedding/offline";
import * as Reembed from "../core/embedding/reembed";
import type { Embedder } from "../core/embedding/types";
import * as Search from "../core/search";
import { createDatabase, dropDatabase, pgUrl } from "../kit/db";
import { wordOfRank } from "./chat";
import { benchCaller, DIMS, loadPg } from "./search";
import { round, summarize } from "./support";

const flag = (name: string) =>
  ((v) => (v ? Number(v) : undefined))(process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3));
/** `--reembed-minutes=N`: stop the re-embed after N minutes (a machine too busy to finish 100,000 in a session). */
const minutes = flag("reembed-minutes");
/** `--reembed-chunks=N`: the corpus size (default 100,000; 5,000 with --quick). */
const size = flag("reembed-chunks");
/** `--reembed-pace=N`: the re-embed's pace (Reembed.Options.pace; default REEMBED_PACE's). */
const pace = flag("reembed-pace");
const load1 = () => round(loadavg()[0] ?? 0, 1);

/** The re-embed's own statements timed by kind (the searches running beside it use the untimed Db). */
function timed(db: Db) {
  const ms = { read: 0, write: 0, other: 0 };
  const kind = (text: string) =>
    text.includes("with held") ? "write" : text.includes("select c.id, c.context") ? "read" : "other";
  const wrapped: Db = {
    driver: db.driver,
    capabilities: db.capabilities,
    query: (async (q, options) => {
      const t0 = performance.now();
      try {
        return await db.query(q, options);
      } finally {
        ms[kind(compile(q).text)] += performance.now() - t0;
      }
    }) as Db["query"],
    batch: (qs) => db.batch(qs),
    ping: () => db.ping(),
    close: () => db.close(),
  };
  return { db: wrapped, ms };
}

/** WAL position and the chunks table's autovacuum count, from a connection of its own. */
async function walAndVacuums(url: string): Promise<{ lsn: string; autovacuums: number }> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    const { rows } = await client.query(`
      select pg_current_wal_insert_lsn()::text as lsn,
             (select autovacuum_count from pg_stat_user_tables where relname = 'chunks')::int as autovacuums`);
    return { lsn: rows[0].lsn, autovacuums: Number(rows[0].autovacuums) };
  } finally {
    await client.end();
  }
}

async function walBytes(url: string, from: string, to: string): Promise<number> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    return Number((await client.query("select pg_wal_lsn_diff($1, $2)::bigint as d", [to, from])).rows[0].d);
  } finally {
    await client.end();
  }
}

/** Chunks per batch: Reembed.run's default, named so the per-batch figures say what they divide by. */
const BATCH = 256;

export async function benchReembed(opts: { quick: boolean }): Promise<Record<string, unknown>[]> {
  setConfig({ LOG_LEVEL: "silent", SEARCH_QUERY_CACHE_TTL_SECONDS: "0" });
  const chunks = size ?? (opts.quick ? 5_000 : 100_000);
  const offline = createOfflineEmbedder({ dimensions: DIMS });
  let embedMs = 0;
  const embedder: Embedder = {
    ...offline,
    embed: async (texts, options) => {
      const t0 = performance.now();
      try {
        return await offline.embed(texts, options);
      } finally {
        embedMs += performance.now() - t0;
      }
    },
  };
  // Three-word questions of realistic word frequency, as in bench/search.ts.
  const questions = Array.from({ length: 50 }, (_, i) =>
    [wordOfRank(20 + ((i * 37) % 400)), wordOfRank(50 + ((i * 11) % 900)), wordOfRank(5 + ((i * 7) % 200))].join(" "),
  );
  const name = await createDatabase();
  const db = createPgDb(pgUrl(name));
  try {
    await migrate(db, { embeddingDimensions: DIMS, searchTextConfig: "english" });
    const loaded = await loadPg(pgUrl(name), chunks);
    const caller = benchCaller(loaded.tenantId);
    const search = async (i: number, as: Embedder = offline) => {
      const t0 = performance.now();
      await Search.query(
        db,
        caller,
        Search.SearchRequest.parse({ query: questions[i % questions.length] as string, mode: "hybrid" }),
        { embedder: as },
      );
      return performance.now() - t0;
    };
    // Idle before the switch too: the same searches, as a process of the loaded model would run them (every chunk
    // of its model and in the index); the baseline when a time limit stops the re-embed before the end.
    const before: number[] = [];
    const asLoaded: Embedder = { ...offline, model: "bench-synthetic" };
    for (let i = 0; i < 200; i++) before.push(await search(i, asLoaded));

    const during: number[] = [];
    let done = false;
    const loadBefore = load1();
    const wal0 = await walAndVacuums(pgUrl(name));
    const started = performance.now();
    // A line every tenth of the run (the full run is long on a busy machine), with the load average.
    const step = Math.max(1_000, Math.floor(chunks / 10));
    let batches = 0;
    const onProgress = ({ done, total }: { done: number; total: number }) => {
      batches++;
      if (Math.floor(done / step) > Math.floor((done - BATCH) / step)) {
        const s = round((performance.now() - started) / 1000, 0);
        process.stderr.write(`reembed: ${done}/${total} after ${s} s, load average ${load1()}\n`);
      }
    };
    const budgetMs = minutes === undefined ? undefined : minutes * 60_000;
    const timing = timed(db);
    const running = Reembed.run(timing.db, {
      tenantId: loaded.tenantId,
      embedder,
      batchSize: BATCH,
      pace,
      onProgress,
      budgetMs,
    }).finally(() => {
      done = true;
    });
    for (let i = 0; !done; i++) during.push(await search(i));
    const report = await running;
    const seconds = (performance.now() - started) / 1000;
    const loadDuring = load1();
    const wal1 = await walAndVacuums(pgUrl(name));
    const wal = await walBytes(pgUrl(name), wal0.lsn, wal1.lsn);
    const perBatch = (ms: number) => round(ms / Math.max(1, batches), 0);

    const d = summarize(during);
    const b = summarize(before);
    // After: once every chunk is of the new model and indexed (not reached when the time limit stopped it).
    const idle: number[] = [];
    // As many idle searches as ran during it, within 200-2,000: more add nothing to a p95 but time.
    if (report.remaining === 0) {
      for (let i = 0; i < Math.min(Math.max(200, during.length), 2_000); i++) idle.push(await search(i));
    }
    const a = idle.length ? summarize(idle) : undefined;
    return [
      {
        scenario: `reembed, offline embedder, pg, pace ${pace ?? config().embedding.reembedPace}`,
        chunks,
        "re-embedded": report.reembedded,
        "chunks/s": round(report.reembedded / seconds, 0),
        seconds: round(seconds, 1),
        "load avg before / end": `${loadBefore} / ${loadDuring}`,
        "ms per batch of 256: embed / read / write": `${perBatch(embedMs)} / ${perBatch(timing.ms.read)} / ${perBatch(timing.ms.write)}`,
        "WAL KB per chunk": round(wal / 1024 / Math.max(1, report.reembedded), 1),
        "autovacuums of chunks during": wal1.autovacuums - wal0.autovacuums,
        "searches during": during.length,
        "hybrid p95 during ms": d.p95,
        "hybrid p95 idle before ms": b.p95,
        "during / idle before": round(d.p95 / b.p95),
        ...(a ? { "hybrid p95 idle after ms": a.p95, "during / idle after": round(d.p95 / a.p95) } : {}),
        remaining: report.remaining,
        ...(report.stopped === "budget" ? { note: `stopped by --reembed-minutes=${minutes}` } : {}),
        error:
          report.stopped && report.stopped !== "budget"
            ? `stopped: ${report.stopped} ${report.error ?? ""}`
            : undefined,
      },
    ];
  } finally {
    await db.close();
    await dropDatabase(name);
  }
}
