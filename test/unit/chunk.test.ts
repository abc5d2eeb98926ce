/** The chunker: token estimate, splitting, HTML to text, content hash. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { headings } from "../../core/chunk/context";
import { contentHash } from "../../core/chunk/hash";
import { htmlToText } from "../../core/chunk/html";
import { type Chunk, splitIntoChunks } from "../../core/chunk/split";
import { estimate as estimateTokens } from "../../core/tokens";

const WORDS = [
  "the",
  "Refund",
  "policy.",
  "is",
  "processed",
  "within",
  "14",
  "days!",
  "Hello?",
  "e.g.",
  "(see",
  "below).",
  "“quoted.”",
  "你好。",
  "我们的退款政策规定，退款将在十四天内处理。如果您有问题，请联系我们。",
  "これは日本語の文です。",
  "한국어 문장입니다.",
  "🚀",
  "👨‍👩‍👧",
  "café",
  "naïve",
  "Привет,",
  "मनुष्य",
  "#",
  "##",
  "######",
  "-",
  "1.",
  "|",
  "```",
  "~~~",
  "x".repeat(300),
  "é".repeat(120),
  "supercalifragilisticexpialidocious",
  "https://example.com/a/b?c=d&e=f#frag",
  "splitIntoChunks();",
];
const SPACES = [
  " ",
  "  ",
  "\n",
  "\n\n",
  "\n\n\n",
  "\t",
  "\r\n",
  "\r",
  "\u00a0",
  "\u3000",
  "\u2028",
  "\ufeff",
  "   \n  ",
];

/** Random code units, lone surrogates included. */
const codeUnits = fc
  .array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 12 })
  .map((units) => String.fromCharCode(...units));

const documentText = fc
  .array(
    fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...WORDS) },
      { weight: 6, arbitrary: fc.constantFrom(...SPACES) },
      { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 12 }) },
      { weight: 1, arbitrary: codeUnits },
    ),
    { maxLength: 300, size: "max" },
  )
  .map((parts) => parts.join(""));

const splitOptions = fc.record({
  maxTokens: fc.integer({ min: 8, max: 160 }),
  overlapTokens: fc.integer({ min: 0, max: 100 }),
});

/** Offsets of the non-whitespace characters of text that no chunk covers. */
function uncovered(text: string, chunks: Chunk[]): number[] {
  const covered = new Uint8Array(text.length);
  for (const chunk of chunks) covered.fill(1, chunk.start, chunk.end);
  const missing: number[] = [];
  for (let i = 0; i < text.length; i++) if (!covered[i] && !/\s/.test(text[i]!)) missing.push(i);
  return missing;
}

/** Prose of `sentences` sentences, each of about 12 tokens, deterministic. */
function prose(sentences: number, seed = 1): string {
  const vocabulary = ["refund", "order", "customer", "payment", "invoice", "shipping", "account", "support", "policy"];
  const out: string[] = [];
  let x = seed;
  for (let i = 0; i < sentences; i++) {
    const words: string[] = [];
    for (let j = 0; j < 10; j++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      words.push(vocabulary[x % vocabulary.length]!);
    }
    out.push(`Sentence ${i} ${words.join(" ")}.`);
  }
  return out.join(" ");
}

