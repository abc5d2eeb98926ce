/** Background work: a pass that keeps failing is tried less and less often, and as often as before once it succeeds. */
import { afterEach, describe, expect, it, vi } from "vitest";
import * as Background from "../../core/background";

afterEach(() => {
  vi.useRealTimers();
});

describe("Background.repeat", () => {
  it("doubles its pause after each failed pass, up to ten minutes, and goes back to its pace after a success", async () => {
    vi.useFakeTimers();
    const at: number[] = [];
    let failing = true;
    const work = Background.repeat("test", 5_000, async () => {
      at.push(Date.now());
      if (failing) throw new Error("the model refused a chunk's text");
    });
    // A failing pass had been sent again every 5 s, for as long as the process lived (helper 84: 25 in 2 minutes).
    await vi.advanceTimersByTimeAsync(2 * 60_000);
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    expect(gaps).toEqual([10_000, 20_000, 40_000]);
    await vi.advanceTimersByTimeAsync(60 * 60_000);
    expect(Math.max(...at.slice(1).map((t, i) => t - at[i]!))).toBe(Background.MAX_PAUSE_MS);

    failing = false;
    await vi.advanceTimersByTimeAsync(Background.MAX_PAUSE_MS);
    const recovered = at.length;
    await vi.advanceTimersByTimeAsync(20_000);
    expect(at.length - recovered).toBe(4);
    await work.stop();
  });

  it("runs a pass at once when woken, whatever the failures' pause: new work was asked for", async () => {
    vi.useFakeTimers();
    const at: number[] = [];
    const work = Background.repeat("test", 5_000, async () => {
      at.push(Date.now());
      throw new Error("the provider is down");
    });
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    const before = at.length;
    const woken = Date.now();
    work.wake?.();
    await vi.advanceTimersByTimeAsync(1);
    expect([at.length, at.at(-1)]).toEqual([before + 1, woken]);
    // And the pause starts again from the pace: 10 s after this failure, not 10 minutes.
    await vi.advanceTimersByTimeAsync(10_000);
    expect(at.length).toBe(before + 2);
    await work.stop();
  });

  it("keeps a pace longer than the longest pause as it is", () => {
    expect(Background.pauseAfter(20 * 60_000, 3)).toBe(20 * 60_000);
    expect(Background.pauseAfter(5_000, 0)).toBe(5_000);
  });
});
