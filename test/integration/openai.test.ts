import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { createOpenAIEmbedder, type OpenAIEmbedderOptions } from "../../core/embedding/openai";
import { upstreamError } from "../../core/error";
import { type ChatMessage, type ChatModelOptions, createChatModel } from "../../core/llm";
import { UpstreamError } from "../../core/provider";
import * as Tokens from "../../core/tokens";
import { type FakeOpenAI, fakeEmbedding, startOpenAIServer } from "../../kit/openai-server";

let server: FakeOpenAI;

beforeAll(async () => {
  server = await startOpenAIServer();
});

afterAll(async () => {
  await server.close();
});

beforeEach(() => {
  server.reset();
});

function embedder(overrides: Partial<OpenAIEmbedderOptions> = {}) {
  return createOpenAIEmbedder({
    apiKey: "test-key",
    baseURL: server.url,
    model: "text-embedding-3-small",
    dimensions: 8,
    timeoutMs: 2_000,
    maxRetries: 2,
    retryBaseMs: 10,
    ...overrides,
  });
}

function chat(overrides: Partial<ChatModelOptions> = {}) {
  return createChatModel({
    apiKey: "test-key",
    baseURL: server.url,
    model: "gpt-4o-mini",
    timeoutMs: 2_000,
    maxRetries: 2,
    retryBaseMs: 10,
    ...overrides,
  });
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected the promise to reject");
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

const question: ChatMessage[] = [
  { role: "system", content: "Answer from the sources." },
  { role: "user", content: "What is pgvector?\nSources: [1] pgvector is a Postgres extension." },
];

describe("OpenAI embedder", () => {
  it("splits 5000 inputs into 3 requests of at most 2048 and keeps their order", async () => {
    const texts = Array.from({ length: 5000 }, (_, i) => `chunk number ${i}`);

    const result = await embedder().embed(texts);

    expect(server.stats.embeddingRequests).toBe(3);
    const sizes = server.requests.map((r) => (r.body.input as string[]).length).sort((a, b) => b - a);
    expect(sizes).toEqual([2048, 2048, 904]);
    expect(server.stats.embeddedInputs).toBe(5000);
    expect(result.vectors).toHaveLength(5000);
    for (const i of [0, 1, 2047, 2048, 4095, 4096, 4999]) {
      expect(Array.from(result.vectors[i] as Float32Array)).toEqual(Array.from(fakeEmbedding(texts[i] as string, 8)));
    }
    expect(result.tokens).toBe(texts.reduce((n, t) => n + Math.ceil(t.length / 4), 0));
  });

  it("splits requests by the estimated token budget", async () => {
    const texts = Array.from({ length: 10 }, () => "x".repeat(400));
    const each = Tokens.estimate("x".repeat(400));

    const result = await embedder({ maxTokensPerRequest: Math.floor(2.5 * each) }).embed(texts);

    expect(server.requests.map((r) => (r.body.input as string[]).length)).toEqual([2, 2, 2, 2, 2]);
    expect(result.vectors).toHaveLength(10);
  });

  it("returns the same unit-length vector for the same text", async () => {
    const e = embedder({ dimensions: 64 });

    const first = await e.embed(["hello world", "something else"]);
    const second = await e.embed(["hello world"]);

    const a = first.vectors[0] as Float32Array;
    expect(Array.from(second.vectors[0] as Float32Array)).toEqual(Array.from(a));
    expect(Array.from(first.vectors[1] as Float32Array)).not.toEqual(Array.from(a));
    expect(a).toHaveLength(64);
    expect(Math.hypot(...a)).toBeCloseTo(1, 5);
  });

  it("sends dimensions and asks for base64 for text-embedding-3 models", async () => {
    await embedder({ dimensions: 256 }).embed(["a"]);

    expect(server.requests[0]?.body).toMatchObject({
      model: "text-embedding-3-small",
      dimensions: 256,
      encoding_format: "base64",
    });
  });

  it("does not send dimensions to models that do not accept it", async () => {
    server.modelDimensions["nomic-embed-text"] = 768;

    const result = await embedder({ model: "nomic-embed-text", dimensions: 768, encodingFormat: "float" }).embed(["a"]);

    expect(server.requests[0]?.body).not.toHaveProperty("dimensions");
    expect(result.vectors[0]).toHaveLength(768);
  });

  it("retries a 429 after the Retry-After seconds and then succeeds", async () => {
    server.failNext(1, { status: 429, retryAfter: 1 });
    const started = Date.now();

    const result = await embedder().embed(["rate limited"]);

    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(server.stats.embeddingRequests).toBe(2);
    expect(result.vectors).toHaveLength(1);
  });

  it("honours retry-after-ms over the computed backoff", async () => {
    server.failNext(2, { status: 429, retryAfterMs: 150 });
    const started = Date.now();

    await embedder({ retryBaseMs: 0 }).embed(["rate limited"]);

    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(server.stats.embeddingRequests).toBe(3);
  });

  it("gives up after maxRetries on 500 with an UpstreamError", async () => {
    server.failNext(10, { status: 500 });

    const err = await rejection(embedder({ maxRetries: 2 }).embed(["boom"]));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).status).toBe(500);
    expect(server.stats.embeddingRequests).toBe(3);
  });

  it("does not retry a 400", async () => {
    server.failNext(1, { status: 400 });

    const err = await rejection(embedder().embed(["bad"]));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).status).toBe(400);
    expect(server.stats.embeddingRequests).toBe(1);
  });

  it("times out slow responses and reports an UpstreamError", async () => {
    server.delayMs = 1_000;
    const started = Date.now();

    const err = await rejection(embedder({ timeoutMs: 100, maxRetries: 1 }).embed(["slow"]));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).message).toMatch(/timed out/);
    expect(server.stats.embeddingRequests).toBe(2);
    expect(Date.now() - started).toBeLessThan(900);
  });

  it("rejects vectors whose dimensions differ from the configured ones", async () => {
    server.modelDimensions["nomic-embed-text"] = 768;

    const err = await rejection(embedder({ model: "nomic-embed-text", dimensions: 1024 }).embed(["a"]));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as Error).message).toMatch(/768-dimensional.*1024/);
  });

  it("retries a malformed response body and succeeds", async () => {
    server.malformedNext(1);

    const result = await embedder().embed(["a"]);

    expect(result.vectors).toHaveLength(1);
    expect(server.stats.embeddingRequests).toBe(2);
  });

  it("reports a persistently malformed response body as an UpstreamError", async () => {
    server.malformedNext(10);

    const err = await rejection(embedder({ maxRetries: 1 }).embed(["a"]));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as Error).message).toMatch(/invalid response body/);
  });

  it("stops with the caller's abort reason when the signal is aborted", async () => {
    server.delayMs = 1_000;
    const controller = new AbortController();
    const pending = embedder().embed(["a"], { signal: controller.signal });

    setTimeout(() => controller.abort(new Error("caller gave up")), 50);
    const err = await rejection(pending);

    expect((err as Error).message).toBe("caller gave up");
    await vi.waitFor(() => expect(server.stats.requestsAborted).toBe(1));
  });

  it("returns no vectors and makes no request for no texts", async () => {
    const result = await embedder().embed([]);

    expect(result).toEqual({ vectors: [], tokens: 0 });
    expect(server.stats.embeddingRequests).toBe(0);
  });
});

