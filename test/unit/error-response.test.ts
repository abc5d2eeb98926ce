import { describe, expect, it } from "vitest";
import { errorResponse } from "../../core/api/http";
import { EngramError } from "../../core/error";

describe("errorResponse", () => {
  it("answers an internal EngramError 500 naming the request id, never its message", () => {
    const error = new EngramError(
      "internal",
      "internal",
      "The caller's rateLimits was read before its key was checked.",
    );

    const answer = errorResponse(error, { requestId: "req-1", route: "POST /mcp" });

    expect([answer.statusCode, JSON.parse(answer.body ?? "")]).toEqual([
      500,
      { error: { code: "internal", message: "Something went wrong on our side (request req-1)." } },
    ]);
  });

  it("keeps an internal error's own code, which the contract lists, but not its message", () => {
    const error = new EngramError("internal", "tenant.ensure_failed", "Could not create tenant acme");

    const { error: body } = JSON.parse(errorResponse(error, { requestId: "req-2" }).body ?? "");

    expect(body).toEqual({
      code: "tenant.ensure_failed",
      message: "Something went wrong on our side (request req-2).",
    });
  });
});
