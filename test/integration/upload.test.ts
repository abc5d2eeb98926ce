/** `POST /v1/documents/upload` through the real chain, on pg and PGlite: formats, refusals, idempotency. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as Auth from "../../core/auth";
import { setConfig } from "../../core/config";
import { useDb } from "../../core/db";
import { useEmbedder } from "../../core/embedding";
import { freshDb, type TestDb } from "../../kit/db";
import { invoke } from "../../kit/events";
import { countingEmbedder } from "../../kit/factories";
import { multipart, multipartType, type Part } from "../../kit/multipart";

const fixture = (name: string) => readFileSync(join(import.meta.dirname, "../fixtures/extract", name));

// Uploads are of the ingest rate class (30 a minute); this file sends more than that, and tests no limit.
beforeAll(() => setConfig({ LOG_LEVEL: "silent", RATE_LIMIT_INGEST: "600/min", RATE_LIMIT_TENANT_INGEST: "600/min" }));

describe.each(["pg", "pglite"] as const)("upload on %s", (driver) => {
  let t: TestDb;
  let key: string;
  const embedder = countingEmbedder();

  beforeAll(async () => {
    t = await freshDb(driver);
    useDb(t.db);
    useEmbedder(embedder);
    key = (await Auth.createKey(t.db, "acme")).key;
  }, 60_000);
  afterAll(() => t.close());

  const upload = (parts: Part[], contentType = multipartType()) =>
    invoke({
      method: "POST",
      path: "/v1/documents/upload",
      headers: { authorization: `Bearer ${key}`, "content-type": contentType },
      binaryBody: multipart(parts),
    });
  const documentCount = async () =>
    Number((await t.db.query<{ n: number }>(sql`select count(*)::int as n from documents`))[0]?.n);

  it("stores a PDF as one document with its pages, title and the form's fields", async () => {
    const res = await upload([
      { name: "file", value: fixture("handbook.pdf"), filename: "handbook.pdf" },
      { name: "metadata", value: '{"team":"hr"}' },
      { name: "importance", value: "8" },
    ]);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      documents: [{ id: "handbook.pdf", status: "created" }],
      file: { name: "handbook.pdf", format: "pdf", pages: 6, bytes: fixture("handbook.pdf").length },
    });
    const doc = await invoke({
      method: "GET",
      path: "/v1/documents/handbook.pdf",
      headers: { authorization: `Bearer ${key}` },
    });
    expect(doc.body).toMatchObject({
      title: "Employee handbook",
      source: "handbook.pdf",
      metadata: { team: "hr" },
      importance: 8,
    });
    // A path within a folder (as the console sends it) is kept as the source.
    const sourced = await upload([
      { name: "file", value: fixture("handbook.pdf"), filename: "handbook.pdf" },
      { name: "id", value: "policies/handbook.pdf" },
      { name: "source", value: "policies/handbook.pdf" },
    ]);
    expect(sourced.status).toBe(200);
    const stored = await invoke({
      method: "GET",
      path: `/v1/documents/${encodeURIComponent("policies/handbook.pdf")}`,
      headers: { authorization: `Bearer ${key}` },
    });
    expect(stored.body).toMatchObject({ id: "policies/handbook.pdf", source: "policies/handbook.pdf" });
    const search = await invoke({
      method: "POST",
      path: "/v1/search",
      headers: { authorization: `Bearer ${key}` },
      body: { query: "meals reimbursed per day", topK: 1 },
    });
    expect((search.body as { results: { location: unknown }[] }).results[0]?.location).toMatchObject({
      pages: [expect.any(Number), expect.any(Number)],
      headings: ["Travel", "Expenses"],
    });
  });

  it("gives a one-page PDF's passages their page, as a longer PDF's", async () => {
    const res = await upload([{ name: "file", value: fixture("code-indent.pdf"), filename: "code-indent.pdf" }]);
    expect(res.body).toMatchObject({ file: { format: "pdf", pages: 1 } });
    const search = await invoke({
      method: "POST",
      path: "/v1/search",
      headers: { authorization: `Bearer ${key}` },
      body: { query: "print", topK: 3, filter: { documentIds: ["code-indent.pdf"] } },
    });
    const results = (search.body as { results: { location: { pages?: number[] } | null }[] }).results;
    expect(results.length).toBeGreaterThan(0);
    for (const result of results) expect(result.location?.pages).toEqual([1, 1]);
  });

  it("is idempotent: the same file again is unchanged and embeds nothing", async () => {
    const calls = embedder.calls;
    const res = await upload([
      { name: "file", value: fixture("handbook.pdf"), filename: "handbook.pdf" },
      { name: "metadata", value: '{"team":"hr"}' },
      { name: "importance", value: "8" },
    ]);
    expect(res.body).toMatchObject({ documents: [{ status: "unchanged" }], totals: { embedded: 0 } });
    expect(embedder.calls).toBe(calls);
  });

  it("reads a .docx and a web page, and judges a file by content, not by its name", async () => {
    const docx = await upload([
      { name: "file", value: fixture("handbook.docx"), filename: "handbook.pdf" },
      { name: "id", value: "handbook-word" },
    ]);
    expect(docx.body).toMatchObject({ documents: [{ id: "handbook-word" }], file: { format: "docx", pages: null } });
    const html = await upload([{ name: "file", value: fixture("page.html"), filename: "refunds" }]);
    expect(html.body).toMatchObject({ documents: [{ id: "refunds" }], file: { format: "html" } });
  });

  it("titles each file by its own title and gives its passages the file's heading path, in every format", async () => {
    for (const name of ["front-matter.docx", "front-matter.html", "front-matter.md"]) {
      const res = await upload([{ name: "file", value: fixture(name), filename: name }]);
      expect([name, res.status]).toEqual([name, 200]);
      const doc = await invoke({
        method: "GET",
        path: `/v1/documents/${name}`,
        headers: { authorization: `Bearer ${key}` },
      });
      expect([name, (doc.body as { title: string }).title]).toEqual([name, "Employee Handbook 2026"]);
      const search = await invoke({
        method: "POST",
        path: "/v1/search",
        headers: { authorization: `Bearer ${key}` },
        body: { query: "off-cycle payment for a correction", topK: 1, filter: { documentIds: [name] } },
      });
      const [hit] = (search.body as { results: { location: unknown }[] }).results;
      expect([name, hit?.location]).toEqual([name, { headings: ["Payroll", "Payroll Exceptions"] }]);
    }
    const untitled = await upload([
      {
        name: "file",
        value: "<html><body><h1>Opening hours</h1><p>Nine to five.</p></body></html>",
        filename: "hours.html",
      },
    ]);
    expect(untitled.status).toBe(200);
    const hours = await invoke({
      method: "GET",
      path: "/v1/documents/hours.html",
      headers: { authorization: `Bearer ${key}` },
    });
    expect((hours.body as { title: string }).title).toBe("Opening hours");
  });

  it("refuses scanned, encrypted, corrupt, bomb and unsupported files with their codes, storing nothing", async () => {
    const before = await documentCount();
    const cases: [string, number, string][] = [
      ["scanned.pdf", 422, "extract.no_text"],
      ["encrypted.pdf", 422, "extract.encrypted"],
      ["corrupt.pdf", 422, "extract.corrupt"],
      ["bomb.docx", 413, "extract.too_large"],
      ["bomb.pdf", 413, "extract.too_large"],
      ["bomb-aes256.pdf", 413, "extract.too_large"], // encrypted, opening without a password
      ["pages-50000.pdf", 413, "extract.too_many_pages"],
    ];
    for (const [name, status, code] of cases) {
      const res = await upload([{ name: "file", value: fixture(name), filename: name }]);
      expect([name, res.status, (res.body as { error: { code: string } }).error.code]).toEqual([name, status, code]);
    }
    // A .docx cut short (`head -c 6000`) is damaged, whatever its name, not an unsupported ZIP.
    for (const filename of ["handbook.docx", "upload"]) {
      const cut = await upload([{ name: "file", value: fixture("front-matter.docx").subarray(0, 6000), filename }]);
      expect([cut.status, (cut.body as { error: { code: string } }).error.code]).toEqual([422, "extract.corrupt"]);
    }
    const png = await upload([
      { name: "file", value: new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2]), filename: "a.pdf" },
    ]);
    expect([png.status, (png.body as { error: { code: string } }).error.code]).toEqual([
      415,
      "extract.unsupported_type",
    ]);
    expect(await documentCount()).toBe(before);
  });

  it("answers 400 for a form without a file, bad fields or JSON, and 413 past 4 MB", async () => {
    const noFile = await upload([{ name: "title", value: "x" }]);
    expect([noFile.status, (noFile.body as { error: { code: string } }).error.code]).toEqual([400, "upload.no_file"]);
    const badMeta = await upload([
      { name: "file", value: "# A\n\ntext", filename: "a.md" },
      { name: "metadata", value: "[1,2]" },
    ]);
    expect(badMeta.status).toBe(400);
    const json = await invoke({
      method: "POST",
      path: "/v1/documents/upload",
      headers: { authorization: `Bearer ${key}` },
      body: { content: "x" },
    });
    expect([json.status, (json.body as { error: { code: string } }).error.code]).toEqual([400, "upload.not_multipart"]);
    const big = await upload([
      { name: "file", value: new Uint8Array(4 * 1024 * 1024 + 100 * 1024).fill(65), filename: "big.txt" },
    ]);
    expect([big.status, (big.body as { error: { code: string } }).error.code]).toEqual([413, "upload.too_large"]);
  });

  it("refuses a form it would misread, saying what is wrong, and stores nothing", async () => {
    const error = (res: { status: number; body: unknown }) => {
      const { code, message } = (res.body as { error: { code: string; message: string } }).error;
      return [res.status, code, message];
    };
    const before = await documentCount();
    const md = { name: "file", value: "# A\n\ntext", filename: "a.md" };
    expect(error(await upload([md, { name: "ttl", value: "60" }]))).toEqual([
      400,
      "request.invalid",
      expect.stringMatching(/^Unknown form field ttl; the fields are file, id, .*ttlSeconds\.$/),
    ]);
    expect(error(await upload([md, { ...md, filename: "b.md" }]))).toEqual([
      400,
      "upload.too_many_files",
      expect.stringContaining("one file per upload"),
    ]);
    expect(error(await upload([md, { name: "metadata", value: "notjson" }]))).toEqual([
      400,
      "request.invalid",
      'metadata must be a JSON object, e.g. {"team":"hr"}.',
    ]);
    // The code /v1/ingest, PATCH, /api/ingest and MCP answer for the same metadata.
    const bulky = JSON.stringify({ notes: "n".repeat(9_000) });
    expect(error(await upload([md, { name: "metadata", value: bulky }]))).toEqual([
      400,
      "document.metadata_too_large",
      expect.stringContaining("the limit is 8192"),
    ]);
    expect(error(await upload([md, { name: "ttlSeconds", value: "1.5" }]))).toEqual([
      400,
      "request.invalid",
      "ttlSeconds must be a whole number from 1 to 315,360,000.",
    ]);
    // What Number() would read but is no decimal number as written.
    for (const value of ["0x5", "1e1", " 5"]) {
      expect(error(await upload([md, { name: "importance", value }]))).toEqual([
        400,
        "request.invalid",
        "importance must be a whole number from 1 to 10.",
      ]);
    }
    expect(error(await upload([{ ...md, filename: `${"n".repeat(300)}.md` }]))).toEqual([
      400,
      "request.invalid",
      expect.stringMatching(/^The file's name becomes its id, and cannot: .*Send an `id` field\.$/),
    ]);
    // A file sent as the body itself, not in a form: the upload's own code, not a JSON error.
    const pdf = await invoke({
      method: "POST",
      path: "/v1/documents/upload",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/pdf" },
      binaryBody: fixture("handbook.pdf"),
    });
    expect(error(pdf).slice(0, 2)).toEqual([400, "upload.not_multipart"]);
    expect(await documentCount()).toBe(before);
  });

  it("refuses a form field given twice, naming it, rather than keep its first value and drop the other", async () => {
    const before = await documentCount();
    const md = { name: "file", value: "# A\n\ntext", filename: "a.md" };
    const twice: [string, string, string][] = [
      ["title", "Refunds", "Returns"],
      ["id", "refunds", "returns"],
      ["importance", "3", "9"],
      ["metadata", '{"team":"hr"}', '{"team":"ops"}'],
      // An empty value counts: it is a value sent, not a field left out.
      ["source", "policies/refunds.md", ""],
    ];
    for (const [name, first, second] of twice) {
      const res = await upload([md, { name, value: first }, { name, value: second }]);
      expect([name, res.status, res.body]).toEqual([
        name,
        400,
        {
          error: {
            code: "request.invalid",
            message: `${name} is given more than once; send each form field once.`,
            details: [{ path: name, message: `${name} is given more than once` }],
          },
        },
      ]);
    }
    const both = await upload([
      md,
      { name: "title", value: "A" },
      { name: "source", value: "a" },
      { name: "title", value: "B" },
      { name: "source", value: "b" },
    ]);
    expect([both.status, (both.body as { error: { message: string } }).error.message]).toEqual([
      400,
      "title and source are given more than once; send each form field once.",
    ]);
    // A second `file` part is a second file, even as text: one file per upload, never the first kept.
    for (const extra of [
      { ...md, filename: "b.md" },
      { name: "file", value: "more text" },
    ]) {
      for (const parts of [
        [md, extra],
        [extra, md],
      ]) {
        const res = await upload(parts);
        expect([res.status, (res.body as { error: { code: string } }).error.code]).toEqual([
          400,
          "upload.too_many_files",
        ]);
      }
    }
    expect(await documentCount()).toBe(before);
  });

  it("sets an expiry from ttlSeconds, as /v1/ingest does", async () => {
    const res = await upload([
      { name: "file", value: "# Short-lived\n\nA note that expires.", filename: "ttl.md" },
      { name: "ttlSeconds", value: "3600" },
    ]);
    expect(res.status).toBe(200);
    const doc = await invoke({
      method: "GET",
      path: "/v1/documents/ttl.md",
      headers: { authorization: `Bearer ${key}` },
    });
    const expiresAt = Date.parse((doc.body as { expiresAt: string }).expiresAt);
    expect(Math.abs(expiresAt - (Date.now() + 3_600_000))).toBeLessThan(60_000);
  });
});
