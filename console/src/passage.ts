/**
 * Finding a cited passage in its document's text, so the document opens on it: a citation carries a snippet of
 * its chunk (the part the answer cites, whitespace collapsed, cut with "…" at either end), a search result the
 * whole chunk, and both the
 * pages it is on. Pure, so Node tests it (test/e2e/console-logic.test.ts).
 */

export interface Span {
  start: number;
  end: number;
}

/** The pages of an extracted PDF's text (separated by form feeds, core/extract), or the whole text as one. */
export function pageSpans(content: string): Span[] {
  const spans: Span[] = [];
  let start = 0;
  for (let at = content.indexOf("\f"); at >= 0; at = content.indexOf("\f", at + 1)) {
    spans.push({ start, end: at });
    start = at + 1;
  }
  spans.push({ start, end: content.length });
  return spans;
}

const literal = (word: string) => word.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * The words of a passage as a pattern that matches them across any whitespace (line breaks, page breaks) and the
 * Markdown marks a snippet leaves out (a heading's `#`s, a code fence's line: core/chat/citations.ts).
 */
function pattern(words: string[]): RegExp {
  return new RegExp(words.map(literal).join("(?:\\s+(?:#{1,6}|`{3,}\\S*|~{3,}\\S*)(?=\\s))*\\s+"), "gu");
}

/**
 * Where `passage` is in `content`, searched from where its location says it can begin (the same words may be
 * elsewhere too), then from the start: its whole text, else (a snippet that ended mid-word, a document changed
 * since) its first words. Undefined when not even those are there.
 */
export function findPassage(
  content: string,
  passage: string,
  location?: { pages?: readonly number[] | null; headings?: readonly string[] | null } | null,
): Span | undefined {
  const words = passage.replace(/^…|…$/g, "").match(/\S+/g);
  if (!words?.length) return undefined;
  const from = startOf(content, location);
  const attempts = [words, words.slice(0, 12), words.slice(0, 6)].filter(
    (w, i, all) => i === 0 || w.length < (all[i - 1]?.length ?? 0),
  );
  for (const attempt of attempts) {
    for (const start of from ? [from, 0] : [0]) {
      const re = pattern(attempt);
      re.lastIndex = start;
      const found = re.exec(content);
      if (found) return { start: found.index, end: found.index + found[0].length };
    }
  }
  return undefined;
}

/**
 * Where the passage cannot begin before: its first page's start, or later, the last heading of its path on or
 * before that page (the heading path is the one in force at the passage's start).
 */
function startOf(
  content: string,
  location?: { pages?: readonly number[] | null; headings?: readonly string[] | null } | null,
): number {
  const page = location?.pages?.[0] ? pageSpans(content)[location.pages[0] - 1] : undefined;
  let from = page?.start ?? 0;
  const heading = location?.headings?.at(-1);
  if (heading) {
    const line = new RegExp(`^#{1,6}[ \\t]+${literal(heading).replace(/ /g, "\\s+")}[ \\t#]*$`, "gmu");
    for (const found of content.matchAll(line)) {
      if (page && found.index > page.end) break;
      from = Math.max(from, found.index);
    }
  }
  return from;
}

/** The page (1-based) an offset of the content is on. */
export function pageAt(content: string, offset: number): number {
  let page = 1;
  for (let at = content.indexOf("\f"); at >= 0 && at < offset; at = content.indexOf("\f", at + 1)) page++;
  return page;
}
