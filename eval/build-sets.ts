// Regenerates the two manual corpora of the retrieval evaluation sets:
//   eval/sets/python/corpus.jsonl  from Debian's python3-doc (/usr/share/doc/python3.11/html)
//   eval/sets/git/corpus.jsonl     from Debian's git-doc     (/usr/share/doc/git-doc)
// Needs: apt-get install python3-doc git-doc debian-handbook pandoc
// Run:   node bin/run-ts.js eval/build-sets.ts
// Deterministic: files are taken in sorted order and converted by pandoc with a fixed Lua filter.
//   eval/sets/handbook/corpus.jsonl from Debian's debian-handbook (/usr/share/doc/debian-handbook/html/en-US),
//     each page read by Engram's own upload extraction (core/extract), as an upload of the page would store it
// The conversation corpus (eval/sets/conversations) is hand-written and not touched here.
// The MemoryBank corpus (eval/sets/memorybank) is converted only when asked, from the dataset's JSON:
//   node bin/run-ts.js eval/build-sets.ts memorybank /path/to/memory_bank_en.json
// (eval_data/en/memory_bank_en.json of github.com/zhongwanjun/MemoryBank-SiliconFriend; not committed here).
// Changing this script changes the corpora, so check that every question's evidence still matches
// (npx vitest run test/unit/eval-sets.test.ts).

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const PY_HTML = "/usr/share/doc/python3.11/html";
const GIT_HTML = "/usr/share/doc/git-doc";
const HANDBOOK_HTML = "/usr/share/doc/debian-handbook/html/en-US";

interface Doc {
  id: string;
  title: string;
  source: string;
  content: string;
  conversationId?: string;
  userId?: string;
  metadata?: { session: number; date: string; speaker: string };
}

// Pandoc Lua filter: unwrap Sphinx/asciidoc divs and spans, keep link text but drop URLs, drop
// images, turn definition lists (API signatures, option lists) into a term paragraph followed by
// its body, and flatten every table to a pipe table of plain cell text.
const LUA_FILTER = `
local function cell_text(cell)
  local s = pandoc.utils.stringify(cell.contents or cell)
  s = s:gsub("|", "\\\\|"):gsub("%s+", " ")
  return s
end

local function row_line(row)
  local parts = {}
  for _, c in ipairs(row.cells) do table.insert(parts, cell_text(c)) end
  return "| " .. table.concat(parts, " | ") .. " |", #parts
end

function Table(tbl)
  local lines = {}
  local width = 0
  local header = nil
  for _, r in ipairs(tbl.head.rows) do
    local l, n = row_line(r)
    if header == nil then header = l; width = n else table.insert(lines, l) end
  end
  for _, body in ipairs(tbl.bodies) do
    for _, r in ipairs(body.head) do local l, n = row_line(r); table.insert(lines, l); if n > width then width = n end end
    for _, r in ipairs(body.body) do local l, n = row_line(r); table.insert(lines, l); if n > width then width = n end end
  end
  for _, r in ipairs(tbl.foot.rows) do local l = row_line(r); table.insert(lines, l) end
  if width == 0 then return {} end
  if header == nil then
    local empty = {}
    for i = 1, width do empty[i] = " " end
    header = "|" .. table.concat(empty, "|") .. "|"
  end
  local sep = {}
  for i = 1, width do sep[i] = "---" end
  local out = header .. "\\n|" .. table.concat(sep, "|") .. "|"
  for _, l in ipairs(lines) do out = out .. "\\n" .. l end
  return pandoc.RawBlock("markdown", out)
end

local LANGS = { python3 = "python", python = "python", pycon = "pycon", none = "text", default = "python" }

function Div(el)
  for _, cls in ipairs(el.classes) do
    local lang = cls:match("^highlight%-(.+)$")
    if lang then
      local name = LANGS[lang] or lang
      return pandoc.walk_block(pandoc.Div(el.content), {
        CodeBlock = function(cb) cb.attr = pandoc.Attr("", { name }, {}); return cb end,
      }).content
    end
  end
  return el.content
end
function Span(el) return el.content end
function Link(el) return el.content end
function Image(el) return {} end
function Note(el) return {} end
function RawBlock(el) if el.format == "markdown" then return el end return {} end
function RawInline(el) return {} end
function LineBlock(el)
  local out = {}
  for _, line in ipairs(el.content) do table.insert(out, pandoc.Plain(line)) end
  return out
end

function CodeBlock(el)
  local lang = el.classes[1]
  if lang == nil or lang == "" then lang = "text" end
  el.attr = pandoc.Attr("", { lang }, {})
  return el
end

function Header(el)
  el.attr = pandoc.Attr("", {}, {})
  return el
end

function DefinitionList(el)
  local out = {}
  for _, item in ipairs(el.content) do
    local term = item[1]
    local defs = item[2]
    local text = pandoc.utils.stringify(term):gsub("%s+", " ")
    if TERM_AS_CODE then
      table.insert(out, pandoc.Para({ pandoc.Code(text) }))
    else
      table.insert(out, pandoc.Para({ pandoc.Strong(term) }))
    end
    for _, def in ipairs(defs) do
      for _, b in ipairs(def) do table.insert(out, b) end
    end
  end
  return out
end
`;

