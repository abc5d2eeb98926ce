/** Shared benchmark helpers: percentiles, timing, a Db that counts round trips. */
import type { Db } from "../core/db";

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

export function summarize(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: round(percentile(sorted, 50)), p95: round(percentile(sorted, 95)), p99: round(percentile(sorted, 99)) };
}

export const round = (n: number, digits = 2) => Number(n.toFixed(digits));

/** Wraps a Db so every call (one round trip on the HTTP driver) is counted. */
export function countingDb(db: Db): Db & { roundTrips: number } {
  const counted = {
    driver: db.driver,
    capabilities: db.capabilities,
    roundTrips: 0,
    query: ((q, options) => {
      counted.roundTrips++;
      return db.query(q, options);
    }) as Db["query"],
    batch: ((qs) => {
      counted.roundTrips++;
      return db.batch(qs);
    }) as Db["batch"],
    ping: () => db.ping(),
    close: () => db.close(),
  };
  return counted;
}

/** Prints rows as a Markdown table. */
export function table(rows: Record<string, unknown>[]): string {
  if (!rows.length) return "";
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const line = (cells: unknown[]) => `| ${cells.map((c) => (c === undefined ? "" : String(c))).join(" | ")} |`;
  return [line(keys), line(keys.map(() => "---")), ...rows.map((r) => line(keys.map((k) => r[k])))].join("\n");
}
