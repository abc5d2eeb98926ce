/**
 * What a file is, judged by its bytes (magic numbers, then whether it is text), with the file name's extension
 * consulted only to tell text formats apart: a `.pdf` holding Markdown is Markdown, a `.txt` holding a PDF is
 * a PDF.
 */
import { isWebPage } from "../chunk/html";

export type Format = "pdf" | "docx" | "html" | "markdown" | "asciidoc" | "text" | "csv" | "json" | "jsonl";

export type Sniffed = { format: Format } | { format: "unsupported"; reason: string };

/** An AsciiDoc document title on the first line that is not blank or a comment: `= Git User Manual`. */
// Blank lines are `[ \t]*\n`: `\s*\n` could split a run of them in 2^n ways before failing (30 blank lines took 35 s).
const ASCIIDOC_TITLE = /^(?:[ \t]*\n|\/\/[^\n]*\n)*= \S[^\n]*\n/;
/** The two-line form Git's manual pages use (`git-log(1)` over `==========`), as Markdown's setext heading also is. */
const UNDERLINED_TITLE = /^(?:[ \t]*\n|\/\/[^\n]*\n)*[ \t]*(\S[^\n]*)\n(=+)[ \t]*\n/;
/**
 * What only AsciiDoc writes, to tell such a file from Markdown or reStructuredText underlined alike: a block style
 * (`[verse]`, `[source,shell]`, `[NOTE]`) or anchor (`[[id]]`) alone on a line, or an inline macro
 * (`linkgit:git-log[1]`, `include::fragment.txt[]`). An INI section (`[pager]`) is none of these. Over this machine's
 * 7,398 text files outside git-doc it found 4, all Git's AsciiDoc; in git-doc, 200 of its 202 underlined pages.
 */
const ASCIIDOC_MARK =
  /^(?:\[(?:verse|source|listing|literal|quote|example|sidebar|horizontal|abstract|appendix|glossary|bibliography|preface|colophon|discrete|NOTE|TIP|WARNING|IMPORTANT|CAUTION)\b[^\]\n]*\]|\[\[[\w:.-]+(?:,[^\]\n]*)?\]\])[ \t]*$|\b(?:linkgit|link|include|image|xref|footnote|kbd|btn|menu):{1,2}[^\s[\]]{0,200}\[[^\]\n]{0,200}\]/m;

/** A title underlined to its length (±1, as Asciidoctor takes it; Markdown takes any length) at the start. */
function underlinedTitle(text: string): boolean {
  const underlined = UNDERLINED_TITLE.exec(text);
  return underlined !== null && Math.abs((underlined[1] ?? "").trim().length - (underlined[2] ?? "").length) <= 1;
}

/** AsciiDoc by its title: `= Title`, or an underlined one beside something only AsciiDoc writes. */
const asciidoc = (text: string) => ASCIIDOC_TITLE.test(text) || (underlinedTitle(text) && ASCIIDOC_MARK.test(text));

const startsWith = (bytes: Uint8Array, magic: number[], at = 0) => magic.every((b, i) => bytes[at + i] === b);

/** Binary signatures worth naming in a refusal. */
const KNOWN_BINARY: [number[], string][] = [
  [[0x89, 0x50, 0x4e, 0x47], "PNG image"],
  [[0xff, 0xd8, 0xff], "JPEG image"],
  [[0x47, 0x49, 0x46, 0x38], "GIF image"],
  [[0x1f, 0x8b], "gzip archive"],
  [[0xd0, 0xcf, 0x11, 0xe0], "legacy Office file (.doc/.xls/.ppt): save it as .docx or PDF"],
  [[0x7b, 0x5c, 0x72, 0x74, 0x66], "RTF document"],
  [[0x7f, 0x45, 0x4c, 0x46], "executable"],
];

const extensionOf = (name: string | undefined) => {
  const base = (name ?? "").slice((name ?? "").lastIndexOf("/") + 1);
  const dot = base.lastIndexOf(".");
  return dot > 0 ? base.slice(dot).toLowerCase() : "";
};

/** One record of a ZIP archive's central directory: what its entry is called, how it is stored, and where. */
export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  compressed: number;
  /** Offset of the entry's local file header. */
  local: number;
}

/**
 * The records of a ZIP archive's central directory (at most `max`), or undefined when it cannot be read (no end
 * record, as in a truncated file, or a damaged record before the `max`th). The one reader of the directory: the
 * sniffer names the entries, the .docx extractor reads its parts from them.
 */
