/**
 * Chat latency without a model.
 *
 * 1. Prompt ready: `Chat.prepare` (history load and hybrid search of the caller's scope, in
 *    parallel, then prompt assembly within the token budget) for 200 distinct questions, on a
 *    corpus of one-chunk documents (100,000 chunks; 2,000 with `quick`) in local Postgres
 *    through `pg`, for a new conversation and for one with 20 earlier turns.
 * 2. Time to first byte of a streamed answer: `POST /v1/chat` with `stream: true` through the
 *    local server (auth, rate limit, retrieval, prompt, the fake OpenAI-compatible model's
 *    first token, the `citations` event), measured by the client.
 *
 * The corpus: deterministic text whose words follow Zipf's law over a 20,000-word made-up
 * vocabulary (like real prose: a few words everywhere, most words rare), 60-90 words a
 * document, embedded by the offline embedder, stored by Ingest with the HNSW index dropped and
 * built once afterwards over the whole corpus (the state the indexer reaches once it caught up). Questions are
 * four to six consecutive words of a random document, so keyword and vector candidates both
 * exist.
 */
import { sql } from "drizzle-orm";
import { startServer } from "../cli/server";
import type { Caller } from "../core/auth";
import * as Auth from "../core/auth";
import * as Chat from "../core/chat";
import { ChatRequest } from "../core/chat/schema";
import { setConfig } from "../core/config";
import * as Conversation from "../core/conversation";
import { useDb } from "../core/db";
import { useEmbedder } from "../core/embedding";
import { createOfflineEmbedder } from "../core/embedding/offline";
import * as Ingest from "../core/ingest";
import * as Search from "../core/search";
import * as Hnsw from "../core/search/hnsw";
import { callerFor, freshDb, type TestDb } from "../kit/db";
import { startOpenAIServer } from "../kit/openai-server";
import { round, summarize } from "./support";

const QUESTIONS = 200;
const STREAMS = 100;
const VOCABULARY = 20_000;

/** A small deterministic PRNG (mulberry32): uniform in [0, 1). */
function random(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SYLLABLES = "ka lo mi ne ru sa ti vo ze ba de fi gu ha jo ku la me no pi ra se tu vi wa yo zu".split(" ");
const words = Array.from({ length: VOCABULARY }, (_, i) => {
  let n = i + 1;
  let word = "";
  while (n > 0) {
    word += SYLLABLES[n % SYLLABLES.length];
    n = Math.floor(n / SYLLABLES.length);
  }
  return word;
});
// Zipf (s = 1): the cumulative weights, searched by bisection.
const cumulative = (() => {
  const out = new Float64Array(VOCABULARY);
  let sum = 0;
  for (let r = 0; r < VOCABULARY; r++) out[r] = sum += 1 / (r + 1);
  return out.map((c) => c / sum);
})();
/** The made-up word of frequency rank `r` (0 is the commonest). */
export const wordOfRank = (r: number): string => words[Math.min(Math.max(0, Math.floor(r)), VOCABULARY - 1)] as string;

function zipfWord(u: number): string {
  let lo = 0;
  let hi = VOCABULARY - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((cumulative[mid] as number) < u) lo = mid + 1;
    else hi = mid;
  }
  return words[lo] as string;
}

/** Document n's text: 60-90 Zipf-distributed words in sentences of 8-15. */
export function documentText(n: number): string {
  const next = random(n + 1);
  const length = 60 + Math.floor(next() * 30);
  const out: string[] = [];
  let sentence: string[] = [];
  let target = 8 + Math.floor(next() * 8);
  for (let i = 0; i < length; i++) {
    sentence.push(zipfWord(next()));
    if (sentence.length === target || i === length - 1) {
      out.push(`${sentence.join(" ").replace(/^./, (c) => c.toUpperCase())}.`);
      sentence = [];
      target = 8 + Math.floor(next() * 8);
    }
  }
  return out.join(" ");
}

export function questions(corpus: number): string[] {
  const next = random(42);
  const seen = new Set<string>();
  while (seen.size < QUESTIONS) {
    const text = documentText(Math.floor(next() * corpus))
      .toLowerCase()
      .replace(/[^a-z ]/g, "")
      .split(" ");
    const n = 4 + Math.floor(next() * 3);
    const start = Math.floor(next() * Math.max(1, text.length - n));
    seen.add(`What about ${text.slice(start, start + n).join(" ")}?`);
  }
  return [...seen];
}

export async function load(t: TestDb, caller: Caller, chunks: number, log: (line: string) => void) {
  const embedder = createOfflineEmbedder({ dimensions: 1536 });
  // The bulk load skips the index and the indexer: chunks are stored already marked indexed, then the model's
  // (partial, core/search/hnsw.ts) HNSW index is built once over them, the state the indexer reaches once caught up.
  await t.db.query(sql`drop index if exists chunks_embedding`);
  await t.db.query(sql`alter table chunks alter column indexed set default true`);
  const started = performance.now();
  for (let r = 0; r < chunks / 100; r++) {
    const docs = Array.from({ length: 100 }, (_, i) => ({
      id: `d${r * 100 + i}`,
      title: `Document ${r * 100 + i}`,
      content: documentText(r * 100 + i),
    }));
    await Ingest.run(t.db, caller, docs, { embedder });
    if (r % 100 === 99) {
      // Autovacuum lags a bulk load; without statistics the planner scans instead of using the indexes.
      await t.db.query(sql`analyze chunks, documents`);
      log(`  loaded ${(r + 1) * 100} chunks in ${round((performance.now() - started) / 1000, 1)} s`);
    }
  }
  await t.db.query(sql`alter table chunks alter column indexed set default false`);
  // One simple-protocol query, so the memory setting applies to the connection that builds the index: with the
  // default 64 MB the graph does not fit and the build took ten times as long.
  await t.db.query({
    text: `set maintenance_work_mem = '2GB'; ${Hnsw.createStatement(embedder.model, "vector_cosine_ops", { concurrently: false })}`,
    params: [],
  });
  await t.db.query(sql`analyze`);
  log(`  corpus of ${chunks} chunks ready in ${round((performance.now() - started) / 1000, 1)} s`);
}

