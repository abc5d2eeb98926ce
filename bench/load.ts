/**
 * Load: the local server (cli/server.ts, the same handlers Lambda runs) on a fresh Postgres
 * database through `pg`, under a mixed workload for a fixed time (10 s with `--quick`, else 60 s)
 * with bounded concurrency: search, document reads and lists, stats, extractive chat and ingest
 * (new documents and changed ones), from 20 end users of one tenant, over a seeded corpus. The
 * tenant's limits are raised so the run measures the service, not the limiter; beside it one
 * client of a second tenant keeps its default chat limit (20/min) and asks 5 times a second, so
 * the limiter's 429s show up under load too, counted apart.
 *
 * Every response other than those 429s must be a 2xx: errors are counted and printed. Latency is
 * measured by the client (HTTP on localhost included), per route: p50/p95/p99. Memory (RSS and
 * heap of this process, which runs server and clients) is sampled every second and shown at the
 * start, middle and end of the run.
 *
 *   node bin/run-ts.js bench/load.ts [--quick]
 */
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { startServer } from "../cli/server";
import * as Auth from "../core/auth";
import { setConfig } from "../core/config";
import { db, useDb } from "../core/db";
import * as RateLimit from "../core/ratelimit";
import { freshDb } from "../kit/db";
import { prose } from "../kit/factories";
import { round, summarize, table } from "./support";

const CONCURRENCY = 8;
const USERS = 20;
const THROTTLED_CHAT_PER_SECOND = 5;

/** A deterministic pseudo-random sequence (the run is repeatable up to timing). */
function random(seed: number) {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
}

interface Sample {
  route: string;
  ms: number;
  status: number;
}

type Op = {
  route: string;
  weight: number;
  request: () => { method: string; path: string; body?: unknown; user: string };
};