export function zipEntries(bytes: Uint8Array, max = Number.POSITIVE_INFINITY): ZipEntry[] | undefined {
  const cd = centralDirectory(bytes);
  if (!cd) return undefined;
  const entries: ZipEntry[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = cd.offset;
  for (let i = 0; i < Math.min(cd.entries, max); i++) {
    if (at + 46 > bytes.length || view.getUint32(at, true) !== 0x02014b50) return undefined;
    const nameLength = view.getUint16(at + 28, true);
    entries.push({
      name: new TextDecoder().decode(bytes.subarray(at + 46, at + 46 + nameLength)),
      method: view.getUint16(at + 10, true),
      compressed: view.getUint32(at + 20, true),
      local: view.getUint32(at + 42, true),
    });
    at += 46 + nameLength + view.getUint16(at + 30, true) + view.getUint16(at + 32, true);
  }
  return entries;
}

/** Names of the entries in a ZIP archive's central directory (at most `max`), or undefined when it cannot be read. */
export const zipEntryNames = (bytes: Uint8Array, max = 10_000): string[] | undefined =>
  zipEntries(bytes, max)?.map((entry) => entry.name);

const LOCAL_HEADER = [0x50, 0x4b, 0x03, 0x04];

/**
 * Names in a ZIP archive's local file headers, front to back (at most `max`): what is left to judge an archive
 * whose central directory, at its end, is lost. An entry whose size follows its data (flag bit 3) is skipped by
 * looking for the next header.
 */
function localEntryNames(bytes: Uint8Array, max = 1_000): string[] {
  const names: string[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Typed arrays only, no Buffer: the console runs this module in the browser too.
  const find = (from: number) => {
    for (let i = bytes.indexOf(0x50, from); i >= 0; i = bytes.indexOf(0x50, i + 1))
      if (startsWith(bytes, LOCAL_HEADER, i)) return i;
    return -1;
  };
  let at = 0;
  while (names.length < max && at >= 0 && at + 30 <= bytes.length) {
    if (!startsWith(bytes, LOCAL_HEADER, at)) {
      at = find(at);
      continue;
    }
    const flags = view.getUint16(at + 6, true);
    const compressed = view.getUint32(at + 18, true);
    const nameLength = view.getUint16(at + 26, true);
    const dataStart = at + 30 + nameLength + view.getUint16(at + 28, true);
    names.push(new TextDecoder().decode(bytes.subarray(at + 30, Math.min(bytes.length, at + 30 + nameLength))));
    at = flags & 0x08 ? find(dataStart) : dataStart + compressed;
  }
  return names;
}

/** What a ZIP archive is, from its entries' names (and, when the directory is lost, its file name). */
function zipKind(names: string[], damaged: boolean, ext: string): Sniffed {
  if (names.includes("word/document.xml")) return { format: "docx" };
  if (names.includes("content.xml")) return { format: "unsupported", reason: "OpenDocument file: save it as .docx" };
  if (names.some((n) => n.startsWith("ppt/") || n.startsWith("xl/")))
    return { format: "unsupported", reason: "PowerPoint or Excel file" };
  // A Word document cut short (a truncated upload) is read as one, for the extractor to refuse as damaged (422).
  if (damaged && names.some((n) => n.startsWith("word/"))) return { format: "docx" };
  if (damaged && /^\.(xls|ppt|pps)/.test(ext)) return { format: "unsupported", reason: "PowerPoint or Excel file" };
  if (damaged && (names.includes("[Content_Types].xml") || ext === ".docx")) return { format: "docx" };
  return { format: "unsupported", reason: "ZIP archive (not a Word document)" };
}

/** The end-of-central-directory record: where the entries are and how many. */
export function centralDirectory(bytes: Uint8Array): { offset: number; entries: number } | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // The record is 22 bytes plus a comment of up to 65,535.
  for (let at = bytes.length - 22; at >= Math.max(0, bytes.length - 22 - 65_535); at--) {
    if (view.getUint32(at, true) !== 0x06054b50) continue;
    return { entries: view.getUint16(at + 10, true), offset: view.getUint32(at + 16, true) };
  }
  return undefined;
}

/**
 * Decodes UTF-8 text, or undefined when the bytes are not text (NUL bytes) or not UTF-8: a single byte that is not
 * (a Latin-1 "é" in English text) refuses the file rather than storing "caf�" (unless a web page declares its encoding).
 */
export function decodeText(bytes: Uint8Array): string | undefined {
  // UTF-16 with its byte order mark (what Windows' Notepad once saved as "Unicode") is text, its NULs included.
  if (startsWith(bytes, [0xff, 0xfe])) return new TextDecoder("utf-16le").decode(bytes.subarray(2));
  if (startsWith(bytes, [0xfe, 0xff])) return new TextDecoder("utf-16be").decode(bytes.subarray(2));
  const head = bytes.subarray(0, 64 * 1024);
  if (head.includes(0)) return undefined;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes).replace(/^\uFEFF/, "");
  } catch {
    // A page that declares another encoding is read in it (English with a few curly quotes and a € in windows-1252).
    return declared(bytes);
  }
}

/**
 * Text in the encoding it declares, when it is not UTF-8: a web page's `<meta charset>` (or its http-equiv
 * Content-Type), an XML declaration's `encoding`, in the first 1,024 bytes, as browsers look for it. Never guessed:
 * undeclared, such text stays refused as not UTF-8. A page saved as windows-1252 that said so was refused.
 */
