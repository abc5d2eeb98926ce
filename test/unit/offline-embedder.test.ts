/** The offline embedder: hashed lexical features and word meaning, unit vectors, deterministic. */
import { describe, expect, it } from "vitest";
import { createOfflineEmbedder, embedOffline, OFFLINE_MODEL } from "../../core/embedding/offline";
import { estimate as estimateTokens } from "../../core/tokens";

function norm(v: Float32Array): number {
  let sum = 0;
  for (const x of v) sum += x * x;
  return Math.sqrt(sum);
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!;
  return dot / (norm(a) * norm(b));
}

const SAMPLES = [
  "How do refunds work?",
  "Our refund policy: refunds are processed within 14 days",
  "The office cat is named Pixel",
  "我们的退款政策规定，退款将在十四天内处理。",
  "Ça coûte 3 € — naïve café 🚀",
  "x".repeat(5000),
];

describe("createOfflineEmbedder", () => {
  it("describes itself as the offline provider with the requested dimensions", () => {
    const embedder = createOfflineEmbedder({ dimensions: 384 });

    expect(embedder.provider).toBe("offline");
    expect(embedder.model).toBe("engram-offline-v2");
    expect(OFFLINE_MODEL).toBe("engram-offline-v2");
    expect(embedder.dimensions).toBe(384);
  });

  it.each([8, 384, 1536])("returns unit-length vectors of %i dimensions", async (dimensions) => {
    const embedder = createOfflineEmbedder({ dimensions });

    const { vectors } = await embedder.embed(SAMPLES);

    expect(vectors).toHaveLength(SAMPLES.length);
    for (const vector of vectors) {
      expect(vector).toBeInstanceOf(Float32Array);
      expect(vector).toHaveLength(dimensions);
      expect(norm(vector)).toBeCloseTo(1, 5);
    }
  });

  it("gives the same vectors for the same texts, across calls and instances", async () => {
    const first = await createOfflineEmbedder({ dimensions: 256 }).embed(SAMPLES);
    const again = await createOfflineEmbedder({ dimensions: 256 }).embed([...SAMPLES].reverse());

    expect([...again.vectors].reverse()).toEqual(first.vectors);
    expect(embedOffline(SAMPLES[1]!, 256)).toEqual(first.vectors[1]);
  });

  it("keeps the order of the input texts", async () => {
    const embedder = createOfflineEmbedder({ dimensions: 64 });

    const { vectors } = await embedder.embed(SAMPLES);

    SAMPLES.forEach((text, i) => {
      expect(vectors[i]).toEqual(embedOffline(text, 64));
    });
  });

  it("reports the estimated tokens of all texts", async () => {
    const embedder = createOfflineEmbedder({ dimensions: 32 });

    const { tokens } = await embedder.embed(SAMPLES);

    expect(tokens).toBe(SAMPLES.reduce((sum, text) => sum + estimateTokens(text), 0));
  });

  it("resolves with no vectors and no tokens for no texts", async () => {
    const result = await createOfflineEmbedder({ dimensions: 16 }).embed([]);

    expect(result).toEqual({ vectors: [], tokens: 0 });
  });

  it("places a question about refunds closer to the refund policy than to unrelated text", async () => {
    const embedder = createOfflineEmbedder({ dimensions: 1536 });

    const {
      vectors: [question, policy, cat],
    } = await embedder.embed([
      "How do refunds work?",
      "Our refund policy: refunds are processed within 14 days",
      "The office cat is named Pixel",
    ]);

    expect(cosine(question!, policy!)).toBeGreaterThan(0.25);
    expect(cosine(question!, policy!)).toBeGreaterThan(cosine(question!, cat!) + 0.2);
  });

  it("matches inflected forms of a word through its stem", () => {
    const refund = embedOffline("refund", 1536);

    for (const form of ["refunds", "refunded", "refunding", "Refunds"]) {
      expect(cosine(refund, embedOffline(form, 1536))).toBeGreaterThan(0.6);
    }
    expect(cosine(embedOffline("policy", 1536), embedOffline("policies", 1536))).toBeGreaterThan(0.6);
    // A related word (meaning) is nearer than an unrelated one, but far from the word's own forms.
    expect(cosine(refund, embedOffline("invoice", 1536))).toBeLessThan(0.35);
  });

  it("folds case, diacritics and compatibility forms", () => {
    const plain = embedOffline("cafe resume", 512);

    expect(cosine(plain, embedOffline("Café Résumé", 512))).toBeCloseTo(1, 5);
    expect(cosine(plain, embedOffline("ＣＡＦＥ ＲＥＳＵＭＥ", 512))).toBeCloseTo(1, 5);
  });

  it("scores paraphrases that share stems above unrelated sentences", () => {
    const query = embedOffline("refund policy for damaged orders", 1536);
    const paraphrase = embedOffline("Our policies on refunds when an order arrives damaged", 1536);
    const unrelated = embedOffline("Parking is free for visitors on weekends", 1536);

    expect(cosine(query, paraphrase)).toBeGreaterThan(0.4);
    expect(cosine(query, unrelated)).toBeLessThan(0.2);
    expect(cosine(query, paraphrase)).toBeGreaterThan(cosine(query, unrelated) + 0.4);
  });

  it("places texts that share no word but mean alike closer than unrelated ones (1536 dimensions)", () => {
    const sick = embedOffline("my dog is sick", 1536);
    const puppy = embedOffline("the puppy has a fever and the vet is worried", 1536);
    const market = embedOffline("the stock market fell sharply on tuesday", 1536);
    const money = embedOffline("How do I get my money back?", 1536);
    const refunds = embedOffline("Refunds are issued within 14 days of a return.", 1536);
    const latency = embedOffline("The server latency increased after the deploy.", 1536);

    expect(cosine(sick, puppy)).toBeGreaterThan(cosine(sick, market) + 0.1);
    expect(cosine(money, refunds)).toBeGreaterThan(cosine(money, latency) + 0.05);
  });

  it("leaves meaning out of vectors under 256 dimensions: only shared words count there", () => {
    expect(cosine(embedOffline("my dog is sick", 255), embedOffline("the puppy has a fever", 255))).toBeLessThan(0.05);
    expect(cosine(embedOffline("my dog is sick", 256), embedOffline("the puppy has a fever", 256))).toBeGreaterThan(
      0.1,
    );
  });

  it("relates CJK texts through shared characters", () => {
    const a = embedOffline("日本の首都は東京です", 1536);
    const b = embedOffline("東京は日本の首都", 1536);
    const c = embedOffline("今日は雨が降っています", 1536);

    expect(cosine(a, b)).toBeGreaterThan(cosine(a, c) + 0.3);
  });

  it("gives empty, blank and punctuation-only text the fixed unit vector e0", async () => {
    const embedder = createOfflineEmbedder({ dimensions: 8 });

    const { vectors, tokens } = await embedder.embed(["", "   \n", "?!…"]);

    for (const vector of vectors) expect(Array.from(vector)).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
    expect(tokens).toBe(estimateTokens("   \n") + estimateTokens("?!…"));
  });

  it("rejects dimensions that are not a positive integer", () => {
    expect(() => createOfflineEmbedder({ dimensions: 0 })).toThrow(RangeError);
    expect(() => createOfflineEmbedder({ dimensions: 1.5 })).toThrow(RangeError);
    expect(() => createOfflineEmbedder({ dimensions: Number.NaN })).toThrow(RangeError);
  });

  it("rejects with the abort reason when the signal is aborted", async () => {
    const embedder = createOfflineEmbedder({ dimensions: 16 });
    const controller = new AbortController();
    const reason = new Error("stop");
    controller.abort(reason);

    await expect(embedder.embed(["text"], { signal: controller.signal })).rejects.toBe(reason);
  });

  it("embeds 2,000 chunks of about 400 tokens at 1536 dimensions", async () => {
    const words = ["refund", "order", "customer", "payment", "invoice", "shipping", "account", "support", "policy"];
    const texts = Array.from({ length: 2_000 }, (_, i) =>
      Array.from({ length: 300 }, (_, j) => words[(i * 7 + j * 13) % words.length]).join(" "),
    );
    const embedder = createOfflineEmbedder({ dimensions: 1536 });

    const { vectors } = await embedder.embed(texts);

    expect(vectors).toHaveLength(2_000);
    expect(norm(vectors[1_999]!)).toBeCloseTo(1, 5);
  });
});
