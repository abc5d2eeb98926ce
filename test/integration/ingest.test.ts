/** The write path on every driver: idempotent, atomic, re-embedding only what changed. */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Caller } from "../../core/auth";
import { setConfig } from "../../core/config";
import * as Document from "../../core/document";
import { IngestRequest } from "../../core/document/schema";
import type { Embedder } from "../../core/embedding";
import * as Ingest from "../../core/ingest";
import { afterRead, callerFor, DRIVERS, freshDb, type TestDb } from "../../kit/db";
import { type CountingEmbedder, countingEmbedder, prose } from "../../kit/factories";

setConfig({ EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive", LOG_LEVEL: "silent" });

describe.each(DRIVERS)("ingest on %s", (driver) => {
  let t: TestDb;
  let alice: Caller;
  let embedder: CountingEmbedder;
  const ingest = (caller: Caller, documents: Parameters<typeof Ingest.run>[2]) =>
    Ingest.run(t.db, caller, documents, { embedder });
  const chunkRows = (id: string) =>
    t.db.query<{ ordinal: number; id: number; hash: string }>(
      sql`select c.ordinal, c.id, c.content_hash as hash from chunks c join documents d on d.key = c.document_key where d.id = ${id} order by c.ordinal`,
    );

  beforeAll(async () => {
    t = await freshDb(driver);
    alice = await callerFor(t.db, "acme", "alice");
  });
  afterAll(() => t?.close());
  beforeEach(() => {
    embedder = countingEmbedder();
  });

  it("creates documents, then the same request again is unchanged and embeds nothing", async () => {
    const docs = [
      { id: "handbook", content: prose(1, 12, 8), title: "Handbook" },
      { id: "faq", content: prose(2, 2, 3) },
    ];
    const first = await ingest(alice, docs);
    expect(first.documents.map((d) => d.status)).toEqual(["created", "created"]);
    expect(first.totals.chunks).toBeGreaterThan(2);
    expect(first.totals.embedded).toBe(first.totals.chunks);
    const calls = embedder.calls;

    const again = await ingest(alice, docs);
    expect(again.documents.map((d) => d.status)).toEqual(["unchanged", "unchanged"]);
    expect(again.totals.embedded).toBe(0);
    expect(embedder.calls).toBe(calls);
  });

  it("reuses vectors of the caller's own space and the shared one, never another end user's", async () => {
    const mallory = { ...alice, userId: "mallory" };
    const shared = { ...alice, userId: "" };
    await ingest(alice, [{ id: "interview", content: "Alice only: I am interviewing at Initech on Friday." }]);
    await ingest(shared, [{ id: "hours", content: "The office opens at nine on weekdays." }]);

    // The same text as alice's: embedded again, so the answer does not tell mallory that alice stored it.
    const copy = await ingest(mallory, [{ content: "Alice only: I am interviewing at Initech on Friday." }]);
    expect(copy.totals).toMatchObject({ chunks: 1, embedded: 1, reused: 0 });
    expect(copy.usage.embeddingTokens).toBeGreaterThan(0);
    const fromShared = await ingest(mallory, [{ content: "The office opens at nine on weekdays." }]);
    expect(fromShared.totals).toMatchObject({ chunks: 1, embedded: 0, reused: 1 });
    const own = await ingest(alice, [{ id: "again", content: "Alice only: I am interviewing at Initech on Friday." }]);
    expect(own.totals).toMatchObject({ chunks: 1, embedded: 0, reused: 1 });
  });

  it("counts every chunk as embedded or reused, copies of one text in the same request too", async () => {
    const same = "Copies of these very words, three times in one request.";
    const result = await ingest(alice, [
      { content: same },
      { content: same, conversationId: "k1" },
      { content: same, conversationId: "k2" },
    ]);
    // The two turns are embedded after no turns: the same text as the loose copy, embedded once.
    expect(result.totals).toMatchObject({ chunks: 3, embedded: 1, reused: 2 });
  });

  it("re-embeds only the chunks whose text changed and keeps the others' rows", async () => {
    const paragraphs = prose(3, 30, 6).split("\n\n");
    await ingest(alice, [{ id: "long", content: paragraphs.join("\n\n") }]);
    const before = await chunkRows("long");
    expect(before.length).toBeGreaterThan(4);

    paragraphs[paragraphs.length - 1] = "A brand new closing paragraph about warranty claims and refunds.";
    embedder = countingEmbedder();
    const result = await ingest(alice, [{ id: "long", content: paragraphs.join("\n\n") }]);
    expect(result.documents[0]?.status).toBe("updated");
    expect(result.totals.embedded).toBeGreaterThanOrEqual(1);
    expect(result.totals.embedded).toBeLessThanOrEqual(2);
    expect(result.totals.reused).toBe(result.totals.chunks - result.totals.embedded);

    const after = await chunkRows("long");
    const kept = after.filter((a) => before.some((b) => b.id === a.id));
    expect(kept.length).toBe(after.length - result.totals.embedded);
    expect(new Set(after.map((c) => c.ordinal)).size).toBe(after.length);
  });

  it("derives the id from the content so the same text is stored once", async () => {
    const result = await ingest(alice, [
      { content: "Derived ids come from the content hash." },
      { content: "A second text between the two copies." },
      { content: "Derived ids come from the content hash." },
    ]);
    // One entry per document sent, in order, so a caller can pair them up; the copies share one stored document.
    expect(result.documents).toHaveLength(3);
    expect(result.documents[0]?.id).toMatch(/^doc_[0-9a-f]{32}$/);
    expect(result.documents[2]).toEqual(result.documents[0]);
    expect(result.documents[1]?.id).not.toBe(result.documents[0]?.id);
    expect(result.totals.documents).toBe(2);
    const stored = await t.db.query<{ n: number }>(
      sql`select count(*)::int as n from documents where tenant_id = ${alice.tenantId} and id = ${result.documents[0]?.id}`,
    );
    expect(stored[0]?.n).toBe(1);
  });

  it("derives a turn's id from its conversation too, so the same words in two conversations are two turns", async () => {
    const first = await ingest(alice, [{ content: "Sounds good, see you then.", conversationId: "derived-a" }]);
    const again = await ingest(alice, [{ content: "Sounds good, see you then.", conversationId: "derived-a" }]);
    const other = await ingest(alice, [{ content: "Sounds good, see you then.", conversationId: "derived-b" }]);
    expect(again.documents[0]).toMatchObject({ id: first.documents[0]?.id, status: "unchanged" });
    expect(other.documents[0]?.status).toBe("created");
    expect(other.documents[0]?.id).not.toBe(first.documents[0]?.id);
    const a = await Document.get(t.db, alice, first.documents[0]?.id as string, { track: false });
    expect(a.conversationId).toBe("derived-a");
  });

  it("leaves the previous version intact when embedding fails", async () => {
    await ingest(alice, [{ id: "atomic", content: "Version one of the atomic document." }]);
    embedder.failNext(1);
    await expect(
      ingest(alice, [
        { id: "atomic", content: "Version two, never stored." },
        { id: "atomic-new", content: "A new document that must not appear." },
      ]),
    ).rejects.toMatchObject({ code: "embedding.failed", status: 502 });
    const doc = await Document.get(t.db, alice, "atomic", { track: false });
    expect(doc.content).toBe("Version one of the atomic document.");
    await expect(Document.get(t.db, alice, "atomic-new", { track: false })).rejects.toMatchObject({ status: 404 });
  });

  it("leaves the previous version of every document intact when embedding fails for the last of 100", async () => {
    const docs = (version: string) =>
      Array.from({ length: 100 }, (_, i) => ({ id: `bulk-${i}`, content: `${version} ${prose(400 + i, 1, 3)}` }));
    await ingest(alice, docs("first"));
    // Fails the call that embeds the last document's text.
    const failing = { ...embedder, embed: failingFor("bulk-99", docs("second"), embedder.embed) };

    await expect(Ingest.run(t.db, alice, docs("second"), { embedder: failing })).rejects.toMatchObject({
      code: "embedding.failed",
    });

    const stored = await t.db.query<{ content: string }>(sql`
      select c.content from chunks c join documents d on d.key = c.document_key
      where d.id like 'bulk-%' and d.tenant_id = ${alice.tenantId}`);
    expect(stored).toHaveLength(100);
    expect(stored.every((c) => c.content.startsWith("first "))).toBe(true);
  });

  it("embeds a text shared by two documents of one request once and stores it for each", async () => {
    const shared = `Shared text ${prose(500, 1, 3)}`;
    const docs = Array.from({ length: 100 }, (_, i) => ({
      id: `spread-${i}`,
      content: i === 0 || i === 99 ? shared : `Own text ${i} ${prose(600 + i, 1, 3)}`,
    }));

    const result = await ingest(alice, docs);

    expect(result.totals).toMatchObject({ chunks: 100, embedded: 99 });
    const [row] = await t.db.query<{ same: boolean }>(sql`
      select (select c.embedding from chunks c join documents d on d.key = c.document_key where d.id = 'spread-0')
           = (select c.embedding from chunks c join documents d on d.key = c.document_key where d.id = 'spread-99') as same`);
    expect(row?.same).toBe(true);
  });

  it("leaves the previous version intact when the database fails mid-write", async () => {
    await ingest(alice, [{ id: "dbfail", content: "Original content survives a failed write." }]);
    // A trigger makes the chunk insert fail after the document row was already upserted in the batch.
    await t.db.query(
      sql`create or replace function fail_chunks() returns trigger language plpgsql as $$ begin raise exception 'injected failure'; end $$`,
    );
    await t.db.query(
      sql`create trigger fail_chunks before insert on chunks for each row execute function fail_chunks()`,
    );
    try {
      await expect(
        ingest(alice, [{ id: "dbfail", content: "Replacement content that must roll back." }]),
      ).rejects.toThrow(/injected failure/);
    } finally {
      await t.db.query(sql`drop trigger fail_chunks on chunks`);
    }
    const doc = await Document.get(t.db, alice, "dbfail", { track: false });
    expect(doc.content).toBe("Original content survives a failed write.");
    const chunks = await chunkRows("dbfail");
    expect(chunks.length).toBe(doc.chunks);
  });

  it("leaves exactly one consistent version after concurrent ingests of the same document", async () => {
    const content = prose(9, 6, 6);
    const runs = driver === "pglite" ? 10 : 50;
    await Promise.all(Array.from({ length: runs }, () => ingest(alice, [{ id: "race", content }])));
    const [row] = await t.db.query<{ docs: number; chunks: number; distinct: number; count: number }>(sql`
      select (select count(*)::int from documents where id = 'race') as docs,
             (select chunk_count from documents where id = 'race') as count,
             (select count(*)::int from chunks c join documents d on d.key = c.document_key where d.id = 'race') as chunks,
             (select count(distinct c.ordinal)::int from chunks c join documents d on d.key = c.document_key where d.id = 'race') as distinct`);
    expect(row?.docs).toBe(1);
    expect(row?.chunks).toBe(row?.count);
    expect(row?.distinct).toBe(row?.count);
  });

  it("keeps a chunk's text in its row, not in the TOAST table, when the row fits its page", async () => {
    const [table] = await t.db.query<{ toast: string }>(
      sql`select reltoastrelid::regclass::text as toast from pg_class where oid = 'chunks'::regclass`,
    );
    // The TOAST table's name is the server's (pg_toast.pg_toast_<oid>), not input.
    const toastRows = async () =>
      (await t.db.query<{ n: number }>(sql.raw(`select count(*)::int as n from ${table?.toast}`)))[0]?.n;
    const before = await toastRows();

    const result = await ingest(
      alice,
      Array.from({ length: 20 }, (_, i) => ({ id: `inline-${i}`, content: prose(700 + i, 1, 5).slice(0, 500) })),
    );

    expect(result.totals.chunks).toBe(20);
    expect(await toastRows()).toBe(before);
  });

  it("keeps users' and tenants' documents apart", async () => {
    const bob = await callerFor(t.db, "acme", "bob");
    const other = await callerFor(t.db, "globex", "alice");
    await ingest(alice, [{ id: "private", content: "Alice's private note about the merger." }]);
    await expect(Document.get(t.db, bob, "private", { track: true })).rejects.toMatchObject({ status: 404 });
    await expect(Document.get(t.db, other, "private", { track: true })).rejects.toMatchObject({ status: 404 });
    await expect(Document.remove(t.db, bob, "private", { hard: true })).rejects.toMatchObject({ status: 404 });
    expect((await Document.list(t.db, bob, { limit: 100, includeDeleted: true })).documents).toEqual([]);
    expect((await Document.stats(t.db, other)).documents.total).toBe(0);
  });

  it("keeps lastIngestAt once the ingestion records are purged, from the documents' last write", async () => {
    const dana = await callerFor(t.db, "acme", "dana");
    await ingest(dana, [{ id: "kept", content: "Dana's note on the quarterly plan." }]);
    const before = (await Document.stats(t.db, dana)).lastIngestAt;
    await t.db.query(sql`delete from ingestions where owner = 'dana'`);

    const after = (await Document.stats(t.db, dana)).lastIngestAt;
    expect(before).not.toBeNull();
    expect(after?.getTime()).toBe(before?.getTime());
  });

  it("stores a text without the byte-order mark it opens with, so that sending it again as read changes nothing", async () => {
    const sent = { id: "bom", content: "\uFEFFNotes from the Lisbon offsite.", title: "\uFEFFOffsite" };
    expect((await ingest(alice, [sent])).documents[0]?.status).toBe("created");
    const stored = await Document.get(t.db, alice, "bom", { track: false });
    expect([stored.content, stored.title]).toEqual(["Notes from the Lisbon offsite.", "Offsite"]);
    expect((await ingest(alice, [sent])).documents[0]?.status).toBe("unchanged");
    const asRead = { id: "bom", content: stored.content as string, title: stored.title as string };
    expect((await ingest(alice, [asRead])).documents[0]?.status).toBe("unchanged");
    expect(IngestRequest.safeParse({ documents: [{ id: "\uFEFFbom", content: "x" }] }).success).toBe(false);
  });

  it("stores a whole web page sent as content as its text, titled by its <title>, and counts the text against the limit", async () => {
    const markup = `<div class="menu">${'<a href="/x">Link</a> '.repeat(50_000)}</div>`; // over a million characters
    const page = `<!DOCTYPE html>\n<html><head><title>Refunds &amp; returns</title><style>p { color: red }</style>
      <script>var secret = "tracking";</script></head><body>${markup}<h1>Refunds</h1>
      <p>Refunds are issued within <b>14 days</b> of a return.</p></body></html>`;
    expect(IngestRequest.safeParse({ documents: [{ content: page }] }).success).toBe(true);
    expect((await ingest(alice, [{ id: "page", content: page }])).documents[0]?.status).toBe("created");
    const stored = await Document.get(t.db, alice, "page", { track: false });
    expect(stored.title).toBe("Refunds & returns");
    expect(stored.content).toMatch(/^Link Link/);
    expect(stored.content).toMatch(/# Refunds\n\nRefunds are issued within 14 days of a return\.$/);
    expect(stored.content).not.toMatch(/<|tracking|color/);
    // Sent again as it was, or with a title of its own: the same text, the title sent wins.
    expect((await ingest(alice, [{ id: "page", content: page }])).documents[0]?.status).toBe("unchanged");
    await ingest(alice, [{ id: "page", content: page, title: "Policy" }]);
    expect((await Document.get(t.db, alice, "page", { track: false })).title).toBe("Policy");
    // HTML that is not a whole page (a fragment, a template) is stored as sent.
    await ingest(alice, [{ id: "fragment", content: "<p>Use <b>bold</b> for warnings.</p>" }]);
    expect((await Document.get(t.db, alice, "fragment", { track: false })).content).toBe(
      "<p>Use <b>bold</b> for warnings.</p>",
    );
    const empty = ingest(alice, [{ id: "script", content: "<html><script>alert(1)</script></html>" }]);
    await expect(empty).rejects.toMatchObject({ code: "document.empty_content" });
    const big = `<html><body><p>${"word ".repeat(210_000)}</p></body></html>`;
    await expect(ingest(alice, [{ id: "big", content: big }])).rejects.toMatchObject({ code: "document.too_large" });
  });

  it("lets users read shared documents but not change them", async () => {
    const shared = await callerFor(t.db, "acme");
    await ingest(shared, [{ id: "policy", content: "The shared refund policy is 30 days." }]);
    const doc = await Document.get(t.db, alice, "policy", { track: true });
    expect(doc.scope).toBe("shared");
    expect(doc.accessCount).toBe(1);
    await expect(Document.remove(t.db, alice, "policy", { hard: false })).rejects.toMatchObject({ status: 404 });
  });

  it("hides a soft-deleted document at once, then hard delete removes its chunks", async () => {
    await ingest(alice, [{ id: "gone", content: prose(4, 3, 4) }]);
    await Document.remove(t.db, alice, "gone", { hard: false });
    await expect(Document.get(t.db, alice, "gone", { track: false })).rejects.toMatchObject({ status: 404 });
    const listed = await Document.list(t.db, alice, { limit: 100, includeDeleted: false });
    expect(listed.documents.some((d) => d.id === "gone")).toBe(false);
    const withDeleted = await Document.list(t.db, alice, { limit: 100, includeDeleted: true });
    expect(withDeleted.documents.find((d) => d.id === "gone")?.deletedAt).not.toBeNull();
    expect((await chunkRows("gone")).length).toBeGreaterThan(0);

    await Document.remove(t.db, alice, "gone", { hard: true });
    expect(await chunkRows("gone")).toEqual([]);
  });

  it("hides documents whose TTL has passed", async () => {
    await ingest(alice, [{ id: "ephemeral", content: "This memory expires.", ttlSeconds: 60 }]);
    expect((await Document.get(t.db, alice, "ephemeral", { track: false })).expiresAt).not.toBeNull();
    await t.db.query(sql`update documents set expires_at = now() - interval '1 second' where id = 'ephemeral'`);
    await expect(Document.get(t.db, alice, "ephemeral", { track: false })).rejects.toMatchObject({ status: 404 });
  });

  it("answers 404 to a soft delete of an expired document, as a read does, and lets a hard delete remove it now", async () => {
    await ingest(alice, [{ id: "lapsed", content: "This memory lapsed.", ttlSeconds: 60 }]);
    await t.db.query(sql`update documents set expires_at = now() - interval '1 second' where id = 'lapsed'`);
    await expect(Document.remove(t.db, alice, "lapsed", { hard: false })).rejects.toMatchObject({ status: 404 });
    const [kept] = await t.db.query<{ deleted: boolean }>(
      sql`select deleted_at is not null as deleted from documents where id = 'lapsed'`,
    );
    expect(kept?.deleted).toBe(false);
    expect(await Document.remove(t.db, alice, "lapsed", { hard: true })).toMatchObject({ deleted: true, hard: true });
    expect(await t.db.query(sql`select 1 from documents where id = 'lapsed'`)).toEqual([]);
  });

  it("patches title and importance without embedding, and content by re-embedding only what changed", async () => {
    await ingest(alice, [{ id: "patchme", content: prose(21, 8, 6), title: "Old", ttlSeconds: 3600 }]);
    embedder = countingEmbedder();
    const retitled = await Ingest.patch(t.db, alice, "patchme", { title: "New", importance: 9 });
    expect(retitled).toMatchObject({ title: "New", importance: 9, status: "updated" });
    expect(embedder.calls).toBe(0);

    const content = `${prose(21, 8, 6)}\n\nOne more paragraph about shipping invoices.`;
    const changed = await Ingest.patch(t.db, alice, "patchme", { content });
    expect(changed.totals.embedded).toBeGreaterThan(0);
    expect(changed.totals.embedded).toBeLessThan(changed.totals.chunks);
    expect(changed.expiresAt).not.toBeNull();

    const writtenAt = async () =>
      (await t.db.query<{ at: string }>(sql`select updated_at::text as at from documents where id = 'patchme'`))[0]?.at;
    const before = await writtenAt();
    const forever = await Ingest.patch(t.db, alice, "patchme", { ttlSeconds: null });
    expect(forever).toMatchObject({ expiresAt: null, status: "updated" });
    expect(await writtenAt()).not.toBe(before);
    expect((await Ingest.patch(t.db, alice, "patchme", { ttlSeconds: null })).status).toBe("unchanged");
  });

  it("is idempotent with a TTL and whatever the order of metadata keys", async () => {
    const doc = {
      id: "retried",
      content: "Idempotency test about capybaras.",
      ttlSeconds: 3600,
      metadata: { topic: "x", a: 1 },
    };
    expect((await ingest(alice, [doc])).documents[0]?.status).toBe("created");
    const first = await Document.get(t.db, alice, "retried", { track: false });
    // A retry moments later changes nothing: the expiry stays the one the first request set.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await ingest(alice, [doc])).documents[0]?.status).toBe("unchanged");
    expect((await ingest(alice, [{ ...doc, metadata: { a: 1, topic: "x" } }])).documents[0]?.status).toBe("unchanged");
    const after = await Document.get(t.db, alice, "retried", { track: false });
    expect([after.expiresAt, after.updatedAt]).toEqual([first.expiresAt, first.updatedAt]);
    // Another TTL is a change, counted from now.
    expect((await ingest(alice, [{ ...doc, ttlSeconds: 7200 }])).documents[0]?.status).toBe("updated");
    const longer = await Document.get(t.db, alice, "retried", { track: false });
    expect(Number(longer.expiresAt)).toBeGreaterThan(Number(first.expiresAt) + 3_000_000);
    expect((await ingest(alice, [{ ...doc, metadata: { topic: "y", a: 1 } }])).documents[0]?.status).toBe("updated");
  });

  it("keeps an expiry when sent the TTL it was set with, after other changes too", async () => {
    const doc = { id: "kept-ttl", content: "Expiry test about alpacas.", ttlSeconds: 1000 };
    await ingest(alice, [doc]);
    const set = (await Document.get(t.db, alice, "kept-ttl", { track: false })).expiresAt;
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Each of these moved the expiry: the TTL was read back as expiry minus the last change's time.
    await Ingest.patch(t.db, alice, "kept-ttl", { importance: 6 });
    expect((await ingest(alice, [{ ...doc, importance: 6 }])).documents[0]?.status).toBe("unchanged");
    expect(
      (await ingest(alice, [{ ...doc, content: "Expiry test about alpacas and llamas." }])).documents[0]?.status,
    ).toBe("updated");
    await Ingest.patch(t.db, alice, "kept-ttl", { importance: 7 });
    await Ingest.patch(t.db, alice, "kept-ttl", { ttlSeconds: 1000 });
    expect((await Document.get(t.db, alice, "kept-ttl", { track: false })).expiresAt).toEqual(set);
    // Another TTL sets it from now, and that one is kept in turn.
    await Ingest.patch(t.db, alice, "kept-ttl", { ttlSeconds: 2000 });
    const moved = (await Document.get(t.db, alice, "kept-ttl", { track: false })).expiresAt;
    expect(Number(moved)).toBeGreaterThan(Number(set) + 900_000);
    await Ingest.patch(t.db, alice, "kept-ttl", { title: "Alpacas" });
    await ingest(alice, [{ ...doc, title: "Alpacas", ttlSeconds: 2000 }]);
    expect((await Document.get(t.db, alice, "kept-ttl", { track: false })).expiresAt).toEqual(moved);
  });

  it("replaces a document with what is sent, expiry included: sent again without a TTL, it no longer expires", async () => {
    const doc = { id: "replaced", content: "Replace test about otters.", importance: 8, ttlSeconds: 3600 };
    await ingest(alice, [doc]);
    const { ttlSeconds: _, importance: __, ...plain } = doc;
    expect((await ingest(alice, [plain])).documents[0]?.status).toBe("updated");
    expect(await Document.get(t.db, alice, "replaced", { track: false })).toMatchObject({
      importance: 5,
      expiresAt: null,
    });
    expect((await ingest(alice, [plain])).documents[0]?.status).toBe("unchanged");
    // New text without a TTL: also permanent (the upsert itself, not only the comparison, drops the expiry).
    await ingest(alice, [doc]);
    await ingest(alice, [{ ...plain, content: "Replace test about sea otters." }]);
    expect((await Document.get(t.db, alice, "replaced", { track: false })).expiresAt).toBeNull();
    // A PATCH that does not name the TTL keeps it.
    await ingest(alice, [doc]);
    expect((await Ingest.patch(t.db, alice, "replaced", { title: "Otters" })).expiresAt).not.toBeNull();
  });

  it("answers 404 to a change read before a delete that committed first, and the document stays deleted", async () => {
    await ingest(alice, [{ id: "race-delete", content: "Kept until someone deletes it." }]);
    const db = afterRead(t.db, /from documents d/, () => Document.remove(t.db, alice, "race-delete", { hard: false }));
    await expect(Ingest.patch(db, alice, "race-delete", { content: "A new text." })).rejects.toMatchObject({
      status: 404,
    });
    await expect(Document.get(t.db, alice, "race-delete", { track: false })).rejects.toMatchObject({ status: 404 });
  });

  it("keeps both of two changes that read the document before either wrote", async () => {
    await ingest(alice, [{ id: "race-two", content: "Changed twice at once.", title: "Old" }]);
    const db = afterRead(t.db, /from documents d/, () => Ingest.patch(t.db, alice, "race-two", { title: "New" }));
    expect((await Ingest.patch(db, alice, "race-two", { importance: 9 })).status).toBe("updated");
    expect(await Document.get(t.db, alice, "race-two", { track: false })).toMatchObject({
      title: "New",
      importance: 9,
    });
  });

  it("refuses to patch another user's or the shared space's document", async () => {
    const bob = await callerFor(t.db, "acme", "bob");
    await ingest(alice, [{ id: "alice-only", content: "Only Alice may change this." }]);
    await expect(Ingest.patch(t.db, bob, "alice-only", { title: "Hijacked" })).rejects.toMatchObject({ status: 404 });
    const shared = await callerFor(t.db, "acme");
    await ingest(shared, [{ id: "shared-doc", content: "Everyone reads this." }]);
    await expect(Ingest.patch(t.db, alice, "shared-doc", { title: "Mine now" })).rejects.toMatchObject({ status: 404 });
  });

  it("lists newest first in cursor pages", async () => {
    const carol = await callerFor(t.db, "acme", "carol");
    for (let i = 0; i < 5; i++) await ingest(carol, [{ id: `page-${i}`, content: `Document number ${i} for paging.` }]);
    const first = await Document.list(t.db, carol, { limit: 2, includeDeleted: false });
    expect(first.documents.map((d) => d.id)).toEqual(["page-4", "page-3"]);
    const second = await Document.list(t.db, carol, {
      limit: 2,
      includeDeleted: false,
      cursor: first.nextCursor ?? undefined,
    });
    expect(second.documents.map((d) => d.id)).toEqual(["page-2", "page-1"]);
    const third = await Document.list(t.db, carol, {
      limit: 2,
      includeDeleted: false,
      cursor: second.nextCursor ?? undefined,
    });
    expect(third.documents.map((d) => d.id)).toEqual(["page-0"]);
    expect(third.nextCursor).toBeNull();
  });
});

describe("ingest limits", () => {
  let t: TestDb;
  let caller: Caller;
  beforeAll(async () => {
    t = await freshDb("neon-http");
    caller = await callerFor(t.db, "acme");
  });
  afterAll(() => t?.close());

  it("refuses, before embedding, a write larger than one Neon batch can carry", async () => {
    const embedder = countingEmbedder();
    const documents = Array.from({ length: 100 }, (_, i) => ({ id: `big-${i}`, content: prose(i, 40, 8) }));
    await expect(Ingest.run(t.db, caller, documents, { embedder })).rejects.toMatchObject({
      code: "request.too_large",
      status: 413,
    });
    expect(embedder.calls).toBe(0);
  });
});

/** An embed function that fails when asked for the text of the document `id` (of `docs`), and works otherwise. */
function failingFor(id: string, docs: { id: string; content: string }[], embed: Embedder["embed"]): Embedder["embed"] {
  const content = docs.find((d) => d.id === id)?.content ?? "";
  return async (texts, opts) => {
    if (texts.some((text) => text.endsWith(content))) throw new Error("embedding service failed");
    return embed(texts, opts);
  };
}
