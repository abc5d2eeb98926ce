/** `ingest`, `search`, `chat`, `stats`, `cleanup`: the API from the command line. */
import { SingleBar } from "cli-progress";
import { type Command, InvalidArgumentError, Option } from "commander";
import type { Stats as ApiStats } from "../client";
import * as Chat from "../core/chat";
import { ChatRequest } from "../core/chat/schema";
import * as Statistics from "../core/db/statistics";
import * as Document from "../core/document";
import { EngramError } from "../core/error";
import type { IngestResult } from "../core/ingest";
import * as Ingest from "../core/ingest";
import type { SearchInput } from "../core/search";
import * as Search from "../core/search";
import { MAX_TOP_K, Scope } from "../core/search/schema";
import { STALE_COUNT_MAX } from "../core/search/vector";
import { type Client, connect, engramUrl, type Target } from "./client";
import { collectFiles, coveredBy, type FileDocument, readDocuments } from "./files";
import { LOCAL_TENANT } from "./local";
import { printable } from "./printable";

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

const MAX_BATCH_DOCS = 100;
/**
 * Batches stored at once when the CLI writes to Postgres itself, which serves several at once (docs/contract.md, CLI);
 * a running server (its rate limit) and embedded PGlite (one connection) take them one at a time.
 */
const DIRECT_BATCHES_IN_FLIGHT = 4;
// Keeps each request well under the 6 MB body limit.
const MAX_BATCH_CHARS = 4_000_000;

type TargetOptions = { tenant?: string; user?: string; key?: string; url?: string; json?: boolean };

/**
 * The options that say which Engram, tenant and end user a command talks to. A deployed Engram is named as for
 * `engram mcp` (ENGRAM_URL, ENGRAM_API_KEY, ENGRAM_USER_ID); the key and user variables count only with a URL, so
 * a shell set up for a remote MCP server does not change what local commands read.
 */
function withTarget(command: Command): Command {
  return command
    .addOption(new Option("--url <url>", "a deployed Engram to talk to (default: the local store)").env("ENGRAM_URL"))
    .option("--key <key>", "API key: of the --url Engram (default: ENGRAM_API_KEY), or of another local tenant")
    .option("--tenant <name>", `tenant of the local store (default: ${LOCAL_TENANT}; with --url, the key's)`)
    .option("--user <id>", "end user (X-User-Id; with --url, default: ENGRAM_USER_ID); without it, the shared space")
    .option("--json", "print JSON");
}

/** `--scope`, as the API's `scope`: whose documents search and chat read. */
const scopeOption = () =>
  new Option("--scope <scope>", "whose documents: the user's and the shared ones (all), or only one of them")
    .choices(Scope.options)
    .default("all");

