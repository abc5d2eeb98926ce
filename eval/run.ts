/**
 * `npm run eval`: the labelled question sets of eval/sets/ through Engram's real ingest and search path, beside
 * two baselines computed in the same run on the same stored text (eval/baselines.ts). Prints hit@1/5/10, MRR@10
 * and evidence recall@10 per set, mode and question kind, and writes bench/results/eval.{json,md}.
 *
 *   npm run eval                          every set on `pg` (the test rig's PostgreSQL, see README "Tests")
 *   npm run eval -- --driver pglite       on embedded PGlite
 *   npm run eval -- --sets git,python     some sets
 *   npm run eval -- --systems keyword,bm25  some systems (hybrid, keyword, vector, fts, bm25)
 *   npm run eval -- --grid rrf:0.5,score:0.7  hybrid under other fusion settings, on the same stored sets
 *   npm run eval -- --topk 50             hybrid, keyword and vector asked for 50 results, scored on their first 10
 *   npm run eval -- --seed 11             the offline embedder hashing its features with another seed: an equally good
 *                                         embedder, so the spread over seeds is the figures' noise (docs/search.md)
 *   npm run eval -- --out none            print only
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { config, setConfig } from "../core/config";
import type { DriverName } from "../core/db";
import { useEmbedder } from "../core/embedding";
import { createOfflineEmbedder } from "../core/embedding/offline";
import * as Search from "../core/search";
import type { Mode } from "../core/search/schema";
import { freshDb } from "../kit/db";
import * as Baselines from "./baselines";
import { type Kind, mean, type Scores, score } from "./metrics";
import { type EvalSet, ingestSet, loadSet, SET_NAMES } from "./sets";

export const MODES: Mode[] = ["hybrid", "keyword", "vector"];
export type System = Mode | Baselines.Baseline;
const SYSTEMS: System[] = [...MODES, ...Baselines.BASELINES];
const K = 10;
const BASE_CONFIG = { LOG_LEVEL: "warn", EMBEDDING_PROVIDER: "offline", SEARCH_QUERY_CACHE_TTL_SECONDS: "0" };

export interface Row extends Scores {
  set: string;
  kind: Kind | "all";
  system: System;
  n: number;
}

/** Runs every question of a loaded set through each system; one row per (kind, system), plus "all". */
export async function evaluate(
  set: EvalSet,
  driver: DriverName,
  systems: System[] = SYSTEMS,
  variants: Record<string, Record<string, string>> = {},
  topK: number = K,
): Promise<Row[]> {
  const t = await freshDb(driver);
  try {
    const callerOf = await ingestSet(t.db, set);
    // Other search settings on the same stored set (`--grid`): hybrid only, one row each.
    const extra: Row[] = [];
    for (const [label, overrides] of Object.entries(variants)) {
      setConfig({ ...BASE_CONFIG, ...overrides });
      const scores = [];
      for (const q of set.questions) {
        const { results } = await Search.query(
          t.db,
          await callerOf(q.userId),
          Search.SearchRequest.parse({ query: q.question, mode: "hybrid", topK }),
        );
        scores.push(score(q, results));
      }
      extra.push({ set: set.name, kind: "all", system: label as System, ...mean(scores) });
      setConfig(BASE_CONFIG);
    }
    if (extra.length) return extra;
    const textConfig = "english";
    if (systems.some((s) => Baselines.BASELINES.includes(s as Baselines.Baseline))) {
      await Baselines.prepare(t.db, (await callerOf(undefined)).tenantId, textConfig);
    }
    const perSystem = new Map<System, { kind: Kind; scores: Scores }[]>();
    for (const system of systems) {
      const list: { kind: Kind; scores: Scores }[] = [];
      for (const q of set.questions) {
        const results = Baselines.BASELINES.includes(system as Baselines.Baseline)
          ? await Baselines.search(t.db, system as Baselines.Baseline, q.question, q.userId ?? "", textConfig, K)
          : (
              await Search.query(
                t.db,
                await callerOf(q.userId),
                Search.SearchRequest.parse({ query: q.question, mode: system as Mode, topK }),
              )
            ).results;
        list.push({ kind: q.kind, scores: score(q, results) });
      }
      perSystem.set(system, list);
    }
    const rows: Row[] = [];
    const kinds = [...new Set(set.questions.map((q) => q.kind))].sort() as Kind[];
    for (const kind of ["all", ...kinds] as const) {
      for (const system of systems) {
        const list = (perSystem.get(system) ?? []).filter((x) => kind === "all" || x.kind === kind);
        rows.push({ set: set.name, kind, system, ...mean(list.map((x) => x.scores)) });
      }
    }
    return rows;
  } finally {
    await t.close();
  }
}

