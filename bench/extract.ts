/**
 * Extraction (#23): pages/s and peak RSS on a 300-page PDF and a 100-page .docx, each read in a fresh process
 * (so peak RSS is that file's), beside the library alone in the same run (pdf.js's getTextContent through unpdf,
 * mammoth's HTML) and the native converters where installed (poppler's pdftotext, pandoc); then `engram ingest`
 * of a folder of 100 mixed files (PDF, .docx, HTML, Markdown, text) straight to Postgres with `pg`, first run and
 * again, beside the same texts as Markdown files (ingest without extraction).
 *
 * The files are made at bench time by the real producers, as the fixtures were: Markdown written here, .docx by
 * Pandoc, PDF by LibreOffice (`soffice --headless --convert-to pdf`), cut to 300 pages by qpdf. Without
 * LibreOffice or Pandoc the scenario says so and measures nothing (apt-get install libreoffice-writer-nogui
 * pandoc qpdf poppler-utils). They are kept in the temp folder between runs.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { prose } from "../kit/factories";
import { createDatabase, databaseUrl, dropDatabase } from "../kit/postgres";
import { round } from "./support";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));
/** Bump when the generated files change, so a stale cache is not measured. */
const CACHE = join(tmpdir(), "engram-bench-extract-v1");
/** The child reports its own peak RSS when it exits (kilobytes, as getrusage gives it). */
const RSS_HOOK =
  '--import=data:text/javascript,import{writeSync}from"node:fs";process.on("exit",()=>writeSync(2,"\\nbench-maxrss-kb "+process.resourceUsage().maxRSS+"\\n"))';

const has = (command: string, arg = "--version") => spawnSync(command, [arg], { stdio: "ignore" }).status === 0;

function run(command: string, args: string[], cwd = CACHE): void {
  const done = spawnSync(command, args, { cwd, stdio: ["ignore", "ignore", "pipe"], timeout: 15 * 60_000 });
  if (done.status !== 0) throw new Error(`${command} ${args.join(" ")} failed: ${done.stderr?.toString().slice(-500)}`);
}

/** LibreOffice in a profile of its own: a second soffice sharing the default one hands its work to the first. */
function soffice(args: string[]): void {
  run("soffice", [`-env:UserInstallation=file://${join(CACHE, "lo-profile")}`, "--headless", ...args]);
}

/** A book in Markdown: chapters, sections, paragraphs, a list in every third section and a table per chapter. */
function book(seed: number, chapters: number, sections: number, paragraphs: number): string {
  const out: string[] = [];
  for (let c = 1; c <= chapters; c++) {
    const title = (n: number) =>
      prose(seed * 1000 + c * 50 + n, 1, 1)
        .split(" ")
        .slice(0, 4)
        .join(" ");
    out.push(`# ${c}. ${title(0)}`);
    for (let s = 1; s <= sections; s++) {
      out.push(`## ${c}.${s} ${title(s)}`);
      out.push(prose(seed * 100_000 + c * 1000 + s, paragraphs, 5));
      if (s % 3 === 0) out.push([1, 2, 3, 4].map((i) => `- ${prose(seed + c * 7 + s * 3 + i, 1, 1)}`).join("\n"));
    }
    out.push(
      "| Item | Owner | Notes |\n|---|---|---|\n" +
        [1, 2, 3].map((i) => `| ${c}.${i} | team ${i} | ${prose(seed + c + i, 1, 1).slice(0, 40)} |`).join("\n"),
    );
  }
  return `${out.join("\n\n")}\n`;
}

async function pageCount(file: string): Promise<number> {
  const { getDocumentProxy } = await import("unpdf");
  const pdf = await getDocumentProxy(new Uint8Array(readFileSync(file)));
  const pages = pdf.numPages;
  await pdf.destroy();
  return pages;
}

/** Markdown to .docx (Pandoc), to PDF (LibreOffice); the PDF's page count is LibreOffice's layout of the .docx. */
async function produce(name: string, markdown: string): Promise<{ docx: string; pdf: string; pages: number }> {
  writeFileSync(join(CACHE, `${name}.md`), markdown);
  run("pandoc", [`${name}.md`, "-o", `${name}.docx`]);
  soffice(["--convert-to", "pdf", "--outdir", CACHE, join(CACHE, `${name}.docx`)]);
  const pdf = join(CACHE, `${name}.pdf`);
  return { docx: join(CACHE, `${name}.docx`), pdf, pages: await pageCount(pdf) };
}

