/**
 * Neon's HTTP endpoint takes at most 10 MB a request, and an ingest is one request: the write's
 * size is measured as the driver encodes it, before anything is paid to embed it, and whatever
 * Neon still refuses for size is the client's 413, never a 500.
 */
import { neonConfig } from "@neondatabase/serverless";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "../../core/auth";
import { setConfig } from "../../core/config";
import type { Db } from "../../core/db";
import { migrate } from "../../core/db/migrate";
import { createNeonDb } from "../../core/db/neon";
import type { Embedder } from "../../core/embedding";
import * as Ingest from "../../core/ingest";
import { callerFor, createDatabase, DIMENSIONS, dropDatabase, freshDb, type TestDb } from "../../kit/db";
import { countingEmbedder } from "../../kit/factories";
import { localFetchEndpoint, type NeonServer, neonConnectionString, startNeonServer } from "../../kit/neon-server";
import { fakeEmbedding } from "../../kit/openai-server";

setConfig({ EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive", LOG_LEVEL: "silent" });

/** Dense unit vectors like OpenAI's (the offline embedder's are sparse, and short as text). */
function denseEmbedder(): Embedder & { calls: number } {
  const embedder = {
    provider: "openai" as const,
    model: "dense-test",
    dimensions: DIMENSIONS,
    calls: 0,
    async embed(texts: string[]) {
      embedder.calls++;
      return { vectors: texts.map((text) => fakeEmbedding(text, DIMENSIONS)), tokens: texts.length };
    },
  };
  return embedder;
}

/** Bytes of every request body the Neon driver sends while `work` runs. */
async function bodiesOf(work: () => Promise<unknown>): Promise<{ sizes: number[]; error?: unknown }> {
  const original = globalThis.fetch;
  const sizes: number[] = [];
  globalThis.fetch = (input, init) => {
    if (typeof init?.body === "string") sizes.push(Buffer.byteLength(init.body));
    return original(input, init);
  };
  try {
    await work();
    return { sizes };
  } catch (error) {
    return { sizes, error };
  } finally {
    globalThis.fetch = original;
  }
}

const TEN_MIB = 10 * 1024 * 1024;

describe("an ingest on the Neon HTTP driver", () => {
  let t: TestDb;
  let caller: Caller;
  beforeAll(async () => {
    t = await freshDb("neon-http");
    caller = await callerFor(t.db, "acme");
  });
  afterAll(() => t?.close());

  it("refuses with 413 request.too_large, before embedding, text that escaping makes larger than 10 MB", async () => {
    // 2.6 million characters: a third of Neon's limit counted in characters, but every quote
    // and backslash is four bytes once escaped for an array literal inside JSON, and the text
    // travels twice (the document and its chunks).
    const embedder = countingEmbedder();
    const content = `"quoted" \\path\\ `.repeat(160_000);
    await expect(Ingest.run(t.db, caller, [{ id: "escaped", content }], { embedder })).rejects.toMatchObject({
      code: "request.too_large",
      status: 413,
    });
    expect(embedder.calls).toBe(0);
    const rows = await t.db.query<{ n: number }>({ text: "select count(*)::int as n from documents", params: [] });
    expect(rows[0]?.n).toBe(0);
  });

  it("admits dense vectors up to what fits in one request and refuses more before embedding them", async () => {
    const admitted = denseEmbedder();
    const fits = Array.from({ length: 500 }, (_, i) => ({ id: `fits-${i}`, content: `Short note number ${i}.` }));
    const sent = await bodiesOf(() => Ingest.run(t.db, caller, fits, { embedder: admitted }));
    expect(sent.error).toBeUndefined();
    const largest = Math.max(...sent.sizes);
    // Near the limit (not refused out of caution), and under it.
    expect(largest).toBeGreaterThan(8 * 1024 * 1024);
    expect(largest).toBeLessThan(TEN_MIB);

    // At 11 bytes a float (the old estimate) 600 vectors passed the check, then Neon refused them.
    const refused = denseEmbedder();
    const tooMany = Array.from({ length: 600 }, (_, i) => ({ id: `many-${i}`, content: `Another note, ${i}.` }));
    const attempt = await bodiesOf(() => Ingest.run(t.db, caller, tooMany, { embedder: refused }));
    expect(attempt.error).toMatchObject({ code: "request.too_large", status: 413 });
    expect(refused.calls).toBe(0);
  });
});

describe("a size refusal from Neon itself", () => {
  let small: NeonServer;
  let database: string;
  let db: Db;
  beforeAll(async () => {
    small = await startNeonServer({ maxRequestBytes: 256 * 1024 });
    database = await createDatabase();
    db = createNeonDb(neonConnectionString(database, small.port), { fetchEndpoint: small.url });
    // Route by port, so other Neon servers of this process keep working.
    neonConfig.fetchEndpoint = localFetchEndpoint;
    await migrate(db, { embeddingDimensions: DIMENSIONS, searchTextConfig: "english" });
  });
  afterAll(async () => {
    await small?.close();
    if (database) await dropDatabase(database);
  });

  it("answers 413 request.too_large, not 500, when the endpoint refuses the request's size", async () => {
    const caller = await callerFor(db, "acme");
    const content = "A paragraph of plain words about refunds and returns. ".repeat(8_000);
    await expect(
      Ingest.run(db, caller, [{ id: "big", content }], { embedder: countingEmbedder() }),
    ).rejects.toMatchObject({ code: "request.too_large", status: 413 });
  });
});
