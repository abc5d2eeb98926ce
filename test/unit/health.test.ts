/** Health's share of stale chunks from what its probe read: counted, or the statistics less what is deleted. */
import { describe, expect, it } from "vitest";
import * as Health from "../../core/health";

const probe = (overrides: Partial<Health.Probe>): Health.Probe => ({
  exact: null,
  total: 10_000,
  stale: 0.6,
  deletedShare: 0,
  goneRead: 0,
  goneStale: 0,
  ...overrides,
});

describe("staleShareOf", () => {
  it("takes a counted share as it is, and knows none without statistics", () => {
    expect(Health.staleShareOf(probe({ exact: 0.25, stale: null }))).toBe(0.25);
    expect(Health.staleShareOf(probe({ stale: null }))).toBeUndefined();
  });

  it("takes the deleted documents' chunks out when it read all of them", () => {
    // 6,000 of 10,000 stale; 80 deleted, 70 of them stale: 5,930 of 9,920.
    expect(Health.staleShareOf(probe({ goneRead: 80, goneStale: 70 }))).toBeCloseTo(5_930 / 9_920, 10);
  });

  it("past the chunks it reads, counts the deleted ones from the documents' share, of the models it read", () => {
    // 4,000 chunks of deleted documents, all of another model, as the 101 read: 2,000 of 6,000.
    expect(Health.staleShareOf(probe({ deletedShare: 0.4, goneRead: 101, goneStale: 101 }))).toBeCloseTo(1 / 3, 10);
    // Statistics not yet analyzed after the deletes: at least the 101 read.
    expect(Health.staleShareOf(probe({ deletedShare: null, goneRead: 101, goneStale: 101 }))).toBeCloseTo(
      5_899 / 9_899,
      10,
    );
  });

  it("stays within 0 and 1 when the estimates disagree, and is 0 with nothing live", () => {
    expect(Health.staleShareOf(probe({ stale: 0.1, deletedShare: 0.5, goneRead: 101, goneStale: 101 }))).toBe(0);
    expect(Health.staleShareOf(probe({ stale: 0.9, deletedShare: 0.5, goneRead: 101, goneStale: 0 }))).toBe(1);
    expect(Health.staleShareOf(probe({ deletedShare: 1, goneRead: 101, goneStale: 50 }))).toBe(0);
  });
});
