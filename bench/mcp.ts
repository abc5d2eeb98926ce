/**
 * MCP: `search_memory` through the official SDK client over Streamable HTTP (POST /mcp) beside the
 * same search through POST /v1/search, on the local server, one request at a time (p50/p95 and the
 * overhead as a ratio; target <= 1.2x; with the process's CPU per request, which a busy machine
 * disturbs less than wall time); and what it costs in bytes: engram/client's bundle (target
 * < 15 KB minified) and the Lambda bundles with the MCP route (within their budgets).
 *
 *   node bin/run-ts.js bench/mcp.ts [--quick]
 */
import { gzipSync } from "node:zlib";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { build } from "esbuild";
import { startServer } from "../cli/server";
import * as Auth from "../core/auth";
import { setConfig } from "../core/config";
import { useDb } from "../core/db";
import { freshDb } from "../kit/db";
import { prose } from "../kit/factories";
import { buildLambdas, ENTRIES } from "../scripts/build";
import { round, summarize } from "./support";

const QUERIES = ["refund window", "opening hours", "shipping delays", "warranty claims", "login problems"];

export async function benchMcp({ quick }: { quick: boolean }): Promise<Record<string, unknown>[]> {
  setConfig({
    LOG_LEVEL: "silent",
    EMBEDDING_PROVIDER: "offline",
    CHAT_PROVIDER: "extractive",
    RATE_LIMIT_SEARCH: "1000000/min",
    RATE_LIMIT_DEFAULT: "1000000/min",
  });
  const t = await freshDb("pg");
  useDb(t.db);
  const server = await startServer({ port: 0 });
  const rows: Record<string, unknown>[] = [];
  try {
    const { key } = await Auth.createKey(t.db, "bench");
    const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
    const documents = Array.from({ length: 100 }, (_, i) => ({ id: `d${i}`, content: prose(i + 1, 3, 5) }));
    await fetch(`${server.url}/v1/ingest`, { method: "POST", headers, body: JSON.stringify({ documents }) });

    const mcp = new Client({ name: "bench", version: "1" });
    await mcp.connect(new StreamableHTTPClientTransport(new URL(`${server.url}/mcp`), { requestInit: { headers } }));
    const rest = async (query: string) => {
      const res = await fetch(`${server.url}/v1/search`, { method: "POST", headers, body: JSON.stringify({ query }) });
      await res.json();
    };
    const tool = async (query: string) => {
      const result = await mcp.callTool({ name: "search_memory", arguments: { query } });
      if (result.isError) throw new Error(JSON.stringify(result.content));
    };
    const n = quick ? 60 : 400;
    const timings = { rest: [] as number[], mcp: [] as number[] };
    // CPU of this process (client and server both) per request: what other work on the machine disturbs least.
    const cpu = { rest: [] as number[], mcp: [] as number[] };
    for (let i = 0; i < 20; i++) await Promise.all([rest(QUERIES[i % 5] ?? ""), tool(QUERIES[i % 5] ?? "")]);
    // Interleaved, so both see the same caches and the same machine.
    for (let i = 0; i < n; i++) {
      const query = `${QUERIES[i % QUERIES.length]} ${i % 7}`;
      for (const [name, run] of [
        ["rest", rest],
        ["mcp", tool],
      ] as const) {
        const started = performance.now();
        const before = process.cpuUsage();
        await run(query);
        timings[name].push(performance.now() - started);
        const used = process.cpuUsage(before);
        cpu[name].push((used.user + used.system) / 1000);
      }
    }
    await mcp.close();
    const r = summarize(timings.rest);
    const m = summarize(timings.mcp);
    const rc = summarize(cpu.rest);
    const mc = summarize(cpu.mcp);
    rows.push({
      path: "POST /v1/search",
      requests: n,
      "p50 ms": r.p50,
      "p95 ms": r.p95,
      "CPU p50 ms": rc.p50,
      ratio: 1,
    });
    rows.push({
      path: "MCP search_memory (POST /mcp)",
      requests: n,
      "p50 ms": m.p50,
      "p95 ms": m.p95,
      "CPU p50 ms": mc.p50,
      ratio: `${round(m.p50 / r.p50)}x p50, ${round(m.p95 / r.p95)}x p95 (target <= 1.2x); CPU ${round(mc.p50 / rc.p50)}x`,
    });
  } finally {
    await server.close();
    await t.close();
  }

  const client = await build({
    entryPoints: ["client/index.ts"],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    write: false,
  });
  const bytes = client.outputFiles[0]?.contents ?? new Uint8Array();
  rows.push({
    path: "engram/client bundle",
    "minified KB": round(bytes.byteLength / 1024, 1),
    "gzip KB": round(gzipSync(bytes).byteLength / 1024, 1),
    budget: "15 KB",
  });
  for (const report of await buildLambdas(
    undefined,
    ENTRIES.filter((e) => e.name === "mcp" || e.name === "api"),
  )) {
    rows.push({
      path: `${report.name} Lambda bundle`,
      "minified KB": round(report.bytes / 1024, 1),
      "gzip KB": round(report.gzipBytes / 1024, 1),
      budget: `${round(report.budget / 1024)} KB`,
    });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table } = await import("./support");
  console.log(table(await benchMcp({ quick: process.argv.includes("--quick") })));
  process.exit(0);
}
