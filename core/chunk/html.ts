/** HTML to plain text for chunking: block elements become lines, scripts and styles are dropped. Linear time. */

/** A word that starts an ATX heading when it starts a line. */
const ATX_MARK = /^(#{1,6}|=+|-{3,})$/;

/** Elements whose content is dropped entirely. */
const DROPPED = new Set(["script", "style", "noscript", "head", "template", "svg", "iframe", "object"]);
/** Elements that start and end a block (a line of their own). */
const BLOCK = new Set([
  "address",
  "article",
  "aside",
  "blockquote",
  "body",
  "caption",
  "dd",
  "details",
  "dialog",
  "div",
  "dl",
  "dt",
  "fieldset",
  "figcaption",
  "figure",
  "footer",
  "form",
  "header",
  "hgroup",
  "html",
  "legend",
  "main",
  "menu",
  "nav",
  "ol",
  "section",
  "summary",
  "table",
  "tbody",
  "tfoot",
  "thead",
  "tr",
  "ul",
]);
/** Elements separated from their neighbours by a blank line. */
const PARAGRAPH = new Set(["p", "blockquote", "pre", "table", "ul", "ol", "dl", "figure", "section", "article", "hr"]);
/** A div's attributes naming it a paragraph (DocBook's Publican pages: `<div class="para">`). */
const PARAGRAPH_DIV = /\bclass\s*=\s*(["'])(?:[^"']*\s)?(?:para|paragraph|simpara)(?:\s[^"']*)?\1/i;
/**
 * A div's attributes naming it a box set beside the text (DocBook's and Apache's `<div class="note">` with an `<h3>`
 * title, "Note", "Warning", "Example"): its title heads the box alone, not the section's text after it.
 */
const BOX_DIV =
  /\bclass\s*=\s*(["'])(?:[^"']*\s)?(?:note|tip|hint|warning|caution|important|attention|danger|admonition|example)(?:\s[^"']*)?\1/i;
/** Text of a heading's permalink anchor (Sphinx's ¶, GitHub's and Docusaurus' #, empty icon links). */
export const PERMALINK = /^[\s\u200b¶§#🔗]*$/u;

const LATIN1_ENTITIES =
  "nbsp iexcl cent pound curren yen brvbar sect uml copy ordf laquo not shy reg macr deg plusmn sup2 sup3 acute " +
  "micro para middot cedil sup1 ordm raquo frac14 frac12 frac34 iquest Agrave Aacute Acirc Atilde Auml Aring AElig " +
  "Ccedil Egrave Eacute Ecirc Euml Igrave Iacute Icirc Iuml ETH Ntilde Ograve Oacute Ocirc Otilde Ouml times Oslash " +
  "Ugrave Uacute Ucirc Uuml Yacute THORN szlig agrave aacute acirc atilde auml aring aelig ccedil egrave eacute " +
  "ecirc euml igrave iacute icirc iuml eth ntilde ograve oacute ocirc otilde ouml divide oslash ugrave uacute ucirc " +
  "uuml yacute thorn yuml";

const OTHER_ENTITIES: Record<string, number> = {
  amp: 0x26,
  lt: 0x3c,
  gt: 0x3e,
  quot: 0x22,
  apos: 0x27,
  OElig: 0x152,
  oelig: 0x153,
  Scaron: 0x160,
  scaron: 0x161,
  Yuml: 0x178,
  fnof: 0x192,
  circ: 0x2c6,
  tilde: 0x2dc,
  ensp: 0x2002,
  emsp: 0x2003,
  thinsp: 0x2009,
  zwnj: 0x200c,
  zwj: 0x200d,
  lrm: 0x200e,
  rlm: 0x200f,
  ndash: 0x2013,
  mdash: 0x2014,
  lsquo: 0x2018,
  rsquo: 0x2019,
  sbquo: 0x201a,
  ldquo: 0x201c,
  rdquo: 0x201d,
  bdquo: 0x201e,
  dagger: 0x2020,
  Dagger: 0x2021,
  bull: 0x2022,
  hellip: 0x2026,
  permil: 0x2030,
  prime: 0x2032,
  Prime: 0x2033,
  lsaquo: 0x2039,
  rsaquo: 0x203a,
  euro: 0x20ac,
  trade: 0x2122,
  larr: 0x2190,
  uarr: 0x2191,
  rarr: 0x2192,
  darr: 0x2193,
  harr: 0x2194,
  rArr: 0x21d2,
  hArr: 0x21d4,
  minus: 0x2212,
  infin: 0x221e,
  ne: 0x2260,
  le: 0x2264,
  ge: 0x2265,
  asymp: 0x2248,
  check: 0x2713,
};

let entityTable: Map<string, string> | undefined;

function entities(): Map<string, string> {
  if (entityTable) return entityTable;
  const table = new Map<string, string>();
  const latin1 = LATIN1_ENTITIES.split(" ");
  for (let i = 0; i < latin1.length; i++) table.set(latin1[i]!, String.fromCharCode(0xa0 + i));
  for (const [name, cp] of Object.entries(OTHER_ENTITIES)) table.set(name, String.fromCodePoint(cp));
  table.set("nbsp", " ");
  table.set("shy", "");
  entityTable = table;
  return table;
}

/** Windows-1252 meanings of numeric references &#128; to &#159;, as browsers decode them. */
const CP1252 =
  "\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f" +
  "\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178";

function decodeNumeric(body: string): string | undefined {
  const hex = body[1] === "x" || body[1] === "X";
  const digits = body.slice(hex ? 2 : 1);
  if (digits.length === 0 || !(hex ? /^[0-9a-fA-F]+$/ : /^[0-9]+$/).test(digits)) return undefined;
  const cp = Number.parseInt(digits, hex ? 16 : 10);
  if (cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return "\ufffd";
  if (cp >= 0x80 && cp <= 0x9f) return CP1252[cp - 0x80];
  return String.fromCodePoint(cp);
}

/** Whether text is a whole web page: a doctype, or an <html>, <head> or <body> first (an XML declaration and comments aside). */
export function isWebPage(text: string): boolean {
  const start = text.trimStart().slice(0, 1024).toLowerCase();
  return /^(<\?xml[^>]*>\s*)?(<!--[\s\S]*?-->\s*)*<(!doctype html|html|head|body)\b/.test(start);
}

/** A page's <title>, entities decoded and spaces collapsed; not an inline SVG's. */
export function pageTitle(html: string): string | undefined {
  const raw = /<title[^>]*>([^<]*)<\/title>/i.exec(html.replace(/<svg[\s\S]*?<\/svg>/gi, ""))?.[1];
  return (
    decodeEntities(raw ?? "")
      .replace(/\s+/g, " ")
      .trim() || undefined
  );
}

/** Decodes character references: named ones (HTML's common set) and numeric ones; unknown ones are kept. */
export function decodeEntities(s: string): string {
  if (!s.includes("&")) return s;
  return s.replace(/&(#[xX]?[0-9a-fA-F]{1,8}|[a-zA-Z][a-zA-Z0-9]{1,31});/g, (whole, body: string) => {
    if (body[0] === "#") return decodeNumeric(body) ?? whole;
    return entities().get(body) ?? whole;
  });
}

/** How far a cell's end is looked for; a longer cell is a layout cell. */
const CELL_LOOKAHEAD = 4000;

/** Whether the cell whose start tag ends at `from` is a data cell: its end within reach, no table, heading or code in it. */
function isDataCell(html: string, from: number): boolean {
  const ahead = html.slice(from, from + CELL_LOOKAHEAD);
  const end = ahead.search(/<\/?(?:td|th|tr)\b|<\/table\b/i);
  return end >= 0 && !/<(?:h[1-6]|pre|table)\b/i.test(ahead.slice(0, end));
}

/**
 * Converts an HTML document or fragment to plain text for chunking.
 *
 * Drops comments, doctype/processing instructions and the content of script, style, noscript, head, template,
 * svg, iframe and object. Keeps block structure as line breaks (p, div, li, tr, br, headings, ...; a blank line
 * around paragraphs, lists, tables and pre). Headings h1-h6 become "# " to "###### " lines; list items "- " or
 * "1. ", a nested list's indented under its item's text;
 * table cells in a row are joined by " | "; pre content keeps its whitespace inside a ``` fence. Elsewhere runs of
 * whitespace collapse to one space. Character references are decoded (&nbsp; becomes a space). Tolerant of
 * malformed markup; linear time; no dependency.
 */
export function htmlToText(html: string): string {
  const out: string[] = [];
  /** Newlines at the end of out (a large number while out is empty, so nothing leads with a break). */
  let trailingNewlines = Number.POSITIVE_INFINITY;
  let trailingSpace = false;
  /** Newlines wanted before the next text (0, 1 or 2). */
  let pendingBreak = 0;
  /** Whitespace was seen since the last text. */
  let pendingSpace = false;
  let preDepth = 0;
  let preStart = false;
  let headingLevel = 0;
  const cells: number[] = [];
  /** Open lists, innermost last: the next item's number in an `ol`, 0 in a `ul`. */
  const lists: number[] = [];
  /** Per open list, the width of its current item's marker: a nested item is indented by its parents' (Markdown's rule). */
  const markerWidths: number[] = [];
  /**
   * Right after a list item's marker or at a cell's start, until text comes: Word and Sphinx wrap an item's or a
   * cell's text in a <p>, whose break would leave the marker or the cell's separator alone on its line.
   */
  let holdBreaks = false;
  /** A list item's marker, written before the item's first text (an item with none gets no bare "-" line). */
  let marker = "";
  /** Table cells open: a line break inside one is a space, so its row stays one line. */
  let cellDepth = 0;
  /**
   * In a data cell (no table, heading or code inside, and short): its paragraphs, lines and list items are joined with
   * spaces, so the row stays one line. A layout cell (a page built in a table) keeps its blocks.
   */
  let inlineCell = false;
  /** The last thing written closed a code fence: the next cell's separator starts a line of its own. */
  let afterFence = false;
  /** The table row open has written something: only then does a cell's separator continue its line. */
  let rowText = false;
  /** The code fence of the <pre> open. */
  let fence = "```";
  /** Open divs, innermost last: whether each is a paragraph (PARAGRAPH_DIV), and whether a box (BOX_DIV). */
  const divs: { paragraph: boolean; box: boolean }[] = [];
  /**
   * A box div opened and its first heading, its title, not yet come: that heading is written as a line of text. Only
   * the first: a box left unclosed in a page's HTML had made every later heading of the page a line.
   */
  let boxTitlePending = false;
  /** Inside a box's title heading. */
  let inBoxTitle = false;

  /** The indent of text under the items open at the first `levels` lists: their markers' widths. */
  const indentOf = (levels: number) => markerWidths.slice(0, levels).reduce((sum, width) => sum + width, 0);
  const requestBreak = (lines: number) => {
    if (inlineCell) pendingSpace = true;
    else if (!holdBreaks && lines > pendingBreak) pendingBreak = lines;
  };
  const push = (s: string) => {
    out.push(s);
    let k = s.length;
    while (k > 0 && s.charCodeAt(k - 1) === 10) k--;
    trailingNewlines = k === 0 ? trailingNewlines + s.length : s.length - k;
    trailingSpace = k > 0 && k === s.length && s.charCodeAt(k - 1) === 32;
  };
  /** `bare`: written as it is, at a line's start too (a list marker carries its own indent; a fence starts its line). */
  const emit = (s: string, bare = false) => {
    if (s.length === 0) return;
    if (marker) {
      const m = marker;
      marker = "";
      emit(m, true);
      holdBreaks = false;
    }
    afterFence = false;
    rowText = true;
    const need = pendingBreak - trailingNewlines;
    if (need > 0) {
      push("\n".repeat(need));
      // A list item's paragraph after its first (or after a nested list) stays in the item: indented under its text.
      if (!bare && lists.length > 0 && preDepth === 0 && cellDepth === 0) push(" ".repeat(indentOf(lists.length)));
    } else if (pendingSpace && trailingNewlines === 0 && !trailingSpace) push(" ");
    pendingBreak = 0;
    pendingSpace = false;
    holdBreaks = false;
    push(s);
  };
  const text = (raw: string) => {
    if (raw.length === 0) return;
    let decoded = decodeEntities(raw);
    if (preDepth > 0) {
      if (preStart && decoded.startsWith("\n")) decoded = decoded.slice(1);
      preStart = false;
      emit(decoded);
      return;
    }
    // A cell's own "|" (Python's "x | y") would read as one more column: escaped, as Markdown tables write it.
    if (inlineCell) decoded = decoded.replaceAll("|", "\\|");
    const parts = decoded.split(/[ \t\n\r\f\v]+/);
    for (let i = 0; i < parts.length; i++) {
      if (i > 0) pendingSpace = true;
      const word = parts[i]!;
      // A paragraph's "# Hello" (a comment in code Word set as plain paragraphs) would read as a Markdown heading and
      // head every passage after it, and a line of "===" or "---" would make the line above one: escaped. Not after a
      // list item's marker, where it underlines nothing ("- =: equal to", a list of operators).
      const heading =
        headingLevel === 0 &&
        ATX_MARK.test(word) &&
        (word[0] === "#" || !marker) &&
        (pendingBreak > 0 || trailingNewlines > 0);
      emit(heading ? `\\${word}` : word);
    }
  };

  const n = html.length;
  let i = 0;
  let textStart = 0;
  while (i < n) {
    const lt = html.indexOf("<", i);
    if (lt < 0) break;
    const next = html.charCodeAt(lt + 1);
    // Comments, doctype, CDATA, processing instructions.
    if (next === 0x21 /* ! */ || next === 0x3f /* ? */) {
      text(html.slice(textStart, lt));
      let close: number;
      if (html.startsWith("<!--", lt)) {
        close = html.indexOf("-->", lt + 4);
        close = close < 0 ? n : close + 3;
      } else if (html.startsWith("<![CDATA[", lt)) {
        const e = html.indexOf("]]>", lt + 9);
        text(html.slice(lt + 9, e < 0 ? n : e));
        close = e < 0 ? n : e + 3;
      } else {
        close = html.indexOf(">", lt + 2);
        close = close < 0 ? n : close + 1;
      }
      i = textStart = close;
      continue;
    }
    const closing = next === 0x2f; /* / */
    const nameStart = lt + (closing ? 2 : 1);
    let j = nameStart;
    while (j < n && isTagNameChar(html.charCodeAt(j))) j++;
    if (j === nameStart || !isAsciiLetter(html.charCodeAt(nameStart))) {
      i = lt + 1; // a literal "<"
      continue;
    }
    const name = html.slice(nameStart, j).toLowerCase();
    const end = findTagEnd(html, j);
    text(html.slice(textStart, lt));
    i = textStart = end;

    if (!closing && DROPPED.has(name)) {
      const selfClosing = html.charCodeAt(end - 2) === 0x2f && name !== "script" && name !== "style";
      if (selfClosing) continue;
      const re = new RegExp(name === "head" ? "</head\\s*>|<body[\\s>]" : `</${name}\\s*>`, "gi");
      re.lastIndex = end;
      const m = re.exec(html);
      if (name === "head" && !m) continue; // no end of head: parse its content as usual
      i = textStart = m ? (m[0][1] === "/" ? m.index + m[0].length : m.index) : n;
      requestBreak(1);
      continue;
    }

    if (name.length === 2 && name[0] === "h" && name[1]! >= "1" && name[1]! <= "6") {
      holdBreaks = false;
      requestBreak(2);
      // A note's "Note" as a heading had headed every passage of the section after the note (docs/extract.md).
      if (!closing && boxTitlePending) {
        boxTitlePending = false;
        inBoxTitle = true;
        continue;
      }
      if (closing && inBoxTitle) {
        inBoxTitle = false;
        continue;
      }
      if (closing) {
        headingLevel = 0;
      } else {
        headingLevel = name.charCodeAt(1) - 0x30;
        emit(`${"#".repeat(headingLevel)} `);
      }
      continue;
    }
    // A heading's permalink (Apache's and Sphinx's "¶") would be a word of the heading, in every heading path.
    if (name === "a" && !closing && /\bhref\s*=\s*["']?#/i.test(html.slice(j, end))) {
      // Looked for within the next 200 characters only: searched to the end for every link, a page of 100,000 of
      // them took 20 s.
      const near = html.slice(end, end + 203).indexOf("</a");
      const close = near < 0 ? -1 : end + near;
      if (close >= 0 && PERMALINK.test(decodeEntities(html.slice(end, close).replace(/<[^>]*>/g, "")))) {
        i = textStart = findTagEnd(html, close + 3);
        continue;
      }
    }
    switch (name) {
      case "br":
        if (headingLevel > 0 || cellDepth > 0) pendingSpace = true;
        else if (out.length > 0) {
          push("\n");
          pendingSpace = false;
        }
        break;
      case "ol":
      case "ul":
        if (closing) {
          lists.pop();
          markerWidths.pop();
        } else {
          lists.push(name === "ol" ? olStart(html.slice(j, end)) : 0);
          markerWidths.push(0);
        }
        // A list inside an item is part of the item's block: a line break, not a paragraph's.
        requestBreak(lists.length > (closing ? 0 : 1) ? 1 : 2);
        break;
      case "li":
        holdBreaks = false;
        // An item's last paragraph ends the item's line, not a paragraph: the list stays one block.
        if (closing) pendingBreak = Math.min(pendingBreak, 1);
        requestBreak(1);
        if (!closing) {
          const k = lists.length - 1;
          const n = k >= 0 ? lists[k]! : 0;
          const own = n > 0 ? `${n}. ` : "- ";
          if (n > 0) lists[k] = n + 1;
          if (k >= 0) markerWidths[k] = own.length;
          marker = " ".repeat(indentOf(k)) + own;
          holdBreaks = true;
        } else marker = "";
        break;
      case "pre":
        if (!closing) {
          holdBreaks = false; // a fence starts a line, in a cell or a list item too
          requestBreak(2);
          // Not a fence a line of the block could close.
          if (preDepth === 0) fence = fenceFor(html.slice(end, html.indexOf("</pre", end) >>> 0));
          emit(`${fence}\n`, true);
          preDepth++;
          preStart = true;
        } else if (preDepth > 0) {
          preDepth--;
          if (trailingNewlines === 0) push("\n");
          push(fence);
          afterFence = true;
          requestBreak(2);
        }
        break;
      case "div": {
        // A DocBook (Publican) page writes its paragraphs as <div class="para">: each a paragraph, as a <p> is.
        if (!closing) {
          const attributes = html.slice(j, end);
          divs.push({ paragraph: PARAGRAPH_DIV.test(attributes), box: BOX_DIV.test(attributes) });
        }
        const div = closing ? divs.pop() : divs.at(-1);
        if (div?.box) boxTitlePending = !closing;
        requestBreak(div?.paragraph ? 2 : 1);
        break;
      }
      case "sup":
      case "a":
        // A footnote's mark written onto its word ("Kilimanjaro<sup>1</sup>", Sphinx's footnote-reference link) made
        // one word of them ("Kilimanjaro1"), which no search for the word finds: the mark is a word of its own.
        if (!closing && (name === "sup" || /footnote|noteref/i.test(html.slice(j, end)))) pendingSpace = true;
        break;
      case "tr":
        inlineCell = false;
        holdBreaks = false;
        rowText = false;
        requestBreak(1);
        if (!closing) cells.push(0);
        else cells.pop();
        break;
      case "td":
      case "th": {
        const k = cells.length - 1;
        if (closing) {
          inlineCell = false;
          cellDepth = Math.max(0, cellDepth - 1);
          // A break the cell's last paragraph asked for is not kept; one from before an empty cell (its row's) is.
          if (!holdBreaks && !afterFence) pendingBreak = 0;
          holdBreaks = false;
        } else {
          cellDepth++;
          inlineCell = false; // the cell before, if not closed
        }
        if (closing || k < 0) pendingSpace = true;
        else {
          if (cells[k]! > 0) {
            // The cell before ends the same line, unless it ended a code fence, which only a line may follow.
            if (rowText && !afterFence) pendingBreak = 0;
            pendingSpace = false;
            emit(" | ");
          }
          cells[k] = cells[k]! + 1;
          holdBreaks = true;
          inlineCell = isDataCell(html, end);
        }
        break;
      }
      default:
        if (name === "table") inlineCell = false; // a cell left open ends with its table
        if (PARAGRAPH.has(name)) requestBreak(2);
        else if (BLOCK.has(name)) requestBreak(1);
        else if (name === "img" || name === "input" || name === "wbr") pendingSpace = true;
    }
  }
  text(html.slice(textStart));

  return out
    .join("")
    .replace(/[ \t]+$/gm, "")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}

/** Backticks, or tildes for code that holds a line of backticks (which would close a backtick fence early). */
export const fenceFor = (code: string): string => (/(^|\n)\s*```/.test(code) ? "~~~" : "```");

/** Where an `<ol>` counts from: its `start` attribute, else 1. */
function olStart(attributes: string): number {
  const start = /\bstart\s*=\s*["']?(\d{1,9})/i.exec(attributes)?.[1];
  return start ? Math.max(1, Number(start)) : 1;
}

function isAsciiLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

function isTagNameChar(c: number): boolean {
  return isAsciiLetter(c) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x3a;
}

/** Offset just past the ">" that ends the tag whose name ends at i, skipping quoted attribute values. */
function findTagEnd(html: string, i: number): number {
  const n = html.length;
  for (let j = i; j < n; j++) {
    const c = html.charCodeAt(j);
    if (c === 0x3e) return j + 1;
    if (c !== 0x22 && c !== 0x27) continue;
    // A quote opens a value only right after "=" (spaces allowed); a stray quote is ignored.
    let k = j - 1;
    while (k > i && isHtmlSpace(html.charCodeAt(k))) k--;
    if (html.charCodeAt(k) !== 0x3d) continue;
    const close = html.indexOf(c === 0x22 ? '"' : "'", j + 1);
    if (close < 0) return n;
    j = close;
  }
  return n;
}

function isHtmlSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0c;
}
