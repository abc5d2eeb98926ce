/**
 * Property-based fuzzing of every route in the route table, through the real middleware chain on
 * real Postgres (`pg`; a subset again on the Neon HTTP driver). Requests are generated valid and
 * hostile (see ./arbitraries.ts): bodies, headers, query strings and path ids.
 *
 * Properties, for every response: no 5xx; every 4xx is `{ error: { code, message, details? } }`
 * with a dotted code (429 with Retry-After, 405 with Allow); every response has X-Request-Id; a
 * streamed answer never ends in an `internal` error event; nothing pollutes Object.prototype; no
 * promise rejection goes unhandled. Plus two properties of meaning: well-formed unicode documents
 * come back exactly as sent (and their search hits are substrings of them), and paging through
 * the document list visits every document once, newest first, whatever their timestamps.
 *
 * The seed is printed at the start; rerun a failure with `FUZZ_SEED=<seed>` (fast-check also
 * prints the counterexample's path). `FUZZ_SCALE=10` runs ten times as many cases.
 */
import { sql } from "drizzle-orm";
import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { match, routeKey, routes } from "../../core/api/routes";
import * as Auth from "../../core/auth";
import { setConfig } from "../../core/config";
import { useDb } from "../../core/db";
import { useEmbedder } from "../../core/embedding";
import { freshDb, type TestDb } from "../../kit/db";
import { type EventInput, invoke, type Response } from "../../kit/events";
import { prose } from "../../kit/factories";
import { contentText } from "./arbitraries";
import { generators } from "./contract";
import { type Ctx, requestsFor, strays } from "./requests";

const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const DOTTED = /^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$/;
/**
 * The database's refusal of a value (core/db/errors.ts) is a 400, but each one is a gap in
 * validation: a failure here, except on routes whose validation is known to lag (reported).
 */
const REFUSED_BY_DATABASE = "request.invalid_value";
const KNOWN_GAPS = new Set<string>([]);

console.log(`fuzz: seed ${SEED} (rerun with FUZZ_SEED=${SEED})`);

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();
let cases = 0;

const ctx: Ctx = { key: "", otherKey: "", docIds: [], conversations: [], documentCursors: [], conversationCursors: [] };

const SEEDED = ["doc-1", "doc-2", "ünï cödé", "a/b", "quote'd", "50%_off", "🧠"];

/** Checks the properties every response must have; throws with the request on a violation. */
function check(res: Response, request: EventInput): void {
  const where = () => `${request.method} ${request.path} -> ${res.status} ${JSON.stringify(res.body).slice(0, 600)}`;
  if (res.status >= 500) throw new Error(`server error: ${where()}`);
  if (!res.headers["x-request-id"]) throw new Error(`no x-request-id: ${where()}`);
  const rpc = res.body as { jsonrpc?: string; result?: { isError?: boolean; content?: { text?: string }[] } };
  if (rpc?.jsonrpc === "2.0" && routeOf(request) === "POST /mcp") {
    // MCP's own answers are JSON-RPC (406/415 included); a failed tool call names the API's dotted code.
    const failure = rpc.result?.isError ? (rpc.result.content?.[0]?.text ?? "") : "";
    if (failure && !/^([a-z_]+(\.[a-z_]+)+|MCP error -?\d+): /.test(failure)) throw new Error(`tool error: ${where()}`);
    if (/^internal: /.test(failure)) throw new Error(`tool failed inside: ${where()}`);
  } else if (res.status === 202 && routeOf(request) === "POST /mcp") {
    // A JSON-RPC notification or response: accepted, nothing to answer.
    if (res.body) throw new Error(`202 with a body: ${where()}`);
  } else if (res.status >= 400) {
    const body = res.body as { error?: Record<string, unknown> };
    const error = body?.error;
    if (!error || Object.keys(body).length !== 1) throw new Error(`not the error shape: ${where()}`);
    if (typeof error.code !== "string" || !DOTTED.test(error.code)) throw new Error(`undotted code: ${where()}`);
    if (typeof error.message !== "string" || !error.message) throw new Error(`no message: ${where()}`);
    const extra = Object.keys(error).filter((k) => !["code", "message", "details"].includes(k));
    if (extra.length) throw new Error(`unexpected error fields ${extra}: ${where()}`);
    if (error.code === REFUSED_BY_DATABASE && !KNOWN_GAPS.has(routeOf(request))) {
      throw new Error(`validation gap: ${where()}`);
    }
    if (res.status === 429 && !/^\d+$/.test(res.headers["retry-after"] ?? "")) throw new Error(`429: ${where()}`);
    if (res.status === 405 && !res.headers.allow) throw new Error(`405 without Allow: ${where()}`);
  } else if (res.headers["content-type"]?.startsWith("text/event-stream")) {
    for (const frame of String(res.body).split("\n\n")) {
      if (/^event: error$/m.test(frame) && /"code":"internal"/.test(frame)) throw new Error(`stream error: ${frame}`);
    }
  } else if (!res.headers["content-type"]?.startsWith("application/json")) {
    throw new Error(`unexpected content type: ${where()}`);
  }
  const polluted = Object.getOwnPropertyNames(Object.prototype).sort();
  if (polluted.join() !== prototypeKeys.join() || ({} as Record<string, unknown>).polluted !== undefined) {
    throw new Error(`Object.prototype changed: ${where()}`);
  }
}

