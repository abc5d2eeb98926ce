/**
 * core/extract/pdf-streams.ts: a PDF's streams decoded under one bound before pdf.js opens the file. Each bomb here is
 * a valid PDF that pdf.js alone decodes to hundreds of megabytes (bomb.pdf's stream took it 13 s and 1.7 GB); each is
 * refused in well under the 2 s allowed, and the fixtures' text is what pdf.js read from them before.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { getDocumentProxy } from "unpdf";
import { describe, expect, it } from "vitest";
import type { EngramError } from "../../core/error";
import { extract } from "../../core/extract";
import { checkStreams } from "../../core/extract/pdf-streams";
import { refusal } from "../../kit/errors";

const FIXTURES = join(__dirname, "../fixtures/extract");
const fixture = (name: string) => new Uint8Array(readFileSync(join(FIXTURES, name)));

/** bomb.pdf's second content stream: zlib data that inflates to 512 MB of spaces (0.5 MB of it). */
const BOMB = (() => {
  const file = Buffer.from(fixture("bomb.pdf"));
  const start = file.indexOf("stream\n", file.indexOf("5 0 obj")) + "stream\n".length;
  return file.subarray(start, file.indexOf("\nendstream", start));
})();

type PdfObject = string | { dict: string; data: Uint8Array };

/**
 * A one-page PDF: objects 1-3 the catalog, page tree and page (its /Contents `contents`, its resources Helvetica and
 * `resources`), 4 Helvetica, 5 a content stream setting "A page of text", then `objects` from 6 on (a stream's
 * /Length is added); `trailer` is added to its trailer.
 */
function pdf(contents: string, objects: PdfObject[] = [], resources = "", trailer = ""): Uint8Array {
  const all: PdfObject[] = [
    "<< /Type /Catalog /Pages 2 0 R >>",
    "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> ${resources} >> /Contents ${contents} >>`,
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    { dict: "/Filter /FlateDecode", data: deflateSync("BT /F1 18 Tf 72 720 Td (A page of text) Tj ET") },
    ...objects,
  ];
  const parts = [Buffer.from("%PDF-1.7\n")];
  let offset = parts[0]?.length ?? 0;
  const offsets = all.map((object, i) => {
    const body =
      typeof object === "string"
        ? Buffer.from(object)
        : Buffer.concat([
            Buffer.from(`<< ${object.dict} /Length ${object.data.length} >>\nstream\n`),
            object.data,
            Buffer.from("\nendstream"),
          ]);
    const whole = Buffer.concat([Buffer.from(`${i + 1} 0 obj\n`), body, Buffer.from("\nendobj\n")]);
    parts.push(whole);
    offset += whole.length;
    return offset - whole.length;
  });
  const xref = offsets.map((at) => `${String(at).padStart(10, "0")} 00000 n \n`).join("");
  parts.push(
    Buffer.from(
      `xref\n0 ${all.length + 1}\n0000000000 65535 f \n${xref}trailer\n<< /Size ${all.length + 1} /Root 1 0 R ${trailer}>>\nstartxref\n${offset}\n%%EOF\n`,
    ),
  );
  return new Uint8Array(Buffer.concat(parts));
}

/**
 * LZW codes (EarlyChange 1) that make strings of 2, 3, 4… bytes until the table is full, then `more` of its longest
 * (3,839 bytes for a 12-bit code): 35 KB for 84 MB.
 */
function lzwBomb(more: number): Uint8Array {
  const bits: number[] = [];
  const put = (code: number, width: number) => {
    for (let i = width - 1; i >= 0; i--) bits.push((code >> i) & 1);
  };
  put(0, 9);
  let [next, width] = [258, 9];
  for (let n = 0; n < 4096 - 258 + more; n++) {
    put(Math.min(next, 4095), width);
    next++;
    if (!((next + 1) & next)) width = Math.min(Math.log2(next + 1) + 1, 12);
  }
  const bytes = new Uint8Array(Math.ceil(bits.length / 8));
  bits.forEach((bit, i) => {
    bytes[i >> 3] = (bytes[i >> 3] as number) | (bit << (7 - (i & 7)));
  });
  return bytes;
}

