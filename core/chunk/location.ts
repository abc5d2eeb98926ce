/**
 * Where a chunk came from, for citations: the pages it spans (a text whose pages are separated by form feeds,
 * as core/extract writes PDFs and pdftotext does) and the path of headings in force at its start. Stored beside
 * the chunk and returned by search, chat citations and sources; never part of the text that is embedded, so a
 * page inserted before a passage moves its location without paying for its embedding again.
 */
import { headingPaths } from "./context";

export interface Location {
  /** First and last page (1-based) the chunk's text is on. */
  pages?: [number, number];
  /** The headings above the chunk, outermost first. */
  headings?: string[];
}

/**
 * The location of each chunk of `text` spanning `[start, end)`, or null when the text has neither pages nor headings.
 * Its headings are the chunk context's (`headingPaths`): the title is no heading of it. `paged`: the text is a paged
 * document's (a PDF), so a chunk is on page 1 when no form feed comes before it, a one-page document's too.
 */
export function locations(
  text: string,
  spans: { start: number; end: number }[],
  title?: string | null,
  paged = false,
): (Location | null)[] {
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
  const paths = headingPaths(
    title,
    text,
    spans.map((span) => span.start),
  );
  return spans.map(({ start, end }, i) => {
    const location: Location = {};
    if (breaks.length || paged) location.pages = [pageAt(start), pageAt(Math.max(start, end - 1))];
    if (paths[i]?.length) location.headings = paths[i];
    return location.pages || location.headings ? location : null;
  });
}
