/**
 * Admission instead of collapse: one tenant's flood of large ingests, on the local server over
 * `pg` (10 connections), must leave another tenant's searches answering 200 within a second,
 * and the flooding tenant must get honest refusals (429, 503 with Retry-After), never a 500.
 * The run the issue reported: 20 parallel ingests of 100 large documents.
 */
import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer } from "../../cli/server";
import * as Auth from "../../core/auth";
import { setConfig } from "../../core/config";
import { type Db, useDb } from "../../core/db";
import { createPgDb } from "../../core/db/pg";
import * as RateLimit from "../../core/ratelimit";
import { freshDb, type TestDb } from "../../kit/db";

let t: TestDb;
let db: Db;
let server: Awaited<ReturnType<typeof startServer>>;
let quiet: string;
let noisy: string;

beforeAll(async () => {
  setConfig({ LOG_LEVEL: "silent", EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive" });
  t = await freshDb("pg");
  // The local server's own pool, as `npm start` on DATABASE_URL opens it.
  db = createPgDb(t.url as string, { max: 10, reserved: 3, connectWaitMs: 2_000 });
  useDb(db);
  quiet = (await Auth.createKey(db, "quiet")).key;
  noisy = (await Auth.createKey(db, "noisy")).key;
  // The flood is about connections and memory, not the request rate.
  await RateLimit.setLimits(db, "noisy", { ingest: "10000/min", "tenant.ingest": "10000/min" });
  server = await startServer({ port: 0 });
  await post(quiet, "/v1/ingest", {
    documents: [{ id: "refunds", content: "Refunds are issued within 14 days of a return." }],
  });
  await post(quiet, "/v1/search", { query: "warm up" }); // a running server, as in the report
}, 60_000);
afterAll(async () => {
  await server?.close();
  await db?.close();
  await t?.close();
});

async function post(
  key: string,
  path: string,
  body: unknown | string,
): Promise<{ status: number; ms: number; retryAfter: string | null }> {
  const started = performance.now();
  const res = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  await res.arrayBuffer();
  return { status: res.status, ms: performance.now() - started, retryAfter: res.headers.get("retry-after") };
}

/** The noisy tenant's client: argv is the server's URL and its key; prints each answer's status. */
const FLOOD = `
const [url, key] = process.argv.slice(1);
const words = "refund return order shipping invoice account payment policy customer support".split(" ");
const body = (r) => JSON.stringify({ documents: Array.from({ length: 100 }, (_, i) => ({
  id: "r" + r + "-d" + i,
  content: Array.from({ length: 2000 }, (_, w) => words[(r * 7 + i * 13 + w * w) % words.length]).join(" "),
})) });
const bodies = Array.from({ length: 20 }, (_, r) => body(r));
Promise.all(bodies.map(async (b) => {
  const res = await fetch(url + "/v1/ingest", { method: "POST", headers: { authorization: "Bearer " + key, "content-type": "application/json" }, body: b });
  await res.arrayBuffer();
  return { status: res.status, retryAfter: res.headers.get("retry-after") };
})).then((r) => console.log(JSON.stringify(r)));
`;

describe("one tenant flooding ingest beside another tenant's searches", () => {
  // Wall-clock on a machine other suites share (two files at once, on two cores): a run that lands
  // beside a CPU-heavy file may see one stall it did not cause, so it gets two more tries.
  it("answers the quiet tenant's searches 200 within 1 s, and the flood no 500s", {
    timeout: 120_000,
    retry: 2,
  }, async () => {
    // The noisy client is a process of its own, as it would be: 20 requests at once, each of 100
    // documents of ~12 KB (~1.2 MB a request, 24 MB in all).
    const flooder = spawn(process.execPath, ["-e", FLOOD, server.url, noisy], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let output = "";
    flooder.stdout.on("data", (chunk) => {
      output += chunk;
    });
    const done = new Promise<number | null>((resolve) => flooder.on("exit", resolve));
    let flooding = true;
    void done.then(() => {
      flooding = false;
    });
    const searches: { status: number; ms: number }[] = [];
    while (flooding || searches.length < 10) {
      searches.push(await post(quiet, "/v1/search", { query: "how long do refunds take" }));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(await done).toBe(0);
    const ingests = JSON.parse(output) as { status: number; retryAfter: string | null }[];

    expect(ingests).toHaveLength(20);
    expect(searches.map((s) => s.status).filter((s) => s !== 200)).toEqual([]);
    const times = searches.map((s) => Math.round(s.ms));
    expect(Math.max(...times), `search times (ms): ${times.join(", ")}`).toBeLessThan(1_000);
    for (const i of ingests) {
      expect([200, 429, 503]).toContain(i.status);
      if (i.status !== 200) expect(Number(i.retryAfter)).toBeGreaterThanOrEqual(1);
    }
    expect(ingests.filter((i) => i.status === 200).length).toBeGreaterThanOrEqual(4);
  });
});
