/**
 * Fairness under load and abuse (issue #19), on the local server over `pg` with the pool `npm start`
 * opens on DATABASE_URL (10 connections):
 *
 * - Noisy neighbour: a quiet tenant searches once every 100 ms, first alone, then while another
 *   tenant's client (a process of its own) keeps 20 ingests of 100 large documents (~1.2 MB
 *   each) in flight. Reported: the quiet tenant's search p50/p95/p99 and its errors (anything
 *   but 200) in both phases, how the flood's requests were answered, and the server's peak RSS. Before the admission
 *   work the same flood made the quiet tenant's searches answer 500 for 15 s.
 * - X-User-Id rotation: 4 clients send chats as fast as they can, each with a new `X-User-Id`,
 *   for 60 s (10 s with --quick) against a tenant with the default limits (20/min per end user,
 *   100/min for the tenant). Reported: requests admitted against the most the tenant's ceiling
 *   allows in that time (its burst plus its rate); before the ceiling every one was admitted.
 *
 *   node bin/run-ts.js bench/fairness.ts [--quick]
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startServer } from "../cli/server";
import * as Auth from "../core/auth";
import { setConfig } from "../core/config";
import { useDb } from "../core/db";
import { createPgDb } from "../core/db/pg";
import * as RateLimit from "../core/ratelimit";
import { freshDb } from "../kit/db";
import { summarize, table } from "./support";

/**
 * The noisy tenant's client: argv is the server's URL, its key and the seconds to keep going;
 * 20 workers each send ingests of 100 documents of ~12 KB back to back. Prints the statuses.
 */
const FLOOD = `
const [url, key, seconds] = process.argv.slice(1);
const words = "refund return order shipping invoice account payment policy customer support".split(" ");
const body = (r) => JSON.stringify({ documents: Array.from({ length: 100 }, (_, i) => ({
  id: "r" + r + "-d" + i,
  content: Array.from({ length: 2000 }, (_, w) => words[(r * 7 + i * 13 + w * w) % words.length]).join(" ") + " " + r,
})) });
const end = Date.now() + Number(seconds) * 1000;
const statuses = {};
let round = 0;
Promise.all(Array.from({ length: 20 }, async (_, worker) => {
  while (Date.now() < end) {
    const res = await fetch(url + "/v1/ingest", { method: "POST", headers: { authorization: "Bearer " + key, "content-type": "application/json" }, body: body(worker * 1000 + round++) });
    await res.arrayBuffer();
    statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    if (res.status !== 200) await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get("retry-after") ?? 1)));
  }
})).then(() => console.log(JSON.stringify(statuses)));
`;

async function post(url: string, key: string, path: string, body: unknown, headers: Record<string, string> = {}) {
  const started = performance.now();
  const res = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  return { status: res.status, ms: performance.now() - started };
}

