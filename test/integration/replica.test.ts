/**
 * Read replicas (DATABASE_READ_URL, core/db/replica.ts) against a real streaming replica of the test server, a hot
 * standby made with pg_basebackup (kit/replica.ts), through `pg` and the Neon HTTP driver: searches are
 * served by the replica, a caller's search right after its own ingest sees it, a replica lagging past the bound or
 * stopped leaves the answer to the primary without an error, and PGlite with a replica is refused at startup.
 */
import { neonConfig } from "@neondatabase/serverless";
import { sql } from "drizzle-orm";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { Caller } from "../../core/auth";
import * as Auth from "../../core/auth";
import * as Chat from "../../core/chat";
import { ChatRequest } from "../../core/chat/schema";
import { config, setConfig } from "../../core/config";
import { compile, type Db, openDb, type Query, type QueryOptions, useDb } from "../../core/db";
import { migrate } from "../../core/db/migrate";
import { createNeonDb } from "../../core/db/neon";
import { createPgDb } from "../../core/db/pg";
import { DOWN_MS, replicaOf, withReplica } from "../../core/db/replica";
import * as Document from "../../core/document";
import type { DocumentInput } from "../../core/document/schema";
import { useEmbedder } from "../../core/embedding";
import { createOfflineEmbedder } from "../../core/embedding/offline";
import * as Ingest from "../../core/ingest";
import * as Search from "../../core/search";
import { callerFor, createDatabase, DIMENSIONS, dropDatabase, pgUrl } from "../../kit/db";
import { invoke } from "../../kit/events";
import { UNLIMITED } from "../../kit/factories";
import { localFetchEndpoint, type NeonServer, neonConnectionString, startNeonServer } from "../../kit/neon-server";
import { caughtUp, type Replica, startReplica } from "../../kit/replica";

/** `db` with every statement it runs recorded in `log`: its name when it has one (searches: `search_...`), else its text. */
const recording = (db: Db, log: string[]): Db => ({
  ...db,
  query<T>(query: Query, options?: QueryOptions) {
    const { name, text } = compile(query);
    log.push(name ?? text);
    return db.query<T>(query, options);
  },
});
const searches = (log: string[]) => log.filter((statement) => statement.startsWith("search_")).length;

let replica: Replica;
let warnings: string[] = [];

beforeAll(async () => {
  setConfig({ LOG_LEVEL: "warn", ...UNLIMITED });
  useEmbedder(createOfflineEmbedder({ dimensions: DIMENSIONS }));
  replica = await startReplica();
}, 300_000);

afterAll(async () => {
  await replica?.release();
  useEmbedder(undefined);
});

beforeAll(() => {
  const write = process.stderr.write.bind(process.stderr);
  vi.spyOn(process.stderr, "write").mockImplementation((chunk, ...rest) => {
    if (typeof chunk === "string" && chunk.includes('"replica: ')) {
      warnings.push(chunk);
      return true;
    }
    return write(chunk, ...(rest as []));
  });
});
afterEach(() => {
  warnings = [];
});

/** Runs `sql` as the admin on the replica server (pausing and resuming its replay). */
async function onReplicaServer(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: replica.url });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

