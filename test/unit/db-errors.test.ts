/** Driver failures as the product's answers: never a 500 for a database that is only busy or a request too big for it. */
import { describe, expect, it } from "vitest";
import { errorResponse } from "../../core/api/http";
import { mapDbError, retriedOn } from "../../core/db/errors";

describe("mapDbError", () => {
  it("answers 503 database.busy with Retry-After when pg's pool waited too long for a connection", () => {
    expect(mapDbError(new Error("timeout exceeded when trying to connect"))).toMatchObject({
      code: "database.busy",
      status: 503,
      retryAfterSeconds: 1,
    });
  });

  it("answers 503 database.busy when Postgres has no connection slot left (53300)", () => {
    const error = Object.assign(new Error("sorry, too many clients already"), { code: "53300" });
    expect(mapDbError(error)).toMatchObject({ code: "database.busy", status: 503 });
  });

  it("answers 503 database.busy with Retry-After, not 500, when Postgres aborted the transaction for a deadlock", () => {
    for (const code of ["40P01", "40001"]) {
      const error = Object.assign(new Error("deadlock detected"), { code });
      const answer = errorResponse(error, { requestId: "r" });
      expect([answer.statusCode, answer.headers?.["retry-after"]]).toEqual([503, "1"]);
      expect(JSON.parse(String(answer.body)).error.code).toBe("database.busy");
      // The drivers leave it as it is: code that retries such a write must still see its SQLSTATE.
      expect(mapDbError(error)).toBe(error);
    }
  });

  it("runs a write Postgres aborted for a deadlock again, twice at most, and nothing else", async () => {
    const deadlock = Object.assign(new Error("deadlock detected"), { code: "40P01" });
    let calls = 0;
    const twice = await retriedOn(async () => {
      if (++calls < 3) throw deadlock;
      return "written";
    });
    expect([twice, calls]).toEqual(["written", 3]);
    // How many times a write that always fails with `error` is run before its error comes out.
    const runsOf = async (error: Error) => {
      let runs = 0;
      await expect(
        retriedOn(async () => {
          runs++;
          throw error;
        }),
      ).rejects.toBe(error);
      return runs;
    };
    expect(await runsOf(deadlock)).toBe(3);
    expect(await runsOf(Object.assign(new Error("unique"), { code: "23505" }))).toBe(1);
  });

  it("answers 413 request.too_large when Neon refuses a request or an answer over its size limit", () => {
    const request = new Error("Server error (HTTP status 413): Content length exceeds limit of 10485760 bytes");
    const answer = new Error("Server error (HTTP status 507): response is too large (max is 10485760 bytes)");
    expect(mapDbError(request)).toMatchObject({ code: "request.too_large", status: 413 });
    expect(mapDbError(answer)).toMatchObject({ code: "request.too_large", status: 413 });
  });

  it("still answers 503 database.unavailable when Neon cannot reach its compute", () => {
    const error = new Error("Server error (HTTP status 500): Couldn't connect to compute node");
    expect(mapDbError(error)).toMatchObject({ code: "database.unavailable", status: 503 });
  });
});

describe("upstreamError", () => {
  it("answers 413 request.too_large when the model refuses the request's size, 502 for other refusals", async () => {
    const { upstreamError } = await import("../../core/error");
    const tooLong = Object.assign(new Error("This model's maximum context length is 8192 tokens"), { status: 400 });
    const tooBig = Object.assign(new Error("Payload too large"), { status: 413 });
    const other = Object.assign(new Error("Invalid 'model'"), { status: 400 });

    expect(upstreamError(tooLong, "embedding")).toMatchObject({ code: "request.too_large", status: 413 });
    expect(upstreamError(tooBig, "chat")).toMatchObject({ code: "request.too_large", status: 413 });
    expect(upstreamError(other, "embedding")).toMatchObject({ code: "embedding.failed", status: 502 });
  });

  it("answers 502, with no Retry-After, when the provider's 429 says the account is out of quota: retrying cannot clear it", async () => {
    const { upstreamError } = await import("../../core/error");
    const quota = Object.assign(
      new Error("429 You exceeded your current quota, please check your plan and billing details."),
      {
        status: 429,
        code: "insufficient_quota",
      },
    );
    const busy = Object.assign(new Error("429 Rate limit reached for requests"), { status: 429, retryAfterSeconds: 7 });

    expect(upstreamError(quota, "embedding")).toMatchObject({
      code: "embedding.failed",
      status: 502,
      retryAfterSeconds: undefined,
      message: expect.stringContaining("no quota left"),
    });
    expect(upstreamError(busy, "chat")).toMatchObject({ code: "chat.rate_limited", status: 503, retryAfterSeconds: 7 });
    // Azure OpenAI's ordinary rate limit links a page about quotas: still a rate limit to wait out.
    const azure = Object.assign(
      new Error(
        "429 Requests have exceeded token rate limit. Please retry after 54 seconds. Please go here: https://aka.ms/oai/quotaincrease",
      ),
      { status: 429, retryAfterSeconds: 54 },
    );
    expect(upstreamError(azure, "embedding")).toMatchObject({ code: "embedding.rate_limited", retryAfterSeconds: 54 });
  });
});
