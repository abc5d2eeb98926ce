/** The HTTP surface every route shares: auth, errors, request ids, routing. */
import { gzipSync } from "node:zlib";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "../../core/auth";
import * as Auth from "../../core/auth";
import { setConfig } from "../../core/config";
import { useDb } from "../../core/db";
import * as Document from "../../core/document";
import { embedder as configuredEmbedder, type Embedder } from "../../core/embedding";
import * as Reembed from "../../core/embedding/reembed";
import * as Ingest from "../../core/ingest";
import { callerFor, DRIVERS, freshDb, type TestDb } from "../../kit/db";
import { invoke } from "../../kit/events";
import { fakeEmbedding } from "../../kit/openai-server";

// Production runs the Neon HTTP driver; the local server and the CLI run pg.
describe.each(["pg", "neon-http"] as const)("the HTTP surface on %s", (driver) => {
  let t: TestDb;
  let key: string;

  beforeAll(async () => {
    setConfig({ EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive", LOG_LEVEL: "silent" });
    t = await freshDb(driver);
    useDb(t.db);
    key = (await Auth.createKey(t.db, "acme")).key;
  });
  afterAll(() => t?.close());

  const auth = () => ({ authorization: `Bearer ${key}` });

  describe("health", () => {
    it("answers 200 with the database, embedder and chat model", async () => {
      const res = await invoke({ method: "GET", path: "/v1/health" });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        status: "ok",
        database: "ok",
        version: expect.any(String),
        embedder: { provider: "offline", model: "engram-offline-v2", dimensions: 1536 },
        chat: { provider: "extractive", model: "extractive" },
      });
      expect(res.headers["x-request-id"]).toMatch(/\S+/);
    });
  });

  describe("auth", () => {
    it("admits a request with a fresh key", async () => {
      const res = await invoke({ method: "GET", path: "/v1/documents", headers: auth() });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ documents: [], nextCursor: null });
    });

    it("answers 401 auth.missing_key without a key", async () => {
      const res = await invoke({ method: "GET", path: "/v1/documents" });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe("auth.missing_key");
    });

    it("answers 401 auth.invalid_key, not missing_key, for a header holding more than a key", async () => {
      for (const authorization of [`Bearer ${key} extra`, `Bearer ${key},Bearer ${key}`]) {
        const res = await invoke({ method: "GET", path: "/v1/documents", headers: { authorization } });
        expect([res.status, res.body.error.code]).toEqual([401, "auth.invalid_key"]);
      }
    });

    it("answers 401 for a well-formed key that does not exist", async () => {
      const res = await invoke({
        method: "GET",
        path: "/v1/documents",
        headers: { authorization: `Bearer egm_${"A".repeat(32)}` },
      });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe("auth.invalid_key");
    });

    it("answers 401 for a key with the right prefix but the wrong secret", async () => {
      const forged = `${key.slice(0, 20)}${"z".repeat(key.length - 20)}`;
      const res = await invoke({
        method: "GET",
        path: "/v1/documents",
        headers: { authorization: `Bearer ${forged}` },
      });
      expect(res.status).toBe(401);
    });

    it("refuses a revoked key at once", async () => {
      const created = await Auth.createKey(t.db, "acme", "short-lived");
      const ok = await invoke({
        method: "GET",
        path: "/v1/stats",
        headers: { authorization: `Bearer ${created.key}` },
      });
      expect(ok.status).toBe(200);
      await Auth.revokeKey(t.db, created.prefix);
      const res = await invoke({
        method: "GET",
        path: "/v1/stats",
        headers: { authorization: `Bearer ${created.key}` },
      });
      expect(res.status).toBe(401);
    });

    it("stores only a hash and a display prefix of each key", async () => {
      const rows = await t.db.query<{ hash: string; prefix: string }>({
        text: "select hash, prefix from api_keys",
        params: [],
      });
      for (const row of rows) {
        expect(row.hash).toMatch(/^[0-9a-f]{64}$/);
        expect(key.includes(row.hash)).toBe(false);
        expect(row.prefix).toHaveLength(12);
      }
    });

    it.each(["", "a b", "x".repeat(129), "ünïcode", "semi;colon"])(
      "answers 400 user.invalid_id for X-User-Id %j",
      async (userId) => {
        const res = await invoke({ method: "GET", path: "/v1/documents", headers: { ...auth(), "x-user-id": userId } });
        expect(res.status).toBe(400);
        expect(res.body.error.code).toBe("user.invalid_id");
      },
    );
  });

  describe("errors", () => {
    it("answers 415 request.unsupported_encoding for a compressed body, which it would otherwise call bad UTF-8", async () => {
      const res = await invoke({
        method: "POST",
        path: "/v1/ingest",
        headers: { ...auth(), "content-encoding": "gzip" },
        binaryBody: gzipSync(JSON.stringify({ documents: [{ content: "Compressed text." }] })),
      });
      expect(res.status).toBe(415);
      expect(res.body.error.code).toBe("request.unsupported_encoding");
      const identity = await invoke({
        method: "POST",
        path: "/v1/ingest",
        headers: { ...auth(), "content-encoding": "identity" },
        body: { documents: [{ content: "Plain text." }] },
      });
      expect(identity.status).toBe(200);
    });

    it("answers 400 request.invalid_json for malformed JSON", async () => {
      const res = await invoke({ method: "POST", path: "/v1/ingest", headers: auth(), rawBody: '{"documents": [' });
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ error: { code: "request.invalid_json", message: expect.any(String) } });
    });

    it("answers 400 request.invalid_json to a JSON route sent no body, as to whitespace", async () => {
      for (const [method, path] of [
        ["POST", "/v1/search"],
        ["POST", "/v1/chat"],
        ["POST", "/v1/ingest"],
        ["PATCH", "/v1/documents/x"],
      ] as const) {
        for (const rawBody of ["", "   "]) {
          // Its own end user: the describe's other tests spend most of the key's ingest rate.
          const res = await invoke({ method, path, headers: { ...auth(), "x-user-id": "no-body" }, rawBody });
          expect([path, rawBody, res.status, res.body.error.code]).toEqual([
            path,
            rawBody,
            400,
            "request.invalid_json",
          ]);
        }
      }
    });

    it("refuses a body that is not UTF-8 rather than storing U+FFFD in place of its bad bytes", async () => {
      const body = Buffer.concat([
        Buffer.from('{"documents":[{"content":"caf'),
        Buffer.from([0xe9]),
        Buffer.from('"}]}'),
      ]);
      const res = await invoke({ method: "POST", path: "/v1/ingest", headers: auth(), binaryBody: body });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("request.invalid_utf8");
    });

    it("reads JSON that starts with a byte order mark", async () => {
      const res = await invoke({
        method: "POST",
        path: "/v1/search",
        headers: auth(),
        rawBody: `\uFEFF${JSON.stringify({ query: "anything" })}`,
      });
      expect(res.status).toBe(200);
    });

    it("answers 413 request.too_large for a body over 6 MB", async () => {
      const res = await invoke({
        method: "POST",
        path: "/v1/ingest",
        headers: auth(),
        rawBody: `"${"x".repeat(6 * 1024 * 1024)}"`,
      });
      expect(res.status).toBe(413);
      expect(res.body.error.code).toBe("request.too_large");
    });

    it("answers 404 route.not_found for an unknown route", async () => {
      const res = await invoke({ method: "GET", path: "/v1/nope" });
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe("route.not_found");
    });

    it("answers an unknown route or a wrong method 404 or 405 whatever its body, not a complaint about the body", async () => {
      // A file posted to a mistyped upload path had been told its body was not valid UTF-8.
      for (const rawBody of ["not json", "\uFFFE binary", '{"documents": []}']) {
        const res = await invoke({ method: "POST", path: "/v1/upload", headers: auth(), rawBody });
        expect([res.status, res.body.error.code], rawBody).toEqual([404, "route.not_found"]);
      }
      const put = await invoke({ method: "PUT", path: "/v1/documents/abc", headers: auth(), rawBody: "not json" });
      expect([put.status, put.body.error.code]).toEqual([405, "route.method_not_allowed"]);
    });

    it("says how to write an id holding / when a document path has more segments than a route", async () => {
      const res = await invoke({ method: "DELETE", path: "/v1/documents/library/json.html", headers: auth() });
      expect([res.status, res.body.error.code]).toEqual([404, "route.not_found"]);
      expect(res.body.error.message).toContain("/v1/documents/library%2Fjson.html.");
      const restore = await invoke({ method: "POST", path: "/v1/documents/a/b/restore", headers: auth() });
      expect(restore.body.error.message).toContain("/v1/documents/a%2Fb/restore.");
    });

    it("answers 400 request.invalid_path for a path id whose percent-escapes are not UTF-8, or that no id can be", async () => {
      for (const path of ["/v1/documents/%ZZ", "/v1/documents/%ED%A0%80", "/v1/conversations/a%"]) {
        const res = await invoke({ method: "GET", path, headers: auth() });
        expect(res.status, path).toBe(400);
        expect(res.body.error.code).toBe("request.invalid_path");
      }
      // An id no document can have is refused as in a body, not answered "not found".
      for (const path of [
        "/v1/documents/a%07b",
        `/v1/documents/${"a".repeat(257)}`,
        "/v1/documents/%20%20",
        "/v1/conversations/a%0Ab",
        "/v1/documents/a%01b/restore",
      ]) {
        const res = await invoke({ method: path.endsWith("restore") ? "POST" : "GET", path, headers: auth() });
        expect([res.status, res.body.error.code], path).toEqual([400, "request.invalid_path"]);
      }
      // A well-formed escape is the character it encodes: a 404 for a document that is not there.
      const res = await invoke({ method: "GET", path: "/v1/documents/caf%C3%A9", headers: auth() });
      expect(res.status).toBe(404);
      expect(res.body.error.code).not.toBe("request.invalid_path");
    });

    it("answers 405 with Allow for a wrong method", async () => {
      const res = await invoke({ method: "PUT", path: "/v1/documents/abc", headers: auth() });
      expect(res.status).toBe(405);
      expect(res.headers.allow).toBe("GET, PATCH, DELETE");
      expect(res.body.error.code).toBe("route.method_not_allowed");
    });

    it("answers 400 with zod paths in details for a bad body", async () => {
      const res = await invoke({
        method: "POST",
        path: "/v1/ingest",
        headers: auth(),
        body: { documents: [{ content: 5 }] },
      });
      expect(res.status).toBe(400);
      expect(res.body.error.details).toContainEqual(expect.objectContaining({ path: "documents.0.content" }));
    });
  });

  describe("ingest input limits", () => {
    const post = (body: unknown) => invoke({ method: "POST", path: "/v1/ingest", headers: auth(), body });
    const cases: [string, unknown, number, string][] = [
      ["no documents", { documents: [] }, 400, "ingest.no_documents"],
      [
        "101 documents",
        { documents: Array.from({ length: 101 }, (_, i) => ({ content: `doc ${i}` })) },
        400,
        "ingest.too_many_documents",
      ],
      ["whitespace content", { documents: [{ content: " \n\t " }] }, 400, "document.empty_content"],
      ["content of zero-width spaces", { documents: [{ content: "\u200b\u2060 " }] }, 400, "document.empty_content"],
      [
        "content over 1,000,000 characters",
        { documents: [{ content: "x".repeat(1_000_001) }] },
        413,
        "document.too_large",
      ],
      [
        "metadata over 8 KB",
        { documents: [{ content: "a", metadata: { blob: "y".repeat(9000) } }] },
        400,
        "document.metadata_too_large",
      ],
      ["metadata that is not an object", { documents: [{ content: "a", metadata: [1, 2] }] }, 400, "request.invalid"],
      ["importance 11", { documents: [{ content: "a", importance: 11 }] }, 400, "request.invalid"],
      ["importance 0", { documents: [{ content: "a", importance: 0 }] }, 400, "request.invalid"],
      ["an empty id", { documents: [{ id: "", content: "a" }] }, 400, "request.invalid"],
      ["an id of 257 characters", { documents: [{ id: "i".repeat(257), content: "a" }] }, 400, "request.invalid"],
      ["an id with a control character", { documents: [{ id: "a\u0001b", content: "a" }] }, 400, "request.invalid"],
      // A URL path drops the segments `.` and `..`: such a document could be stored but never read or deleted.
      ["the id .", { documents: [{ id: ".", content: "a" }] }, 400, "request.invalid"],
      ["the id ..", { documents: [{ id: "..", content: "a" }] }, 400, "request.invalid"],
      [
        "duplicate ids",
        {
          documents: [
            { id: "same", content: "a" },
            { id: "same", content: "b" },
          ],
        },
        400,
        "ingest.duplicate_id",
      ],
      // Each would silently replace the other: one entry stored, both answered `created`.
      [
        "an id that another document's text derives without one",
        {
          documents: [
            { id: Ingest.derivedId("the derived text"), content: "the explicit text" },
            { content: "the derived text" },
          ],
        },
        400,
        "ingest.duplicate_id",
      ],
      [
        "the same text twice without an id, titled differently",
        {
          documents: [
            { content: "the same text", title: "one" },
            { content: "the same text", title: "two" },
          ],
        },
        400,
        "ingest.duplicate_id",
      ],
      // A misspelt field would otherwise be dropped: the document stored without the expiry it was sent with.
      ["a misspelt field (ttl)", { documents: [{ content: "a", ttl: 60 }] }, 400, "request.invalid"],
      ["an unknown top-level field", { documents: [{ content: "a" }], dryRun: true }, 400, "request.invalid"],
    ];

    it.each(cases)("refuses %s with %i %s and stores nothing", async (_name, body, status, code) => {
      const before = await invoke({ method: "GET", path: "/v1/stats", headers: auth() });
      const res = await post(body);
      expect(res.status).toBe(status);
      expect(res.body.error.code).toBe(code);
      const after = await invoke({ method: "GET", path: "/v1/stats", headers: auth() });
      expect(after.body.documents).toEqual(before.body.documents);
    });

    it.each(cases.slice(0, 2).concat(cases.filter(([name]) => name === "duplicate ids")))(
      "refuses %s on POST /api/ingest as /v1/ingest does: %i %s",
      async (_name, body, status, code) => {
        const res = await invoke({ method: "POST", path: "/api/ingest", headers: auth(), body });
        expect([res.status, res.body.error.code]).toEqual([status, code]);
      },
    );

    it("reads a JSON route's body as JSON whatever its Content-Type, and tells a form where forms go", async () => {
      const search = (rawBody: string) =>
        invoke({
          method: "POST",
          path: "/v1/search",
          headers: { ...auth(), "content-type": "multipart/form-data; boundary=x" },
          rawBody,
        });
      expect((await search(JSON.stringify({ query: "refunds" }))).status).toBe(200);
      const form = await search('--x\r\ncontent-disposition: form-data; name="query"\r\n\r\nrefunds\r\n--x--\r\n');
      expect([form.status, form.body.error.code]).toEqual([400, "request.invalid_json"]);
      expect(form.body.error.message).toContain("POST /v1/documents/upload");
    });

    it("refuses an unknown query parameter, naming it, and does nothing (a misspelt ?hard must not delete softly)", async () => {
      await post({ documents: [{ id: "kept-by-typo", content: "Still here after a misspelt delete." }] });
      const typo = await invoke({
        method: "DELETE",
        path: "/v1/documents/kept-by-typo",
        headers: auth(),
        query: { hrad: "true" },
      });
      expect(typo.status).toBe(400);
      expect(typo.body.error.code).toBe("request.invalid");
      expect(JSON.stringify(typo.body.error)).toContain("hrad");
      const still = await invoke({ method: "GET", path: "/v1/documents/kept-by-typo", headers: auth() });
      expect(still.status).toBe(200);
      for (const [path, query] of [
        ["/v1/documents", { includeDeleted: "true", limt: "5" }],
        ["/v1/documents/kept-by-typo", { trak: "false" }],
        ["/v1/conversations", { lmit: "5" }],
      ] as const) {
        const res = await invoke({ method: "GET", path, headers: auth(), query });
        expect(res.status, path).toBe(400);
      }
    });

    it("restores a soft-deleted document before the purge, found again at once; a hard-deleted one stays gone", async () => {
      const as = (user: string) => ({ ...auth(), "x-user-id": user });
      await post({ documents: [{ id: "oops", content: "The vault opens with the brass key kept by Ingrid." }] });
      await invoke({ method: "DELETE", path: "/v1/documents/oops", headers: auth() });
      const find = async () =>
        (await invoke({ method: "POST", path: "/v1/search", headers: auth(), body: { query: "brass key Ingrid" } }))
          .body.results as { documentId: string }[];
      expect((await find()).map((r) => r.documentId)).not.toContain("oops");

      // Another end user cannot restore it: it is not theirs.
      const other = await invoke({ method: "POST", path: "/v1/documents/oops/restore", headers: as("mallory") });
      expect([other.status, other.body.error.code]).toEqual([404, "document.not_found"]);
      const restored = await invoke({ method: "POST", path: "/v1/documents/oops/restore", headers: auth() });
      expect(restored.status).toBe(200);
      expect(restored.body).toMatchObject({
        id: "oops",
        deletedAt: null,
        content: expect.stringContaining("brass key"),
      });
      expect((await find()).map((r) => r.documentId)).toContain("oops");
      // Restoring a live document is answered with it: twice is once.
      const again = await invoke({ method: "POST", path: "/v1/documents/oops/restore", headers: auth() });
      expect([again.status, again.body.id]).toEqual([200, "oops"]);

      await invoke({ method: "DELETE", path: "/v1/documents/oops", headers: auth(), query: { hard: "true" } });
      const gone = await invoke({ method: "POST", path: "/v1/documents/oops/restore", headers: auth() });
      expect([gone.status, gone.body.error.code]).toEqual([404, "document.not_found"]);
    });

    it("says what a page's limit must be, however it is wrong", async () => {
      for (const limit of ["abc", "", "5,6", "0", "101", "2.5"]) {
        const res = await invoke({ method: "GET", path: "/v1/documents", headers: auth(), query: { limit } });
        expect(res.status, limit).toBe(400);
        expect(res.body.error.message, limit).toContain("limit must be a whole number from 1 to 100");
      }
    });

    it("accepts the Digital Twin body on POST /api/ingest", async () => {
      const res = await invoke({
        method: "POST",
        path: "/api/ingest",
        headers: { ...auth(), "x-user-id": "twin-user" },
        body: { documents: [{ id: "twin-1", content: "Digital twin memory.", title: "Twin" }] },
      });
      expect(res.status).toBe(200);
      expect(res.body.documents).toEqual([{ id: "twin-1", status: "created", chunks: 1 }]);
      const doc = await invoke({
        method: "GET",
        path: "/v1/documents/twin-1",
        headers: { ...auth(), "x-user-id": "twin-user" },
      });
      expect(doc.body.title).toBe("Twin");
    });
  });
});