function routeOf(request: EventInput): string {
  const found = match(request.method, request.path);
  return found.kind === "route" ? routeKey(found.route) : "$default";
}

/** Statuses per route: shows the generators reach past validation (printed at the end). */
const tally = new Map<string, Map<number, number>>();

async function send(request: EventInput): Promise<Response> {
  cases++;
  const res = await invoke(request);
  const statuses = tally.get(routeOf(request)) ?? new Map<number, number>();
  tally.set(routeOf(request), statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1));
  check(res, request);
  return res;
}

// ---------------------------------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------------------------------

async function seed(): Promise<void> {
  const alice = { authorization: `Bearer ${ctx.key}`, "x-user-id": "alice" };
  const shared = { authorization: `Bearer ${ctx.key}` };
  const documents = SEEDED.map((id, i) => ({
    id,
    title: `Seeded ${i}`,
    content: `${prose(i + 1, 2, 4)} The refund window is ${i + 10} days.`,
    metadata: { team: i % 2 ? "sales" : "support", n: i },
    conversationId: "conv-seed",
  }));
  for (const h of [alice, shared]) {
    const res = await send({ method: "POST", path: "/v1/ingest", headers: h, body: { documents } });
    expect(res.status).toBe(200);
  }
  const chat = await send({
    method: "POST",
    path: "/v1/chat",
    headers: alice,
    body: { messages: [{ role: "user", content: "What is the refund window?" }] },
  });
  expect(chat.status).toBe(200);
  ctx.docIds = [...SEEDED];
  ctx.conversations = ["conv-seed", chat.body.conversationId as string];
  for (const h of [alice, shared]) {
    const page = await send({ method: "GET", path: "/v1/documents", headers: h, query: { limit: "1" } });
    ctx.documentCursors.push(page.body.nextCursor as string);
  }
  const conversations = await send({ method: "GET", path: "/v1/conversations", headers: alice, query: { limit: "1" } });
  ctx.conversationCursors.push(conversations.body.nextCursor as string);
}

function configure() {
  setConfig({
    LOG_LEVEL: "silent",
    EMBEDDING_PROVIDER: "offline",
    CHAT_PROVIDER: "extractive",
    RATE_LIMIT_CHAT: "1000000/min",
    RATE_LIMIT_SEARCH: "1000000/min",
    RATE_LIMIT_INGEST: "1000000/min",
    RATE_LIMIT_DEFAULT: "1000000/min",
    // Wild keys fail by the thousand from one address; the limit on that is fairness.test.ts's.
    RATE_LIMIT_AUTH_FAILURES: "1000000/min",
  });
  useEmbedder(undefined);
}

beforeAll(() => {
  process.on("unhandledRejection", onUnhandled);
});
afterAll(() => {
  process.off("unhandledRejection", onUnhandled);
  const lines = [...tally].map(
    ([route, statuses]) =>
      `  ${route.padEnd(32)} ${[...statuses]
        .sort(([a], [b]) => a - b)
        .map(([status, n]) => `${status}:${n}`)
        .join(" ")}`,
  );
  console.log(`fuzz: ${cases} requests, seed ${SEED}\n${lines.join("\n")}`);
});
afterEach(() => {
  expect(unhandled, "unhandled promise rejections").toEqual([]);
});

let routeIndex = 0;
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));
const property = async (arbitrary: fc.Arbitrary<EventInput>, numRuns: number) => {
  await fc.assert(
    fc.asyncProperty(arbitrary, async (r) => {
      await send(r);
    }),
    { numRuns, seed: SEED + routeIndex++, endOnFailure: false },
  );
};

