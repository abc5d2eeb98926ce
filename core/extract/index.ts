/**
 * Files into text for ingest: PDF (unpdf), Word .docx (mammoth), web pages (their main element, on linkedom), Markdown,
 * plain text, CSV and JSON, judged by content (core/extract/sniff.ts), with bounds on bytes, pages, expansion and
 * text (core/extract/limits.ts). Runs where ingest runs: the CLI, the console's server and the ingest Lambda's
 * upload route; never in the search or chat bundles. Choices and measurements: docs/extract.md.
 */
import { characters } from "../document/schema";
import { EngramError } from "../error";
import { extractAsciidoc } from "./asciidoc";
import { extractDocx } from "./docx";
import { extractHtml } from "./html";
import { DEFAULT_LIMITS, type Limits } from "./limits";
import { extractMarkdown, tidy } from "./markdown";
import { extractPdf } from "./pdf";
import { decodeText, type Format, sniff } from "./sniff";

export { DEFAULT_LIMITS, type Limits } from "./limits";
export { PAGE_BREAK } from "./pdf";
export { EXTENSIONS, type Format, sniff } from "./sniff";

export interface Extracted {
  format: Format;
  /** Markdown-ish text: `#` headings where the source had them; PDF pages separated by a form feed line. */
  content: string;
  /**
   * The document's own title, when it has one: a PDF's metadata, a .docx's properties or Title paragraph, a page's
   * `<title>`, Markdown front matter's `title:`; else its first `#` heading.
   */
  title?: string;
  /** A PDF's page count. */
  pages?: number;
}

/**
 * Extracts a file's text, or throws an `EngramError`: `extract.unsupported_type` (415), `extract.encrypted`,
 * `extract.corrupt`, `extract.no_text`, `extract.empty` (422), `extract.too_large`, `extract.too_many_pages`,
 * `extract.too_much_text` (413).
 */
export async function extract(
  bytes: Uint8Array,
  options: { name?: string; limits?: Partial<Limits> } = {},
): Promise<Extracted> {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  if (bytes.length > limits.maxBytes) {
    throw new EngramError(
      "too_large",
      "extract.too_large",
      `The file is ${(bytes.length / 1048576).toFixed(1)} MB; the limit is ${(limits.maxBytes / 1048576).toFixed(0)} MB.`,
      { details: { bytes: bytes.length, limitBytes: limits.maxBytes } },
    );
  }
  const text = bytes.length && bytes[0] !== 0x25 && bytes[0] !== 0x50 ? decodeText(bytes) : undefined;
  const kind = sniff(bytes, options.name, text);
  if (kind.format === "unsupported") {
    const code = kind.reason === "empty file" ? "extract.empty" : "extract.unsupported_type";
    throw new EngramError(
      code === "extract.empty" ? "unprocessable" : "unsupported_media_type",
      code,
      code === "extract.empty" ? "The file is empty: it holds no text to store." : `Unsupported: ${kind.reason}.`,
    );
  }
  let out: Extracted;
  if (kind.format === "pdf") out = { format: "pdf", ...(await extractPdf(bytes, limits)) };
  else if (kind.format === "docx") out = { format: "docx", ...(await extractDocx(bytes, limits)) };
  else {
    const decoded = text ?? decodeText(bytes) ?? "";
    if (kind.format === "html") out = { format: "html", ...extractHtml(decoded) };
    else if (kind.format === "markdown") out = { format: "markdown", ...extractMarkdown(decoded) };
    else if (kind.format === "asciidoc") out = { format: "asciidoc", ...(await extractAsciidoc(decoded)) };
    else out = { format: kind.format, content: decoded };
  }
  out.content = tidy(out.content);
  // A Sphinx page saved as .docx or PDF keeps the permalink mark on every heading ("Loops¶"), which then heads
  // each passage's location: dropped, as a web page's is.
  if (out.format === "pdf" || out.format === "docx") out.content = out.content.replace(/^(#{1,6} .*?)\s*¶$/gm, "$1");
  if (!/\p{L}|\p{N}/u.test(out.content)) {
    throw new EngramError("unprocessable", "extract.empty", "The file holds no text.");
  }
  // Code points, as a document's content limit counts them: an emoji is one character.
  const chars = characters(out.content);
  if (chars > limits.maxChars) {
    throw new EngramError(
      "too_large",
      "extract.too_much_text",
      `The file holds ${chars.toLocaleString("en")} characters of text; a document holds at most ${limits.maxChars.toLocaleString("en")}.`,
      { details: { chars, limit: limits.maxChars } },
    );
  }
  if (out.title === undefined) delete out.title;
  return out;
}