// An operator switched EMBEDDING_MODEL and has not run `engram reembed` (or this process is the one left on the old
// model): the process is up, so still 200 for the load balancer, but health had said "ok" while vector search found
// none of the stored chunks.
describe.each(DRIVERS)("health while the stored chunks are of another model on %s", (driver) => {
  let t: TestDb;
  const old: Embedder = {
    provider: "openai",
    model: "model-old",
    dimensions: 1536,
    embed: async (texts) => ({ vectors: texts.map((x) => fakeEmbedding(x, 1536)), tokens: texts.length }),
  };
  const docs = (prefix: string, count: number) =>
    Array.from({ length: count }, (_, i) => ({ id: `${prefix}${i}`, content: `Note ${prefix}${i} on topic ${i}.` }));
  const health = () => invoke({ method: "GET", path: "/v1/health" });

  beforeAll(async () => {
    setConfig({ EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive", LOG_LEVEL: "silent" });
    t = await freshDb(driver);
    useDb(t.db);
  }, 120_000);
  afterAll(() => t?.close());

  it("says degraded (still 200) with the share of stale chunks and what to do, and ok again once they are moved", async () => {
    expect((await health()).body).toMatchObject({ status: "ok", embedder: { reembedding: 0, staleShare: 0 } });
    const caller = await callerFor(t.db, "switched");
    await Ingest.run(t.db, caller, docs("n", 12), { embedder: old });

    const stale = await health();
    expect(stale.status).toBe(200);
    expect(stale.body).toMatchObject({
      status: "degraded",
      database: "ok",
      embedder: { model: "engram-offline-v2", reembedding: 0, staleShare: 1 },
    });
    expect(stale.body.embedder.warning).toMatch(
      /^100% of the stored chunks were embedded by another model than engram-offline-v2, so vector search skips them .*run `engram reembed` configured for engram-offline-v2/,
    );

    await Reembed.begin(t.db, caller.tenantId, "engram-offline-v2", 1536);
    expect((await health()).body.embedder).toMatchObject({
      reembedding: 1,
      warning: expect.stringMatching(/under way/),
    });
    const offline = configuredEmbedder();
    expect(await Reembed.run(t.db, { tenantId: caller.tenantId, embedder: offline })).toMatchObject({ remaining: 0 });
    const moved = await health();
    expect(moved.body).toMatchObject({ status: "ok", embedder: { reembedding: 0, staleShare: 0 } });
    expect(moved.body.embedder.warning).toBeUndefined();
  });

  it("reads the share of a larger table from the planner's statistics, not from its chunks", async () => {
    const caller = await callerFor(t.db, "larger");
    const many = docs("m", 1_188);
    for (let i = 0; i < many.length; i += 100)
      await Ingest.run(t.db, caller, many.slice(i, i + 100), { embedder: old });
    await t.db.query(sql`analyze chunks`);
    // 1,188 of 1,200 chunks stale (the 12 above are of the active model).
    expect((await health()).body).toMatchObject({ status: "degraded", embedder: { staleShare: 0.99 } });
    // The statistics, not the chunks: the share is the one ANALYZE recorded until it runs again.
    await t.db.query(sql`update chunks set embedding_model = 'engram-offline-v2' where tenant_id = ${caller.tenantId}`);
    expect((await health()).body.embedder.staleShare).toBe(0.99);
    await t.db.query(sql`analyze chunks`);
    expect((await health()).body).toMatchObject({ status: "ok", embedder: { staleShare: 0 } });
  });
});

// A document deleted softly, or past its expiry, waits for the cleanup with its chunks, but no search reads them:
// health had counted them, and said degraded for an old model's corpus the user had already deleted.
describe.each(DRIVERS)("health's share of stale chunks, with deleted and expired documents on %s", (driver) => {
  let t: TestDb;
  const old: Embedder = {
    provider: "openai",
    model: "model-old",
    dimensions: 1536,
    embed: async (texts) => ({ vectors: texts.map((x) => fakeEmbedding(x, 1536)), tokens: texts.length }),
  };
  const docs = (prefix: string, count: number, extra: { ttlSeconds?: number } = {}) =>
    Array.from({ length: count }, (_, i) => ({
      id: `${prefix}${i}`,
      content: `Note ${prefix}${i} on topic ${i}.`,
      ...extra,
    }));
  const health = async () => (await invoke({ method: "GET", path: "/v1/health" })).body;
  const ingest = async (caller: Caller, documents: ReturnType<typeof docs>, embedder?: Embedder) => {
    for (let i = 0; i < documents.length; i += 100)
      await Ingest.run(t.db, caller, documents.slice(i, i + 100), embedder ? { embedder } : {});
  };

  beforeAll(async () => {
    setConfig({ EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive", LOG_LEVEL: "silent" });
    t = await freshDb(driver);
    useDb(t.db);
  }, 120_000);
  afterAll(() => t?.close());

  it("counts only live documents' chunks of a small table: a delete takes them out, a restore back in", async () => {
    const caller = await callerFor(t.db, "small");
    await ingest(caller, docs("old", 12), old);
    await ingest(caller, docs("new", 4));
    await ingest(caller, docs("brief", 1, { ttlSeconds: 3_600 }), old);
    expect(await health()).toMatchObject({ status: "degraded", embedder: { staleShare: 0.76 } }); // 13 of 17

    for (let i = 0; i < 10; i++) await Document.remove(t.db, caller, `old${i}`, { hard: false });
    // brief0's hour passes.
    await t.db.query(sql`update documents set expires_at = now() - interval '1 second' where id = 'brief0'`);
    // 2 of the 6 chunks whose documents are live: old10, old11 and the four new ones.
    const after = await health();
    expect(after).toMatchObject({ status: "ok", embedder: { staleShare: 0.33 } });
    expect(after.embedder.warning).toBeUndefined();

    await Document.restore(t.db, caller, "old0");
    expect((await health()).embedder.staleShare).toBe(0.43); // 3 of 7
    await t.db.query(sql`delete from documents where tenant_id = ${caller.tenantId}`);
  });

  it("takes deleted documents' chunks out of the planner's estimate of a larger table", async () => {
    const caller = await callerFor(t.db, "large");
    await ingest(caller, docs("old", 1_100), old);
    await ingest(caller, docs("new", 300));
    await t.db.query(sql`analyze chunks, documents`);
    expect(await health()).toMatchObject({ status: "degraded", embedder: { staleShare: 0.79 } }); // 1,100 of 1,400
    const remove = (below: number) =>
      t.db.query(sql`
        update documents set deleted_at = now()
        where tenant_id = ${caller.tenantId} and deleted_at is null
          and id like 'old%' and substr(id, 4)::int < ${below}`);

    // Up to 100 deleted documents' chunks are all read: 1,020 of the 1,320 live chunks are stale.
    await remove(80);
    expect(await health()).toMatchObject({ status: "degraded", embedder: { staleShare: 0.77 } });

    // More: how many is the documents' statistics (autovacuum's ANALYZE), of which model the 101 read.
    await remove(1_000);
    await t.db.query(sql`analyze documents`);
    expect(await health()).toMatchObject({ status: "ok", embedder: { staleShare: 0.25 } }); // 100 of 400
    await remove(1_050);
    await t.db.query(sql`analyze documents`);
    expect(await health()).toMatchObject({ status: "ok", embedder: { staleShare: 0.14 } }); // 50 of 350
  }, 120_000);
});
