/** An ingest's statuses say what its write did, even when another request changed the document after it was read. */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "../../core/auth";
import { setConfig } from "../../core/config";
import type { Db } from "../../core/db";
import * as Document from "../../core/document";
import type { DocumentInput } from "../../core/document/schema";
import * as Ingest from "../../core/ingest";
import { callerFor, DRIVERS, freshDb, type TestDb } from "../../kit/db";
import { countingEmbedder, prose } from "../../kit/factories";

setConfig({ EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive", LOG_LEVEL: "silent" });

describe.each(DRIVERS)("ingest statuses on %s", (driver) => {
  let t: TestDb;
  let alice: Caller;
  const embedder = countingEmbedder();
  const ingest = (documents: DocumentInput[], db: Db = t.db) => Ingest.run(db, alice, documents, { embedder });
  const statusOf = async (documents: DocumentInput[]) => (await ingest(documents)).documents[0]?.status;

  /**
   * Ingests `documents` with `meanwhile` run between its reads and its write, so that it writes on a stale plan; one
   * write only (a write that failed and was planned again would not be stale).
   */
  const ingestStale = async (documents: DocumentInput[], meanwhile: () => Promise<unknown>) => {
    let writes = 0;
    const db: Db = {
      ...t.db,
      batch: async (queries) => {
        if (writes++ === 0) await meanwhile();
        return t.db.batch(queries);
      },
    };
    const result = await ingest(documents, db);
    expect(writes).toBe(1);
    return result;
  };

  /** Ingests that each wait to write until all `n` have read and planned: every one of them plans on the same reads. */
  const planTogether = (n: number) => {
    let arrived = 0;
    let release = () => {};
    const all = new Promise<void>((resolve) => {
      release = resolve;
    });
    const db: Db = {
      ...t.db,
      batch: async (queries) => {
        if (++arrived === n) release();
        await all;
        return t.db.batch(queries);
      },
    };
    return (documents: DocumentInput[]) => Promise.all(Array.from({ length: n }, () => ingest(documents, db)));
  };

  const recorded = async (ingestionId: string) =>
    (await t.db.query<{ documents: unknown }>(sql`select documents from ingestions where id = ${ingestionId}`))[0]
      ?.documents;
  const chunkCount = async (id: string) =>
    (
      await t.db.query<{ n: number }>(sql`
        select count(*)::int as n from chunks c join documents d on d.key = c.document_key
        where d.id = ${id} and d.tenant_id = ${alice.tenantId}`)
    )[0]?.n;

  beforeAll(async () => {
    t = await freshDb(driver);
    alice = await callerFor(t.db, "acme", "alice");
  });
  afterAll(() => t?.close());

  it("writes one of two identical ingests of a new document that both read it absent, the other unchanged", async () => {
    for (let round = 0; round < 4; round++) {
      const doc = { id: `twin-${round}`, title: "Twin", content: prose(100 + round, 3, 4), ttlSeconds: 3600 };
      const results = await planTogether(2)([doc]);

      expect(results.map((r) => r.documents[0]?.status).sort()).toEqual(["created", "unchanged"]);
      for (const result of results) expect(await recorded(result.ingestionId)).toEqual(result.documents);
      const stored = await Document.get(t.db, alice, doc.id, { track: false });
      expect(await chunkCount(doc.id)).toBe(stored.chunks);
      // Written once: the second did not rewrite the row (its transaction began first, so its time was earlier).
      expect(stored.updatedAt).toEqual(stored.createdAt);
    }
  });

  it("writes one of two identical ingests reviving a deleted document, the other unchanged", async () => {
    for (let round = 0; round < 3; round++) {
      const doc = { id: `revived-${round}`, content: prose(200 + round, 2, 4) };
      await ingest([doc]);
      await Document.remove(t.db, alice, doc.id, { hard: false });
      const results = await planTogether(2)([doc]);

      expect(results.map((r) => r.documents[0]?.status).sort()).toEqual(["created", "unchanged"]);
      for (const result of results) expect(await recorded(result.ingestionId)).toEqual(result.documents);
    }
  });

  it("answers created at most once among many identical ingests of a new document, however they interleave", async () => {
    const doc = { id: "crowd", content: prose(300, 2, 4) };
    const results = await Promise.all(Array.from({ length: 8 }, () => ingest([doc])));
    expect(results.filter((r) => r.documents[0]?.status === "created")).toHaveLength(1);
  });

  it("answers updated when another request stored the document after this one read it absent", async () => {
    const doc = { id: "late", content: prose(400, 2, 4) };

    const result = await ingestStale([doc], () => ingest([{ ...doc, content: prose(401, 2, 4) }]));

    expect(result.documents[0]?.status).toBe("updated");
    expect(await recorded(result.ingestionId)).toEqual(result.documents);
    expect((await Document.get(t.db, alice, doc.id, { track: false })).content).toBe(doc.content);
  });

  it("answers created when the document was deleted, for good or softly, after this one read it", async () => {
    for (const hard of [true, false]) {
      const id = `vanished-${hard}`;
      await ingest([{ id, content: prose(500, 2, 4) }]);

      const result = await ingestStale([{ id, content: prose(501, 2, 4) }], () =>
        Document.remove(t.db, alice, id, { hard }),
      );

      expect(result.documents[0]?.status).toBe("created");
      expect(await recorded(result.ingestionId)).toEqual(result.documents);
      const stored = await Document.get(t.db, alice, id, { track: false });
      expect(stored.content).toBe(prose(501, 2, 4));
      expect(await chunkCount(id)).toBe(stored.chunks);
    }
  });

  it("answers unchanged when another request revived the deleted document as this one would, after it read it", async () => {
    const doc = { id: "raced-revival", content: prose(600, 2, 4) };
    await ingest([doc]);
    await Document.remove(t.db, alice, doc.id, { hard: false });

    const result = await ingestStale([doc], () => ingest([doc]));
    expect(result.documents[0]?.status).toBe("unchanged");
    expect(await recorded(result.ingestionId)).toEqual(result.documents);

    // Revived with other fields (a title): written, as an update.
    await Document.remove(t.db, alice, doc.id, { hard: false });
    const titled = await ingestStale([{ ...doc, title: "Revived" }], () => ingest([doc]));
    expect(titled.documents[0]?.status).toBe("updated");
    expect((await Document.get(t.db, alice, doc.id, { track: false })).title).toBe("Revived");
  });

  it("answers as planned when nothing changed between the read and the write", async () => {
    const doc = { id: "calm", content: prose(700, 2, 4) };
    expect(await statusOf([doc])).toBe("created");
    expect(await statusOf([{ ...doc, title: "Calm" }])).toBe("updated");
    expect(await statusOf([{ ...doc, title: "Calm" }])).toBe("unchanged");
    await Document.remove(t.db, alice, doc.id, { hard: false });
    expect(await statusOf([doc])).toBe("created");

    const mixed = await ingest([
      { id: "calm", content: prose(701, 2, 4) },
      { id: "calm-new", content: prose(702, 2, 4) },
      { id: "calm-new-2", content: prose(703, 2, 4) },
    ]);
    expect(mixed.documents.map((d) => d.status)).toEqual(["updated", "created", "created"]);
    expect(await recorded(mixed.ingestionId)).toEqual(mixed.documents);
  });
});
