/**
 * AsciiDoc files (`.adoc`, or text that opens with an AsciiDoc document title, `= Title`), as Git's manual and many
 * projects' documentation are written. Read as Markdown, its `----` block delimiters made setext headings of the
 * code line above them, and a shell comment in a block (`# Lines starting with '#' ...`) titled the Git User
 * Manual. Asciidoctor (the reference implementation, compiled to JavaScript) turns it into HTML, which is then read
 * as a web page is: its title, its section headings, its code blocks fenced, its cross references as their text.
 */
import { extractHtml } from "./html";

export async function extractAsciidoc(text: string): Promise<{ content: string; title?: string }> {
  // Loaded on the first AsciiDoc file: starting Asciidoctor's Ruby runtime (Opal) takes 60-100 ms, which no other
  // upload, and no cold start, should pay.
  const { convert } = await import("@asciidoctor/core");
  // `secure`: no include directive reads a file, no attribute reaches the environment, nothing is fetched.
  // No footer ("Last updated" and the conversion's time: the same file read twice was two versions) and no table of
  // contents, which a short document would keep as text.
  // Git's manual pages link each other with its own macro, `linkgit:git-stash[1]`, which its build renders as
  // "git-stash(1)"; Asciidoctor does not know it and left "linkgit:git-stash[1]", whose "[1]" read as a citation.
  const source = text.replace(/\blinkgit:([\w.-]+)\[(\d+)\]/g, "$1($2)");
  const html = await convert(source, {
    standalone: true,
    safe: "secure",
    attributes: { "skip-front-matter": "", nofooter: "", "toc!": "" },
  });
  const { content, title } = extractHtml(typeof html === "string" ? html : "");
  // Asciidoctor writes `--` as an em dash and a zero-width space (a line-break hint no search wants in a word).
  return { content: content.replaceAll("\u200B", ""), ...(title === undefined ? {} : { title }) };
}
