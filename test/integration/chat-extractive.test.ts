/** Chat without a model (the local default) on every driver: extractive answers, citations, stored turns. */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "../../core/auth";
import * as Auth from "../../core/auth";
import { setConfig } from "../../core/config";
import { useDb } from "../../core/db";
import { useEmbedder } from "../../core/embedding";
import { createOfflineEmbedder } from "../../core/embedding/offline";
import * as Ingest from "../../core/ingest";
import { callerFor, DRIVERS, freshDb, type TestDb } from "../../kit/db";
import { invoke } from "../../kit/events";

setConfig({
  EMBEDDING_PROVIDER: "offline",
  CHAT_PROVIDER: "extractive",
  RATE_LIMIT_CHAT: "100000/min",
  RATE_LIMIT_DEFAULT: "100000/min",
  LOG_LEVEL: "silent",
});
useEmbedder(createOfflineEmbedder({ dimensions: 1536 }));

const CORPUS = [
  {
    id: "refunds",
    title: "Refund policy",
    content:
      "Refund policy.\n\nCustomers can request a refund within 30 days of purchase. Refunds are paid back to the original card within five business days. Gift cards cannot be refunded.",
  },
  {
    id: "office",
    title: "Company facts",
    content: "Our office is in Lisbon. The team has twelve people and a dog named Pixel who guards the coffee machine.",
  },
];

function parseEvents(body: string): { event: string; data: any }[] {
  return body
    .split("\n\n")
    .filter((frame) => frame.trim())
    .map((frame) => ({
      event: /^event: (.*)$/m.exec(frame)?.[1] ?? "",
      data: JSON.parse(/^data: (.*)$/m.exec(frame)?.[1] ?? "null"),
    }));
}

