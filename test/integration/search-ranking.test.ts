/**
 * How search ranks, on every driver: BM25 over any informative word, statistics that follow every write, chunks
 * found by their document's title and headings, identifiers first, hostile query text, and the re-rank stage.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "../../core/auth";
import * as Auth from "../../core/auth";
import * as Cleanup from "../../core/cleanup";
import { setConfig } from "../../core/config";
import { type Db, useDb } from "../../core/db";
import { migrate } from "../../core/db/migrate";
import { createPgDb } from "../../core/db/pg";
import * as Document from "../../core/document";
import { useEmbedder } from "../../core/embedding";
import { createOfflineEmbedder } from "../../core/embedding/offline";
import * as Ingest from "../../core/ingest";
import * as Search from "../../core/search";
import { identifiers, withoutComparisons } from "../../core/search/keyword";
import {
  callerFor,
  createDatabase,
  DIMENSIONS,
  DRIVERS,
  dropDatabase,
  freshDb,
  migrateBefore,
  pgUrl,
  type TestDb,
  termRecount,
  termStatistics,
} from "../../kit/db";
import { invoke } from "../../kit/events";

const embedder = createOfflineEmbedder({ dimensions: DIMENSIONS });

const HANDBOOK = [
  "# Handbook",
  "",
  "## Travel",
  "",
  "### Expenses",
  "",
  "Keep every receipt and submit the claim within thirty days of returning.",
  "",
  "## Security",
  "",
  "Laptops lock after five idle minutes. Report a lost badge to the front desk at once.",
].join("\n");

beforeAll(() => {
  setConfig({ LOG_LEVEL: "silent" });
});

describe.each(DRIVERS)("ranking on %s", (driver) => {
  let t: TestDb;
  let db: Db;
  let shared: Caller;
  let alice: Caller;

  const search = (caller: Caller, request: Search.SearchInput) =>
    Search.query(db, caller, Search.SearchRequest.parse(request), { embedder });
  const ids = async (caller: Caller, request: Search.SearchInput) =>
    (await search(caller, request)).results.map((r) => r.documentId);

  beforeAll(async () => {
    t = await freshDb(driver);
    db = t.db;
    useDb(db);
    useEmbedder(embedder);
    shared = await callerFor(db, "acme");
    alice = { ...shared, userId: "alice" };
    await Ingest.run(
      db,
      shared,
      [
        { id: "handbook", title: "Employee handbook", content: HANDBOOK },
        { id: "wal", content: "Raise max_wal_size when checkpoints happen too often during bulk loads." },
        {
          id: "wal-near",
          content: "The maximum size of a WAL segment is fixed at build time; min_wal_size is separate.",
        },
        { id: "race", content: "Caroline ran the charity race in April and raised money for the shelter." },
        { id: "race-other", content: "The race for the new office was close; charity events moved to the spring." },
        { id: "noise", content: "Bread rises better in a warm kitchen; knead the dough for ten minutes." },
      ],
      { embedder },
    );
  });
  afterAll(async () => {
    useEmbedder(undefined);
    await t?.close();
  });

  it("matches a natural-language question on any of its informative words and ranks the fullest match first", async () => {
    const found = await ids(shared, {
      query: "What did Caroline do after the charity race?",
      mode: "keyword",
      topK: 5,
    });

    expect(found[0]).toBe("race");
    expect(found).toContain("race-other");
    expect(found).not.toContain("noise");
  });

  it("finds a passage by its document's title and the headings above it, and returns its text unchanged", async () => {
    const { results } = await search(shared, { query: "employee handbook travel expenses", mode: "keyword", topK: 3 });

    expect(results[0]?.documentId).toBe("handbook");
    expect(results[0]?.content).not.toContain("Employee handbook");
    const rows = await db.query<{ context: string }>({
      text: "select context from chunks c join documents d on d.key = c.document_key where d.id = 'handbook' order by ordinal",
      params: [],
    });
    expect(rows[0]?.context).toMatch(/^Employee handbook( > Handbook)?/);
  });

  it("ranks the chunk holding an identifier as written above chunks holding only its words", async () => {
    const found = await ids(shared, { query: "max_wal_size", mode: "keyword", topK: 5 });

    expect(found[0]).toBe("wal");
    expect(found).toContain("wal-near");
    expect(identifiers("raise max_wal_size or ERR-4012 now")).toEqual(["max_wal_size", "err-4012"]);
  });

  it("ranks a qualified identifier's passage above passages naming only its bare tail", async () => {
    const python = await callerFor(db, "python-docs");
    const filler = (i: number) => ({ id: `filler-${i}`, content: `Chapter ${i} covers sockets, threads and files.` });
    await Ingest.run(
      db,
      python,
      [
        {
          id: "qualified",
          content:
            "functools.lru_cache(maxsize=128) wraps a function with a memoizing callable that saves up to the maxsize most recent calls, keyed by the arguments, which must be hashable; statistics come from cache_info().",
        },
        { id: "bare", content: "The lru_cache decorator: lru_cache keeps results in a cache." },
        ...Array.from({ length: 4 }, (_, i) => filler(i)),
      ],
      { embedder },
    );

    expect((await ids(python, { query: "functools.lru_cache", mode: "keyword", topK: 2 }))[0]).toBe("qualified");
    expect(identifiers("default of functools.lru_cache? os.path.join, e.g. pull.rebase")).toEqual([
      "functools.lru_cache",
    ]);
  });

  it("finds the words inside paths, file names, dotted names and URLs, which the parser keeps whole", async () => {
    const paths = await callerFor(db, "paths");
    await Ingest.run(
      db,
      paths,
      [
        {
          id: "paths",
          content:
            "Modules are installed to /usr/lib/python3/dist-packages by default. Client authentication lives in $PGDATA/pg_hba.conf; see https://example.com/zlib/manual.html for details.",
        },
        { id: "decoy", content: "The packages list is long. Dist is short for distribution." },
        { id: "other", content: "Bread rises better in a warm kitchen; knead the dough for ten minutes." },
      ],
      { embedder },
    );
    const first = async (query: string) => (await ids(paths, { query, mode: "keyword", topK: 3 }))[0];

    // Each of these met only the whole token's lexeme before (`dist-packages` ranked the decoy first).
    expect(await first("dist-packages")).toBe("paths");
    expect(await first("python3")).toBe("paths");
    expect(await first("manual.html")).toBe("paths");
    expect(await first("pg_hba")).toBe("paths");
    expect(await first("pg_hba.conf")).toBe("paths");
    // The whole path still matches as written, and the chunk's text comes back as stored.
    const { results } = await search(paths, { query: "/usr/lib/python3/dist-packages", mode: "keyword", topK: 1 });
    expect(results[0]?.content).toContain("/usr/lib/python3/dist-packages by default");
    expect(await termRecount(db)).toEqual(await termStatistics(db));
  });

  it("finds options and snake_case names as written, which the parser reads as stop words or plain words", async () => {
    const code = await callerFor(db, "code");
    await Ingest.run(
      db,
      code,
      [
        { id: "tuples", title: "psql", content: "Use -t to print rows only, and -A for unaligned output." },
        { id: "user-prose", content: "Each user of the system has a home directory; the user may change it." },
        {
          id: "find-user",
          title: "find",
          content: "The test -user NAME is true when the file belongs to user NAME; -N is not -n.",
        },
        { id: "timestamps", content: "Start the mirror with -N to download only files newer than local ones." },
        { id: "lines", content: "Pass -n 2 so that each command gets at most two arguments." },
        { id: "to-char", content: "Format a timestamp as text with to_char(now(), 'HH24:MI')." },
        { id: "char-type", content: "The char type pads with spaces; char(n) is fixed width, char columns too." },
        { id: "porcelain-prose", content: "Porcelain commands are for people; porcelain output may change." },
        { id: "porcelain", content: "git status --porcelain gives output for scripts that stays stable." },
      ],
      { embedder },
    );
    const keyword = async (query: string) => ids(code, { query, mode: "keyword", topK: 3 });

    // `-t` and `-A` were stop words: the question held no word at all.
    expect((await keyword("psql -t"))[0]).toBe("tuples");
    expect((await keyword("what does -A do"))[0]).toBe("tuples");
    // `-user` was the word "user", which the prose repeats.
    expect((await keyword("find -user"))[0]).toBe("find-user");
    // Case kept: `-N` and `-n` were one lexeme.
    expect((await keyword("mirror -N newer"))[0]).toBe("timestamps");
    expect((await keyword("-n arguments"))[0]).toBe("lines");
    // `to` is a stop word: `to_char` was `char`, which the type's passage holds three times.
    expect((await keyword("to_char"))[0]).toBe("to-char");
    expect((await keyword("TO_CHAR format"))[0]).toBe("to-char");
    // The question's option is not its word again: prose saying "porcelain" twice does not outrank the option.
    expect((await keyword("--porcelain"))[0]).toBe("porcelain");
    // Prose hyphens are not options; the words still match.
    expect(await keyword("e-mail 5-10")).toEqual([]);
    expect((await keyword("porcelain commands"))[0]).toBe("porcelain-prose");
    expect(await termRecount(db)).toEqual(await termStatistics(db));
  });

  it("finds SQL's keywords written in capitals, which English drops as stop words, and doubles no other word", async () => {
    const sqlDocs = await callerFor(db, "sql");
    await Ingest.run(
      db,
      sqlDocs,
      [
        { id: "window", content: "A window function is called with an OVER clause naming its partition and order." },
        { id: "contract", content: "Each clause of the contract is numbered; a clause may refer to another clause." },
        { id: "select-into", content: "SELECT INTO makes a new table from the rows a query returns." },
        { id: "copy", content: "Copy the rows of a query into a new table, or the table into a file." },
        { id: "meeting", content: "The meeting ran over time, so we went over the plan again over lunch." },
      ],
      { embedder },
    );
    const keyword = async (query: string) => ids(sqlDocs, { query, mode: "keyword", topK: 3 });

    // `OVER` was a stop word: the question was "clause", which the contract says three times.
    expect((await keyword("What does the OVER clause do?"))[0]).toBe("window");
    expect((await keyword("SELECT INTO a new table"))[0]).toBe("select-into");
    // In lower case it is the English word, and a stop word still; so is a question written all in capitals.
    expect((await keyword("what does the over clause do"))[0]).toBe("contract");
    expect((await keyword("WHAT DOES THE OVER CLAUSE DO"))[0]).toBe("contract");
    expect(await keyword("over")).toEqual([]);
    // Only the words the configuration drops get a lexeme in capitals: `SELECT` matches `select` as before.
    const lexemes = await db.query<{ word: string; n: number }>({
      text: `select w as word, (select count(*)::int from chunks where tsv @@ quote_literal(w)::tsquery) as n
             from unnest(array['OVER', 'INTO', 'SELECT', 'CLAUSE']) w order by w`,
      params: [],
    });
    expect(lexemes).toEqual([
      { word: "CLAUSE", n: 0 },
      { word: "INTO", n: 1 },
      { word: "OVER", n: 1 },
      { word: "SELECT", n: 0 },
    ]);
    expect(await termRecount(db)).toEqual(await termStatistics(db));
  });

  it("matches words whatever Unicode form they were written in, and returns the text as stored", async () => {
    const forms = await callerFor(db, "forms");
    // A combining accent (as macOS and some PDFs write it), a ligature and full-width letters.
    const decomposed = "The cafe\u0301 on the corner serves cre\u0300me bru\u0302le\u0301e on Sundays.";
    await Ingest.run(
      db,
      forms,
      [
        { id: "nfd", content: decomposed },
        { id: "ligature", content: "Each con\ufb01guration \ufb01le is read once at start." },
        { id: "wide", content: "Run \uff33\uff25\uff2c\uff25\uff23\uff34 against the replica only." },
        {
          id: "plain",
          content: "Our caf\u00e9 menu lists a cr\u00e8me br\u00fbl\u00e9e and a configuration of tables.",
        },
        { id: "other", content: "Bread rises better in a warm kitchen; knead the dough for ten minutes." },
      ],
      { embedder },
    );
    const keyword = async (query: string) =>
      (await ids(forms, { query, mode: "keyword", topK: 5 })).filter((id) => id !== "other").sort();

    // Typed precomposed, found in both spellings; typed decomposed, the same.
    expect(await keyword("caf\u00e9 on the corner")).toEqual(["nfd", "plain"]);
    expect(await keyword("cre\u0300me bru\u0302le\u0301e")).toEqual(["nfd", "plain"]);
    expect(await keyword("configuration file")).toEqual(["ligature", "plain"]);
    expect(await keyword("\uff43\uff4f\uff4e\uff46\uff49\uff47\uff55\uff52\uff41\uff54\uff49\uff4f\uff4e")).toEqual([
      "ligature",
      "plain",
    ]);
    expect(await keyword("select replica")).toEqual(["wide"]);
    const { results } = await search(forms, { query: "Sundays", mode: "keyword", topK: 1 });
    expect(results[0]?.content).toBe(decomposed);
    expect(await termRecount(db)).toEqual(await termStatistics(db));
  });

  it("ranks a passage holding the question's words as a phrase above a shorter one that scatters them", async () => {
    const git = await callerFor(db, "git-docs");
    await Ingest.run(
      db,
      git,
      [
        // One lexeme longer than the other: BM25 alone prefers "scattered", as the reversed question shows.
        { id: "together", content: "When a merge conflict stops the rebase, edit the file and continue." },
        { id: "scattered", content: "A conflict stops the rebase when you merge; edit and continue." },
        ...["Tags name commits.", "Remotes fetch objects.", "Hooks run scripts.", "Stashes keep changes."].map(
          (content, i) => ({ id: `filler-${i}`, content }),
        ),
      ],
      { embedder },
    );

    expect(await ids(git, { query: "merge conflict", mode: "keyword", topK: 2 })).toEqual(["together", "scattered"]);
    expect(await ids(git, { query: "conflict merge", mode: "keyword", topK: 2 })).toEqual(["scattered", "together"]);
  });

  it("reads vs and versus as no word of the question", async () => {
    const git = await callerFor(db, "git-compare");
    await Ingest.run(
      db,
      git,
      [
        { id: "options", content: "-S finds commits that change the count of a string; -G takes a regex." },
        { id: "heading", title: "REBASE VS. PULL", content: "Prefer rebase vs merge when you pull." },
        ...["Tags name commits.", "Remotes fetch objects."].map((content, i) => ({ id: `filler-${i}`, content })),
      ],
      { embedder },
    );

    // Only "vs" is shared with the heading passage; the question's words are all in the other one.
    expect(await ids(git, { query: "string regex vs", mode: "keyword", topK: 3 })).toEqual(["options"]);
    expect(await ids(git, { query: "vs. versus VS", mode: "keyword" })).toEqual([]);
    expect(withoutComparisons("vs_code obvs --vs-flag")).toBe("vs_code obvs --vs-flag");
  });

  it("treats tsquery syntax in a query as text, and answers a query of stop words from the vector leg alone", async () => {
    for (const query of [
      "race & | ! :* <-> 'x' \"y\" \\ (z",
      "a:* & !b",
      "'''",
      "\\\\",
      "<2> <->",
      "!",
      "charity' & race\\ <-> \"raised's\" 'money'",
    ]) {
      for (const mode of ["keyword", "hybrid", "vector"] as const) {
        await expect(search(shared, { query, mode, topK: 3 })).resolves.toMatchObject({ mode });
      }
    }
    const stop = "the and of it was";
    expect((await search(shared, { query: stop, mode: "keyword" })).results).toEqual([]);
    expect((await search(shared, { query: stop, mode: "hybrid" })).results.length).toBeGreaterThan(0);
  });

  it("says what each leg made of a hybrid result, on the legs' own scales", async () => {
    const query = "What did Caroline do after the charity race?";
    const hybrid = await search(shared, { query, mode: "hybrid", topK: 6 });
    const vector = new Map(
      (await search(shared, { query, mode: "vector", topK: 50 })).results.map((r) => [r.chunkId, r]),
    );
    const keyword = new Map(
      (await search(shared, { query, mode: "keyword", topK: 50 })).results.map((r) => [r.chunkId, r]),
    );

    expect(hybrid.results.length).toBe(6);
    for (const r of hybrid.results) {
      expect(r.legs?.vector).toBeCloseTo(vector.get(r.chunkId)?.score ?? Number.NaN, 6);
      if (keyword.has(r.chunkId)) expect(r.legs?.keyword).toBeCloseTo(keyword.get(r.chunkId)?.score ?? Number.NaN, 6);
      else expect(r.legs?.keyword).toBeNull();
    }
    expect(hybrid.results.some((r) => r.legs?.keyword === null)).toBe(true);
    // The other modes' score is already their own leg's.
    expect([...vector.values(), ...keyword.values()].every((r) => r.legs === undefined)).toBe(true);
    // A query no passage shares a word with: every keyword leg null, whatever the fused score says.
    const junk = await search(shared, { query: "zzzzqqq", mode: "hybrid", topK: 3 });
    expect(junk.results.map((r) => r.legs?.keyword)).toEqual([null, null, null]);
  });

  it("weighs the keyword leg at 0.8 for a question naming an identifier, at the configured 0.6 otherwise", async () => {
    // Each leg's list min-max normalized between its best and its last (fewer than the fusion depth here).
    const normalized = async (query: string, mode: "vector" | "keyword") => {
      const list = (await search(shared, { query, mode, topK: 50 })).results;
      const best = list[0]?.score ?? 0;
      const last = list.at(-1)?.score ?? 0;
      return new Map(list.map((r) => [r.chunkId, best === last ? 1 : (r.score - last) / (best - last)]));
    };
    for (const [query, w] of [
      ["Raise max_wal_size for bulk loads?", 0.8],
      ["Raise the maximum size for bulk loads?", 0.6],
    ] as const) {
      const vector = await normalized(query, "vector");
      const keyword = await normalized(query, "keyword");
      const hybrid = (await search(shared, { query, mode: "hybrid", topK: 6 })).results;
      expect(hybrid.length).toBeGreaterThan(2);
      for (const r of hybrid)
        expect(r.score).toBeCloseTo(w * (keyword.get(r.chunkId) ?? 0) + (1 - w) * (vector.get(r.chunkId) ?? 0), 6);
    }
  });

  it("keeps the term statistics equal to a recount after ingests, changes, deletes and purges", async () => {
    await Ingest.run(
      db,
      alice,
      [{ id: "a1", title: "Alice", content: "Alice keeps a private diary about the race." }],
      {
        embedder,
      },
    );
    await Ingest.run(db, shared, [{ id: "noise", content: "Bread and butter; the race is elsewhere." }], { embedder });
    await Ingest.patch(db, shared, "wal", { title: "Checkpoints" });
    await Document.remove(db, shared, "race-other", { hard: true });
    await Document.remove(db, alice, "a1", { hard: false });
    await Cleanup.run(db, { retentionDays: 0 });

    expect(await termStatistics(db)).toEqual(await termRecount(db));
  });

  it("keeps the statistics exact when one owner's ingests and deletes run at once", async () => {
    const words = (i: number) => `shared words race charity handbook batch${i % 3} item${i}`;
    await Promise.all(
      Array.from({ length: 6 }, (_, r) =>
        Ingest.run(
          db,
          shared,
          Array.from({ length: 20 }, (_, i) => ({ id: `c${r}-${i}`, content: words(r * 20 + i) })),
          { embedder },
        ),
      ),
    );
    await Promise.all([
      Ingest.run(db, shared, [{ id: "c0-0", content: "replaced text about the race" }], { embedder }),
      Document.remove(db, shared, "c1-1", { hard: true }),
      Ingest.run(db, shared, [{ id: "c2-2", content: words(7), title: "Retitled" }], { embedder }),
    ]);

    expect(await termStatistics(db)).toEqual(await termRecount(db));
  });

  it("gives the same first hybrid results whatever topK asks for beyond them, under either fusion", async () => {
    // Deeper than the fusion depth in both legs, words shared unevenly: before the fusion read a fixed depth, each
    // list's minimum (so its normalization) moved with topK and reordered the first results.
    const other = await callerFor(db, "depth");
    const words = ["river", "boat", "harbour", "storm", "engine", "garden", "winter", "market", "bridge", "coffee"];
    let seed = 7;
    const pick = () => {
      seed = (seed * 48271) % 2147483647;
      return words[seed % words.length] as string;
    };
    const docs = Array.from({ length: 120 }, (_, i) => ({
      id: `d${i}`,
      content: `Note ${i}: ${Array.from({ length: 3 + (i % 5) }, pick).join(" ")} today.`,
    }));
    await Ingest.run(db, other, docs, { embedder });
    const queries = ["storm over the harbour", "coffee at the market", "engine trouble on the river boat"];

    for (const fusion of ["score", "rrf"]) {
      setConfig({ LOG_LEVEL: "silent", SEARCH_FUSION: fusion });
      for (const query of queries) {
        const first = (await search(other, { query, mode: "hybrid", topK: 5 })).results;
        const more = (await search(other, { query, mode: "hybrid", topK: 25 })).results;
        const most = (await search(other, { query, mode: "hybrid", topK: 50 })).results;

        expect(more.slice(0, 5).map((r) => [r.chunkId, r.score])).toEqual(first.map((r) => [r.chunkId, r.score]));
        expect(most.slice(0, 25).map((r) => [r.chunkId, r.score])).toEqual(more.map((r) => [r.chunkId, r.score]));
        expect(new Set(most.map((r) => r.chunkId)).size).toBe(50);
        // A returned score used as minScore returns that result and those above it.
        const cut = (await search(other, { query, mode: "hybrid", topK: 25, minScore: more[4]?.score })).results;
        expect(cut.slice(0, 5).map((r) => r.chunkId)).toEqual(first.map((r) => r.chunkId));
      }
    }
    setConfig({ LOG_LEVEL: "silent" });
  });

  it("scores the vector leg's passages on the question's words when its words are too common to gather all matches", async () => {
    // More passages holding "open" than the hybrid cap gathers (300), all stored before the one that answers: the
    // cap keeps the first in the table's order, so the answer's keyword score came only from the vector leg's list.
    const other = await callerFor(db, "common-words");
    const verbs = ["opens the file", "keeps the socket open", "an open issue", "opened the window", "open a ticket"];
    const filler = Array.from({ length: 320 }, (_, i) => ({
      id: `f${i}`,
      content: `Step ${i} of the build ${verbs[i % verbs.length]} and writes ${i % 7} records to the log.`,
    }));
    await Ingest.run(db, other, filler, { embedder });
    await Ingest.run(db, other, [{ id: "hours", title: "Opening hours", content: "We are open 9 to 5 on weekdays." }], {
      embedder,
    });

    const [first] = (await search(other, { query: "When are you open?", mode: "hybrid", topK: 5 })).results;
    expect(first?.documentId).toBe("hours");
    expect(first?.legs?.keyword).toBeGreaterThan(0);
  });

  it("gathers the matches of the question's commoner words when its rarest ones leave the cap short", async () => {
    // "policy" and "window" fill 320 passages between them, past the hybrid cap (300): the rarest words alone gather.
    // The 12 garden notes hold only "refund", the commonest word; a filter to them left the keyword leg empty.
    const other = await callerFor(db, "rare-first");
    const filler = Array.from({ length: 160 }, (_, i) => ({
      id: `p${i}`,
      content: `Refund policy window, clause ${i}: returns are accepted within ${i % 30} days.`,
      metadata: { team: "support" },
    }));
    const garden = Array.from({ length: 12 }, (_, i) => ({
      id: `g${i}`,
      content: `Gardening note ${i}: tomatoes need sun; a refund was once requested for seeds.`,
      metadata: { team: "garden" },
    }));
    const rare = { id: "zanzibar", content: "The zanzibar shipment arrived late." };
    await Ingest.run(db, other, [...filler, ...garden, rare], { embedder });

    const filter = { metadata: { team: "garden" } };
    for (const mode of ["keyword", "hybrid"] as const) {
      const { results } = await search(other, { query: "refund policy window", mode, topK: 5, filter });
      expect(results.map((r) => r.documentId.slice(0, 1))).toEqual(["g", "g", "g", "g", "g"]);
      if (mode === "hybrid") expect(results.every((r) => (r.legs?.keyword ?? 0) > 0)).toBe(true);
    }
    // A rare word in one passage and a common one in 172: every passage holding either is a keyword match.
    const { results } = await search(other, { query: "zanzibar refund", mode: "keyword", topK: 10 });
    expect(results[0]?.documentId).toBe("zanzibar");
    expect(results).toHaveLength(10);
  });

  it("scores each owner's documents with that owner's statistics only", async () => {
    const before = (await search(shared, { query: "race", mode: "keyword", topK: 1 })).results[0]?.score;
    await Ingest.run(
      db,
      alice,
      Array.from({ length: 20 }, (_, i) => ({ id: `r${i}`, content: `race day number ${i}` })),
      { embedder },
    );
    const after = (await search(shared, { query: "race", mode: "keyword", topK: 1, scope: "shared" })).results[0]
      ?.score;

    expect(after).toBe(before);
  });
});

describe("re-rank stage", () => {
  let t: TestDb;
  let server: Server;
  let url: string;
  let key: string;
  let behaviour: "reverse" | "slow" | "down" | "malformed" = "reverse";
  let caller: Caller;

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        const { documents = [] } = JSON.parse(body || "{}") as { documents?: string[] };
        if (behaviour === "down") return res.writeHead(503).end("{}");
        if (behaviour === "malformed")
          return res.writeHead(200, { "content-type": "application/json" }).end('{"results":[{"index":99}]}');
        const answer = JSON.stringify({
          // Cohere's shape; the last fused candidate scores best.
          results: documents.map((_, i) => ({ index: i, relevance_score: i / documents.length })),
        });
        if (behaviour === "slow") setTimeout(() => res.writeHead(200).end(answer), 1000);
        else res.writeHead(200, { "content-type": "application/json" }).end(answer);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/rerank`;
    setConfig({ LOG_LEVEL: "silent", RERANK_URL: url, RERANK_TIMEOUT_MS: "200", RERANK_CANDIDATES: "5" });
    t = await freshDb("pg");
    useDb(t.db);
    useEmbedder(embedder);
    caller = await callerFor(t.db, "acme");
    key = (await Auth.createKey(t.db, "acme")).key;
    await Ingest.run(
      t.db,
      caller,
      Array.from({ length: 8 }, (_, i) => ({ id: `d${i}`, content: `Refund rule ${i}: refunds take ${i + 1} days.` })),
      { embedder },
    );
  });
  afterAll(async () => {
    setConfig({ LOG_LEVEL: "silent" });
    useEmbedder(undefined);
    await t?.close();
    server?.close();
  });

  const post = (body: unknown) =>
    invoke({ method: "POST", path: "/v1/search", headers: { authorization: `Bearer ${key}` }, body });

  it("re-orders hybrid results by the endpoint's scores and says so", async () => {
    behaviour = "reverse";
    const fused = await Search.query(
      t.db,
      caller,
      Search.SearchRequest.parse({ query: "refunds days", topK: 5, mode: "keyword" }),
    );
    const response = await post({ query: "refunds days", topK: 3 });

    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ rerank: "applied", scale: "rerank" });
    expect(response.body.results).toHaveLength(3);
    const scores = response.body.results.map((r: { score: number }) => r.score);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    expect(fused.results.length).toBe(5);
  });

  it("keeps the results minScore chooses on the fused scale, whether the endpoint answers or not", async () => {
    behaviour = "reverse";
    const fused = (await post({ query: "refunds days", topK: 8, mode: "hybrid" })).body.results;
    behaviour = "down";
    const all = (await post({ query: "refunds days", topK: 8 })).body.results as { chunkId: string; score: number }[];
    const cut = all[2]?.score as number;
    const failed = await post({ query: "refunds days", topK: 8, minScore: cut });
    behaviour = "reverse";
    const applied = await post({ query: "refunds days", topK: 8, minScore: cut });

    expect([failed.body.rerank, applied.body.rerank]).toEqual(["failed", "applied"]);
    const ids = (body: { results: { chunkId: string }[] }) => body.results.map((r) => r.chunkId).sort();
    expect(ids(applied.body)).toEqual(ids(failed.body));
    expect(ids(failed.body)).toEqual(
      all
        .filter((r) => r.score >= cut)
        .map((r) => r.chunkId)
        .sort(),
    );
    expect(fused.length).toBeGreaterThan(ids(applied.body).length);
  });

  it.each(["slow", "down", "malformed"] as const)(
    "keeps the fused order within the timeout when the endpoint is %s",
    async (mode) => {
      behaviour = mode;
      const started = performance.now();
      const response = await post({ query: "refunds days", topK: 3 });

      expect(response.status).toBe(200);
      expect(response.body).toMatchObject({ rerank: "failed", scale: "fused" });
      expect(response.body.results).toHaveLength(3);
      expect(performance.now() - started).toBeLessThan(900);
    },
  );

  it("leaves vector and keyword modes alone", async () => {
    behaviour = "reverse";
    const response = await post({ query: "refunds days", mode: "keyword", topK: 3 });

    expect(response.body.rerank).toBeUndefined();
    expect(response.body.scale).toBe("bm25");
  });
});

describe("a database made before migrations 0026, 0027 and 0029 (pg)", () => {
  it("finds the words inside its stored paths, its decomposed accents and its keywords in capitals once migrated, with statistics equal to a recount", async () => {
    const settings = { embeddingDimensions: DIMENSIONS, searchTextConfig: "english" };
    const name = await createDatabase();
    const db = createPgDb(pgUrl(name));
    try {
      await migrateBefore(db, settings, "0026");
      const caller = await callerFor(db, "upgrade");
      await Ingest.run(
        db,
        caller,
        [
          { id: "paths", content: "Client authentication is configured in $PGDATA/pg_hba.conf on the server." },
          { id: "other", content: "Bread rises better in a warm kitchen; knead the dough for ten minutes." },
          { id: "accents", content: "The cafe\u0301 serves cre\u0300me bru\u0302le\u0301e." },
          { id: "window", content: "A window function is called with an OVER clause." },
        ],
        { embedder },
      );
      const keyword = async (query: string) =>
        (
          await Search.query(db, caller, Search.SearchRequest.parse({ query, mode: "keyword" }), { embedder })
        ).results.map((r) => r.documentId);
      // As stored before 0026 (this release's search needs it): the path's words are not in the full-text column.
      const [before] = await db.query<{ n: number }>({
        text: "select count(*)::int as n from chunks where tsv @@ to_tsquery('english', 'hba')",
        params: [],
      });
      expect(before?.n).toBe(0);

      const [accented] = await db.query<{ n: number }>({
        text: "select count(*)::int as n from chunks where tsv @@ to_tsquery('english', $1)",
        params: ["caf\u00e9"],
      });
      expect(accented?.n).toBe(0);

      expect(await migrate(db, settings)).toEqual([
        "0026_words_inside_compounds",
        "0027_options_and_unicode_forms",
        "0029_keywords_in_capitals",
      ]);

      expect(await keyword("pg_hba")).toEqual(["paths"]);
      expect(await keyword("caf\u00e9 cr\u00e8me")).toEqual(["accents"]);
      expect(await keyword("the OVER clause")).toEqual(["window"]);
      expect(await termStatistics(db)).toEqual(await termRecount(db));
      // The row trigger on the turns before, dropped with the column, is there again.
      const triggers = await db.query<{ tgname: string }>({
        text: "select tgname from pg_trigger where tgrelid = 'chunks'::regclass and tgname = 'chunks_terms_moved'",
        params: [],
      });
      expect(triggers).toHaveLength(1);
    } finally {
      await db.close();
      await dropDatabase(name);
    }
  }, 120_000);
});
