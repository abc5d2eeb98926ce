/** Rate-limit arithmetic: parsing rates, GCRA state to header values, header text. */
import { afterEach, describe, expect, it } from "vitest";
import { setConfig } from "../../core/config";
import { EngramError } from "../../core/error";
import * as RateLimit from "../../core/ratelimit";

describe("parseRate", () => {
  it.each([
    ["20/min", { limit: 20, windowSeconds: 60 }],
    ["5/s", { limit: 5, windowSeconds: 1 }],
    ["5/sec", { limit: 5, windowSeconds: 1 }],
    ["5/second", { limit: 5, windowSeconds: 1 }],
    ["120/m", { limit: 120, windowSeconds: 60 }],
    ["120/minute", { limit: 120, windowSeconds: 60 }],
    ["1000/h", { limit: 1000, windowSeconds: 3600 }],
    ["1000/hour", { limit: 1000, windowSeconds: 3600 }],
    ["0/min", { limit: 0, windowSeconds: 60 }],
    [" 30/min ", { limit: 30, windowSeconds: 60 }],
  ])("reads %j as a limit and a window", (text, expected) => {
    const rate = RateLimit.parseRate(text);

    expect(rate).toEqual(expected);
  });

  it.each([
    "",
    "20",
    "20/",
    "/min",
    "20/day",
    "20/mins",
    "-1/min",
    "1.5/min",
    "20 per min",
    "20/MIN",
    "twenty/min",
    "99999999999999999999/s",
    "20/constructor",
  ])("rejects %j with an input error that quotes it", (text) => {
    const error = (() => {
      try {
        RateLimit.parseRate(text);
      } catch (e) {
        return e;
      }
    })();

    expect(error).toBeInstanceOf(EngramError);
    expect(error).toMatchObject({ kind: "input", code: "ratelimit.invalid_rate" });
    expect((error as Error).message).toContain(JSON.stringify(text));
  });
});

describe("outcome", () => {
  const rate = { limit: 20, windowSeconds: 60 }; // one request every 3 s

  it("leaves limit - 1 remaining and 3 s to full after the first request on an empty bucket", () => {
    expect(RateLimit.outcome(rate, true, 3)).toEqual({
      admitted: true,
      remaining: 19,
      resetSeconds: 3,
      retryAfterSeconds: 0,
    });
  });

  it("leaves nothing remaining after the limit-th request of a burst", () => {
    expect(RateLimit.outcome(rate, true, 59.9995)).toEqual({
      admitted: true,
      remaining: 0,
      resetSeconds: 60,
      retryAfterSeconds: 0,
    });
  });

  it("counts a request as regained once its emission interval has passed", () => {
    // TAT 41 s ahead: 19 s of the 60 s window are free, which is 6 whole requests of 3 s.
    expect(RateLimit.outcome(rate, true, 41)).toMatchObject({ remaining: 6, resetSeconds: 41 });
  });

  it("does not lose a request to microsecond rounding", () => {
    expect(RateLimit.outcome({ limit: 3, windowSeconds: 1 }, true, 0.333333)).toMatchObject({ remaining: 2 });
  });

  it("tells a refused caller when the next request fits, in Retry-After and in the RateLimit header's reset alike", () => {
    // TAT 59 s ahead: the next request fits once it is at most 57 s ahead, in 2 s. The budget is full in 59 s, but
    // that is not when the caller may come back: a header saying t=59 beside Retry-After: 2 told two different waits.
    expect(RateLimit.outcome(rate, false, 59)).toEqual({
      admitted: false,
      remaining: 0,
      resetSeconds: 2,
      retryAfterSeconds: 2,
    });
  });

  it("gives a refusal the same whole seconds, rounded up, in both, and never 0", () => {
    const rates = [
      rate,
      { limit: 3, windowSeconds: 60 },
      { limit: 1000, windowSeconds: 1 },
      { limit: 1, windowSeconds: 3600 },
    ];
    for (const r of rates) {
      const interval = r.windowSeconds / r.limit;
      // From just past the point of refusal (TAT a window less one interval ahead) to a long way past it.
      for (const over of [1e-7, 0.0001, 0.4, 0.5, 1, 1.5, interval, 2 * interval]) {
        const refused = RateLimit.outcome(r, false, r.windowSeconds - interval + over);
        expect(refused.resetSeconds).toBe(refused.retryAfterSeconds);
        expect(refused.retryAfterSeconds).toBeGreaterThanOrEqual(1);
        expect(RateLimit.headers("x", r, refused).ratelimit).toBe(`"x";r=0;t=${refused.retryAfterSeconds}`);
      }
    }
  });

  it("never tells a refused caller to retry in less than a second", () => {
    expect(RateLimit.outcome(rate, false, 57.2).retryAfterSeconds).toBe(1);
    expect(RateLimit.outcome({ limit: 1000, windowSeconds: 1 }, false, 1.0001).retryAfterSeconds).toBe(1);
  });
});

