/**
 * Word (.docx) to Markdown-ish text: mammoth turns the document's styles into HTML (Heading 1 to h1, lists,
 * tables), and `htmlToText` turns that into text with `#` headings, so chunks get their heading path. The
 * archive's XML parts are inflated under a bound first: a ZIP bomb is refused before mammoth reads it.
 */
import { inflateRawSync } from "node:zlib";
import { DOMParser } from "linkedom";
import mammoth from "mammoth";
import { decodeEntities, htmlToText } from "../chunk/html";
import { EngramError } from "../error";
import type { Limits } from "./limits";
import { firstHeading } from "./markdown";
import { zipEntries } from "./sniff";

const corrupt = (cause?: unknown, part = "archive") =>
  new EngramError("unprocessable", "extract.corrupt", `The Word document cannot be read (damaged ${part}).`, { cause });

interface Part {
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  /** The part's bytes as stored in the archive. */
  data: Uint8Array;
}

/** The archive's parts named `wanted`, from its central directory; throws `extract.corrupt` at a damaged record. */
function* parts(bytes: Uint8Array, wanted: (name: string) => boolean): Generator<Part> {
  const entries = zipEntries(bytes);
  if (!entries) throw corrupt();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const { name, method, compressed, local } of entries) {
    if (!wanted(name)) continue;
    if (local + 30 > bytes.length || view.getUint32(local, true) !== 0x04034b50) throw corrupt();
    const dataStart = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    yield { name, method, data: bytes.subarray(dataStart, dataStart + compressed) };
  }
}

/** A part's bytes, at most `max` of them (Node's `maxOutputLength` throws past it, `ERR_BUFFER_TOO_LARGE`). */
function inflate(part: Part, max: number): Uint8Array {
  if (part.method === 0) return part.data;
  if (part.method !== 8) throw corrupt();
  return inflateRawSync(part.data, { maxOutputLength: Math.max(1, max) });
}

/**
 * Relationship types whose targets mammoth never reads: images (convertImage below does not read them), fonts,
 * embedded objects and media. A part named only by these is not counted (a 34 MB embedded font is no bomb).
 */
const UNREAD_TYPE = /\/(image|font|obfuscatedFont|oleObject|package|video|audio|media|hdphoto)$/;

/**
 * The parts mammoth may read: the relationship files, `[Content_Types].xml`, `word/document.xml` (its fallback) and
 * every part a relationship names with a type it reads (`_rels/.rels` may name any part as the main document), read
 * with an XML parser as mammoth reads them. `spend` counts each relationship file's inflated bytes; undefined (count
 * every part) when one cannot be read as XML.
 */
function partsRead(bytes: Uint8Array, spend: (part: Part) => Uint8Array): Set<string> | undefined {
  const read = new Set(["[Content_Types].xml", "word/document.xml"]);
  for (const part of parts(bytes, (name) => /\.rels$/i.test(name))) {
    read.add(part.name);
    let relationships: Element[];
    try {
      const xml = new TextDecoder().decode(spend(part));
      relationships = Array.from(
        new DOMParser().parseFromString(xml, "text/xml").getElementsByTagName("Relationship"),
      ) as Element[];
    } catch (error) {
      if (error instanceof EngramError) throw error;
      return undefined;
    }
    // `word/_rels/document.xml.rels` names parts relative to `word/`; `_rels/.rels` relative to the root.
    const base = part.name.replace(/(^|\/)_rels\/[^/]*$/, "$1");
    for (const relationship of relationships) {
      const target = relationship.getAttribute("Target");
      if (!target || relationship.getAttribute("TargetMode") === "External") continue;
      if (!UNREAD_TYPE.test(relationship.getAttribute("Type") ?? "")) read.add(resolvePart(base, target));
    }
  }
  return read;
}

/** A relationship's target as an archive path: relative to `base` unless it starts with "/", "." and ".." resolved. */
function resolvePart(base: string, target: string): string {
  const out: string[] = [];
  for (const segment of `${target.startsWith("/") ? "" : base}${target}`.split("/")) {
    if (segment === "..") out.pop();
    else if (segment && segment !== ".") out.push(segment);
  }
  return out.join("/");
}

/**
 * Inflates every part of the archive that mammoth may read (partsRead) with a running bound on the total, so declared
 * sizes need not be trusted. Throws `extract.too_large` past `limits.maxExpandedBytes`. Counting only the parts named
 * `.xml` let a main document named otherwise expand to 400 MB.
 */
export function checkExpansion(bytes: Uint8Array, limits: Limits): number {
  let total = 0;
  const tooLarge = () =>
    new EngramError(
      "too_large",
      "extract.too_large",
      `The Word document expands past ${limits.maxExpandedBytes / 1024 / 1024} MB (a ZIP bomb, or split it).`,
      { details: { limitBytes: limits.maxExpandedBytes } },
    );
  const spend = (part: Part): Uint8Array => {
    let inflated: Uint8Array;
    try {
      inflated = inflate(part, limits.maxExpandedBytes - total);
    } catch (error) {
      if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE" || error instanceof RangeError) throw tooLarge();
      if (error instanceof EngramError) throw error;
      throw corrupt(error);
    }
    total += inflated.length;
    if (total > limits.maxExpandedBytes) throw tooLarge();
    return inflated;
  };
  const read = partsRead(bytes, spend);
  const counted = read
    ? (name: string) => read.has(name) && !/\.rels$/i.test(name)
    : (name: string) => !/\.rels$/i.test(name) && !name.endsWith("/");
  for (const part of parts(bytes, counted)) spend(part);
  return total;
}

