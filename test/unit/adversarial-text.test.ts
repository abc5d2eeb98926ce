/**
 * Text made to be slow: long runs of spaces or of one character, and pages nested thousands deep. Each had cost time in
 * the square of its length in one of these functions (a regex tried from every position of a run, a DOM walk asked of
 * every element), freezing the process for 30 s or more on one request of 100 KB (helper 87's review). Bounded here
 * at a second or two, far above what linear work takes and far below what the old code did.
 */
import { describe, expect, it } from "vitest";
import { dropInvalidMarkers, MarkerFilter } from "../../core/chat/citations";
import { buildPrompt, withoutNoteMarks } from "../../core/chat/prompt";
import { headings } from "../../core/chunk/context";
import { htmlToText } from "../../core/chunk/html";
import { extractHtml } from "../../core/extract/html";

const SPACES = " ".repeat(200_000);

/** Milliseconds `work` takes. */
function timed(work: () => unknown): number {
  const started = performance.now();
  work();
  return performance.now() - started;
}

describe("text made to be slow", () => {
  it("reads a heading line of 200,000 spaces, or of 200,000 '=' in a tag, in one pass", () => {
    let found: ReturnType<typeof headings> = [];
    expect(timed(() => (found = headings(`# a${SPACES}b`)))).toBeLessThan(2_000);
    expect(found.map((h) => h.text)).toEqual(["a b"]);
    expect(timed(() => headings(`# <a x${"=".repeat(200_000)}`))).toBeLessThan(2_000);
  });

  it("takes markers out of passages and answers with 200,000 spaces before no marker", () => {
    let text = "";
    expect(timed(() => (text = withoutNoteMarks(`Alpha${SPACES}omega [1].`)))).toBeLessThan(2_000);
    expect(text).toBe(`Alpha${SPACES}omega.`);
    expect(timed(() => (text = dropInvalidMarkers(`Alpha${SPACES}omega [7].`, 1)))).toBeLessThan(2_000);
    expect(text).toBe(`Alpha${SPACES}omega.`);
    const filter = new MarkerFilter((n) => n === 1);
    expect(timed(() => filter.push(`Alpha${SPACES}`))).toBeLessThan(2_000);
    const history = Array.from({ length: 10 }, () => ({ role: "assistant" as const, content: `a${SPACES}b` }));
    expect(
      timed(() => buildPrompt({ question: "Why?", history, passages: [], appInstructions: [], budget: 1_000_000 })),
    ).toBeLessThan(2_000);
  });

  it("reads a page nested 64,000 deep, or 400,000 deep by unclosed list items, or of 300,000 unclosed tags, as text, quickly", () => {
    let content = "";
    for (const body of [
      `${"<div>".repeat(64_000)}Deep text.${"</div>".repeat(64_000)}`,
      `${"<h2><span>".repeat(32_000)}Deep text.${"</span></h2>".repeat(32_000)}`,
      `${"<a ".repeat(300_000)}`,
      `<${"a".repeat(200_000)}`,
      `<ul>${"<li><p>x".repeat(200_000)}</ul>`,
      `${"<script ".repeat(200_000)}`,
    ]) {
      expect(
        timed(() => (content = extractHtml(`<html><body>${body}<p>After.</p></body></html>`).content)),
      ).toBeLessThan(2_000);
    }
    expect(extractHtml(`<html><body>${"<div>".repeat(64_000)}Deep text.</body></html>`).content).toBe("Deep text.");
    // A page of ordinary depth keeps its DOM reading: the heading named like chrome, the navigation left out.
    const page = `<html><body><nav>Home | Docs</nav>${"<div>".repeat(300)}<h2 id="header">Header</h2><p>Kept.</p>${"</div>".repeat(300)}</body></html>`;
    expect(extractHtml(page).content).toBe("## Header\n\nKept.");
    // Nor does a long list of items whose ends are left out (two levels each in the DOM), nor a minified script.
    const list = `<html><body><nav>Home | Docs</nav><ul>${"<li><p>Item".repeat(300)}</ul><footer>Foot</footer></body></html>`;
    expect(extractHtml(list).content).not.toMatch(/Home|Foot/);
    const script = `<html><body><nav>Home | Docs</nav><script>${"if(i<e.length){}".repeat(3_000)}</script><p>Kept.</p></body></html>`;
    expect(extractHtml(script).content).toBe("Kept.");
    // A page sent whole to /v1/ingest: each link's end looked for nearby, not to the end of the page.
    expect(timed(() => htmlToText(`<html><body>${"<a href=#>x ".repeat(100_000)}</body></html>`))).toBeLessThan(2_000);
  });
});
