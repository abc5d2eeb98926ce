/**
 * A function deployed without its DatabaseUrl secret must not crash at cold start (Lambda would
 * retry it in a loop): it logs one line naming the secret and answers 503 `config.missing`.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { setConfig } from "../../core/config";
import { invoke } from "../support/events";

/** Log lines written while `act` runs (core/log writes JSON lines to stdout and stderr). */
async function logLines<T>(act: () => Promise<T>): Promise<{ result: T; lines: string[] }> {
  const lines: string[] = [];
  const capture = (chunk: string | Uint8Array) => {
    lines.push(...String(chunk).split("\n").filter(Boolean));
    return true;
  };
  const out = vi.spyOn(process.stdout, "write").mockImplementation(capture);
  const err = vi.spyOn(process.stderr, "write").mockImplementation(capture);
  try {
    return { result: await act(), lines };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

describe("a Lambda cold start without the DatabaseUrl secret", () => {
  beforeEach(() => {
    vi.stubEnv("AWS_LAMBDA_FUNCTION_NAME", "engram-test-ApiFunction");
    vi.stubEnv("DATABASE_URL", "");
  });
  afterEach(() => vi.unstubAllEnvs());

  it("is refused by the config module with config.missing, naming the secret", () => {
    expect(() => setConfig({})).toThrow(/DATABASE_URL is not set \(link the DatabaseUrl secret\)/);
    expect(() => setConfig({})).toThrow(expect.objectContaining({ code: "config.missing", kind: "unavailable" }));
  });

  it.each([
    { method: "GET", path: "/v1/health" },
    { method: "GET", path: "/v1/documents", headers: { authorization: "Bearer egm_x" } },
    { method: "POST", path: "/v1/ingest", headers: { authorization: "Bearer egm_x" }, body: { documents: [] } },
    { method: "POST", path: "/v1/search", headers: { authorization: "Bearer egm_x" }, body: { query: "q" } },
    { method: "POST", path: "/v1/chat", headers: { authorization: "Bearer egm_x" }, body: { messages: [] } },
  ])("answers $method $path with 503 config.missing and logs one line naming the secret", async (request) => {
    const { result: res, lines } = await logLines(() => invoke(request));

    expect(res.status).toBe(503);
    expect(res.body.error).toMatchObject({ code: "config.missing", message: expect.stringContaining("DatabaseUrl") });
    expect(res.headers["x-request-id"]).toBeTruthy();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("DatabaseUrl");
  });
});