async function promptReady(t: TestDb, caller: Caller, corpus: number, history: number) {
  let conversationId: string | undefined;
  if (history) {
    conversationId = `conv_bench_${history}`;
    const turns = Array.from({ length: history }, (_, i) => ({
      role: (i % 2 ? "assistant" : "user") as "user" | "assistant",
      content: documentText(1_000_000 + i),
    }));
    await t.db.batch(Conversation.saveTurn(caller, { conversationId, title: "bench", messages: turns }));
  }
  const asked = questions(corpus);
  // Warm up: plans, pools, the first query's embedding.
  for (const q of asked.slice(0, 10))
    await Chat.prepare(t.db, caller, ChatRequest.parse({ messages: [{ role: "user", content: `${q} warm` }] }));
  const samples: number[] = [];
  const searchOnly: number[] = [];
  let sources = 0;
  for (const q of asked) {
    const request = ChatRequest.parse({ messages: [{ role: "user", content: q }], conversationId });
    const started = performance.now();
    const prepared = await Chat.prepare(t.db, caller, request);
    samples.push(performance.now() - started);
    sources += prepared.sources.length;
    // The same search alone, for the share of the figure that is retrieval ("so" is a stopword
    // to full-text search; it keeps the query embedding out of the cache the first call filled).
    const alone = performance.now();
    await Search.query(
      t.db,
      caller,
      Search.SearchRequest.parse({ query: `So, ${q}`, topK: request.topK, mode: "hybrid", scope: "all" }),
    );
    searchOnly.push(performance.now() - alone);
  }
  const search = summarize(searchOnly);
  return {
    scenario: `prompt ready (retrieval + assembly), ${history ? `${history} earlier turns` : "new conversation"}`,
    driver: t.driver,
    chunks: corpus,
    questions: samples.length,
    "sources/prompt": round(sources / samples.length, 1),
    ...Object.fromEntries(Object.entries(summarize(samples)).map(([k, v]) => [`${k} ms`, v])),
    "hybrid search alone p50 ms": search.p50,
    "hybrid search alone p95 ms": search.p95,
  };
}

async function firstByte(t: TestDb, corpus: number) {
  const fake = await startOpenAIServer();
  setConfig({
    EMBEDDING_PROVIDER: "offline",
    CHAT_PROVIDER: "openai",
    OPENAI_BASE_URL: fake.url,
    OPENAI_API_KEY: fake.apiKey,
    RATE_LIMIT_CHAT: "1000000/min",
    LOG_LEVEL: "silent",
  });
  const server = await startServer({ port: 0 });
  try {
    const { key } = await Auth.createKey(t.db, "bench");
    const asked = questions(corpus).slice(0, STREAMS);
    const ask = async (q: string) => {
      const started = performance.now();
      const res = await fetch(`${server.url}/v1/chat`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ messages: [{ role: "user", content: q }], stream: true }),
      });
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      await reader.read();
      const ttfb = performance.now() - started;
      while (!(await reader.read()).done) {}
      return { ttfb, total: performance.now() - started };
    };
    for (const q of asked.slice(0, 5)) await ask(`${q} warm`);
    const ttfb: number[] = [];
    const total: number[] = [];
    for (const q of asked) {
      const r = await ask(q);
      ttfb.push(r.ttfb);
      total.push(r.total);
    }
    const first = summarize(ttfb);
    const whole = summarize(total);
    return {
      scenario: "first streamed byte through the local server (fake model)",
      driver: t.driver,
      chunks: corpus,
      questions: ttfb.length,
      "p50 ms": first.p50,
      "p95 ms": first.p95,
      "p99 ms": first.p99,
      "whole answer p50 ms": whole.p50,
      "whole answer p95 ms": whole.p95,
    };
  } finally {
    await server.close();
    await fake.close();
  }
}

export async function benchChat(opts: { quick: boolean }): Promise<Record<string, unknown>[]> {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const chunks = opts.quick ? 2_000 : 100_000;
  setConfig({ EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive", LOG_LEVEL: "silent" });
  useEmbedder(createOfflineEmbedder({ dimensions: 1536 }));
  const t = await freshDb("pg");
  try {
    useDb(t.db);
    const caller = await callerFor(t.db, "bench");
    log(`chat bench: loading ${chunks} chunks into pg`);
    await load(t, caller, chunks, log);
    const rows: Record<string, unknown>[] = [];
    rows.push(await promptReady(t, caller, chunks, 0));
    rows.push(await promptReady(t, caller, chunks, 20));
    rows.push(await firstByte(t, chunks));
    return rows;
  } finally {
    await t.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table } = await import("./support");
  console.log(table(await benchChat({ quick: process.argv.includes("--quick") })));
  process.exit(0);
}