const pct = (x: number) => (x * 100).toFixed(1);

/** The rows as a Markdown table. */
export function table(rows: Row[]): string {
  const lines = [
    "| set | questions | system | hit@1 | hit@5 | hit@10 | MRR@10 | evidence@10 |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    const label = r.kind === "all" ? r.set : `${r.set} · ${r.kind}`;
    const system =
      r.system === "fts"
        ? "Postgres FTS (baseline)"
        : r.system === "bm25"
          ? "BM25 in SQL (baseline)"
          : `Engram ${r.system}`;
    lines.push(
      `| ${label} | ${r.n} | ${system} | ${pct(r.hit1)} | ${pct(r.hit5)} | ${pct(r.hit10)} | ${pct(r.mrr10)} | ${pct(r.evidence10)} |`,
    );
  }
  return lines.join("\n");
}

async function main() {
  const args = process.argv.slice(2);
  const option = (name: string) => {
    const i = args.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
    if (i < 0) return undefined;
    const arg = args[i] as string;
    return arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : args[i + 1];
  };
  const driver = (option("driver") ?? "pg") as DriverName;
  const names = (option("sets") ?? SET_NAMES.join(",")).split(",");
  const out = option("out") ?? "bench/results/eval";
  // Asking for more results must not change the first ten: `--topk 50` checks that (docs/search.md, "Fusion").
  const topK = Number(option("topk") ?? K);
  if (!Number.isInteger(topK) || topK < K) throw new Error(`--topk must be an integer of at least ${K}`);
  setConfig(BASE_CONFIG);
  const seed = option("seed") === undefined ? undefined : Number(option("seed"));
  if (seed !== undefined) useEmbedder(createOfflineEmbedder({ dimensions: config().embedding.dimensions, seed }));
  const variants: Record<string, Record<string, string>> = {};
  if (args.includes("--grid")) {
    const grid = (option("grid") ?? "rrf:0.5,rrf:0.7,score:0.7").split(",");
    for (const cell of grid) {
      const [fusion = "rrf", w = "0.5"] = cell.split(":");
      variants[`${fusion} w${w}`] = { SEARCH_FUSION: fusion, SEARCH_KEYWORD_WEIGHT: w };
    }
  }

  const started = Date.now();
  const rows: Row[] = [];
  for (const name of names) {
    const set = loadSet(name);
    const t0 = Date.now();
    const systems = (option("systems")?.split(",") as System[] | undefined) ?? SYSTEMS;
    const setRows = await evaluate(set, driver, systems, variants, topK);
    rows.push(...setRows);
    console.log(
      `\n${set.name}: ${set.documents.length} documents, ${set.questions.length} questions, ${((Date.now() - t0) / 1000).toFixed(0)} s`,
    );
    console.log(table(setRows));
  }
  const report = {
    date: new Date().toISOString(),
    driver,
    embedder: seed === undefined ? "offline" : `offline, seed ${seed}`,
    k: K,
    topK,
    seconds: Math.round((Date.now() - started) / 1000),
    rows,
  };
  if (out !== "none") {
    mkdirSync(out.replace(/\/[^/]*$/, ""), { recursive: true });
    writeFileSync(`${out}.json`, `${JSON.stringify(report, null, 2)}\n`);
    const header = `# Retrieval quality (npm run eval)\n\n${report.date}, driver ${driver}, ${report.embedder} embedder, top ${K}${topK === K ? "" : ` of ${topK} asked`}; baselines computed in the same run on the same text (eval/baselines.ts). Percentages.\n\n`;
    writeFileSync(
      `${out}.md`,
      `${header}${table(rows.filter((r) => r.kind === "all"))}\n\nBy question kind:\n\n${table(rows.filter((r) => r.kind !== "all"))}\n`,
    );
    console.log(`\nwrote ${out}.json and ${out}.md`);
  }
}

if (process.argv[1]?.endsWith("eval/run.ts")) {
  main().then(
    () => process.exit(0),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
