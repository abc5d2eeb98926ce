/**
 * Lambda cold starts, offline. Bundles every function as `npm run build` does (the way SST
 * deploys them), then for each sample starts a fresh `node` process that imports one bundle and
 * answers one request, with the environment Lambda and SST give a deployed function:
 * `AWS_LAMBDA_FUNCTION_NAME`, and the linked secrets in an AES-GCM `resource.enc` beside the
 * bundle (`SST_KEY`, `SST_KEY_FILE`), read through `sst/resource` exactly as on AWS. The
 * database is a fresh, migrated one behind the local Neon-protocol server (a `*.neon.tech` URL,
 * so the config picks the Neon HTTP driver as it would on AWS); the model is the fake
 * OpenAI-compatible server. A bare `async () => ({ statusCode: 200 })` bundle is the floor.
 *
 * Measured in the child: import (module load and evaluation), first response (the handler's
 * first invocation: config, clients, first fetch, the database), and process start to response.
 * Import is given in wall time and in CPU time; on a machine shared with other work the CPU time
 * is the steadier figure, and the closer one to a Lambda's, whose cold start has its CPU alone.
 * Samples go round robin over the functions, so the load of the moment falls on all alike.
 *
 *   node bin/run-ts.js bench/coldstart.ts [--quick]
 */
import { spawn } from "node:child_process";
import { createCipheriv, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import * as Auth from "../core/auth";
import { migrate } from "../core/db/migrate";
import { createPgDb } from "../core/db/pg";
import { createDatabase, DIMENSIONS, dropDatabase, pgUrl } from "../kit/db";
import { apiEvent } from "../kit/events";
import { startNeonServer } from "../kit/neon-server";
import { startOpenAIServer } from "../kit/openai-server";
import { buildLambdas, esbuildOptions } from "../scripts/build";
import { round, summarize } from "./support";

/** Lambda's import-time budget above the bare handler. */
const TARGET_MS = 50;

/** Runs in each child: imports the bundle, invokes the handler once, reports its timings. */
const HARNESS = `
globalThis.awslambda = { streamifyResponse: (f) => f, HttpResponseStream: { from: (s) => s } };
const [bundle, exported, eventJson] = process.argv.slice(2);
const t0 = performance.now();
const cpu0 = process.cpuUsage();
const module = await import(bundle);
const t1 = performance.now();
const cpu = process.cpuUsage(cpu0);
const context = {
  awsRequestId: crypto.randomUUID(), functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
  functionVersion: "$LATEST", memoryLimitInMB: "1024", callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => 29000,
};
const result = await module[exported](JSON.parse(eventJson), context);
const t2 = performance.now();
const status = result && typeof result === "object" && "statusCode" in result ? result.statusCode : "ok";
process.stdout.write("\\nBENCH " + JSON.stringify({ importMs: t1 - t0, importCpuMs: (cpu.user + cpu.system) / 1000, firstMs: t2 - t1, totalMs: t2, status }) + "\\n");
process.exit(0);
`;

interface Case {
  name: string;
  bundle: string;
  exported: string;
  /** The request (for sample i: its own end user, so the rate limits never bite). */
  event(i: number): unknown;
  env?: Record<string, string>;
}

interface Sample {
  importMs: number;
  /** CPU time of the import: what it costs without other processes competing for the cores. */
  importCpuMs: number;
  firstMs: number;
  totalMs: number;
  status: number | string;
}

/** SST's encrypted link file: AES-256-GCM, zero nonce, ciphertext then tag (sst/resource reads it). */
function writeResourceFile(dir: string, key: Buffer, resources: Record<string, unknown>) {
  const cipher = createCipheriv("aes-256-gcm", key, Buffer.alloc(12, 0));
  const data = Buffer.concat([cipher.update(JSON.stringify(resources)), cipher.final(), cipher.getAuthTag()]);
  writeFileSync(join(dir, "resource.enc"), data);
}

function runOnce(c: Case, i: number, env: Record<string, string>, harness: string): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [harness, pathToFileURL(c.bundle).href, c.exported, JSON.stringify(c.event(i))],
      {
        cwd: dirname(c.bundle),
        env: { ...env, AWS_LAMBDA_FUNCTION_NAME: `engram-bench-${c.name}`, ...c.env },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("BENCH "));
      if (code !== 0 || !line) reject(new Error(`${c.name}: exit ${code}\n${out}\n${err}`.trim()));
      else resolve(JSON.parse(line.slice(6)) as Sample);
    });
  });
}