describe.each(["pg", "neon-http"] as const)("a read replica on %s", (driver) => {
  let database: string;
  /**
   * The primary alone: its writes record no mark, like a write the replica has not replayed yet. Every statement it
   * runs is in `onPrimary`: a search that ran none there was answered by the replica.
   */
  let primary: Db;
  /** The replica's own handle; every statement it runs is in `onReplica`. */
  let standby: Db;
  /** The primary with its replica, as openDb makes it with DATABASE_READ_URL. */
  let db: Db;
  let caller: Caller;
  let neon: NeonServer[] = [];
  const onReplica: string[] = [];
  const onPrimary: string[] = [];
  const searchesOnPrimary = () => searches(onPrimary);

  const doc = (id: string, content: string): DocumentInput => ({ id, content });
  const search = (on: Db, query: string) =>
    Search.query(on, caller, Search.SearchRequest.parse({ query, mode: "keyword", topK: 5 }));
  const ids = (response: Search.SearchResponse) => response.results.map((r) => r.documentId);

  beforeAll(async () => {
    database = await createDatabase();
    let replicaDb: Db;
    if (driver === "pg") {
      primary = createPgDb(pgUrl(database));
      replicaDb = createPgDb(replica.databaseUrl(database));
    } else {
      // One Neon-protocol server in front of each: the driver picks the server by the connection string's port.
      neon = [await startNeonServer(), await startNeonServer({ server: replica.url })];
      neonConfig.fetchEndpoint = localFetchEndpoint;
      primary = createNeonDb(neonConnectionString(database, neon[0]?.port ?? 0));
      replicaDb = createNeonDb(neonConnectionString(database, neon[1]?.port ?? 0));
    }
    primary = recording(primary, onPrimary);
    await migrate(primary, { embeddingDimensions: DIMENSIONS, searchTextConfig: "english" });
    await caughtUp(pgUrl(database), replica.databaseUrl(database));
    standby = recording(replicaDb, onReplica);
    // A generous bound: on a busy machine replay can take more than the default's 100 ms.
    db = withReplica(primary, standby, { waitMs: 2_000 });
    caller = await callerFor(db, "acme");
  }, 120_000);

  afterAll(async () => {
    await db?.close();
    for (const server of neon) await server.close();
    if (database) await dropDatabase(database);
  });

  it("serves searches from the replica, a standby that has not seen what was not replayed", async () => {
    const [row] = await standby.query<{ recovery: boolean }>(sql`select pg_is_in_recovery() as recovery`);
    expect(row?.recovery).toBe(true);
    await Ingest.run(db, caller, [doc("seen", "Quokkas live on Rottnest Island.")]);
    expect(ids(await search(db, "quokkas"))).toEqual(["seen"]); // the replica has it before replay stops
    await onReplicaServer("select pg_wal_replay_pause()");
    try {
      // Written past the replica's back (no mark): only the primary has it.
      await Ingest.run(primary, caller, [doc("unseen", "Quokkas also live near Albany.")]);
      const [replicaBefore, primaryBefore] = [searches(onReplica), searchesOnPrimary()];
      const fromReplica = await search(db, "quokkas");
      expect(ids(fromReplica)).toEqual(["seen"]);
      expect(searches(onReplica)).toBe(replicaBefore + 1);
      expect(searchesOnPrimary()).toBe(primaryBefore);
      expect(ids(await search(primary, "quokkas")).sort()).toEqual(["seen", "unseen"]);
    } finally {
      await onReplicaServer("select pg_wal_replay_resume()");
    }
  });

  it("lets a caller's search right after its own ingest see it, still on the replica", async () => {
    const before = searchesOnPrimary();
    for (let i = 0; i < 8; i++) {
      await Ingest.run(db, caller, [doc(`fresh-${i}`, `Ticket zebra${i} was filed by the night shift.`)]);
      expect(ids(await search(db, `zebra${i}`))).toEqual([`fresh-${i}`]);
    }
    expect(searchesOnPrimary()).toBe(before);
    expect(warnings).toEqual([]);
  });

  it("lets a search see a delete right after it", async () => {
    await Ingest.run(db, caller, [doc("doomed", "The walrus account is closed.")]);
    expect(ids(await search(db, "walrus"))).toEqual(["doomed"]);
    await Document.remove(db, caller, "doomed", { hard: true });
    expect(ids(await search(db, "walrus"))).toEqual([]);
  });

  it("serves chat's retrieval from the replica, and a remembered question to the next turn", async () => {
    await Ingest.run(db, caller, [doc("hours", "The ferry leaves at seven from pier nine.")]);
    const before = searchesOnPrimary();
    const request = ChatRequest.parse({
      messages: [{ role: "user", content: "When does the ferry leave?" }],
      topK: 3,
      remember: true,
    });
    const answer = await Chat.answer(db, caller, request);
    expect(answer.citations.map((c) => c.documentId)).toContain("hours");
    expect(searchesOnPrimary()).toBe(before);
    const next = await Search.query(
      db,
      caller,
      Search.SearchRequest.parse({
        query: "When does the ferry leave?",
        mode: "keyword",
        filter: { conversationId: answer.conversationId },
      }),
    );
    expect(next.results.length).toBeGreaterThan(0);
  });

  it("reads the primary, and logs it, when the replica stays behind the caller's write past the bound", async () => {
    const bounded = withReplica(primary, standby, { waitMs: 200 });
    await onReplicaServer("select pg_wal_replay_pause()");
    try {
      await Ingest.run(bounded, caller, [doc("late", "The yak shaving budget was approved.")]);
      const before = searchesOnPrimary();
      const started = performance.now();
      expect(ids(await search(bounded, "yak"))).toEqual(["late"]); // the paused replica has no "late"
      expect(performance.now() - started).toBeGreaterThanOrEqual(195);
      expect(searchesOnPrimary()).toBe(before + 1);
      expect(warnings.join("")).toContain("behind the tenant's last write");
    } finally {
      await onReplicaServer("select pg_wal_replay_resume()");
    }
    await caughtUp(pgUrl(database), replica.databaseUrl(database));
    const before = searchesOnPrimary();
    expect(ids(await search(bounded, "yak"))).toEqual(["late"]);
    expect(searchesOnPrimary()).toBe(before);
  });

  it("answers searches from the primary without an error while the replica is stopped, then uses it again", async () => {
    await Ingest.run(db, caller, [doc("outage", "The heron camera is offline.")]);
    await replica.stop();
    try {
      const [before, primaryBefore] = [onReplica.length, searchesOnPrimary()];
      expect(ids(await search(db, "heron"))).toEqual(["outage"]);
      expect(searchesOnPrimary()).toBe(primaryBefore + 1);
      expect(warnings.join("")).toContain("replica: unreachable");
      const tried = onReplica.length;
      expect(tried).toBeGreaterThan(before);
      // Left alone for a while: the next searches do not pay for trying it again.
      expect(ids(await search(db, "heron"))).toEqual(["outage"]);
      expect(onReplica.length).toBe(tried);
    } finally {
      await replica.start();
    }
    await caughtUp(pgUrl(database), replica.databaseUrl(database));
    await new Promise((resolve) => setTimeout(resolve, DOWN_MS));
    const before = searchesOnPrimary();
    expect(ids(await search(db, "heron"))).toEqual(["outage"]);
    expect(searchesOnPrimary()).toBe(before);
  }, 180_000);

  it("serves POST /v1/search from the replica, seeing a POST /v1/ingest just before", async () => {
    useDb(db);
    const { key } = await Auth.createKey(db, "acme");
    const headers = { authorization: `Bearer ${key}` };
    const ingested = await invoke({
      method: "POST",
      path: "/v1/ingest",
      headers,
      body: { documents: [doc("api", "The capybara pool opens on Monday.")] },
    });
    expect(ingested.status).toBe(200);
    const before = searchesOnPrimary();
    const found = await invoke({
      method: "POST",
      path: "/v1/search",
      headers,
      body: { query: "capybara", mode: "keyword" },
    });
    expect(found.status).toBe(200);
    expect(found.body.results.map((r: { documentId: string }) => r.documentId)).toEqual(["api"]);
    expect(searchesOnPrimary()).toBe(before);
  });
});

