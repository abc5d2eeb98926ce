/** The console's pure parts, in Node: request packing, file reading, highlighting. */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readDocuments } from "../../cli/files";
import { batches, MAX_DOCUMENTS_PER_REQUEST, planFile } from "../../console/src/files";
import { queryTerms, segments } from "../../console/src/highlight";
import { findPassage, pageAt, pageSpans } from "../../console/src/passage";
import { describeRateLimit } from "../../console/src/status";
import { snippet } from "../../core/chat/citations";
import { locations } from "../../core/chunk/location";
import { splitIntoChunks } from "../../core/chunk/split";
import { extract } from "../../core/extract";

describe("console ingest batching", () => {
  const doc = (id: string, chars = 10) => ({ document: { id, content: "x".repeat(chars) } });

  it("packs at most 100 documents into one request", () => {
    const { batches: packed } = batches(Array.from({ length: 250 }, (_, i) => doc(`d${i}`)));
    expect(packed.map((b) => b.items.length)).toEqual([MAX_DOCUMENTS_PER_REQUEST, MAX_DOCUMENTS_PER_REQUEST, 50]);
  });

  it("starts a new request before the byte budget is passed, keeping order", () => {
    const { batches: packed } = batches([doc("a", 600_000), doc("b", 600_000), doc("c", 600_000)], 100, 1_300_000);
    expect(packed.map((b) => b.items.map((i) => i.document.id))).toEqual([["a", "b"], ["c"]]);
    expect(packed.every((b) => b.bytes <= 1_300_000)).toBe(true);
  });

  it("sets aside a document too large for any request", () => {
    const { batches: packed, tooLarge } = batches([doc("big", 7_000_000), doc("small")]);
    expect(tooLarge.map((i) => i.document.id)).toEqual(["big"]);
    expect(packed).toHaveLength(1);
  });
});

