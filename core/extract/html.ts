/**
 * A web page's content: its main element (or its one article, else its body) on linkedom's server-side DOM, less
 * what is marked as navigation, sidebars, footers or site banners, then `htmlToText` with `#` headings. Nothing
 * is judged by how it reads: Mozilla's Readability, used until 2026-12-06, kept one section of most manual pages
 * it was given (72% of the Git manual's words; docs/extract.md, "Web pages").
 */
import { parseHTML } from "linkedom";
import { decodeEntities, htmlToText, PERMALINK, pageTitle } from "../chunk/html";
import { firstHeading } from "./markdown";

/** Landmark roles that are never a page's content. */
const CHROME_ROLES = new Set(["navigation", "search", "banner", "contentinfo", "complementary"]);
/**
 * Class names (or their `-`/`_` parts) and ids that site templates give to chrome. Read only outside a page's
 * main element: inside it, a Sphinx `sidebar` directive or a footnote `aside` is content.
 */
const CHROME_NAMES = new Set([
  "nav",
  "navbar",
  "navigation",
  "navheader",
  "navfooter",
  "docnav",
  "banner",
  // Texinfo's "Next: ... Previous: ... Up: ..." bar above every node of a GNU manual (a site's header with the page's h1
  // in it stays, as any element holding the h1 does).
  "header",
  "menu",
  "breadcrumb",
  "breadcrumbs",
  "toc",
  "sidebar",
  "sphinxsidebar",
  "sphinxsidebarwrapper",
  "related",
  "footer",
  "cookie",
  "cookies",
  "skip",
  "share",
  "social",
  "comments",
  "advert",
  "ads",
  // What a site marks as not for its own search index: SQLite's logo, tagline and menus.
  "nosearch",
]);

/** Text of a footnote's link back to where it is cited (Pandoc's ↩︎, Word's ↑ through mammoth). */
const BACKLINK = /^\s*[↩↑⤴^][\ufe0e\ufe0f]?\s*$/u;

const words = (value: string | null) => (value ?? "").toLowerCase().split(/[\s_-]+/);

/** Share of the body's text past which an element named as chrome is kept: a layout wrapper (`has-sidebar`), or content. */
const CHROME_MAX_SHARE = 0.2;

/**
 * Nesting past which a page is read as plain text, without the DOM: htmlparser2 (under linkedom) keeps its open
 * elements in an array it shifts, so its parse takes time in the square of the nesting (128,000 levels: 20 s; each
 * unclosed `<li><p>` two levels), and so would the DOM's walks. Far past any real page's.
 */
const MAX_DEPTH = 5_000;

/** Elements with no end (htmlparser2's void elements). */
const VOID = new Set(
  "area base basefont br col command embed frame hr img input isindex keygen link meta param source track wbr".split(
    " ",
  ),
);
const P = new Set(["p"]);
/** Open elements that a start tag closes first, as htmlparser2 closes them (an unclosed `<p>` before a `<div>`). */
const CLOSED_BY = new Map<string, Set<string>>([
  ..."address article aside blockquote details div dl fieldset figcaption figure footer form header hr main nav ol p pre section table ul h1 h2 h3 h4 h5 h6"
    .split(" ")
    .map((name): [string, Set<string>] => [name, P]),
  ["li", new Set(["li"])],
  ["dd", new Set(["dd", "dt"])],
  ["dt", new Set(["dd", "dt"])],
  ["tr", new Set(["tr", "th", "td"])],
  ["td", new Set(["thead", "th", "td"])],
  ["th", new Set(["th"])],
  ["tbody", new Set(["thead", "tbody"])],
  ["tfoot", new Set(["thead", "tbody"])],
  ["option", new Set(["option"])],
  ["optgroup", new Set(["optgroup", "option"])],
]);

/**
 * Whether the parse would nest elements more than `limit` deep: its stack of open elements followed tag by tag, outside
 * comments, scripts and styles (a minified script's `i<e.length` reads as tags), with the closes the parser implies.
 * One pass: an end tag pops to its element, each element popped once. The name is matched whole (`(?![\w-])`): a name
 * and the attributes after it could both take a run of letters, tried at every split.
 */
