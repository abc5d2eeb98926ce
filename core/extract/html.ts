/**
 * A web page's content: its main element (or its one article, else its body) on linkedom's server-side DOM, less
 * what is marked as navigation, sidebars, footers or site banners, then `htmlToText` with `#` headings. Nothing
 * is judged by how it reads: Mozilla's Readability, used until 2026-12-06, kept one section of most manual pages
 * it was given (72% of the Git manual's words; docs/extract.md, "Web pages").
 */
import { parseHTML } from "linkedom";
import { decodeEntities, htmlToText } from "../chunk/html";
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
  "menu",
  "breadcrumb",
  "breadcrumbs",
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
]);
/** Text of a heading's permalink anchor (Sphinx's ¶, GitHub's and Docusaurus' #, empty icon links). */
const PERMALINK = /^[\s\u200b¶§#🔗]*$/u;

/** Text of a footnote's link back to where it is cited (Pandoc's ↩︎, Word's ↑ through mammoth). */
const BACKLINK = /^\s*[↩↑⤴^][\ufe0e\ufe0f]?\s*$/u;

const words = (value: string | null) => (value ?? "").toLowerCase().split(/[\s_-]+/);

/** Removes every element the selector matches, and those `chrome` says are not content. */
function prune(root: Element, selector: string, chrome?: (element: Element) => boolean): void {
  for (const element of Array.from(root.querySelectorAll(selector))) element.remove();
  if (!chrome) return;
  for (const element of Array.from(root.querySelectorAll("[class], [id], [role]"))) {
    if (element.isConnected && chrome(element)) element.remove();
  }
}

const outsideChrome = (element: Element): boolean =>
  CHROME_ROLES.has(element.getAttribute("role") ?? "") ||
  words(element.getAttribute("class")).some((w) => CHROME_NAMES.has(w)) ||
  CHROME_NAMES.has((element.getAttribute("id") ?? "").toLowerCase());

const clean = (s: string | null | undefined) =>
  decodeEntities(s ?? "")
    .replace(/\s+/g, " ")
    .trim();

export function extractHtml(html: string): { content: string; title?: string } {
  const pageTitle = clean(/<title[^>]*>([^<]*)<\/title>/i.exec(html)?.[1]) || undefined;
  let content: string;
  let h1: string | undefined;
  try {
    const { document } = parseHTML(html);
    const body = (document.body ?? document.documentElement) as Element | null;
    if (!body) throw new Error("no body");
    prune(body, "script, style, noscript, template, [hidden]");
    for (const anchor of Array.from(body.querySelectorAll("h1 a, h2 a, h3 a, h4 a, h5 a, h6 a"))) {
      if (PERMALINK.test(anchor.textContent ?? "")) anchor.remove();
    }
    for (const anchor of Array.from(body.querySelectorAll('a[href^="#"]'))) {
      if (BACKLINK.test(anchor.textContent ?? "")) anchor.remove();
    }
    const mains = body.querySelectorAll("main, [role=main]");
    const articles = body.querySelectorAll("article");
    const main = mains.length === 1 ? mains[0] : articles.length === 1 ? articles[0] : undefined;
    // Inside the main element only navigation is left out; outside it, everything marked as chrome.
    if (main) prune(main, "nav, [role=navigation], [role=search]");
    const mainText = main ? htmlToText(main.innerHTML) : "";
    prune(body, "nav, aside, footer", outsideChrome);
    const bodyText = htmlToText(body.innerHTML);
    // A main element that holds almost nothing (a page built around it) leaves the page to the body.
    content = main && mainText.length >= Math.min(500, bodyText.length / 3) ? mainText : bodyText;
    h1 = clean((main ?? body).querySelector("h1")?.textContent) || undefined;
  } catch {
    content = htmlToText(html);
  }
  // The page's h1 when the <title> holds it and more (the site's name: "Refund policy | Example Shop").
  const title = h1 && pageTitle?.toLowerCase().includes(h1.toLowerCase()) ? h1 : pageTitle;
  return { content, title: title || firstHeading(content) };
}
