/** The offline embedder: hashed lexical features and word meaning, unit vectors, deterministic. */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createOfflineEmbedder, embedOffline, meaningOf, OFFLINE_MODEL } from "../../core/embedding/offline";
import { estimate as estimateTokens } from "../../core/tokens";
import { PINNED_TEXTS } from "../fixtures/offline-vectors";

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

  it("hashes into other buckets under another seed, as another model, with the same word meaning", async () => {
    const built = createOfflineEmbedder({ dimensions: 1536 });
    const seeded = createOfflineEmbedder({ dimensions: 1536, seed: 11 });
    const [a, b] = [(await built.embed(SAMPLES)).vectors, (await seeded.embed(SAMPLES)).vectors];

    expect(seeded.model).toBe("engram-offline-v2-seed-11");
    expect(createOfflineEmbedder({ dimensions: 1536, seed: 0x5bd1e995 }).model).toBe(OFFLINE_MODEL);
    expect(b[1]).not.toEqual(a[1]);
    expect(norm(b[1]!)).toBeCloseTo(1, 5);
    // The last 100 numbers are word meaning, which the seed does not touch.
    expect(b[1]!.subarray(1436)).toEqual(a[1]!.subarray(1436));
    // Another draw of the same method: the refund question stays nearer the refund policy than the cat.
    expect(cosine(b[0]!, b[1]!)).toBeGreaterThan(cosine(b[0]!, b[2]!));
    for (const seed of [-1, 1.5, 2 ** 32, Number.NaN]) {
      expect(() => createOfflineEmbedder({ dimensions: 16, seed })).toThrow(RangeError);
    }
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

/**
 * The first 16 hex digits of the SHA-256 of each pinned text's Float32 vector bytes, per dimension count, and of its
 * meaningOf() vector (null: no known word). Generated once by the embedder as of commit 86bf6dd (before its speed
 * work), by embedding PINNED_TEXTS with createOfflineEmbedder and hashing `Buffer.from(vector.buffer)`. Stored
 * vectors must match later queries, so a change here needs a new OFFLINE_MODEL, never new hashes.
 */
const PINNED: { vectors: Record<number, (string | null)[]>; meaning: (string | null)[] } = {
  vectors: {
    8: [
      "e00f4c4841cf086a",
      "dcfb4ffb1a15e981",
      "3833cec7dd6249c3",
      "966e692fb5a5aaa4",
      "19bdf89aae675047",
      "d41b0fdc1363029e",
      "f6c1d096d6ed735e",
      "d4889366863c4e0d",
      "a612b42b27b4d32d",
      "66b7057e198043f4",
      "66b7057e198043f4",
      "1e1d3904384b2750",
      "8f743da3d9a934e0",
      "47ada087bd0043c5",
    ],
    255: [
      "3a897dcccc5225a9",
      "25b305af9e2a65f8",
      "16b6d349d2f2b7eb",
      "1abe9ff389b7e73a",
      "0f83259931d9d0ae",
      "9b029be4b4542589",
      "cf3ed045d5a570e2",
      "aad247fc08dc30df",
      "343986e9fdd1e70b",
      "c05d3365ea5d8c23",
      "c05d3365ea5d8c23",
      "c274566d9dd19f59",
      "c9e45d1b0ca52d4d",
      "bc7665fb62147b45",
    ],
    256: [
      "e8545dc5c6131864",
      "868de5be04203289",
      "6fe112fec5adeb6e",
      "fdd4a0647a868a4a",
      "3602f389159ddfd0",
      "ab5d1bf24ee5c524",
      "81aa4c07046d3409",
      "1b54f9f6b3fbb690",
      "81ebaa343382ebee",
      "2a69b6354d8319f0",
      "2a69b6354d8319f0",
      "309ec507d48067e2",
      "2817b7415c00aea9",
      "21da0f732b073c72",
    ],
    384: [
      "31065d69145761d2",
      "4449ecca4608a6a2",
      "90942f842b7c8acb",
      "fca6d791d59d5e54",
      "f1cfb3c39fdf7e7a",
      "9e16f2ecabd0f244",
      "fa674b1ecda5179d",
      "bd234d1eb27a784f",
      "2ca9efc98632c358",
      "373421642a44f741",
      "373421642a44f741",
      "e5da083ef7c442c5",
      "0ad16913f4a489e2",
      "bfc0390a08b62b18",
    ],
    1536: [
      "e666c3c7b7e0ded7",
      "e7cac0b3903432d4",
      "a2087cb25b68cce6",
      "d658ecaf413e8acb",
      "4379a2a11ad17a56",
      "1ab63c5b6f79a868",
      "9406832e2d34d7e4",
      "6c55996af55eb290",
      "b6bb3fcea4afe62b",
      "2473db68c92a9c21",
      "2473db68c92a9c21",
      "915eba147855af53",
      "e5b2a466dd5864d0",
      "b0b3faff122f1db6",
    ],
  },
  meaning: [
    "33db399115f6a128",
    "4f97fa23db98d869",
    "f63c9c87169acabb",
    "e2291ea697c647bb",
    null,
    "fc2587b02c7501f0",
    null,
    null,
    null,
    null,
    null,
    "260fffca7e5d94ca",
    "4a59a44cfa408356",
    null,
  ],
};

const pin = (v: Float32Array | null) =>
  v === null
    ? null
    : createHash("sha256")
        .update(Buffer.from(v.buffer, v.byteOffset, v.byteLength))
        .digest("hex")
        .slice(0, 16);

describe("offline vectors", () => {
  it.each([8, 255, 256, 384, 1536])("stay bit-identical to the pinned vectors at %i dimensions", async (dimensions) => {
    const { vectors } = await createOfflineEmbedder({ dimensions }).embed(PINNED_TEXTS);

    const got = PINNED_TEXTS.map((text, i) => ({ text: text.slice(0, 40), hash: pin(vectors[i]!) }));
    const single = PINNED_TEXTS.map((text) => ({ text: text.slice(0, 40), hash: pin(embedOffline(text, dimensions)) }));

    const want = PINNED_TEXTS.map((text, i) => ({ text: text.slice(0, 40), hash: PINNED.vectors[dimensions]![i] }));
    expect(got).toEqual(want);
    expect(single).toEqual(want);
  });

  it("keeps each text's word meaning bit-identical to the pinned one", () => {
    const got = PINNED_TEXTS.map((text) => ({ text: text.slice(0, 40), hash: pin(meaningOf(text)) }));

    expect(got).toEqual(PINNED_TEXTS.map((text, i) => ({ text: text.slice(0, 40), hash: PINNED.meaning[i] })));
  });
});