/** The quiet tenant's searches, one every 100 ms until `stop()` says so. */
async function searches(url: string, key: string, stop: () => boolean) {
  const samples: { status: number; ms: number }[] = [];
  while (!stop()) {
    samples.push(await post(url, key, "/v1/search", { query: "how long do refunds take" }));
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return samples;
}

const phaseRow = (phase: string, samples: { status: number; ms: number }[]) => ({
  scenario: "noisy neighbour",
  phase,
  searches: samples.length,
  ...summarize(samples.map((s) => s.ms)),
  errors: samples.filter((s) => s.status !== 200).length,
});

export async function benchFairness(opts: { quick: boolean }): Promise<Record<string, unknown>[]> {
  const floodSeconds = opts.quick ? 5 : 20;
  const rotationSeconds = opts.quick ? 10 : 60;
  const log = (line: string) => process.stderr.write(`${line}\n`);
  setConfig({ LOG_LEVEL: "silent", EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive" });
  const t = await freshDb("pg");
  const database = createPgDb(t.url as string, { max: 10, reserved: 3, connectWaitMs: 2_000 });
  useDb(database);
  const server = await startServer({ port: 0 });
  const rows: Record<string, unknown>[] = [];
  try {
    const quiet = (await Auth.createKey(database, "quiet")).key;
    const noisy = (await Auth.createKey(database, "noisy")).key;
    // The flood is about connections and memory, and the quiet tenant's 10 searches a second are
    // within its limits: what is measured is one tenant's effect on the other, not the limiter.
    await RateLimit.setLimits(database, "noisy", { ingest: "100000/min", "tenant.ingest": "100000/min" });
    await RateLimit.setLimits(database, "quiet", { search: "100000/min", "tenant.search": "100000/min" });
    await post(server.url, quiet, "/v1/ingest", {
      documents: [{ id: "refunds", content: "Refunds are issued within 14 days of a return." }],
    });

    const aloneUntil = Date.now() + floodSeconds * 1000;
    rows.push(phaseRow("quiet tenant alone", await searches(server.url, quiet, () => Date.now() > aloneUntil)));

    log(`  fairness: ${floodSeconds} s of 20 parallel ingests of 100 large documents beside the quiet tenant`);
    const flooder = spawn(process.execPath, ["-e", FLOOD, server.url, noisy, String(floodSeconds)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let output = "";
    flooder.stdout.on("data", (chunk) => {
      output += chunk;
    });
    let flooding = true;
    const done = new Promise<void>((resolve) =>
      flooder.on("exit", () => {
        flooding = false;
        resolve();
      }),
    );
    let rssPeak = process.memoryUsage().rss;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    }, 250);
    const beside = await searches(server.url, quiet, () => !flooding).finally(() => clearInterval(sampler));
    await done;
    const flood = JSON.parse(output || "{}") as Record<string, number>;
    rows.push({
      ...phaseRow("beside another tenant's ingest flood", beside),
      flood: Object.entries(flood)
        .map(([status, n]) => `${status}: ${n}`)
        .join(", "),
      // The server's process (this one): bytes in flight per tenant bound what a flood can hold.
      "server RSS peak MB": Math.round(rssPeak / 1048576),
    });
    const floodErrors = Object.entries(flood)
      .filter(([status]) => Number(status) >= 500 && status !== "503")
      .reduce((n, [, count]) => n + count, 0);
    if (floodErrors)
      rows.push({ scenario: "noisy neighbour", phase: "flood answered 5xx other than 503", errors: floodErrors });

    log(`  fairness: ${rotationSeconds} s of chats with a new X-User-Id each`);
    const rotator = (await Auth.createKey(database, "rotator")).key;
    const ceiling = RateLimit.ceilingFor({ tenantId: "", rateLimits: {} }, "chat");
    const end = Date.now() + rotationSeconds * 1000;
    let sent = 0;
    let admitted = 0;
    let unexpected = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (Date.now() < end) {
          const res = await post(
            server.url,
            rotator,
            "/v1/chat",
            { messages: [{ role: "user", content: "What is the refund window?" }] },
            { "x-user-id": `rotating-${sent++}` },
          );
          if (res.status === 200) admitted++;
          else if (res.status !== 429) unexpected++;
        }
      }),
    );
    const bound = Math.floor(ceiling.limit + (rotationSeconds * ceiling.limit) / ceiling.windowSeconds);
    const [left] = await database.query<{ users: number; buckets: number }>({
      text: `select (select count(*) from users u join tenants t on t.id = u.tenant_id where t.name = 'rotator')::int as users,
                    (select count(*) from rate_limits where key like 'chat/u:rotating-%')::int as buckets`,
      params: [],
    });
    rows.push({
      scenario: "X-User-Id rotation",
      phase: `${rotationSeconds} s, 4 clients, a new user id per chat`,
      requests: sent,
      admitted,
      ceiling: `${ceiling.limit}/${ceiling.windowSeconds} s`,
      "most the ceiling allows": bound,
      "users rows, buckets left": `${left?.users}, ${left?.buckets}`,
      errors: unexpected + Math.max(0, admitted - bound),
    });
    return rows;
  } finally {
    await server.close();
    await database.close();
    await t.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const rows = await benchFairness({ quick: process.argv.includes("--quick") });
  console.log(table(rows));
  process.exit(rows.some((r) => typeof r.errors === "number" && r.errors > 0) ? 1 : 0);
}