describe("estimateTokens", () => {
  it("gives 0 for the empty string and at least 1 for any other text", () => {
    expect(estimateTokens("")).toBe(0);
    expect(estimateTokens(" ")).toBe(1);
    expect(estimateTokens("\n")).toBe(1);
    expect(estimateTokens("a")).toBe(1);
    expect(estimateTokens("🚀")).toBeGreaterThanOrEqual(1);
  });

  // cl100k: the token count cl100k_base gives (measured once with js-tiktoken; not a dependency).
  it.each([
    {
      name: "English prose",
      text:
        "Retrieval-augmented generation combines a search step with a language model. The search step finds passages " +
        "that are relevant to the question, and the model writes an answer grounded in those passages. Good chunking " +
        "keeps related sentences together, so each passage makes sense on its own.",
      cl100k: 56,
    },
    {
      name: "TypeScript",
      text: 'export function add(a: number, b: number): number {\n  if (Number.isNaN(a) || Number.isNaN(b)) {\n    throw new TypeError("not a number");\n  }\n  return a + b;\n}\n',
      cl100k: 46,
    },
    {
      name: "JSON",
      text: '{"id": 1234, "name": "Engram", "tags": ["memory", "rag"], "enabled": true, "ratio": 0.75}',
      cl100k: 36,
    },
  ])("stays within 15 percent of cl100k on $name", ({ text, cl100k }) => {
    const estimate = estimateTokens(text);

    expect(Math.abs(estimate / cl100k - 1)).toBeLessThanOrEqual(0.15);
  });

  it("stays within 30 % of cl100k on Chinese made of common characters", () => {
    const text = "我们的退款政策规定，所有退款将在十四个工作日内处理完毕。如果您有任何问题，请联系客户服务部门。";

    const estimate = estimateTokens(text);

    expect(Math.abs(estimate / 41 - 1)).toBeLessThanOrEqual(0.3);
  });

  it("counts about one token per CJK character and more than one per emoji", () => {
    const cjk = "退款政策".repeat(25);

    expect(estimateTokens(cjk)).toBeGreaterThanOrEqual(100);
    expect(estimateTokens(cjk)).toBeLessThanOrEqual(125);
    expect(estimateTokens("🚀".repeat(10))).toBeGreaterThanOrEqual(20);
  });

  it("is monotone and subadditive under concatenation (property)", () => {
    fc.assert(
      fc.property(documentText, documentText, (a, b) => {
        const whole = estimateTokens(a + b);

        expect(whole).toBeGreaterThanOrEqual(estimateTokens(a));
        expect(whole).toBeGreaterThanOrEqual(estimateTokens(b));
        if (a.length > 0 && b.length > 0) expect(whole).toBeLessThanOrEqual(estimateTokens(a) + estimateTokens(b));
      }),
      { numRuns: 300 },
    );
  });
});

describe("splitIntoChunks properties", () => {
  it("puts every non-whitespace character of the input in some chunk", () => {
    fc.assert(
      fc.property(documentText, splitOptions, (text, opts) => {
        const chunks = splitIntoChunks(text, opts);

        expect(uncovered(text, chunks)).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it("keeps every chunk within the budget, non-empty, trimmed and equal to its slice of the input", () => {
    fc.assert(
      fc.property(documentText, splitOptions, (text, opts) => {
        const chunks = splitIntoChunks(text, opts);

        chunks.forEach((chunk, i) => {
          expect(chunk.ordinal).toBe(i);
          expect(chunk.content.length).toBeGreaterThan(0);
          expect(chunk.content.trim()).toBe(chunk.content);
          expect(chunk.content).toBe(text.slice(chunk.start, chunk.end));
          expect(chunk.tokens).toBe(estimateTokens(chunk.content));
          expect(chunk.tokens).toBeLessThanOrEqual(opts.maxTokens);
          if (i > 0) {
            expect(chunk.start).toBeGreaterThan(chunks[i - 1]!.start);
            expect(chunk.end).toBeGreaterThan(chunks[i - 1]!.end);
          }
        });
      }),
      { numRuns: 300 },
    );
  });

  it("gives the same chunks for the same input", () => {
    fc.assert(
      fc.property(documentText, splitOptions, (text, opts) => {
        const first = splitIntoChunks(text, opts);
        const second = splitIntoChunks(text, { ...opts });

        expect(second).toEqual(first);
      }),
      { numRuns: 100 },
    );
  });

  it("returns no chunk for empty or whitespace-only text", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...SPACES), { maxLength: 30 }), (parts) => {
        const chunks = splitIntoChunks(parts.join(""));

        expect(chunks).toEqual([]);
      }),
    );
  });
});

