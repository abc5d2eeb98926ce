/** core/extract on files made by real tools (test/fixtures/extract/README.md says which and how). */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getDocumentProxy } from "unpdf";
import { describe, expect, it } from "vitest";
import { readDocuments } from "../../cli/files";
import { headings } from "../../core/chunk/context";
import { htmlToText } from "../../core/chunk/html";
import { locations } from "../../core/chunk/location";
import { splitIntoChunks } from "../../core/chunk/split";
import { extract, PAGE_BREAK, sniff } from "../../core/extract";
import { checkExpansion } from "../../core/extract/docx";
import { extractHtml } from "../../core/extract/html";
import { frontMatter } from "../../core/extract/markdown";
import { refusal } from "../../kit/errors";

const fixture = (name: string) => new Uint8Array(readFileSync(join(__dirname, "../fixtures/extract", name)));

describe("extract", () => {
  it("reads a LibreOffice PDF page by page, with its headings from font sizes and its pages separated by form feeds", async () => {
    const pdf = await extract(fixture("handbook.pdf"), { name: "handbook.pdf" });
    expect(pdf.format).toBe("pdf");
    expect(pdf.pages).toBe(6);
    expect(pdf.title).toBe("Employee handbook");
    expect(pdf.content.split(PAGE_BREAK)).toHaveLength(6);
    expect(pdf.content).toMatch(/^# Travel$/m);
    expect(pdf.content).toMatch(/^## Expenses$/m);
    expect(pdf.content.replace(/\s+/g, " ")).toContain("Meals are reimbursed up to 60 euros a day.");
  });

  it("reads a pdfTeX PDF that Debian ships in reading order, numbered sections as headings", async () => {
    const pdf = await extract(fixture("shared-mime-info-spec.pdf"));
    expect(pdf.pages).toBe(17);
    expect(pdf.title).toBe("Shared MIME-info Database");
    // Its title, on one line of the first page in the largest size, is the title and no heading level.
    expect(pdf.content).toMatch(/^Shared MIME-info Database\n\n# X Desktop Group/);
    expect(pdf.content).toMatch(/^# 1\. Introduction$/m);
    expect(pdf.content).toMatch(/^## 1\.1\. Version$/m);
    expect(pdf.content.indexOf("1.1. Version")).toBeLessThan(pdf.content.indexOf("1.2. What is this spec?"));
  });

  it("drops a PDF's running header and footer and joins the words its typesetter hyphenated at line ends", async () => {
    const pdf = await extract(fixture("running-heads.pdf"));
    expect(pdf.pages).toBe(5);
    const pages = pdf.content.split(PAGE_BREAK);
    expect(pages).toHaveLength(5);
    // On every page as WeasyPrint set them (after the page's body): "Kestrel field handbook, revision 7", "Page 2 of 5".
    expect(pdf.content).not.toMatch(/revision 7|Page \d of 5/);
    expect(pdf.content).toMatch(/^# Expenses$/m);
    expect(pdf.content).not.toMatch(/^#+ .*(Page|revision)/m);
    // U+2010 at a line's end ("con‐" / "firmed") is the typesetter's; a plain "-" is dropped only for a word the
    // text has whole ("documentation"), as "positional-only" is no "positionalonly".
    const flat = pdf.content.replace(/\s+/g, " ");
    expect(flat).not.toContain("\u2010");
    expect(flat).toContain("before any reservation is confirmed.");
    expect(flat).toContain("including intermediate connections and unanticipated cancellations.");
    expect(flat).toContain(
      "Arguments are passed positional-only or keyword-only, as the documentation of each function says.",
    );
    // A sentence the body repeats on several pages is kept everywhere, even where a page starts or ends with it.
    expect(flat.split("Unattended workstations lock automatically").length - 1).toBe(3);
    expect(flat.split("International accommodation requires documentation").length - 1).toBe(3);
  });

  // Each fixture numbers its 80 sentences in writing order, down the left column, then the right (README there).
  const SENTENCE = /Sentence (\d+) says the [a-z ]+? were \w+ in week \d+ by a team of \d+ people\./g;

  for (const [name, producer] of [
    ["two-columns.pdf", "LibreOffice"],
    ["two-columns-chromium.pdf", "Chromium (Skia)"],
  ] as const) {
    it(`reads a ${producer} two-column PDF column by column: each sentence whole and in order on each page`, async () => {
      // The fixture really is two columns: lines on page 1 start in both halves of the page.
      const proxy = await getDocumentProxy(fixture(name));
      const page = await proxy.getPage(1);
      const width = page.getViewport({ scale: 1 }).width;
      const items = (await page.getTextContent()).items.filter((i) => "str" in i);
      const lineStarts = items
        .filter((item, i) => item.str.trim() && (i === 0 || items[i - 1]?.hasEOL))
        .map((item) => item.transform[4] as number);
      expect(lineStarts.some((x) => x < width / 2) && lineStarts.some((x) => x > width / 2)).toBe(true);
      await proxy.destroy();

      const pdf = await extract(fixture(name));
      const pages = pdf.content.split(PAGE_BREAK);
      expect(pages).toHaveLength(2);
      // The abstract, set across both columns, comes before the first column.
      expect(pages[0]?.indexOf("first down the left column")).toBeLessThan(pages[0]?.indexOf("Sentence 1 ") ?? -1);
      // Every sentence whole (interleaved columns would cut the ones that wrap) and in order, across the page turn.
      const whole = [...pdf.content.replace(/\s+/g, " ").matchAll(SENTENCE)].map((m) => Number(m[1]));
      expect(whole).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
      // Page by page: page 1 holds both its columns' sentences, in order, before page 2's.
      const started = pages.map((text) => [...text.matchAll(/Sentence\s+(\d+)\s/g)].map((m) => Number(m[1])));
      expect(started.flat()).toEqual(whole);
      expect(started[0]?.length).toBeGreaterThan(30);
      // The step up to the next column is not a paragraph break: no sentence is cut by a blank line.
      expect(pdf.content).not.toMatch(/Sentence \d+ says[^.]*\n\n[^.]*people\./);
    });
  }

  it("turns a Pandoc .docx into Markdown with its heading levels", async () => {
    const docx = await extract(fixture("handbook.docx"), { name: "handbook.docx" });
    expect(docx.format).toBe("docx");
    expect(docx.title).toBe("Employee handbook");
    expect(docx.content).toMatch(/^# Security\n\n## Passwords\n\nUse the password manager/m);
  });

  it("keeps a web page's article and drops its navigation, sidebar and footer", async () => {
    const html = await extract(fixture("page.html"), { name: "page.html" });
    expect(html.format).toBe("html");
    expect(html.title).toMatch(/^Refund policy/);
    // The page's main element whole, its own heading levels, the byline kept.
    expect(html.content).toMatch(/^# Refund policy\n\nUpdated 3 March by the customer care team\n\nWe want you/);
    expect(html.content).toMatch(/^## How long refunds take$/m);
    expect(html.content).toMatch(/^### Gift cards$/m);
    expect(html.content).toContain("Refunds are issued within 14 days");
    for (const boilerplate of ["Basket (0)", "newsletter", "All rights reserved", "analytics"])
      expect(html.content).not.toContain(boilerplate);
  });

  it("drops what a page marks as not for search, and its form controls: a short SQLite manual page", async () => {
    const html = await extract(fixture("sqlite-detach.html"), { name: "lang_detach.html" });
    expect(html.title).toBe("DETACH");
    // The site's header (logo, tagline, menus, a search form) sits in <div class=nosearch>, more than a fifth of the
    // page's text; the "show" button beside the syntax diagram is a control.
    for (const chrome of ["Small. Fast. Reliable.", "Choose any three", "Search Changelog", "Download", ": show"])
      expect(html.content).not.toContain(chrome);
    expect(html.content).toMatch(/^detach-stmt:\n\nThis statement detaches an additional database connection/);
    expect(html.content).toMatch(/results in an error\.\n\nThis page last modified on 2020-02-10/);
  });

  it("keeps a table's header row that Pandoc marks class=header, and drops a navigation table whole", async () => {
    const page = `<!DOCTYPE html><html><head><title>Plans</title></head><body>
      <table class="navheader"><tr><td>Prev</td><td>Home</td><td>Next</td></tr></table>
      <h1>Plans</h1><p>What each plan costs.</p>
      <table><thead><tr class="header"><th>Plan</th><th>Price</th></tr></thead>
      <tbody><tr class="odd"><td>Basic</td><td>10</td></tr><tr class="even"><td>Pro</td><td>20</td></tr></tbody></table>
      </body></html>`;
    const { content } = await extract(new TextEncoder().encode(page), { name: "plans.html" });
    expect(content).toMatch(/^Plan \| Price\nBasic \| 10\nPro \| 20$/m);
    expect(content).not.toContain("Prev");
  });

  it("keeps every section of a manual page, which a reader view had cut to one", async () => {
    // git-doc's asciidoc page: sections in plain divs, the h1 and NAME in a div#header, a div#footer.
    const page = await extract(fixture("git-init.html"), { name: "git-init.html" });
    expect(page.title).toBe("git-init(1)");
    expect(page.content).toMatch(
      /^# git-init\(1\) Manual Page\n\n## NAME\n\ngit-init - Create an empty Git repository/,
    );
    const sections = page.content.match(/^## .*$/gm);
    expect(sections).toEqual(
      ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "TEMPLATE DIRECTORY", "EXAMPLES", "CONFIGURATION", "GIT"].map(
        (name) => `## ${name}`,
      ),
    );
    expect(page.content).toContain("Create a bare repository.");
    expect(page.content).not.toContain("Last updated");
  });

  it("keeps what a Sphinx page's main element holds, its sidebars and notes included, and none of the site's", async () => {
    const page = await extract(fixture("asyncio.html"), { name: "asyncio.html" });
    // The h1, not the <title> with the site's name after it; no permalink marks.
    expect(page.title).toBe("asyncio — Asynchronous I/O");
    expect(page.content).toMatch(/^# asyncio — Asynchronous I\/O\n\nHello World!\n\n```\nimport asyncio\n/);
    expect(page.content).toContain("asyncio.run(main())");
    expect(page.content).toContain("- run Python coroutines concurrently");
    for (const chrome of ["¶", "Previous topic", "Report a Bug", "Quick search", "Python Software Foundation"])
      expect(page.content).not.toContain(chrome);
  });

  it("keeps code a Word or PDF document holds as code, its tables' rows as rows, its lists numbered", async () => {
    const docx = await extract(fixture("code-table.docx"), { name: "code-table.docx" });
    const pdf = await extract(fixture("code-table.pdf"), { name: "code-table.pdf" });
    expect(docx.content).toContain('```\n# Hello world\nprint("hello")\n## not a heading either\n```');
    expect(docx.content).toContain("1. Download the installer.\n2. Run it as an administrator.\n3. Restart");
    expect(docx.content).toContain("Plan | Price | Seats\nBasic | 5 euros | 1\nTeam | 20 euros | 10");
    // A PDF's lines set in a monospace font alone are code, fenced as the .docx's style makes them.
    expect(pdf.content).toContain('```\n# Hello world\nprint("hello")\n## not a heading either\n```');
    for (const { content } of [docx, pdf]) {
      expect(content.replace(/```[^`]*```/g, "").match(/^#{1,6} .*$/gm)).toEqual(["# Setup", "# Plans"]);
      const chunks = splitIntoChunks(content, { maxTokens: 30, overlapTokens: 0 });
      const at = chunks.findIndex((chunk) => chunk.content.includes("Restart the machine"));
      expect(locations(content, chunks)[at]).toEqual({ headings: ["Setup"] });
    }
  });

  it("reads a Title paragraph set above Heading 1 in a PDF as the title, leaving the heading levels to the headings", async () => {
    const pdf = await extract(fixture("title-style.pdf"), { name: "title-style.pdf" });
    expect(pdf.title).toBe("Employee Handbook 2026");
    expect(pdf.content).toMatch(/^Employee Handbook 2026\n\n# Travel\n\n## Booking\n/);
    const chunks = splitIntoChunks(pdf.content, { maxTokens: 60, overlapTokens: 0 });
    const at = chunks.findIndex((chunk) => chunk.content.includes("Book flights through the travel desk"));
    expect(locations(pdf.content, chunks, pdf.title)[at]).toEqual({ pages: [1, 1], headings: ["Travel", "Booking"] });
  });

  it("reads pages whose layout trips a reader: wrappers named like chrome, nested mains, a logo's h1, an SVG's title", () => {
    const para = "All the real content of the page, long enough to matter to anyone who reads it. ".repeat(3);
    const wrapped = extractHtml(
      `<html><head><title>Layout</title></head><body><div class="page-wrap has-sidebar"><div class="content"><h1>Layout</h1><p>${para}</p></div><div class="sidebar">Widgets</div></div></body></html>`,
    );
    expect(wrapped).toEqual({ content: `# Layout\n\n${para.trim()}`, title: "Layout" });
    const nested = extractHtml(
      '<html><body><div role="main"><main><h1>Doc</h1><p>Only this.</p></main></div><div>Popular tags</div></body></html>',
    );
    expect(nested.content).toBe("# Doc\n\nOnly this.");
    const blog = extractHtml(
      '<html><head><title>Repairing a bike chain | My Site</title></head><body><header><h1 class="site-title">My Site</h1></header><div><h1>Repairing a bike chain</h1><p>Body.</p></div><article>c1</article><article>c2</article></body></html>',
    );
    expect(blog.title).toBe("Repairing a bike chain");
    const svg = extractHtml(
      "<html><head><title></title></head><body><svg><title>Search</title></svg><h2>Second level</h2><pre># install it</pre></body></html>",
    );
    expect(svg.title).toBe("Second level");
    const sphinx = extractHtml(
      '<html><body><dl><dt>os.name<a class="headerlink" href="#os.name">¶</a></dt><dd>The name.</dd></dl></body></html>',
    );
    expect(sphinx.content).toBe("os.name\nThe name.");
  });

  it("leaves out a DocBook table of contents, and keeps a footnote's mark apart from its word", () => {
    const para =
      "The expedition reached the summit in March, after three weeks on the mountain's southern route. ".repeat(3);
    const docbook = extractHtml(
      `<html><head><title>Chapter 2. Climbing</title></head><body><div class="navheader">Prev Next</div><div class="chapter"><h2 class="title">Chapter 2. Climbing</h2><div class="toc"><p><b>Table of Contents</b></p><dl><dt>2.1. Routes</dt><dt>2.2. Gear</dt></dl></div><p>${para}</p><p>We reached Kilimanjaro<sup><a href="#fn1" class="footnote-ref" role="doc-noteref">1</a></sup> and Meru<a class="footnote-reference brackets" href="#id2">2</a> later.</p></div></body></html>`,
    );
    expect(docbook.content).not.toContain("Table of Contents");
    expect(docbook.content).not.toContain("2.1. Routes");
    expect(docbook.content).toContain("We reached Kilimanjaro 1 and Meru 2 later.");
  });

  it("keeps a DocBook page's TIP and NOTE boxes and its <div> paragraphs, and leaves out its navigation bars", () => {
    // A Publican page (The Debian Administrator's Handbook): no main element, a banner and Prev / Next lists around
    // the section, paragraphs as <div class="para">, and boxes named "sidebar" among them.
    const para = (text: string) => `<div class="para">\n\t\t${text}\n\t</div>`;
    const page = extractHtml(
      `<html><head><title>6.2. The apt Command</title></head><body><div id="banner"><a href="/get/"><span class="text">Download the ebook</span></a></div><ul class="docnav top"><li class="previous"><a href="apt.html"><strong>Prev</strong></a></li><li class="next"><a href="next.html"><strong>Next</strong></a></li></ul><div class="section"><div class="titlepage"><h2 class="title">6.2. The apt Command</h2></div>${para("APT is a vast project, whose original plans included a graphical interface.")}${para("Both tools are built on top of the same library.")}<div class="sidebar"><div class="titlepage"><p class="title"><strong><em>TIP</em> Incremental updates</strong></p></div>${para("APT can download diff files containing the changes since the previous update.")}</div>${para("For any work with APT, the list of available packages needs to be updated.")}</div><ul class="docnav"><li class="previous"><a href="apt.html"><strong>Prev</strong>Chapter 6. Maintenance</a></li><li class="home"><a href="index.html"><strong>Home</strong></a></li></ul></body></html>`,
    );
    expect(page.title).toBe("6.2. The apt Command");
    expect(page.content).toBe(
      [
        "## 6.2. The apt Command",
        "APT is a vast project, whose original plans included a graphical interface.",
        "Both tools are built on top of the same library.",
        "TIP Incremental updates",
        "APT can download diff files containing the changes since the previous update.",
        "For any work with APT, the list of available packages needs to be updated.",
      ].join("\n\n"),
    );
    // Attributes written in capitals (DocBook's DSSSL pages: CLASS="NAVHEADER") name chrome as lower-case ones do.
    const dsssl = extractHtml(
      `<HTML><BODY CLASS="sect1"><DIV CLASS="NAVHEADER"><TABLE><TR><TD><A HREF="index.html">Prev</A></TD><TD><A HREF="x2.html">Next</A></TD></TR></TABLE></DIV><DIV CLASS="sect1"><H1>2. Unified system</H1><P>${"The databases were separate, and nobody disagreed about merging them. ".repeat(4)}</P></DIV><DIV CLASS="NAVFOOTER">Prev Home Next</DIV></BODY></HTML>`,
    );
    expect(dsssl.content).toMatch(/^# 2\. Unified system\n\nThe databases were separate/);
    expect(dsssl.content).not.toMatch(/Prev|Next/);
    // Texinfo's bar above each node of a GNU manual.
    const texinfo = extractHtml(
      `<html><body><h1 class="settitle">Measuring Program Resource Use</h1><div class="top" id="Top"><div class="header"><p>Next: <a href="#Resource-Measurement">Measuring Program Resource Use</a> &nbsp; [<a href="#SEC_Contents">Contents</a>][<a href="#Concept-index">Index</a>]</p></div><h1 class="top">Time</h1><p>${"This file documents the GNU time command for running programs. ".repeat(8)}</p></div></body></html>`,
    );
    expect(texinfo.content).not.toMatch(/Next:|\[Contents\]/);
    expect(texinfo.content).toContain("# Time\n\nThis file documents the GNU time command");
    // A site's sidebar beside the content, or one of links, is still left out.
    const site = extractHtml(
      `<html><body><div class="content"><p>${"Body text of the article. ".repeat(20)}</p></div><div class="sidebar"><p>About this site and its author, a few words.</p></div></body></html>`,
    );
    expect(site.content).not.toContain("About this site");
    const links = extractHtml(
      `<html><body><p>${"Body text of the article. ".repeat(20)}</p><div class="sidebar"><a href="/a">Recent posts</a> <a href="/b">Archives</a></div></body></html>`,
    );
    expect(links.content).not.toContain("Recent posts");
  });

  it("reads a note's or an example's title as the box's own line, keeps headings whose ids read like chrome, drops ¶", () => {
    // As the Apache manual writes a directive's section (apache2-doc), and DocBook a note: <div class="note"><h3>.
    const page = `<html><head><title>mod_headers</title></head><body><div id="preamble"><h1>Apache Module mod_headers</h1><p>Customization of HTTP request and response headers.</p></div>
<h2 id="related">Related Modules <a title="Permanent link" href="#related" class="permalink">&para;</a></h2><p>See also mod_setenvif for conditions on the request.</p>
<div class="directive-section"><h2 id="header"><span id="Header">Header</span> Directive <a title="Permanent link" href="#header" class="permalink">&para;</a></h2>
<p>This directive can replace, merge or remove HTTP response headers.</p>
<div class="note"><h3 class="title">Note</h3><p>The header is modified just before the response is sent.</p></div>
<div class="example"><h3>Example</h3><pre>Header set MyHeader "hello"</pre></div>
<p>The action it performs is determined by the first argument.</p></div></body></html>`;
    const uploaded = extractHtml(page).content;
    // A page sent whole to POST /v1/ingest is read by htmlToText alone, with no DOM: the same headings.
    for (const content of [uploaded, htmlToText(page)]) {
      expect(content).not.toContain("¶");
      expect(headings(content).map((h) => `${h.level} ${h.text}`)).toEqual([
        "1 Apache Module mod_headers",
        "2 Related Modules",
        "2 Header Directive",
      ]);
      expect(content).toContain("Note\n\nThe header is modified just before the response is sent.");
      expect(content).toContain("Example\n\n```");
    }
    // A box left unclosed keeps its title a line, and only its title: the headings after it stay headings.
    const unclosed = htmlToText('<div class="note"><h3>Note</h3><p>Careful.</p><h2>Next section</h2><p>Text.</p>');
    expect(headings(unclosed).map((h) => h.text)).toEqual(["Next section"]);
  });

  it("keeps a footnote's text and leaves out its link back to where it is cited", async () => {
    for (const name of ["footnote.docx", "footnote.html"]) {
      const { content } = await extract(fixture(name), { name });
      expect(content).toMatch(/\n1\. The source is the 2024 report\.$/);
      expect(content).not.toMatch(/[↑↩]/u);
    }
  });

  it("stores a footnote's mark as a plain word, no brackets, whatever made the file", async () => {
    // Mammoth writes Word's marks "[1]", Sphinx "[1]" in fn-bracket spans, Asciidoctor "[1]" around its link: each
    // read as citation 1 in a chat answer quoting the sentence.
    const sentence = "The night heron 1 hunts after dark 2 and rests by day in dense thickets 3 near water.";
    for (const name of ["heron.docx", "heron.html"]) {
      const { content } = await extract(fixture(name), { name });
      expect(content).toContain(sentence);
      expect(content).not.toMatch(/\[\s*\d+\s*\]/);
    }
    const sphinx = await extract(fixture("sphinx-footnote.html"), { name: "chunk.html" });
    expect(sphinx.content).toContain("files that use EA IFF 85 chunks. 1 This format is used");
    expect(sphinx.content).toMatch(/\n1\n\n“EA IFF 85” Standard for Interchange Format Files/);
    expect(sphinx.content).not.toMatch(/\[\s*\d+\s*\]/);
    const adoc = await extract(
      new TextEncoder().encode("= Herons\n\nIt hunts after dark.footnote:[At dusk.] It rests.\n"),
      {
        name: "herons.adoc",
      },
    );
    expect(adoc.content).toContain("It hunts after dark. 1 It rests.");
    // A web page's reference in a <sup> (Wikipedia's "[1]") is a footnote's mark too; a bracketed word is not one.
    const page = extractHtml(
      '<html><body><p>Herons nest in colonies.<sup class="reference"><a href="#cite_note-1">[1]</a></sup> Some <sup>[citation needed]</sup>.</p></body></html>',
    );
    expect(page.content).toBe("Herons nest in colonies. 1 Some [citation needed].");
  });

  it("places a .docx footnote's text after the paragraph citing it, in that paragraph's section", async () => {
    const { content } = await extract(fixture("heron.docx"), { name: "heron.docx" });
    expect(content).toMatch(
      /near water\.\n\n1\. Nycticorax nycticorax, the black-crowned night heron\.\n\n2\. Mostly at dusk and before dawn\.\n\n3\. Reed beds, willows and mangroves\.\n\n# Grey heron\n/,
    );
    expect(content.trimEnd()).toMatch(/waits for fish to come within reach\.$/);
    const at = content.indexOf("Mostly at dusk");
    expect(locations(content, [{ start: at, end: at + 14 }])[0]).toEqual({
      headings: ["Night heron"],
    });
  });

  it("keeps a PDF's footnote mark, set smaller and raised, apart from the word before it", async () => {
    const { content } = await extract(fixture("footnote.pdf"), { name: "footnote.pdf" });
    // Glued (`source.1`), the word was a token of its own, and no search found "source" there.
    expect(content).toContain("A claim that needs a source. 1 Another sentence.");
    expect(content).toMatch(/\n1 The source is the 2024 report\.$/);
  });

  it("judges a file by its content when its extension lies", async () => {
    expect((await extract(fixture("handbook.pdf"), { name: "notes.txt" })).format).toBe("pdf");
    expect((await extract(fixture("handbook.docx"), { name: "report.pdf" })).format).toBe("docx");
    expect((await extract(fixture("handbook.md"), { name: "scan.pdf" })).format).toBe("markdown");
    expect((await extract(fixture("page.html"), { name: "page.txt" })).format).toBe("html");
  });

  it("rebuilds a PDF's code as written: fenced, indented and spaced from where its runs of text sit", async () => {
    const { content } = await extract(fixture("code-indent.pdf"));
    expect(content).toContain(
      "```\ndef fib(n):    # write Fibonacci series up to n\n    a, b = 0, 1\n    while a < n:\n        print(a, end=' ')\n        a, b = b, a+b\n    print()\n```",
    );
    expect(content).toMatch(/\n\nCall it with a bound such as 2000\.$/);
  });

  it("drops a Sphinx page's permalink marks from a .docx's headings, as from the web page's", async () => {
    const docx = await extract(fixture("permalink.docx"), { name: "permalink.docx" });
    const html = await extract(fixture("permalink.html"), { name: "permalink.html" });
    expect(headings(docx.content).map((h) => h.text)).toEqual(["Control flow", "Loops"]);
    expect(headings(html.content).map((h) => h.text)).toEqual(["Control flow", "Loops"]);
  });

  it("reads AsciiDoc, .adoc or a .txt that opens with a document title, with its sections, blocks and references", async () => {
    for (const name of ["guide.adoc", "guide.txt"]) {
      const { format, title, content } = await extract(fixture("guide.adoc"), { name });
      expect([format, title]).toEqual(["asciidoc", "Deploying the Service"]);
      expect(headings(content).map((h) => `${h.level} ${h.text}`)).toEqual([
        "1 Deploying the Service",
        "2 Introduction",
        "2 Installing",
        "3 Configuring the port",
        "2 Rolling back a release",
      ]);
      // A block's shell comment is code, not a heading (read as Markdown, it titled the document), and a cross
      // reference reads as its text.
      expect(content).toContain("```\n$ sudo apt install engram\n# Lines starting with '#' are comments");
      expect(content).toContain("See Rolling back a release when something goes wrong.");
      expect(content).not.toMatch(/<<|\[\[|:toc:|\/\/ A comment|\u200B/);
    }
  });

  it("reads a short AsciiDoc file the same every time: no footer with the time, no table of contents", async () => {
    const short = new TextEncoder().encode("= Office hours\n:toc:\n\n== Hours\n\nWe are open 9 to 5 on weekdays.\n");
    const first = await extract(short, { name: "hours.adoc" });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const again = await extract(short, { name: "hours.adoc" });
    expect(again.content).toBe(first.content);
    expect(first.content).toBe("# Office hours\n\n## Hours\n\nWe are open 9 to 5 on weekdays.");
  });

  it("reads a PDF's headings set only a little larger than its prose as headings", async () => {
    // Chromium's print of a page styled as Python's documentation: h3 at 12 pt over a 10.5 pt body.
    const { content, title } = await extract(fixture("small-headings.pdf"));
    expect(title).toBe("Input and output");
    expect(headings(content).map((h) => `${h.level} ${h.text}`)).toEqual([
      "1 Fancier output formatting",
      "2 Formatted string literals",
      "2 The string format method",
      "1 Reading and writing files",
      "2 Methods of file objects",
    ]);
  });

  it("reads a PDF title or heading that wrapped onto a second line as one", async () => {
    const { content, title } = await extract(fixture("wrapped-headings.pdf"));
    expect(title).toBe("A deliberately long document title that is going to wrap onto a second line in the PDF");
    expect(headings(content).map((h) => h.text)).toEqual([
      "Introduction section",
      "A second level heading that is also long enough that it has to wrap onto a second line of the page",
    ]);
  });

  it("refuses what it cannot store as text: a flat OpenDocument file or an SVG (their tags), UTF-16 holding a NUL", async () => {
    const fodt = await refusal(extract(fixture("two-columns.fodt"), { name: "two-columns.fodt" }));
    expect([fodt.status, fodt.code, fodt.message]).toEqual([
      415,
      "extract.unsupported_type",
      "Unsupported: OpenDocument file: save it as .docx.",
    ]);
    const svg = Buffer.from('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><text>Hi</text></svg>');
    expect((await refusal(extract(svg, { name: "logo.svg" }))).code).toBe("extract.unsupported_type");
    // UTF-16 that decodes to a NUL is no text a document can hold: refused here, not later as the request's content.
    const nul = await refusal(extract(Buffer.from([0xff, 0xfe, 0x00, 0x00, 0x62, 0x00]), { name: "bad.txt" }));
    expect([nul.status, nul.code]).toEqual([415, "extract.unsupported_type"]);
    // Other XML is text, as before: a configuration file is worth finding.
    const xml = Buffer.from('<?xml version="1.0"?>\n<config><retries>3</retries></config>');
    expect((await extract(xml, { name: "app.xml" })).format).toBe("text");
  });

  it("skips a scanned PDF (no text layer) as no extractable text", async () => {
    const error = await refusal(extract(fixture("scanned.pdf")));
    expect([error.status, error.code]).toEqual([422, "extract.no_text"]);
    expect(error.message).toMatch(/no extractable text \(scanned\?\)/i);
  });

  it("refuses an encrypted PDF and a corrupt one with codes naming the problem", async () => {
    const encrypted = await refusal(extract(fixture("encrypted.pdf")));
    expect([encrypted.status, encrypted.code]).toEqual([422, "extract.encrypted"]);
    const corrupt = await refusal(extract(fixture("corrupt.pdf")));
    expect([corrupt.status, corrupt.code]).toEqual([422, "extract.corrupt"]);
    const truncated = await refusal(extract(fixture("handbook.docx").subarray(0, 4000), { name: "x.docx" }));
    expect([truncated.status, truncated.code]).toEqual([422, "extract.corrupt"]);
  });

  it("refuses a PDF of 50,000 pages from its page count, before reading a page", async () => {
    const started = performance.now();
    const error = await refusal(extract(fixture("pages-50000.pdf")));
    expect([error.status, error.code]).toEqual([413, "extract.too_many_pages"]);
    expect(error.details).toEqual({ pages: 50_000, limit: 2_000 });
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it("refuses a .docx whose XML expands past the bound while inflating it, before mammoth parses it", async () => {
    const error = await refusal(extract(fixture("bomb.docx")));
    expect([error.status, error.code]).toEqual([413, "extract.too_large"]);
    // Its main document named otherwise than .xml (the archive's relationships may name any part): read, before.
    const renamed = await refusal(extract(fixture("bomb-renamed.docx")));
    expect([renamed.status, renamed.code]).toEqual([413, "extract.too_large"]);
    // Nor one whose relationship is written with spaces and single quotes, another naming the part an image.
    const decoy = await refusal(extract(fixture("bomb-decoy.docx")));
    expect([decoy.status, decoy.code]).toEqual([413, "extract.too_large"]);
    // A part mammoth never reads (a 34 MB embedded font) counts for nothing: the document is read.
    expect((await extract(fixture("font-large.docx"))).content).toMatch(/^# Employee handbook/);
    // The same bound holds however small: the honest handbook passes 32 MB, not 10 KB.
    expect(checkExpansion(fixture("handbook.docx"), { maxExpandedBytes: 32 << 20 } as never)).toBeGreaterThan(10_000);
    expect(() => checkExpansion(fixture("handbook.docx"), { maxExpandedBytes: 10_000 } as never)).toThrow(
      /expands past/,
    );
  });

  it("refuses a PDF whose streams decode past the bound while decoding them, before pdf.js opens it", async () => {
    // bomb.pdf: 0.5 MB whose second content stream inflates to 512 MB of spaces (pdf.js alone: 13 s, 1.7 GB).
    const started = performance.now();
    const error = await refusal(extract(fixture("bomb.pdf")));
    expect([error.status, error.code, error.details]).toEqual([413, "extract.too_large", { limitBytes: 64 << 20 }]);
    expect(error.message).toMatch(/decode to more than 64 MB \(a decompression bomb/);
    expect(performance.now() - started).toBeLessThan(2_000);
    // The same bound holds however small: the honest handbook decodes to 130 KB, past 100 KB, within 64 MB.
    expect((await extract(fixture("handbook.pdf"))).pages).toBe(6);
    const small = await refusal(extract(fixture("handbook.pdf"), { limits: { maxPdfDecodedBytes: 100_000 } }));
    expect(small.code).toBe("extract.too_large");
  });

  it("refuses a bomb in a PDF encrypted with an empty user password, which pdf.js opens and decrypts, as quickly", async () => {
    // bomb-*.pdf: bomb.pdf's page with 100 MB of spaces, encrypted by qpdf (pdf.js alone: 3-5 s, 420 MB each).
    for (const name of ["bomb-aes256.pdf", "bomb-aes128.pdf", "bomb-rc4-128.pdf", "bomb-rc4-40.pdf"]) {
      const started = performance.now();
      const error = await refusal(extract(fixture(name)));
      expect([name, error.status, error.code]).toEqual([name, 413, "extract.too_large"]);
      expect(performance.now() - started).toBeLessThan(2_000);
    }
    // The handbook so encrypted reads as the plain one; a PDF that asks for a password is refused as before.
    const plain = await extract(fixture("handbook.pdf"));
    for (const name of ["handbook-aes256.pdf", "handbook-rc4.pdf"]) {
      const { content, title, pages } = await extract(fixture(name));
      expect([name, content, title, pages]).toEqual([name, plain.content, plain.title, plain.pages]);
    }
    const locked = await refusal(extract(fixture("encrypted.pdf")));
    expect([locked.status, locked.code]).toEqual([422, "extract.encrypted"]);
  });

  it("names unsupported, empty and oversized files", async () => {
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0]);
    const image = await refusal(extract(png, { name: "photo.pdf" }));
    expect([image.status, image.code, image.message]).toEqual([
      415,
      "extract.unsupported_type",
      "Unsupported: PNG image.",
    ]);
    const empty = await refusal(extract(new Uint8Array(), { name: "a.md" }));
    expect([empty.status, empty.code]).toEqual([422, "extract.empty"]);
    const big = await refusal(extract(fixture("handbook.pdf"), { limits: { maxBytes: 1000 } }));
    expect([big.status, big.code]).toEqual([413, "extract.too_large"]);
    const pages = await refusal(extract(fixture("handbook.pdf"), { limits: { maxPages: 5 } }));
    expect(pages.code).toBe("extract.too_many_pages");
    const text = await refusal(extract(fixture("handbook.pdf"), { limits: { maxChars: 5000 } }));
    expect(text.code).toBe("extract.too_much_text");
  });

  it("reads UTF-16 text with its byte order mark, and names text in another encoding as such, not as binary", async () => {
    const note = "Café notes: the kiwi orchard is watered at dawn.";
    const le = new Uint8Array([0xff, 0xfe, ...new Uint8Array(Uint16Array.from(note, (c) => c.charCodeAt(0)).buffer)]);
    expect((await extract(le, { name: "notes.txt" })).content).toBe(note);
    const be = new Uint8Array(le.length);
    for (let i = 0; i < le.length; i += 2) [be[i], be[i + 1]] = [le[i + 1] as number, le[i] as number];
    expect((await extract(be, { name: "notes.txt" })).content).toBe(note);
    // Windows-1252 for "Café crème, naïve façade" over and over: no NUL, not UTF-8.
    const latin1 = Uint8Array.from("Caf\xe9 cr\xe8me, na\xefve fa\xe7ade. ".repeat(20), (c) => c.charCodeAt(0));
    expect(sniff(latin1, "notes.txt")).toEqual({
      format: "unsupported",
      reason: "text that is not UTF-8 (save it as UTF-8)",
    });
    // One such byte in a long English text is refused too, not stored as "caf�"; a U+FFFD written in UTF-8 is text.
    const few = Uint8Array.from(`${"Plain English words. ".repeat(50)}The caf\xe9 opens at nine.`, (c) =>
      c.charCodeAt(0),
    );
    await expect(extract(few, { name: "notes.md" })).rejects.toMatchObject({ code: "extract.unsupported_type" });
    expect(
      (await extract(new TextEncoder().encode("A \uFFFD stands for a lost character."), { name: "a.txt" })).content,
    ).toBe("A \uFFFD stands for a lost character.");
  });

  it("reads a web page or XML in the encoding it declares, and still refuses one that declares none", async () => {
    const cp1252 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
    // "Café", "Crème brûlée", curly quotes and the euro sign in windows-1252 (0x93, 0x94, 0x80).
    const page = cp1252(
      '<html><head><meta charset="windows-1252"><title>Caf\xe9</title></head><body><p>\x93Cr\xe8me br\xfbl\xe9e\x94 costs 5 \x80.</p></body></html>',
    );
    expect(await extract(page, { name: "menu.html" })).toMatchObject({
      title: "Café",
      content: "“Crème brûlée” costs 5 €.",
    });
    const equiv = cp1252(
      '<html><head><meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"></head><body><p>Na\xefve fa\xe7ade.</p></body></html>',
    );
    expect((await extract(equiv, { name: "page.htm" })).content).toBe("Naïve façade.");
    // A long page with a single byte that is not UTF-8 is read by its declaration too, not with "�".
    const long = cp1252(
      `<html><head><meta charset="windows-1252"></head><body><p>${"Plain words. ".repeat(200)}It costs 5 \x80.</p></body></html>`,
    );
    expect((await extract(long, { name: "long.html" })).content).toMatch(/It costs 5 €\.$/);
    const undeclared = cp1252("<html><body><p>Cr\xe8me br\xfbl\xe9e.</p></body></html>");
    expect(sniff(undeclared, "menu.html")).toMatchObject({ format: "unsupported" });
  });

  it("sniffs text formats by their first characters, then their extension", () => {
    const bytes = (s: string) => new TextEncoder().encode(s);
    expect(sniff(bytes("<!DOCTYPE html><p>x"), "a.md")).toEqual({ format: "html" });
    expect(sniff(bytes("a,b\n1,2\n"), "a.csv")).toEqual({ format: "csv" });
    expect(sniff(bytes('{"content":"x"}\n'), "a.jsonl")).toEqual({ format: "jsonl" });
    expect(sniff(bytes("# Title\n\ntext"), "README")).toEqual({ format: "markdown" });
    expect(sniff(new Uint8Array([0x50, 0x4b, 0x05, 0x06, ...new Array(18).fill(0)]), "a.docx")).toMatchObject({
      format: "unsupported",
    });
  });
});

/** A ZIP of stored entries, with its central directory or, like a file cut short, without. */
function zip(entries: [name: string, text: string][], { directory }: { directory: boolean }): Uint8Array {
  const u16 = (n: number) => [n & 0xff, (n >> 8) & 0xff];
  const u32 = (n: number) => [...u16(n & 0xffff), ...u16(n >>> 16)];
  const body: number[] = [];
  const central: number[] = [];
  for (const [name, text] of entries) {
    const [path, data] = [[...new TextEncoder().encode(name)], [...new TextEncoder().encode(text)]];
    const sizes = [...u32(0), ...u32(data.length), ...u32(data.length), ...u16(path.length), ...u16(0)];
    central.push(0x50, 0x4b, 1, 2, ...u16(20), ...u16(20), ...u16(0), ...u16(0), ...u32(0), ...sizes);
    central.push(...u16(0), ...u16(0), ...u16(0), ...u32(0), ...u32(body.length), ...path);
    body.push(0x50, 0x4b, 3, 4, ...u16(20), ...u16(0), ...u16(0), ...u32(0), ...sizes, ...path, ...data);
  }
  const end = [0x50, 0x4b, 5, 6, ...u32(0), ...u16(entries.length), ...u16(entries.length)];
  const tail = directory ? [...central, ...end, ...u32(central.length), ...u32(body.length), ...u16(0)] : [];
  return new Uint8Array([...body, ...tail]);
}

describe("a .docx cut short", () => {
  const cut = fixture("front-matter.docx").subarray(0, 6000);

  it("is a damaged Word document (422), judged by its local headers when its central directory is lost", async () => {
    // `head -c 6000 front-matter.docx`: the directory at the end is gone, `word/document.xml`'s header is not.
    expect(sniff(cut, "upload.bin")).toEqual({ format: "docx" });
    for (const name of ["handbook.docx", "upload.bin", undefined]) {
      const error = await refusal(extract(cut, { name }));
      expect([error.status, error.code, error.message]).toEqual([
        422,
        "extract.corrupt",
        "The Word document cannot be read (damaged archive).",
      ]);
    }
  });

  it("is judged by [Content_Types].xml or a .docx name when no Word part's header is left", async () => {
    const types: [string, string][] = [["[Content_Types].xml", "<Types/>"]];
    expect(sniff(zip(types, { directory: false }), "upload")).toEqual({ format: "docx" });
    const notes: [string, string][] = [["notes/a.txt", "a note"]];
    expect(sniff(zip(notes, { directory: false }), "report.docx")).toEqual({ format: "docx" });
    const error = await refusal(extract(zip(notes, { directory: false }), { name: "report.docx" }));
    expect([error.status, error.code]).toEqual([422, "extract.corrupt"]);
  });

  it("keeps other ZIPs, whole or cut short, refused as unsupported (415)", async () => {
    const notes: [string, string][] = [
      ["notes/a.txt", "a note"],
      ["notes/b.txt", "another"],
    ];
    const zipArchive = { format: "unsupported", reason: "ZIP archive (not a Word document)" };
    expect(sniff(zip(notes, { directory: false }), "notes.zip")).toEqual(zipArchive);
    // A whole archive says what it holds: its name does not make it Word.
    expect(sniff(zip(notes, { directory: true }), "notes.docx")).toEqual(zipArchive);
    const excel = { format: "unsupported", reason: "PowerPoint or Excel file" };
    const types: [string, string][] = [["[Content_Types].xml", "<Types/>"]];
    expect(sniff(zip([...types, ["xl/workbook.xml", "<workbook/>"]], { directory: false }))).toEqual(excel);
    expect(sniff(zip(types, { directory: false }), "budget.xlsx")).toEqual(excel);
    const error = await refusal(extract(zip(notes, { directory: false }), { name: "notes.zip" }));
    expect([error.status, error.code, error.message]).toEqual([
      415,
      "extract.unsupported_type",
      "Unsupported: ZIP archive (not a Word document).",
    ]);
  });
});

describe("titles and heading paths", () => {
  /** The location of the chunk holding `phrase`. */
  const locate = (content: string, phrase: string) => {
    const chunks = splitIntoChunks(content, { maxTokens: 60, overlapTokens: 0 });
    return locations(content, chunks)[chunks.findIndex((chunk) => chunk.content.includes(phrase))];
  };
  const para = "Exceptions to the payroll calendar are approved by the finance director. ".repeat(6);

  it("titles a .docx by its document properties, else its Title paragraph, else its first heading", async () => {
    // Pandoc writes front matter's title to both docProps/core.xml and a Title paragraph; the first heading is Travel.
    const properties = await extract(fixture("front-matter.docx"), { name: "front-matter.docx" });
    expect(properties.title).toBe("Employee Handbook 2026");
    expect(properties.content).toMatch(/^Employee Handbook 2026\n\nPeople team\n\n2026-01-05\n\n# Travel\n/);
    const styled = await extract(fixture("title-style.docx"), { name: "title-style.docx" });
    expect(styled.title).toBe("Employee Handbook 2026");
    const heading = await extract(fixture("handbook.docx"), { name: "handbook.docx" });
    expect(heading.title).toBe("Employee handbook");
  });

  it("titles a web page without a <title> by its first heading", () => {
    const article = `<!doctype html><html><body><nav><a href="/">Home</a></nav><article><h1>Payroll</h1><p>${para}</p><h2>Payroll Exceptions</h2><p>${para}</p></article></body></html>`;
    expect(extractHtml(article).title).toBe("Payroll");
    // A page without a main element or an article is its body, titled the same way.
    expect(extractHtml("<html><body><h1>Opening hours</h1><p>Nine to five.</p></body></html>")).toEqual({
      content: "# Opening hours\n\nNine to five.",
      title: "Opening hours",
    });
    expect(extractHtml("<html><body><p>No heading, no title.</p></body></html>").title).toBeUndefined();
  });

  it("keeps a web page's heading levels, so its passages have the heading path the same text has in Word", async () => {
    const phrase = "An off-cycle payment";
    const docx = await extract(fixture("front-matter.docx"));
    const html = await extract(fixture("front-matter.html"));
    const md = await extract(fixture("front-matter.md"), { name: "front-matter.md" });
    expect(locate(docx.content, phrase)).toEqual({ headings: ["Payroll", "Payroll Exceptions"] });
    expect(locate(html.content, phrase)).toEqual({ headings: ["Payroll", "Payroll Exceptions"] });
    expect(locate(md.content, phrase)).toEqual({ headings: ["Payroll", "Payroll Exceptions"] });
    expect(html.title).toBe("Employee Handbook 2026");

    // The h1 repeating the <title> stays the first heading, at its own level.
    for (const head of ["", "<head><title>Payroll</title></head>"]) {
      const page = `<!doctype html><html>${head}<body><article><h1>Payroll</h1><p>${para}</p><h2>Payroll Exceptions</h2><p>${para}</p><h4>Deadlines</h4><p>${para}</p></article></body></html>`;
      const { content } = extractHtml(page);
      expect(content).toMatch(/^# Payroll\n\nExceptions/);
      expect(content).toMatch(/\n## Payroll Exceptions\n[\s\S]*\n#### Deadlines\n/);
      expect(locate(content, "Deadlines")).toEqual({ headings: ["Payroll", "Payroll Exceptions", "Deadlines"] });
    }
  });
});

describe("titles and headings of Markdown-ish text", () => {
  it("titles Markdown by its first top-level heading outside code, `#` or underlined", async () => {
    const fenced = "Set the port first.\n\n```sh\n# fenced comment\nexport PORT=3000\n```\n\nThen start it.";
    expect((await extract(new TextEncoder().encode(fenced), { name: "notes.md" })).title).toBeUndefined();
    const underlined = "Release Guide\n=============\n\nShip on Fridays.\n\n# Appendix\n\nOld notes.";
    expect((await extract(new TextEncoder().encode(underlined), { name: "release.md" })).title).toBe("Release Guide");
  });

  it("keeps an identifier's underscores and a code span's text in a heading, dropping emphasis marks", () => {
    const text =
      "# Config for my_app\n\n## The `add_argument()` method\n\n## *Emphasis*, **strong** and a\\_b\n\nText.";
    expect(headings(text).map((h) => h.text)).toEqual([
      "Config for my_app",
      "The add_argument() method",
      "Emphasis, strong and a_b",
    ]);
    // An unpaired mark is text, and a closing run of #s needs a space before it.
    expect(
      headings("# The _id field\n\n# *args and **kwargs\n\n# Learning C#\n\n# Closing ##").map((h) => h.text),
    ).toEqual(["The _id field", "*args and **kwargs", "Learning C#", "Closing"]);
  });

  it("reads a heading's inline HTML as its text, a permalink's ¶ dropped", async () => {
    // Pandoc's `-t gfm` of a Sphinx page keeps each heading's spans and permalink as HTML, wrapped onto a second line.
    const md = await extract(fixture("sphinx-gfm.md"), { name: "interpreter.md" });
    expect(md.title).toBe("2. Using the Python Interpreter");
    expect(headings(md.content).map((h) => `${h.level} ${h.text}`)).toEqual(
      expect.arrayContaining([
        "1 2. Using the Python Interpreter",
        "2 2.1. Invoking the Interpreter",
        "3 2.1.1. Argument Passing",
        "2 2.2. The Interpreter and Its Environment",
      ]),
    );
    expect(
      headings(md.content)
        .map((h) => h.text)
        .join("\n"),
    ).not.toMatch(/[<>¶]/);
    const text = [
      '## <span class="section-number">4. </span>More Control Flow Tools<a href="#x" class="headerlink">¶</a>',
      '# <a href="#module-chunk" class="reference internal"\ntitle="chunk: Module"><code\nclass="sourceCode python">chunk</code></a> — Read IFF chunked data<a href="#module-chunk" class="headerlink"\ntitle="Permalink to this heading">¶</a>',
      "## <span>: The Content Span element",
      "## Use <kbd>Ctrl</kbd>+<kbd>C</kbd>",
      // A "<" that opens no tag with attributes joins no line to the heading.
      "## When a<b and c\nholds",
    ].join("\n\nText.\n\n");
    expect(headings(text).map((h) => h.text)).toEqual([
      "4. More Control Flow Tools",
      "chunk — Read IFF chunked data",
      // A tag named alone, with no attributes and no end, is text (MDN's own heading).
      "<span>: The Content Span element",
      "Use Ctrl+C",
      "When a<b and c",
    ]);
  });

  it("reads Windows line ends as Unix ones, and a file opening with many blank lines at once", async () => {
    const crlf = await extract(new TextEncoder().encode("# Release Guide\r\n\r\nShip on Fridays.\r\n"), {
      name: "guide.md",
    });
    expect(crlf.title).toBe("Release Guide");
    const bisect = new TextDecoder().decode(fixture("git-bisect.txt")).replace(/\n/g, "\r\n");
    const adoc = await extract(new TextEncoder().encode(bisect), { name: "git-bisect.txt" });
    expect([adoc.format, adoc.title]).toEqual(["asciidoc", "git-bisect(1)"]);
    // The start-of-file patterns had split a run of blank lines 2^n ways: 30 of them took 35 s.
    for (const blank of ["\n", " \n", "\r\n"]) {
      const { format } = await extract(new TextEncoder().encode(`${blank.repeat(60)}notes`), { name: "notes.txt" });
      expect(format).toBe("text");
    }
  });

  it("reads Git's manual pages as AsciiDoc: the title underlined, not a line of a listing block", async () => {
    const { format, title, content } = await extract(fixture("git-bisect.txt"), { name: "git-bisect.txt" });
    expect([format, title]).toEqual(["asciidoc", "git-bisect(1)"]);
    const names = headings(content).map((h) => `${h.level} ${h.text}`);
    expect(names.slice(0, 4)).toEqual(["1 git-bisect(1)", "2 NAME", "2 SYNOPSIS", "2 DESCRIPTION"]);
    // As Markdown, its listing blocks' lines above `------` were headings, and one titled the page.
    expect(names.join("\n")).not.toMatch(/hot-fix|refactor/);
    expect(content).not.toMatch(/^=+$/m);
    // Git's own macro reads as its build renders it: "git-bisect(1)", no "[1]" to read as a citation.
    expect(content).toContain("git-blame(1)");
    expect(content).not.toContain("linkgit:");
    // Text underlined the same way but with nothing only AsciiDoc writes (an INI section is not) stays Markdown.
    const readme = "Installing Packages\n===================\n\nUse the package manager.\n\n[global]\nbreak = 1\n";
    expect(await extract(new TextEncoder().encode(readme), { name: "README.txt" })).toMatchObject({
      format: "markdown",
      title: "Installing Packages",
    });
  });
});

describe("Markdown front matter", () => {
  const bytes = (s: string) => new TextEncoder().encode(s);

  it("titles a Markdown file by its front matter and leaves the block out of its text", async () => {
    const md = await extract(fixture("front-matter.md"), { name: "handbook.md" });
    expect(md.title).toBe("Employee Handbook 2026");
    expect(md.content).toMatch(/^# Travel\n\n## Booking\n/);
    expect(md.content).not.toMatch(/title:|author:|People team|---/);
    // Without a title there, the first heading is the title; the block is still not text.
    const untitled = await extract(bytes("---\nauthor: People team\n---\n\n# Leave\n\nText."), { name: "a.md" });
    expect(untitled).toEqual({ format: "markdown", content: "# Leave\n\nText.", title: "Leave" });
  });

  it("reads the title of a YAML mapping, plain, quoted, commented or folded, beside nested values", () => {
    expect(frontMatter('---\ntitle: "Q&A: \\"refunds\\""\n---\ntext')).toEqual({
      body: "text",
      title: 'Q&A: "refunds"',
    });
    expect(frontMatter("---\ntitle: 'It''s here' # draft\n---\n")).toEqual({ body: "", title: "It's here" });
    expect(
      frontMatter("---\r\ntags:\r\n  - hr\r\n  - pay\r\n# a comment\r\nTitle: Plain words # note\r\n...\r\n# H"),
    ).toEqual({
      body: "# H",
      title: "Plain words",
    });
    expect(frontMatter("---\ntitle: >\n  Folded\n  lines\n---\nx")).toEqual({ body: "x", title: "Folded lines" });
    expect(frontMatter("---\ntitle: [1, 2]\n---\nx")).toEqual({ body: "x", title: undefined });
    expect(frontMatter("---\ntitle:\n---\nx")).toEqual({ body: "x", title: undefined });
  });

  it("leaves a leading thematic break, a setext heading or an unclosed block as text", () => {
    for (const text of [
      "---\nA note on refunds\n---\n\nText.",
      "---\ntitle: x\nno end",
      "---\n\n---\nx",
      "--- \nx",
      "---\ntitle: x\n- not: yaml\n---\nx",
    ])
      expect(frontMatter(text)).toEqual({ body: text });
  });

  it("reads the file the same way in `engram ingest` as in the upload route", async () => {
    const dir = mkdtempSync(join(tmpdir(), "engram-front-matter-"));
    writeFileSync(join(dir, "handbook.md"), fixture("front-matter.md"));
    const { documents, skipped } = await readDocuments(join(dir, "handbook.md"), dir);
    const uploaded = await extract(fixture("front-matter.md"), { name: "handbook.md" });
    expect(skipped).toEqual([]);
    expect(documents).toEqual([
      expect.objectContaining({ id: "handbook.md", title: "Employee Handbook 2026", content: uploaded.content }),
    ]);
  });
});

describe("records of a .jsonl file", () => {
  it("are named by their line in what is skipped or failed, and keep ids by their index", async () => {
    const dir = mkdtempSync(join(tmpdir(), "engram-jsonl-"));
    const lines = ['{"content":"first"}', "", "not json", '{"content":"third"}', '{"title":"no content"}'];
    writeFileSync(join(dir, "recs.jsonl"), lines.join("\n"));
    const { documents, skipped } = await readDocuments(join(dir, "recs.jsonl"), dir);
    expect(skipped).toEqual([
      { path: join(dir, "recs.jsonl:3"), reason: "invalid JSON line", failed: true },
      { path: join(dir, "recs.jsonl:5"), reason: "no content field" },
    ]);
    expect(documents.map((d) => d.id)).toEqual(["recs.jsonl#0", "recs.jsonl#1"]);
  });

  it("of a .json file: valid JSON that is no object is said as such, not as invalid JSON", async () => {
    const dir = mkdtempSync(join(tmpdir(), "engram-json-"));
    writeFileSync(join(dir, "null.json"), "null");
    writeFileSync(join(dir, "mixed.json"), '[{"content":"kept"}, 7, null]');
    writeFileSync(join(dir, "odd.json"), '{"documents":"abc","content":"the record itself"}');
    expect((await readDocuments(join(dir, "null.json"), dir)).skipped).toEqual([
      { path: join(dir, "null.json#0"), reason: "not a JSON object" },
    ]);
    // An empty list holds no document: said, where it had been counted and listed nowhere.
    writeFileSync(join(dir, "empty.json"), "[]");
    writeFileSync(join(dir, "wrapped.json"), '{"documents": []}');
    for (const name of ["empty.json", "wrapped.json"]) {
      expect(await readDocuments(join(dir, name), dir)).toEqual({
        documents: [],
        skipped: [{ path: join(dir, name), reason: "holds no documents" }],
      });
    }
    const mixed = await readDocuments(join(dir, "mixed.json"), dir);
    expect(mixed.documents.map((d) => d.content)).toEqual(["kept"]);
    expect(mixed.skipped.map((s) => s.reason)).toEqual(["not a JSON object", "not a JSON object"]);
    // A `documents` field that is no list is the record's own field (one the API refuses), not records "a", "b", "c".
    const odd = await readDocuments(join(dir, "odd.json"), dir);
    expect(odd.documents).toEqual([]);
    expect(odd.skipped).toEqual([expect.objectContaining({ path: join(dir, "odd.json#0"), failed: true })]);
    expect(odd.skipped[0]?.reason).toMatch(/documents/);
  });
});

describe("locations", () => {
  it("gives each chunk of a PDF its page range and the headings above it", async () => {
    const pdf = await extract(fixture("handbook.pdf"));
    const chunks = splitIntoChunks(pdf.content, { maxTokens: 200, overlapTokens: 20 });
    const located = locations(pdf.content, chunks);
    expect(located[0]).toEqual({ pages: [1, 1], headings: ["Employee handbook"] });
    const last = located.at(-1);
    expect(last?.pages?.[1]).toBe(6);
    expect(last?.headings).toEqual(["Security", "Laptops"]);
    for (const [i, chunk] of chunks.entries()) {
      const [from, to] = located[i]?.pages ?? [0, 0];
      const before = pdf.content.slice(0, chunk.start).split("\f").length;
      expect(from).toBe(before);
      expect(to - from).toBe(chunk.content.split("\f").length - 1);
    }
  });

  it("is null for a text with neither pages nor headings", () => {
    expect(locations("just words", [{ start: 0, end: 10 }])).toEqual([null]);
    // A first heading that repeats the title is the title, as in the chunk's context.
    const text = "# Guide\n\n## Setup\n\nInstall it.";
    expect(locations(text, [{ start: 20, end: text.length }], " guide ")).toEqual([{ headings: ["Setup"] }]);
    expect(locations(text, [{ start: 20, end: text.length }])).toEqual([{ headings: ["Guide", "Setup"] }]);
    // A PDF sets the title, then the same words as its first heading: both are the title.
    const twice = "# Guide\n\n## Guide\n\nInstall it.";
    expect(locations(twice, [{ start: 20, end: twice.length }], "Guide")).toEqual([null]);
  });
});
