/**
 * A web page's main content: Mozilla's Readability (Firefox's Reader View) on linkedom's server-side DOM drops
 * navigation, sidebars and footers; `htmlToText` turns what is left into text with `#` headings. A page
 * Readability finds no article in (an index, a short note) is converted whole.
 */
import { Readability } from "@mozilla/readability";
import { parseHTML } from "linkedom";
import { htmlToText } from "../chunk/html";

export function extractHtml(html: string): { content: string; title?: string } {
  const pageTitle = /<title[^>]*>([^<]*)<\/title>/i.exec(html)?.[1]?.replace(/\s+/g, " ").trim();
  let article: { title?: string | null; content?: string | null } | null = null;
  try {
    const { document } = parseHTML(html);
    article = new Readability(document as unknown as Document, { charThreshold: 200 }).parse();
  } catch {
    article = null;
  }
  const main = article?.content ? htmlToText(article.content) : "";
  // Readability keeps a page's article; when it keeps almost nothing, the page is its own content.
  const whole = htmlToText(html);
  const content = main.length >= Math.min(500, whole.length / 3) ? main : whole;
  const title = article?.title?.replace(/\s+/g, " ").trim() || pageTitle;
  return { content, title: title || undefined };
}
