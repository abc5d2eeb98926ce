/** The configuration refuses at start what would otherwise fail at every request, naming the variable. */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../core/config";

const refusal = (env: Record<string, string>) => {
  try {
    parseConfig(env);
  } catch (error) {
    return { code: (error as { code?: string }).code, message: (error as Error).message };
  }
  return undefined;
};

describe("the configuration", () => {
  it("needs a key or a server when OpenAI is chosen by name, as in the cloud", () => {
    expect(refusal({ EMBEDDING_PROVIDER: "openai" })).toEqual({
      code: "config.missing",
      message: expect.stringContaining("OPENAI_API_KEY is not set, needed for embeddings"),
    });
    expect(refusal({ CHAT_PROVIDER: "openai", EMBEDDING_PROVIDER: "offline" })?.message).toContain("needed for chat");
    expect(refusal({ EMBEDDING_PROVIDER: "openai", OPENAI_BASE_URL: "http://127.0.0.1:11434/v1" })).toBeUndefined();
    expect(refusal({ EMBEDDING_PROVIDER: "openai", OPENAI_API_KEY: "sk-test" })).toBeUndefined();
  });

  it("takes whole numbers written as digits only, and decimals as decimals", () => {
    for (const value of [" 1536", "0x600", "1e3", "1536.5"]) {
      expect(refusal({ EMBEDDING_DIMENSIONS: value })?.message, value).toMatch(
        /EMBEDDING_DIMENSIONS.*expected a whole number from 2 to 16000/,
      );
    }
    expect(parseConfig({ EMBEDDING_DIMENSIONS: "768" }).embedding.dimensions).toBe(768);
    expect(refusal({ REEMBED_PACE: "abc" })?.message).toMatch(/REEMBED_PACE.*expected a number from 0 to 100/);
    expect(parseConfig({ REEMBED_PACE: "0.5" }).embedding.reembedPace).toBe(0.5);
  });

  it("takes only http(s) base URLs, a model name not the offline embedder's, and a re-rank wait within a search's", () => {
    expect(refusal({ OPENAI_BASE_URL: "ftp://example.com/v1" })?.message).toMatch(/OPENAI_BASE_URL.*http/);
    expect(refusal({ RERANK_URL: "file:///etc/passwd" })?.message).toMatch(/RERANK_URL.*http/);
    expect(refusal({ OPENAI_BASE_URL: "https://host/v1 junk" })?.message).toMatch(/OPENAI_BASE_URL/);
    expect(refusal({ OPENAI_BASE_URL: "http://127.0.0.1:11434/v1" })).toBeUndefined();
    expect(refusal({ OPENAI_API_KEY: "sk-test", EMBEDDING_MODEL: "engram-offline-v2" })?.message).toMatch(
      /EMBEDDING_MODEL.*offline embedder/,
    );
    expect(refusal({ RERANK_TIMEOUT_MS: "40000" })?.message).toMatch(/RERANK_TIMEOUT_MS.*50 to 10000/);
    for (const model of ["model-a ", "model-a\r", " model-a"]) {
      expect(refusal({ OPENAI_API_KEY: "sk-test", EMBEDDING_MODEL: model })?.message, model).toMatch(
        /EMBEDDING_MODEL.*no spaces or line ends/,
      );
    }
  });
});