let filterDir = "";
function filterPath(termAsCode: boolean): string {
  if (!filterDir) filterDir = mkdtempSync(join(tmpdir(), "engram-eval-"));
  const file = join(filterDir, termAsCode ? "code.lua" : "strong.lua");
  if (!existsSync(file)) writeFileSync(file, `TERM_AS_CODE = ${termAsCode}\n${LUA_FILTER}`);
  return file;
}

function pandoc(html: string, termAsCode: boolean): string {
  return execFileSync(
    "pandoc",
    [
      "-f",
      "html",
      "-t",
      "gfm-raw_html",
      "--wrap=none",
      "--markdown-headings=atx",
      "--lua-filter",
      filterPath(termAsCode),
    ],
    { input: html, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
}

/** Pandoc escapes markdown punctuation in prose (`\_\_init\_\_`); the corpus should read as plain text. */
function tidy(markdown: string): string {
  const out: string[] = [];
  let fence = false;
  for (const raw of markdown.split("\n")) {
    const line = raw.replace(/\s+$/, "");
    if (/^(```|~~~)/.test(line)) fence = !fence;
    if (fence || /^(```|~~~)/.test(line)) {
      out.push(line);
      continue;
    }
    if (/^-{3,}$/.test(line) || /^\*\s\*\s\*$/.test(line)) continue; // horizontal rules
    out.push(line.replace(/\\([\\`*_{}[\]()<>#+\-.!|~'"$^@&=:;,/])/g, "$1").replace(/\u00b6/g, ""));
  }
  return out
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}

function decodeEntities(s: string): string {
  return s
    .replace(/<[^>]+>/g, "")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&#0?39;/g, "'")
    .replace(/&#8217;/g, "\u2019")
    .replace(/&#8212;/g, "\u2014")
    .replace(/&nbsp;/g, " ")
    .replace(/&amp;/g, "&")
    .replace(/\u00b6/g, "")
    .replace(/\s+/g, " ")
    .trim();
}

// ---- Python ----

// Library pages left out: chapter pages that are only a table of contents, pages that are tables
// of audit events or warnings, and the modules deprecated for removal (PEP 594) or long superseded.
const PY_SKIP = new Set([
  // chapter/index pages
  "allos",
  "archiving",
  "binary",
  "concurrency",
  "crypto",
  "custominterp",
  "datatypes",
  "debug",
  "development",
  "distribution",
  "fileformats",
  "filesys",
  "frameworks",
  "functional",
  "i18n",
  "index",
  "internet",
  "ipc",
  "language",
  "markup",
  "mm",
  "modules",
  "netdata",
  "numeric",
  "persistence",
  "python",
  "superseded",
  "text",
  "tk",
  "unix",
  "windows",
  "audit_events",
  "security_warnings",
  "asyncio-api-index",
  "asyncio-llapi-index",
  // deprecated / removed modules
  "2to3",
  "aifc",
  "asynchat",
  "asyncore",
  "audioop",
  "cgi",
  "cgitb",
  "chunk",
  "crypt",
  "distutils",
  "imghdr",
  "imp",
  "mailcap",
  "msilib",
  "nis",
  "nntplib",
  "ossaudiodev",
  "pipes",
  "smtpd",
  "sndhdr",
  "spwd",
  "sunau",
  "telnetlib",
  "uu",
  "xdrlib",
  "tkinter.tix",
]);

function pythonDoc(rel: string): Doc {
  const html = readFileSync(join(PY_HTML, rel), "utf8");
  const start = html.indexOf('<div class="body" role="main">');
  const end = html.indexOf('<div class="sphinxsidebar"');
  if (start < 0 || end < 0) throw new Error(`no body in ${rel}`);
  const body = html.slice(start, end).replace(/<a class="headerlink"[^>]*>\u00b6<\/a>/g, "");
  const h1 = /<h1>([\s\S]*?)<\/h1>/.exec(body);
  const id = rel.replace(/\.html$/, "");
  return {
    id,
    title: h1 ? decodeEntities(h1[1]!) : id,
    source: `https://docs.python.org/3.11/${rel}`,
    content: tidy(pandoc(body, true)),
  };
}

function pythonCorpus(): Doc[] {
  const tutorial = readdirSync(join(PY_HTML, "tutorial"))
    .filter((f) => f.endsWith(".html"))
    .sort()
    .map((f) => `tutorial/${f}`);
  const library = readdirSync(join(PY_HTML, "library"))
    .filter((f) => f.endsWith(".html") && !PY_SKIP.has(f.replace(/\.html$/, "")))
    .sort()
    .map((f) => `library/${f}`);
  return [...tutorial, ...library].map(pythonDoc);
}

// ---- Git ----

const GIT_GUIDES = [
  "gittutorial",
  "gittutorial-2",
  "gitglossary",
  "gitworkflows",
  "githooks",
  "gitattributes",
  "gitignore",
  "gitrevisions",
  "gitcli",
  "giteveryday",
  "gitfaq",
  "gitmodules",
  "gitsubmodules",
  "gitcredentials",
  "gitrepository-layout",
  "gitmailmap",
  "gitnamespaces",
  "git",
  "user-manual",
];

function gitDoc(name: string): Doc {
  const html = readFileSync(join(GIT_HTML, `${name}.html`), "utf8");
  if (name === "user-manual") return userManual(html);
  const start = html.indexOf('<div id="header">');
  let end = html.indexOf('<div id="footnotes">');
  if (end < 0) end = html.indexOf('<div id="footer">');
  if (start < 0 || end < 0) throw new Error(`no body in ${name}`);
  const body = html.slice(start, end);
  let title = name;
  const nameSection = /<h2>NAME<\/h2>\s*<div class="sectionbody">\s*<p>([\s\S]*?)<\/p>/.exec(body);
  if (nameSection) {
    title = decodeEntities(nameSection[1]!).replace(/^(\S+) - /, "$1 \u2014 ");
  } else {
    const h1 = /<h1>([\s\S]*?)<\/h1>/.exec(body);
    if (h1) title = decodeEntities(h1[1]!);
  }
  return {
    id: name,
    title,
    source: `https://git-scm.com/docs/${name}`,
    content: tidy(pandoc(body, false)),
  };
}

/** The user manual is DocBook HTML: the book body without its tables of contents. */
function userManual(html: string): Doc {
  const start = html.indexOf("<body");
  const end = html.lastIndexOf("</body>");
  const body = html
    .slice(html.indexOf(">", start) + 1, end)
    .replace(/<div class="toc">[\s\S]*?<\/dl><\/div>/g, "")
    .replace(
      /<div class="titlepage"><div><div><h1 class="title"><a name="id-1"><\/a>Git User Manual<\/h1><\/div><\/div><hr><\/div>/,
      "<h1>Git User Manual</h1>",
    );
  return {
    id: "user-manual",
    title: "Git User Manual",
    source: "https://git-scm.com/docs/user-manual",
    content: tidy(pandoc(body, false)),
  };
}

function gitCorpus(): Doc[] {
  const commands = readdirSync(GIT_HTML)
    .filter((f) => /^git-.*\.html$/.test(f))
    .sort()
    .map((f) => f.replace(/\.html$/, ""));
  return [...commands, ...GIT_GUIDES.filter((g) => existsSync(join(GIT_HTML, `${g}.html`)))].map(gitDoc);
}

// ---- MemoryBank ----

const MB_SOURCE = "https://github.com/zhongwanjun/MemoryBank-SiliconFriend (eval_data/en/memory_bank_en.json)";

interface MemoryBankUser {
  name: string;
  history: Record<string, { query: string; response: string }[]>;
}

/**
 * One document per turn of MemoryBank's English dialogues: each user's query and the AI companion's response are
 * separate turns, in order. Users keep the file's order, days are sorted by date (session 1..10 is the day's place
 * among that user's dates), and each user's turns belong to that user (`userId`, their name as a slug). Text is kept
 * as the source has it, trimmed.
 */
function memoryBankCorpus(file: string): Doc[] {
  const data = JSON.parse(readFileSync(file, "utf8")) as Record<string, MemoryBankUser>;
  const docs: Doc[] = [];
  for (const [key, user] of Object.entries(data)) {
    const name = (user.name || key).trim();
    const slug = name
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-|-$/g, "");
    const dates = Object.keys(user.history).sort();
    dates.forEach((date, i) => {
      const session = i + 1;
      const day = `d${String(session).padStart(2, "0")}`;
      let turn = 0;
      const add = (speaker: string, text: string) => {
        turn += 1;
        docs.push({
          id: `${slug}-${day}-t${String(turn).padStart(2, "0")}`,
          title: `${name} \u2014 ${date}`,
          source: MB_SOURCE,
          content: `${speaker}: ${text.trim()}`,
          conversationId: `memorybank-${slug}`,
          userId: slug,
          metadata: { session, date, speaker },
        });
      };
      for (const exchange of user.history[date]!) {
        add(name, exchange.query);
        add("AI companion", exchange.response);
      }
    });
  }
  return docs;
}

/**
 * The Debian Administrator's Handbook, one document a page but its title page (`index`: legal notice, abstract and
 * the whole table of contents), read by the upload path's extraction: the DocBook HTML as a user's upload reads.
 */
async function handbookCorpus(): Promise<Doc[]> {
  const { extract } = await import("../core/extract");
  const docs: Doc[] = [];
  for (const file of readdirSync(HANDBOOK_HTML)
    .filter((f) => f.endsWith(".html") && f !== "index.html")
    .sort()) {
    const page = await extract(new Uint8Array(readFileSync(join(HANDBOOK_HTML, file))), { name: file });
    const id = file.replace(/\.html$/, "");
    docs.push({
      id,
      title: page.title ?? id,
      source: `https://debian-handbook.info/browse/stable/${file}`,
      content: page.content,
    });
  }
  return docs;
}

function write(file: string, docs: Doc[], limitBytes: number): void {
  const text = `${docs.map((d) => JSON.stringify(d)).join("\n")}\n`;
  const bytes = Buffer.byteLength(text);
  if (bytes > limitBytes) throw new Error(`${file}: ${bytes} bytes, over the ${limitBytes} limit`);
  writeFileSync(file, text);
  console.log(`${file}: ${docs.length} documents, ${(bytes / 1024 / 1024).toFixed(2)} MB`);
}

const only = process.argv[2];
const out = resolve(here, "sets");
try {
  if (only === "memorybank") {
    const file = process.argv[3];
    if (!file) throw new Error("usage: build-sets.ts memorybank /path/to/memory_bank_en.json");
    mkdirSync(join(out, "memorybank"), { recursive: true });
    write(join(out, "memorybank", "corpus.jsonl"), memoryBankCorpus(file), 1024 * 1024);
  }
  if (!only || only === "python") write(join(out, "python", "corpus.jsonl"), pythonCorpus(), 7 * 1024 * 1024);
  if (!only || only === "git") write(join(out, "git", "corpus.jsonl"), gitCorpus(), 4 * 1024 * 1024);
  if (!only || only === "handbook")
    write(join(out, "handbook", "corpus.jsonl"), await handbookCorpus(), 2 * 1024 * 1024);
} finally {
  if (filterDir) rmSync(filterDir, { recursive: true, force: true });
}