/** "1 file", "2 files". */
const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? "" : "s"}`;

function targetOf(options: TargetOptions): Target {
  const o = { ...options, url: engramUrl(options.url) };
  if (o.url === undefined) {
    return { tenant: o.tenant ?? LOCAL_TENANT, tenantGiven: o.tenant !== undefined, user: o.user, key: o.key };
  }
  // A deployed Engram serves the key's tenant: a --tenant there would be silently ignored.
  if (o.tenant !== undefined) {
    throw new EngramError(
      "input",
      "cli.invalid_option",
      "with --url (ENGRAM_URL) the API key names the tenant: drop --tenant",
    );
  }
  return {
    tenant: LOCAL_TENANT,
    url: o.url,
    key: o.key ?? process.env.ENGRAM_API_KEY,
    keyFrom: o.key !== undefined ? "--key" : "ENGRAM_API_KEY",
    // Set but empty, refused (checkTarget), as for `engram mcp`: it would otherwise mean the shared space.
    user: o.user ?? process.env.ENGRAM_USER_ID,
  };
}

async function ingestBatch(client: Client, documents: FileDocument[]): Promise<IngestResult> {
  if (client.kind === "http") return client.api.ingest({ documents });
  return Ingest.run(client.db, client.caller, documents);
}

/**
 * `ingest --prune`: soft-deletes the caller's own documents stored from files the paths cover (by their source) whose
 * ids this run did not send, so a folder ingested again loses the files deleted or renamed since. Each id pruned is
 * added to `pruned` as it goes, so a prune that fails halfway still says what it did.
 */
async function prune(
  client: Client,
  covered: (source: string | null) => boolean,
  sent: Set<string>,
  pruned: string[],
): Promise<void> {
  const gone: string[] = [];
  let cursor: string | undefined;
  do {
    const page =
      client.kind === "http"
        ? await client.api.documents.list({ limit: 100, cursor })
        : await Document.list(client.db, client.caller, { limit: 100, cursor, includeDeleted: false });
    for (const d of page.documents) if (covered(d.source) && !sent.has(d.id)) gone.push(d.id);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  // Deleted meanwhile by someone else: gone all the same.
  const done = (error: unknown) => {
    if (!(error instanceof Error && "code" in error && error.code === "document.not_found")) throw error;
  };
  for (const id of gone) {
    if (client.kind === "http") await client.api.documents.delete(id).catch(done);
    else await Document.remove(client.db, client.caller, id, { hard: false }).catch(done);
    pruned.push(id);
  }
}

/** A passage's location for people: ", p. 14-15, Travel > Expenses". */
function where(
  location: { pages?: [number, number]; headings?: string[] } | null | undefined,
  title: string | null,
): string {
  if (!location) return "";
  const [from, to] = location.pages ?? [];
  const pages = from === undefined ? "" : from === to ? `p. ${from}` : `pp. ${from}-${to}`;
  const headings = (location.headings ?? []).filter((h, i) => i > 0 || h !== title).join(" > ");
  const parts = [pages, headings].filter(Boolean);
  return parts.length ? `, ${parts.join(", ")}` : "";
}

export function registerDataCommands(program: Command): void {
  withTarget(
    program
      .command("ingest")
      .description("ingest files and folders of .pdf, .docx, .html, .md, .adoc, .txt, .csv, .json and .jsonl")
      .argument("<paths...>", "files or folders")
      .option(
        "--prune",
        "then delete (softly: restorable until the cleanup purges them) the documents stored from files under these paths that this run did not send: files deleted or renamed since",
      ),
  ).action(async (paths: string[], options: TargetOptions & { prune?: boolean }) => {
    const started = Date.now();
    // Checked before anything is stored: a --prune that cannot run must not leave half of what was asked done.
    const covered = options.prune ? coveredBy(paths) : undefined;
    let bar: SingleBar | undefined;
    const client = await connect(targetOf(options), {
      onWait: (seconds) => {
        // The bar's ETA absorbs the pause; plain output says why it stalls.
        if (!bar && !options.json) console.error(`rate limited by the server: waiting ${seconds} s`);
      },
    });
    const { files, skipped } = await collectFiles(paths);
    const totals = {
      files: 0,
      documents: 0,
      chunks: 0,
      embedded: 0,
      reused: 0,
      created: 0,
      updated: 0,
      unchanged: 0,
    };
    const tty = process.stderr.isTTY && !options.json;
    bar = tty
      ? new SingleBar({
          format: "ingest [{bar}] {value}/{total} files | {documents} documents | {eta_formatted} left",
          stream: process.stderr,
          hideCursor: true,
        })
      : undefined;
    bar?.start(files.length, 0, { documents: 0 });

    let batch: FileDocument[] = [];
    let batchChars = 0;
    let done = 0;
    let pendingFiles = 0;
    const inFlight = new Set<Promise<void>>();
    const limit = client.kind === "local" && client.db.capabilities.concurrent ? DIRECT_BATCHES_IN_FLIGHT : 1;
    let failure: unknown;
    /**
     * A batch the database refuses as too large for one atomic write (Neon's 10 MB request: about 500 new chunks) is
     * stored in halves, and a document refused alone is listed as failed while the rest is stored: the batch is the
     * CLI's own grouping, and one refusal had stored nothing of an ordinary folder on Neon.
     */
    const fitted = async (documents: FileDocument[]): Promise<IngestResult[]> => {
      try {
        return [await ingestBatch(client, documents)];
      } catch (error) {
        if ((error as { code?: unknown }).code !== "request.too_large") throw error;
        if (documents.length > 1) {
          const half = Math.ceil(documents.length / 2);
          return [...(await fitted(documents.slice(0, half))), ...(await fitted(documents.slice(half)))];
        }
        const [doc] = documents as [FileDocument];
        const size = /about ([\d.]+ MB) .* limit is ([\d.]+ MB)/.exec((error as Error).message);
        const reason = size
          ? `too large for one write to the database: about ${size[1]}, its limit ${size[2]}; split the file`
          : (error as Error).message.replace(/\.$/, "");
        skipped.push({ path: firstWith.get(doc.id) ?? doc.id, reason: `${reason} (request.too_large)`, failed: true });
        return [];
      }
    };
    const store = async (documents: FileDocument[], fileCount: number) => {
      for (const result of await fitted(documents)) {
        totals.documents += result.totals.documents;
        totals.chunks += result.totals.chunks;
        totals.embedded += result.totals.embedded;
        totals.reused += result.totals.reused;
        for (const d of result.documents) totals[d.status]++;
      }
      done += fileCount;
      if (bar) bar.update(done, { documents: totals.documents });
      else if (!options.json) {
        // Files read, not stored: a file that failed is read too, and says so here as well as in the summary.
        const failed = skipped.filter((s) => s.failed).length;
        console.error(
          `read ${done}/${count(files.length, "file")} (${count(totals.documents, "document")} stored${failed ? `, ${failed} failed` : ""})`,
        );
      }
    };
    // Hands the batch over and waits only while `limit` batches are already being stored; the first failure
    // stops the run once the batches in flight have settled (each is atomic: stored whole or not at all).
    const flush = async () => {
      if (batch.length) {
        const stored: Promise<void> = store(batch, pendingFiles)
          .catch((error) => {
            failure ??= error;
          })
          .finally(() => inFlight.delete(stored));
        inFlight.add(stored);
        batch = [];
        batchChars = 0;
        pendingFiles = 0;
      }
      while (inFlight.size >= limit) await Promise.race(inFlight);
      if (failure) {
        await Promise.all(inFlight);
        throw failure;
      }
    };

    // Two records with one id (in two .json files, or twice in one .jsonl) are not both stored, the second silently
    // replacing the first: the second fails, as two files that would share an id do (cli/files.ts).
    const firstWith = new Map<string, string>();
    // Ctrl-C (or SIGTERM, SIGHUP) stops reading files, lets the batches being stored settle (each is atomic) and says what was
    // stored; a second one quits at once (but for the embedded database). The progress bar gives the terminal its
    // cursor back.
    let interrupted = false;
    const interrupt = () => {
      bar?.stop();
      bar = undefined;
      // Not on an embedded database this process writes: cut short, its write could damage the folder.
      if (interrupted && (client.kind === "http" || client.db.capabilities.concurrent)) process.exit(130);
      if (interrupted) return void console.error("engram: still storing into the embedded database; wait for it");
      interrupted = true;
      if (!options.json) console.error("engram: interrupted: finishing the batches being stored (again to quit now)");
    };
    // SIGHUP: its terminal was closed, which had killed it mid-write.
    for (const signal of SIGNALS) process.on(signal, interrupt);
    try {
      await readAndStore();
    } catch (error) {
      bar?.stop();
      if (!options.json)
        console.error(
          `engram: stopped after storing ${done} of ${count(files.length, "file")} (${count(totals.documents, "document")})`,
        );
      throw error;
    } finally {
      for (const signal of SIGNALS) process.off(signal, interrupt);
    }
    if (!interrupted) bar?.update(files.length);
    bar?.stop();
    // The files this run dealt with: stored, or read (or refused) and listed as failed or skipped. Interrupted, those
    // never read (or read but not yet sent) are not among them: the line above the summary counts them.
    totals.files = done;

    async function readAndStore() {
      for (const file of files) {
        if (interrupted) break;
        if (file.refused) {
          skipped.push({ path: file.path, reason: file.refused, failed: true });
          pendingFiles++;
          continue;
        }
        const read = await readDocuments(file.path, file.root);
        // A file named on the command line that gave nothing is a failure; its skipped records, as in any file, are not.
        const nothing = file.given && !read.documents.length;
        skipped.push(...(nothing ? read.skipped.map((s) => ({ ...s, failed: true })) : read.skipped));
        for (const doc of read.documents) {
          const first = firstWith.get(doc.id);
          if (first !== undefined) {
            skipped.push({
              path: file.path,
              reason: `a second document with the id ${doc.id} (the first: ${first})`,
              failed: true,
            });
            continue;
          }
          firstWith.set(doc.id, file.path);
          if (batch.length >= MAX_BATCH_DOCS || batchChars + doc.content.length > MAX_BATCH_CHARS) await flush();
          batch.push(doc);
          batchChars += doc.content.length;
        }
        pendingFiles++;
      }
      // Interrupted, the batch not yet sent is left out: its files count as not stored.
      if (!interrupted) await flush();
      await Promise.all(inFlight);
      // The files read since the last batch that gave it nothing (failed, refused, nothing to ingest) are dealt with;
      // interrupted with a batch not sent, its files are not.
      if (!batch.length) done += pendingFiles;
      // Embedded PGlite has no autovacuum: the next searches plan with statistics of what was just stored.
      if (client.kind !== "http") await Statistics.refresh(client.db);
      if (failure) throw failure;
    }

    const failed = skipped.filter((s) => s.failed).length;
    // A file that failed this time still exists: its document is kept, so nothing is pruned after a failure.
    const pruned: string[] = [];
    // A prune that fails (the server gone, a rate limit) still has its ingest summary printed, then its error.
    const pruning =
      covered && !failed && !interrupted
        ? await prune(client, covered, new Set(firstWith.keys()), pruned).then(
            () => undefined,
            (error: unknown) => error,
          )
        : undefined;
    const seconds = (Date.now() - started) / 1000;
    // Each entry says whether it failed, true or false, so a script need not tell an absent field from false.
    const listed = skipped.map(({ path, reason, failed }) => ({ path, reason, failed: failed === true }));
    const summary = {
      ...totals,
      failed,
      skipped: listed,
      ...(options.prune ? { pruned } : {}),
      seconds: Number(seconds.toFixed(2)),
    };
    // A file that failed (a path that does not exist, a damaged or encrypted file, an id two files would share) is
    // listed and makes the run exit 1, after the rest is stored, so a script can tell; a file skipped as not a
    // document (its type, no text) does not.
    if (failed) process.exitCode = 1;
    if (interrupted) process.exitCode = 130;
    if (options.json) {
      console.log(JSON.stringify(interrupted ? { ...summary, interrupted: true } : summary));
      if (pruning) throw pruning;
      return;
    }
    if (interrupted)
      console.log(
        `interrupted: ${done} of ${count(files.length, "file")} stored; the same command again stores the rest (what is stored stays unchanged)`,
      );
    console.log(
      `${count(totals.files, "file")}, ${count(totals.documents, "document")} (${totals.created} created, ${totals.updated} updated, ${totals.unchanged} unchanged), ` +
        `${count(totals.chunks, "chunk")} (${totals.embedded} embedded, ${totals.reused} reused), ${skipped.length - failed} skipped, ${failed} failed, ` +
        `${options.prune ? (failed ? "none pruned (a file failed), " : `${pruned.length} pruned, `) : ""}${seconds.toFixed(1)}s`,
    );
    // A file's name, a record's path and a reason quoting a file are anyone's text: one line each, nothing a terminal obeys.
    for (const s of skipped) console.log(printable(`  ${s.failed ? "failed" : "skipped"} ${s.path}: ${s.reason}`));
    for (const id of pruned) console.log(printable(`  pruned ${id}`));
    if (pruning) throw pruning;
  });

  withTarget(
    program
      .command("search")
      .description("search a tenant's (or end user's) documents")
      .argument("<query...>", "what to look for")
      .addOption(new Option("--mode <mode>", "search mode").choices(["hybrid", "vector", "keyword"]).default("hybrid"))
      .option("-k, --top-k <n>", "how many results", wholeNumber(1, MAX_TOP_K), 5)
      .addOption(scopeOption()),
  ).action(async (words: string[], options: TargetOptions & { mode: string; topK: number; scope: Scope }) => {
    const client = await connect(targetOf(options), { create: false });
    const input = { query: words.join(" "), mode: options.mode, topK: options.topK, scope: options.scope };
    const response =
      client.kind === "http"
        ? await client.api.search(input as SearchInput)
        : await Search.query(client.db, client.caller, Search.SearchRequest.parse(input as SearchInput));
    if (options.json) return console.log(JSON.stringify(response));
    // Chunks of another model than the configured one are not vector-searched until re-embedded: said, as the API says.
    const stale = response.stale
      ? `${response.stale >= STALE_COUNT_MAX ? "at least " : ""}${response.stale.toLocaleString("en-US")} chunks of another model than the configured one were not vector-searched: run \`engram reembed\``
      : "";
    if (!response.results.length) return console.log(stale ? `no results (${stale})` : "no results");
    if (stale && options.mode !== "keyword") console.error(`note: ${stale}`);
    // Each result names its space (user or shared): a user's document and a shared one may have the same id. Titles,
    // headings and text are whoever stored them: printable, as a terminal would obey an escape sequence in them.
    for (const [i, r] of response.results.entries()) {
      const snippet = r.content.replace(/\s+/g, " ").slice(0, 160);
      console.log(
        printable(
          `${i + 1}. ${r.title ?? r.documentId}${where(r.location, r.title)}  (${r.documentId}, ${r.scope}, ${response.scale} ${r.score.toFixed(4)})`,
        ),
      );
      console.log(`   ${printable(snippet)}${r.content.length > 160 ? "…" : ""}`);
    }
  });

  withTarget(
    program
      .command("chat")
      .description("ask a question answered from a tenant's (or end user's) documents, with citations")
      .argument("<question...>", "the question")
      .option("--conversation <id>", "continue a conversation")
      .addOption(scopeOption()),
  ).action(async (words: string[], options: TargetOptions & { conversation?: string; scope: Scope }) => {
    const client = await connect(targetOf(options), { create: false });
    const input = {
      messages: [{ role: "user" as const, content: words.join(" ") }],
      conversationId: options.conversation,
      scope: options.scope,
    };
    const response = await (client.kind === "http"
      ? client.api.chat(input)
      : Chat.answer(client.db, client.caller, ChatRequest.parse(input))
    ).catch((error: unknown) => {
      // The API's message names its field (`conversationId`); here it is a flag.
      if ((error as { code?: unknown }).code !== "conversation.not_found") throw error;
      throw new EngramError(
        "not_found",
        "conversation.not_found",
        `No conversation with id ${JSON.stringify(options.conversation)} to continue: leave --conversation out to start one (its id is printed below the answer)`,
      );
    });
    if (options.json) return console.log(JSON.stringify(response));
    // The answer quotes stored text (an extractive answer is made of it): in lines, nothing a terminal obeys.
    console.log(printable(response.message.content, { lines: true }));
    for (const c of response.citations)
      console.log(
        printable(
          `  [${c.index}] ${c.title ?? c.documentId}${where(c.location, c.title)} (${c.documentId}, ${c.scope})`,
        ),
      );
    console.log(printable(`  conversation ${response.conversationId} · ${response.model}`));
  });

  withTarget(program.command("stats").description("counts for a tenant's (or end user's) space")).action(
    async (options: TargetOptions) => {
      const client = await connect(targetOf(options), { create: false });
      const stats = client.kind === "http" ? await client.api.stats() : await Document.stats(client.db, client.caller);
      if (options.json) return console.log(JSON.stringify(stats));
      for (const line of statsText(stats, targetOf(options).user)) console.log(printable(line));
    },
  );
}

