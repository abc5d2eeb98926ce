/**
 * A function deployed without its DatabaseUrl secret must not crash at cold start (Lambda would
 * retry it in a loop): it logs one line naming the secret and answers 503 `config.missing`.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { setConfig } from "../../core/config";
import { invoke } from "../../kit/events";

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

describe("a cloud start without the OpenAiApiKey secret (#17: no silent switch to offline vectors)", () => {
  beforeEach(() => {
    vi.stubEnv("DATABASE_URL", "postgresql://u@ep-test-000000.us-east-2.aws.neon.tech/engram");
    vi.stubEnv("OPENAI_API_KEY", "");
    vi.stubEnv("OPENAI_BASE_URL", "");
    vi.stubEnv("EMBEDDING_PROVIDER", "");
    vi.stubEnv("CHAT_PROVIDER", "");
    vi.stubEnv("CHAT_BASE_URL", "");
  });
  afterEach(() => {
    vi.unstubAllEnvs();
    setConfig({});
  });

  it.each([
    ["on Lambda", { AWS_LAMBDA_FUNCTION_NAME: "engram-test-ApiFunction" }],
    ["with NODE_ENV=production", { AWS_LAMBDA_FUNCTION_NAME: "", NODE_ENV: "production" }],
  ])("fails %s with config.missing naming the secret, instead of embedding offline", (_where, env) => {
    expect(() => setConfig(env)).toThrow(/OPENAI_API_KEY is not set \(link the OpenAiApiKey secret/);
    expect(() => setConfig(env)).toThrow(expect.objectContaining({ code: "config.missing", kind: "unavailable" }));
  });

  it("uses the offline embedder and extractive answers in the cloud only when both are chosen explicitly", () => {
    const lambda = { AWS_LAMBDA_FUNCTION_NAME: "engram-test-ApiFunction" };
    expect(() => setConfig({ ...lambda, EMBEDDING_PROVIDER: "offline" })).toThrow(/needed for chat/);
    expect(() => setConfig({ ...lambda, CHAT_PROVIDER: "extractive" })).toThrow(/needed for embeddings/);
    const cfg = setConfig({ ...lambda, EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive" });
    expect(cfg.embedding.provider).toBe("offline");
    expect(cfg.chat.provider).toBe("extractive");
  });

  it("configures OpenAI in the cloud when the key is there, and an OpenAI-compatible server needs no key", () => {
    const lambda = { AWS_LAMBDA_FUNCTION_NAME: "engram-test-ApiFunction" };
    expect(setConfig({ ...lambda, OPENAI_API_KEY: "sk-x" }).embedding.provider).toBe("openai");
    const local = setConfig({ ...lambda, OPENAI_BASE_URL: "http://127.0.0.1:11434/v1" });
    expect([local.embedding.provider, local.chat.provider]).toEqual(["openai", "openai"]);
  });

  it("still starts a newcomer's local run offline (no Lambda, no NODE_ENV=production)", () => {
    const cfg = setConfig({ AWS_LAMBDA_FUNCTION_NAME: "", NODE_ENV: "development", DATABASE_URL: "" });
    expect([cfg.embedding.provider, cfg.chat.provider]).toEqual(["offline", "extractive"]);
  });

  it("answers 503 config.missing on Lambda and logs one line naming the secret", async () => {
    vi.stubEnv("AWS_LAMBDA_FUNCTION_NAME", "engram-test-ApiFunction");
    expect(() => setConfig({})).toThrow(); // as a cold start finds it: nothing parsed yet
    const { result: res, lines } = await logLines(() => invoke({ method: "GET", path: "/v1/health" }));
    expect(res.status).toBe(503);
    expect(res.body.error).toMatchObject({ code: "config.missing", message: expect.stringContaining("OpenAiApiKey") });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("OpenAiApiKey");
  });
});
