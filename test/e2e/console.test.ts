/**
 * The console in a real headless Chromium (Debian's package, driven by playwright-core),
 * against the local server started in this process on a fresh embedded database. One person's
 * session, in order: load, add files, browse, search, chat, switch end users, delete; then
 * the faults (429, a lost server). Screenshots of the main screens go to docs/screenshots/.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, type BrowserContext, type ConsoleMessage, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { consoleSite } from "../../cli/console";
import { readDocuments } from "../../cli/files";
import { ensureLocalKey, openLocalDb } from "../../cli/local";
import { startServer } from "../../cli/server";
import * as Auth from "../../core/auth";
import { setConfig } from "../../core/config";
import { closeDb, type Db } from "../../core/db";
import * as RateLimit from "../../core/ratelimit";
import * as Tenant from "../../core/tenant";
import { ensureConsoleBuilt } from "../../scripts/build-console";

const CHROMIUM = "/usr/bin/chromium";
// The README's screenshots are refreshed with UPDATE_SCREENSHOTS=1; other runs keep theirs out of the tree.
const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS
  ? resolve(dirname(fileURLToPath(import.meta.url)), "../../docs/screenshots")
  : join(tmpdir(), "engram-screenshots");

let dataDir: string;
let db: Db;
let key: string;
let extra: Awaited<ReturnType<typeof consoleSite>>["extra"];
let server: Awaited<ReturnType<typeof startServer>>;
let port: number;
let browser: Browser;
let context: BrowserContext;
let page: Page;
/** Console errors, uncaught exceptions and failed loads of the main page, as they happen. */
const problems: string[] = [];

function watch(p: Page, sink: string[]) {
  p.on("console", (message: ConsoleMessage) => {
    if (message.type() === "error" || message.type() === "warning") sink.push(`${message.type()}: ${message.text()}`);
  });
  p.on("pageerror", (error) => sink.push(`pageerror: ${error.message}`));
}

const files = (...list: [name: string, content: string | Buffer][]) =>
  list.map(([name, content]) => ({
    name,
    mimeType: name.endsWith(".png") ? "image/png" : "text/plain",
    buffer: Buffer.isBuffer(content) ? content : Buffer.from(content),
  }));

const HASH: Record<string, string> = { Add: "#ingest", Documents: "#documents", Search: "#search", Chat: "#chat" };

async function go(section: keyof typeof HASH) {
  await page.getByRole("link", { name: section, exact: true }).click();
  await expect.poll(() => page.evaluate(() => location.hash)).toBe(HASH[section]);
}

async function switchUser(p: Page, user: string) {
  await p.getByTestId("user-input").fill(user);
  await p.getByRole("button", { name: "Switch" }).click();
  await p
    .getByTestId("space-label")
    .filter({ hasText: user ? `${user} (private) + shared` : "shared (no end user)" })
    .waitFor();
}

/** A screenshot for docs/screenshots without the passing "saved"/"deleted" notes over the content. */
async function shot(p: Page, name: string, fullPage = true) {
  await p.evaluate(() => {
    document.querySelectorAll(".toast.info").forEach((toast) => {
      toast.remove();
    });
  });
  await p.screenshot({ path: join(SCREENSHOTS, name), fullPage, animations: "disabled" });
}

