/**
 * PDF text with unpdf (Mozilla's pdf.js built for servers), one page at a time, pages joined by a form feed
 * (`\n\f\n`, as poppler's pdftotext does) so the chunker and `core/chunk/location.ts` know each chunk's pages.
 * Why unpdf, with the measurements: docs/extract.md.
 */
import { getDocumentProxy } from "unpdf";
import { fenceFor } from "../chunk/html";
import { characters } from "../document/schema";
import { EngramError } from "../error";
import type { Limits } from "./limits";
import { checkStreams } from "./pdf-streams";

/** What separates pages in extracted text: a paragraph break holding a form feed. */
export const PAGE_BREAK = "\n\f\n";

interface TextItem {
  str: string;
  hasEOL: boolean;
  transform: number[];
  height: number;
  width: number;
  fontName: string;
}

export interface PdfText {
  content: string;
  title?: string;
  pages: number;
}

interface Line {
  text: string;
  /** The tallest glyph run on the line (its font size, near enough). */
  size: number;
  /** A blank line goes before it: the gap above it is wider than its text. */
  gap: boolean;
  /** Lines of the page it was joined from (a heading that wrapped). */
  lines?: number;
  /** Set in a monospace font throughout: code, whose indentation is rebuilt from `x` (its left edge) and `em`. */
  code?: { x: number; em: number };
  /** Its height on the page (the first run's baseline, from the bottom). */
  y?: number;
}

/**
 * A page's lines in pdf.js's reading order, with their font size and whether a wide gap precedes them; `mono` says
 * which fonts are monospace (pdf.js's font family), so lines set in them alone are code.
 */
function pageLines(items: TextItem[], mono: (font: string) => boolean = () => false): Line[] {
  const lines: Line[] = [];
  let text = "";
  let size = 0;
  let y: number | undefined;
  let gap = false;
  let lastY: number | undefined;
  let lastSize = 0;
  let code: { x: number; em: number } | undefined;
  let allMono = true;
  /** The line as code reads it: a gap between two runs (pdf.js gives positions, not the spaces) as spaces. */
  let spaced = "";
  let runEnd: number | undefined;
  const end = () => {
    if (code && allMono && text.trim()) {
      // Code keeps its spacing, leading spaces included; only its end is trimmed.
      lines.push({ text: spaced.replace(/\u00a0/g, " ").trimEnd(), size, gap, code, y });
      lastY = y;
      lastSize = size;
    } else {
      const clean = text.replace(/[\s\u00a0]+/g, " ").trim();
      if (clean) {
        lines.push({ text: clean, size, gap, y });
        lastY = y;
        lastSize = size;
      }
    }
    text = "";
    spaced = "";
    runEnd = undefined;
    size = 0;
    y = undefined;
    code = undefined;
    allMono = true;
  };
  for (const item of items) {
    const visible = item.str.trim() !== "";
    if (visible) {
      if (!mono(item.fontName)) allMono = false;
      else code ??= { x: item.transform[4] ?? 0, em: item.width / Math.max(1, [...item.str].length) };
    }
    if (y === undefined && visible) {
      y = item.transform[5] ?? 0;
      // Only a step down the page is a paragraph gap: a step up is the next column (or frame), which goes on
      // with the same paragraph as often as not (docs/extract.md, two columns).
      gap = lastY !== undefined && lastY - y > 1.8 * Math.max(lastSize, item.height, 1);
    }
    // A footnote mark (a number set smaller and raised) is a word of its own, as in web pages and .docx: glued on,
    // `ants.1` was a token of its own and "ants" was found by no search.
    if (visible && y !== undefined && footnoteMark(item, y, size) && /\S$/.test(text)) text += " ";
    text += item.str;
    // Runs of visible text are placed by their positions; the space items between them only say that there is a gap.
    if (visible) {
      const x = item.transform[4] ?? 0;
      if (runEnd !== undefined) {
        const gapped = /\s$/.test(spaced);
        const spaces = Math.max(gapped ? 1 : 0, Math.round((x - runEnd) / (code?.em || item.height || 1)));
        spaced = spaced.trimEnd() + " ".repeat(Math.min(spaces, 80));
      }
      spaced += item.str;
      runEnd = x + item.width;
    } else if (runEnd !== undefined) spaced += item.str.replace(/\S/g, "");
    if (visible) size = Math.max(size, Math.round(item.height * 10) / 10);
    if (item.hasEOL) end();
  }
  end();
  return lines;
}

