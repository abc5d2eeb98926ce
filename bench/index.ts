/**
 * `npm run bench [-- --quick]`: every scenario, one after another on the local Postgres, with
 * baselines measured in the same run. Writes bench/results/latest.json and latest.md (`--out=NAME`: NAME.json and
 * NAME.md, so a partial run, `--only=search,ingest`, leaves the full report in place). `--scale[=10k,100k]`: the
 * scale curve alone (bench/scale.ts), into bench/results/scale.{json,md,svg}.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { setConfig } from "../core/config";
import { table } from "./support";

const quick = process.argv.includes("--quick");
const only = process.argv.find((a) => a.startsWith("--only="))?.slice(7);
setConfig({ LOG_LEVEL: "silent", EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive" });

if (process.argv.some((a) => a === "--scale" || a.startsWith("--scale="))) {
  const Scale = await import("./scale");
  const count = Number(process.argv.find((a) => a.startsWith("--queries="))?.slice(10) ?? 100);
  console.log(table(await Scale.benchScale(Scale.sizesFrom(process.argv), count)));
  process.exit(0);
}

type Scenario = { name: string; run: (opts: { quick: boolean }) => Promise<Record<string, unknown>[]> };
const scenarios: Scenario[] = [
  { name: "ingest", run: async (o) => (await import("./ingest")).benchIngest(o) },
  { name: "search", run: async (o) => (await import("./search")).benchSearch(o) },
  { name: "reembed", run: async (o) => (await import("./reembed")).benchReembed(o) },
  { name: "halfvec", run: async (o) => (await import("./halfvec")).benchHalfvec(o) },
  { name: "roundtrips", run: async (o) => (await import("./roundtrips")).benchRoundTrips(o) },
  { name: "http", run: async (o) => (await import("./http")).benchHttp(o) },
  { name: "langchain", run: async (o) => (await import("./langchain")).benchLangChain(o) },
  { name: "chat", run: async (o) => (await import("./chat")).benchChat(o) },
  { name: "mcp", run: async (o) => (await import("./mcp")).benchMcp(o) },
  { name: "ratelimit", run: async (o) => (await import("./ratelimit")).benchRateLimit(o) },
  { name: "coldstart", run: async (o) => (await import("./coldstart")).benchColdStart(o) },
  { name: "load", run: async (o) => (await import("./load")).benchLoad(o) },
  { name: "fairness", run: async (o) => (await import("./fairness")).benchFairness(o) },
  { name: "extract", run: async (o) => (await import("./extract")).benchExtract(o) },
];

const started = Date.now();
const results: Record<string, Record<string, unknown>[]> = {};
/** Scenarios that threw or reported an error: the run still writes its report, then exits 1. */
const failed: string[] = [];
const markdown: string[] = [
  `# Engram benchmarks${quick ? " (quick)" : ""}`,
  "",
  `Run ${new Date().toISOString()} on this machine.`,
  "",
];
for (const scenario of scenarios) {
  if (only && !only.split(",").includes(scenario.name)) continue;
  const t0 = Date.now();
  process.stderr.write(`bench: ${scenario.name}...\n`);
  try {
    results[scenario.name] = await scenario.run({ quick });
  } catch (error) {
    results[scenario.name] = [{ error: (error as Error).message }];
    process.stderr.write(`bench: ${scenario.name} failed: ${(error as Error).stack ?? error}\n`);
  }
  const rows = results[scenario.name] ?? [];
  // A scenario fails when it threw, or reports errors (unexpected answers) of its own.
  const bad = (row: Record<string, unknown>) =>
    (row.error !== undefined && row.error !== null) || (typeof row.errors === "number" && row.errors > 0);
  if (rows.some(bad)) failed.push(scenario.name);
  const section = `## ${scenario.name} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n\n${table(rows)}\n`;
  console.log(section);
  markdown.push(section);
}
const seconds = (Date.now() - started) / 1000;
// --quick is a smoke run meant to finish in two minutes; say so when it did not.
const over = quick && !only && seconds > 120 ? " (over the two minutes --quick is meant to take)" : "";
markdown.push(`Total: ${seconds.toFixed(1)} s${over}.`);
console.log(`Total: ${seconds.toFixed(1)} s${over}`);
mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
const out = process.argv.find((a) => a.startsWith("--out="))?.slice(6) ?? "latest";
writeFileSync(new URL(`./results/${out}.json`, import.meta.url), JSON.stringify({ quick, seconds, results }, null, 2));
writeFileSync(new URL(`./results/${out}.md`, import.meta.url), `${markdown.join("\n")}\n`);
if (failed.length) console.error(`bench: failed: ${failed.join(", ")}`);
process.exit(failed.length ? 1 : 0);
