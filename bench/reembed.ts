/**
 * Re-embedding (#17): a tenant's chunks, loaded as another model's (`bench-synthetic`), moved to the offline
 * embedder by `Reembed.run` while searches run back to back on the same pool; the same searches idle before it (as
 * the loaded model's process runs them) and after it, once every chunk is of the active model and in the HNSW
 * index. The bar: search p95 during the re-embed within 2x its idle p95. `--reembed-minutes=N` stops the
 * re-embed after N minutes (then only the idle figure before it exists).
 */
import { setConfig } from "../core/config";
import { migrate } from "../core/db/migrate";
import { createPgDb } from "../core/db/pg";
import { createOfflineEmbedder } from "../core/embedding/offline";
import * as Reembed from "../core/embedding/reembed";
import type { Embedder } from "../core/embedding/types";
import * as Search from "../core/search";
import { createDatabase, dropDatabase, pgUrl } from "../test/support/db";
import { wordOfRank } from "./chat";
import { benchCaller, DIMS, loadPg } from "./search";
import { round, summarize } from "./support";

/** `--reembed-minutes=N`: stop the re-embed after N minutes (a machine too busy to finish 100,000 in a session). */
const minutes = ((m) => (m ? Number(m) : undefined))(
  process.argv.find((a) => a.startsWith("--reembed-minutes="))?.slice(18),
);

export async function benchReembed(opts: { quick: boolean }): Promise<Record<string, unknown>[]> {
  setConfig({ LOG_LEVEL: "silent", SEARCH_QUERY_CACHE_TTL_SECONDS: "0" });
  const chunks = opts.quick ? 5_000 : 100_000;
  const embedder = createOfflineEmbedder({ dimensions: DIMS });
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
    const search = async (i: number, as: Embedder = embedder) => {
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
    const asLoaded: Embedder = { ...embedder, model: "bench-synthetic" };
    for (let i = 0; i < 200; i++) before.push(await search(i, asLoaded));

    const during: number[] = [];
    let done = false;
    const started = performance.now();
    // A line every 10,000 chunks: the full run takes the better part of an hour on a busy machine.
    const onProgress = ({ done, total }: { done: number; total: number }) => {
      if (Math.floor(done / 10_000) > Math.floor((done - 256) / 10_000)) {
        process.stderr.write(`reembed: ${done}/${total} after ${round((performance.now() - started) / 1000, 0)} s\n`);
      }
    };
    const budgetMs = minutes === undefined ? undefined : minutes * 60_000;
    const running = Reembed.run(db, { tenantId: loaded.tenantId, embedder, onProgress, budgetMs }).finally(() => {
      done = true;
    });
    for (let i = 0; !done; i++) during.push(await search(i));
    const report = await running;
    const seconds = (performance.now() - started) / 1000;

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
        scenario: "reembed, offline embedder, pg",
        chunks,
        "re-embedded": report.reembedded,
        "chunks/s": round(report.reembedded / seconds, 0),
        seconds: round(seconds, 1),
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
