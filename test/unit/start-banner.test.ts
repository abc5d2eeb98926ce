/** Why `engram start` says it runs offline or answers extractively: the reason it gives must be the real one. */
import { describe, expect, it } from "vitest";
import { extractiveReason, offlineReason } from "../../cli/start";
import { parseConfig } from "../../core/config";

describe("the start banner's reasons", () => {
  it("blames a missing key only when nothing reachable was configured", () => {
    const cfg = parseConfig({});
    expect([cfg.embedding.provider, offlineReason(cfg)]).toEqual(["offline", "no OPENAI_API_KEY"]);
    expect([cfg.chat.provider, extractiveReason(cfg)]).toEqual(["extractive", "no chat model configured"]);
  });

  it.each([
    ["no key", {}],
    ["a key", { OPENAI_API_KEY: "sk-test" }],
    ["a base URL", { OPENAI_BASE_URL: "http://127.0.0.1:11434/v1" }],
  ])("names EMBEDDING_PROVIDER and CHAT_PROVIDER when they chose offline, with %s", (_, reachable) => {
    const cfg = parseConfig({ ...reachable, EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive" });
    expect([cfg.embedding.provider, offlineReason(cfg)]).toEqual(["offline", "EMBEDDING_PROVIDER=offline"]);
    expect([cfg.chat.provider, extractiveReason(cfg)]).toEqual(["extractive", "CHAT_PROVIDER=extractive"]);
  });

  it("names CHAT_PROVIDER when only a chat server was given and extractive chosen", () => {
    const cfg = parseConfig({ CHAT_BASE_URL: "http://127.0.0.1:8000/v1", CHAT_PROVIDER: "extractive" });
    expect([cfg.embedding.provider, offlineReason(cfg)]).toEqual(["offline", "no OPENAI_API_KEY"]);
    expect(extractiveReason(cfg)).toBe("CHAT_PROVIDER=extractive");
  });
});
