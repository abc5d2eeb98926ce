import { describe, expect, it } from "vitest";
import { chart, type SizeResult, sizesFrom } from "../../bench/scale";

const result = (chunks: number, p95: number, recall: number): SizeResult =>
  ({
    chunks,
    search: (["unfiltered", "filter 1%", "hybrid"] as const).map((scenario) => ({
      scenario,
      strategy: "auto",
      "recall@10": recall,
      "full topK": true,
      "p50 ms": p95 / 2,
      "p95 ms": p95,
    })),
  }) as unknown as SizeResult;

describe("npm run bench -- --scale", () => {
  it("runs every size with --scale alone and the named ones with --scale=", () => {
    expect(sizesFrom(["--scale"])).toEqual([10_000, 100_000, 300_000, 1_000_000]);
    expect(sizesFrom(["--quick", "--scale=10k,300k"])).toEqual([10_000, 300_000]);
    expect(sizesFrom(["--scale=1M,50000"])).toEqual([1_000_000, 50_000]);
  });

  it("refuses a size it does not know instead of running something else", () => {
    expect(() => sizesFrom(["--scale=10k,lots"])).toThrow(/unknown size lots/);
    expect(() => sizesFrom(["--scale=12"])).toThrow(/unknown size 12/);
  });

  it("draws one point per size and scenario in each panel, slower searches higher up", () => {
    const svg = chart([result(10_000, 10, 1), result(100_000, 40, 0.95)]);
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg.match(/<circle /g)).toHaveLength(2 * 2 * 3);
    const latency = svg.split("recall@10</text>")[0] as string;
    const first = latency.match(/<polyline [^>]*points="([^"]+)"/)?.[1]?.split(" ") ?? [];
    const [x10, y10] = (first[0] ?? "").split(",").map(Number) as [number, number];
    const [x100, y100] = (first[1] ?? "").split(",").map(Number) as [number, number];
    expect(x100).toBeGreaterThan(x10);
    expect(y100).toBeLessThan(y10);
  });
});