async function search(p: Page, query: string, mode = "Hybrid") {
  await p.getByTestId("search-query").fill(query);
  await p.locator("fieldset.segmented label").filter({ hasText: mode }).click();
  await p.getByRole("button", { name: "Search", exact: true }).click();
  await p
    .getByTestId("search-summary")
    .filter({ hasText: /\d+ results? ·/ })
    .waitFor();
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "engram-console-"));
  const cfg = setConfig({
    ENGRAM_DATA_DIR: dataDir,
    DATABASE_URL: "",
    DATABASE_DRIVER: "pglite",
    OPENAI_API_KEY: "",
    OPENAI_BASE_URL: "",
    EMBEDDING_PROVIDER: "offline",
    CHAT_PROVIDER: "extractive",
    LOG_LEVEL: "silent",
  });
  const [opened, launched] = await Promise.all([
    openLocalDb(cfg),
    chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    }),
  ]);
  db = opened;
  browser = launched;
  key = (await ensureLocalKey(db, cfg)).key;
  // As `npm start` does before the server starts (package.json's prestart).
  await ensureConsoleBuilt();
  extra = (await consoleSite({ key })).extra;
  server = await startServer({ port: 0, extra });
  port = Number(new URL(server.url).port);
  mkdirSync(SCREENSHOTS, { recursive: true });
  context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: "light" });
  context.setDefaultTimeout(10_000);
  page = await context.newPage();
  watch(page, problems);
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await closeDb();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe("the console", () => {
  it("loads with the local key and the server's status, with zero console errors", async () => {
    await page.goto(server.url);
    await expect.poll(() => page.getByTestId("key-label").textContent()).toContain(`local key ${key.slice(0, 12)}`);
    const status = page.getByRole("definition");
    await status.filter({ hasText: "pglite · healthy" }).waitFor();
    await status.filter({ hasText: "offline engram-offline-v2 · 1536 dims" }).waitFor();
    await status.filter({ hasText: "extractive (no chat model)" }).waitFor();
    await page.getByRole("heading", { name: "Add documents" }).waitFor();
    expect(problems).toEqual([]);
  });

  it("says so beside the embedder when health warns that most chunks are of another model", async () => {
    const warning = "80% of the stored chunks were embedded by another model than engram-offline-v2";
    await page.route("**/v1/health", async (route) => {
      const real = await (await route.fetch()).json();
      await route.fulfill({
        json: { ...real, status: "degraded", embedder: { ...real.embedder, staleShare: 0.8, warning } },
      });
    });
    try {
      await page.goto(server.url);
      const badge = page.getByText("80% stale: engram reembed");
      await badge.waitFor();
      expect(await badge.getAttribute("title")).toBe(warning);
      // The database itself is fine: the strip must not say it is unreachable.
      await page.getByRole("definition").filter({ hasText: "pglite · healthy" }).waitFor();
    } finally {
      await page.unroute("**/v1/health");
    }
    await page.goto(server.url);
    await page.getByRole("definition").filter({ hasText: "offline engram-offline-v2 · 1536 dims" }).waitFor();
    expect(await page.getByText("stale: engram reembed").count()).toBe(0);
  });

  it("serves the page under a same-origin Content-Security-Policy with immutable hashed assets", async () => {
    const index = await fetch(server.url);
    expect(index.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(index.headers.get("cache-control")).toBe("no-cache");
    expect(index.headers.get("x-content-type-options")).toBe("nosniff");
    expect(index.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    expect(index.headers.get("content-security-policy")).toBe(
      "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    );
    const html = await index.text();
    const script = /src="(\/console\/assets\/app-[A-Z0-9]+\.js)"/.exec(html)?.[1];
    const style = /href="(\/console\/assets\/style-[A-Z0-9]+\.css)"/.exec(html)?.[1];
    expect(script && style).toBeTruthy();
    const js = await fetch(`${server.url}${script}`);
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(js.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    const css = await fetch(`${server.url}${style}`);
    expect(css.headers.get("content-type")).toBe("text/css; charset=utf-8");
    const revalidated = await fetch(server.url, { headers: { "if-none-match": index.headers.get("etag") ?? "" } });
    expect(revalidated.status).toBe(304);
    expect((await fetch(`${server.url}/console/assets/nope.js`)).status).toBe(404);
  });

  it("hands the local key only to a page opened on this machine by a local name", async () => {
    const local = await fetch(`http://127.0.0.1:${port}/console/config.json`);
    expect(local.headers.get("cache-control")).toBe("no-store");
    expect(await local.json()).toEqual({ key });
    // A DNS-rebinding page reaches the same socket under its own host name.
    const rebound = await new Promise<string>((done, fail) => {
      import("node:http").then(({ request }) =>
        request(
          { host: "127.0.0.1", port, path: "/console/config.json", headers: { host: `evil.example:${port}` } },
          (res) => {
            let body = "";
            res.on("data", (chunk) => (body += chunk));
            res.on("end", () => done(body));
          },
        )
          .on("error", fail)
          .end(),
      );
    });
    expect(JSON.parse(rebound)).toEqual({ key: null });
  });

  it("adds dropped files with per-file progress, and lists unsupported and oversized files as skipped", async () => {
    const folder = mkdtempSync(join(tmpdir(), "engram-drop-"));
    const handbook = join(folder, "handbook");
    mkdirSync(handbook);
    writeFileSync(
      join(handbook, "refunds.md"),
      "---\ntitle: Returns and refunds\nowner: Support\n---\n\n# Refund policy\n\nRefunds are issued within 14 days of a return. Store credit never expires.\n",
    );
    writeFileSync(
      join(handbook, "shipping.html"),
      "<html><head><title>Shipping</title><script>alert(1)</script></head><body><h1>Shipping</h1><p>Orders ship within two business days.</p><h2>Express delivery</h2><p>Express shipping arrives overnight.</p></body></html>",
    );
    writeFileSync(join(handbook, "logo.png"), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0]));
    await go("Add");
    await page.getByTestId("folder-input").setInputFiles(handbook);
    await page.getByTestId("ingest-totals").filter({ hasText: "2 created" }).waitFor();
    const rows = page.getByTestId("ingest-files").locator("tbody tr");
    await expect.poll(() => rows.count()).toBe(3);
    expect(await page.locator('tr[data-path="handbook/refunds.md"] .state').textContent()).toBe("created · 1 chunk");
    expect(await page.locator('tr[data-path="handbook/logo.png"] .state').textContent()).toBe(
      "skipped: unsupported file type .png",
    );
    // Stored as `engram ingest` stores the same files: the front matter left out and its title the title; the page
    // extracted on the server, its headings kept as `#` headings (chunk contexts and citation locations).
    const stored = async (id: string): Promise<Record<string, unknown>> => {
      const url = `${server.url}/v1/documents/${encodeURIComponent(id)}?track=false`;
      return (await fetch(url, { headers: { authorization: `Bearer ${key}` } })).json();
    };
    const markdown = await stored("handbook/refunds.md");
    expect(markdown.title).toBe("Returns and refunds");
    expect(markdown.content).toMatch(/^# Refund policy\n/);
    const web = await stored("handbook/shipping.html");
    expect(web.content).toMatch(/^# Shipping\n[\s\S]*\n## Express delivery\n/);
    for (const [name, doc] of [
      ["refunds.md", markdown],
      ["shipping.html", web],
    ] as const) {
      const cli = (await readDocuments(join(handbook, name), folder)).documents[0];
      expect({ id: doc.id, title: doc.title, source: doc.source, content: doc.content }).toEqual({
        id: cli?.id,
        title: cli?.title,
        source: cli?.source,
        content: cli?.content,
      });
    }

    await page
      .getByTestId("file-input")
      .setInputFiles(
        files(
          [
            "faq.jsonl",
            `${JSON.stringify({ id: "faq-1", title: "Warranty", content: "The warranty lasts two years.", metadata: { team: "support" } })}\n${JSON.stringify({ id: "faq-2", title: "Gift cards", content: "Gift cards never expire and cannot be refunded.", metadata: { team: "sales" } })}\n{broken\n`,
          ],
          [
            "markup.txt",
            'Clearance rules: <b>final sale</b> items <img src=x onerror="globalThis.__xss=1"> cannot be returned.',
          ],
          ["long.txt", "word ".repeat(200_001)],
          ["huge.txt", Buffer.alloc(5 * 1024 * 1024, "x")],
          ["empty.md", ""],
        ),
      );
    await page.getByTestId("ingest-totals").filter({ hasText: "3 created" }).waitFor();
    const state = (path: string) => page.locator(`tr[data-path="${path}"] .state`).textContent();
    expect(await state("faq.jsonl")).toBe("2 created · 2 chunks; left out line 3: invalid JSON");
    expect(await state("long.txt")).toBe("skipped: too large: 1,000,004 characters (the limit is 1,000,000)");
    expect(await state("huge.txt")).toBe("skipped: too large: 5.0 MB (a document holds at most 1,000,000 characters)");
    expect(await state("empty.md")).toBe("skipped: empty file");
    expect(await page.getByTestId("ingest-totals").textContent()).toContain("3 files skipped");
    for (const progress of await page.locator("tbody progress").all()) {
      expect(await progress.getAttribute("max")).toBe("3");
      expect(await progress.evaluate((el: HTMLProgressElement) => el.value)).toBe(3);
    }
    await shot(page, "ingest.png");

    // A dropped file (not through the input), then the same file again: stored once.
    const refunds = "# Refund policy\n\nRefunds are issued within 14 days of a return. Store credit never expires.\n";
    const dataTransfer = await page.evaluateHandle((text) => {
      const transfer = new DataTransfer();
      transfer.items.add(new File([text], "refunds.md", { type: "text/markdown" }));
      return transfer;
    }, refunds);
    await page.getByTestId("dropzone").dispatchEvent("drop", { dataTransfer });
    await page.getByTestId("ingest-totals").filter({ hasText: "1 created" }).waitFor();
    await page.getByTestId("file-input").setInputFiles(files(["refunds.md", refunds]));
    await page.getByTestId("ingest-totals").filter({ hasText: "1 unchanged" }).waitFor();
    expect(await state("refunds.md")).toBe("unchanged · 1 chunk");
    // A file chosen by name is taken whatever its name, as `engram ingest` takes it; text that is not UTF-8 is said so.
    // (An empty one, so that it is listed as skipped and the documents later tests count stay the same.)
    const latin1 = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xe9, 0xe9, 0xe9]);
    await page.getByTestId("file-input").setInputFiles(files([".hidden-note.md", ""], ["latin1.txt", latin1]));
    await page.getByTestId("ingest-totals").filter({ hasText: "2 files skipped" }).waitFor();
    expect(await state(".hidden-note.md")).toBe("skipped: empty file");
    expect(await state("latin1.txt")).toBe("skipped: text that is not UTF-8 (save it as UTF-8)");
    rmSync(folder, { recursive: true, force: true });
    expect(problems).toEqual([]);
  });

  it("lists documents newest first, opens one with its content and access count, and edits it", async () => {
    await go("Documents");
    const table = page.getByTestId("documents-table");
    await table.locator("tbody tr").first().waitFor();
    const ids = await table.locator("tbody tr").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-id")));
    expect(ids[0]).toBe("refunds.md");
    expect(ids).toEqual(expect.arrayContaining(["handbook/refunds.md", "faq-1", "faq-2", "markup.txt"]));
    await expect.poll(() => page.getByTestId("documents-stats").textContent()).toContain("Shared space: 6 documents");

    await table.getByRole("button", { name: "Warranty", exact: true }).click();
    const dialog = page.getByTestId("document-dialog");
    await dialog.getByText("The warranty lasts two years.").waitFor();
    const fact = (label: string) =>
      dialog
        .locator(".facts div")
        .filter({ has: page.locator(`dt:text-is("${label}")`) })
        .locator("dd");
    expect(await fact("Access count").textContent()).toBe("1");
    expect(await fact("Chunks").textContent()).toBe("1");
    expect(await dialog.locator("pre.json").textContent()).toContain('"team": "support"');
    await shot(page, "document.png", false);

    await dialog.getByLabel("Title").fill("Warranty terms");
    await dialog.getByLabel("Importance (1–10)").fill("8");
    await dialog.getByRole("button", { name: "Save changes" }).click();
    await dialog.getByRole("heading", { name: "Warranty terms" }).waitFor();
    expect(await fact("Importance").textContent()).toBe("8");
    await dialog.getByRole("button", { name: "Close" }).click();
    await table.getByRole("button", { name: "Warranty terms", exact: true }).waitFor();
    await shot(page, "documents.png");

    // Cursor pages, newest first: 6 documents at 5 a page.
    await page.getByLabel("Per page").selectOption("5");
    await expect.poll(() => table.locator("tbody tr").count()).toBe(5);
    await page.getByRole("button", { name: "Older →" }).click();
    await expect
      .poll(() => table.locator("tbody tr").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-id"))))
      .toEqual(["handbook/refunds.md"]);
    expect(await page.getByRole("button", { name: "Older →" }).isDisabled()).toBe(true);
    await page.getByRole("button", { name: "← Newer" }).click();
    await expect.poll(() => table.locator("tbody tr").count()).toBe(5);
    await page.getByLabel("Per page").selectOption("20");
    expect(problems).toEqual([]);
  });

  it("searches in each mode, shows the score's scale and highlights query terms without running markup", async () => {
    await go("Search");
    await search(page, "refund window");
    const results = page.getByTestId("search-results");
    expect(await page.getByTestId("search-summary").textContent()).toContain("hybrid · score: fused score");
    const marks = await results.locator("mark").allTextContents();
    expect(marks.map((m) => m.toLowerCase())).toContain("refunds");
    await shot(page, "search.png");

    // A passage with markup shows it as text: no element was made from it.
    await search(page, "final sale");
    const passage = results.locator('li[data-document-id="markup.txt"] blockquote');
    expect(await passage.textContent()).toContain("<b>final sale</b>");
    expect(await passage.locator("b, img").count()).toBe(0);
    expect(await page.evaluate(() => (window as { __xss?: number }).__xss)).toBeUndefined();

    await search(page, "refund window", "Keyword");
    expect(await page.getByTestId("search-summary").textContent()).toContain("keyword · score: keyword BM25");
    await search(page, "warranty", "Vector");
    expect(await page.getByTestId("search-summary").textContent()).toContain("vector · score: cosine similarity");
    expect(await results.locator("li").first().getAttribute("data-document-id")).toBe("faq-1");

    await page.getByText("Filters").click();
    await page.getByLabel("Metadata key").fill("team");
    await page.getByLabel("Metadata value").fill("sales");
    await search(page, "expire", "Hybrid");
    const filtered = await results
      .locator("li")
      .evaluateAll((items) => items.map((li) => li.getAttribute("data-document-id")));
    expect(filtered).toEqual(["faq-2"]);
    await page.getByLabel("Metadata key").fill("");
    expect(problems).toEqual([]);
  });

  it("streams a chat answer whose [n] markers open the cited passage", async () => {
    await go("Chat");
    await page.getByTestId("chat-input").fill("What is the refund window?");
    await page.getByTestId("chat-input").press("Enter");
    const answer = page.locator(".msg.assistant").last();
    await answer.locator(".sources").waitFor();
    expect(await answer.locator(".text").textContent()).toContain("14 days");
    await answer.locator("button.cite").first().click();
    const citation = page.getByTestId("citation-dialog");
    await citation.getByText("Refunds are issued within 14 days").waitFor();
    await shot(page, "citation.png", false);
    await citation.getByRole("button", { name: "Open the document" }).click();
    await page.getByTestId("document-dialog").getByText("Store credit never expires.").first().waitFor();
    await page.getByTestId("document-dialog").getByRole("button", { name: "Close" }).click();
    await page
      .getByTestId("conversations")
      .getByRole("button", { name: /^What is the refund window\?/ })
      .waitFor();

    // A follow-up in the same conversation, remembered as a document of it.
    await page.getByLabel("Remember this message").check();
    await page.getByTestId("chat-input").fill("Do gift cards expire?");
    await page.getByRole("button", { name: "Send" }).click();
    await expect.poll(() => page.locator(".msg.assistant .sources").count()).toBe(2);
    // Said of one message: unticked once it is sent.
    expect(await page.getByLabel("Remember this message").isChecked()).toBe(false);
    await page
      .getByTestId("conversations")
      .getByRole("button", { name: /^What is the refund window\? 4 messages/ })
      .waitFor();
    await shot(page, "chat.png");

    // The remembered question is a document of that conversation.
    await go("Documents");
    const conversationFilter = page.getByLabel("Conversation", { exact: true });
    await conversationFilter.locator("option").nth(1).waitFor({ state: "attached" });
    await conversationFilter.selectOption({ index: 1 });
    const rows = page.getByTestId("documents-table").locator("tbody tr");
    await expect.poll(() => rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain("Do gift cards expire?");
    await conversationFilter.selectOption("");
    await expect.poll(() => rows.count()).toBe(7);
    expect(problems).toEqual([]);
  });

  it("scopes data to the end user: one user's private document is invisible to another", async () => {
    await switchUser(page, "alice");
    await go("Add");
    await page
      .getByTestId("file-input")
      .setInputFiles(files(["alice-secret.md", "# Alice's note\n\nThe launch codename is Bluebird."]));
    await page.getByTestId("ingest-totals").filter({ hasText: "1 created" }).waitFor();

    await go("Search");
    await search(page, "launch codename");
    expect(await page.getByTestId("search-results").locator("li").first().getAttribute("data-document-id")).toBe(
      "alice-secret.md",
    );

    await switchUser(page, "bob");
    await search(page, "launch codename Bluebird");
    const seen = await page
      .getByTestId("search-results")
      .locator("li[data-document-id]")
      .evaluateAll((items) => items.map((li) => li.getAttribute("data-document-id")));
    expect(seen).not.toContain("alice-secret.md");
    await go("Documents");
    await page.getByText("No documents in this space yet.").waitFor();

    await switchUser(page, "");
    await page.getByTestId("documents-table").locator("tbody tr").first().waitFor();
    expect(await page.locator('tr[data-id="alice-secret.md"]').count()).toBe(0);
    expect(problems).toEqual([]);
  });

  it("keeps the end user box on the user in effect when an id is refused, and says which text was refused", async () => {
    await page.goto(`${server.url}/#search`);
    await switchUser(page, "alice");
    await page.getByTestId("user-input").fill("not valid!");
    await page.getByRole("button", { name: "Switch" }).click();
    const refused = page.locator(".toast.error").filter({ hasText: "“not valid!” is not an end user id" });
    await refused.waitFor();
    expect(await refused.textContent()).toContain("Still acting as alice.");
    // The box and the status strip agree: alice is still the end user.
    expect(await page.getByTestId("user-input").inputValue()).toBe("alice");
    expect(await page.getByTestId("space-label").textContent()).toBe("alice (private) + shared");
    await refused.getByRole("button", { name: "Dismiss this message" }).click();
    await switchUser(page, "");
    expect(problems).toEqual([]);
  });

  it("shows messages that let clicks through to the page beneath, and above an open dialog", async () => {
    const stored = await fetch(`${server.url}/v1/ingest`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "x-user-id": "toasted", "content-type": "application/json" },
      body: JSON.stringify({ documents: [{ id: "toasted.md", content: "A note to open in a dialog." }] }),
    });
    expect(stored.status).toBe(200);
    await page.goto(`${server.url}/#documents`);
    await switchUser(page, "toasted");
    // What a click at a point reaches: the element there and whether it is (in) the message.
    const hit = (selector: string, where: "text" | "close") =>
      page.evaluate(
        ([selector, where]) => {
          const toast = Array.from(document.querySelectorAll<HTMLElement>(selector)).at(-1);
          const target = where === "text" ? toast?.querySelector("p") : toast?.querySelector("button");
          const box = target?.getBoundingClientRect();
          if (!toast || !box) return "no message";
          const el = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
          if (!toast.contains(el)) return "the page beneath";
          return where === "close" && el === target ? "its button" : "the message";
        },
        [selector, where] as const,
      );
    // The newest message (the test before may have left one of the same words).
    const switched = page.locator(".toast.info", { hasText: "Now acting as end user toasted." }).last();
    await switched.waitFor();
    // A row's Restore or Purge under a message stays clickable; only the message's close button is not let through.
    expect(await hit(".toast.info", "text")).toBe("the page beneath");
    expect(await hit(".toast.info", "close")).toBe("its button");
    await switched.getByRole("button", { name: "Dismiss this message" }).click();
    expect(await page.locator(".toast.info", { hasText: "Now acting as end user toasted." }).count()).toBe(0);

    // Over an open dialog (the top layer): the message is shown in it, in front, its button clickable.
    await page.getByTestId("documents-table").getByRole("button", { name: "toasted.md", exact: true }).click();
    const dialog = page.getByTestId("document-dialog");
    await dialog.getByRole("button", { name: "Save changes" }).click();
    await page.locator(".toast.info", { hasText: "Nothing changed." }).last().waitFor();
    expect(await hit(".toast.info", "close")).toBe("its button");
    await dialog.getByRole("button", { name: "Close", exact: true }).click();
    await dialog.waitFor({ state: "detached" });
    // Back on the page once the dialog is gone.
    await switchUser(page, "");
    await page.locator(".toast.info", { hasText: "Now using the shared space" }).last().waitFor();
    expect(await hit(".toast.info", "close")).toBe("its button");
    expect(problems).toEqual([]);
  });

  it("opens the shared document a search result or citation names when the end user has one of the same id", async () => {
    // Alice's own refunds.md beside the shared refunds.md (dropped above): one id, two documents.
    const api = (method: string, path: string, body?: unknown) =>
      fetch(`${server.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, "x-user-id": "alice", "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    const own = "Alice files her own receipts in the green binder on her desk.";
    const stored = await api("POST", "/v1/ingest", {
      documents: [{ id: "refunds.md", title: "Alice's refunds", content: own }],
    });
    expect(stored.status).toBe(200);
    await switchUser(page, "alice");
    const dialog = page.getByTestId("document-dialog");
    const shows = async (text: string) => {
      await dialog.getByText(text).first().waitFor();
      await dialog.getByRole("button", { name: "Close" }).click();
      await dialog.waitFor({ state: "detached" });
    };

    // A search result of the shared refunds.md says so, and opens that document, not alice's.
    await go("Search");
    await search(page, "store credit never expires", "Keyword");
    const result = page.locator('li.result[data-document-id="refunds.md"]');
    expect(await result.getAttribute("data-scope")).toBe("shared");
    expect(await result.locator("footer").textContent()).toContain("document refunds.md (shared)");
    await result.locator("button.title").click();
    await dialog.getByTestId("cited-passage").first().waitFor();
    expect(await dialog.getByTestId("cited-note").textContent()).toBe("The cited passage is marked below.");
    await shows("Store credit never expires.");
    // Her own, from the list of her documents, is hers.
    await go("Documents");
    await page.getByTestId("documents-table").getByRole("button", { name: "Alice's refunds", exact: true }).click();
    await shows(own);

    // So does a citation of it.
    await go("Chat");
    await page.getByRole("button", { name: "New conversation" }).click();
    await page.getByTestId("chat-input").fill("Does store credit expire?");
    await page.getByTestId("chat-input").press("Enter");
    const answer = page.locator(".msg.assistant").last();
    await answer.locator(".sources").waitFor();
    const citation = page.getByTestId("citation-dialog");
    let opened = false;
    for (const source of await answer.locator(".sources button").all()) {
      await source.click();
      const document = (await citation.locator(".facts dd").first().textContent()) ?? "";
      if (document === "refunds.md (shared)") {
        await citation.getByRole("button", { name: "Open the document" }).click();
        await dialog.getByTestId("cited-passage").first().waitFor();
        await shows("Store credit never expires.");
        opened = true;
        break;
      }
      await citation.getByRole("button", { name: "Close" }).click();
    }
    expect(opened).toBe(true);

    expect((await api("DELETE", "/v1/documents/refunds.md?hard=true")).status).toBe(200);
    await switchUser(page, "");
    expect(problems).toEqual([]);
  });

  it("deletes a document after a confirmation, softly, restores it, and then deletes it for good", async () => {
    await go("Documents");
    const row = page.locator('tr[data-id="markup.txt"]');
    const softly = async () => {
      await row.getByRole("button", { name: /^Delete/ }).click();
      const confirm = page.getByRole("dialog", { name: "Delete this document?" });
      await confirm.getByRole("button", { name: "Delete", exact: true }).click();
    };
    await softly();
    await row.waitFor({ state: "detached" });
    // The focus is on the list's heading, not lost to the page's top with the row it was in.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("documents-title");

    await page.getByLabel("Include deleted").check();
    await row.locator(".badge", { hasText: "deleted" }).waitFor();
    await row.getByRole("button", { name: /^Restore/ }).click();
    await row.getByRole("button", { name: /^Delete/ }).waitFor();
    expect(await row.locator(".badge", { hasText: "deleted" }).count()).toBe(0);

    await softly();
    await row.locator(".badge", { hasText: "deleted" }).waitFor();
    await row.getByRole("button", { name: /^Purge/ }).click();
    await page
      .getByRole("dialog", { name: "Delete permanently?" })
      .getByRole("button", { name: "Delete permanently" })
      .click();
    await row.waitFor({ state: "detached" });
    await page.getByLabel("Include deleted").uncheck();
    expect(problems).toEqual([]);
  });

  it("gives the focus back after a restore, a delete from the document's dialog and a conversation's delete", async () => {
    const api = (path: string, body: unknown) =>
      fetch(`${server.url}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "x-user-id": "keyboard", "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const documents = ["first", "second"].map((id) => ({ id, content: `The ${id} note on returns and refunds.` }));
    expect((await api("/v1/ingest", { documents })).status).toBe(200);
    expect((await api("/v1/chat", { messages: [{ role: "user", content: "What about returns?" }] })).status).toBe(200);
    await page.goto(`${server.url}/#documents`);
    await switchUser(page, "keyboard");
    const focused = () =>
      page.evaluate(() => {
        const el = document.activeElement;
        if (!el || el === document.body) return "body";
        return `${el.closest("tr")?.getAttribute("data-id") ?? el.id}|${el.textContent?.trim()}`;
      });
    const row = page.locator('tr[data-id="first"]');
    await row.getByRole("button", { name: /^Delete/ }).click();
    await page.getByRole("dialog", { name: "Delete this document?" }).getByRole("button", { name: "Delete" }).click();
    await row.waitFor({ state: "detached" });
    await page.getByLabel("Include deleted").check();
    // Restored, its row is drawn anew: the focus goes to that row, not to the page's top.
    await row.getByRole("button", { name: /^Restore/ }).click();
    await row.getByRole("button", { name: /^Delete/ }).waitFor();
    expect(await focused()).toBe("first|first");
    await page.getByLabel("Include deleted").uncheck();
    await page.getByTestId("documents-table").getByRole("button", { name: "second", exact: true }).click();
    const dialog = page.getByTestId("document-dialog");
    await dialog.getByRole("button", { name: "Delete…", exact: true }).click();
    await page.getByRole("dialog", { name: "Delete this document?" }).getByRole("button", { name: "Delete" }).click();
    await page.locator('tr[data-id="second"]').waitFor({ state: "detached" });
    // The document's row went with it: the focus is on the list's heading.
    expect(await focused()).toBe("documents-title|Documents");

    await go("Chat");
    const conversations = page.getByTestId("conversations");
    await conversations.getByRole("button", { name: /^Delete conversation What about returns\?/ }).click();
    await page
      .getByRole("dialog", { name: "Delete this conversation?" })
      .getByRole("button", { name: "Delete" })
      .click();
    await conversations.getByText("No conversations yet.").waitFor();
    expect(await focused()).toBe("conversations-title|Conversations");
    await switchUser(page, "");
    expect(problems).toEqual([]);
  });

  it("extracts dropped PDFs on the server, skips a scan with its reason, and shows a result's page and section", async () => {
    const folder = mkdtempSync(join(tmpdir(), "engram-drop-pdf-"));
    // A PDF made by LibreOffice, and a scanned page with no text layer: extracted by the upload route.
    const fixtures = join(import.meta.dirname, "../fixtures/extract");
    copyFileSync(join(fixtures, "handbook.pdf"), join(folder, "employee-handbook.pdf"));
    copyFileSync(join(fixtures, "scanned.pdf"), join(folder, "scan.pdf"));
    await go("Add");
    await page
      .getByTestId("file-input")
      .setInputFiles([join(folder, "employee-handbook.pdf"), join(folder, "scan.pdf")]);
    await page.getByTestId("ingest-totals").filter({ hasText: "1 created" }).waitFor();
    const state = (path: string) => page.locator(`tr[data-path="${path}"] .state`).textContent();
    expect(await state("employee-handbook.pdf")).toMatch(/^created · \d+ chunks · 6 pages$/);
    expect(await state("scan.pdf")).toMatch(/^skipped: No extractable text \(scanned\?\)/);
    expect(await page.getByTestId("ingest-totals").textContent()).toContain("1 file skipped");

    await go("Search");
    await search(page, "lost laptops reported to security within one hour", "Keyword");
    const first = page.locator("li.result").first();
    expect(await first.getAttribute("data-document-id")).toBe("employee-handbook.pdf");
    expect(await first.getByTestId("location").textContent()).toMatch(/^pp?\. \d(–\d)? · Security › Laptops$/);
    rmSync(folder, { recursive: true, force: true });
    // The scan's 422 is the browser's own log line for an answer the page expected and showed.
    expect(problems.splice(0)).toEqual([
      "error: Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)",
    ]);
  });

  it("opens a PDF cited in chat on the cited page, the passage marked and scrolled into view, and a search result's whole chunk", async () => {
    await go("Chat");
    await page.getByRole("button", { name: "New conversation" }).click();
    await page.getByTestId("chat-input").fill("How quickly must lost laptops be reported to security?");
    await page.getByTestId("chat-input").press("Enter");
    const answer = page.locator(".msg.assistant").last();
    await answer.locator(".sources").waitFor();
    await answer
      .locator(".sources button")
      .filter({ hasText: /Employee handbook \(pp?\. \d/ })
      .first()
      .click();
    const citation = page.getByTestId("citation-dialog");
    const where = (await citation.getByTestId("citation-location").locator("dd").textContent()) ?? "";
    const cited = Number(/pp?\. (\d+)/.exec(where)?.[1]);
    expect(cited).toBeGreaterThan(1);
    const snippet = (await citation.locator("blockquote.passage").textContent()) ?? "";
    await citation.getByRole("button", { name: "Open the document" }).click();

    const dialog = page.getByTestId("document-dialog");
    // A passage over a page break is marked on each page; the first part is scrolled to.
    const marks = dialog.getByTestId("cited-passage");
    const mark = marks.first();
    await mark.waitFor();
    expect(await dialog.getByTestId("cited-note").textContent()).toBe(`The cited passage (${where}) is marked below.`);
    // On the page the citation names, in the document shown page by page.
    expect(await mark.evaluate((el) => el.closest("[data-page]")?.getAttribute("data-page"))).toBe(String(cited));
    expect(await dialog.locator("section.page").count()).toBe(6);
    const flat = (text: string | null) => (text ?? "").replace(/\s+/g, " ").trim();
    expect(flat(snippet).replace(/^…|…$/g, "")).toBe(flat((await marks.allTextContents()).join(" ")));
    // Scrolled to: the content box moved, and the mark is inside what it shows.
    const content = dialog.getByLabel("Content");
    await expect.poll(() => content.evaluate((el) => el.scrollTop)).toBeGreaterThan(0);
    const inView = await mark.evaluate((el) => {
      const box = (el.closest(".content") as HTMLElement).getBoundingClientRect();
      const r = el.getBoundingClientRect();
      return r.top >= box.top && r.top < box.bottom;
    });
    expect(inView).toBe(true);
    await shot(page, "cited-page.png", false);
    await dialog.getByRole("button", { name: "Close" }).click();

    // From search: the result's whole chunk is marked.
    await go("Search");
    await search(page, "lost laptops reported to security within one hour", "Keyword");
    const first = page.locator("li.result").first();
    const passage = await first.locator("blockquote.passage").textContent();
    await first.locator("button.title").click();
    const marked = page.getByTestId("document-dialog").getByTestId("cited-passage");
    await marked.first().waitFor();
    expect(flat((await marked.allTextContents()).join(" "))).toBe(flat(passage));
    await page.getByTestId("document-dialog").getByRole("button", { name: "Close" }).click();
    expect(problems).toEqual([]);
  });

  it("says a query is needed when a search or a question is only spaces", async () => {
    await page.goto(`${server.url}/#search`);
    await page.getByTestId("search-query").fill("   ");
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await page.getByTestId("search-summary").filter({ hasText: "Enter a query" }).waitFor();
    expect(await page.evaluate(() => document.activeElement?.getAttribute("data-testid"))).toBe("search-query");

    await go("Chat");
    const messages = await page.locator(".msg").count();
    await page.getByTestId("chat-input").fill("  \n  ");
    await page.getByTestId("chat-input").press("Enter");
    await page.getByTestId("chat-problem").filter({ hasText: "Enter a question" }).waitFor();
    expect(await page.locator(".msg").count()).toBe(messages);
    // Gone once a question is being written.
    await page.getByTestId("chat-input").fill("Do gift cards expire?");
    await page.getByTestId("chat-problem").waitFor({ state: "hidden" });
    await page.getByTestId("chat-input").fill("");
    expect(problems).toEqual([]);
  });

  it("can be used with the keyboard alone", async () => {
    await page.goto(`${server.url}/#search`);
    await page.getByRole("heading", { name: "Search" }).waitFor();
    const focused = () =>
      page.evaluate(() => {
        const el = document.activeElement as HTMLElement | null;
        return `${el?.tagName.toLowerCase()}|${el?.getAttribute("data-testid") ?? ""}|${el?.textContent?.trim() ?? ""}`;
      });
    const tabTo = async (want: (f: string) => boolean) => {
      for (let i = 0; i < 40; i++) {
        await page.keyboard.press("Tab");
        if (want(await focused())) return;
      }
      throw new Error(`not reachable by Tab; stopped at ${await focused()}`);
    };
    await tabTo((f) => f.startsWith("input|search-query"));
    await page.keyboard.type("gift cards");
    await page.keyboard.press("Enter");
    await page
      .getByTestId("search-summary")
      .filter({ hasText: /\d+ results? ·/ })
      .waitFor();
    await tabTo((f) => f.startsWith("button||Gift cards"));
    await page.keyboard.press("Enter");
    const dialog = page.getByTestId("document-dialog");
    await dialog.getByText("Gift cards never expire").waitFor();
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "detached" });
    expect(await focused()).toBe("button||Gift cards");
    expect(problems).toEqual([]);
  });

  it("stays readable at 200% zoom and follows the system's dark theme", async () => {
    const zoomed = await browser.newContext({
      viewport: { width: 640, height: 450 },
      deviceScaleFactor: 2,
      colorScheme: "dark",
    });
    const p = await zoomed.newPage();
    const errors: string[] = [];
    watch(p, errors);
    for (const section of ["ingest", "documents", "search", "chat"]) {
      await p.goto(`${server.url}/#${section}`);
      await p.locator("h1:visible").waitFor();
      const overflow = await p.evaluate(
        () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
      );
      expect(overflow, `horizontal scrolling on #${section}`).toBeLessThanOrEqual(0);
    }
    const background = await p.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
    expect(background).toBe("rgb(17, 19, 24)");
    await p.goto(`${server.url}/#search`);
    await search(p, "refund");
    await shot(p, "search-dark-200.png");
    await zoomed.close();
    expect(errors).toEqual([]);
  });

  it("keeps the documents table readable when narrow: whole headers, numbers and buttons, long titles wrapped", async () => {
    // Titles of 120 characters, in an end user's own space: the shared space's counts in the other tests stay.
    const title = (n: number) =>
      `${n}. The refund, return and store credit policy for every order placed online, in one of our shops or by phone, this year!`;
    const paragraph = "Refunds are issued within fourteen days of a return, and store credit never expires at all. ";
    const stored = await fetch(`${server.url}/v1/ingest`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "x-user-id": "narrow", "content-type": "application/json" },
      body: JSON.stringify({
        documents: [1, 2, 3].map((n) => ({
          id: `long-title-${n}.md`,
          title: title(n),
          importance: 10,
          content: Array.from({ length: n === 1 ? 160 : 2 }, () => paragraph.repeat(3)).join("\n\n"),
        })),
      }),
    });
    expect(stored.status).toBe(200);
    const screens = [
      { name: "390 px", viewport: { width: 390, height: 844 } },
      { name: "640 px", viewport: { width: 640, height: 900 } },
      { name: "1280 px", viewport: { width: 1280, height: 900 } },
      { name: "200% zoom", viewport: { width: 640, height: 450 }, deviceScaleFactor: 2 },
      { name: "CSS zoom 200%", viewport: { width: 1280, height: 900 }, zoom: true },
    ];
    for (const { name, zoom, ...options } of screens) {
      const narrow = await browser.newContext({ ...options, colorScheme: "light" });
      const p = await narrow.newPage();
      const errors: string[] = [];
      watch(p, errors);
      await p.goto(`${server.url}/#documents`);
      if (zoom) await p.evaluate(() => document.documentElement.style.setProperty("zoom", "2"));
      await switchUser(p, "narrow");
      const table = p.getByTestId("documents-table");
      await expect.poll(() => table.locator("tbody tr").count()).toBe(3);
      const layout = await table.evaluate((el) => {
        // How many lines a box's text is laid out on: its line boxes' distinct tops.
        const lines = (box: Element) => {
          const range = document.createRange();
          range.selectNodeContents(box);
          const tops = Array.from(range.getClientRects())
            .filter((r) => r.width > 0)
            .map((r) => r.top)
            .sort((a, b) => a - b);
          return tops.filter((top, i) => i === 0 || top - (tops[i - 1] ?? top) > 4).length;
        };
        const text = (box: Element) => box.textContent?.trim() ?? "";
        const whole = (selector: string) =>
          Array.from(el.querySelectorAll(selector))
            .filter((box) => text(box))
            .map((box) => `${text(box)}: ${lines(box)}`);
        return {
          headers: whole("thead th:not(:has(.visually-hidden))"),
          numbers: whole("tbody td.num"),
          buttons: whole("tbody button:not(.title)"),
          titles: Array.from(el.querySelectorAll("tbody button.title")).map((b) => ({
            text: text(b),
            lines: lines(b),
          })),
          labels: Array.from(document.querySelectorAll(".status dt")).map((dt) => `${text(dt)}: ${lines(dt)}`),
          pageOverflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
        };
      });
      const oneLine = (list: string[]) => list.map((entry) => entry.replace(/: \d+$/, ": 1"));
      expect(layout.headers, `headers at ${name}`).toEqual(oneLine(layout.headers));
      expect(layout.headers).toHaveLength(5);
      expect(layout.numbers, `numbers at ${name}`).toEqual(oneLine(layout.numbers));
      expect(
        layout.numbers.some((n) => /^\d\d+: /.test(n)),
        "a number of two digits or more",
      ).toBe(true);
      expect(layout.buttons, `buttons at ${name}`).toEqual(oneLine(layout.buttons));
      expect(layout.labels, `status labels at ${name}`).toEqual(oneLine(layout.labels));
      // Long titles are shown whole, wrapped between words; the page itself never scrolls sideways.
      expect(layout.titles.map((t) => t.text)).toEqual([3, 2, 1].map(title));
      if (name !== "1280 px")
        expect(Math.min(...layout.titles.map((t) => t.lines)), `titles at ${name}`).toBeGreaterThan(1);
      expect(layout.pageOverflow, `horizontal scrolling at ${name}`).toBeLessThanOrEqual(0);
      await narrow.close();
      expect(errors).toEqual([]);
    }
  });

  it("checks another key before using it, and says what to do when a key is refused", async () => {
    const p = await context.newPage();
    await p.goto(`${server.url}/#search`);
    await p.getByRole("heading", { name: "Search" }).waitFor();
    const label = p.getByTestId("key-label");
    const problem = p.getByTestId("key-problem");
    await p.getByRole("button", { name: "Use another key" }).click();
    await p.getByRole("button", { name: "Use key" }).click();
    await problem.filter({ hasText: "Enter a key" }).waitFor();
    await p.getByTestId("key-input").fill("not-a-key");
    await p.getByRole("button", { name: "Use key" }).click();
    await problem.filter({ hasText: "not an Engram key: a key starts with egm_" }).waitFor();
    // The shape of a key, but none the server knows: one request (GET /v1/stats) says so before it is used.
    const unknown = `egm_${"x".repeat(32)}`;
    await p.getByTestId("key-input").fill(unknown);
    await p.getByRole("button", { name: "Use key" }).click();
    await problem.filter({ hasText: "Not used: The API key is not valid" }).waitFor();
    expect(await label.textContent()).toContain(`local key ${key.slice(0, 12)}`);
    expect(await p.evaluate(() => sessionStorage.getItem("engram.console.key"))).toBeNull();

    // A key refused later (revoked, say) says what to do, wherever it is refused.
    await p.evaluate((k) => sessionStorage.setItem("engram.console.key", k), unknown);
    await p.reload();
    await expect.poll(() => label.textContent()).toContain(`your key ${unknown.slice(0, 12)}`);
    await p.getByTestId("search-query").fill("refunds");
    await p.getByRole("button", { name: "Search", exact: true }).click();
    const next =
      "Enter another key (Use another key, at the top of the page) or go back to the local key (Use the local key).";
    const toast = p.locator(".toast.error").filter({ hasText: "The API key is not valid" });
    await toast.waitFor();
    expect(await toast.textContent()).toContain(next);
    expect(await p.getByTestId("search-summary").textContent()).toContain(next);
    await p.getByRole("button", { name: "Use the local key" }).click();
    await search(p, "gift cards");
    await p.close();
  });

  it("shows a 429's message, request id and retry time with another key, and keeps working", async () => {
    await Tenant.ensure(db, "tight");
    await RateLimit.setLimits(db, "tight", { search: "2/min" });
    const tight = await Auth.createKey(db, "tight", "console test");
    const p = await context.newPage();
    await p.goto(`${server.url}/#search`);
    await p.getByRole("button", { name: "Use another key" }).click();
    await p.getByTestId("key-input").fill(tight.key);
    await p.getByRole("button", { name: "Use key" }).click();
    await expect.poll(() => p.getByTestId("key-label").textContent()).toContain(`your key ${tight.key.slice(0, 12)}`);
    await search(p, "anything");
    await search(p, "anything");
    await expect
      .poll(() => p.getByRole("definition").filter({ hasText: "search: 0 of 2 left per 60 s" }).count())
      .toBe(1);
    await p.getByTestId("search-query").fill("once more");
    await p.getByRole("button", { name: "Search", exact: true }).click();
    const toast = p.locator(".toast.error").filter({ hasText: "Rate limited" });
    await toast.waitFor();
    expect(await toast.locator(".meta").textContent()).toMatch(
      /^429 · ratelimit\.exceeded · request id [0-9a-f-]{36} · Retry in \d+ s \(at .+\)\.$/,
    );
    await shot(p, "rate-limited.png", false);
    // The key lives in this tab's session storage only; the local key works again at once.
    expect(await p.evaluate(() => sessionStorage.getItem("engram.console.key"))).toBe(tight.key);
    await p.getByRole("button", { name: "Use the local key" }).click();
    await search(p, "gift cards");
    expect(await p.getByTestId("search-results").locator("li[data-document-id]").count()).toBeGreaterThan(0);
    await p.close();
  });

  it("shows a banner while the server is gone and recovers when it returns", async () => {
    await page.goto(`${server.url}/#documents`);
    await page.getByTestId("documents-table").locator("tbody tr").first().waitFor();
    await server.close();
    await page.getByRole("button", { name: "Refresh" }).click();
    const banner = page.locator(".banner");
    await banner.filter({ hasText: "Lost the Engram server" }).waitFor();
    await shot(page, "server-lost.png", false);
    server = await startServer({ port, extra });
    await banner.waitFor({ state: "hidden", timeout: 10_000 });
    await page.getByText("Reconnected to the Engram server.").waitFor();
    await page.getByTestId("documents-table").locator("tbody tr").first().waitFor();
  });
});
