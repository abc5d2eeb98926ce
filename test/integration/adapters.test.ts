/**
 * The adapters against the real libraries and the local server: the AI SDK's generateText (with a
 * model from its own mock provider) calling Engram's tools, useChat's transport reading Engram's
 * UI message stream with the AI SDK's own reader, and LangChain's retriever.
 */
import type { LanguageModelV3GenerateResult } from "@ai-sdk/provider";
import { Document } from "@langchain/core/documents";
import { DefaultChatTransport, generateText, readUIMessageStream, stepCountIs, type UIMessage } from "ai";
import { MockLanguageModelV3 } from "ai/test";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, EngramApiError, type EngramClient } from "../../client";
import { type EngramMessageMetadata, engramChatTransport, engramTools } from "../../client/ai";
import { EngramRetriever } from "../../client/langchain";
import { UI_MESSAGE_STREAM_ACCEPT } from "../../core/chat/ui-stream";
import type { TestDb } from "../../kit/db";
import { type Served, served } from "../../kit/served";

let t: TestDb;
let server: Served["server"];
let key: string;
let engram: EngramClient;

beforeAll(async () => {
  ({ t, key, server } = await served("adapters"));
  engram = createClient({ baseUrl: server.url, apiKey: key, userId: "ada" });
  await engram.ingest({
    documents: [
      {
        id: "refunds",
        title: "Refund policy",
        content: "Refunds are issued within 14 days of a return.",
        metadata: { team: "support" },
      },
      { id: "hours", title: "Opening hours", content: "We are open 9 to 5 on weekdays." },
      {
        id: "handbook",
        title: "Handbook",
        content: "# Security\n\nA lost laptop is reported to the security desk.\fThe desk is on floor two.",
        metadata: { team: "it" },
      },
    ],
  });
});
afterAll(async () => {
  await server?.close();
  await t?.close();
});

const usage = {
  inputTokens: { total: 10, noCache: 10, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: 5, text: 5, reasoning: undefined },
};
const toolCall = (toolName: string, input: object): LanguageModelV3GenerateResult => ({
  content: [{ type: "tool-call", toolCallId: `call-${toolName}`, toolName, input: JSON.stringify(input) }],
  finishReason: { unified: "tool-calls", raw: "tool_calls" },
  usage,
  warnings: [],
});
const text = (value: string): LanguageModelV3GenerateResult => ({
  content: [{ type: "text", text: value }],
  finishReason: { unified: "stop", raw: "stop" },
  usage,
  warnings: [],
});

/** What the model was told of its tool call, in the prompt of the step after it. */
function toolOutputSeen(model: MockLanguageModelV3): unknown {
  const prompt = model.doGenerateCalls[1]?.prompt ?? [];
  const results = prompt.flatMap((m) => (m.role === "tool" ? m.content : []));
  return results.map((part) => (part.type === "tool-result" ? part.output : part))[0];
}

/** generateText with one tool call, then an answer; the model, to read what it was told. */
async function callTool(toolName: string, input: object): Promise<MockLanguageModelV3> {
  const replies = [toolCall(toolName, input), text("Done.")];
  const model = new MockLanguageModelV3({ doGenerate: async () => replies.shift() ?? text("done") });
  await generateText({ model, tools: engramTools(engram), stopWhen: stepCountIs(3), prompt: "Go." });
  return model;
}