function declared(bytes: Uint8Array): string | undefined {
  const head = new TextDecoder("latin1").decode(bytes.subarray(0, 1024));
  const label =
    /<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([\w.:-]+)/i.exec(head)?.[1] ??
    /^\s*<\?xml\b[^>]*?\bencoding\s*=\s*["']([\w.:-]+)["']/i.exec(head)?.[1];
  // A page can only declare an encoding that writes its declaration in ASCII: browsers read "utf-16" there as UTF-8.
  if (!label || /^utf-?(?:8|16)/i.test(label)) return undefined;
  let decoder: TextDecoder;
  let text: string;
  try {
    decoder = new TextDecoder(label, { fatal: true });
    text = decoder.decode(bytes);
  } catch {
    return undefined; // a label no decoder knows, or bytes that are not that encoding either
  }
  // Node's decoder reads windows-1252 (also what "latin1" and "iso-8859-1" label, by the Encoding Standard) as Latin-1,
  // its curly quotes and € as C1 controls; browsers' do not. Those 27 bytes are mapped here, in the module both use.
  return decoder.encoding === "windows-1252"
    ? text.replace(/[\u0080-\u009f]/g, (c) => CP1252[c.charCodeAt(0) - 0x80] ?? c)
    : text;
}

/** windows-1252's characters for the bytes 0x80-0x9F ("" where it has none). */
const CP1252 = [..."€\0‚ƒ„…†‡ˆ‰Š‹Œ\0Ž\0\0‘’“”•–—˜™š›œ\0žŸ"].map((c) => (c === "\0" ? "" : c));

/** The format of a file from its first bytes (and, for text, its extension and first characters). */
export function sniff(bytes: Uint8Array, name?: string, text?: string): Sniffed {
  if (bytes.length === 0) return { format: "unsupported", reason: "empty file" };
  // PDF readers accept the header anywhere in the first 1,024 bytes.
  const head = new TextDecoder("latin1").decode(bytes.subarray(0, 1024));
  if (head.includes("%PDF-")) return { format: "pdf" };
  if (startsWith(bytes, LOCAL_HEADER) || startsWith(bytes, [0x50, 0x4b, 0x05, 0x06])) {
    const names = zipEntryNames(bytes);
    return names ? zipKind(names, false, extensionOf(name)) : zipKind(localEntryNames(bytes), true, extensionOf(name));
  }
  for (const [magic, what] of KNOWN_BINARY)
    if (startsWith(bytes, magic)) return { format: "unsupported", reason: what };
  const decoded = text ?? decodeText(bytes);
  if (decoded === undefined) {
    // Without NULs, it reads as text in some other encoding (Latin-1, Windows-1252): say so, not "binary".
    const binary = bytes.subarray(0, 64 * 1024).includes(0);
    return { format: "unsupported", reason: binary ? "binary file" : "text that is not UTF-8 (save it as UTF-8)" };
  }
  if (!decoded.trim()) return { format: "unsupported", reason: "empty file" };
  // Text no document can hold (a NUL, from UTF-16 that is not text): refused as what it is, not later as bad content.
  if (decoded.includes("\u0000")) return { format: "unsupported", reason: "binary file" };
  const ext = extensionOf(name);
  const start = decoded.trimStart().slice(0, 1024).toLowerCase();
  if (isWebPage(start)) return { format: "html" };
  if (ext === ".html" || ext === ".htm" || ext === ".xhtml")
    return /<[a-z!]/.test(start) ? { format: "html" } : { format: "text" };
  // Markup Engram does not read would be stored as its tags: a flat OpenDocument file, an SVG image.
  const root = /^(?:<\?xml[^>]*>\s*)?(?:<!--[\s\S]*?-->\s*|<!doctype[^>]*>\s*)*<([a-z][\w:.-]*)/.exec(start)?.[1];
  if (root === "office:document") return { format: "unsupported", reason: "OpenDocument file: save it as .docx" };
  if (root === "svg") return { format: "unsupported", reason: "SVG image" };
  if (ext === ".jsonl" || ext === ".ndjson") return { format: "jsonl" };
  if (ext === ".json") return { format: "json" };
  if (ext === ".csv" || ext === ".tsv") return { format: "csv" };
  if (ext === ".md" || ext === ".markdown" || ext === ".mdx") return { format: "markdown" };
  // Windows line ends read as Unix ones, as every extracted text is stored (tidy in core/extract/markdown.ts).
  const opening = decoded.slice(0, 64 * 1024).replace(/\r\n?/g, "\n");
  if (ext === ".adoc" || ext === ".asciidoc" || asciidoc(opening)) return { format: "asciidoc" };
  return { format: /^#{1,6}\s/m.test(opening) || underlinedTitle(opening) ? "markdown" : "text" };
}

/** Extensions the CLI and console look at in a folder; anything else is listed as skipped (by content it may still be read). */
export const EXTENSIONS = [
  ".pdf",
  ".docx",
  ".html",
  ".htm",
  ".md",
  ".markdown",
  ".adoc",
  ".asciidoc",
  ".txt",
  ".csv",
  ".json",
  ".jsonl",
] as const;