/** The title in the document's properties (`dc:title` in docProps/core.xml, Word's File > Info), which mammoth skips. */
function propertyTitle(bytes: Uint8Array, limits: Limits): string | undefined {
  for (const part of parts(bytes, (name) => name === "docProps/core.xml")) {
    const xml = new TextDecoder().decode(inflate(part, limits.maxExpandedBytes));
    const title = /<dc:title(?:\s[^>]*)?>([^<]*)<\/dc:title>/.exec(xml)?.[1];
    return title === undefined ? undefined : decodeEntities(title).replace(/\s+/g, " ").trim() || undefined;
  }
  return undefined;
}

/** Paragraph styles that hold code: Pandoc's, and Word's own preformatted ones. */
const CODE_STYLES = ["Source Code", "HTML Preformatted", "Plain Text", "Macro Text", "Code"];

/** What mammoth's document tree holds (its own types are not published). */
interface DocxElement {
  type: string;
  styleName?: string | null;
  value?: string;
  children?: DocxElement[];
  /** A paragraph of a numbered or bulleted list. */
  numbering?: unknown;
  /** A note reference's note. */
  noteType?: string;
  noteId?: string;
  /** A note's paragraphs. */
  body?: DocxElement[];
  /** The document's notes (mammoth's `Notes`). */
  notes?: { resolve(reference: DocxElement): DocxElement | null };
}

/**
 * Each footnote's (and endnote's) text placed right after the top-level block that cites it, as "2. Its text.", and
 * its mark made a plain word (" 2"): mammoth writes every note after the last section, so a citation of one named the
 * last heading, and writes the mark "[2]", which read as citation 2 in a chat answer. A block is a paragraph, a table,
 * or a whole list (a paragraph inside one would restart its numbering). Numbered in order of use, as mammoth does.
 */
function placeNotes(document: DocxElement): void {
  let number = 0;
  const blocks = document.children ?? [];
  const placed: DocxElement[] = [];
  let waiting: DocxElement[] = [];
  const marks = (element: DocxElement): void => {
    const children = element.children ?? [];
    for (let i = 0; i < children.length; i++) {
      const child = children[i] as DocxElement;
      if (child.type !== "noteReference") {
        marks(child);
        continue;
      }
      number++;
      children[i] = { type: "text", value: ` ${number}` };
      const note = document.notes?.resolve(child);
      const [first, ...rest] = note?.body ?? [];
      if (first)
        waiting.push(
          { ...first, children: [{ type: "text", value: `${number}. ` }, ...(first.children ?? [])] },
          ...rest,
        );
    }
  };
  for (const [i, block] of blocks.entries()) {
    marks(block);
    placed.push(block);
    // A list's paragraphs stay together: its notes follow its last one.
    if (block.numbering && blocks[i + 1]?.numbering) continue;
    placed.push(...waiting);
    waiting = [];
  }
  document.children = placed;
}

const textOf = (element: DocxElement): string =>
  element.type === "text"
    ? (element.value ?? "")
    : element.type === "tab" || element.type === "break"
      ? " "
      : (element.children ?? []).map(textOf).join("");

/** The first non-empty paragraph styled Title (mammoth's default style map makes it a plain paragraph). */
function titleParagraph(element: DocxElement): string | undefined {
  if (element.type === "paragraph" && element.styleName?.toLowerCase() === "title") {
    const text = textOf(element).replace(/\s+/g, " ").trim();
    if (text) return text;
  }
  for (const child of element.children ?? []) {
    const title = titleParagraph(child);
    if (title) return title;
  }
  return undefined;
}

/**
 * A .docx file's text, headings as `#` lines, and its title: the document property, else the first paragraph
 * styled Title, else the first heading.
 */
export async function extractDocx(bytes: Uint8Array, limits: Limits): Promise<{ content: string; title?: string }> {
  checkExpansion(bytes, limits);
  let styled: string | undefined;
  const result = await mammoth
    .convertToHtml(
      { buffer: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) },
      {
        // Images become nothing: they are never decoded, and the text has no use for them.
        convertImage: mammoth.images.imgElement(async () => ({ src: "" })),
        externalFileAccess: false,
        // Code set in Word's and Pandoc's code paragraph styles stays code (a fence in the text), as in a web page.
        styleMap: CODE_STYLES.map((style) => `p[style-name='${style}'] => pre:separator('\\n')`),
        transformDocument: (document: DocxElement) => {
          styled = titleParagraph(document);
          placeNotes(document);
          return document;
        },
      },
    )
    .catch((error: unknown) => {
      // The archive was read above: what mammoth cannot read is the document inside it.
      throw corrupt(error, "document XML");
    });
  const content = htmlToText(result.value);
  return { content, title: propertyTitle(bytes, limits) ?? styled ?? firstHeading(content) };
}