describe("chat model", () => {
  it("completes with the content and the usage", async () => {
    const result = await chat().complete(question, { maxTokens: 100, temperature: 0 });

    expect(result.content).toBe("Answer based on [1]. What is pgvector?");
    expect(result.usage.promptTokens).toBeGreaterThan(0);
    expect(result.usage.completionTokens).toBe(Math.ceil(result.content.length / 4));
    expect(server.requests[0]?.body).toMatchObject({
      model: "gpt-4o-mini",
      messages: question,
      temperature: 0,
      max_tokens: 100,
    });
  });

  it("uses the scripted reply", async () => {
    server.reply = (req) => `you sent ${req.messages.length} messages`;

    const result = await chat().complete(question);

    expect(result.content).toBe("you sent 2 messages");
  });

  it("streams several deltas and then done with the usage", async () => {
    const events = await collect(chat().stream(question));

    const deltas = events.filter((e) => e.type === "delta");
    expect(deltas.length).toBeGreaterThan(2);
    expect(deltas.map((e) => e.text).join("")).toBe("Answer based on [1]. What is pgvector?");
    const last = events.at(-1);
    expect(last?.type).toBe("done");
    expect(last?.type === "done" && last.usage.completionTokens).toBe(Math.ceil(39 / 4));
    expect(server.requests[0]?.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
  });

  it("retries a 503 before the first token and then streams", async () => {
    server.failNext(1, { status: 503 });

    const events = await collect(chat().stream(question));

    expect(server.stats.chatRequests).toBe(2);
    expect(events.at(-1)?.type).toBe("done");
  });

  it("retries a stream cut before the first token", async () => {
    server.dropNextStreams(1, 0);

    const events = await collect(chat().stream(question));

    expect(server.stats.chatRequests).toBe(2);
    expect(events.at(-1)?.type).toBe("done");
  });

  it("does not retry a stream cut after the first token", async () => {
    server.dropStreamAfter = 2;
    const received: string[] = [];

    const err = await rejection(
      (async () => {
        for await (const e of chat().stream(question)) if (e.type === "delta") received.push(e.text);
      })(),
    );

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as Error).message).toMatch(/after the first token/);
    expect(received).toHaveLength(2);
    expect(server.stats.chatRequests).toBe(1);
  });

  it("aborting the signal mid-stream disconnects the upstream", async () => {
    server.reply = () => "one two three four five six seven eight nine ten";
    server.streamDelayMs = 30;
    const controller = new AbortController();
    const received: string[] = [];

    const err = await rejection(
      (async () => {
        for await (const e of chat().stream(question, { signal: controller.signal })) {
          if (e.type === "delta") received.push(e.text);
          if (received.length === 2) controller.abort();
        }
      })(),
    );

    expect((err as Error).name).toBe("AbortError");
    expect(received).toHaveLength(2);
    await vi.waitFor(() => expect(server.stats.streamsAborted).toBe(1));
  });

  it("breaking out of the stream disconnects the upstream", async () => {
    server.reply = () => "one two three four five six seven eight nine ten";
    server.streamDelayMs = 30;

    for await (const e of chat().stream(question)) {
      if (e.type === "delta") break;
    }

    await vi.waitFor(() => expect(server.stats.streamsAborted).toBe(1));
  });

  it("surfaces the upstream Retry-After in the UpstreamError when retries run out", async () => {
    server.failNext(5, { status: 429, retryAfterMs: 20 });

    const err = await rejection(collect(chat({ maxRetries: 1 }).stream(question)));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).status).toBe(429);
    expect((err as UpstreamError).retryAfterSeconds).toBe(1);
    expect(server.stats.chatRequests).toBe(2);
  });

  it("gives up at once when Retry-After exceeds the wait cap and surfaces it", async () => {
    server.failNext(1, { status: 429, retryAfter: 30 });

    const err = await rejection(chat({ retryMaxDelayMs: 5_000 }).complete(question));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).retryAfterSeconds).toBe(30);
    expect(server.stats.chatRequests).toBe(1);
  });

  it("gives up once the waits of one call would sum past the cap, and surfaces the wait asked for", async () => {
    // Each wait alone is within the cap (1.2 s), the second would take the sum past it.
    server.failNext(5, { status: 429, retryAfterMs: 800 });
    const started = Date.now();

    const err = await rejection(chat({ maxRetries: 4, retryMaxDelayMs: 1_200 }).complete(question));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).retryAfterSeconds).toBe(1);
    expect(server.stats.chatRequests).toBe(2);
    expect(Date.now() - started).toBeLessThan(1_200);
  });

  it("passes on at most an hour of a Retry-After written as a date years ahead", async () => {
    server.failNext(1, { status: 429, retryAfter: "Wed, 21 Oct 2099 07:28:00 GMT" });

    const err = await rejection(chat().complete(question));

    expect((err as UpstreamError).retryAfterSeconds).toBe(3600);
  });

  it("times out a stream that stalls between chunks", async () => {
    server.streamDelayMs = 500;

    const err = await rejection(collect(chat({ timeoutMs: 100 }).stream(question)));

    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as Error).message).toMatch(/timed out/);
    expect(server.stats.chatRequests).toBe(1);
  });

  it("estimates the usage when the server reports none", async () => {
    server.reply = () => "12345678";
    server.reportUsage = false;

    const streamed = await collect(chat().stream([{ role: "user", content: "abcd" }]));
    const completed = await chat().complete([{ role: "user", content: "abcd" }]);

    // core/tokens.ts: a short word is 1 token (plus 4 for the message), a digit half a token.
    const done = streamed.at(-1);
    expect(done?.type === "done" && done.usage).toEqual({ promptTokens: 5, completionTokens: 4 });
    expect(completed.usage).toEqual({ promptTokens: 5, completionTokens: 4 });
  });
});