/** What `work` settled to, and in how many milliseconds. */
async function timed<T>(work: Promise<T>): Promise<{ ms: number; result: T | EngramError }> {
  const started = performance.now();
  const result = await work.catch((error: EngramError) => error);
  return { ms: performance.now() - started, result };
}

const MB = 1024 * 1024;

describe("a PDF's streams, decoded under one bound before pdf.js opens the file", () => {
  it("refuses a bomb wherever it sits and however its filters are written", async () => {
    const cases: [string, PdfObject][] = [
      ["an object stream", { dict: "/Type /ObjStm /N 1 /First 4 /Filter /FlateDecode", data: BOMB }],
      ["two Flate filters (1 GB in 3 KB)", { dict: "/Filter [/FlateDecode /FlateDecode]", data: deflateSync(BOMB) }],
      [
        "ASCIIHex, then Flate, by abbreviations",
        { dict: "/Filter [/AHx /Fl]", data: Buffer.from(`${BOMB.toString("hex")}>`) },
      ],
      ["a #-escaped name", { dict: "/Filter /Fl#61teDecode", data: BOMB }],
      ["/F for /Filter, as pdf.js reads it", { dict: "/F /FlateDecode", data: BOMB }],
      ["LZW", { dict: "/Filter /LZWDecode", data: lzwBomb(20_000) }],
      // A predictor makes a row of /Columns bytes from however little input: 128 MB from one byte.
      [
        "a predictor 2^28 columns wide",
        {
          dict: "/Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 134217728 >>",
          data: deflateSync(Buffer.from([0, 32])),
        },
      ],
      // An empty stored block (its NLEN 0, not 0xFFFF) ends zlib's reading, not pdf.js's.
      [
        "a block zlib refuses first",
        {
          dict: "/Filter /FlateDecode",
          data: Buffer.concat([Buffer.from([0x78, 0x9c, 0, 0, 0, 0, 0]), BOMB.subarray(2, -4)]),
        },
      ],
    ];
    for (const [what, object] of cases) {
      const { ms, result } = await timed(extract(pdf("[5 0 R 6 0 R]", [object])));
      expect([what, (result as EngramError).code]).toEqual([what, "extract.too_large"]);
      expect(ms).toBeLessThan(2_000);
    }
    // Its object header written `6 0obj`, which pdf.js reads as `6 0 obj`: its dictionary is read all the same.
    for (const [what, object] of cases.filter(([what]) => what === "LZW" || what.startsWith("a predictor"))) {
      const { result } = await timed(extract(edited(pdf("[5 0 R 6 0 R]", [object]), "6 0 obj", "6  0obj")));
      expect([what, (result as EngramError).code]).toEqual([what, "extract.too_large"]);
    }
    // The filter named by an object: followed; named by one the file does not hold, the stream cannot be checked.
    const named = await timed(extract(pdf("[5 0 R 6 0 R]", [{ dict: "/Filter 7 0 R", data: BOMB }, "/FlateDecode"])));
    expect((named.result as EngramError).code).toBe("extract.too_large");
    const missing = await refusal(extract(pdf("[5 0 R 6 0 R]", [{ dict: "/Filter 9 0 R", data: BOMB }])));
    expect([missing.status, missing.code]).toEqual([422, "extract.corrupt"]);
  });

  it("counts every stream's output towards one bound: three 1 MB streams pass a 4 MB bound, five do not", async () => {
    const spaces = { dict: "/Filter /FlateDecode", data: deflateSync(Buffer.alloc(MB, 32)) };
    const limits = { maxPdfDecodedBytes: 4 * MB };
    const three = await extract(pdf("[5 0 R 6 0 R 7 0 R 8 0 R]", Array(3).fill(spaces)), { limits });
    expect(three.content).toBe("A page of text");
    const five = await refusal(
      extract(pdf("[5 0 R 6 0 R 7 0 R 8 0 R 9 0 R 10 0 R]", Array(5).fill(spaces)), { limits }),
    );
    expect([five.status, five.code, five.details]).toEqual([413, "extract.too_large", { limitBytes: 4 * MB }]);
  });

  it("leaves images out of the count, and blanks them for pdf.js: one named as the page's contents reads as nothing", async () => {
    const image = "/Type /XObject /Subtype /Image /Width 1 /Height 1 /ColorSpace /DeviceGray /BitsPerComponent 8";
    const { ms, result } = await timed(
      extract(pdf("[5 0 R 6 0 R]", [{ dict: `${image} /Filter /FlateDecode`, data: BOMB }])),
    );
    expect(ms).toBeLessThan(2_000);
    expect((result as { content: string }).content).toBe("A page of text");
    // An image drawn on the page (4 MB of pixels) counts for nothing against a bound of 1 MB.
    const photo = image.replace("/Width 1 /Height 1", "/Width 2048 /Height 2048");
    const drawn = pdf(
      "[5 0 R 7 0 R]",
      [
        { dict: `${photo} /Filter /FlateDecode`, data: deflateSync(Buffer.alloc(4 * MB)) },
        { dict: "/Filter /FlateDecode", data: deflateSync("q 100 0 0 100 72 72 cm /Im1 Do Q") },
      ],
      "/XObject << /Im1 6 0 R >>",
    );
    expect((await extract(drawn, { limits: { maxPdfDecodedBytes: MB } })).content).toBe("A page of text");
  });

  it("gives pdf.js the same text from every PDF fixture as from the file itself", async () => {
    const names = readdirSync(FIXTURES).filter((name) => name.endsWith(".pdf") && !name.startsWith("bomb"));
    expect(names.length).toBeGreaterThan(10);
    const text = async (bytes: Uint8Array) => {
      const doc = await getDocumentProxy(bytes);
      const pages: string[] = [];
      for (let n = 1; n <= Math.min(doc.numPages, 20); n++) {
        const content = await (await doc.getPage(n)).getTextContent();
        pages.push(content.items.map((item) => ("str" in item ? item.str : "")).join("|"));
      }
      return { pages: doc.numPages, text: pages };
    };
    for (const name of names) {
      const bytes = fixture(name);
      const before = await text(new Uint8Array(bytes)).catch((error: Error) => error.name);
      const { copy, decoded } = await checkStreams(bytes, 64 * MB, () => new Error("over"));
      expect([name, await text(copy).catch((error: Error) => error.name)]).toEqual([name, before]);
      expect(decoded).toBeLessThan(16 * MB);
    }
  });
});