interface Inputs {
  pdf: string;
  pdfPages: number;
  docx: string;
  docxPages: number;
  mixed: string;
  plain: string;
}

/** Makes (or finds) the 300-page PDF, the 100-page .docx and the two folders of 100 files. */
async function inputs(): Promise<Inputs> {
  const manifest = join(CACHE, "inputs.json");
  if (existsSync(manifest)) return JSON.parse(readFileSync(manifest, "utf8")) as Inputs;
  rmSync(CACHE, { recursive: true, force: true });
  mkdirSync(CACHE, { recursive: true });

  // The 300-page PDF: a book longer than 300 pages as LibreOffice lays it out, cut to exactly 300 by qpdf.
  // About 6 pages a chapter as LibreOffice sets Pandoc's default .docx (60 pages for 10 chapters).
  const long = await produce("long", book(1, 55, 8, 4));
  if (long.pages < 300) throw new Error(`the long book came out at ${long.pages} pages, fewer than 300`);
  let pdf = long.pdf;
  let pdfPages = long.pages;
  if (has("qpdf") && long.pages > 300) {
    run("qpdf", ["long.pdf", "--pages", ".", "1-300", "--", "book-300.pdf"]);
    pdf = join(CACHE, "book-300.pdf");
    pdfPages = 300;
  }

  // The 100-page .docx: a chapter more until LibreOffice lays it out on at least 100 pages.
  let chapters = 17;
  let docxBook = await produce("book-100", book(2, chapters, 8, 4));
  while (docxBook.pages < 100) docxBook = await produce("book-100", book(2, ++chapters, 8, 4));

  // 100 mixed files, 20 of each kind, each its own text (so nothing is shared between them), and the same
  // 100 texts as Markdown for the baseline.
  const mixed = join(CACHE, "mixed");
  const plain = join(CACHE, "plain");
  mkdirSync(mixed);
  mkdirSync(plain);
  const texts = Array.from({ length: 100 }, (_, i) => book(100 + i, 4, 5, 3));
  for (const [i, text] of texts.entries()) writeFileSync(join(plain, `file-${String(i).padStart(3, "0")}.md`), text);
  const docxNames: string[] = [];
  for (let i = 0; i < 40; i++) {
    const name = `file-${String(i).padStart(3, "0")}`;
    writeFileSync(join(CACHE, `${name}.md`), texts[i] as string);
    run("pandoc", [`${name}.md`, "-o", `${name}.docx`]);
    docxNames.push(join(CACHE, `${name}.docx`));
  }
  // One LibreOffice start for the 20 PDFs.
  soffice(["--convert-to", "pdf", "--outdir", mixed, ...docxNames.slice(0, 20)]);
  for (const file of docxNames.slice(20)) renameSync(file, join(mixed, file.slice(CACHE.length + 1)));
  for (let i = 40; i < 100; i++) {
    const name = join(mixed, `file-${String(i).padStart(3, "0")}`);
    const text = texts[i] as string;
    if (i < 60) {
      // A web page: the article between a site's navigation, sidebar and footer, as a web page is read.
      const html = spawnSync("pandoc", ["-f", "markdown", "-t", "html"], { input: text }).stdout.toString();
      writeFileSync(
        `${name}.html`,
        `<!doctype html><html><head><title>Page ${i}</title></head><body><nav><a href="/">Home</a> <a href="/help">Help</a> <a href="/basket">Basket (0)</a></nav><aside>Sign up for our newsletter.</aside><main><article>${html}</article></main><footer>All rights reserved.</footer></body></html>\n`,
      );
    } else if (i < 80) writeFileSync(`${name}.md`, text);
    else writeFileSync(`${name}.txt`, text.replace(/^#+ /gm, ""));
  }
  const made: Inputs = { pdf, pdfPages, docx: docxBook.docx, docxPages: docxBook.pages, mixed, plain };
  writeFileSync(manifest, JSON.stringify(made));
  return made;
}

interface Measured {
  seconds: number;
  maxRssMB?: number;
  output: string;
}

/** Runs a process to its end: its time, and its peak RSS when it is Node with the hook. */
function measure(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Measured> {
  return new Promise((done, fail) => {
    const started = performance.now();
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let errors = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      errors += chunk.toString();
    });
    child.on("error", fail);
    child.on("close", (code) => {
      const seconds = (performance.now() - started) / 1000;
      if (code !== 0) return fail(new Error(`${command} ${args.join(" ")} exited ${code}: ${errors.slice(-800)}`));
      const kb = /bench-maxrss-kb (\d+)/.exec(errors)?.[1];
      done({ seconds, maxRssMB: kb ? Math.round(Number(kb) / 1024) : undefined, output });
    });
  });
}

/** One extraction in a fresh Node process (this file with --child), best of `runs` by time. */
async function child(mode: string, file: string, runs: number) {
  let best: { seconds: number; chars: number; pages: number; maxRssMB?: number } | undefined;
  for (let i = 0; i < runs; i++) {
    const m = await measure(process.execPath, [RSS_HOOK, "bin/run-ts.js", "bench/extract.ts", `--child=${mode}`, file]);
    const r = JSON.parse(m.output.trim().split("\n").at(-1) as string) as {
      seconds: number;
      chars: number;
      pages: number;
    };
    if (!best || r.seconds < best.seconds) best = { ...r, maxRssMB: m.maxRssMB };
  }
  return best as { seconds: number; chars: number; pages: number; maxRssMB?: number };
}

/** What a child process does: read one file one way, say how long the reading took and what came out. */
async function childMain(mode: string, file: string): Promise<void> {
  const bytes = new Uint8Array(readFileSync(file));
  let chars = 0;
  let pages = 0;
  const started = performance.now();
  if (mode === "engram") {
    const Extract = await import("../core/extract");
    // The one-document character limit is the API's rule, not extraction's cost: raised so the book is read whole.
    const out = await Extract.extract(bytes, { name: file, limits: { maxChars: 10_000_000 } });
    chars = out.content.length;
    pages = out.pages ?? 0;
  } else if (mode === "pdfjs") {
    const { getDocumentProxy } = await import("unpdf");
    const pdf = await getDocumentProxy(bytes, { isEvalSupported: false, verbosity: 0 });
    pages = pdf.numPages;
    for (let n = 1; n <= pdf.numPages; n++) {
      const page = await pdf.getPage(n);
      for (const item of (await page.getTextContent()).items) if ("str" in item) chars += item.str.length;
      page.cleanup();
    }
    await pdf.destroy();
  } else if (mode === "mammoth") {
    const mammoth = (await import("mammoth")).default;
    chars = (await mammoth.convertToHtml({ buffer: Buffer.from(bytes) })).value.length;
  } else if (mode !== "idle") throw new Error(`unknown mode ${mode}`);
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ seconds, chars, pages }));
}