describe("splitIntoChunks examples", () => {
  it("uses 400 tokens and 50 tokens of overlap by default", () => {
    const text = prose(200);

    const chunks = splitIntoChunks(text);

    expect(Math.max(...chunks.map((c) => c.tokens))).toBeLessThanOrEqual(400);
    expect(Math.max(...chunks.map((c) => c.tokens))).toBeGreaterThan(300);
    for (let i = 1; i < chunks.length; i++) {
      const overlap = estimateTokens(text.slice(chunks[i]!.start, chunks[i - 1]!.end));
      expect(overlap).toBeGreaterThan(20);
      expect(overlap).toBeLessThanOrEqual(50);
    }
  });

  it("starts a chunk at each heading when sections do not fit together", () => {
    const sections = ["# Refunds", "## Shipping", "## Accounts"].map((h, i) => `${h}\n\n${prose(10, i + 1)}`);
    const text = sections.join("\n\n");

    const chunks = splitIntoChunks(text, { maxTokens: 200, overlapTokens: 30 });

    expect(chunks.map((c) => c.content.split("\n")[0])).toEqual(["# Refunds", "## Shipping", "## Accounts"]);
    expect(chunks.map((c) => c.content)).toEqual(sections);
  });

  it("packs small sections together and splits a large one at its paragraphs", () => {
    const text = [
      "# Intro\n\nShort intro.",
      "# Notes\n\nA short note.",
      `# Details\n\n${prose(8, 1)}\n\n${prose(8, 2)}\n\n${prose(8, 3)}`,
    ].join("\n\n");

    const chunks = splitIntoChunks(text, { maxTokens: 150, overlapTokens: 0 });

    expect(chunks[0]!.content).toBe("# Intro\n\nShort intro.\n\n# Notes\n\nA short note.");
    expect(chunks[1]!.content.startsWith("# Details\n\nSentence 0")).toBe(true);
    for (const chunk of chunks.slice(1)) expect(chunk.content.endsWith(".")).toBe(true);
    expect(chunks.slice(2).every((c) => c.content.startsWith("Sentence 0"))).toBe(true);
  });

  it("keeps a title that stands straight above a long section with that section's text, never alone", () => {
    const text = `# Handbook\n\n## Security\n\n${prose(8, 1)}\n\n${prose(8, 2)}\n\n## Travel\n\n${prose(8, 3)}`;

    const chunks = splitIntoChunks(text, { maxTokens: 150, overlapTokens: 0 });

    expect(chunks[0]!.content.startsWith("# Handbook\n\n## Security\n\nSentence 0")).toBe(true);
    expect(chunks.every((c) => c.content.split("\n").some((line) => line.trim() && !line.startsWith("#")))).toBe(true);
    // A later heading that follows text still starts a chunk.
    expect(chunks.some((c) => c.content.startsWith("## Travel\n\n"))).toBe(true);
  });

  it("does not take a '#' line inside a code fence for a heading", () => {
    const lines = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, i) => `run_step ${from + i} --verbose`).join("\n");
    const script = `${lines(0, 6)}\n# note\n${lines(6, 40)}`;
    const fenced = `# Script\n\n\`\`\`bash\n${script}\n\`\`\``;
    const bare = `# Script\n\n${script}`;

    const inFence = splitIntoChunks(fenced, { maxTokens: 100, overlapTokens: 0 });
    const outside = splitIntoChunks(bare, { maxTokens: 100, overlapTokens: 0 });

    expect(outside[1]!.content.startsWith("# note")).toBe(true);
    expect(inFence.some((c) => c.content.startsWith("# note"))).toBe(false);
    for (const chunk of inFence.slice(1)) expect(fenced[chunk.start - 1]).toBe("\n");
  });

  it("splits a long paragraph at sentence ends", () => {
    const text = prose(60);

    const chunks = splitIntoChunks(text, { maxTokens: 100, overlapTokens: 0 });

    expect(chunks.length).toBeGreaterThan(5);
    for (const chunk of chunks) {
      expect(chunk.content).toMatch(/^Sentence \d+ /);
      expect(chunk.content.endsWith(".")).toBe(true);
      expect(chunk.tokens).toBeGreaterThan(50);
    }
  });

  it("repeats the end of the previous chunk, from a sentence start, as overlap", () => {
    const text = prose(60);

    const chunks = splitIntoChunks(text, { maxTokens: 100, overlapTokens: 30 });

    for (let i = 1; i < chunks.length; i++) {
      const previous = chunks[i - 1]!;
      const current = chunks[i]!;
      expect(current.start).toBeLessThan(previous.end);
      expect(previous.content.endsWith(text.slice(current.start, previous.end))).toBe(true);
      expect(estimateTokens(text.slice(current.start, previous.end))).toBeLessThanOrEqual(30);
      expect(current.content).toMatch(/^Sentence \d+ /);
    }
  });

  it("takes the overlap at word boundaries when sentences are too long for it", () => {
    const text = Array.from({ length: 400 }, (_, i) => `word${i}`).join(" ");

    const chunks = splitIntoChunks(text, { maxTokens: 100, overlapTokens: 20 });

    for (let i = 1; i < chunks.length; i++) {
      const overlap = text.slice(chunks[i]!.start, chunks[i - 1]!.end);
      expect(estimateTokens(overlap)).toBeGreaterThanOrEqual(10);
      expect(estimateTokens(overlap)).toBeLessThanOrEqual(20);
      expect(text[chunks[i]!.start - 1]).toBe(" ");
    }
  });

  it("adds no overlap in front of a chunk that starts at a heading", () => {
    const text = `# One\n\n${prose(12, 1)}\n\n# Two\n\n${prose(12, 2)}`;

    const chunks = splitIntoChunks(text, { maxTokens: 200, overlapTokens: 50 });

    const two = chunks.find((c) => c.content.startsWith("# Two"));
    expect(two).toBeDefined();
    expect(chunks.every((c) => c.start >= two!.start || c.end <= two!.start)).toBe(true);
  });

  it("splits a single 50,000-character word into chunks under budget", () => {
    const text = "q".repeat(50_000);

    const chunks = splitIntoChunks(text, { maxTokens: 400, overlapTokens: 50 });

    expect(chunks.length).toBeGreaterThan(15);
    expect(chunks.length).toBeLessThan(40);
    expect(chunks[0]!.start).toBe(0);
    expect(chunks.at(-1)!.end).toBe(50_000);
    for (let i = 0; i < chunks.length; i++) {
      expect(chunks[i]!.tokens).toBeLessThanOrEqual(400);
      if (i < chunks.length - 1) expect(chunks[i]!.tokens).toBeGreaterThan(300);
      if (i > 0) expect(chunks[i]!.start).toBeLessThan(chunks[i - 1]!.end);
    }
  });

  it("never cuts an emoji's surrogate pair", () => {
    const text = "🚀".repeat(5_000);

    const chunks = splitIntoChunks(text, { maxTokens: 50, overlapTokens: 10 });

    for (const chunk of chunks) {
      expect(chunk.start % 2).toBe(0);
      expect(chunk.end % 2).toBe(0);
      expect(chunk.tokens).toBeLessThanOrEqual(50);
    }
  });

  it("splits CJK text without spaces at its sentence ends", () => {
    const sentence = "我们的退款政策规定，所有退款将在十四个工作日内处理完毕。";
    const text = sentence.repeat(100);

    const chunks = splitIntoChunks(text, { maxTokens: 120, overlapTokens: 0 });

    expect(chunks.length).toBeGreaterThan(10);
    for (const chunk of chunks) {
      expect(chunk.tokens).toBeLessThanOrEqual(120);
      expect(chunk.content.endsWith("。")).toBe(true);
      expect(chunk.content.startsWith("我们")).toBe(true);
    }
    expect(chunks.map((c) => c.content).join("")).toBe(text);
  });

  it("rejects a budget below 8 tokens or a negative overlap", () => {
    expect(() => splitIntoChunks("text", { maxTokens: 7 })).toThrow(RangeError);
    expect(() => splitIntoChunks("text", { maxTokens: 100.5 })).toThrow(RangeError);
    expect(() => splitIntoChunks("text", { overlapTokens: -1 })).toThrow(RangeError);
  });

  it("chunks a 1,000,000-character document into a sane number of chunks", () => {
    const paragraph = `${prose(20)}\n\n`;
    const text = paragraph.repeat(Math.ceil(1_000_000 / paragraph.length)).slice(0, 1_000_000);
    const tokens = estimateTokens(text);

    const chunks = splitIntoChunks(text);

    expect(chunks.length).toBeGreaterThan(tokens / 400);
    expect(chunks.length).toBeLessThan(tokens / 200);
    expect(chunks.at(-1)!.end).toBe(text.trimEnd().length);
  });
});

