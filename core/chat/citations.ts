/**
 * Citation markers: `[n]` in an answer points at the n-th source of the prompt. Markers that
 * point at no source are dropped (streamed text included); the final answer's markers are
 * renumbered in order of first use, and its citations are exactly the sources it used.
 */
import * as Location from "../chunk/location";
import type { DocumentScope } from "../document/schema";
import { clip, terms } from "./extractive";
import type { Source } from "./prompt";

export interface Citation {
  index: number;
  documentId: string;
  /** Whose space the cited document is in: `GET /v1/documents/{documentId}?scope=` opens that one. */
  scope: DocumentScope;
  chunkId: string;
  title: string | null;
  source: string | null;
  snippet: string;
  score: number;
  /** Where the cited passage is in its document: `{ pages: [14, 15] }`, `{ headings: [...] }`, or null. */
  location: Location.Location | null;
}

/** `[1]`, `[2, 3]`, with the whitespace before it (dropped along with an invalid marker). */
// From a run of spaces' start only (`(?<!\s)`): tried from each of its positions, a long run cost time in the square
// of its length (core/chat/prompt.ts, MARKER).
const MARKER = /(?<!\s)(\s*)\[(\d{1,4}(?:\s*,\s*\d{1,4})*)\]/g;
/** What may still become a marker once more text arrives. */
const PARTIAL = /(?<!\s)\s*\[[\d,\s]*$|(?<!\s)\s+$/;
/** Longer than any marker we keep: past it a held `[` is plain text. */
const MAX_PARTIAL = 40;

/** Rewrites markers in complete text: invalid numbers go, `[2, 3]` becomes `[2][3]`. */
function rewrite(text: string, valid: (n: number) => boolean): string {
  return text.replace(MARKER, (_match, space: string, list: string) => {
    const kept = list
      .split(",")
      .map((n) => Number(n.trim()))
      .filter(valid);
    return kept.length ? `${space}${kept.map((n) => `[${n}]`).join("")}` : "";
  });
}

/**
 * Drops invalid markers from text that arrives in pieces: holds back a tail that may still turn
 * into a marker (`[1` or trailing spaces), so a marker split across deltas is judged whole.
 */
export class MarkerFilter {
  private held = "";

  constructor(private readonly valid: (n: number) => boolean) {}

  /** Text that is safe to emit now. */
  push(text: string): string {
    const buffer = this.held + text;
    const tail = PARTIAL.exec(buffer);
    const cut = tail && buffer.length - tail.index <= MAX_PARTIAL ? tail.index : buffer.length;
    this.held = buffer.slice(cut);
    return rewrite(buffer.slice(0, cut), this.valid);
  }

  /** The rest, at the end of the stream. */
  flush(): string {
    const rest = rewrite(this.held, this.valid);
    this.held = "";
    return rest;
  }
}

/** Drops invalid markers from a whole answer (what the streaming filter yields, in one go). */
export function dropInvalidMarkers(text: string, sourceCount: number): string {
  const filter = new MarkerFilter((n) => n >= 1 && n <= sourceCount);
  return filter.push(text) + filter.flush();
}

/** The sources an answer (already filtered) cites, in order of first use, by prompt number. */
export function usedSources(text: string, sources: readonly Source[]): Source[] {
  const used: Source[] = [];
  const seen = new Set<number>();
  for (const match of text.matchAll(/\[(\d+)\]/g)) {
    const n = Number(match[1]);
    const source = sources[n - 1];
    if (source && !seen.has(n)) {
      seen.add(n);
      used.push(source);
    }
  }
  return used;
}

/**
 * The final form of an answer: invalid markers dropped, the rest renumbered 1..k in order of
 * first use, and the k citations in that order.
 */
export function finalize(raw: string, sources: readonly Source[]): { content: string; citations: Citation[] } {
  const text = dropInvalidMarkers(raw, sources.length);
  const used = usedSources(text, sources);
  const renumber = new Map(used.map((source, i) => [source.index, i + 1]));
  const content = text.replace(/\[(\d+)\]/g, (marker, n: string) => {
    const to = renumber.get(Number(n));
    return to === undefined ? marker : `[${to}]`;
  });
  const final = content.trim();
  return {
    content: final,
    citations: used.map((source, i) => citationOf(source, i + 1, citingText(final, i + 1))),
  };
}

/**
 * The words of an answer that cite source `n`: each stretch of text that ends at an `[n]` marker, back to the
 * sentence's start or the marker before it.
 */
export function citingText(answer: string, n: number): string {
  const parts: string[] = [];
  for (const match of answer.matchAll(new RegExp(`\\[${n}\\]`, "g"))) {
    // Markers right before this one (`[2][1]`) cite the same words.
    const before = answer.slice(0, match.index).replace(/(?<!\s)(\s*\[\d+\])+\s*$/, "");
    const start = Math.max(...[". ", "? ", "! ", "\n", "]"].map((end) => before.lastIndexOf(end))) + 1;
    parts.push(before.slice(start).trim());
  }
  return parts.join(" ");
}

/** A source as a citation with the given number; its snippet shows the passage's part `focus` (the citing words) names. */
export function citationOf(source: Source, index: number, focus = ""): Citation {
  const cited = snippet(withoutTitleHeading(source.content, source.title), SNIPPET_CHARS, focus);
  return {
    index,
    documentId: source.documentId,
    scope: source.scope,
    chunkId: source.chunkId,
    title: source.title,
    source: source.source,
    snippet: cited,
    score: source.score,
    // Where the cited part is: the passage may begin a page or a section before it.
    location: focus
      ? Location.within(source.content, source.location ?? null, focus, cited)
      : (source.location ?? null),
  };
}

const SNIPPET_CHARS = 280;

/**
 * A passage without its first line when that is a heading saying the document's title, which the citation carries:
 * "# Refunds\n\nRefunds are issued ..." read "Refunds Refunds are issued ...". Any other heading stays, as context.
 */
function withoutTitleHeading(content: string, title: string | null): string {
  const heading = /^\s*#{1,6}[ \t]+(.*?)[ \t#]*\n/.exec(content);
  if (!heading || !title) return content;
  const rest = content.slice(heading[0].length);
  const same = (heading[1] ?? "").trim().toLowerCase() === title.trim().toLowerCase();
  return same && rest.trim() ? rest : content;
}

/**
 * A passage, whitespace collapsed, cut at a word boundary to `max` characters: from its start, or, given the words
 * that cite it, from its sentence that shares most of them, so the snippet shows what the answer took from it.
 */
export function snippet(content: string, max = SNIPPET_CHARS, focus = ""): string {
  const blocks = withoutMarkup(content)
    .split(/\n[ \t]*\n/)
    .map((block) => block.replace(/\s+/g, " ").trim())
    .filter(Boolean);
  const flat = blocks.join(" ");
  if (flat.length <= max) return flat;
  // A block (a paragraph, a code block) starts a sentence too: code has no full stop to end it, and the sentence after
  // a block of code had started at the code.
  let at = 0;
  const blockStarts = blocks.map((block) => {
    const start = at;
    at += block.length + 1;
    return start;
  });
  let from = focus ? sentenceStart(flat, focus, blockStarts) : 0;
  // A sentence near the end still fills the snippet: start earlier, at a word.
  if (from > flat.length - max) from = Math.max(0, flat.indexOf(" ", flat.length - max) + 1);
  return `${from > 0 ? "…" : ""}${clip(flat.slice(from), max)}`;
}

/**
 * A passage without the Markdown marks a reader of a snippet has no use for: a heading's `#`s and a code fence's line
 * ("## EXAMPLES When recording ..." read "EXAMPLES When recording ..."). The console finds a snippet in its document
 * across such marks (console/src/passage.ts).
 */
const withoutMarkup = (content: string) =>
  content.replace(/^ {0,3}#{1,6}[ \t]+/gm, "").replace(/^ {0,3}(?:`{3,}|~{3,})[^\n]*$/gm, "");

/**
 * Where the sentence of `flat` sharing most words with `focus` starts (0 when none shares any); a sentence ends at a full
 * stop or where its block does.
 */
function sentenceStart(flat: string, focus: string, blockStarts: number[]): number {
  // The extractive answerer's terms (stop words out, light stemming): "refunds" in the answer is "refund" here.
  const wanted = new Set(terms(focus));
  let best = 0;
  let bestShared = 0;
  const ends = [...flat.matchAll(/[.!?…] (?=\S)/g)].map((m) => (m.index ?? 0) + 2);
  const starts = [...new Set([0, ...ends, ...blockStarts])].sort((a, b) => a - b);
  for (const [i, start] of starts.entries()) {
    let shared = 0;
    for (const term of new Set(terms(flat.slice(start, starts[i + 1] ?? flat.length)))) if (wanted.has(term)) shared++;
    if (shared > bestShared) [best, bestShared] = [start, shared];
  }
  return best;
}
