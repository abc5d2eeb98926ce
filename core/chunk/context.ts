/**
 * Where a chunk sits in its document: the document's title and the Markdown headings above the chunk's
 * start. Search indexes this context beside the chunk (keyword and vector), so a passage is found by the name
 * of its page or section even when its own text never says it (docs/search.md).
 */

export interface Heading {
  /** UTF-16 offset of the heading line's first character. */
  offset: number;
  /** 1 (`#`) to 6 (`######`); setext headings: 1 (`===`) or 2 (`---`). */
  level: number;
  text: string;
}

/** Longest context kept: a title or heading path longer than this says little more and would crowd the chunk. */
export const MAX_CONTEXT_CHARS = 300;
const SEPARATOR = " > ";

/**
 * The Markdown headings of a text, in order: ATX (`## Title`) and setext (a line underlined with `===` or
 * `---`), outside fenced code blocks.
 */
export function headings(text: string): Heading[] {
  const found: Heading[] = [];
  let fence: string | undefined;
  let offset = 0;
  let previous: { offset: number; text: string } | undefined;
  const lines = text.split("\n");
  // A Windows line end's \r is no part of the line (a title had been lost to it).
  const lineAt = (k: number) => {
    const raw = lines[k] ?? "";
    return raw.endsWith("\r") ? raw.slice(0, -1) : raw;
  };
  for (let k = 0; k < lines.length; k++) {
    const lineOffset = offset;
    offset += (lines[k] ?? "").length + 1;
    let line = lineAt(k);
    const trimmed = line.trim();
    const marker = /^(`{3,}|~{3,})/.exec(trimmed)?.[1];
    if (marker) {
      if (fence === undefined) fence = marker[0];
      else if (marker[0] === fence) fence = undefined;
      previous = undefined;
      continue;
    }
    if (fence !== undefined) continue;
    // A closing run of #s needs a space before it: "Learning C#" keeps its #.
    // Pandoc's `-t gfm` wraps a heading's HTML tag onto the next lines (`<a href="#x" class="headerlink"` then
    // `title="...">¶</a>`): the heading goes on until the tag ends.
    for (
      let more = 0;
      more < MAX_TAG_LINES && /^ {0,3}#{1,6}[ \t]/.test(line) && (more ? OPEN_TAG : ATTRIBUTED_TAG).test(line);
      more++
    ) {
      if (k + 1 >= lines.length) break;
      offset += (lines[++k] ?? "").length + 1;
      line = `${line} ${lineAt(k).trim()}`;
    }
    const atx = atxHeading(line);
    if (atx) {
      const title = clean(atx.text);
      if (title) found.push({ offset: lineOffset, level: atx.level, text: title });
      previous = undefined;
      continue;
    }
    if (previous && /^ {0,3}(=+|-+)[ \t]*$/.test(line)) {
      const title = clean(previous.text);
      if (title) found.push({ offset: previous.offset, level: trimmed.startsWith("=") ? 1 : 2, text: title });
      previous = undefined;
      continue;
    }
    // A setext heading is one line of text directly above its underline (a list item or quote is not).
    previous = trimmed && !/^([-*+>]|\d+[.)])\s/.test(trimmed) ? { offset: lineOffset, text: trimmed } : undefined;
  }
  return found;
}

/**
 * An ATX heading's level and text, less its closing `#`s. Read without one regex: `(.*?)(?:[ \t]+#+)?[ \t]*$` tried
 * each end of the lazy text against the rest of the line, in the square of its length ("# a", 100,000 spaces and "b"
 * took 30 s of one request).
 */
function atxHeading(line: string): { level: number; text: string } | undefined {
  const open = /^ {0,3}(#{1,6})[ \t]+/.exec(line);
  // The regex's `.` stopped at these, so a line holding one was no heading (an old Mac file's "\r" line ends).
  if (!open || /[\r\u2028\u2029]/.test(line)) return undefined;
  const blank = (i: number) => line[i] === " " || line[i] === "\t";
  let end = line.length;
  while (end > open[0].length && blank(end - 1)) end--;
  // A closing sequence: `#`s after a space or tab of the text.
  let hashes = end;
  while (hashes > open[0].length && line[hashes - 1] === "#") hashes--;
  if (hashes < end && hashes > open[0].length && blank(hashes - 1)) {
    end = hashes;
    while (end > open[0].length && blank(end - 1)) end--;
  }
  return { level: (open[1] ?? "#").length, text: line.slice(open[0].length, end) };
}

/** Lines a heading's HTML tag may be wrapped onto. */
const MAX_TAG_LINES = 4;
/** HTML elements that sit inside a heading's text (CommonMark passes them through as raw HTML). */
const INLINE_TAGS =
  "a|abbr|b|bdi|bdo|cite|code|data|del|dfn|em|font|i|ins|kbd|mark|q|s|samp|small|span|strong|sub|sup|time|u|var";
/** An inline element holding text only, its name in $1, its text in $3. */
const PAIRED_TAG = new RegExp(`<(${INLINE_TAGS})(\\s[^<>]*)?>([^<]*)</\\1\\s*>`, "gi");
/** An opening tag with attributes whose end is not in the heading (`<span id="x">`) or cut off at its end, and `<br>`. */
// `[^<>=]*=`: the first "=" ends the scan (`[^<>]*=` backtracked through every "=" of a long line, in the square of
// its length).
const LONE_TAG = new RegExp(`<(?:${INLINE_TAGS}|img|br|wbr)\\s[^<>=]*=[^<>]*(?:>|$)|<(?:br|wbr)\\s*/?>`, "gi");

/** A line ending inside an inline tag with an attribute (`<a href="#x" class="headerlink"`), or inside any inline tag. */
const ATTRIBUTED_TAG = new RegExp(`<(?:${INLINE_TAGS})\\s[^<>=]*=[^<>]*$`, "i");
const OPEN_TAG = new RegExp(`<(?:${INLINE_TAGS})(?:\\s[^<>]*)?$`, "i");

/**
 * A heading's inline HTML as its text (Pandoc's `-t gfm` of a Sphinx page: `<span class="section-number">4.
 * </span>More Control Flow Tools<a class="headerlink">¶</a>`), a permalink's `¶` dropped as a web page's is. A tag
 * named alone, with no attributes and no end tag, is text: MDN's heading "<span>: The Content Span element".
 */
function withoutTags(heading: string): string {
  if (!heading.includes("<")) return heading;
  let text = heading;
  for (let before = ""; before !== text; ) {
    before = text;
    text = text.replace(PAIRED_TAG, (_tag, name: string, _attributes, inner: string) =>
      name.toLowerCase() === "a" && /^[\s¶§#\u200b]*$/.test(inner) ? "" : inner,
    );
  }
  return text.replace(LONE_TAG, "");
}

/**
 * Inline Markdown a heading may carry (emphasis, code, links, backslash escapes, HTML) reduced to its words. A code span is
 * kept as written, and emphasis marks go only at a word's edges, as CommonMark reads them: `add_argument()` and
 * my_app had lost their underscores ("The addargument() method").
 */
function clean(heading: string): string {
  return withoutTags(heading)
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .split(/(`+[^`]*`+)/)
    .map((part, i) =>
      i % 2
        ? part.replace(/^`+\s?|\s?`+$/g, "")
        : part
            // A pair of marks around words, opening and closing at word edges; an unpaired one is text (_id, *args).
            .replace(/(^|[\s([{"'])(\*{1,3}|_{1,3})(?=[^\s*_])([^*_]*?[^\s*_\\])\2(?=$|[\s)\]}"'.,:;!?])/g, "$1$3")
            .replace(/\\([\\`*_{}[\]()#+\-.!<>|~])/g, "$1"),
    )
    .join("")
    .replace(/\s+/g, " ")
    .trim();
}

/**
 * The path of headings in force at each of `starts` (ascending; a heading starting there included), outermost
 * first, without the headings at its start that repeat the title (a PDF may set the title, then the same words as
 * its first heading): the title is said apart, in the context, and is no location.
 */
export function headingPaths(title: string | null | undefined, text: string, starts: number[]): string[][] {
  const all = headings(text);
  const base = title?.replace(/\s+/g, " ").trim().toLowerCase() ?? "";
  const path: Heading[] = [];
  let next = 0;
  return starts.map((start) => {
    while (next < all.length && (all[next] as Heading).offset <= start) {
      const heading = all[next++] as Heading;
      while (path.length && (path.at(-1) as Heading).level >= heading.level) path.pop();
      path.push(heading);
    }
    const names = path.map((h) => h.text);
    while (base && names[0]?.toLowerCase() === base) names.shift();
    return names;
  });
}

/**
 * The context of each chunk starting at `starts[i]`: the title, then its path of headings (`headingPaths`), joined
 * by " > ". Empty when there is neither.
 */
export function contexts(title: string | null | undefined, text: string, starts: number[]): string[] {
  const base = title?.replace(/\s+/g, " ").trim() ?? "";
  return headingPaths(title, text, starts).map((names) => {
    const joined = [base, ...names].filter(Boolean).join(SEPARATOR);
    return joined.length > MAX_CONTEXT_CHARS ? `${joined.slice(0, MAX_CONTEXT_CHARS - 1).trimEnd()}…` : joined;
  });
}

/** How many turns before a conversation turn are embedded with it, and how much of each. */
export const PRECEDING_TURNS = 2;
export const PRECEDING_TURN_CHARS = 300;

/**
 * What a conversation turn is embedded after: the turns before it, oldest first, each cut to
 * PRECEDING_TURN_CHARS and put on one line. An answer ("Mostly abstract painting.") rarely repeats what it answers
 * ("What kind of art do you make?"); the question is in the turn before it (docs/search.md, "Conversation turns").
 */
export function precedingText(turns: string[]): string {
  return turns
    .slice(-PRECEDING_TURNS)
    .map((turn) => {
      // Cut before anything else, so a turn read back cut to its first PRECEDING_TURN_CHARS + 1 characters
      // (ingest's query) gives the same text as the whole turn.
      let cut = turn.slice(0, PRECEDING_TURN_CHARS);
      if (/[\ud800-\udbff]$/.test(cut)) cut = cut.slice(0, -1);
      const flat = cut.replace(/\s+/g, " ").trim();
      return flat && turn.length > PRECEDING_TURN_CHARS ? `${flat}…` : flat;
    })
    .filter(Boolean)
    .join("\n");
}

/**
 * The text a chunk is embedded as: its context on the first line, then the turns it follows (conversation turns
 * only), then its content.
 */
export const embeddingText = (context: string, content: string, preceding = ""): string =>
  [context, preceding, content].filter(Boolean).join("\n\n");
