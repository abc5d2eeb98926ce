/**
 * A conversation's turn is embedded after the turns before it (docs/search.md, "Conversation turns"), on every
 * driver: which turns (this request's, then the stored ones, in the caller's own conversation only), kept beside
 * the chunk so a re-embedding embeds the same text, and an answer found by the question it answers.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countingDb } from "../../bench/support";
import type { Caller } from "../../core/auth";
import { embeddingText, PRECEDING_TURN_CHARS, precedingText } from "../../core/chunk/context";
import { contentHash } from "../../core/chunk/hash";
import * as Cleanup from "../../core/cleanup";
import { setConfig } from "../../core/config";
import type { Db } from "../../core/db";
import { migrate } from "../../core/db/migrate";
import { createPgDb } from "../../core/db/pg";
import * as Document from "../../core/document";
import type { Embedder } from "../../core/embedding";
import { createOfflineEmbedder } from "../../core/embedding/offline";
import * as Reembed from "../../core/embedding/reembed";
import * as Ingest from "../../core/ingest";
import { CONTEXT_DROPPED } from "../../core/ingest/turns";
import * as Search from "../../core/search";
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

const embedder = createOfflineEmbedder({ dimensions: DIMENSIONS });

async function preceding(db: Db, owner: string, id: string): Promise<string> {
  const rows = await db.query<{ p: string }>(sql`
    select c.preceding as p from chunks c join documents d on d.key = c.document_key
    where d.id = ${id} and d.owner = ${owner} and c.ordinal = 0`);
  expect(rows, `no first chunk for ${owner}/${id}`).toHaveLength(1);
  return rows[0]?.p as string;
}

const turn = (id: string, content: string, conversationId = "trip") => ({ id, content, conversationId });

beforeAll(() => setConfig({ LOG_LEVEL: "silent", SEARCH_QUERY_CACHE_TTL_SECONDS: "0" }));

describe("the text of the turns before", () => {
  it("keeps the last two, oldest first, one line each, each cut to its limit", () => {
    const long = `word ${"x".repeat(PRECEDING_TURN_CHARS * 2)}`;
    expect(precedingText(["one", "two\n  lines", "three"])).toBe("two lines\nthree");
    expect(precedingText([long])).toBe(`${long.slice(0, PRECEDING_TURN_CHARS)}…`);
    // Ingest reads stored turns back cut to one character more than kept: the same text as the whole turn.
    expect(precedingText([long.slice(0, PRECEDING_TURN_CHARS + 1)])).toBe(precedingText([long]));
    expect(precedingText([long.slice(0, PRECEDING_TURN_CHARS)])).toBe(long.slice(0, PRECEDING_TURN_CHARS));
    expect(precedingText([])).toBe("");
    expect(embeddingText("Title", "Answer.", "Question?")).toBe("Title\n\nQuestion?\n\nAnswer.");
    expect(embeddingText("", "Answer.")).toBe("Answer.");
  });
});

describe.each(DRIVERS)("conversation turns on %s", (driver) => {
  let t: TestDb;
  let maya: Caller;
  let leo: Caller;

  beforeAll(async () => {
    t = await freshDb(driver);
    maya = await callerFor(t.db, "friends", "maya");
    leo = { ...maya, userId: "leo" };
  }, 120_000);
  afterAll(() => t?.close());

  it("embeds a turn after the turns before it: this request's, then the stored ones of the same conversation", async () => {
    await Ingest.run(
      t.db,
      maya,
      [
        turn("t1", "Leo: Are you still going to Lisbon?"),
        { id: "note", content: "A note outside any conversation." },
        turn("other1", "Priya: Is the flat sale done?", "house"),
        turn("t2", "Maya: Yes, flights booked for May."),
        turn("t3", "Leo: Window seat?"),
      ],
      { embedder },
    );
    await Ingest.run(t.db, maya, [turn("t4", "Maya: Always.")], { embedder });
    // Another owner's conversation of the same name is another conversation.
    await Ingest.run(t.db, leo, [turn("x1", "Leo: Mine is a different trip.")], { embedder });

    expect(await preceding(t.db, "maya", "t1")).toBe("");
    expect(await preceding(t.db, "maya", "note")).toBe("");
    expect(await preceding(t.db, "maya", "other1")).toBe("");
    expect(await preceding(t.db, "maya", "t2")).toBe("Leo: Are you still going to Lisbon?");
    expect(await preceding(t.db, "maya", "t3")).toBe(
      "Leo: Are you still going to Lisbon?\nMaya: Yes, flights booked for May.",
    );
    expect(await preceding(t.db, "maya", "t4")).toBe("Maya: Yes, flights booked for May.\nLeo: Window seat?");
    expect(await preceding(t.db, "leo", "x1")).toBe("");
  });

  it("leaves a document of several chunks as it is: a transcript or a report has its own context", async () => {
    const report = Array.from({ length: 400 }, (_, i) => `Paragraph ${i} of the trip report, with its own words.`);
    await Ingest.run(t.db, maya, [turn("report", report.join("\n\n")), turn("t5", "Leo: Nice report.")], {
      embedder,
    });

    const rows = await t.db.query<{ p: string }>(sql`
      select c.preceding as p from chunks c join documents d on d.key = c.document_key
      where d.id = 'report' and d.owner = 'maya'`);
    expect(rows.length).toBeGreaterThan(1);
    expect(rows.every((r) => r.p === "")).toBe(true);
    // The report is not a turn: the turn after it follows the two turns before the report.
    expect(await preceding(t.db, "maya", "t5")).toBe("Leo: Window seat?\nMaya: Always.");
  });

  it("gives a turn moved to another conversation the turns of that one", async () => {
    await Ingest.run(
      t.db,
      maya,
      [turn("h1", "Priya: The survey is booked.", "house"), turn("h2", "Maya: Great.", "house")],
      { embedder },
    );
    await Ingest.run(t.db, maya, [turn("h3", "Priya: Keys on Friday!", "house")], { embedder });
    const inHouse = await preceding(t.db, "maya", "h3");
    await Ingest.run(t.db, maya, [turn("h3", "Priya: Keys on Friday!", "trip")], { embedder });

    expect(inHouse).toBe("Priya: The survey is booked.\nMaya: Great.");
    expect(await preceding(t.db, "maya", "h3")).toMatch(/\nLeo: Nice report\.$/);
  });

  it("stores the hash of the text it embedded, so the same turns sent again embed nothing", async () => {
    const rows = await t.db.query<{ context: string; content: string; preceding: string; hash: string }>(sql`
      select c.context, c.content, c.preceding, c.content_hash as hash from chunks c
      join documents d on d.key = c.document_key where d.id = 't3' and d.owner = 'maya'`);
    const row = rows[0] as (typeof rows)[0];
    expect(row.hash).toBe(contentHash(embeddingText(row.context, row.content, row.preceding)));

    const again = await Ingest.run(
      t.db,
      maya,
      [turn("t1", "Leo: Are you still going to Lisbon?"), turn("t2", "Maya: Yes, flights booked for May.")],
      { embedder },
    );
    expect(again.documents.map((d) => d.status)).toEqual(["unchanged", "unchanged"]);
    expect(again.totals.embedded).toBe(0);
  });

  it("gives an edited turn the turns stored before it, not the latest ones", async () => {
    await Ingest.run(t.db, maya, [turn("t3", "Leo: Aisle seat this time?")], { embedder });

    expect(await preceding(t.db, "maya", "t3")).toBe(
      "Leo: Are you still going to Lisbon?\nMaya: Yes, flights booked for May.",
    );
  });

  it("gives a long turn the same text whether it came in the same request or was stored", async () => {
    const long = `Leo: ${"a long story,\n  told slowly ".repeat(40)}— and the end.`;
    await Ingest.run(t.db, maya, [turn("l1", long, "long"), turn("l2", "Maya: Wow.", "long")], { embedder });
    await Ingest.run(t.db, maya, [turn("l3", "Maya: Go on.", "long-2")], { embedder });
    await Ingest.run(t.db, maya, [turn("m1", long, "long-2")], { embedder });
    await Ingest.run(t.db, maya, [turn("m2", "Maya: Wow.", "long-2")], { embedder });

    expect(await preceding(t.db, "maya", "l2")).toBe(precedingText([long]));
    expect(await preceding(t.db, "maya", "m2")).toBe(precedingText(["Maya: Go on.", long]));
  });

  it("reads the stored turns in the same round trip as the stored documents: no more trips than loose documents", async () => {
    const counted = countingDb(t.db);
    const docs = (prefix: string, conversationId?: string) =>
      Array.from({ length: 5 }, (_, i) => ({
        id: `${prefix}${i}`,
        content: `Turn ${i} of ${prefix}.`,
        conversationId,
      }));
    // Through the counting Db first: what a process looks up once per database is then behind it.
    await Ingest.run(counted, maya, docs("rt-a", "round-trips"), { embedder });
    counted.roundTrips = 0;

    await Ingest.run(counted, maya, docs("rt-b", "round-trips"), { embedder });
    const turns = counted.roundTrips;
    counted.roundTrips = 0;
    await Ingest.run(counted, maya, docs("rt-c"), { embedder });

    expect(turns).toBe(counted.roundTrips);
    expect(await preceding(t.db, "maya", "rt-b0")).toBe("Turn 3 of rt-a.\nTurn 4 of rt-a.");
    expect(await preceding(t.db, "maya", "rt-b2")).toBe("Turn 0 of rt-b.\nTurn 1 of rt-b.");
  });

  /** Each first chunk's (document id, its context, its model), in the conversation's order. */
  const turnsOf = async (conversation: string) =>
    (
      await t.db.query<{ id: string; p: string; m: string }>(sql`
        select d.id, c.preceding as p, c.embedding_model as m from chunks c join documents d on d.key = c.document_key
        where d.owner = 'maya' and d.conversation_id = ${conversation} and c.ordinal = 0 order by d.key`)
    ).map((r) => `${r.id}|${r.p ? "ctx" : "-"}|${r.m === CONTEXT_DROPPED ? "dropped" : "kept"}`);
  const secrets = (conversation: string) =>
    ["Leo: Can you keep a secret?", "Maya: My PIN is 4417.", "Leo: Noted.", "Maya: Tell nobody.", "Leo: Sure."].map(
      (content, i) => turn(`${conversation}-${i}`, content, conversation),
    );
  const unfinishedRun = async () =>
    (
      await t.db.query<{ n: number }>(sql`
      select count(*)::int as n from embedding_state where tenant_id = ${maya.tenantId} and finished_at is null`)
    )[0]?.n;

  it.each([
    ["hard", true],
    ["soft", false],
  ] as const)(
    "drops a %s-deleted turn's text from the two turns after it, and takes their vectors out of search",
    async (_, hard) => {
      const name = `del-${hard ? "hard" : "soft"}`;
      await Ingest.run(t.db, maya, secrets(name), { embedder });

      await Document.remove(t.db, maya, `${name}-1`, { hard });

      expect(await turnsOf(name)).toEqual([
        `${name}-0|-|kept`,
        ...(hard ? [] : [`${name}-1|ctx|kept`]),
        `${name}-2|-|dropped`,
        `${name}-3|-|dropped`,
        `${name}-4|ctx|kept`,
      ]);
      const stored = await t.db.query<{ n: number }>(sql`
      select count(*)::int as n from chunks c join documents d on d.key = c.document_key
      where d.conversation_id = ${name} and d.deleted_at is null and c.preceding like '%4417%'`);
      expect(stored[0]?.n).toBe(0);
      const found = await Search.query(
        t.db,
        maya,
        Search.SearchRequest.parse({ query: "PIN 4417", mode: "vector", topK: 50, filter: { conversationId: name } }),
        { embedder },
      );
      expect(found.results.map((r) => r.documentId)).not.toContain(`${name}-2`);
      expect(await unfinishedRun()).toBe(1);

      await Reembed.run(t.db, { tenantId: maya.tenantId, embedder });

      expect(await turnsOf(name)).toEqual([
        `${name}-0|-|kept`,
        ...(hard ? [] : [`${name}-1|ctx|kept`]),
        `${name}-2|-|kept`,
        `${name}-3|-|kept`,
        `${name}-4|ctx|kept`,
      ]);
      expect(await unfinishedRun()).toBe(0);
    },
  );

  it("re-embeds only the turns whose context it dropped, not the tenant's chunks of a model it has not moved to", async () => {
    // Stored under another model (the one configured before), with no `engram reembed` run since.
    const switched = await callerFor(t.db, "switched", "maya");
    const before: Embedder = { ...embedder, model: "model-before" };
    await Ingest.run(t.db, switched, secrets("sw"), { embedder: before });
    await Ingest.run(t.db, switched, [{ id: "manual", content: "Loose notes of another model, ten of them." }], {
      embedder: before,
    });
    const byModel = async () =>
      Object.fromEntries(
        (
          await t.db.query<{ m: string; n: number }>(sql`
            select embedding_model as m, count(*)::int as n from chunks where tenant_id = ${switched.tenantId} group by 1`)
        ).map((r) => [r.m, r.n]),
      );

    await Document.remove(t.db, switched, "sw-1", { hard: true });
    let embedded = 0;
    const counting: Embedder = {
      ...embedder,
      embed: (texts, options) => {
        embedded += texts.length;
        return embedder.embed(texts, options);
      },
    };
    await Reembed.continueUnfinished(t.db, counting, { budgetMs: 60_000 });

    expect(embedded).toBe(2);
    expect(await byModel()).toEqual({ "model-before": 3, [embedder.model]: 2 });
    // The operator's run, when it comes, moves the rest.
    await Reembed.run(t.db, { tenantId: switched.tenantId, embedder: counting });
    expect(await byModel()).toEqual({ [embedder.model]: 5 });
  });

  /** An embedder that waits, on its first call, until `release` is called: an ingest held between its read and its write. */
  function paused() {
    let release = () => {};
    let reached = () => {};
    const waiting = new Promise<void>((resolve) => (reached = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    const held: Embedder = {
      ...embedder,
      async embed(texts, options) {
        if (++calls === 1) {
          reached();
          await released;
        }
        return embedder.embed(texts, options);
      },
    };
    return { held, waiting, release, calls: () => calls };
  }

  it.each([
    ["hard-deleted", "hard"],
    ["soft-deleted", "soft"],
    ["edited", "edit"],
  ] as const)(
    "keeps a turn %s while the turn after it was being embedded out of that turn's context",
    async (_, change) => {
      const name = `race-${change}`;
      await Ingest.run(t.db, maya, secrets(name).slice(0, 2), { embedder });
      const next = paused();
      const writing = Ingest.run(t.db, maya, [turn(`${name}-2`, `Leo: Noted (${change}).`, name)], {
        embedder: next.held,
      });
      await next.waiting;

      if (change === "edit") await Ingest.run(t.db, maya, [turn(`${name}-1`, "Maya: Never mind.", name)], { embedder });
      else await Document.remove(t.db, maya, `${name}-1`, { hard: change === "hard" });
      next.release();
      await writing;

      // Planned before the change, the turn was written after it: planned again, with the turns as they are now.
      expect(next.calls()).toBe(2);
      expect(await preceding(t.db, "maya", `${name}-2`)).toBe(
        change === "edit" ? "Leo: Can you keep a secret?\nMaya: Never mind." : "Leo: Can you keep a secret?",
      );
      const kept = await t.db.query<{ n: number }>(sql`
        select count(*)::int as n from chunks c join documents d on d.key = c.document_key
        where d.conversation_id = ${name} and d.deleted_at is null and c.preceding like '%4417%'`);
      expect(kept[0]?.n).toBe(0);
    },
  );

  it("drops an edited turn's old text from the turns after it, and an expired turn's when the cleanup purges it", async () => {
    await Ingest.run(t.db, maya, secrets("edit"), { embedder });
    await Ingest.run(t.db, maya, secrets("expire"), { embedder });

    await Ingest.run(t.db, maya, [turn("edit-1", "Maya: Never mind.", "edit")], { embedder });

    expect(await turnsOf("edit")).toEqual([
      "edit-0|-|kept",
      "edit-1|ctx|kept",
      "edit-2|-|dropped",
      "edit-3|-|dropped",
      "edit-4|ctx|kept",
    ]);
    // The keyword leg indexes the turns before (migrations/0021): its statistics follow the text dropped.
    expect(await termStatistics(t.db)).toEqual(await termRecount(t.db));

    await t.db.query(sql`update documents set expires_at = now() - interval '1 second' where id = 'expire-1'`);
    await Cleanup.run(t.db);
    expect(await termStatistics(t.db)).toEqual(await termRecount(t.db));

    // The cleanup also continues the re-embedding it finds begun: the turns after are then back in search.
    expect(await turnsOf("expire")).toEqual([
      "expire-0|-|kept",
      "expire-2|-|kept",
      "expire-3|-|kept",
      "expire-4|ctx|kept",
    ]);
    expect(await turnsOf("edit")).toEqual([
      "edit-0|-|kept",
      "edit-1|ctx|kept",
      "edit-2|-|kept",
      "edit-3|-|kept",
      "edit-4|ctx|kept",
    ]);
    await Reembed.run(t.db, { tenantId: maya.tenantId, embedder });
  });

  it("re-embeds a turn with the same text ingest embedded", async () => {
    const seen: string[] = [];
    const next: Embedder = {
      ...embedder,
      model: "next-model",
      async embed(texts, options) {
        seen.push(...texts);
        return embedder.embed(texts, options);
      },
    };
    const other = await callerFor(t.db, "reembed", "sam");
    await Ingest.run(t.db, other, [turn("q", "Sam: Which city?"), turn("a", "Ana: Porto.")], { embedder });

    await Reembed.run(t.db, { tenantId: other.tenantId, embedder: next });

    expect(seen).toContain("Sam: Which city?\n\nAna: Porto.");
  });

  it("finds an answer that repeats none of the question's words by the turn that asked it", async () => {
    const answer = "Maya: Mostly abstract painting, big canvases in the spare room.";
    const filler = [
      "Priya: The bakery on the corner closed for the winter.",
      "Leo: My greyhound chewed the sofa cushions again.",
      "Priya: I started a pottery class on Thursdays.",
      "Leo: The train to Leeds was delayed by an hour.",
    ];
    const ask = "Leo: What kind of art do you make these days?";
    const query = "What kind of art does Maya make?";
    // The same turns as a conversation, and as loose documents in a space of their own.
    const inConversation = await callerFor(t.db, "art-conversation", "maya");
    const loose = await callerFor(t.db, "art-loose", "maya");
    const docs = [...filler.map((content, i) => ({ id: `f${i}`, content })), { id: "ask", content: ask }];
    await Ingest.run(
      t.db,
      inConversation,
      [...docs, { id: "answer", content: answer }].map((d) => ({ ...d, conversationId: "catch-up" })),
      { embedder },
    );
    await Ingest.run(t.db, loose, [...docs, { id: "answer", content: answer }], { embedder });
    const rank = async (caller: Caller) => {
      const { results } = await Search.query(
        t.db,
        caller,
        Search.SearchRequest.parse({ query, mode: "vector", topK: 10 }),
        { embedder },
      );
      return results.findIndex((r) => r.documentId === "answer");
    };

    const withTurns = await rank(inConversation);
    const without = await rank(loose);
    expect(withTurns).toBeGreaterThanOrEqual(0);
    expect(withTurns).toBeLessThanOrEqual(1);
    expect(without).toBeGreaterThan(withTurns);

    // The keyword leg finds it too, through the words of the turn before it, below the turn that holds them.
    const keyword = async (caller: Caller) =>
      (
        await Search.query(t.db, caller, Search.SearchRequest.parse({ query: "What kind of art?", mode: "keyword" }), {
          embedder,
        })
      ).results.map((r) => r.documentId);
    expect(await keyword(inConversation)).toEqual(["ask", "answer"]);
    expect(await keyword(loose)).toEqual(["ask"]);
  });
});

