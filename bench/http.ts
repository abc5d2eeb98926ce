/**
 * What the API itself costs (#24): search, chat and ingest called three ways on the same `pg` database in the
 * same run, request by request in turn: the core function alone (with the zod parse its handler does), the Lambda
 * handler with its whole middleware chain (API key lookup, rate limiter, admission, zod validation, JSON out;
 * the API Gateway event built before the clock starts), and the local server (`npm start`'s HTTP server, called
 * over a keep-alive socket by a client in a process of its own, bench/http-client.ts, which times each request).
 * The overhead is the median of the per-request differences from the core call made just before (paired, so a
 * busy machine slows both alike), in wall time and in this Node process's CPU time (which a machine shared with
 * other work inflates far less; neither the client's nor the database's CPU is in it, the database's extra round
 * trips are counted instead). Rate limits far above what the
 * run sends (kit/factories.ts UNLIMITED): the limiter decides every request but refuses none. Round trips are counted
 * on the one `pg` Db all three share. Corpus: 1,000 documents of Zipf prose (bench/chat.ts), offline embedder,
 * indexed; questions are words from those documents.
 */
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { startServer } from "../cli/server";
import type { FunctionName } from "../core/api/routes";
import * as Auth from "../core/auth";
import * as Chat from "../core/chat";
import { ChatRequest } from "../core/chat/schema";
import { setConfig } from "../core/config";
import { useDb } from "../core/db";
import { migrate } from "../core/db/migrate";
import { createPgDb } from "../core/db/pg";
import { IngestRequest } from "../core/document/schema";
import * as Ingest from "../core/ingest";
import * as Search from "../core/search";
import { SearchRequest } from "../core/search";
import * as Indexer from "../core/search/indexer";
import { callerFor, createDatabase, dropDatabase, pgUrl } from "../kit/db";
import { apiEvent, lambdaContext } from "../kit/events";
import { UNLIMITED } from "../kit/factories";
import { documentText } from "./chat";
import { countingDb, round, summarize } from "./support";

type Handler = (
  event: APIGatewayProxyEventV2,
  context: ReturnType<typeof lambdaContext>,
) => Promise<{
  statusCode?: number;
  body?: string;
}>;

const handlers: Record<"search" | "chat" | "ingest", () => Promise<{ handler: Handler }>> = {
  search: () => import("../functions/http/search") as Promise<{ handler: Handler }>,
  chat: () => import("../functions/http/chat") as Promise<{ handler: Handler }>,
  ingest: () => import("../functions/http/ingest") as Promise<{ handler: Handler }>,
};

interface Route {
  name: string;
  fn: FunctionName & keyof typeof handlers;
  path: string;
  /** The i-th request's body; every call gets a body of its own where the route writes. */
  body: (i: number) => unknown;
  core: (body: unknown) => Promise<unknown>;
}

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] as number;
};