/** A number of at most three digits set smaller than the line so far (`size`) and above its baseline (`y`). */
const footnoteMark = (item: TextItem, y: number, size: number): boolean =>
  /^\d{1,3}$/.test(item.str.trim()) && item.height < 0.8 * size && (item.transform[5] ?? 0) > y + 0.15 * size;

/**
 * Text from every page's lines: lines set larger than the body text (the size most characters have) become `#`
 * headings, the largest size `#`, the next `##`, the next `###`, so PDF chunks get a heading path like Markdown's;
 * and the title, when one line of the first page alone is set larger than any heading, a paragraph of its own.
 */
function render(pagesRead: Line[][]): { texts: string[]; title?: string } {
  const given = withoutFurniture(pagesRead);
  const bySize = new Map<number, number>();
  for (const line of given.flat()) bySize.set(line.size, (bySize.get(line.size) ?? 0) + line.text.length);
  // The body is the prose's size: a page of code in a smaller monospace font made its prose "larger", so headings.
  const proseBySize = new Map<number, number>();
  for (const line of given.flat().filter((l) => !l.code))
    proseBySize.set(line.size, (proseBySize.get(line.size) ?? 0) + line.text.length);
  const body = [...(proseBySize.size ? proseBySize : bySize)].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 0;
  // A heading or title too long for one line goes on in the next at the same size, with no gap: one line, or each
  // half was a heading of its own and the first half alone headed every passage after it.
  const pages = given.map((lines) =>
    lines.reduce<Line[]>((out, line) => {
      const last = out.at(-1);
      if (last && !line.gap && line.size === last.size && line.size >= body * 1.08) {
        out[out.length - 1] = { ...last, text: `${last.text} ${line.text}`, lines: (last.lines ?? 1) + 1 };
      } else out.push(line);
      return out;
    }, []),
  );
  const linesOfSize = new Map<number, number>();
  for (const line of pages.flat()) {
    if (line.text.trim()) linesOfSize.set(line.size, (linesOfSize.get(line.size) ?? 0) + 1);
  }
  // Sizes of prose only: code set larger than the prose is no heading level.
  const larger = [...(proseBySize.size ? proseBySize : bySize).keys()]
    .filter((size) => size >= body * 1.08)
    .sort((a, b) => b - a);
  // A size set on one line of the first page alone is the document's title (Word's and LibreOffice's Title style
  // sits above Heading 1): as a level it would head every passage and leave the third level of sections no `###`.
  const titleLine =
    larger[0] !== undefined && linesOfSize.get(larger[0]) === 1
      ? pages[0]?.find((l) => l.size === larger[0])
      : undefined;
  const headingSizes = larger.slice(titleLine ? 1 : 0).slice(0, 3);
  let words: Set<string> | undefined;
  const wordsOf = () =>
    (words ??= new Set(given.flatMap((lines) => lines.flatMap((l) => l.text.toLowerCase().match(/\p{L}+/gu) ?? []))));
  const texts = pages.map((lines) => {
    let out = "";
    let heading = false;
    // Consecutive code lines are one fenced block, each indented by its offset from the block's leftmost line.
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] as Line;
      let j = i;
      while (j < lines.length && lines[j]?.code && !headingSizes.includes((lines[j] as Line).size)) j++;
      // One code line right under a line of text, with no gap, is inline code the text wrapped onto it.
      if (j > i && (j - i > 1 || line.gap || i === 0 || lines[i - 1]?.code)) {
        const block = lines.slice(i, j);
        const left = Math.min(...block.map((l) => l.code?.x ?? 0));
        const body = block.map((l) => {
          const em = l.code?.em || 1;
          return " ".repeat(Math.max(0, Math.round(((l.code?.x ?? left) - left) / em))) + l.text;
        });
        const fence = fenceFor(body.join("\n"));
        out += `${out ? "\n\n" : ""}${fence}\n${body.join("\n")}\n${fence}`;
        heading = true; // a paragraph break after the block
        i = j - 1;
        continue;
      }
      const level = line.text.length <= 120 * (line.lines ?? 1) ? headingSizes.indexOf(line.size) + 1 : 0;
      const alone = level > 0 || line === titleLine; // a paragraph of its own
      const sep = !out ? "" : alone || heading || line.gap ? "\n\n" : "\n";
      // A word the typesetter broke at the line's end ("substi‐" / "tute") is one word again: halves no search finds.
      // A plain "-" may be the word's own ("positional-only"): dropped only when the text has the word without it.
      const broken = sep === "\n" && !lines[i - 1]?.code ? HYPHENATED.exec(out) : null;
      const rest = broken ? /^\p{Ll}+/u.exec(line.text)?.[0] : undefined;
      if (broken && rest) {
        const [, start, hyphen] = broken;
        const drop = hyphen !== "-" || wordsOf().has(`${start}${rest}`.toLowerCase());
        out = (drop ? out.slice(0, -1) : out) + line.text;
        heading = false;
        continue;
      }
      // A body line starting "# " (a comment in a code sample) is escaped, or it would head every passage after it.
      const text = level ? `${"#".repeat(level)} ${line.text}` : line.text.replace(/^(?=#{1,6}(\s|$))/, "\\");
      out += `${sep}${text}`;
      heading = alone;
    }
    return out.replace(/\f/g, " ");
  });
  return { texts, title: titleLine?.text.replace(/\s+/g, " ").trim() || undefined };
}

