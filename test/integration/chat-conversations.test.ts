/** The conversation routes: list, read and delete the caller's own conversations, and nobody else's. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "../../core/auth";
import * as Auth from "../../core/auth";
import * as Chat from "../../core/chat";
import { ChatRequest } from "../../core/chat/schema";
import { setConfig } from "../../core/config";
import * as Conversation from "../../core/conversation";
import { useDb } from "../../core/db";
import { useEmbedder } from "../../core/embedding";
import { createOfflineEmbedder } from "../../core/embedding/offline";
import * as Ingest from "../../core/ingest";
import { afterRead, callerFor, freshDb, type TestDb } from "../../kit/db";
import { invoke } from "../../kit/events";

setConfig({
  EMBEDDING_PROVIDER: "offline",
  CHAT_PROVIDER: "extractive",
  RATE_LIMIT_CHAT: "100000/min",
  RATE_LIMIT_DEFAULT: "100000/min",
  LOG_LEVEL: "silent",
});
useEmbedder(createOfflineEmbedder({ dimensions: 1536 }));

// Production runs the Neon HTTP driver; the local server and the CLI run pg.
describe.each(["pg", "neon-http"] as const)("conversations on %s", (driver) => {
  let t: TestDb;
  let key: string;
  let otherTenantKey: string;
  let shared: Caller;

  beforeAll(async () => {
    t = await freshDb(driver);
    useDb(t.db);
    key = (await Auth.createKey(t.db, "acme")).key;
    otherTenantKey = (await Auth.createKey(t.db, "globex")).key;
    shared = await callerFor(t.db, "acme");
    await Ingest.run(t.db, shared, [
      { id: "refunds", title: "Refund policy", content: "Customers can request a refund within 30 days of purchase." },
    ]);
  });
  afterAll(() => t?.close());

  const as = (userId?: string, tenantKey = key) => ({
    authorization: `Bearer ${tenantKey}`,
    ...(userId ? { "x-user-id": userId } : {}),
  });
  const ask = async (content: string, userId = "alice", conversationId?: string) => {
    const res = await invoke({
      method: "POST",
      path: "/v1/chat",
      headers: as(userId),
      body: { messages: [{ role: "user", content }], ...(conversationId ? { conversationId } : {}) },
    });
    expect(res.status).toBe(200);
    return res.body.conversationId as string;
  };

  describe("conversations", () => {
    let ids: string[] = [];

    beforeAll(async () => {
      ids = [];
      for (const q of ["First: refund window?", "Second: refund window?", "Third: refund window?"])
        ids.push(await ask(q, "carol"));
    });

    it("lists the caller's conversations newest first, in pages", async () => {
      const first = await invoke({
        method: "GET",
        path: "/v1/conversations",
        headers: as("carol"),
        query: { limit: "2" },
      });

      expect(first.status).toBe(200);
      expect(first.body.conversations.map((c: { id: string }) => c.id)).toEqual([ids[2], ids[1]]);
      expect(first.body.conversations[0]).toEqual({
        id: ids[2],
        title: "Third: refund window?",
        messageCount: 2,
        createdAt: expect.any(String),
        updatedAt: expect.any(String),
      });
      expect(first.body.nextCursor).toEqual(expect.any(String));

      const second = await invoke({
        method: "GET",
        path: "/v1/conversations",
        headers: as("carol"),
        query: { limit: "2", cursor: first.body.nextCursor },
      });
      expect(second.body.conversations.map((c: { id: string }) => c.id)).toEqual([ids[0]]);
      expect(second.body.nextCursor).toBeNull();
    });

    it("moves a conversation to the top when it gets a new turn", async () => {
      await ask("Fourth: refund window again?", "carol", ids[0]);

      const res = await invoke({ method: "GET", path: "/v1/conversations", headers: as("carol") });

      expect(res.body.conversations.map((c: { id: string }) => c.id)).toEqual([ids[0], ids[2], ids[1]]);
      expect(res.body.conversations[0]).toMatchObject({ title: "First: refund window?", messageCount: 4 });
    });

    it("reads one conversation with its messages and their citations", async () => {
      const res = await invoke({ method: "GET", path: `/v1/conversations/${ids[2]}`, headers: as("carol") });

      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ id: ids[2], title: "Third: refund window?", messageCount: 2 });
      expect(res.body.messages).toEqual([
        {
          role: "user",
          content: "Third: refund window?",
          citations: [],
          model: null,
          usage: null,
          createdAt: expect.any(String),
        },
        {
          role: "assistant",
          content: expect.stringContaining("[1]"),
          citations: [expect.objectContaining({ index: 1, documentId: "refunds", chunkId: expect.any(String) })],
          model: "extractive",
          usage: { promptTokens: 0, completionTokens: 0, embeddingTokens: expect.any(Number) },
          createdAt: expect.any(String),
        },
      ]);
    });

    it("shows no one else's conversations, in lists or by id", async () => {
      const dave = await invoke({ method: "GET", path: "/v1/conversations", headers: as("dave") });
      const shared = await invoke({ method: "GET", path: "/v1/conversations", headers: as() });
      const tenant = await invoke({ method: "GET", path: "/v1/conversations", headers: as("carol", otherTenantKey) });
      for (const res of [dave, shared, tenant]) expect(res.body).toEqual({ conversations: [], nextCursor: null });

      for (const headers of [as("dave"), as(), as("carol", otherTenantKey)]) {
        const get = await invoke({ method: "GET", path: `/v1/conversations/${ids[1]}`, headers });
        const del = await invoke({ method: "DELETE", path: `/v1/conversations/${ids[1]}`, headers });
        expect([get.status, get.body.error.code]).toEqual([404, "conversation.not_found"]);
        expect([del.status, del.body.error.code]).toEqual([404, "conversation.not_found"]);
      }
    });

    it("keeps the shared space's conversations apart from the users'", async () => {
      const sharedId = await invoke({
        method: "POST",
        path: "/v1/chat",
        headers: as(),
        body: { messages: [{ role: "user", content: "Shared: refund window?" }] },
      }).then((res) => res.body.conversationId as string);

      const shared = await invoke({ method: "GET", path: "/v1/conversations", headers: as() });
      const carol = await invoke({ method: "GET", path: `/v1/conversations/${sharedId}`, headers: as("carol") });

      expect(shared.body.conversations.map((c: { id: string }) => c.id)).toEqual([sharedId]);
      expect(carol.status).toBe(404);
    });

    it("deletes a conversation with its messages", async () => {
      const res = await invoke({ method: "DELETE", path: `/v1/conversations/${ids[1]}`, headers: as("carol") });

      expect(res.status).toBe(200);
      expect(res.body).toEqual({ id: ids[1], deleted: true });
      const again = await invoke({ method: "GET", path: `/v1/conversations/${ids[1]}`, headers: as("carol") });
      expect(again.status).toBe(404);
      const chat = await invoke({
        method: "POST",
        path: "/v1/chat",
        headers: as("carol"),
        body: { messages: [{ role: "user", content: "more?" }], conversationId: ids[1] },
      });
      expect(chat.status).toBe(404);
    });

    it("makes a deleted conversation again when a document of it is sent again unchanged, as the first time", async () => {
      const body = {
        documents: [{ id: "note-1042", content: "Asked about order 1042.", conversationId: "support-1" }],
      };
      const ingest = () => invoke({ method: "POST", path: "/v1/ingest", headers: as("ivy"), body });
      expect((await ingest()).body.documents[0].status).toBe("created");
      const gone = await invoke({ method: "DELETE", path: "/v1/conversations/support-1", headers: as("ivy") });
      expect(gone.status).toBe(200);
      expect((await ingest()).body.documents[0].status).toBe("unchanged");
      const again = await invoke({ method: "GET", path: "/v1/conversations/support-1", headers: as("ivy") });
      expect([again.status, again.body.id]).toEqual([200, "support-1"]);
      const chat = await invoke({
        method: "POST",
        path: "/v1/chat",
        headers: as("ivy"),
        body: { messages: [{ role: "user", content: "Which order?" }], conversationId: "support-1" },
      });
      expect(chat.status).toBe(200);
    });

    it("answers 404 to a turn whose conversation was deleted after its history was read, and makes it no more", async () => {
      const id = await ask("What is the refund window?", "rachel");
      const rachel = { ...shared, userId: "rachel" };
      for (const remember of [false, true]) {
        const db = afterRead(t.db, /from conversations c/, () => Conversation.remove(t.db, rachel, id));
        const request = ChatRequest.parse({
          messages: [{ role: "user", content: "Can I get store credit instead?" }],
          conversationId: id,
          remember,
        });
        await expect(Chat.answer(db, rachel, request)).rejects.toMatchObject({ code: "conversation.not_found" });
        await expect(Conversation.get(t.db, rachel, id)).rejects.toMatchObject({ status: 404 });
        // Made again for the second round.
        await Ingest.run(t.db, rachel, [{ content: "A note to reopen it.", conversationId: id }]);
      }
    });

    it("refuses a cursor it did not make", async () => {
      const res = await invoke({
        method: "GET",
        path: "/v1/conversations",
        headers: as("carol"),
        query: { cursor: "nonsense" },
      });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("request.invalid_cursor");
      // Longer than any cursor the API makes: forged too, whichever list it is sent to.
      for (const path of ["/v1/conversations", "/v1/documents"]) {
        const long = await invoke({ method: "GET", path, headers: as("carol"), query: { cursor: "A".repeat(201) } });
        expect([long.status, long.body.error.code]).toEqual([400, "request.invalid_cursor"]);
      }
    });
  });

  describe("a conversation larger than one answer", () => {
    const id = "conv_long";
    const COUNT = 70;
    // 100 KB each: 7 MB in all, over Lambda's 6 MB response.
    const text = (i: number) => `message ${i} ${"x".repeat(100_000)}`;
    let bob: Caller;
    beforeAll(async () => {
      bob = await callerFor(t.db, "acme", "bob");
      for (let start = 0; start < COUNT; start += 10) {
        const messages = Array.from({ length: 10 }, (_, k) => ({
          role: (start + k) % 2 ? ("assistant" as const) : ("user" as const),
          content: text(start + k),
        }));
        await t.db.batch(Conversation.saveTurn(bob, { conversationId: id, title: "Long", messages }));
      }
    });
    const read = (query?: Record<string, string>) =>
      invoke({ method: "GET", path: `/v1/conversations/${id}`, headers: as("bob"), ...(query ? { query } : {}) });
    const numbers = (messages: { content: string }[]) => messages.map((m) => Number(m.content.split(" ")[1]));

    it("answers the newest messages within 4 MB, oldest first, and a cursor that reads the ones before them", async () => {
      const newest = await read();
      const older = await read({ before: newest.body.olderCursor });

      expect(newest.status).toBe(200);
      expect(JSON.stringify(newest.body).length).toBeLessThanOrEqual(Conversation.PAGE_BYTES);
      expect(newest.body.messageCount).toBe(COUNT);
      const first = numbers(newest.body.messages);
      expect(first.at(-1)).toBe(COUNT - 1);
      expect(first).toEqual([...first].sort((a, b) => a - b));
      expect(newest.body.olderCursor).toEqual(expect.any(String));
      expect(older.status).toBe(200);
      expect(older.body.olderCursor).toBeNull();
      expect([...numbers(older.body.messages), ...first]).toEqual(Array.from({ length: COUNT }, (_, i) => i));
    });

    it("answers a conversation that fits whole, with no cursor", async () => {
      const small = await ask("Can I get a refund?", "bob");
      const res = await invoke({ method: "GET", path: `/v1/conversations/${small}`, headers: as("bob") });

      expect(res.body.messages).toHaveLength(2);
      expect(res.body.olderCursor).toBeNull();
    });

    it("refuses a before cursor it did not make", async () => {
      const res = await read({ before: "nonsense" });

      expect([res.status, res.body.error.code]).toEqual([400, "request.invalid_cursor"]);
    });

    it("loads at most 6 MB of history for a turn continuing it, its newest messages", async () => {
      const history = await Conversation.history(t.db, bob, id);
      const bytes = history.reduce((sum, m) => sum + Buffer.byteLength(m.content), 0);

      expect(bytes).toBeLessThanOrEqual(Conversation.HISTORY_BYTES);
      expect(history.length).toBeGreaterThan(50);
      expect(numbers(history).at(-1)).toBe(COUNT - 1);
      expect(
        (
          await invoke({
            method: "POST",
            path: "/v1/chat",
            headers: as("bob"),
            body: { conversationId: id, messages: [{ role: "user", content: "And refunds?" }] },
          })
        ).status,
      ).toBe(200);
    });
  });

  describe("follow-ups", () => {
    beforeAll(async () => {
      await Ingest.run(t.db, shared, [
        { id: "shipping", title: "Shipping", content: "Shipping takes 3 to 5 business days by courier." },
      ]);
    });
    const chat = async (messages: { role: string; content: string }[], conversationId?: string) => {
      const res = await invoke({
        method: "POST",
        path: "/v1/chat",
        headers: as("dave"),
        body: { messages, ...(conversationId ? { conversationId } : {}) },
      });
      expect(res.status).toBe(200);
      return res.body as { message: { content: string }; citations: { documentId: string }[] };
    };

    it("searches a follow-up that names nothing with the user's message before it, stored or sent", async () => {
      const conversationId = await ask("What is the refund window?", "dave");
      const stored = await chat([{ role: "user", content: "Tell me more about that." }], conversationId);
      expect(stored.citations[0]?.documentId).toBe("refunds");
      expect(stored.message.content).toContain("30 days");

      const sent = await chat([
        { role: "user", content: "How long does shipping take?" },
        { role: "assistant", content: "Orders ship within 3 to 5 business days." },
        { role: "user", content: "Tell me more." },
      ]);
      expect(sent.citations[0]?.documentId).toBe("shipping");

      // Alone, it names nothing to answer from.
      const alone = await chat([{ role: "user", content: "Tell me more." }]);
      expect(alone.citations).toEqual([]);
    });

    it("searches a follow-up of a follow-up with the last message before them that says anything", async () => {
      const queryOf = async (messages: { role: "user" | "assistant"; content: string }[], conversationId?: string) =>
        (
          await Chat.prepare(
            t.db,
            await callerFor(t.db, "acme", "dave"),
            ChatRequest.parse({ messages, ...(conversationId ? { conversationId } : {}) }),
          )
        ).query;
      const conversationId = await ask("How long does shipping take?", "dave");
      await chat([{ role: "user", content: "Tell me more." }], conversationId);
      // The stored message before it names nothing itself: the question before that is what it is about.
      expect(await queryOf([{ role: "user", content: "And by air?" }], conversationId)).toBe(
        "And by air?\nHow long does shipping take?",
      );
      expect(
        await queryOf([
          { role: "user", content: "What is the refund window?" },
          { role: "user", content: "Tell me more." },
          { role: "user", content: "And exceptions?" },
        ]),
      ).toBe("And exceptions?\nWhat is the refund window?");
      // A one-word change of topic is the topic: "Tell me more." after "Shipping?" is about shipping.
      expect(
        await queryOf([
          { role: "user", content: "What is the refund window?" },
          { role: "user", content: "Shipping?" },
          { role: "user", content: "Tell me more." },
        ]),
      ).toBe("Tell me more.\nShipping?");
    });
  });
});