/** A native converter's time (no peak RSS: it is not Node). */
async function native(command: string, args: string[], runs: number): Promise<Measured> {
  let best: Measured | undefined;
  for (let i = 0; i < runs; i++) {
    const m = await measure(command, args);
    if (!best || m.seconds < best.seconds) best = m;
  }
  return best as Measured;
}

/** `engram ingest <folder> --json` on a database, straight to Postgres with `pg`, the offline embedder. */
async function ingest(folder: string, database: string) {
  const env = {
    ...process.env,
    DATABASE_URL: databaseUrl(database),
    DATABASE_DRIVER: "pg",
    EMBEDDING_PROVIDER: "offline",
    CHAT_PROVIDER: "extractive",
    OPENAI_API_KEY: "",
    ENGRAM_DATA_DIR: join(CACHE, "data"),
    LOG_LEVEL: "silent",
  };
  const m = await measure(process.execPath, [RSS_HOOK, "bin/engram.js", "ingest", folder, "--json"], env);
  const summary = JSON.parse(m.output.trim().split("\n").at(-1) as string) as {
    files: number;
    documents: number;
    chunks: number;
    embedded: number;
    skipped: unknown[];
    failed: number;
  };
  return { ...m, summary };
}

export async function benchExtract(opts: { quick: boolean }): Promise<Record<string, unknown>[]> {
  if (!has("soffice") || !has("pandoc")) {
    return [
      {
        scenario: "extract",
        skipped:
          "needs LibreOffice (soffice) and Pandoc to make the files: apt-get install libreoffice-writer-nogui pandoc",
      },
    ];
  }
  const made = await inputs();
  const runs = opts.quick ? 1 : 2;
  const rows: Record<string, unknown>[] = [];
  const idle = await child("idle", made.pdf, 1);
  rows.push({
    scenario: "a Node process with tsx, reading nothing (the floor under every peak RSS below)",
    "peak RSS MB": idle.maxRssMB,
  });

  const row = (scenario: string, pages: number, r: { seconds: number; chars?: number; maxRssMB?: number }) => ({
    scenario,
    pages,
    s: round(r.seconds),
    "pages/s": Math.round(pages / r.seconds),
    "chars/s": r.chars ? Math.round(r.chars / r.seconds) : undefined,
    "peak RSS MB": r.maxRssMB,
  });
  const pdf = await child("engram", made.pdf, runs);
  rows.push({
    ...row(`${made.pdfPages}-page PDF (LibreOffice): Engram's extract (unpdf, lines, headings)`, made.pdfPages, pdf),
    chars: pdf.chars,
  });
  const pdfjs = await child("pdfjs", made.pdf, runs);
  rows.push({
    ...row("  baseline: pdf.js getTextContent alone, every page (unpdf)", made.pdfPages, pdfjs),
    chars: pdfjs.chars,
  });
  if (has("pdftotext", "-v")) {
    const poppler = await native("pdftotext", [made.pdf, "-"], runs);
    rows.push({
      ...row("  baseline: poppler's pdftotext (native C++)", made.pdfPages, poppler),
      chars: poppler.output.length,
    });
  }
  const docx = await child("engram", made.docx, runs);
  rows.push({
    ...row(
      `${made.docxPages}-page .docx (Pandoc; pages as LibreOffice lays it out): Engram's extract (mammoth)`,
      made.docxPages,
      docx,
    ),
    chars: docx.chars,
  });
  const mammoth = await child("mammoth", made.docx, runs);
  rows.push({ ...row("  baseline: mammoth's HTML alone", made.docxPages, mammoth), chars: mammoth.chars });
  const pandoc = await native("pandoc", [made.docx, "-t", "plain"], runs);
  rows.push({
    ...row("  baseline: pandoc to plain text (native Haskell)", made.docxPages, pandoc),
    chars: pandoc.output.length,
  });

  const counts = readdirSync(made.mixed).reduce<Record<string, number>>((acc, name) => {
    const ext = name.slice(name.lastIndexOf(".") + 1);
    acc[ext] = (acc[ext] ?? 0) + 1;
    return acc;
  }, {});
  const kinds = Object.entries(counts)
    .map(([ext, n]) => `${n} ${ext}`)
    .join(", ");
  const mixedDb = await createDatabase();
  const plainDb = await createDatabase();
  try {
    const ingestRow = (scenario: string, r: Awaited<ReturnType<typeof ingest>>) => ({
      scenario,
      files: r.summary.files,
      s: round(r.seconds),
      "files/s": round(r.summary.files / r.seconds, 1),
      documents: r.summary.documents,
      chunks: r.summary.chunks,
      embedded: r.summary.embedded,
      skipped: r.summary.skipped.length,
      "peak RSS MB": r.maxRssMB,
    });
    rows.push(
      ingestRow(`engram ingest, 100 mixed files (${kinds}) on pg, offline embedder`, await ingest(made.mixed, mixedDb)),
    );
    rows.push(
      ingestRow(
        "  the same folder again (nothing to embed: extraction and hashing)",
        await ingest(made.mixed, mixedDb),
      ),
    );
    rows.push(
      ingestRow(
        "  baseline: the same 100 texts as Markdown files (no extraction), fresh database",
        await ingest(made.plain, plainDb),
      ),
    );
  } finally {
    await dropDatabase(mixedDb);
    await dropDatabase(plainDb);
  }
  return rows;
}

const childMode = process.argv.find((a) => a.startsWith("--child="))?.slice(8);
if (childMode) {
  await childMain(childMode, process.argv.at(-1) as string);
  process.exit(0);
}