/** `file` with `from` replaced by `to`, which is as long, so the file's offsets stay right. */
function edited(file: Uint8Array, from: string, to: string | Buffer): Uint8Array {
  const bytes = Buffer.from(file);
  const at = bytes.indexOf(from, 0, "latin1");
  const replacement = typeof to === "string" ? Buffer.from(to, "latin1") : to;
  expect([at >= 0, replacement.length]).toEqual([true, from.length]);
  replacement.copy(bytes, at);
  return new Uint8Array(bytes);
}

/** `file` with its last `startxref` pointing past its end, so pdf.js rebuilds its cross-reference table. */
function unreferenced(file: Uint8Array): Uint8Array {
  const text = Buffer.from(file).toString("latin1");
  const [found = "", digits = ""] = /startxref\n(\d+)/.exec(text.slice(text.lastIndexOf("startxref"))) ?? [];
  return edited(file, found, `startxref\n${"9".repeat(digits.length)}`);
}

/** Each page's text as pdf.js reads it (from a copy: pdf.js takes the buffer it is given). */
async function pageTexts(bytes: Uint8Array): Promise<string[]> {
  const doc = await getDocumentProxy(new Uint8Array(bytes));
  const pages: string[] = [];
  for (let n = 1; n <= doc.numPages; n++) {
    const content = await (await doc.getPage(n)).getTextContent();
    pages.push(content.items.map((item) => ("str" in item ? item.str : "")).join(""));
  }
  await doc.destroy();
  return pages;
}

const decoded = async (bytes: Uint8Array) => (await checkStreams(bytes, 64 * MB, () => new Error("over"))).decoded;