/** A line ending in a word's start and a hyphen: U+2010 or a soft hyphen, as typesetters break words, or "-". */
const HYPHENATED = /(\p{L}*\p{Ll})([\u2010\u00ad-])$/u;

/**
 * The pages without their running headers and footers (a title and "Page 3 of 5" on every page): lines among the two
 * highest or two lowest of a page that recur, digits aside, in the same size on at least two pages and 40% of them (a
 * book's left and right pages differ), and never anywhere else on a page (text repeated in the body stays). Kept,
 * they sat inside passages, split sentences across pages and, set larger than the body, became headings
 * ("## Page 1"). A one-page document keeps every line.
 */
function withoutFurniture(pages: Line[][]): Line[][] {
  if (pages.length < 2) return pages;
  const key = (line: Line) => `${line.size}|${line.text.toLowerCase().replace(/\d+/g, "#")}`;
  // By height, not reading order: some producers write the header after the page's body.
  const edges = pages.map((lines) => {
    const high = [...lines].sort((a, b) => (b.y ?? 0) - (a.y ?? 0));
    return new Set([...high.slice(0, 2), ...high.slice(-2)].filter((line) => !line.code && line.text.length <= 150));
  });
  const onPages = new Map<string, number>();
  const inside = new Set<string>();
  pages.forEach((lines, n) => {
    const seen = new Set<string>();
    for (const line of lines) {
      if (!edges[n]?.has(line)) inside.add(key(line));
      else if (!seen.has(key(line))) seen.add(key(line));
    }
    for (const k of seen) onPages.set(k, (onPages.get(k) ?? 0) + 1);
  });
  const needed = Math.max(2, 0.4 * pages.length);
  const furniture = new Set([...onPages].filter(([k, n]) => n >= needed && !inside.has(k)).map(([k]) => k));
  if (!furniture.size) return pages;
  return pages.map((lines, n) => lines.filter((line) => !(edges[n]?.has(line) && furniture.has(key(line)))));
}

