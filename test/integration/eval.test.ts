/**
 * The fast version of `npm run eval`: two of the labelled sets (eval/sets/) through the real ingest and hybrid
 * search on `pg` and PGlite. Fails when hybrid hit@10 or MRR@10 drops more than 3 points below the figure
 * recorded in eval/recorded.json (raise the record, never lower it, when a change improves them).
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setConfig } from "../../core/config";
import { evaluate, type Row } from "../../eval/run";
import { loadSet } from "../../eval/sets";

const SETS = ["conversations", "git"];
const DRIVERS = ["pg", "pglite"] as const;
const recorded = JSON.parse(readFileSync(new URL("../../eval/recorded.json", import.meta.url), "utf8")) as Record<
  string,
  Record<string, { hit10: number; mrr10: number }>
>;

beforeAll(() => {
  setConfig({ LOG_LEVEL: "silent", EMBEDDING_PROVIDER: "offline", SEARCH_QUERY_CACHE_TTL_SECONDS: "0" });
});
afterAll(() => {
  setConfig({ LOG_LEVEL: "silent" });
});

describe.each(DRIVERS)("labelled sets on %s", (driver) => {
  it.each(SETS)(
    "keeps hybrid hit@10 and MRR@10 on the %s set within 3 points of the recorded figures",
    async (name) => {
      const [row] = (await evaluate(loadSet(name), driver, ["hybrid"])) as [Row];
      const record = recorded[driver]?.[name];
      console.log(`[${driver}] ${name}: hybrid hit@10 ${row.hit10.toFixed(3)}, MRR@10 ${row.mrr10.toFixed(3)}`);

      expect(record, `no recorded figure for ${driver}/${name} in eval/recorded.json`).toBeDefined();
      expect(row.n).toBeGreaterThanOrEqual(50);
      expect(row.hit10).toBeGreaterThanOrEqual((record?.hit10 ?? 1) - 0.03);
      expect(row.mrr10).toBeGreaterThanOrEqual((record?.mrr10 ?? 1) - 0.03);
    },
    240_000,
  );
});