describe("the fake OpenAI server, as strict as the real API", () => {
  /**
   * Sends the SDK's requests for https://api.openai.com to the fake while `work` runs (the SDK
   * takes the global fetch when a client is made), so the official-API code path is exercised.
   */
  async function asOfficialApi<T>(work: () => Promise<T>): Promise<T> {
    const original = globalThis.fetch;
    globalThis.fetch = (input, init) => {
      const url = input instanceof Request ? input.url : String(input);
      const target = url.replace("https://api.openai.com/v1", server.url);
      return original(input instanceof Request ? new Request(target, input) : target, init);
    };
    try {
      return await work();
    } finally {
      globalThis.fetch = original;
    }
  }

  it("answers 401 invalid_api_key to a request without the configured key", async () => {
    const wrong = await rejection(chat({ apiKey: "sk-other", maxRetries: 0 }).complete(question));
    const wrongEmbedding = await rejection(embedder({ apiKey: "sk-other", maxRetries: 0 }).embed(["refunds"]));
    const none = await fetch(`${server.url}/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "text-embedding-3-small", input: "refunds" }),
    });

    expect(wrong).toMatchObject({ status: 401 });
    expect(wrongEmbedding).toMatchObject({ status: 401 });
    expect(none.status).toBe(401);
    expect((await none.json()).error.code).toBe("invalid_api_key");
    expect(server.requests.every((r) => r.headers.authorization !== `Bearer ${server.apiKey}`)).toBe(true);
  });

  it("refuses max_tokens and a temperature for reasoning models, as OpenAI does", async () => {
    const maxTokens = await rejection(chat({ model: "o3-mini", maxRetries: 0 }).complete(question, { maxTokens: 50 }));
    const temperature = await rejection(
      chat({ model: "gpt-5-mini", maxRetries: 0 }).complete(question, { temperature: 0.2 }),
    );

    expect(maxTokens).toMatchObject({ status: 400, message: expect.stringContaining("max_completion_tokens") });
    expect(temperature).toMatchObject({ status: 400, message: expect.stringContaining("temperature") });
  });

  it("refuses arguments OpenAI does not know and inputs over its embedding limits", async () => {
    const longInput = await rejection(embedder({ maxRetries: 0 }).embed(["word ".repeat(8_000)]));

    expect(longInput).toMatchObject({ status: 400, message: expect.stringContaining("8192") });
    // What the client of Engram then gets: its request was too large, not a 502.
    expect(upstreamError(longInput, "embedding")).toMatchObject({ code: "request.too_large", status: 413 });
    const unknown = await fetch(`${server.url}/embeddings`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "text-embedding-3-small", input: "x", truncate: true }),
    });
    expect(unknown.status).toBe(400);
    expect((await unknown.json()).error.param).toBe("truncate");
  });

  it("is what api.openai.com's code path talks to: max_completion_tokens for a reasoning model, with the key", async () => {
    const result = await asOfficialApi(() =>
      createChatModel({ apiKey: server.apiKey, model: "gpt-5-mini", maxRetries: 0 }).complete(question, {
        maxTokens: 64,
      }),
    );
    const streamed = await asOfficialApi(() =>
      collect(
        createChatModel({ apiKey: server.apiKey, model: "o4-mini", maxRetries: 0 }).stream(question, { maxTokens: 32 }),
      ),
    );
    const vectors = await asOfficialApi(() =>
      createOpenAIEmbedder({
        apiKey: server.apiKey,
        model: "text-embedding-3-small",
        dimensions: 8,
        maxRetries: 0,
      }).embed(["refunds"]),
    );

    expect(result.content).toContain("Answer based on [1]");
    expect(streamed.length).toBeGreaterThan(0);
    expect(vectors.vectors).toHaveLength(1);
    const chats = server.requests.filter((r) => r.path === "/v1/chat/completions");
    expect(chats.map((r) => [r.body.max_completion_tokens, r.body.max_tokens])).toEqual([
      [64, undefined],
      [32, undefined],
    ]);
    for (const r of server.requests) expect(r.headers.authorization).toBe(`Bearer ${server.apiKey}`);
  });

  it("takes max_tokens from a compatible server's code path for a model that accepts it", async () => {
    await chat({ model: "gpt-4o-mini" }).complete(question, { maxTokens: 64 });

    expect(server.requests.at(-1)?.body).toMatchObject({ max_tokens: 64 });
    expect(server.requests.at(-1)?.body.max_completion_tokens).toBeUndefined();
  });
});