describe("a PDF encrypted with an empty user password: its streams decrypted as pdf.js decrypts them", () => {
  it("decodes the encrypted handbooks' streams to what handbook.pdf's decode to, or more with object streams", async () => {
    const plain = await decoded(fixture("handbook.pdf"));
    expect(await decoded(fixture("handbook-aes256.pdf"))).toBe(plain);
    // qpdf moved 25 of its objects into an object stream and wrote a cross-reference stream: decoded as well.
    expect(await decoded(fixture("handbook-rc4.pdf"))).toBeGreaterThan(plain);
  });

  it("reads /O as pdf.js does: a literal string's raw CR is a CR, where the specification's \\n makes another key", async () => {
    const file = fixture("bomb-rc4-128.pdf");
    const hex = /\/O <([0-9a-f]{64})>/.exec(Buffer.from(file).toString("latin1"))?.[1] as string;
    const owner = Buffer.from(hex, "hex"); // qpdf's, from the owner password "owner33"
    expect([owner.includes(13), owner.includes(10)]).toEqual([true, true]);
    const literal = (bytes: Buffer) => {
      const escaped = Array.from(bytes, (byte) => ([40, 41, 92].includes(byte) ? [92, byte] : [byte])).flat();
      return Buffer.from(`(${Buffer.from(escaped).toString("latin1")})`.padEnd(hex.length + 2), "latin1");
    };
    const written = edited(file, `<${hex}>`, literal(owner));
    await (await getDocumentProxy(new Uint8Array(written))).destroy(); // its key opens it: pdf.js reads the CR as is
    expect((await refusal(extract(written))).code).toBe("extract.too_large");
    const normalised = edited(file, `<${hex}>`, literal(Buffer.from(owner.map((byte) => (byte === 13 ? 10 : byte)))));
    await expect(getDocumentProxy(new Uint8Array(normalised))).rejects.toMatchObject({ name: "PasswordException" });
  });

  it("decrypts an object for each number pdf.js may read its header as: an offset inside `15 0 obj` reads `5 0 obj`", async () => {
    // The line end before a header becomes a digit; the table's offset, which points past it, reads as before.
    const bomb = edited(fixture("bomb-rc4-128.pdf"), "endobj\n5 0 obj", "endobj15 0 obj");
    expect((await refusal(extract(bomb))).code).toBe("extract.too_large");
    const handbook = edited(fixture("handbook-rc4.pdf"), "endobj\n28 0 obj", "endobj128 0 obj");
    expect(await pageTexts(handbook)).toEqual(await pageTexts(fixture("handbook.pdf")));
    expect(await decoded(handbook)).toBe(await decoded(fixture("handbook-rc4.pdf")));
  });

  it("decrypts a stream whose object header is written `5 0obj`, which pdf.js reads as `5 0 obj`", async () => {
    const bomb = edited(fixture("bomb-aes256.pdf"), "\n5 0 obj", "\n5  0obj");
    expect((await refusal(extract(bomb))).code).toBe("extract.too_large");
  });

  it("finds the key in the trailers pdf.js rebuilds the table from when the last startxref points at none", async () => {
    // handbook-rc4.pdf has no `trailer` keyword: its /Encrypt is named by its cross-reference stream alone.
    const handbook = unreferenced(fixture("handbook-rc4.pdf"));
    expect(await pageTexts(handbook)).toEqual(await pageTexts(fixture("handbook.pdf")));
    expect(await decoded(handbook)).toBeGreaterThan(await decoded(fixture("handbook.pdf")));
    expect((await refusal(extract(unreferenced(fixture("bomb-aes256.pdf"))))).code).toBe("extract.too_large");
  });

  it("reads a file whose trailer's /Encrypt is no dictionary as pdf.js does, not encrypted: damage is charged", async () => {
    const damaged = Buffer.concat([Buffer.from([0x78, 0x9c, 0, 0, 0, 0, 0]), BOMB.subarray(2, -4)]);
    const file = pdf("[5 0 R 6 0 R]", [{ dict: "/Filter /FlateDecode", data: damaged }], "", "/Encrypt null ");
    expect((await refusal(extract(file))).code).toBe("extract.too_large");
  });
});