describe("console file reading", () => {
  const pick = (name: string, content: string | ArrayBuffer) => ({
    file: new File([content], name),
    path: `notes/${name}`,
  });

  it("reads a markdown file as one document titled by its first heading", async () => {
    const plan = await planFile(pick("a.md", "intro\n# Refunds\n\nWithin 14 days."));
    expect(plan.documents).toEqual([
      { id: "notes/a.md", content: "intro\n# Refunds\n\nWithin 14 days.", title: "Refunds", source: "notes/a.md" },
    ]);
  });

  it("reads Markdown as `engram ingest` does: front matter left out, its title the title", async () => {
    const fixture = readFileSync(join(import.meta.dirname, "../fixtures/extract/front-matter.md"), "utf8");
    const folder = mkdtempSync(join(tmpdir(), "engram-console-md-"));
    mkdirSync(join(folder, "notes"));
    try {
      // Also with Windows line ends, which the CLI's extraction turns into \n.
      for (const [name, text] of [
        ["handbook.md", fixture],
        ["handbook-crlf.markdown", fixture.replace(/\n/g, "\r\n")],
      ] as const) {
        writeFileSync(join(folder, "notes", name), text);
        const plan = await planFile(pick(name, text));
        expect(plan.documents[0]).toMatchObject({ title: "Employee Handbook 2026" });
        expect(plan.documents[0]?.content).toMatch(/^# Travel\n\n## Booking\n/);
        expect(plan.documents).toEqual((await readDocuments(join(folder, "notes", name), folder)).documents);
      }
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it("judges other text files as `engram ingest` does: Markdown when they have headings, a web page by its content", async () => {
    const folder = mkdtempSync(join(tmpdir(), "engram-console-txt-"));
    mkdirSync(join(folder, "notes"));
    try {
      for (const [name, text] of [
        ["notes.txt", "  # Notes\n\nThe boiler is serviced in March.\n"],
        ["plain.txt", "The boiler is serviced in March.\r\n"],
        ["rates.csv", "city,rate\nLeeds,12\n"],
      ] as const) {
        writeFileSync(join(folder, "notes", name), text);
        expect((await planFile(pick(name, text))).documents, name).toEqual(
          (await readDocuments(join(folder, "notes", name), folder)).documents,
        );
      }
      expect((await planFile(pick("notes.txt", "# Notes\n\ntext"))).documents[0]?.title).toBe("Notes");
      const saved = await planFile(pick("saved.txt", "<!doctype html><html><body><h1>Saved</h1></body></html>"));
      expect(saved.upload?.name).toBe("saved.txt");
      // AsciiDoc, named so or opening with a document title, is read on the server, as engram ingest reads it.
      for (const name of ["guide.adoc", "guide.txt"]) {
        const asciidoc = await planFile(pick(name, "= Guide\n\n== Install\n\n----\n# a comment\n----\n"));
        expect([asciidoc.upload?.name, asciidoc.documents]).toEqual([name, []]);
      }
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it("sends a web page to the upload route, as a PDF, and skips an empty one or one over 4 MB", async () => {
    const page = await planFile(pick("shipping.html", "<h1>Shipping</h1><h2>Express</h2><p>Overnight.</p>"));
    expect(page.upload?.name).toBe("shipping.html");
    expect(page.documents).toEqual([]);
    const big = await planFile(pick("big.htm", `<p>${"x".repeat(5 * 1024 * 1024)}</p>`));
    expect(big.skipped).toBe("too large: 5.0 MB (uploads are at most 4 MB; use engram ingest for larger files)");
    expect((await planFile(pick("empty.html", ""))).skipped).toBe("empty file");
  });

  it("reads JSONL records and reports the lines it leaves out", async () => {
    const plan = await planFile(
      pick("r.jsonl", '{"id":"1","content":"one"}\n{"text":"two","importance":11}\nnot json\n{"title":"no content"}\n'),
    );
    expect(plan.documents.map((d) => d.id)).toEqual(["1"]);
    expect(plan.notes).toEqual([
      "line 3: invalid JSON",
      "line 2: importance must be a whole number from 1 to 10",
      "line 4: no content field",
    ]);
  });

  it("sends a PDF or Word file (judged by its first bytes) to the upload route, and a .pdf holding text as text", async () => {
    const pdf = readFileSync(join(import.meta.dirname, "../fixtures/extract/handbook.pdf"));
    const plan = await planFile(pick("handbook.pdf", new Uint8Array(pdf).buffer));
    expect(plan.upload?.name).toBe("handbook.pdf");
    expect(plan.documents).toEqual([]);
    const lying = await planFile(pick("notes.pdf", "# Notes\n\nNot a PDF at all."));
    expect(lying.upload).toBeUndefined();
    expect(lying.documents[0]).toMatchObject({ title: "Notes" });
    const bytes = new Uint8Array(5 * 1024 * 1024);
    bytes.set(new TextEncoder().encode("%PDF-1.7\n"));
    const big = await planFile(pick("big.pdf", bytes.buffer));
    expect(big.skipped).toBe("too large: 5.0 MB (uploads are at most 4 MB; use engram ingest for larger files)");
  });

  it("skips unsupported and binary files with a reason", async () => {
    expect((await planFile(pick("logo.png", "png"))).skipped).toBe("unsupported file type .png");
    expect((await planFile(pick("data.txt", new Uint8Array([104, 0, 105]).buffer))).skipped).toBe("not a text file");
  });
});

describe("console highlighting and status", () => {
  it("marks inflected forms of the query's words and leaves stop words alone", () => {
    const terms = queryTerms("How do refunds work?");
    expect(terms).toEqual(["refund", "work"]);
    const parts = segments("Refunded items: the refund works.", terms);
    expect(parts.filter((p) => p.match).map((p) => p.text)).toEqual(["Refunded", "refund", "works"]);
    expect(parts.map((p) => p.text).join("")).toBe("Refunded items: the refund works.");
  });

  it("describes the RateLimit headers in words", () => {
    expect(describeRateLimit({ rateLimit: '"search";r=119;t=1', rateLimitPolicy: '"search";q=120;w=60' })).toBe(
      "search: 119 of 120 left per 60 s, resets in 1 s",
    );
    expect(describeRateLimit({ rateLimit: null, rateLimitPolicy: null })).toBeUndefined();
  });
});

describe("console: a cited passage in its document", () => {
  const chunked = async (name: string) => {
    const pdf = await extract(new Uint8Array(readFileSync(join(import.meta.dirname, "../fixtures/extract", name))));
    const chunks = splitIntoChunks(pdf.content, { maxTokens: 120, overlapTokens: 20 });
    return { content: pdf.content, chunks, where: locations(pdf.content, chunks) };
  };
  const flat = (text: string) => text.replace(/\s+/g, " ").trim();
  // A snippet leaves out a heading's `#`s (core/chat/citations.ts): the text it is found at, read the same way.
  const read = (text: string) => flat(text.replace(/^ {0,3}#{1,6}[ \t]+/gm, ""));

  it("finds every chunk of a PDF from its citation's snippet, on the chunk's own page, and whole from a search result", async () => {
    // Numbered sentences: no passage's words are anywhere else.
    const { content, chunks, where } = await chunked("two-columns.pdf");
    expect(pageSpans(content)).toHaveLength(2);
    expect(chunks.length).toBeGreaterThan(10);
    for (const [i, chunk] of chunks.entries()) {
      const start = chunk.start + (chunk.content.length - chunk.content.trimStart().length);
      const marks = /^#{1,6}[ \t]+/.exec(chunk.content.trimStart())?.[0].length ?? 0;
      const cited = findPassage(content, snippet(chunk.content), where[i]);
      expect(cited?.start).toBe(start + marks);
      expect(pageAt(content, cited?.start ?? 0)).toBe(where[i]?.pages?.[0]);
      const result = findPassage(content, chunk.content, where[i]);
      expect(content.slice(result?.start, result?.end)).toBe(chunk.content.trim());
    }
  });

  it("finds a passage whose words repeat on its page at a place with those words, on that page", async () => {
    // The handbook repeats one sentence a paragraph long: which of the copies a snippet meant, no text can say.
    const { content, chunks, where } = await chunked("handbook.pdf");
    for (const [i, chunk] of chunks.entries()) {
      const quote = snippet(chunk.content);
      const cited = findPassage(content, quote, where[i]);
      expect(read(content.slice(cited?.start, cited?.end))).toBe(flat(quote.replace(/…$/, "")));
      expect(pageAt(content, cited?.start ?? 0)).toBe(where[i]?.pages?.[0]);
    }
  });

  it("finds a citation's snippet that starts inside its passage (the cited sentence, after a …)", async () => {
    const { content, chunks, where } = await chunked("two-columns.pdf");
    for (const [i, chunk] of chunks.entries()) {
      const sentences = flat(chunk.content).split(/(?<=\. )/);
      if (sentences.length < 3) continue;
      const cited = sentences.at(-2) as string;
      const quote = snippet(chunk.content, 280, cited);
      expect(quote.startsWith("…"), quote).toBe(true);
      const found = findPassage(content, quote, where[i]);
      expect(read(content.slice(found?.start, found?.end))).toBe(flat(quote.replace(/^…|…$/g, "")));
    }
  });

  it("finds a snippet across the heading marks and code fences it leaves out", () => {
    const content = "Intro to the tool.\n\n## EXAMPLES\n\nWhen recording, run:\n\n```python\nrecord(x)\n```\n\nDone.";
    const quote = snippet(content);
    expect(quote).toBe("Intro to the tool. EXAMPLES When recording, run: record(x) Done.");
    expect(findPassage(content, quote)).toEqual({ start: 0, end: content.length });
    // In the middle of a snippet too, and from a heading's text on.
    expect(findPassage(content, "EXAMPLES When recording")).toEqual({
      start: content.indexOf("EXAMPLES"),
      end: content.indexOf(",", content.indexOf("When recording")),
    });
  });

  it("prefers the cited page when the same words are on an earlier one, and falls back to the first words", () => {
    const content = "Intro.\n\nRefunds take 14 days.\n\f\nMore.\n\nRefunds take 14 days.\nThen more.";
    const second = content.lastIndexOf("Refunds");
    expect(findPassage(content, "Refunds take 14 days.", { pages: [2, 2] })?.start).toBe(second);
    expect(findPassage(content, "Refunds take 14 days.", null)?.start).toBe(content.indexOf("Refunds"));
    // A snippet cut with "…", and a passage whose end changed since: its first words still find it.
    expect(findPassage(content, "Refunds take 14 da…", { pages: [2, 2] })?.start).toBe(second);
    expect(
      findPassage(content, "More. Refunds take 14 days. Then something else entirely", { pages: [2, 2] })?.start,
    ).toBe(content.indexOf("More."));
    expect(findPassage(content, "Nothing like it here at all", { pages: [1, 1] })).toBeUndefined();
    // On one page, under two headings: the location's last heading says which.
    const page = "# Shop\n\n## Returns\n\nKeep the receipt.\n\n## Repairs\n\nKeep the receipt.";
    const under = findPassage(page, "Keep the receipt.", { pages: [1, 1], headings: ["Shop", "Repairs"] });
    expect(under?.start).toBe(page.lastIndexOf("Keep"));
  });
});
