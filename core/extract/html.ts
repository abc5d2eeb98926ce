/**
 * A web page's main content: Mozilla's Readability (Firefox's Reader View) on linkedom's server-side DOM drops
 * navigation, sidebars and footers; `htmlToText` turns what is left into text with `#` headings. A page
 * Readability finds no article in (an index, a short note) is converted whole.
 */
import { Readability } from "@mozilla/readability";
import { parseHTML } from "linkedom";
import { htmlToText } from "../chunk/html";
import { firstHeading } from "./markdown";

/** Marks each heading with its index in `Heading[]` before Readability moves, renames or drops it. */
const MARK = "data-engram-heading";

interface Heading {
  level: number;
  text: string;
}

/** Readability's test for a heading that repeats the article's title (its `_textSimilarity` above 0.75). */
function repeatsTitle(title: string, heading: string): boolean {
  const words = (s: string) => s.toLowerCase().split(/\W+/).filter(Boolean);
  const a = words(title);
  const b = words(heading);
  if (!a.length || !b.length) return false;
  return 1 - b.filter((w) => !a.includes(w)).join(" ").length / b.join(" ").length > 0.75;
}

/**
 * The article's HTML with the page's own heading levels. Readability renames every h1 to h2 and drops the first
 * h1/h2 that repeats the title, since Reader View shows the title apart; the text's heading path (chunk contexts
 * and citation locations) needs the page's real hierarchy, so levels are restored and that heading put back.
 */
function withPageHeadings(article: Element, headings: Heading[], title: string): string {
  const kept: number[] = [];
  for (const element of Array.from(article.querySelectorAll(`[${MARK}]`))) {
    const index = Number(element.getAttribute(MARK));
    element.removeAttribute(MARK);
    const heading = headings[index];
    if (!heading || !/^h[1-6]$/i.test(element.localName)) continue;
    kept.push(index);
    const tag = `h${heading.level}`;
    if (element.localName.toLowerCase() === tag) continue;
    const renamed = element.ownerDocument.createElement(tag);
    while (element.firstChild) renamed.appendChild(element.firstChild);
    element.replaceWith(renamed);
  }
  const first = Math.min(...kept);
  const dropped = kept.some((i) => repeatsTitle(title, headings[i]?.text ?? ""))
    ? -1
    : headings.findIndex((h, i) => h.level <= 2 && i < first && !kept.includes(i) && repeatsTitle(title, h.text));
  const heading = headings[dropped];
  if (heading) {
    const restored = article.ownerDocument.createElement(`h${heading.level}`);
    restored.textContent = heading.text;
    article.insertBefore(restored, article.firstChild);
  }
  return article.innerHTML;
}

export function extractHtml(html: string): { content: string; title?: string } {
  const pageTitle = /<title[^>]*>([^<]*)<\/title>/i.exec(html)?.[1]?.replace(/\s+/g, " ").trim();
  let article: { title: string; content: string } | undefined;
  try {
    const { document } = parseHTML(html);
    const headings: Heading[] = Array.from(document.querySelectorAll("h1, h2, h3, h4, h5, h6"), (element, i) => {
      element.setAttribute(MARK, String(i));
      return {
        level: Number(element.localName.slice(1)),
        text: (element.textContent ?? "").replace(/\s+/g, " ").trim(),
      };
    });
    const parsed = new Readability<Node>(document as unknown as Document, {
      charThreshold: 200,
      serializer: (node) => node,
    }).parse();
    const title = parsed?.title?.replace(/\s+/g, " ").trim() ?? "";
    if (parsed?.content) article = { title, content: withPageHeadings(parsed.content as Element, headings, title) };
  } catch {
    article = undefined;
  }
  const main = article?.content ? htmlToText(article.content) : "";
  // Readability keeps a page's article; when it keeps almost nothing, the page is its own content.
  const whole = htmlToText(html);
  const content = main.length >= Math.min(500, whole.length / 3) ? main : whole;
  return { content, title: article?.title || pageTitle || firstHeading(content) };
}
