/**
 * Where a chunk came from, for citations: the pages it spans (a text whose pages are separated by form feeds,
 * as core/extract writes PDFs and pdftotext does) and the path of headings in force at its start. Stored beside
 * the chunk and returned by search, chat citations and sources; never part of the text that is embedded, so a
 * page inserted before a passage moves its location without paying for its embedding again.
 */
import { type Heading, headings } from "./context";

export interface Location {
  /** First and last page (1-based) the chunk's text is on. */
  pages?: [number, number];
  /** The headings above the chunk, outermost first. */
  headings?: string[];
}

/**
 * The location of each chunk of `text` spanning `[start, end)`, or null when the text has neither pages nor headings.
 * Headings that repeat the document's title at its start are left out (a PDF may set the title, then the same
 * words as its first heading), as the chunk's context leaves out the first.
 */
export function locations(
  text: string,
  spans: { start: number; end: number }[],
  title?: string | null,
): (Location | null)[] {
  const base = title?.replace(/\s+/g, " ").trim().toLowerCase() ?? "";
  const breaks: number[] = [];
  for (let i = text.indexOf("\f"); i >= 0; i = text.indexOf("\f", i + 1)) breaks.push(i);
  const pageAt = (offset: number) => {
    let lo = 0;
    let hi = breaks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((breaks[mid] as number) < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  };
  const all = headings(text);
  const path: Heading[] = [];
  let next = 0;
  return spans.map(({ start, end }) => {
    while (next < all.length && (all[next] as Heading).offset <= start) {
      const heading = all[next++] as Heading;
      while (path.length && (path.at(-1) as Heading).level >= heading.level) path.pop();
      path.push(heading);
    }
    const location: Location = {};
    if (breaks.length) location.pages = [pageAt(start), pageAt(Math.max(start, end - 1))];
    const names = path.map((h) => h.text);
    while (base && names[0]?.toLowerCase() === base) names.shift();
    if (names.length) location.headings = names;
    return location.pages || location.headings ? location : null;
  });
}
