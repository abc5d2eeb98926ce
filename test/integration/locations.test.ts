/** Chunk locations (pages of a PDF, heading paths) stored at ingest and returned by search, chat and /api/chat. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "../../core/auth";
import * as Auth from "../../core/auth";
import * as Chat from "../../core/chat";
import { ChatRequest } from "../../core/chat/schema";
import { setConfig } from "../../core/config";
import { type Db, useDb } from "../../core/db";
import { useEmbedder } from "../../core/embedding";
import * as Extract from "../../core/extract";
import * as Ingest from "../../core/ingest";
import * as Search from "../../core/search";
import { callerFor, freshDb, type TestDb } from "../../kit/db";
import { invoke } from "../../kit/events";
import { type CountingEmbedder, countingEmbedder } from "../../kit/factories";

const fixture = (name: string) => new Uint8Array(readFileSync(join(import.meta.dirname, "../fixtures/extract", name)));

beforeAll(() => setConfig({ LOG_LEVEL: "silent", CHAT_PROVIDER: "extractive" }));

describe.each(["pg", "pglite"] as const)("locations on %s", (driver) => {
  let t: TestDb;
  let db: Db;
  let caller: Caller;
  let key: string;
  let embedder: CountingEmbedder;
  let pdf: Extract.Extracted;

  beforeAll(async () => {
    t = await freshDb(driver);
    db = t.db;
    useDb(db);
    embedder = countingEmbedder();
    useEmbedder(embedder);
    caller = await callerFor(db, "acme");
    key = (await Auth.createKey(db, "acme")).key;
    pdf = await Extract.extract(fixture("handbook.pdf"));
    const docx = await Extract.extract(fixture("handbook.docx"));
    await Ingest.run(db, caller, [
      { id: "handbook.pdf", title: pdf.title, content: pdf.content },
      { id: "handbook.docx", title: docx.title, content: docx.content },
      { id: "plain", content: "Opening hours are nine to five on weekdays." },
    ]);
  }, 60_000);
  afterAll(() => t.close());

  it("returns the pages and headings of each passage in search results", async () => {
    const { results } = await Search.query(
      db,
      caller,
      Search.SearchRequest.parse({ query: "laptops lost reported to security", topK: 10 }),
    );
    const fromPdf = results.find((r) => r.documentId === "handbook.pdf");
    expect(fromPdf?.location?.pages?.[0]).toBeGreaterThanOrEqual(5);
    expect(fromPdf?.location?.headings).toEqual(["Security", "Laptops"]);
    const fromDocx = results.find((r) => r.documentId === "handbook.docx");
    expect(fromDocx?.location).toEqual({ headings: ["Security", "Laptops"] });
    const plain = await Search.query(
      db,
      caller,
      Search.SearchRequest.parse({ query: "opening hours weekdays", topK: 1 }),
    );
    expect(plain.results[0]).toMatchObject({ documentId: "plain", location: null });
  });

  it("names the location in chat citations and in /api/chat sources", async () => {
    const answer = await Chat.answer(
      db,
      caller,
      ChatRequest.parse({ messages: [{ role: "user", content: "How much are meals reimbursed on travel?" }] }),
    );
    const cited = answer.citations.find((c) => c.documentId === "handbook.pdf");
    expect(cited?.location?.pages).toEqual([expect.any(Number), expect.any(Number)]);
    expect(cited?.location?.headings?.[0]).toBe("Travel");

    const res = await invoke({
      method: "POST",
      path: "/api/chat",
      headers: { authorization: `Bearer ${key}` },
      body: { messages: [{ role: "user", content: "How much are meals reimbursed on travel?" }] },
    });
    expect(res.status).toBe(200);
    const body = res.body as { sources: { location: { pages?: number[] } | null }[] };
    expect(body.sources.length).toBeGreaterThan(0);
    for (const source of body.sources) expect(source).toHaveProperty("location");
    expect(body.sources.some((s) => s.location?.pages)).toBe(true);
  });

  it("re-ingesting the PDF with a page changed embeds only that page's chunks, and moves the others' locations", async () => {
    const pages = pdf.content.split(Extract.PAGE_BREAK);
    const before = await chunksOf("handbook.pdf");
    // Page 3 rewritten: only its chunks are new text.
    pages[2] = `${pages[2]}\n\nA new rule: taxis after 22:00 are reimbursed in full.`;
    embedder.calls = 0;
    embedder.inputs = 0;
    const changed = await Ingest.run(db, caller, [
      { id: "handbook.pdf", title: pdf.title, content: pages.join(Extract.PAGE_BREAK) },
    ]);
    expect(changed.documents[0]?.status).toBe("updated");
    expect(changed.totals.embedded).toBeGreaterThan(0);
    expect(changed.totals.embedded).toBeLessThanOrEqual(2);
    expect(changed.totals.reused).toBe(changed.totals.chunks - changed.totals.embedded);

    // A page inserted at the front: every later chunk's text is unchanged (nothing embedded but the new page),
    // and its pages move by one.
    const shifted = await Ingest.run(db, caller, [
      {
        id: "handbook.pdf",
        title: pdf.title,
        content: ["Cover page of the 2027 edition", ...pages].join(Extract.PAGE_BREAK),
      },
    ]);
    expect(shifted.totals.embedded).toBeLessThanOrEqual(1);
    const after = await chunksOf("handbook.pdf");
    const last = (rows: { location: { pages: number[] } }[]) => rows.at(-1)?.location.pages[1];
    expect(last(after)).toBe((last(before) ?? 0) + 1);
  });

  async function chunksOf(id: string) {
    const rows = await db.query<{ ordinal: number; location: unknown }>(
      (await import("drizzle-orm")).sql`
        select c.ordinal, c.location from chunks c join documents d on d.key = c.document_key
        where d.id = ${id} and d.tenant_id = ${caller.tenantId} order by c.ordinal`,
    );
    return rows.map((r) => ({
      ...r,
      location: (typeof r.location === "string" ? JSON.parse(r.location) : r.location) as { pages: number[] },
    }));
  }
});
