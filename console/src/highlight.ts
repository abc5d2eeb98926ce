/**
 * Query terms marked in a passage. Keyword search stems words (refunds ~ refund), so a term
 * matches any word that starts with its crude stem. The passage stays text: matches become
 * <mark> elements around text nodes, never parsed HTML.
 */
const STOP = new Set(
  "a an and are as at be but by do does did for from has have how i if in into is it its me my no not of on or our so than that the their them then there these they this to was we were what when where which who why will with you your".split(
    " ",
  ),
);

const WORD = /[\p{L}\p{N}]+/gu;

/** A crude English stem, enough to find inflected forms of a query word. */
export function stem(word: string): string {
  const w = word.toLowerCase();
  for (const suffix of ["ingly", "edly", "ing", "ies", "ied", "es", "ed", "ly", "s"]) {
    if (w.endsWith(suffix) && w.length - suffix.length >= 3) return w.slice(0, -suffix.length);
  }
  return w;
}

/** The distinct stems of a query's meaningful words, longest first. */
export function queryTerms(query: string): string[] {
  const words = query.match(WORD) ?? [];
  const stems = new Set<string>();
  for (const word of words) {
    const lower = word.toLowerCase();
    if (STOP.has(lower) || (lower.length < 2 && !/\p{N}/u.test(lower))) continue;
    stems.add(stem(lower));
  }
  return [...stems].sort((a, b) => b.length - a.length);
}

export interface Segment {
  text: string;
  match: boolean;
}

/** The passage cut into matching and non-matching runs; joined, they are the passage again. */
export function segments(text: string, terms: string[]): Segment[] {
  if (!terms.length) return [{ text, match: false }];
  const out: Segment[] = [];
  let last = 0;
  for (const found of text.matchAll(WORD)) {
    const word = found[0].toLowerCase();
    const start = found.index ?? 0;
    if (!terms.some((term) => word.startsWith(term) && (word.length - term.length <= 4 || stem(word) === term)))
      continue;
    if (start > last) out.push({ text: text.slice(last, start), match: false });
    out.push({ text: found[0], match: true });
    last = start + found[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last), match: false });
  return out;
}

export function highlighted(text: string, query: string): DocumentFragment {
  const fragment = document.createDocumentFragment();
  for (const segment of segments(text, queryTerms(query))) {
    if (!segment.match) fragment.append(segment.text);
    else {
      const mark = document.createElement("mark");
      mark.textContent = segment.text;
      fragment.append(mark);
    }
  }
  return fragment;
}
