/**
 * Re-embedding (#17): a tenant's chunks, loaded as another model's (`bench-synthetic`), moved to the offline
 * embedder by `Reembed.run` while searches run back to back on the same pool; then the same searches idle, once
 * every chunk is of the active model and in the HNSW index. The bar: search p95 during the re-embed within
 * 2x its idle p95.
 */
import { setConfig } from "../core/config";
import { migrate } from "../core/db/migrate";
import { createPgDb } from "../core/db/pg";
import { createOfflineEmbedder } from "../core/embedding/offline";
import * as Reembed from "../core/embedding/reembed";
import * as Search from "../core/search";
import { createDatabase, dropDatabase, pgUrl } from "../test/support/db";
import { wordOfRank } from "./chat";
import { benchCaller, DIMS, loadPg } from "./search";
import { round, summarize } from "./support";

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
    const search = async (i: number) => {
      const t0 = performance.now();
      await Search.query(
        db,
        caller,
        Search.SearchRequest.parse({ query: questions[i % questions.length] as string, mode: "hybrid" }),
        { embedder },
      );
      return performance.now() - t0;
    };

    const during: number[] = [];
    let done = false;
    const started = performance.now();
    const running = Reembed.run(db, { tenantId: loaded.tenantId, embedder }).finally(() => {
      done = true;
    });
    for (let i = 0; !done; i++) during.push(await search(i));
    const report = await running;
    const seconds = (performance.now() - started) / 1000;

    const idle: number[] = [];
    for (let i = 0; i < Math.max(200, during.length); i++) idle.push(await search(i));
    const d = summarize(during);
    const s = summarize(idle);
    return [
      {
        scenario: "reembed, offline embedder, pg",
        chunks,
        "chunks/s": round(report.reembedded / seconds, 0),
        seconds: round(seconds, 1),
        "searches during": during.length,
        "hybrid p95 during ms": d.p95,
        "hybrid p95 idle ms": s.p95,
        "during / idle": round(d.p95 / s.p95),
        remaining: report.remaining,
        error: report.stopped ? `stopped: ${report.stopped} ${report.error ?? ""}` : undefined,
      },
    ];
  } finally {
    await db.close();
    await dropDatabase(name);
  }
}