describe("configuring a read replica", () => {
  afterAll(() => {
    setConfig({ LOG_LEVEL: "warn", ...UNLIMITED });
  });

  it("refuses DATABASE_READ_URL with the embedded PGlite at startup, naming the variable", () => {
    expect(() => setConfig({ DATABASE_URL: "", DATABASE_READ_URL: replica.url })).toThrow(
      /DATABASE_READ_URL: a read replica needs a Postgres primary \(set DATABASE_URL\); the embedded PGlite has no replicas/,
    );
    expect(() =>
      setConfig({ DATABASE_URL: replica.url, DATABASE_DRIVER: "pglite", DATABASE_READ_URL: replica.url }),
    ).toThrow(/DATABASE_READ_URL/);
  });

  it("opens the replica once, on the primary's driver", async () => {
    const database = await createDatabase();
    try {
      await caughtUp(pgUrl(database), replica.databaseUrl(database));
      setConfig({ DATABASE_URL: pgUrl(database), DATABASE_READ_URL: replica.databaseUrl(database) });
      const opened = await openDb(config().database);
      const reader = replicaOf(opened);
      expect(reader?.driver).toBe("pg");
      const [row] = (await reader?.query<{ recovery: boolean }>(sql`select pg_is_in_recovery() as recovery`)) ?? [];
      expect(row?.recovery).toBe(true);
      await opened.close();

      setConfig({ DATABASE_URL: pgUrl(database), DATABASE_DRIVER: "neon-http", DATABASE_READ_URL: replica.url });
      const neon = await openDb(config().database);
      expect(neon.driver).toBe("neon-http");
      expect(replicaOf(neon)?.driver).toBe("neon-http");
      await neon.close();
    } finally {
      await dropDatabase(database);
    }
  }, 60_000);
});
