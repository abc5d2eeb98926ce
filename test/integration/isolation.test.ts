/**
 * Isolation: two tenants with two users each (both tenants have an `alice` and a `bob`) and their
 * shared spaces. Every party tries every route (the MCP tools too) with every other party's document, conversation
 * and chunk ids, with filters and cursors naming them, and with X-User-Id look-alikes. Nothing of
 * another party may come back in any response, be counted or listed, or change in the database.
 *
 * Each party's text carries secrets: `doc` secrets sit in its documents (readable by the party, and
 * by the tenant's users when the party is the shared space), `conv` secrets in its chat questions
 * (readable by the party alone). Every response a party gets is searched for secrets it may not read.
 */
import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as Auth from "../../core/auth";
import { setConfig } from "../../core/config";
import { type Db, type DriverName, useDb } from "../../core/db";
import { useEmbedder } from "../../core/embedding";
import { freshDb, type TestDb } from "../../kit/db";
import { type EventInput, invoke, type Response } from "../../kit/events";
import { prose, UNLIMITED } from "../../kit/factories";

setConfig({
  LOG_LEVEL: "silent",
  EMBEDDING_PROVIDER: "offline",
  CHAT_PROVIDER: "extractive",
  ...UNLIMITED,
});
useEmbedder(undefined);

interface Party {
  name: string;
  tenant: "acme" | "globex";
  tenantId: string;
  /** '' is the tenant's shared space. */
  user: string;
  key: string;
  docSecret: string;
  convSecret: string;
  /** Document ids only this party has. */
  ownIds: string[];
  /** A soft-deleted document of its own. */
  deletedId: string;
  /** Conversations: the one every party has an id for, and one made by chat. */
  conversations: string[];
  chunkIds: string[];
  documentCursor: string;
  conversationCursor: string;
}

/** Both tenants have an alice and a bob; "shared" is the tenant's shared space (no X-User-Id). */
const PARTIES: ["acme" | "globex", string][] = [
  ["acme", "alice"],
  ["acme", "bob"],
  ["acme", "shared"],
  ["globex", "alice"],
  ["globex", "bob"],
  ["globex", "shared"],
];
const SHARED_ID = "common";
const SHARED_CONVERSATION = "conv-common";
const secret = (kind: string) => `${kind}${randomBytes(6).toString("hex")}`;

function headersOf(party: Pick<Party, "key" | "user">, user = party.user): Record<string, string> {
  return { authorization: `Bearer ${party.key}`, ...(user ? { "x-user-id": user } : {}) };
}

/** Whether `reader` may read `owner`'s documents: its own, or its tenant's shared space when it is a user. */
const readsDocuments = (reader: Pick<Party, "tenant" | "user">, owner: Party) =>
  (reader.tenant === owner.tenant && reader.user === owner.user) ||
  (reader.tenant === owner.tenant && owner.user === "" && reader.user !== "");

