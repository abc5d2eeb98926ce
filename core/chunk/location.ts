/**
 * Where a chunk came from, for citations: the pages it spans (a text whose pages are separated by form feeds,
 * as core/extract writes PDFs and pdftotext does) and the path of headings in force at its start. Stored beside
 * the chunk and returned by search, chat citations and sources; never part of the text that is embedded, so a
 * page inserted before a passage moves its location without paying for its embedding again.
 */
import { headingPaths, headings } from "./context";

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

/**
 * The location of a part of a chunk (what a citation cites) from the chunk's own: the pages it is on, counting the
 * chunk's form feeds before and within it, and the headings in force where it starts, the chunk's path changed by the
 * headings the chunk crosses before it. A passage that runs from one section into the next was otherwise cited under
 * the first, where the cited sentence is not. The chunk's path holds no levels: its n-th heading is taken as level n.
 * Each of `parts` is looked for in turn by its first eight words (at least three), across the Markdown marks a snippet
 * drops; none found, the chunk's location is the answer.
 */
export function within(content: string, location: Location | null, ...parts: string[]): Location | null {
  let found: { at: number; length: number } | undefined;
  for (const part of parts) {
    // Letters and digits only: nothing to escape in the pattern they make.
    const words = part.match(/[\p{L}\p{N}]+/gu) ?? [];
    if (words.length < 3) continue; // a word or two is found anywhere
    const match = new RegExp(words.slice(0, 8).join("[^\\p{L}\\p{N}]+"), "u").exec(content);
    if (match) {
      found = { at: match.index, length: part.length };
      break;
    }
  }
  if (!found || found.at === 0) return location;
  const { at, length } = found;
  const result: Location = {};
  // A chunk with no location of its own (it starts before the document's first heading) can still cross one.
  if (location?.pages) {
    const first = location.pages[0] + content.slice(0, at).split("\f").length - 1;
    const last = first + content.slice(at, at + length).split("\f").length - 1;
    result.pages = [first, Math.min(Math.max(first, last), Math.max(first, location.pages[1]))];
  }
  const path = (location?.headings ?? []).map((text, i) => ({ text, level: i + 1 }));
  for (const heading of headings(content)) {
    if (heading.offset >= at) break;
    if (heading.offset === 0) continue; // the chunk's first line: in its path already
    while (path.length && (path.at(-1)?.level ?? 0) >= heading.level) path.pop();
    path.push(heading);
  }
  if (path.length) result.headings = path.map((h) => h.text);
  return result.pages || result.headings ? result : null;
}