export async function benchLoad(opts: { quick: boolean }): Promise<Record<string, unknown>[]> {
  const seconds = opts.quick ? 5 : 60;
  const corpus = opts.quick ? 300 : 2000;
  const log = (line: string) => process.stderr.write(`${line}\n`);

  const t = await freshDb("pg");
  setConfig({
    LOG_LEVEL: "silent",
    DATABASE_URL: t.url,
    DATABASE_DRIVER: "pg",
    EMBEDDING_PROVIDER: "offline",
    CHAT_PROVIDER: "extractive",
    // Like the raised rate limits: the service, not the per-tenant admission (bench/fairness.ts has that).
    INGEST_CONCURRENCY_PER_TENANT: "1000",
  });
  // The server's handlers use this process's database; an earlier scenario may have installed (and since
  // closed) its own.
  useDb(t.db);
  const server = await startServer({ port: 0 });
  try {
    const database = await db();
    const { key } = await Auth.createKey(database, "load");
    const throttled = await Auth.createKey(database, "throttled");
    await RateLimit.setLimits(database, "load", {
      chat: "1000000/min",
      search: "1000000/min",
      ingest: "1000000/min",
      default: "1000000/min",
    });

    const call = async (method: string, path: string, tenantKey: string, user: string, body?: unknown) => {
      const started = performance.now();
      const res = await fetch(`${server.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${tenantKey}`,
          ...(user ? { "x-user-id": user } : {}),
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, ms: performance.now() - started, text };
    };

    // The corpus: shared documents everyone searches, in requests of 50.
    const seedStarted = performance.now();
    for (let i = 0; i < corpus; i += 50) {
      const documents = Array.from({ length: Math.min(50, corpus - i) }, (_, j) => ({
        id: `d${i + j}`,
        title: `Document ${i + j}`,
        content: prose(i + j, 1 + ((i + j) % 3), 4),
        metadata: { team: (i + j) % 2 ? "sales" : "support" },
      }));
      const res = await call("POST", "/v1/ingest", key, "", { documents });
      if (res.status !== 200) throw new Error(`seeding failed: ${res.status} ${res.text}`);
    }
    // A live database has statistics; autovacuum lags a bulk load by up to a minute (see bench/chat.ts).
    await database.query(sql`analyze`);
    log(`  load: corpus of ${corpus} documents in ${round((performance.now() - seedStarted) / 1000, 1)} s`);

    const next = random(7);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
    const words = prose(1, 3, 6)
      .toLowerCase()
      .replace(/[^a-z ]/g, "")
      .split(" ");
    const phrase = (n: number) => Array.from({ length: n }, () => pick(words)).join(" ");
    const userOf = () => `user${Math.floor(next() * USERS)}`;
    let written = 0;
    const ops: Op[] = [
      {
        route: "POST /v1/search",
        weight: 35,
        request: () => ({
          method: "POST",
          path: "/v1/search",
          user: userOf(),
          body: { query: phrase(3), topK: 5, mode: pick(["hybrid", "hybrid", "vector", "keyword"]) },
        }),
      },
      {
        route: "GET /v1/documents/{id}",
        weight: 20,
        request: () => ({ method: "GET", path: `/v1/documents/d${Math.floor(next() * corpus)}`, user: userOf() }),
      },
      {
        route: "POST /v1/chat",
        weight: 15,
        request: () => ({
          method: "POST",
          path: "/v1/chat",
          user: userOf(),
          body: { messages: [{ role: "user", content: `What about ${phrase(4)}?` }] },
        }),
      },
      {
        route: "POST /v1/ingest",
        weight: 15,
        request: () => {
          // Half new documents, half changes to a user's earlier ones.
          const fresh = next() < 0.5;
          const n = 1 + Math.floor(next() * 3);
          const documents = Array.from({ length: n }, (_, i) => ({
            id: fresh ? `w${written++}` : `w${Math.floor(next() * Math.max(1, written))}-${i}`,
            content: prose(corpus + written + i, 1, 3 + Math.floor(next() * 4)),
          }));
          return { method: "POST", path: "/v1/ingest", user: userOf(), body: { documents } };
        },
      },
      {
        route: "GET /v1/documents",
        weight: 10,
        request: () => ({ method: "GET", path: "/v1/documents", user: userOf() }),
      },
      { route: "GET /v1/stats", weight: 5, request: () => ({ method: "GET", path: "/v1/stats", user: userOf() }) },
    ];
    const totalWeight = ops.reduce((n, op) => n + op.weight, 0);
    const chooseOp = () => {
      let r = next() * totalWeight;
      for (const op of ops) {
        r -= op.weight;
        if (r < 0) return op;
      }
      return ops[0] as Op;
    };

    // Warm up: connections, plans, the first embeddings.
    for (const op of ops)
      for (let i = 0; i < 3; i++) {
        const { method, path, body, user } = op.request();
        await call(method, path, key, user, body);
      }

    const samples: Sample[] = [];
    const unexpected: string[] = [];
    const memory: { at: number; rss: number; heap: number }[] = [];
    const mb = (bytes: number) => round(bytes / 1048576, 1);
    const started = performance.now();
    const until = started + seconds * 1000;
    const sampleMemory = () => {
      const { rss, heapUsed } = process.memoryUsage();
      memory.push({ at: (performance.now() - started) / 1000, rss: mb(rss), heap: mb(heapUsed) });
    };
    sampleMemory();
    const sampler = setInterval(sampleMemory, 1000);

    const worker = async () => {
      while (performance.now() < until) {
        const op = chooseOp();
        const { method, path, body, user } = op.request();
        const res = await call(method, path, key, user, body);
        samples.push({ route: op.route, ms: res.ms, status: res.status });
        if (res.status >= 300 && unexpected.length < 10)
          unexpected.push(`${op.route} ${res.status} ${res.text.slice(0, 200)}`);
      }
    };
    // One client of another tenant, over its chat limit on purpose: its 429s are the limiter's.
    let limited = 0;
    let limitedAdmitted = 0;
    const throttledClient = async () => {
      while (performance.now() < until) {
        const res = await call("POST", "/v1/chat", throttled.key, "", {
          messages: [{ role: "user", content: `Throttled ${phrase(3)}?` }],
        });
        if (res.status === 429) limited++;
        else if (res.status === 200) limitedAdmitted++;
        else if (unexpected.length < 10) unexpected.push(`throttled chat ${res.status} ${res.text.slice(0, 200)}`);
        await new Promise((resolve) => setTimeout(resolve, 1000 / THROTTLED_CHAT_PER_SECOND));
      }
    };
    await Promise.all([...Array.from({ length: CONCURRENCY }, worker), throttledClient()]);
    clearInterval(sampler);
    sampleMemory();
    const elapsed = (performance.now() - started) / 1000;

    const rows: Record<string, unknown>[] = [];
    const byRoute = new Map<string, Sample[]>();
    for (const s of samples) byRoute.set(s.route, [...(byRoute.get(s.route) ?? []), s]);
    const row = (route: string, list: Sample[]) => {
      const { p50, p95, p99 } = summarize(list.map((s) => s.ms));
      return {
        route,
        requests: list.length,
        "req/s": round(list.length / elapsed, 1),
        "p50 ms": p50,
        "p95 ms": p95,
        "p99 ms": p99,
        errors: list.filter((s) => s.status >= 300).length,
      };
    };
    for (const op of ops) rows.push(row(op.route, byRoute.get(op.route) ?? []));
    rows.push(row("all", samples));
    rows.push({
      route: `POST /v1/chat, throttled tenant (20/min, asking ${THROTTLED_CHAT_PER_SECOND}/s)`,
      requests: limited + limitedAdmitted,
      errors: 0,
      "429 (intended)": limited,
    });
    const middle = memory[Math.floor(memory.length / 2)];
    const first = memory[0];
    const last = memory[memory.length - 1];
    for (const [label, m] of [
      ["start", first],
      ["middle", middle],
      ["end", last],
    ] as const) {
      if (m) rows.push({ route: `memory at ${label} (${round(m.at, 1)} s)`, "RSS MB": m.rss, "heap MB": m.heap });
    }
    const errors = samples.filter((s) => s.status >= 300).length;
    log(
      `  load: ${samples.length} requests in ${round(elapsed, 1)} s at concurrency ${CONCURRENCY}, ${errors} errors, ${limited} intended 429s`,
    );
    for (const line of unexpected) log(`  load: UNEXPECTED ${line}`);
    return rows;
  } finally {
    await server.close();
    await t.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const rows = await benchLoad({ quick: process.argv.includes("--quick") });
  console.log(table(rows));
  const failed = rows.some((r) => typeof r.errors === "number" && r.errors > 0);
  process.exit(failed ? 1 : 0);
}
