/** core/extract on files made by real tools (test/fixtures/extract/README.md says which and how). */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { getDocumentProxy } from "unpdf";
import { describe, expect, it } from "vitest";
import { locations } from "../../core/chunk/location";
import { splitIntoChunks } from "../../core/chunk/split";
import { EngramError } from "../../core/error";
import { extract, PAGE_BREAK, sniff } from "../../core/extract";
import { checkExpansion } from "../../core/extract/docx";

const fixture = (name: string) => new Uint8Array(readFileSync(join(__dirname, "../fixtures/extract", name)));

async function refusal(promise: Promise<unknown>): Promise<EngramError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(EngramError);
  return error as EngramError;
}

describe("extract", () => {
  it("reads a LibreOffice PDF page by page, with its headings from font sizes and its pages separated by form feeds", async () => {
    const pdf = await extract(fixture("handbook.pdf"), { name: "handbook.pdf" });
    expect(pdf.format).toBe("pdf");
    expect(pdf.pages).toBe(6);
    expect(pdf.title).toBe("Employee handbook");
    expect(pdf.content.split(PAGE_BREAK)).toHaveLength(6);
    expect(pdf.content).toMatch(/^# Travel$/m);
    expect(pdf.content).toMatch(/^## Expenses$/m);
    expect(pdf.content.replace(/\s+/g, " ")).toContain("Meals are reimbursed up to 60 euros a day.");
  });

  it("reads a pdfTeX PDF that Debian ships in reading order, numbered sections as headings", async () => {
    const pdf = await extract(fixture("shared-mime-info-spec.pdf"));
    expect(pdf.pages).toBe(17);
    expect(pdf.title).toBe("Shared MIME-info Database");
    expect(pdf.content).toMatch(/^## 1\. Introduction$/m);
    expect(pdf.content.indexOf("1.1. Version")).toBeLessThan(pdf.content.indexOf("1.2. What is this spec?"));
  });

  // Each fixture numbers its 80 sentences in writing order, down the left column, then the right (README there).
  const SENTENCE = /Sentence (\d+) says the [a-z ]+? were \w+ in week \d+ by a team of \d+ people\./g;

  for (const [name, producer] of [
    ["two-columns.pdf", "LibreOffice"],
    ["two-columns-chromium.pdf", "Chromium (Skia)"],
  ] as const) {
    it(`reads a ${producer} two-column PDF column by column: each sentence whole and in order on each page`, async () => {
      // The fixture really is two columns: lines on page 1 start in both halves of the page.
      const proxy = await getDocumentProxy(fixture(name));
      const page = await proxy.getPage(1);
      const width = page.getViewport({ scale: 1 }).width;
      const items = (await page.getTextContent()).items.filter((i) => "str" in i);
      const lineStarts = items
        .filter((item, i) => item.str.trim() && (i === 0 || items[i - 1]?.hasEOL))
        .map((item) => item.transform[4] as number);
      expect(lineStarts.some((x) => x < width / 2) && lineStarts.some((x) => x > width / 2)).toBe(true);
      await proxy.destroy();

      const pdf = await extract(fixture(name));
      const pages = pdf.content.split(PAGE_BREAK);
      expect(pages).toHaveLength(2);
      // The abstract, set across both columns, comes before the first column.
      expect(pages[0]?.indexOf("first down the left column")).toBeLessThan(pages[0]?.indexOf("Sentence 1 ") ?? -1);
      // Every sentence whole (interleaved columns would cut the ones that wrap) and in order, across the page turn.
      const whole = [...pdf.content.replace(/\s+/g, " ").matchAll(SENTENCE)].map((m) => Number(m[1]));
      expect(whole).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
      // Page by page: page 1 holds both its columns' sentences, in order, before page 2's.
      const started = pages.map((text) => [...text.matchAll(/Sentence\s+(\d+)\s/g)].map((m) => Number(m[1])));
      expect(started.flat()).toEqual(whole);
      expect(started[0]?.length).toBeGreaterThan(30);
      // The step up to the next column is not a paragraph break: no sentence is cut by a blank line.
      expect(pdf.content).not.toMatch(/Sentence \d+ says[^.]*\n\n[^.]*people\./);
    });
  }

  it("turns a Pandoc .docx into Markdown with its heading levels", async () => {
    const docx = await extract(fixture("handbook.docx"), { name: "handbook.docx" });
    expect(docx.format).toBe("docx");
    expect(docx.title).toBe("Employee handbook");
    expect(docx.content).toMatch(/^# Security\n\n## Passwords\n\nUse the password manager/m);
  });

  it("keeps a web page's article and drops its navigation, sidebar and footer", async () => {
    const html = await extract(fixture("page.html"), { name: "page.html" });
    expect(html.format).toBe("html");
    expect(html.title).toMatch(/^Refund policy/);
    expect(html.content).toMatch(/^## How long refunds take$/m);
    expect(html.content).toContain("Refunds are issued within 14 days");
    for (const boilerplate of ["Basket (0)", "newsletter", "All rights reserved", "analytics"])
      expect(html.content).not.toContain(boilerplate);
  });

  it("judges a file by its content when its extension lies", async () => {
    expect((await extract(fixture("handbook.pdf"), { name: "notes.txt" })).format).toBe("pdf");
    expect((await extract(fixture("handbook.docx"), { name: "report.pdf" })).format).toBe("docx");
    expect((await extract(fixture("handbook.md"), { name: "scan.pdf" })).format).toBe("markdown");
    expect((await extract(fixture("page.html"), { name: "page.txt" })).format).toBe("html");
  });

  it("skips a scanned PDF (no text layer) as no extractable text", async () => {
    const error = await refusal(extract(fixture("scanned.pdf")));
    expect([error.status, error.code]).toEqual([422, "extract.no_text"]);
    expect(error.message).toMatch(/no extractable text \(scanned\?\)/i);
  });

  it("refuses an encrypted PDF and a corrupt one with codes naming the problem", async () => {
    const encrypted = await refusal(extract(fixture("encrypted.pdf")));
    expect([encrypted.status, encrypted.code]).toEqual([422, "extract.encrypted"]);
    const corrupt = await refusal(extract(fixture("corrupt.pdf")));
    expect([corrupt.status, corrupt.code]).toEqual([422, "extract.corrupt"]);
    const truncated = await refusal(extract(fixture("handbook.docx").subarray(0, 4000), { name: "x.docx" }));
    expect(truncated.code).toMatch(/^extract\.(corrupt|unsupported_type)$/);
  });

  it("refuses a PDF of 50,000 pages from its page count, before reading a page", async () => {
    const started = performance.now();
    const error = await refusal(extract(fixture("pages-50000.pdf")));
    expect([error.status, error.code]).toEqual([413, "extract.too_many_pages"]);
    expect(error.details).toEqual({ pages: 50_000, limit: 2_000 });
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it("refuses a .docx whose XML expands past the bound while inflating it, before mammoth parses it", async () => {
    const error = await refusal(extract(fixture("bomb.docx")));
    expect([error.status, error.code]).toEqual([413, "extract.too_large"]);
    // The same bound holds however small: the honest handbook passes 32 MB, not 10 KB.
    expect(checkExpansion(fixture("handbook.docx"), { maxExpandedBytes: 32 << 20 } as never)).toBeGreaterThan(10_000);
    expect(() => checkExpansion(fixture("handbook.docx"), { maxExpandedBytes: 10_000 } as never)).toThrow(
      /expands past/,
    );
  });

  it("names unsupported, empty and oversized files", async () => {
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0]);
    const image = await refusal(extract(png, { name: "photo.pdf" }));
    expect([image.status, image.code, image.message]).toEqual([
      415,
      "extract.unsupported_type",
      "Unsupported: PNG image.",
    ]);
    const empty = await refusal(extract(new Uint8Array(), { name: "a.md" }));
    expect([empty.status, empty.code]).toEqual([422, "extract.empty"]);
    const big = await refusal(extract(fixture("handbook.pdf"), { limits: { maxBytes: 1000 } }));
    expect([big.status, big.code]).toEqual([413, "extract.too_large"]);
    const pages = await refusal(extract(fixture("handbook.pdf"), { limits: { maxPages: 5 } }));
    expect(pages.code).toBe("extract.too_many_pages");
    const text = await refusal(extract(fixture("handbook.pdf"), { limits: { maxChars: 5000 } }));
    expect(text.code).toBe("extract.too_much_text");
  });

  it("sniffs text formats by their first characters, then their extension", () => {
    const bytes = (s: string) => new TextEncoder().encode(s);
    expect(sniff(bytes("<!DOCTYPE html><p>x"), "a.md")).toEqual({ format: "html" });
    expect(sniff(bytes("a,b\n1,2\n"), "a.csv")).toEqual({ format: "csv" });
    expect(sniff(bytes('{"content":"x"}\n'), "a.jsonl")).toEqual({ format: "jsonl" });
    expect(sniff(bytes("# Title\n\ntext"), "README")).toEqual({ format: "markdown" });
    expect(sniff(new Uint8Array([0x50, 0x4b, 0x05, 0x06, ...new Array(18).fill(0)]), "a.docx")).toMatchObject({
      format: "unsupported",
    });
  });
});

describe("locations", () => {
  it("gives each chunk of a PDF its page range and the headings above it", async () => {
    const pdf = await extract(fixture("handbook.pdf"));
    const chunks = splitIntoChunks(pdf.content, { maxTokens: 200, overlapTokens: 20 });
    const located = locations(pdf.content, chunks);
    expect(located[0]).toEqual({ pages: [1, 1], headings: ["Employee handbook"] });
    const last = located.at(-1);
    expect(last?.pages?.[1]).toBe(6);
    expect(last?.headings).toEqual(["Security", "Laptops"]);
    for (const [i, chunk] of chunks.entries()) {
      const [from, to] = located[i]?.pages ?? [0, 0];
      const before = pdf.content.slice(0, chunk.start).split("\f").length;
      expect(from).toBe(before);
      expect(to - from).toBe(chunk.content.split("\f").length - 1);
    }
  });

  it("is null for a text with neither pages nor headings", () => {
    expect(locations("just words", [{ start: 0, end: 10 }])).toEqual([null]);
  });
});
