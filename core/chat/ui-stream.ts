/**
 * A streamed answer in the Vercel AI SDK's UI message stream protocol (`format: "ui-message-stream"`,
 * or `Accept: text/event-stream; format=ui-message-stream`),
 * so a front-end on `useChat` reads Engram's chat directly: the answer as one text part, the sources
 * it used as `source-document` parts (Engram's ids, score and location in `providerMetadata.engram`), every
 * source as a `data-citations` part (replaced at the end by the used ones, so `[n]` markers resolve
 * while text arrives), and the conversation id, model and usage as the message's metadata.
 */
import type { ChatEvent } from "./index";

export const UI_MESSAGE_STREAM_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no",
  "x-vercel-ai-ui-message-stream": "v1",
};

const TEXT = "answer";

/** What `Accept` names to ask for this protocol: the body field's value as a media type parameter. */
export const UI_MESSAGE_STREAM_ACCEPT = "text/event-stream; format=ui-message-stream";

/**
 * Whether an `Accept` header asks for the UI message stream: a `text/event-stream` range with
 * `format=ui-message-stream` and a non-zero q. The AI SDK's own transports send no Accept of their
 * own (docs/contract.md), so this is for clients that set headers rather than body fields.
 */
export function accepted(accept: string | undefined): boolean {
  for (const range of (accept ?? "").split(",")) {
    const [type, ...params] = range.split(";").map((part) => part.trim().toLowerCase());
    if (type !== "text/event-stream") continue;
    const values = new Map(
      params.map((param) => {
        const at = param.indexOf("=");
        return [
          param.slice(0, at).trim(),
          param
            .slice(at + 1)
            .trim()
            .replace(/^"(.*)"$/, "$1"),
        ];
      }),
    );
    if (values.get("format") === "ui-message-stream" && Number(values.get("q") ?? 1) > 0) return true;
  }
  return false;
}

/** The protocol's chunks for Engram's chat events (each becomes one `data:` line). */
export async function* chunks(events: AsyncIterable<ChatEvent>): AsyncGenerator<Record<string, unknown>> {
  yield { type: "start" };
  let open = false;
  for await (const { event, data } of events) {
    if (event === "citations") {
      yield { type: "data-citations", id: "citations", data: data.citations };
    } else if (event === "delta") {
      if (!open) yield { type: "text-start", id: TEXT };
      open = true;
      yield { type: "text-delta", id: TEXT, delta: data.text };
    } else if (event === "done") {
      if (open) yield { type: "text-end", id: TEXT };
      for (const c of data.citations) {
        yield {
          type: "source-document",
          sourceId: `${c.index}`,
          mediaType: "text/plain",
          title: c.title ?? c.documentId,
          providerMetadata: {
            engram: {
              index: c.index,
              documentId: c.documentId,
              scope: c.scope,
              chunkId: c.chunkId,
              snippet: c.snippet,
              score: c.score,
              location: c.location,
            },
          },
        };
      }
      yield { type: "data-citations", id: "citations", data: data.citations };
      const { conversationId, model, usage } = data;
      yield { type: "finish", finishReason: "stop", messageMetadata: { conversationId, model, usage } };
    } else {
      yield { type: "error", errorText: `${data.error.code}: ${data.error.message}` };
    }
  }
}

/** Server-sent events of the protocol: one JSON chunk per `data:` line, then `[DONE]`. */
export async function* frames(events: AsyncIterable<ChatEvent>): AsyncGenerator<string> {
  for await (const chunk of chunks(events)) yield `data: ${JSON.stringify(chunk)}\n\n`;
  yield "data: [DONE]\n\n";
}