describe("fuzzing every route on pg", () => {
  let t: TestDb;

  beforeAll(async () => {
    configure();
    t = await freshDb("pg");
    useDb(t.db);
    ctx.key = (await Auth.createKey(t.db, "acme")).key;
    ctx.otherKey = (await Auth.createKey(t.db, "globex")).key;
    await seed();
  });
  afterAll(() => t?.close());

  it("has a generator for every route in the route table, written or derived from its contract", () => {
    expect(
      generators()
        .map((g) => g.key)
        .sort(),
    ).toEqual(routes.map(routeKey).sort());
  });

  for (const { key, ...spec } of generators()) {
    it(`${key}: no 5xx, errors in the one shape, a request id on every response`, async () => {
      await property(requestsFor(spec.build, ctx), runs(spec.runs));
    }, 120_000);
  }

  it("unknown routes and methods answer 404/405 in the error shape", async () => {
    await property(strays(ctx), runs(100));
  }, 60_000);

  it("stores well-formed unicode documents exactly and finds only their own text", async () => {
    const auth = { authorization: `Bearer ${ctx.key}`, "x-user-id": "roundtrip" };
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(
          fc.record({
            // Well-formed: not blank, and not `.` or `..`, which a URL path drops (refused as ids).
            id: fc
              .string({ unit: "grapheme", minLength: 1, maxLength: 20 })
              .filter((s) => s.trim() !== "" && s !== "." && s !== ".."),
            content: contentText.filter((s) => s.trim() !== ""),
          }),
          { minLength: 1, maxLength: 3, selector: (d) => d.id },
        ),
        async (documents) => {
          const res = await send({ method: "POST", path: "/v1/ingest", headers: auth, body: { documents } });
          expect(res.status).toBe(200);
          for (const doc of documents) {
            const got = await send({
              method: "GET",
              path: `/v1/documents/${encodeURIComponent(doc.id)}`,
              headers: auth,
              query: { track: "false" },
            });
            expect(got.status).toBe(200);
            expect(got.body.content).toBe(doc.content);
            const found = await send({
              method: "POST",
              path: "/v1/search",
              headers: auth,
              body: { query: doc.content.slice(0, 200), filter: { documentIds: [doc.id] }, topK: 50, scope: "user" },
            });
            // A query of only punctuation or symbols can be empty for the search, never a 4xx.
            expect(found.status).toBe(200);
            for (const hit of found.body.results) {
              expect(hit.documentId).toBe(doc.id);
              expect(doc.content.includes(hit.content)).toBe(true);
            }
          }
        },
      ),
      { numRuns: runs(60), seed: SEED + 1000, endOnFailure: false },
    );
  }, 120_000);
  it("pages through every document exactly once, newest first, whatever their timestamps", async () => {
    const auth = { authorization: `Bearer ${ctx.key}`, "x-user-id": "pager" };
    let round = 0;
    await fc.assert(
      fc.asyncProperty(
        // Microseconds apart within a few milliseconds, ties included: what concurrent ingests produce.
        fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 2, maxLength: 12 }),
        fc.integer({ min: 1, max: 5 }),
        async (offsets, limit) => {
          const owner = `pager-${round++}`;
          const headers = { ...auth, "x-user-id": owner };
          const documents = offsets.map((_, i) => ({ id: `p${i}`, content: `page test ${i}` }));
          expect((await send({ method: "POST", path: "/v1/ingest", headers, body: { documents } })).status).toBe(200);
          for (const [i, offset] of offsets.entries()) {
            await t.db.query(sql`
              update documents set created_at = '2026-01-01T00:00:00Z'::timestamptz + ${offset} * interval '1 microsecond'
              where owner = ${owner} and id = ${`p${i}`}`);
          }
          const seen: string[] = [];
          let cursor: string | null = null;
          do {
            const page: Response = await send({
              method: "GET",
              path: "/v1/documents",
              headers,
              query: { limit: String(limit), ...(cursor ? { cursor } : {}) },
            });
            expect(page.status).toBe(200);
            seen.push(...page.body.documents.map((d: { id: string }) => d.id));
            cursor = page.body.nextCursor;
          } while (cursor && seen.length <= offsets.length);
          const expected = await t.db.query<{ id: string }>(
            sql`select id from documents where owner = ${owner} order by created_at desc, key desc`,
          );
          expect(seen).toEqual(expected.map((row) => row.id));
        },
      ),
      { numRuns: runs(40), seed: SEED + 2000, endOnFailure: false },
    );
  }, 60_000);
});

describe("fuzzing on the Neon HTTP driver", () => {
  let t: TestDb;
  // Every route: production runs this driver. Half of pg's cases each.

  beforeAll(async () => {
    configure();
    t = await freshDb("neon-http");
    useDb(t.db);
    ctx.key = (await Auth.createKey(t.db, "acme")).key;
    ctx.otherKey = (await Auth.createKey(t.db, "globex")).key;
    ctx.documentCursors = [];
    ctx.conversationCursors = [];
    await seed();
  });
  afterAll(() => t?.close());

  for (const { key, ...spec } of generators()) {
    it(`${key}: no 5xx on neon-http`, async () => {
      await property(requestsFor(spec.build, ctx), runs(Math.round(spec.runs / 2)));
    }, 120_000);
  }
});