// Every party attacks on pg; on the Neon HTTP driver (slower, one HTTP round trip a statement) two of them.
// Every party attacks on every driver: production runs the Neon HTTP driver, `npm start` PGlite.
const EVERY_PARTY = PARTIES.map(([tenant, user]) => `${tenant}/${user}`);
describe.each<[DriverName, string[]]>([
  ["pg", EVERY_PARTY],
  ["neon-http", EVERY_PARTY],
  ["pglite", EVERY_PARTY],
])("isolation on %s", (driver, attackers) => {
  let t: TestDb;
  let db: Db;
  const parties: Party[] = [];

  /**
   * Sends with a party's key as `user` (the party's own end user, or another one of its tenant); the
   * response must hold no secret that caller may not read.
   */
  async function as(party: Party, request: Omit<EventInput, "headers">, user = party.user): Promise<Response> {
    // MCP's Streamable HTTP asks clients to accept both JSON and event streams.
    const mcp: Record<string, string> =
      request.path === "/mcp" ? { accept: "application/json, text/event-stream" } : {};
    const res = await invoke({ ...request, headers: { ...headersOf(party, user), ...mcp } });
    expect(res.status, `${request.method} ${request.path}: ${JSON.stringify(res.body)}`).toBeLessThan(500);
    const text = typeof res.body === "string" ? res.body : JSON.stringify(res.body);
    const caller = { tenant: party.tenant, user };
    for (const other of parties) {
      const leaked = `${request.method} ${request.path} as ${party.tenant}/${user || "shared"} leaked ${other.name}`;
      if (!readsDocuments(caller, other)) expect(text, leaked).not.toContain(other.docSecret);
      if (other.tenant !== party.tenant || other.user !== user) expect(text, leaked).not.toContain(other.convSecret);
    }
    return res;
  }

  /** Every row of every party but `except`, as stored (access counts and timestamps included). */
  async function rowsOfOthers(except: Party | undefined): Promise<unknown[]> {
    const others = parties.filter((p) => p !== except);
    const owners = others.map((p) => `${p.tenantId}/${p.user}`);
    const inScope = (alias: string) => sql.raw(`(${alias}.tenant_id::text || '/' || ${alias}.owner)`);
    const scoped = sql`= any(${sql.param(owners)}::text[])`;
    const tables = await Promise.all([
      db.query(sql`select * from documents d where ${inScope("d")} ${scoped} order by key`),
      db.query(
        sql`select c.id, c.document_key, c.ordinal, c.content_hash, c.embedding_model from chunks c where ${inScope("c")} ${scoped} order by c.id`,
      ),
      db.query(sql`select * from conversations c where ${inScope("c")} ${scoped} order by tenant_id, owner, id`),
      db.query(sql`select * from messages m where ${inScope("m")} ${scoped} order by id`),
      db.query(sql`select count(*)::int as n from ingestions i where ${inScope("i")} ${scoped}`),
    ]);
    return tables;
  }

  async function chunkIdsOf(party: Party): Promise<string[]> {
    const rows = await db.query<{ id: string }>(
      sql`select id::text from chunks where tenant_id = ${party.tenantId} and owner = ${party.user} order by id`,
    );
    return rows.map((r) => r.id);
  }

  async function setUp(tenant: Party["tenant"], user: string, key: string, tenantId: string): Promise<Party> {
    const name = `${tenant}/${user || "shared"}`;
    const tag = name.replace(/\W/g, "");
    const party: Party = {
      name,
      tenant,
      tenantId,
      user,
      key,
      docSecret: secret("doc"),
      convSecret: secret("conv"),
      ownIds: [`own-${tag}`, `note-${tag}`],
      deletedId: `gone-${tag}`,
      conversations: [SHARED_CONVERSATION],
      chunkIds: [],
      documentCursor: "",
      conversationCursor: "",
    };
    parties.push(party);
    const text = (i: number) => `The vault code of ${name} is ${party.docSecret}. ${prose(i, 2, 4)} Refund window.`;
    const documents = [SHARED_ID, ...party.ownIds, party.deletedId].map((id, i) => ({
      id,
      title: `${id} ${party.docSecret}`,
      content: text(i),
      metadata: { party: tag, team: "sales", secret: party.docSecret },
      conversationId: SHARED_CONVERSATION,
      importance: 7,
    }));
    const ingested = await as(party, { method: "POST", path: "/v1/ingest", body: { documents } });
    expect(ingested.status).toBe(200);
    expect((await as(party, { method: "DELETE", path: `/v1/documents/${party.deletedId}` })).status).toBe(200);
    // A turn in the conversation every party has, a new conversation, and a remembered question.
    for (const body of [
      {
        messages: [{ role: "user", content: `What is the vault code? ${party.convSecret}` }],
        conversationId: SHARED_CONVERSATION,
      },
      { messages: [{ role: "user", content: `Refund window for ${party.convSecret}?` }] },
    ]) {
      const res = await as(party, { method: "POST", path: "/v1/chat", body });
      expect(res.status).toBe(200);
      if (!body.conversationId) party.conversations.push(res.body.conversationId);
    }
    const remembered = await as(party, {
      method: "POST",
      path: "/v1/chat",
      body: { messages: [{ role: "user", content: `Remember the vault code ${party.docSecret}` }], remember: true },
    });
    expect(remembered.status).toBe(200);
    party.conversations.push(remembered.body.conversationId);
    party.chunkIds = await chunkIdsOf(party);
    const page = await as(party, { method: "GET", path: "/v1/documents", query: { limit: "1" } });
    party.documentCursor = page.body.nextCursor;
    const conversations = await as(party, { method: "GET", path: "/v1/conversations", query: { limit: "1" } });
    party.conversationCursor = conversations.body.nextCursor;
    return party;
  }

  beforeAll(async () => {
    parties.length = 0;
    t = await freshDb(driver);
    db = t.db;
    useDb(db);
    const keys = new Map<string, { key: string; id: string }>();
    for (const tenant of ["acme", "globex"]) {
      const { key } = await Auth.createKey(db, tenant);
      const [row] = await db.query<{ id: string }>(sql`select id::text from tenants where name = ${tenant}`);
      keys.set(tenant, { key, id: row?.id ?? "" });
    }
    for (const [tenant, user] of PARTIES) {
      const { key, id } = keys.get(tenant) as { key: string; id: string };
      await setUp(tenant, user === "shared" ? "" : user, key, id);
    }
  }, 60_000);
  afterAll(() => t?.close());

  /** What the party itself has, straight from the database: the truth its lists and stats must match. */
  async function ownTruth(party: Party, user = party.user) {
    const docs = await db.query<{ id: string; deleted: boolean; chunks: number }>(sql`
      select id, deleted_at is not null as deleted, chunk_count as chunks from documents
      where tenant_id = ${party.tenantId} and owner = ${user}`);
    const conversations = await db.query<{ id: string }>(
      sql`select id from conversations where tenant_id = ${party.tenantId} and owner = ${user}`,
    );
    // A user reading an id it does not have gets the shared document of that id, if there is one.
    const shared = user
      ? await db.query<{ id: string }>(sql`
          select id from documents where tenant_id = ${party.tenantId} and owner = '' and deleted_at is null`)
      : [];
    return {
      readable: [...docs.filter((d) => !d.deleted), ...shared].map((d) => d.id),
      live: docs.filter((d) => !d.deleted).map((d) => d.id),
      all: docs.map((d) => d.id),
      chunks: docs.filter((d) => !d.deleted).reduce((n, d) => n + d.chunks, 0),
      conversations: conversations.map((c) => c.id),
    };
  }

  /** Chunk ids a party may get from search with a scope, with the space each result must name for its document. */
  async function searchable(
    party: Party,
    scope: "all" | "user" | "shared",
    user = party.user,
  ): Promise<Map<string, "user" | "shared">> {
    const owners = scope === "shared" || !user ? [""] : scope === "user" ? [user] : [user, ""];
    const rows = await db.query<{ id: string; scope: "user" | "shared" }>(sql`
      select id::text, case when owner = '' then 'shared' else 'user' end as scope
      from chunks where tenant_id = ${party.tenantId} and owner = any(${sql.param(owners)}::text[])`);
    return new Map(rows.map((r) => [r.id, r.scope]));
  }

  /** Every route, aimed at `victim`'s ids, as `attacker` (or as `attacker` under another X-User-Id). */
  async function attack(attacker: Party, victim: Party, user = attacker.user): Promise<void> {
    const reads = readsDocuments({ tenant: attacker.tenant, user }, victim);
    const truth = await ownTruth(attacker, user);
    const send = (request: Omit<EventInput, "headers">) => as(attacker, request, user);
    const names = [...victim.ownIds, victim.deletedId, ...victim.chunkIds.slice(0, 3)];

    for (const id of names) {
      const path = `/v1/documents/${encodeURIComponent(id)}`;
      // An earlier attack wrote a document of this id in the attacker's space (or its tenant's shared one):
      // that one it may read (its content was checked for secrets by `as`).
      if (truth.readable.includes(id) || truth.all.includes(id)) {
        expect((await send({ method: "GET", path, query: { track: "false" } })).status).toBeLessThan(500);
        continue;
      }
      // Reading a shared document counts an access: readers of the shared space read without tracking. Naming
      // either space (`scope`) reaches no other one.
      const scoped = [{ scope: "user" }, { scope: "shared" }];
      const gets: Record<string, string>[] = reads
        ? [{ track: "false" }, ...scoped.map((query) => ({ ...query, track: "false" }))]
        : [{}, { track: "false" }, ...scoped];
      for (const query of gets) {
        const got = await send({ method: "GET", path, query });
        if (!reads || !victim.ownIds.includes(id))
          expect([id, got.status, got.body.error?.code]).toEqual([id, 404, "document.not_found"]);
      }
      const patched = await send({ method: "PATCH", path, body: { title: "pwned", importance: 1 } });
      expect(patched.status).toBe(404);
      for (const query of [{}, { hard: "true" }] as Record<string, string>[]) {
        expect((await send({ method: "DELETE", path, query })).status).toBe(404);
      }
    }

    // Lists and stats hold the attacker's own, whatever the filter or cursor names.
    const listQueries: Record<string, string>[] = [
      {},
      { includeDeleted: "true" },
      ...victim.conversations.map((conversationId) => ({ conversationId, includeDeleted: "true" })),
      { cursor: victim.documentCursor },
      { cursor: victim.documentCursor, includeDeleted: "true", limit: "100" },
    ];
    for (const query of listQueries) {
      const list = await send({ method: "GET", path: "/v1/documents", query: { limit: "100", ...query } });
      expect(list.status).toBe(200);
      for (const doc of list.body.documents) expect(truth.all).toContain(doc.id);
    }
    const stats = await send({ method: "GET", path: "/v1/stats" });
    expect(stats.body.documents.total).toBe(truth.live.length);
    expect(stats.body.documents.deleted).toBe(truth.all.length - truth.live.length);
    expect(stats.body.chunks).toBe(truth.chunks);
    for (const entry of stats.body.byConversation) expect(truth.conversations).toContain(entry.conversationId);

    for (const query of [{}, { cursor: victim.conversationCursor }] as Record<string, string>[]) {
      const list = await send({ method: "GET", path: "/v1/conversations", query: { limit: "100", ...query } });
      expect(list.status).toBe(200);
      for (const c of list.body.conversations) expect(truth.conversations).toContain(c.id);
    }
    for (const id of victim.conversations) {
      const path = `/v1/conversations/${encodeURIComponent(id)}`;
      const got = await send({ method: "GET", path });
      if (truth.conversations.includes(id)) {
        // The attacker's own conversation of the same id: its own messages only (checked for secrets by `as`).
        expect(got.status).toBe(200);
      } else {
        expect([got.status, got.body.error?.code]).toEqual([404, "conversation.not_found"]);
        expect((await send({ method: "DELETE", path })).status).toBe(404);
        const chat = await send({
          method: "POST",
          path: "/v1/chat",
          body: { messages: [{ role: "user", content: "What is the vault code?" }], conversationId: id },
        });
        expect([chat.status, chat.body.error?.code]).toEqual([404, "conversation.not_found"]);
      }
    }

    // Search and chat, with the victim's secret as the query and filters naming its documents.
    const filters = [
      {},
      { documentIds: names },
      { conversationId: SHARED_CONVERSATION },
      ...victim.conversations.map((conversationId) => ({ conversationId })),
      { metadata: { secret: victim.docSecret } },
      { metadata: { party: victim.name.replace(/\W/g, "") } },
    ];
    for (const scope of ["all", "user", "shared"] as const) {
      const allowed = await searchable(attacker, scope, user);
      for (const [i, filter] of filters.entries()) {
        for (const mode of i === 0 ? ["hybrid", "keyword", "vector"] : ["hybrid"]) {
          const res = await send({
            method: "POST",
            path: "/v1/search",
            body: { query: `vault code ${victim.docSecret}`, topK: 50, mode, scope, filter },
          });
          expect(res.status).toBe(200);
          for (const hit of res.body.results) expect(hit.scope).toBe(allowed.get(hit.chunkId) ?? "not readable");
        }
      }
    }
    const allowed = await searchable(attacker, "all", user);
    for (const [path, filter] of [
      ["/v1/chat", { documentIds: names }],
      ["/api/chat", { metadata: { secret: victim.docSecret } }],
      ["/v1/chat", undefined],
    ] as const) {
      const chat = await send({
        method: "POST",
        path,
        body: { messages: [{ role: "user", content: `What is the vault code of ${victim.name}?` }], filter, topK: 50 },
      });
      expect(chat.status).toBe(200);
      for (const citation of chat.body.citations)
        expect(citation.scope).toBe(allowed.get(citation.chunkId) ?? "not readable");
    }

    // The MCP tools (POST /mcp), aimed the same way: results only from the attacker's scope, the victim's ids not found.
    let rpc = 0;
    const tool = async (name: string, args: Record<string, unknown>) => {
      const body = { jsonrpc: "2.0", id: ++rpc, method: "tools/call", params: { name, arguments: args } };
      const res = await send({ method: "POST", path: "/mcp", body });
      expect(res.status).toBe(200);
      return res.body.result as { isError?: boolean; content: { text: string }[]; structuredContent?: any };
    };
    for (const filter of filters) {
      const found = await tool("search_memory", { query: `vault code ${victim.docSecret}`, topK: 50, filter });
      for (const hit of found.structuredContent.results)
        expect(hit.scope).toBe(allowed.get(hit.chunkId) ?? "not readable");
    }
    const asked = await tool("ask", { question: `What is the vault code of ${victim.name}?`, topK: 50 });
    for (const citation of asked.structuredContent.citations)
      expect(citation.scope).toBe(allowed.get(citation.chunkId) ?? "not readable");
    const listed = await tool("list_memories", { limit: 100 });
    for (const doc of listed.structuredContent.documents) expect(truth.all).toContain(doc.id);
    for (const id of names) {
      if (truth.all.includes(id)) continue;
      for (const hard of [false, true]) {
        const forgot = await tool("forget", { id, hard });
        // Nothing is touched or revealed: a shared memory the attacker's own tenant lets it read is said to be shared
        // and kept; anything else is answered as a memory already forgotten.
        const shared = truth.readable.includes(id) ? { shared: true } : {};
        expect([id, forgot.isError, forgot.structuredContent]).toEqual([
          id,
          undefined,
          { id, deleted: false, hard, ...shared },
        ]);
      }
    }
    const mcpWrite = await tool("remember", {
      id: victim.ownIds[1],
      content: `Overwritten over MCP by ${attacker.name}.`,
    });
    expect(mcpWrite.isError).toBeFalsy();

    // Writes with the victim's ids land in the attacker's own space (checked in the database after).
    for (const path of ["/v1/ingest", "/api/ingest"]) {
      const res = await send({
        method: "POST",
        path,
        body: { documents: [{ id: victim.ownIds[0], content: `Overwritten by ${attacker.name} as ${user}.` }] },
      });
      expect(res.status).toBe(200);
    }
  }

  it.each(attackers)(
    "%s gets nothing of any other party's by any route, and changes nothing of theirs",
    async (name) => {
      const attacker = parties.find((p) => p.name === name) as Party;
      const before = await rowsOfOthers(attacker);
      for (const victim of parties) if (victim !== attacker) await attack(attacker, victim);
      expect(await rowsOfOthers(attacker)).toEqual(before);
    },
    120_000,
  );

  it("X-User-Id look-alikes are refused or are other users, never alice", async () => {
    const alice = parties[0] as Party;
    const refused = [
      " alice",
      "alice ",
      "\talice",
      "alice\n",
      "\u0430lice", // Cyrillic a
      "\uff41\uff4c\uff49\uff43\uff45", // fullwidth
      "alice\u200B",
      "alice\u0000",
      "al\u0130ce",
      "al\u0131ce",
      "alice,bob",
      "alice;",
      "alice/",
      "%61lice",
      "",
      "a".repeat(129),
    ];
    for (const user of refused) {
      const res = await invoke({
        method: "GET",
        path: "/v1/documents",
        headers: { authorization: `Bearer ${alice.key}`, "x-user-id": user },
      });
      expect([user, res.status, res.body.error?.code]).toEqual([user, 400, "user.invalid_id"]);
    }
    // Valid ids that merely look like alice are other people: they see nothing of hers and change nothing.
    const others = ["ALICE", "alice.", "Alice", "alice..", ".alice", "alice:", "alice@", "alice-", "a".repeat(128)];
    for (const user of driver === "pg" ? others : others.slice(0, 2)) {
      const before = await rowsOfOthers(undefined);
      await attack(alice, alice, user);
      expect(await rowsOfOthers(undefined), user).toEqual(before);
    }
  }, 120_000);
});