describe("htmlToText", () => {
  it("keeps a table row on one line and a list item with its marker, whatever paragraphs, breaks or code they hold", () => {
    expect(
      htmlToText(
        "<table><tr><td><p>Plan</p></td><td><p>Price</p></td></tr><tr><td><p>Basic</p></td><td>5</td></tr></table>",
      ),
    ).toBe("Plan | Price\nBasic | 5");
    // An empty first cell keeps its row's line; a <br> in a cell is a space.
    expect(
      htmlToText(
        "<p>Intro.</p><table><tr><th></th><th>2025</th></tr><tr><td>Revenue</td><td>5<br>(restated)</td></tr></table>",
      ),
    ).toBe("Intro.\n\n | 2025\nRevenue | 5 (restated)");
    // A data cell's paragraphs, Sphinx's line blocks and list items stay on its row's line; a page laid out in a
    // table (a cell holding headings) keeps its blocks.
    expect(
      htmlToText(
        '<table><tr><td>%a</td><td><p>Sun, Mon (en_US);</p><p>So, Mo (de_DE)</p></td><td>(1)</td></tr><tr><td>%c</td><td><div class="line">one</div><div class="line">two</div></td><td><ul><li>x</li><li>y</li></ul></td></tr></table><p>After.</p>',
      ),
    ).toBe("%a | Sun, Mon (en_US); So, Mo (de_DE) | (1)\n%c | one two | - x - y\n\nAfter.");
    expect(htmlToText("<table><tr><td><code>x | y</code></td><td>bitwise or</td></tr></table>")).toBe(
      "x \\| y | bitwise or",
    );
    // A cell holding a table is laid out too: its paragraphs keep their breaks.
    expect(
      htmlToText("<table><tr><td><p>Intro.</p><p>More.</p><table><tr><td>a</td></tr></table></td></tr></table>"),
    ).toBe("Intro.\n\nMore.\n\na");
    expect(htmlToText("<table><tr><td><h1>Site</h1><p>Intro.</p><p>More.</p></td></tr></table>")).toBe(
      "# Site\n\nIntro.\n\nMore.",
    );
    // A code fence in a cell starts and ends a line, so the headings after it are still headings.
    const fenced = htmlToText("<h1>Top</h1><table><tr><td>Baz</td><td><pre>code</pre></td></tr></table><h2>Later</h2>");
    expect(headings(fenced).map((h) => h.text)).toEqual(["Top", "Later"]);
    expect(
      htmlToText('<ul><li><p>one</p></li><li></li><li>two</li></ul><ol start="4"><li>four</li><li>five</li></ol>'),
    ).toBe("- one\n- two\n\n4. four\n5. five");
    // A nested list stays in its item's block, indented under the item's text as Markdown reads it.
    expect(
      htmlToText(
        "<ol><li>Install<ul><li>Linux<ol><li>apt</li></ol></li><li>macOS</li></ul></li><li>Run</li></ol><p>After.</p>",
      ),
    ).toBe("1. Install\n   - Linux\n     1. apt\n   - macOS\n2. Run\n\nAfter.");
    // An item's paragraph after a nested list is still the item's.
    expect(
      htmlToText("<ul><li><p>inspect</p><ul><li>trace()</li></ul><p>(Contributed by P.)</p></li><li>next</li></ul>"),
    ).toBe("- inspect\n\n  - trace()\n\n  (Contributed by P.)\n- next");
    // Code holding a line of backticks is fenced with tildes, which that line cannot close.
    const backticks = htmlToText("<pre>a\n```\nb</pre><h2>After</h2>");
    expect(backticks).toBe("~~~\na\n```\nb\n~~~\n\n## After");
    expect(headings(backticks).map((h) => h.text)).toEqual(["After"]);
    const long = `${backticks}\n\n${"Words after the heading. ".repeat(12)}\n\n## Section\n\n${"More words here. ".repeat(8)}`;
    const chunks = splitIntoChunks(long, { maxTokens: 40, overlapTokens: 0 });
    expect(chunks.some((chunk) => chunk.content.startsWith("## Section"))).toBe(true);
    // Lines that would make Markdown headings are escaped.
    expect(htmlToText("<p># Hello</p><p>Text<br>===</p>")).toBe("\\# Hello\n\nText\n\\===");
    // Not after a list item's marker, where "=" underlines nothing; a "#" there still reads as a heading.
    expect(htmlToText("<ul><li><code>=</code>: equal to</li><li># not a heading</li></ul>")).toBe(
      "- =: equal to\n- \\# not a heading",
    );
  });

  const page = `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Refunds | Example Shop</title>
  <style>body { color: red; } h1 > span { display: none }</style>
  <script>var tracking = "<h1>not a heading</h1>"; window.x = 1 < 2;</script>
</head>
<body>
  <!-- navigation -->
  <nav><a href="/">Home</a> &raquo; <a href="/help">Help</a></nav>
  <noscript>Enable JavaScript to continue.</noscript>
  <main>
    <h1 class="title">Refund   policy</h1>
    <p>Refunds are processed within <b>14&nbsp;days</b> &mdash; no questions asked.<br>Contact us at
       support&#64;example.com &amp; we&#x27;ll reply.</p>
    <h2 data-x="a>b">Eligibility &amp; exceptions</h2>
    <ul>
      <li>Items must be unused &lt;30 days&gt;.</li>
      <li>Caf&eacute; vouchers are final&#8230;</li>
    </ul>
    <table>
      <tr><th>Plan</th><th>Window</th></tr>
      <tr><td>Basic</td><td>14 days</td></tr>
    </table>
    <pre><code>curl -X POST /refunds
  --data '{"order": 42}'</code></pre>
    <script type="module">import x from "y";</script>
    <p>Thanks&#33; &#128512; &unknown;</p>
  </main>
</body>
</html>`;

  it("drops head, script, style, noscript and comments and keeps the body text", () => {
    const text = htmlToText(page);

    expect(text).not.toMatch(/tracking|color: red|Enable JavaScript|navigation|Example Shop|import x|charset/);
    expect(text).toContain("Home » Help");
  });

  it("turns headings into markdown heading lines", () => {
    const text = htmlToText(page);

    expect(text.split("\n")).toContain("# Refund policy");
    expect(text.split("\n")).toContain("## Eligibility & exceptions");
  });

  it("decodes named and numeric character references and keeps unknown ones", () => {
    const text = htmlToText(page);

    expect(text).toContain("Refunds are processed within 14 days — no questions asked.\nContact us at");
    expect(text).toContain("support@example.com & we'll reply.");
    expect(text).toContain("Items must be unused <30 days>.");
    expect(text).toContain("Café vouchers are final…");
    expect(text).toContain("Thanks! 😀 &unknown;");
  });

  it("keeps block structure: list items, table rows and preformatted code", () => {
    const text = htmlToText(page);

    expect(text).toContain("- Items must be unused <30 days>.\n- Café vouchers are final…");
    expect(text).toContain("Plan | Window\nBasic | 14 days");
    expect(text).toContain("```\ncurl -X POST /refunds\n  --data '{\"order\": 42}'\n```");
    expect(text).not.toMatch(/\n{3,}/);
    expect(text).toBe(text.trim());
  });

  it("gives text the splitter cuts at the page's headings", () => {
    const text = htmlToText(page);

    const chunks = splitIntoChunks(text, { maxTokens: 60, overlapTokens: 0 });

    expect(chunks).toHaveLength(2);
    expect(chunks[0]!.content).toMatch(/^Home » Help\n\n# Refund policy\n/);
    expect(chunks[1]!.content).toMatch(/^## Eligibility & exceptions\n/);
  });

  it("treats a stray '<' as text and survives unclosed markup", () => {
    expect(htmlToText("1 < 2 and 3 <4")).toBe("1 < 2 and 3 <4");
    expect(htmlToText("<p>open <b>bold")).toBe("open bold");
    expect(htmlToText("<script>never closed")).toBe("");
    expect(htmlToText("")).toBe("");
  });
});

describe("contentHash", () => {
  it("is the SHA-256 hex digest of the UTF-8 text", () => {
    expect(contentHash("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(contentHash("hello")).toBe("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    expect(contentHash("é")).toBe(contentHash("\u00e9"));
    expect(contentHash("a")).not.toBe(contentHash("b"));
  });
});