function nestsPast(html: string, limit: number): boolean {
  const stack: string[] = [];
  const open = new Map<string, number>();
  const pop = () => {
    const name = stack.pop() as string;
    open.set(name, (open.get(name) ?? 1) - 1);
    return name;
  };
  const text = html.replace(/<!--[\s\S]*?(?:-->|$)|<(script|style)\b[^<>]*>[\s\S]*?(?:<\/\1\s*>|$)/gi, "");
  for (const tag of text.matchAll(/<(\/?)([a-zA-Z][a-zA-Z0-9-]*)(?![\w-])[^<>]*>/g)) {
    const name = (tag[2] ?? "").toLowerCase();
    if (VOID.has(name)) continue;
    if (tag[1]) {
      if (open.get(name)) while (pop() !== name);
      continue;
    }
    const closes = CLOSED_BY.get(name);
    while (closes && stack.length && closes.has(stack[stack.length - 1] as string)) pop();
    stack.push(name);
    open.set(name, (open.get(name) ?? 0) + 1);
    if (stack.length > limit) return true;
  }
  return false;
}

/** Where an element sits: inside a heading (itself one included), or below a table. */
interface Placement {
  inHeading: boolean;
  belowTable: boolean;
}

/**
 * Every element under `root` in document order, with its placement, in one walk: asked of each element (`closest`),
 * it cost time in the square of the page's depth (16,000 nested divs: 19 s of one upload).
 */
function placed(root: Element): [Element, Placement][] {
  const out: [Element, Placement][] = [];
  const stack: [Element, Placement][] = [];
  const push = (parent: Element, at: Placement) => {
    const below = { inHeading: at.inHeading, belowTable: at.belowTable || parent.tagName.toLowerCase() === "table" };
    const children = Array.from(parent.children);
    for (let i = children.length - 1; i >= 0; i--) {
      const child = children[i] as Element;
      stack.push([child, { ...below, inHeading: below.inHeading || /^h[1-6]$/i.test(child.tagName) }]);
    }
  };
  push(root, { inHeading: /^h[1-6]$/i.test(root.tagName), belowTable: false });
  for (let next = stack.pop(); next; next = stack.pop()) {
    out.push(next);
    push(next[0], next[1]);
  }
  return out;
}

/** Removes every element the selector matches, and those `chrome` says are not content. */
function prune(root: Element, selector: string, chrome?: (element: Element, at: Placement) => boolean): void {
  for (const element of Array.from(root.querySelectorAll(selector))) element.remove();
  if (!chrome) return;
  const total = (root.textContent ?? "").length;
  // Every element, not "[class], [id], [role]": linkedom's selectors miss an attribute named in capitals
  // (see attribute).
  for (const [element, at] of placed(root)) {
    if (!element.isConnected || !chrome(element, at)) continue;
    // A page's h1, or a fifth of its text, is no sidebar, whatever its class says; unless the page says it is not for
    // search (a short page's site header is more than a fifth of it).
    const large = element.querySelector("h1") || (element.textContent ?? "").length > total * CHROME_MAX_SHARE;
    if (large && !words(attribute(element, "class")).includes("nosearch")) continue;
    element.remove();
  }
}

/**
 * An attribute whatever the case of its name: HTML's are case-insensitive, but linkedom keeps the case written, and
 * old generators write `CLASS="NAVHEADER"` (DocBook's DSSSL pages), which `getAttribute("class")` did not find.
 */
function attribute(element: Element, name: string): string | null {
  // linkedom answers "" (not null) for an attribute it holds under another case.
  const direct = element.getAttribute(name);
  if (direct) return direct;
  for (const attr of Array.from(element.attributes)) if (attr.name.toLowerCase() === name) return attr.value;
  return null;
}

const outsideChrome = (element: Element, at: Placement): boolean =>
  // A heading's ids are its anchors, named after its text: Apache's "Header Directive" is
  // `<h2 id="header"><span id="Header">Header</span> Directive`.
  !at.inHeading &&
  (CHROME_ROLES.has(attribute(element, "role") ?? "") ||
    words(attribute(element, "class")).some((w) => CHROME_NAMES.has(w)) ||
    CHROME_NAMES.has((attribute(element, "id") ?? "").toLowerCase())) &&
  !proseBox(element) &&
  // A part of a table is the table's: Pandoc marks every header row `<tr class="header">`, and the row was dropped.
  // A table that is itself chrome (a DocBook `navheader` table) still goes whole.
  !at.belowTable;

/** Tags of a text's running paragraphs. */
const PROSE = new Set(["p", "pre", "blockquote", "h2", "h3", "h4", "h5", "h6", "table", "dl"]);

/** Characters of an element's own text nodes, without whitespace (a `<div class="para">` holds its text itself). */
const ownText = (element: Element) =>
  Array.from(element.childNodes)
    .filter((node) => node.nodeType === 3)
    .reduce((sum, node) => sum + (node.textContent ?? "").replace(/\s+/g, "").length, 0);

const compact = (element: Element) => (element.textContent ?? "").replace(/\s+/g, "").length;