describe.each(DRIVERS)("extractive chat on %s", (driver) => {
  let t: TestDb;
  let key: string;
  let alice: Caller;
  const ask = (body: Record<string, unknown>) =>
    invoke({
      method: "POST",
      path: "/v1/chat",
      headers: { authorization: `Bearer ${key}`, "x-user-id": "alice" },
      body,
    });

  beforeAll(async () => {
    t = await freshDb(driver);
    useDb(t.db);
    key = (await Auth.createKey(t.db, "acme")).key;
    alice = await callerFor(t.db, "acme", "alice");
    await Ingest.run(t.db, alice, CORPUS);
  });
  afterAll(() => t?.close());

  it("answers with the best sentences, cited, and stores the turn", async () => {
    const res = await ask({
      messages: [{ role: "user", content: "Within how many days can customers request a refund?" }],
    });

    expect(res.status).toBe(200);
    expect(res.body.model).toBe("extractive");
    expect(res.body.message.content).toContain("Customers can request a refund within 30 days of purchase [1].");
    expect(res.body.message.content).not.toContain("Lisbon");
    expect(res.body.citations).toEqual([
      {
        index: 1,
        documentId: "refunds",
        scope: "user",
        chunkId: expect.any(String),
        title: "Refund policy",
        source: null,
        snippet: expect.stringContaining("Customers can request a refund"),
        score: expect.any(Number),
        location: null,
      },
    ]);
    expect(res.body.usage).toEqual({ promptTokens: 0, completionTokens: 0, embeddingTokens: expect.any(Number) });

    const rows = await t.db.query<{ role: string; model: string | null }>(
      sql`select role, model from messages where conversation_id = ${res.body.conversationId} order by id`,
    );
    expect(rows).toEqual([
      { role: "user", model: null },
      { role: "assistant", model: "extractive" },
    ]);
  });

  it("acknowledges a message to remember that asks nothing, and answers one that also asks", async () => {
    // A user of its own: what it remembers stays out of the other tests' answers.
    await Ingest.run(t.db, await callerFor(t.db, "acme", "remy"), CORPUS);
    const ask = (body: Record<string, unknown>) =>
      invoke({
        method: "POST",
        path: "/v1/chat",
        headers: { authorization: `Bearer ${key}`, "x-user-id": "remy" },
        body,
      });
    const kept = await ask({
      messages: [{ role: "user", content: "Remember: the office dog gets fed at 8:15 by Marta." }],
      remember: true,
    });
    expect(kept.status).toBe(200);
    // Not the passages that share its words ("a dog named Pixel who guards the coffee machine").
    expect(kept.body.message.content).toBe("Noted: I will remember that.");
    expect(kept.body.citations).toEqual([]);

    const asked = await ask({
      messages: [{ role: "user", content: "Remember that I prefer email. Where is the office?" }],
      remember: true,
    });
    expect(asked.body.message.content).toContain("Our office is in Lisbon");
    expect(asked.body.message.content).not.toBe("Noted: I will remember that.");
    // Without remember a statement is searched and answered from the passages, as before.
    const said = await ask({ messages: [{ role: "user", content: "Tell me about the office dog." }] });
    expect(said.body.message.content).toContain("Pixel");
  });

  it("gives the same answer to the same question", async () => {
    const body = { messages: [{ role: "user", content: "Where is the office and who guards the coffee?" }] };
    const first = await ask(body);
    const second = await ask(body);

    expect(second.body.message).toEqual(first.body.message);
    expect(second.body.citations).toEqual(first.body.citations);
  });

  it("answers from a memory that is one short sentence, but never from a fragment of a longer passage", async () => {
    await Ingest.run(t.db, alice, [{ id: "sushi", content: "Maya likes sushi." }]);
    const res = await ask({ messages: [{ role: "user", content: "What food does Maya like?" }] });
    expect(res.body.message.content).toBe("Maya likes sushi [1].");
    const policy = await ask({ messages: [{ role: "user", content: "What is the refund policy for gift cards?" }] });
    expect(policy.body.message.content).toContain("Gift cards cannot be refunded");
    expect(policy.body.message.content).not.toContain("Refund policy.");
  });

  it("answers from the turn that answers, never by quoting the question a turn asked", async () => {
    await Ingest.run(t.db, alice, [
      { id: "car-q", content: "Maya: What car do you drive these days, Leo?", conversationId: "catch-up" },
      { id: "car-a", content: "Leo: A blue Fiesta since June, my old Corsa finally died.", conversationId: "catch-up" },
    ]);

    const res = await ask({ messages: [{ role: "user", content: "What car does Leo drive?" }] });

    expect(res.body.message.content).toContain("Fiesta");
    expect(res.body.message.content).not.toContain("What car do you drive");
    expect(res.body.citations.map((c: { documentId: string }) => c.documentId)).toEqual(["car-a"]);
  });

  it("says the sources do not contain the answer when nothing relevant was found", async () => {
    const res = await ask({ messages: [{ role: "user", content: "What is the boiling point of mercury?" }] });

    expect(res.status).toBe(200);
    expect(res.body.message.content).toBe("The sources do not contain an answer to this question.");
    expect(res.body.citations).toEqual([]);
  });

  it("streams the same answer as events", async () => {
    const res = await ask({ messages: [{ role: "user", content: "Where is the office?" }], stream: true });

    expect(res.status).toBe(200);
    const events = parseEvents(res.body);
    expect(events.map((e) => e.event)).toEqual(["citations", ...events.slice(1, -1).map(() => "delta"), "done"]);
    expect(
      events
        .slice(1, -1)
        .map((e) => e.data.text)
        .join(""),
    ).toBe("Our office is in Lisbon [1].");
    expect(events[0]?.data.citations.map((c: { documentId: string }) => c.documentId)).toEqual(["office"]);
    expect(events.at(-1)?.data).toMatchObject({ model: "extractive", conversationId: expect.stringMatching(/^conv_/) });
  });

  it("says whose space each cited document is in, so a citation opens its own document when ids collide", async () => {
    // Alice has her own `refunds`; the tenant's shared space has one too, which holds the answer.
    const sharedText = "Shared desk: store credit vouchers never expire and can be spent in any branch.";
    await Ingest.run(t.db, await callerFor(t.db, "acme"), [{ id: "refunds", title: "Vouchers", content: sharedText }]);
    const question = { messages: [{ role: "user", content: "Do store credit vouchers expire?" }] };
    const cited = (citations: { documentId: string; scope: string; snippet: string }[]) =>
      citations.find((c) => c.snippet.includes("vouchers"));
    const open = (scope?: string) =>
      invoke({
        method: "GET",
        path: "/v1/documents/refunds",
        headers: { authorization: `Bearer ${key}`, "x-user-id": "alice" },
        query: { track: "false", ...(scope ? { scope } : {}) },
      });

    const res = await ask(question);
    expect(res.status).toBe(200);
    const citation = cited(res.body.citations);
    expect(citation).toMatchObject({ documentId: "refunds", scope: "shared" });
    // Opened with its scope, the citation's document holds its passage; the default read is still alice's own.
    const opened = await open(citation?.scope);
    expect(opened.body).toMatchObject({ scope: "shared", content: sharedText });
    expect((await open()).body.content).not.toContain("vouchers");
    // Alice's own document's citation says so.
    const own = await ask({
      messages: [{ role: "user", content: "Within how many days can customers request a refund?" }],
    });
    expect(own.body.citations[0]).toMatchObject({ documentId: "refunds", scope: "user" });

    // Streamed citations, the stored conversation's, and the Digital Twin route's sources carry it too.
    const streamed = parseEvents((await ask({ ...question, stream: true })).body);
    expect(cited(streamed[0]?.data.citations)).toMatchObject({ documentId: "refunds", scope: "shared" });
    expect(cited(streamed.at(-1)?.data.citations)).toMatchObject({ documentId: "refunds", scope: "shared" });
    const conversation = await invoke({
      method: "GET",
      path: `/v1/conversations/${res.body.conversationId}`,
      headers: { authorization: `Bearer ${key}`, "x-user-id": "alice" },
    });
    expect(cited(conversation.body.messages.at(-1).citations)).toMatchObject({
      documentId: "refunds",
      scope: "shared",
    });
    const compat = await invoke({
      method: "POST",
      path: "/api/chat",
      headers: { authorization: `Bearer ${key}`, "x-user-id": "alice" },
      body: question,
    });
    expect(compat.status).toBe(200);
    expect(compat.body.sources.find((s: { content: string }) => s.content.includes("vouchers"))).toMatchObject({
      id: "refunds",
      scope: "shared",
    });
  });
});