describe("a database made before migration 0021 (pg)", () => {
  it("indexes its stored turns' turns before for the keyword leg, with statistics equal to a recount", async () => {
    const settings = { embeddingDimensions: DIMENSIONS, searchTextConfig: "english" };
    const name = await createDatabase();
    const db = createPgDb(pgUrl(name));
    try {
      await migrateBefore(db, settings, "0021");
      const caller = await callerFor(db, "upgrade", "maya");
      const loose = await callerFor(db, "upgrade", "leo");
      await Ingest.run(
        db,
        caller,
        [turn("ask", "Leo: What kind of art?"), turn("answer", "Maya: Abstract painting.")],
        {
          embedder,
        },
      );
      await Ingest.run(db, loose, [{ id: "note", content: "Leo: Art class on Monday." }], { embedder });
      const keyword = async (who: Caller) =>
        (
          await Search.query(db, who, Search.SearchRequest.parse({ query: "kind of art", mode: "keyword" }), {
            embedder,
          })
        ).results.map((r) => r.documentId);
      // Searched as stored before 0021 (this release's search needs the migrations after it): the turns before are
      // not in the full-text column.
      const matching = async (word: string) =>
        (
          await db.query<{ id: string }>({
            text: "select d.id from chunks c join documents d on d.key = c.document_key where c.tsv @@ to_tsquery('english', $1) order by d.id",
            params: [word],
          })
        ).map((r) => r.id);
      expect(await matching("art")).toEqual(["ask", "note"]);

      // 0021 and the migrations after it.
      expect((await migrate(db, settings))[0]).toBe("0021_turns_in_keyword_leg");

      expect(await keyword(caller)).toEqual(["ask", "answer"]);
      expect(await keyword(loose)).toEqual(["note"]);
      expect(await termStatistics(db)).toEqual(await termRecount(db));
      // The release before this one drops a turn's text from the turns after it with a plain update: the statistics
      // follow it too (a row trigger on the column, not only the code of this release).
      await db.query(sql`update chunks set preceding = '' where preceding <> ''`);
      expect(await keyword(caller)).toEqual(["ask"]);
      expect(await termStatistics(db)).toEqual(await termRecount(db));
    } finally {
      await db.close();
      await dropDatabase(name);
    }
  }, 120_000);
});