export async function benchColdStart(opts: { quick: boolean }): Promise<Record<string, unknown>[]> {
  const samples = opts.quick ? 5 : 20;
  const work = mkdtempSync(join(tmpdir(), "engram-coldstart-"));
  const database = await createDatabase();
  const neon = await startNeonServer();
  const openai = await startOpenAIServer({ apiKey: "sk-bench" });
  try {
    const setup = createPgDb(pgUrl(database));
    await migrate(setup, { embeddingDimensions: DIMENSIONS, searchTextConfig: "english" });
    const { key } = await Auth.createKey(setup, "bench");
    await setup.close();

    const reports = await buildLambdas(join(work, "lambda"));
    const floorSource = join(work, "floor.ts");
    writeFileSync(floorSource, "export const handler = async () => ({ statusCode: 200 });\n");
    const floorBundle = join(work, "floor", "index.mjs");
    await build({ ...esbuildOptions(floorSource, floorBundle), plugins: [] });
    const harness = join(work, "harness.mjs");
    writeFileSync(harness, HARNESS);

    // What SST gives a deployed function: the app, and the links behind a key.
    const sstKey = randomBytes(32);
    const databaseUrl = `postgresql://postgres@ep-bench-000000.us-east-2.aws.neon.tech:${neon.port}/${database}`;
    const resources = {
      DatabaseUrl: { type: "sst.sst.Secret", value: databaseUrl },
      OpenAiApiKey: { type: "sst.sst.Secret", value: "sk-bench" },
    };
    for (const r of reports) writeResourceFile(dirname(r.file), sstKey, resources);
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "",
      TZ: ":UTC",
      AWS_REGION: "us-east-2",
      AWS_EXECUTION_ENV: "AWS_Lambda_nodejs22.x",
      SST_RESOURCE_App: JSON.stringify({ name: "engram", stage: "bench" }),
      SST_KEY: sstKey.toString("base64"),
      SST_KEY_FILE: "resource.enc",
      // Only the bench's local stand-ins for Neon and OpenAI differ from AWS.
      NEON_FETCH_ENDPOINT: neon.url,
      OPENAI_BASE_URL: openai.url,
    };

    const bundle = (name: string) => join(work, "lambda", name, "index.mjs");
    const keyed = (i: number, method: string, path: string, body?: unknown) =>
      apiEvent({ method, path, body, headers: { authorization: `Bearer ${key}`, "x-user-id": `bench-${i}` } });
    const question = [{ role: "user", content: "What is the refund window?" }];
    const cases: Case[] = [
      { name: "floor (bare handler)", bundle: floorBundle, exported: "handler", event: () => ({}) },
      {
        name: "api",
        bundle: bundle("api"),
        exported: "handler",
        event: () => apiEvent({ method: "GET", path: "/v1/health" }),
      },
      {
        name: "ingest",
        bundle: bundle("ingest"),
        exported: "handler",
        event: (i) =>
          keyed(i, "POST", "/v1/ingest", { documents: [{ content: `Refunds are accepted within ${i + 14} days.` }] }),
      },
      {
        name: "search",
        bundle: bundle("search"),
        exported: "handler",
        event: (i) => keyed(i, "POST", "/v1/search", { query: "refund window" }),
      },
      {
        name: "chat",
        bundle: bundle("chat"),
        exported: "handler",
        event: (i) => keyed(i, "POST", "/v1/chat", { messages: question }),
      },
      {
        name: "cleanup",
        bundle: bundle("cleanup"),
        exported: "handler",
        event: () => ({ "detail-type": "Scheduled Event" }),
      },
      {
        name: "api, source maps on",
        bundle: bundle("api"),
        exported: "handler",
        event: () => apiEvent({ method: "GET", path: "/v1/health" }),
        env: { NODE_OPTIONS: "--enable-source-maps" },
      },
    ];

    // Round robin, one sample of each case in turn: a machine whose load drifts during the run
    // (other processes on the cores) then weighs on every case alike, the floor included.
    for (const c of cases) await runOnce(c, -1, env, harness); // warms the file cache, as Lambda's would be
    const runs = new Map<Case, Sample[]>(cases.map((c) => [c, []]));
    for (let i = 0; i < samples; i++) {
      for (const c of cases) runs.get(c)?.push(await runOnce(c, i, env, harness));
    }
    const rows: Record<string, unknown>[] = [];
    let floorImport = 0;
    let floorCpu = 0;
    for (const c of cases) {
      const samplesOf = runs.get(c) ?? [];
      const imports = summarize(samplesOf.map((r) => r.importMs));
      const importCpu = summarize(samplesOf.map((r) => r.importCpuMs));
      const first = summarize(samplesOf.map((r) => r.firstMs));
      const total = summarize(samplesOf.map((r) => r.totalMs));
      if (c.bundle === floorBundle) {
        floorImport = imports.p50;
        floorCpu = importCpu.p50;
      }
      const beyond = round(imports.p50 - floorImport, 1);
      rows.push({
        function: c.name,
        "bundle KB": round(statSync(c.bundle).size / 1024, 1),
        "import p50 ms": round(imports.p50, 1),
        "import p95 ms": round(imports.p95, 1),
        "import CPU p50 ms": round(importCpu.p50, 1),
        "import over floor p50 ms": beyond,
        "import CPU over floor p50 ms": round(importCpu.p50 - floorCpu, 1),
        [`under ${TARGET_MS} ms`]: beyond < TARGET_MS ? "yes" : "NO",
        "first response p50 ms": round(first.p50, 1),
        "first response p95 ms": round(first.p95, 1),
        "start to response p50 ms": round(total.p50, 1),
        "start to response p95 ms": round(total.p95, 1),
        status: [...new Set(samplesOf.map((r) => r.status))].join(","),
      });
    }
    return rows;
  } finally {
    await openai.close();
    await neon.close();
    await dropDatabase(database);
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table } = await import("./support");
  const quick = process.argv.includes("--quick");
  console.log(`${quick ? 5 : 20} samples per function, one fresh node process each (${process.version})`);
  console.log(table(await benchColdStart({ quick })));
  process.exit(0);
}