/** How many conversations `engram stats` names; the rest are counted. */
const CONVERSATIONS_SHOWN = 5;

/** `engram stats` for people: a line a measure, in the words of docs/contract.md's stats fields. */
function statsText(stats: Document.Stats | ApiStats, user: string | undefined): string[] {
  const n = (value: number) => value.toLocaleString("en-US");
  const time = (value: Date | string) => new Date(value).toISOString();
  const { embedding: e, byConversation: conversations } = stats;
  const shown = conversations.slice(0, CONVERSATIONS_SHOWN);
  const more = conversations.length - shown.length;
  const run = e.reembed;
  const share = stats.chunks ? ` (${((e.stale / stats.chunks) * 100).toFixed(1)}%)` : "";
  return [
    `tenant         ${stats.tenant}, ${user ? `user ${user}'s space` : "the shared space"}`,
    `documents      ${n(stats.documents.total)}${stats.documents.deleted ? ` (and ${n(stats.documents.deleted)} deleted, restorable until the cleanup purges them)` : ""}`,
    `chunks         ${n(stats.chunks)}`,
    `embedding      ${e.model}, ${e.dimensions} dims`,
    `stale chunks   ${
      e.stale
        ? `${n(e.stale)}${share} of another model: keyword search finds them, vector search not until \`engram reembed\``
        : "none"
    }`,
    `re-embedding   ${
      !run
        ? "never run in this tenant"
        : run.runningUntil
          ? `to ${run.model}, running: ${n(run.reembedded)} chunks moved since ${time(run.startedAt)}`
          : run.finishedAt
            ? `to ${run.model}, finished ${time(run.finishedAt)}: ${n(run.reembedded)} chunks moved`
            : `to ${run.model}, unfinished${run.lastError ? ` (stopped: ${run.lastError.replace(/\.$/, "")})` : ""}: ${n(run.reembedded)} chunks moved; the cleanup or \`engram reembed\` continues it`
    }`,
    `conversations  ${
      conversations.length
        ? `${n(conversations.length)}: ${shown.map((c) => `${c.conversationId} (${count(c.documents, "document")})`).join(", ")}${more ? `, and ${n(more)} more` : ""}`
        : "none"
    }`,
    `importance     ${stats.averageImportance === null ? "none (no documents)" : `${stats.averageImportance} on average`}`,
    `accessed       ${count(stats.totalAccessCount, "time")}`,
    `last ingest    ${stats.lastIngestAt ? time(stats.lastIngestAt) : "never"}`,
  ];
}

/** `-k abc` is the user's mistake, said in their terms (the API's own message named a field and `null`). */
/** A whole-number option, refused where it is typed (commander prints the reason and exits 1). */
export const wholeNumber =
  (min: number, max: number) =>
  (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return n;
  };
