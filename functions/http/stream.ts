/**
 * Bodies written as they are produced: the reply an operation returns for one (server-sent events),
 * and the handler that pipes it into Lambda response streaming for a function URL. The chain
 * (./chain.ts) hands such a body on; API Gateway's face of it collects the body first.
 */
import { Readable, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import type { HttpHandler, LiveResult } from "./chain";

type Event = APIGatewayProxyEventV2;
type Result = APIGatewayProxyStructuredResultV2;

/** A reply whose body is written as it is produced. */
export interface StreamReply {
  status?: number;
  headers?: Record<string, string>;
  stream: AsyncIterable<string>;
}

/** A result whose body is still being produced (only from `live()`). */
export type StreamingResult = Omit<Result, "body"> & { body: AsyncIterable<string> };

export const isStreaming = (result: LiveResult): result is StreamingResult =>
  typeof result.body === "object" && result.body !== null && Symbol.asyncIterator in result.body;

/** Server-sent events: one `event:` and one JSON `data:` line each. */
export function sse(events: AsyncIterable<{ event: string; data: unknown }>): StreamReply {
  async function* frames() {
    for await (const { event, data } of events) yield `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
  }
  return {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no",
    },
    stream: frames(),
  };
}

/** The part of Lambda's `awslambda` global that response streaming uses (a fake in tests). */
export interface ResponseStreamRuntime {
  HttpResponseStream: { from(stream: Writable, prelude: Record<string, unknown>): Writable };
}

/**
 * The handler for a function URL with `invokeMode: RESPONSE_STREAM` (SST: `url: true,
 * streaming: true`): status and headers first, then the body as it is produced. When the
 * client goes away the response stream closes, which aborts the operation's signal (stopping
 * the model). On Lambda, `runtime` is the `awslambda` global and the result is wrapped in
 * `awslambda.streamifyResponse`; tests pass a fake runtime and stream.
 */
export function streamingHandler(handler: HttpHandler, runtime: ResponseStreamRuntime) {
  return async (event: Event, responseStream: Writable, context: Context): Promise<void> => {
    const controller = new AbortController();
    const gone = () => {
      if (responseStream.writableFinished) return;
      controller.abort(new DOMException("The client disconnected.", "AbortError"));
    };
    responseStream.once("close", gone);
    responseStream.once("error", gone);
    const result = await handler.live(event, context, controller.signal);
    const out = runtime.HttpResponseStream.from(responseStream, {
      statusCode: result.statusCode ?? 200,
      headers: Object.fromEntries(Object.entries(result.headers ?? {}).map(([k, v]) => [k, String(v)])),
      cookies: result.cookies,
    });
    const body = isStreaming(result) ? result.body : [result.body ?? ""];
    // A failed write (client gone) destroys the source, which ends the operation's generator.
    await pipeline(Readable.from(body, { objectMode: false }), out).catch((error) => {
      if (!controller.signal.aborted) throw error;
    });
  };
}
