/**
 * Markdown files, and the title every format falls back to. YAML front matter (a first line `---`, `key: value`
 * lines, a closing `---` or `...`, as Jekyll, Hugo, Pandoc and Obsidian write it) describes the file rather than
 * being its text: its `title` is the document's title and the whole block is left out of the content.
 */
import { parse } from "yaml";
import { headings } from "../chunk/context";

/**
 * The first top-level heading of Markdown-ish text (`# Title`, or `Title` underlined with `===`), outside code blocks:
 * the title of a document that names none itself. A `#` comment in a code block had titled a file.
 */
export function firstHeading(text: string): string | undefined {
  return headings(text).find((heading) => heading.level === 1)?.text;
}

/**
 * A Markdown text without its front matter, and the front matter's title. A leading `---` block that is not a YAML
 * mapping (a thematic break, then a setext heading) is text, and returned whole.
 */
export function frontMatter(text: string): { body: string; title?: string } {
  const block = /^---[ \t]*\r?\n([\s\S]*?)^(?:---|\.\.\.)[ \t]*(?:\r?\n|$)/m.exec(text);
  if (block?.index !== 0) return { body: text };
  let data: unknown;
  try {
    data = parse(block[1] ?? "");
  } catch {
    return { body: text };
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) return { body: text };
  // Jekyll, Hugo and Pandoc write `title`; some editors `Title`.
  const title = Object.entries(data).find(([key]) => key.toLowerCase() === "title")?.[1];
  return {
    body: text.slice(block[0].length),
    title: typeof title === "string" ? title.replace(/\s+/g, " ").trim() || undefined : undefined,
  };
}

/** Text as every extracted file is stored: Unix line ends, no surrounding blank space. */
export function tidy(content: string): string {
  return content.replace(/\r\n?/g, "\n").trim();
}

/** A Markdown file's text without its front matter, titled by the front matter, else by its first `#` heading. */
export function extractMarkdown(text: string): { content: string; title?: string } {
  const { body, title } = frontMatter(text);
  return { content: body, title: title ?? firstHeading(body) };
}
