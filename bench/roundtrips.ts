/**
 * Round trips to Neon per request, and what they cost: each route through the whole handler chain (auth, rate
 * limit, validation, core, JSON), as Lambda runs it, on the Neon HTTP driver against the local Neon-protocol
 * server with 0, 5 and 20 ms added to every HTTP request (a Lambda and its database in one region: about 5 ms; in
 * two: about 20). The server counts the requests; nothing is estimated. Warm instance: the first requests (cold
 * caches) are not timed. Corpus: 300 documents of Zipf prose (bench/chat.ts), offline embedder.
 */
import * as Auth from "../core/auth";
import { setConfig } from "../core/config";
import { useDb } from "../core/db";
import { migrate } from "../core/db/migrate";
import { createNeonDb } from "../core/db/neon";
import * as Ingest from "../core/ingest";
import * as RateLimit from "../core/ratelimit";
import * as Search from "../core/search";
import { callerFor, createDatabase, dropDatabase } from "../kit/db";
import { invoke } from "../kit/events";
import { UNLIMITED } from "../kit/factories";
import { neonConnectionString, startNeonServer } from "../kit/neon-server";
import { documentText } from "./chat";
import { round, summarize } from "./support";

const DELAYS = [0, 5, 20];

export async function benchRoundTrips(opts: { quick: boolean }): Promise<Record<string, unknown>[]> {
  // Limits far above what the run sends: it measures the path, not the limiter's refusals.
  setConfig({
    LOG_LEVEL: "silent",
    EMBEDDING_PROVIDER: "offline",
    CHAT_PROVIDER: "extractive",
    ...UNLIMITED,
  });
  const samples = opts.quick ? 10 : 40;
  const name = await createDatabase();
  const neon = await startNeonServer();
  const db = createNeonDb(neonConnectionString(name, neon.port), { fetchEndpoint: neon.url });
  const rows: Record<string, unknown>[] = [];
  try {
    await migrate(db, { embeddingDimensions: 1536, searchTextConfig: "english" });
    useDb(db);
    const caller = await callerFor(db, "bench");
    const { key } = await Auth.createKey(db, "bench");
    for (let r = 0; r < 3; r++) {
      const docs = Array.from({ length: 100 }, (_, i) => ({
        id: `d${r * 100 + i}`,
        content: documentText(r * 100 + i),
      }));
      await Ingest.run(db, caller, docs);
    }
    const headers = { authorization: `Bearer ${key}` };
    let n = 0;
    const routes: { route: string; call: () => Promise<{ status: number }> }[] = [
      {
        route: "POST /v1/search (hybrid)",
        call: () =>
          invoke({ method: "POST", path: "/v1/search", headers, body: { query: `${documentText(n++).slice(0, 40)}` } }),
      },
      {
        route: "POST /v1/chat (extractive)",
        call: () =>
          invoke({
            method: "POST",
            path: "/v1/chat",
            headers,
            body: { messages: [{ role: "user", content: documentText(n++).slice(0, 60) }] },
          }),
      },
      {
        route: "POST /v1/ingest (1 document)",
        call: () =>
          invoke({
            method: "POST",
            path: "/v1/ingest",
            headers,
            body: { documents: [{ content: documentText(10_000 + n++) }] },
          }),
      },
      {
        // Before #21: the key, the limit and the search as three statements, called directly (no chain).
        route: "baseline: POST /v1/search's work as three statements (key, limit, search)",
        call: async () => {
          const key = await Auth.authenticate(db, headers.authorization);
          const known = { ...key, userId: "" };
          await RateLimit.enforce(db, known, "search");
          const body = await Search.query(
            db,
            known,
            Search.SearchRequest.parse({ query: `${documentText(n++).slice(0, 40)}` }),
          );
          return { status: 200, headers: {}, body };
        },
      },
      { route: "GET /v1/documents", call: () => invoke({ method: "GET", path: "/v1/documents", headers }) },
      { route: "GET /v1/stats", call: () => invoke({ method: "GET", path: "/v1/stats", headers }) },
    ];
    for (const delay of DELAYS) {
      neon.setDelay(delay);
      for (const { route, call } of routes) {
        for (let i = 0; i < 3; i++) await call(); // warm: key and strategy memories, prepared plans
        const times: number[] = [];
        let trips = 0;
        let failed = 0;
        for (let i = 0; i < samples; i++) {
          const before = neon.stats.requests;
          const started = performance.now();
          const res = await call();
          times.push(performance.now() - started);
          trips += neon.stats.requests - before;
          if (res.status >= 300) failed++;
        }
        const t = summarize(times);
        rows.push({
          "added delay ms": delay,
          route,
          "round trips / request": round(trips / samples, 2),
          "p50 ms": t.p50,
          "p95 ms": t.p95,
          errors: failed,
        });
      }
    }
  } finally {
    await db.close();
    await neon.close();
    await dropDatabase(name);
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table } = await import("./support");
  console.log(table(await benchRoundTrips({ quick: process.argv.includes("--quick") })));
  process.exit(0);
}