/**
 * A box named `sidebar` set among a text's paragraphs and written in prose (less than half its text in links): a
 * DocBook sidebar, the TIP, NOTE and BACK TO BASICS boxes of a manual. A site's sidebar sits beside the page's
 * content wrapper, not among its paragraphs, and is mostly links.
 */
function proseBox(element: Element): boolean {
  if (!words(attribute(element, "class")).includes("sidebar")) return false;
  const siblings = Array.from(element.parentElement?.children ?? []).filter((sibling) => sibling !== element);
  if (!siblings.some((s) => PROSE.has(s.tagName.toLowerCase()) || ownText(s) >= 20)) return false;
  const linked = Array.from(element.querySelectorAll("a"), compact).reduce((sum, n) => sum + n, 0);
  return linked * 2 < compact(element);
}

/** A footnote's mark written in brackets: "[1]", "[*]", "[ 2 ]". */
const BRACKETED_MARK = /^\s*\[\s*([^\s[\]]{1,8})\s*\]\s*$/;
/** A footnote reference that is no `<sup>`: Sphinx's and docutils' links, Pandoc's and DPUB-ARIA's roles. */
const NOTE_REFERENCE = "a.footnote-reference, a.fn-backref, [role=doc-noteref], [role=doc-backlink]";

/**
 * A footnote's mark as a plain word ("1"), without the brackets Sphinx (its `fn-bracket` spans), Asciidoctor and
 * Wikipedia write around it: "[1]" in a chat answer quoting the sentence read as citation 1 (docs/extract.md).
 */
function unbracketNotes(root: Element): void {
  for (const bracket of Array.from(root.querySelectorAll("span.fn-bracket"))) bracket.remove();
  for (const mark of Array.from(root.querySelectorAll(`sup, ${NOTE_REFERENCE}`))) {
    const word = BRACKETED_MARK.exec(mark.textContent ?? "")?.[1];
    if (word && mark.isConnected) mark.textContent = word;
  }
}

const clean = (s: string | null | undefined) =>
  decodeEntities(s ?? "")
    .replace(/\s+/g, " ")
    .trim();

/** The element the selector matches, when one holds every other it matches (`<div role="main"><main>` is one). */
function only(root: Element, selector: string): Element | undefined {
  const [first, ...rest] = Array.from(root.querySelectorAll(selector));
  return first && rest.every((element) => first.contains(element)) ? first : undefined;
}

export function extractHtml(html: string): { content: string; title?: string } {
  const title = pageTitle(html);
  let content: string;
  let h1: string | undefined;
  let headingTitle: string | undefined;
  try {
    if (nestsPast(html, MAX_DEPTH)) throw new Error("nested too deep"); // read as text below (MAX_DEPTH)
    const { document } = parseHTML(html);
    const body = (document.body ?? document.documentElement) as Element | null;
    if (!body) throw new Error("no body");
    // Form controls are the page's interface, not its text: a search box's choices ("Search Documentation"), the
    // "show"/"hide" buttons beside every syntax diagram of the SQLite manual.
    prune(body, "script, style, noscript, template, [hidden], select, button, textarea");
    // Permalinks beside headings and definitions (Sphinx's `headerlink`), and footnotes' links back.
    for (const anchor of Array.from(body.querySelectorAll('a[href^="#"], a.headerlink'))) {
      const text = anchor.textContent ?? "";
      if (PERMALINK.test(text) || BACKLINK.test(text)) anchor.remove();
    }
    unbracketNotes(body);
    const main = only(body, "main, [role=main]") ?? only(body, "article");
    // Inside the main element only navigation is left out; outside it, everything marked as chrome.
    if (main) prune(main, "nav, [role=navigation], [role=search]");
    const mainText = main ? htmlToText(main.innerHTML) : "";
    prune(body, "nav, aside, footer", outsideChrome);
    const bodyText = htmlToText(body.innerHTML);
    // A main element that holds almost nothing (a page built around it) leaves the page to the body.
    content = main && mainText.length >= Math.min(500, bodyText.length / 3) ? mainText : bodyText;
    // A fragment the DOM put in <head> (it began with <title>) is read as the text it is.
    if (!content) content = htmlToText(html);
    // The longest h1 the <title> holds: the article's, not the site's logo ("Repairing a chain | My Site").
    const held = Array.from((main ?? body).querySelectorAll("h1"), (h) => clean(h.textContent))
      .filter((text) => text && title?.toLowerCase().includes(text.toLowerCase()))
      .sort((a, b) => b.length - a.length);
    h1 = held[0];
    headingTitle = clean((main ?? body).querySelector("h1, h2, h3, h4, h5, h6")?.textContent) || undefined;
  } catch {
    content = htmlToText(html);
  }
  return { content, title: h1 || title || headingTitle || firstHeading(content) };
}