describe("headers", () => {
  it("formats RateLimit-Policy and RateLimit in the IETF draft's form", () => {
    const headers = RateLimit.headers("default", { limit: 20, windowSeconds: 60 }, { remaining: 7, resetSeconds: 41 });

    expect(headers).toEqual({ "ratelimit-policy": '"default";q=20;w=60', ratelimit: '"default";r=7;t=41' });
  });
});

describe("refusal messages", () => {
  const rate = { limit: 3, windowSeconds: 60 };
  const ceiling = { limit: 10, windowSeconds: 60 };
  const refused = (rateClass: RateLimit.RateClass, refusedBy: "user" | "tenant") => {
    const full = RateLimit.outcome(rate, false, 60);
    const room = RateLimit.outcome(ceiling, true, 0);
    try {
      RateLimit.verdict(rateClass, rate, ceiling, {
        own: refusedBy === "user" ? full : room,
        ceiling: refusedBy === "tenant" ? full : room,
        refusedBy,
      });
    } catch (error) {
      return (error as EngramError).message;
    }
    throw new Error("not refused");
  };

  it("waits for the later of the two when both the caller's limit and the tenant's ceiling are full", () => {
    const own = RateLimit.outcome(rate, false, 60);
    const tenant = RateLimit.outcome(ceiling, false, 110);
    const refusal = (() => {
      try {
        RateLimit.verdict("search", rate, ceiling, { own, ceiling: tenant, refusedBy: "user" });
      } catch (error) {
        return error as EngramError;
      }
      throw new Error("not refused");
    })();
    expect([own.retryAfterSeconds, tenant.retryAfterSeconds]).toEqual([20, 56]);
    expect(refusal.retryAfterSeconds).toBe(56);
    expect(refusal.headers?.ratelimit).toBe('"tenant.search";r=0;t=56');
    expect(refusal.message).toMatch(/^Too many search requests for this tenant: .* retry in 56 s\.$/);
  });

  it("names the default class's requests in words a user knows, and the other classes by name", () => {
    expect(refused("default", "user")).toBe("Too many requests: the limit is 3 per 60 s; retry in 20 s.");
    expect(refused("default", "tenant")).toMatch(/^Too many requests for this tenant: its ceiling, shared by all/);
    expect(refused("search", "user")).toMatch(/^Too many search requests: the limit is 3 per 60 s/);
    expect(RateLimit.closed("default", { limit: 0, windowSeconds: 60 }, ceiling).message).toBe(
      "This tenant's default limit is 0: no requests other than search, chat and ingest are allowed.",
    );
    expect(RateLimit.closed("chat", { limit: 0, windowSeconds: 60 }, ceiling).message).toBe(
      "This tenant's chat limit is 0: no chat requests are allowed.",
    );
  });
});

describe("bucketKey", () => {
  it("counts per end user when there is one, else per API key, within the class", () => {
    const key = { keyPrefix: "egm_AbCdEfGh", userId: "" };

    expect(RateLimit.bucketKey(key, "chat")).toBe("chat/k:egm_AbCdEfGh");
    expect(RateLimit.bucketKey({ ...key, userId: "alice" }, "chat")).toBe("chat/u:alice");
    expect(RateLimit.bucketKey({ ...key, userId: "alice" }, "search")).toBe("search/u:alice");
  });
});

describe("policyFor", () => {
  afterEach(() => {
    setConfig({ LOG_LEVEL: "silent" });
  });

  it("uses the tenant's override for the class, else the configured default", () => {
    setConfig({ LOG_LEVEL: "silent", RATE_LIMIT_SEARCH: "7/s" });
    const caller = { tenantId: "t", rateLimits: { chat: "2/min" } };

    expect(RateLimit.policyFor(caller, "chat")).toEqual({ limit: 2, windowSeconds: 60 });
    expect(RateLimit.policyFor(caller, "search")).toEqual({ limit: 7, windowSeconds: 1 });
    expect(RateLimit.policyFor(caller, "default")).toEqual({ limit: 300, windowSeconds: 60 });
  });

  it("falls back to the default when a stored override is malformed", () => {
    setConfig({ LOG_LEVEL: "silent" });

    expect(RateLimit.policyFor({ tenantId: "t", rateLimits: { ingest: "lots" } }, "ingest")).toEqual({
      limit: 30,
      windowSeconds: 60,
    });
  });
});
