/**
 * Chat: `POST /v1/chat` and the Digital Twin's `POST /api/chat`.
 *
 * `handler` serves API Gateway, which cannot stream: a `stream: true` answer arrives as one
 * complete server-sent-events body. `streamHandler` serves the chat function's URL with
 * response streaming (events as they are produced); it exists only on Lambda's runtime.
 */
import * as Chat from "../../core/chat";
import type { ChatRequest } from "../../core/chat/schema";
import * as UiStream from "../../core/chat/ui-stream";
import { db } from "../../core/db";
import { type HttpInput, http } from "./chain";
import { type StreamReply, sse, streamingHandler } from "./stream";

async function chat(
  { caller, signal, requestId, headers }: HttpInput<"POST /v1/chat" | "POST /api/chat">,
  request: ChatRequest,
) {
  const options = { signal, requestId };
  if (request.format === "ui-message-stream" || UiStream.accepted(headers.accept)) {
    const events = await Chat.stream(await db(), caller, request, options);
    return { headers: UiStream.UI_MESSAGE_STREAM_HEADERS, stream: UiStream.frames(events) } satisfies StreamReply;
  }
  if (request.stream) return sse(await Chat.stream(await db(), caller, request, options));
  return Chat.answer(await db(), caller, request, options);
}

export const handler = http({
  "POST /v1/chat": async (input) => {
    const result = await chat(input, input.body);
    return "stream" in result ? result : { body: result };
  },
  "POST /api/chat": async (input) => {
    const result: StreamReply | Chat.ChatResponse = await chat(input, input.body);
    if ("stream" in result) return result;
    // The seed answered `{ success, response, sources }`; the v1 fields ride along for newer clients.
    return {
      body: {
        success: true as const,
        response: result.message.content,
        sources: result.citations.map((c) => ({
          id: c.documentId,
          scope: c.scope,
          title: c.title,
          content: c.snippet,
          score: c.score,
          location: c.location,
        })),
        ...result,
      },
    };
  },
});

export const streamHandler =
  typeof awslambda === "undefined" ? undefined : awslambda.streamifyResponse(streamingHandler(handler, awslambda));
