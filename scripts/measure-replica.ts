/**
 * What a read replica costs and buys (docs/replicas.md), on the test rig's streaming replica: how long the replica
 * takes to replay an ingest, what recording a write's WAL position adds to it, and search latency through the
 * primary alone beside the primary with its replica (steady, and right after the caller's own ingest), on `pg` and on
 * the Neon HTTP driver behind local Neon-protocol servers that add `--delay` ms per round trip. Every figure is
 * printed beside its baseline from the same run, the samples interleaved.
 *
 *   node bin/run-ts.js scripts/measure-replica.ts [--docs 1000] [--runs 200] [--delay 5]
 */
import { parseArgs } from "node:util";
import { neonConfig } from "@neondatabase/serverless";
import pg from "pg";
import { round, summarize } from "../bench/support";
import { setConfig } from "../core/config";
import type { Db } from "../core/db";
import { migrate } from "../core/db/migrate";
import { createNeonDb } from "../core/db/neon";
import { createPgDb } from "../core/db/pg";
import * as Replica from "../core/db/replica";
import { useEmbedder } from "../core/embedding";
import { createOfflineEmbedder } from "../core/embedding/offline";
import * as Ingest from "../core/ingest";
import * as Search from "../core/search";
import { callerFor, createDatabase, DIMENSIONS, dropDatabase, pgUrl } from "../kit/db";
import { prose, UNLIMITED } from "../kit/factories";
import { localFetchEndpoint, neonConnectionString, startNeonServer } from "../kit/neon-server";
import { caughtUp, startReplica } from "../kit/replica";

const { values } = parseArgs({
  options: {
    docs: { type: "string", default: "1000" },
    runs: { type: "string", default: "200" },
    delay: { type: "string", default: "5" },
  },
});
const DOCS = Number(values.docs);
const RUNS = Number(values.runs);
const DELAY = Number(values.delay);

setConfig({ LOG_LEVEL: "error", ...UNLIMITED });
useEmbedder(createOfflineEmbedder({ dimensions: DIMENSIONS }));
const replica = await startReplica();
const database = await createDatabase();
const ms = (times: number[]) => {
  const t = summarize(times);
  return `${t.p50} / ${t.p95}`;
};

try {
  const setup = createPgDb(pgUrl(database));
  await migrate(setup, { embeddingDimensions: DIMENSIONS, searchTextConfig: "english" });
  const caller = await callerFor(setup, "measure");
  for (let i = 0; i < DOCS; i += 50) {
    const batch = Array.from({ length: Math.min(50, DOCS - i) }, (_, j) => ({
      id: `d${i + j}`,
      content: prose(i + j, 2, 4),
    }));
    await Ingest.run(setup, caller, batch);
  }
  await setup.close();
  await caughtUp(pgUrl(database), replica.databaseUrl(database));
  const query = (i: number) => prose(100_000 + i, 1, 1).slice(0, 60);

  // Replay lag: from an ingest's answer until the replica has replayed the WAL position it recorded.
  {
    const primary = createPgDb(pgUrl(database));
    const db = Replica.withReplica(primary, createPgDb(replica.databaseUrl(database)), { waitMs: 100 });
    const standby = new pg.Client({ connectionString: replica.databaseUrl(database) });
    await standby.connect();
    const lag: number[] = [];
    const mark: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      await Ingest.run(db, caller, [{ id: `lag${i}`, content: prose(200_000 + i, 1, 3) }]);
      const done = performance.now();
      const [row] = await primary.query<{ lsn: string }>({
        text: "select lsn::text as lsn from replica_marks where tenant_id = $1",
        params: [caller.tenantId],
      });
      for (;;) {
        const { rows } = await standby.query("select pg_last_wal_replay_lsn() >= $1::pg_lsn as done", [row?.lsn]);
        if (rows[0]?.done) break;
      }
      lag.push(performance.now() - done);
      const started = performance.now();
      await Replica.written(db, caller.tenantId);
      mark.push(performance.now() - started);
    }
    await standby.end();
    await db.close();
    const t = summarize(lag);
    console.log(
      `\nreplay lag after an ingest (pg, ${RUNS} ingests): p50 ${t.p50} ms, p95 ${t.p95} ms, max ${round(Math.max(...lag), 2)} ms`,
    );
    console.log(`recording a write's WAL position (one statement after the write): p50/p95 ${ms(mark)} ms`);
  }

  console.log(`\nsearch (hybrid, topK 10, ${DOCS} documents), p50 / p95 ms over ${RUNS} interleaved runs each`);
  console.log(
    "| driver | primary alone | primary + replica, steady | primary alone, after own ingest | primary + replica, after own ingest | answered by the replica after own ingest |",
  );
  console.log("|---|---|---|---|---|---|");
  for (const driver of ["pg", "neon-http"] as const) {
    let primary: Db;
    let standby: Db;
    const servers = [];
    if (driver === "pg") {
      primary = createPgDb(pgUrl(database));
      standby = createPgDb(replica.databaseUrl(database));
    } else {
      servers.push(
        await startNeonServer({ delayMs: DELAY }),
        await startNeonServer({ server: replica.url, delayMs: DELAY }),
      );
      neonConfig.fetchEndpoint = localFetchEndpoint;
      primary = createNeonDb(neonConnectionString(database, servers[0]?.port ?? 0));
      standby = createNeonDb(neonConnectionString(database, servers[1]?.port ?? 0));
    }
    // A search that ran no search statement on the primary was answered by the replica.
    let primarySearches = 0;
    const counted: Db = {
      ...primary,
      query(q, o) {
        if ((q as { name?: string }).name?.startsWith("search_")) primarySearches++;
        return primary.query(q, o);
      },
    };
    const db = Replica.withReplica(counted, standby, { waitMs: 100 });
    const times = { alone: [] as number[], steady: [] as number[], aloneAfter: [] as number[], after: [] as number[] };
    const timed = async (into: number[], work: () => Promise<unknown>) => {
      const started = performance.now();
      await work();
      into.push(performance.now() - started);
    };
    for (let i = 0; i < 5; i++)
      await Search.query(db, caller, Search.SearchRequest.parse({ query: query(i), topK: 10 })); // prepared plans, memories
    let useful = 0;
    for (let i = 0; i < RUNS; i++) {
      await timed(times.alone, () =>
        Search.query(primary, caller, Search.SearchRequest.parse({ query: query(i), topK: 10 })),
      );
      await timed(times.steady, () =>
        Search.query(db, caller, Search.SearchRequest.parse({ query: query(i), topK: 10 })),
      );
      await Ingest.run(primary, caller, [{ id: `a${driver}${i}`, content: prose(300_000 + i, 1, 3) }]);
      await timed(times.aloneAfter, () =>
        Search.query(primary, caller, Search.SearchRequest.parse({ query: query(i), topK: 10 })),
      );
      await Ingest.run(db, caller, [{ id: `r${driver}${i}`, content: prose(400_000 + i, 1, 3) }]);
      const before = primarySearches;
      await timed(times.after, () =>
        Search.query(db, caller, Search.SearchRequest.parse({ query: query(i), topK: 10 })),
      );
      if (primarySearches === before) useful++;
    }
    console.log(
      `| ${driver}${driver === "neon-http" ? ` (+${DELAY} ms a round trip)` : ""} | ${ms(times.alone)} | ${ms(times.steady)} | ${ms(times.aloneAfter)} | ${ms(times.after)} | ${useful} of ${RUNS} |`,
    );
    await db.close();
    for (const server of servers) await server.close();
  }
} finally {
  await dropDatabase(database);
  await replica.release();
}