const problem = (error: unknown): EngramError => {
  const name = (error as { name?: string })?.name;
  if (name === "PasswordException")
    return new EngramError("unprocessable", "extract.encrypted", "The PDF is encrypted (password protected).", {
      cause: error,
    });
  return new EngramError("unprocessable", "extract.corrupt", "The PDF cannot be read (damaged or not a PDF).", {
    cause: error,
  });
};

/**
 * The copy of the file pdf.js reads (pdf.js takes ownership of, detaches, the buffer it is given, and refuses a
 * Buffer), once its streams are known to decode to at most `limits.maxPdfDecodedBytes` (core/extract/pdf-streams.ts).
 */
async function checkedCopy(bytes: Uint8Array, limits: Limits): Promise<Uint8Array> {
  const tooLarge = () =>
    new EngramError(
      "too_large",
      "extract.too_large",
      `The PDF's streams decode to more than ${limits.maxPdfDecodedBytes / 1024 / 1024} MB (a decompression bomb, or split it).`,
      { details: { limitBytes: limits.maxPdfDecodedBytes } },
    );
  const checked = await checkStreams(bytes, limits.maxPdfDecodedBytes, tooLarge).catch((error: unknown) => {
    throw error instanceof EngramError ? error : problem(error);
  });
  return checked.copy;
}

/**
 * Extracts a PDF's text page by page, refusing one whose streams decode past `limits.maxPdfDecodedBytes` before
 * pdf.js opens it, and one with more than `limits.maxPages` pages before reading any.
 */
export async function extractPdf(bytes: Uint8Array, limits: Limits): Promise<PdfText> {
  const copy = await checkedCopy(bytes, limits);
  const pdf = await getDocumentProxy(copy, { isEvalSupported: false, verbosity: 0 }).catch((error: unknown) => {
    throw problem(error);
  });
  try {
    if (pdf.numPages > limits.maxPages) {
      throw new EngramError(
        "too_large",
        "extract.too_many_pages",
        `The PDF has ${pdf.numPages.toLocaleString("en")} pages; the limit is ${limits.maxPages.toLocaleString("en")}.`,
        { details: { pages: pdf.numPages, limit: limits.maxPages } },
      );
    }
    const pages: Line[][] = [];
    let chars = 0;
    for (let n = 1; n <= pdf.numPages; n++) {
      const page = await pdf.getPage(n).catch((error: unknown) => {
        throw problem(error);
      });
      const content = await page.getTextContent().catch((error: unknown) => {
        throw problem(error);
      });
      const styles = content.styles as Record<string, { fontFamily?: string }>;
      const lines = pageLines(
        content.items.filter((i) => "str" in i) as TextItem[],
        (font) => styles[font]?.fontFamily === "monospace",
      );
      page.cleanup();
      for (const line of lines) chars += characters(line.text) + 2;
      if (chars > limits.maxChars) {
        throw new EngramError(
          "too_large",
          "extract.too_much_text",
          `The PDF holds more than ${limits.maxChars.toLocaleString("en")} characters of text (reached on page ${n} of ${pdf.numPages}); split it.`,
          { details: { page: n, pages: pdf.numPages, limit: limits.maxChars } },
        );
      }
      pages.push(lines);
    }
    const { texts, title: titleLine } = render(pages);
    if (!texts.some((p) => /\p{L}|\p{N}/u.test(p))) {
      throw new EngramError(
        "unprocessable",
        "extract.no_text",
        "No extractable text (scanned?): the PDF has no text layer.",
      );
    }
    const info = (await pdf.getMetadata().catch(() => undefined))?.info as { Title?: unknown } | undefined;
    const content = texts.join(PAGE_BREAK);
    const title =
      (typeof info?.Title === "string" ? info.Title.replace(/\s+/g, " ").trim() : "") ||
      titleLine ||
      /^# (.+)$/m.exec(content)?.[1]?.trim();
    return { content, title: title || undefined, pages: pdf.numPages };
  } finally {
    await pdf.destroy();
  }
}
