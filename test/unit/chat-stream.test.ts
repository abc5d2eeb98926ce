/** Streamed replies through the middleware chain: buffered for API Gateway, live for Lambda response streaming. */
import { PassThrough, type Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import * as UiStream from "../../core/chat/ui-stream";
import { http } from "../../functions/http/chain";
import { type ResponseStreamRuntime, sse, streamingHandler } from "../../functions/http/stream";
import { apiEvent, lambdaContext } from "../../kit/events";

/** Events until `count`, then waits for the signal (a model that keeps talking). */
async function* ticker(count: number, signal: AbortSignal, seen: { aborted: boolean }) {
  for (let i = 1; i <= count; i++) yield { event: "delta", data: { text: `t${i} ` } };
  if (count >= 3) return;
  await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  seen.aborted = true;
  throw signal.reason;
}

function fakeRuntime() {
  const preludes: Record<string, unknown>[] = [];
  const runtime: ResponseStreamRuntime = {
    HttpResponseStream: {
      from(stream: Writable, prelude: Record<string, unknown>) {
        preludes.push(prelude);
        return stream;
      },
    },
  };
  return { runtime, preludes };
}

const read = async (stream: PassThrough) => {
  let text = "";
  for await (const chunk of stream) text += chunk.toString();
  return text;
};

describe("streamed replies", () => {
  const seen = { aborted: false };
  const handler = http({ "GET /v1/health": async ({ signal }) => sse(ticker(3, signal, seen)) });

  it("collect into one server-sent-events body for API Gateway", async () => {
    const result = await handler(apiEvent({ method: "GET", path: "/v1/health" }), lambdaContext());

    expect(result.statusCode).toBe(200);
    expect(result.headers?.["content-type"]).toBe("text/event-stream; charset=utf-8");
    expect(result.headers?.["x-request-id"]).toMatch(/\S/);
    expect(result.body).toBe(
      'event: delta\ndata: {"text":"t1 "}\n\nevent: delta\ndata: {"text":"t2 "}\n\nevent: delta\ndata: {"text":"t3 "}\n\n',
    );
  });

  it("go to Lambda response streaming with status and headers first", async () => {
    const { runtime, preludes } = fakeRuntime();
    const out = new PassThrough();
    const text = read(out);

    await streamingHandler(handler, runtime)(apiEvent({ method: "GET", path: "/v1/health" }), out, lambdaContext());

    expect(preludes).toEqual([
      expect.objectContaining({
        statusCode: 200,
        headers: expect.objectContaining({ "content-type": "text/event-stream; charset=utf-8" }),
      }),
    ]);
    expect(await text).toContain('event: delta\ndata: {"text":"t3 "}');
  });

  it("route a function URL request by its method and path", async () => {
    const event = { ...apiEvent({ method: "GET", path: "/v1/health" }), routeKey: "$default" };
    event.requestContext = { ...event.requestContext, routeKey: "$default" };
    const { runtime } = fakeRuntime();
    const out = new PassThrough();
    const text = read(out);

    await streamingHandler(handler, runtime)(event, out, lambdaContext());

    expect(await text).toContain("t1");
  });

  it("abort the operation's signal when the client of a function URL goes away", async () => {
    const state = { aborted: false };
    const slow = http({ "GET /v1/health": async ({ signal }) => sse(ticker(1, signal, state)) });
    const { runtime } = fakeRuntime();
    const out = new PassThrough();
    out.once("data", () => out.destroy());

    await streamingHandler(slow, runtime)(apiEvent({ method: "GET", path: "/v1/health" }), out, lambdaContext());

    expect(state.aborted).toBe(true);
  });

  it("answer a plain JSON reply through the streaming handler too", async () => {
    const report = {
      status: "ok" as const,
      database: "ok" as const,
      driver: "pglite",
      version: "0.0.0",
      embedder: { provider: "offline", model: "m", dimensions: 64 },
      chat: { provider: "extractive", model: "extractive" },
    };
    const plain = http({ "GET /v1/health": async () => ({ status: 201, body: report }) });
    const { runtime, preludes } = fakeRuntime();
    const out = new PassThrough();
    const text = read(out);

    await streamingHandler(plain, runtime)(apiEvent({ method: "GET", path: "/v1/health" }), out, lambdaContext());

    expect(preludes[0]).toMatchObject({ statusCode: 201 });
    expect(JSON.parse(await text)).toEqual(report);
  });
});

describe("Accept for the AI SDK's UI message stream", () => {
  it("is asked for by a text/event-stream range with format=ui-message-stream, among others, quoted or not", () => {
    for (const accept of [
      UiStream.UI_MESSAGE_STREAM_ACCEPT,
      'application/json;q=0.5, Text/Event-Stream ; Format="ui-message-stream"',
      "text/event-stream;format=ui-message-stream;q=0.2",
    ]) {
      expect(UiStream.accepted(accept), accept).toBe(true);
    }
  });

  it("is not asked for by plain SSE, JSON, anything, another format, q=0 or no header", () => {
    for (const accept of [
      "text/event-stream",
      "application/json",
      "*/*",
      "text/event-stream; format=other",
      "text/event-stream; format=ui-message-stream; q=0",
      "",
      undefined,
    ]) {
      expect(UiStream.accepted(accept), String(accept)).toBe(false);
    }
  });
});