export async function benchHttp(opts: { quick: boolean }): Promise<Record<string, unknown>[]> {
  setConfig({ LOG_LEVEL: "silent", EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive", ...UNLIMITED });
  const samples = opts.quick ? 30 : 200;
  const name = await createDatabase();
  const db = countingDb(createPgDb(pgUrl(name)));
  const rows: Record<string, unknown>[] = [];
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  let client: ReturnType<typeof fork> | undefined;
  try {
    await migrate(db, { embeddingDimensions: 1536, searchTextConfig: "english" });
    useDb(db);
    const caller = await callerFor(db, "bench");
    const { key } = await Auth.createKey(db, "bench");
    for (let r = 0; r < 10; r++) {
      const docs = Array.from({ length: 100 }, (_, i) => ({
        id: `d${r * 100 + i}`,
        content: documentText(r * 100 + i),
      }));
      await Ingest.run(db, caller, docs);
    }
    await Indexer.catchUp(db, { budgetMs: Number.POSITIVE_INFINITY });
    server = await startServer({ port: 0 });
    client = fork(fileURLToPath(new URL("../bin/run-ts.js", import.meta.url)), [
      fileURLToPath(new URL("./http-client.ts", import.meta.url)),
    ]);
    const remote = client;
    // One request at a time: the client answers each message with that request's wall time.
    const viaClient = (ask: { url: string; headers: Record<string, string>; body: string }) =>
      new Promise<{ ms: number; status: number; text: string }>((resolve) => {
        remote.once("message", (reply) => resolve(reply as { ms: number; status: number; text: string }));
        remote.send(ask);
      });
    const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
    // Four to six consecutive words of a stored document: both the keyword and the vector leg find it.
    const question = (i: number) => {
      const words = documentText(i % 1000).split(/\s+/);
      const at = (i * 7) % Math.max(1, words.length - 6);
      return words.slice(at, at + 4 + (i % 3)).join(" ");
    };
    let written = 0;
    const routes: Route[] = [
      {
        name: "POST /v1/search (hybrid)",
        fn: "search",
        path: "/v1/search",
        body: (i) => ({ query: question(i) }),
        core: (body) => Search.query(db, caller, SearchRequest.parse(body)),
      },
      {
        name: "POST /v1/chat (extractive)",
        fn: "chat",
        path: "/v1/chat",
        body: (i) => ({ messages: [{ role: "user", content: question(i + 500) }] }),
        core: (body) => Chat.answer(db, caller, ChatRequest.parse(body)),
      },
      {
        name: "POST /v1/ingest (1 document)",
        fn: "ingest",
        path: "/v1/ingest",
        body: () => ({ documents: [{ content: documentText(100_000 + written++) }] }),
        core: (body) => Ingest.run(db, caller, IngestRequest.parse(body).documents),
      },
    ];
    for (const route of routes) {
      const { handler } = await handlers[route.fn]();
      // Each way: `prepare` is the caller's work (API Gateway builds the event), `send` is what is measured.
      const ways = {
        core: { prepare: (body: unknown) => body, send: (body: unknown) => route.core(body) },
        chain: {
          prepare: (body: unknown) => apiEvent({ method: "POST", path: route.path, headers, body }),
          send: async (event: APIGatewayProxyEventV2) => {
            const result = await handler(event, lambdaContext());
            if ((result.statusCode ?? 200) >= 300)
              throw new Error(`${route.name}: ${result.statusCode} ${result.body}`);
          },
        },
        server: {
          prepare: (body: unknown) => JSON.stringify(body),
          send: async (body: string) => {
            const reply = await viaClient({ url: `${server?.url}${route.path}`, headers, body });
            if (reply.status < 200 || reply.status >= 300)
              throw new Error(`${route.name}: ${reply.status} ${reply.text}`);
            return reply.ms;
          },
        },
      };
      const call = (way: keyof typeof ways, body: unknown) => {
        const w = ways[way] as { prepare: (b: unknown) => unknown; send: (p: unknown) => Promise<unknown> };
        return { prepared: w.prepare(body), send: w.send };
      };
      const times = { core: [] as number[], chain: [] as number[], server: [] as number[] };
      const cpu = { core: [] as number[], chain: [] as number[], server: [] as number[] };
      const trips = { core: 0, chain: 0, server: 0 };
      const overhead = { chain: [] as number[], server: [] as number[] };
      const cpuOverhead = { chain: [] as number[], server: [] as number[] };
      // Warm: prepared statements, the key and limiter memories, query embeddings of every question.
      for (let i = 0; i < Math.min(samples, 50); i++) {
        for (const way of ["core", "chain", "server"] as const) {
          const { prepared, send } = call(way, route.body(i));
          await send(prepared);
        }
      }
      for (let i = 0; i < samples; i++) {
        let core = { ms: 0, cpu: 0 };
        for (const way of ["core", "chain", "server"] as const) {
          const { prepared, send } = call(way, route.body(i));
          const before = db.roundTrips;
          const cpuBefore = process.cpuUsage();
          const started = performance.now();
          const timed = await send(prepared);
          // The client's own clock for the local server (the parent's would add the message passing).
          const ms = typeof timed === "number" ? timed : performance.now() - started;
          const used = process.cpuUsage(cpuBefore);
          // This process's CPU (user + system): what a busy machine does not inflate, unlike the clock.
          const cpuMs = (used.user + used.system) / 1000;
          trips[way] += db.roundTrips - before;
          times[way].push(ms);
          cpu[way].push(cpuMs);
          if (way === "core") core = { ms, cpu: cpuMs };
          else {
            overhead[way].push(ms - core.ms);
            cpuOverhead[way].push(cpuMs - core.cpu);
          }
        }
      }
      for (const way of ["core", "chain", "server"] as const) {
        const t = summarize(times[way]);
        rows.push({
          route: route.name,
          path: {
            core: "core only",
            chain: "Lambda handler chain",
            server: "local server (HTTP)",
          }[way],
          "p50 ms": t.p50,
          "p95 ms": t.p95,
          "round trips / request": round(trips[way] / samples, 2),
          "overhead p50 ms": way === "core" ? undefined : round(median(overhead[way])),
          "Node CPU ms p50": round(median(cpu[way])),
          "CPU overhead p50 ms": way === "core" ? undefined : round(median(cpuOverhead[way])),
        });
      }
    }
  } finally {
    client?.disconnect();
    await server?.close();
    await db.close();
    await dropDatabase(name);
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table } = await import("./support");
  console.log(table(await benchHttp({ quick: process.argv.includes("--quick") })));
  process.exit(0);
}