describe("Vercel AI SDK", () => {
  it("lets generateText's model search Engram and remember through the tools", async () => {
    const replies = [
      toolCall("searchMemory", { query: "how long do refunds take" }),
      toolCall("remember", { content: "Ada prefers refunds to store credit.", title: "Ada's preference" }),
      text("Refunds take 14 days."),
    ];
    const model = new MockLanguageModelV3({ doGenerate: async () => replies.shift() ?? text("done") });
    const result = await generateText({
      model,
      tools: engramTools(engram),
      stopWhen: stepCountIs(5),
      prompt: "How long do refunds take? Remember that I prefer refunds.",
    });
    expect(result.text).toBe("Refunds take 14 days.");
    const [searched, remembered] = result.steps.flatMap((s) => s.toolResults);
    expect((searched?.output as { documentId: string }[] | undefined)?.[0]?.documentId).toBe("refunds");
    const id = (remembered?.output as { id: string } | undefined)?.id ?? "";
    expect((await engram.documents.get(id)).content).toBe("Ada prefers refunds to store credit.");
    expect((searched?.output as { location: unknown }[] | undefined)?.[0]).toHaveProperty("location", null);
    // The model saw the tools with their JSON schemas: no other key, and the API's ranges.
    const tools = model.doGenerateCalls[0]?.tools ?? [];
    expect(tools.map((tool) => tool.name).sort()).toEqual(["remember", "searchMemory"]);
    const schemas = Object.fromEntries(tools.map((tool) => [tool.name, tool.type === "function" && tool.inputSchema]));
    expect(schemas.remember).toMatchObject({
      additionalProperties: false,
      properties: { title: { type: "string", maxLength: 1000 } },
    });
    expect(schemas.searchMemory).toMatchObject({
      additionalProperties: false,
      properties: { topK: { minimum: 1, maximum: 50 }, query: { maxLength: 2000 } },
    });
  });

  it("gives the model each passage's pages and headings in searchMemory's output", async () => {
    const replies = [toolCall("searchMemory", { query: "lost laptop security desk", topK: 1 }), text("Floor two.")];
    const model = new MockLanguageModelV3({ doGenerate: async () => replies.shift() ?? text("done") });
    const result = await generateText({
      model,
      tools: engramTools(engram),
      stopWhen: stepCountIs(3),
      prompt: "Laptop?",
    });
    const [searched] = result.steps.flatMap((s) => s.toolResults);
    expect(searched?.output).toEqual([
      expect.objectContaining({
        documentId: "handbook",
        scope: "user",
        location: { pages: [1, 2], headings: ["Security"] },
      }),
    ]);
  });

  it("tells the model a refused call as `code: message`, as the MCP tools do", async () => {
    const model = await callTool("remember", { content: " " });
    expect(toolOutputSeen(model)).toEqual({ type: "error-text", value: "document.empty_content: content is empty" });
  });

  it("refuses a key the tool's schema does not list instead of dropping it, told as `code: message` in one line", async () => {
    const searched = await callTool("searchMemory", { query: "refunds", extra: 1 });
    expect(toolOutputSeen(searched)).toEqual({
      type: "error-text",
      value: 'request.invalid: Invalid request: Unrecognized key: "extra"',
    });
    const remembered = await callTool("remember", { content: "Ada likes tea.", importance: 9, ttl: 1 });
    expect(toolOutputSeen(remembered)).toEqual({
      type: "error-text",
      value: 'request.invalid: Invalid request: Unrecognized keys: "importance", "ttl"',
    });
    const found = await engram.search({ query: "Ada likes tea", mode: "keyword" });
    expect(found.results.map((r) => r.content)).not.toContain("Ada likes tea.");
  });

  it("throws the transport's refusal as EngramApiError, reading a key given as a function on every request", async () => {
    let apiKey = "egm_not_a_key";
    const transport = engramChatTransport({ baseUrl: server.url, apiKey: () => apiKey, userId: "ada" });
    const send = () =>
      transport.sendMessages({
        chatId: "chat-3",
        messages: [{ id: "u1", role: "user", parts: [{ type: "text", text: "How long do refunds take?" }] }],
        trigger: "submit-message",
        messageId: undefined,
        abortSignal: undefined,
      });
    const refused = await send().catch((e) => e);
    expect(refused).toBeInstanceOf(EngramApiError);
    expect(refused).toMatchObject({ status: 401, code: "auth.invalid_key", message: "The API key is not valid." });
    apiKey = key;
    let answer = "";
    for await (const message of readUIMessageStream({ stream: await send() })) {
      answer = message.parts.flatMap((p) => (p.type === "text" ? [p.text] : [])).join("");
    }
    expect(answer).toMatch(/14 days/);
  });

  it("refuses an empty userId, given or returned by its function, instead of chatting in the shared space", async () => {
    expect(() => engramChatTransport({ baseUrl: server.url, apiKey: key, userId: "" })).toThrow(TypeError);
    const transport = engramChatTransport({ baseUrl: server.url, apiKey: key, userId: () => "" });
    const refused = await transport
      .sendMessages({
        chatId: "chat-4",
        messages: [{ id: "u1", role: "user", parts: [{ type: "text", text: "Remember my PIN is 1234." }] }],
        trigger: "submit-message",
        messageId: undefined,
        abortSignal: undefined,
      })
      .catch((e) => e);
    expect(refused).toBeInstanceOf(EngramApiError);
    expect(refused).toMatchObject({ status: 0, code: "user.invalid_id" });
  });

  it("streams chat to useChat's transport in the UI message stream protocol, read by the AI SDK's own reader", async () => {
    const transport = engramChatTransport({ baseUrl: server.url, apiKey: key, userId: "ada" });
    const ask = async (messages: UIMessage<EngramMessageMetadata>[]) => {
      const stream = await transport.sendMessages({
        chatId: "chat-1",
        messages,
        trigger: "submit-message",
        messageId: undefined,
        abortSignal: undefined,
      });
      let last: UIMessage<EngramMessageMetadata> | undefined;
      for await (const message of readUIMessageStream<UIMessage<EngramMessageMetadata>>({ stream })) last = message;
      return last as UIMessage<EngramMessageMetadata>;
    };
    const question = (id: string, value: string): UIMessage<EngramMessageMetadata> => ({
      id,
      role: "user",
      parts: [{ type: "text", text: value }],
    });
    const first = await ask([question("u1", "How long do refunds take?")]);
    const answer = first.parts.flatMap((p) => (p.type === "text" ? [p.text] : [])).join("");
    expect(answer).toMatch(/14 days.*\[1\]/s);
    const sources = first.parts.filter((p) => p.type === "source-document");
    expect(sources[0]).toMatchObject({ sourceId: "1", title: "Refund policy" });
    expect(sources[0]?.providerMetadata?.engram).toMatchObject({
      documentId: "refunds",
      scope: "user",
      location: null,
    });
    expect(first.metadata?.conversationId).toEqual(expect.any(String));

    // The next question continues the same conversation on Engram's side.
    const second = await ask([
      question("u1", "How long do refunds take?"),
      first,
      question("u2", "When are you open?"),
    ]);
    expect(second.metadata?.conversationId).toBe(first.metadata?.conversationId);
    const conversation = await engram.conversations.get(first.metadata?.conversationId ?? "");
    expect(conversation.messages.map((m) => m.role)).toEqual(["user", "assistant", "user", "assistant"]);
  });

  it("answers in the UI message stream when Accept asks for it, with no format field (the AI SDK's own transport)", async () => {
    const transport = new DefaultChatTransport({
      api: `${server.url}/v1/chat`,
      headers: { authorization: `Bearer ${key}`, "x-user-id": "ada", accept: UI_MESSAGE_STREAM_ACCEPT },
      prepareSendMessagesRequest: ({ messages }) => ({
        body: {
          messages: messages.map((m) => ({
            role: m.role,
            content: m.parts.map((p) => (p.type === "text" ? p.text : "")).join(""),
          })),
        },
      }),
    });
    const stream = await transport.sendMessages({
      chatId: "chat-2",
      messages: [{ id: "u1", role: "user", parts: [{ type: "text", text: "How long do refunds take?" }] }],
      trigger: "submit-message",
      messageId: undefined,
      abortSignal: undefined,
    });
    let last: UIMessage | undefined;
    for await (const message of readUIMessageStream({ stream })) last = message;
    expect(last?.parts.flatMap((p) => (p.type === "text" ? [p.text] : [])).join("")).toMatch(/14 days/);
    expect(last?.parts.some((p) => p.type === "source-document")).toBe(true);

    // The same request without that Accept is the JSON answer.
    const plain = await fetch(`${server.url}/v1/chat`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${key}`,
        "x-user-id": "ada",
        "content-type": "application/json",
        accept: "text/event-stream",
      },
      body: JSON.stringify({ messages: [{ role: "user", content: "How long do refunds take?" }] }),
    });
    expect([plain.status, plain.headers.get("content-type")]).toEqual([
      200,
      expect.stringMatching(/^application\/json/),
    ]);
    expect((await plain.json()).message.content).toMatch(/14 days/);
  });
});

describe("LangChain.js", () => {
  it("retrieves Engram's passages as Documents with its metadata and score", async () => {
    const retriever = new EngramRetriever({ client: engram, topK: 2, filter: { metadata: { team: "support" } } });
    const docs = await retriever.invoke("refund window");
    expect(docs[0]).toBeInstanceOf(Document);
    expect(docs).toHaveLength(1);
    expect(docs[0]?.pageContent).toContain("14 days");
    expect(docs[0]?.metadata).toMatchObject({
      documentId: "refunds",
      scope: "user",
      team: "support",
      title: "Refund policy",
    });
    expect(docs[0]?.metadata.score).toEqual(expect.any(Number));
    expect(docs[0]?.id).toBe(docs[0]?.metadata.chunkId);
    const [laptop] = await new EngramRetriever({
      client: engram,
      topK: 1,
      filter: { metadata: { team: "it" } },
    }).invoke("lost laptop");
    expect(laptop?.metadata.location).toEqual({ pages: [1, 2], headings: ["Security"] });
  });

  it("keeps a document's own score, title and source, and Engram's fields under `engram`", async () => {
    await engram.ingest({
      documents: [
        {
          id: "review",
          title: "Customer review",
          source: "https://reviews.example/1",
          content: "The parcel arrived two days late.",
          metadata: { team: "reviews", score: 4, title: "Late parcel", source: "crm" },
        },
      ],
    });
    const [doc] = await new EngramRetriever({ client: engram, filter: { metadata: { team: "reviews" } } }).invoke(
      "parcel late",
    );
    expect(doc?.metadata).toMatchObject({ team: "reviews", score: 4, title: "Late parcel", source: "crm" });
    expect(doc?.metadata.documentId).toBe("review");
    expect(doc?.metadata.engram).toMatchObject({
      documentId: "review",
      title: "Customer review",
      source: "https://reviews.example/1",
      score: expect.any(Number),
    });
    expect(doc?.metadata.engram.score).not.toBe(4);
  });

  it("keeps a document's own `engram` key, and puts Engram's fields under the fieldsKey asked for", async () => {
    const own = { team: "owned", engram: { plan: "pro" }, score: 4 };
    await engram.ingest({ documents: [{ id: "owned", content: "The invoice is paid monthly.", metadata: own }] });
    const filter = { metadata: { team: "owned" } };
    const [doc] = await new EngramRetriever({ client: engram, filter }).invoke("invoice paid");
    expect(doc?.metadata).toMatchObject({ ...own, documentId: "owned", scope: "user" });
    const [keyed] = await new EngramRetriever({ client: engram, filter, fieldsKey: "_engram" }).invoke("invoice paid");
    expect(keyed?.metadata).toMatchObject({ ...own, _engram: { documentId: "owned", score: expect.any(Number) } });
    expect(keyed?.metadata._engram.score).not.toBe(4);
  });
});
