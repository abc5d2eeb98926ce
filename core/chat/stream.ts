/**
 * A streamed answer's events: the sources first, the answer's text as it comes (markers that name
 * no source held back), then `done` once the turn is stored, or `error` (core/chat/index.ts's
 * `stream` resolves only once the first token is in hand, so earlier failures are JSON errors).
 */
import type { Caller } from "../auth";
import type { Db } from "../db";
import { EngramError, errorBody, statusOf, upstreamError } from "../error";
import type { ChatStreamEvent } from "../llm";
import { log } from "../log";
import * as Provider from "../provider";
import { type Citation, citationOf, citingText, dropInvalidMarkers, MarkerFilter, usedSources } from "./citations";
import type { ChatOptions, ChatResponse, Prepared } from "./index";
import type { ChatRequest } from "./schema";
import * as Turn from "./turn";

/** What a streamed answer sends, in this order: citations, deltas, then done (or error). */
export type ChatEvent =
  | { event: "citations"; data: { citations: Citation[] } }
  | { event: "delta"; data: { text: string } }
  | { event: "done"; data: Omit<ChatResponse, "message"> }
  | { event: "error"; data: { error: { code: string; message: string } } };

export async function* modelEvents(
  db: Db,
  caller: Caller,
  request: ChatRequest,
  prepared: Prepared,
  model: { model: string; upstream: AsyncIterator<ChatStreamEvent>; first: IteratorResult<ChatStreamEvent> },
  options: ChatOptions,
): AsyncGenerator<ChatEvent> {
  const { sources } = prepared;
  const filter = new MarkerFilter((n) => n >= 1 && n <= sources.length);
  try {
    // The stream's numbering is the prompt's: the client gets every source now, `done` says which were used.
    yield { event: "citations", data: { citations: sources.map((s) => citationOf(s, s.index)) } };
    let raw = "";
    let usage = { promptTokens: 0, completionTokens: 0 };
    for (let next = model.first; !next.done; next = await model.upstream.next()) {
      const event = next.value;
      if (event.type === "done") {
        usage = event.usage;
        continue;
      }
      raw += event.text;
      const text = filter.push(event.text);
      if (text) yield { event: "delta", data: { text } };
    }
    const tail = filter.flush();
    if (tail) yield { event: "delta", data: { text: tail } };

    // Stored as it was streamed, in the stream's numbering: the conversation read back shows the markers the client
    // was shown ([3] stayed [3]; renumbered as a JSON answer is, it read [1] once stored).
    const answer = dropInvalidMarkers(raw, sources.length).trim();
    const citations = usedSources(answer, sources).map((s) => citationOf(s, s.index, citingText(answer, s.index)));
    const response = await Turn.commit(
      db,
      caller,
      request,
      prepared,
      { content: answer, citations, model: model.model, ...usage },
      options,
    );
    yield {
      event: "done",
      data: { conversationId: response.conversationId, citations, model: response.model, usage: response.usage },
    };
  } catch (error) {
    // A client that went away gets no more events; the turn is not stored.
    if (options.signal?.aborted) {
      log.info("chat stream cancelled", { reason: String(options.signal.reason) });
      throw error;
    }
    yield { event: "error", data: { error: streamFailure(error, options.requestId) } };
  } finally {
    await model.upstream.return?.();
  }
}

export async function* extractiveEvents(
  db: Db,
  caller: Caller,
  request: ChatRequest,
  prepared: Prepared,
  final: Turn.Answered,
  options: ChatOptions,
): AsyncGenerator<ChatEvent> {
  // The whole answer is known: the citations are already the final ones, in order of use.
  yield { event: "citations", data: { citations: final.citations } };
  for (const piece of final.content.split(/(?<=[.!?…]\s)/)) {
    yield { event: "delta", data: { text: piece } };
  }
  try {
    const { message: _message, ...done } = await Turn.commit(db, caller, request, prepared, final, options);
    yield { event: "done", data: done };
  } catch (error) {
    if (options.signal?.aborted) throw error;
    yield { event: "error", data: { error: streamFailure(error, options.requestId) } };
  }
}

function streamFailure(error: unknown, requestId: string | undefined): { code: string; message: string } {
  const known = error instanceof Provider.UpstreamError ? upstreamError(error, "chat") : error;
  // The event carries code and message only (its schema, ChatErrorEvent): no details.
  const { code, message } = errorBody(known, requestId);
  // As core/api/http.ts's errorResponse: a refusal of the client's request is info, a 5xx an error.
  const status = known instanceof EngramError ? statusOf(known.kind) : 500;
  // The line carries the request's id and tenant from the request's log context (core/log.ts).
  if (status < 500) log.info("chat stream refused", { status, code });
  else
    log.error("chat stream failed", {
      status,
      code,
      error: known instanceof EngramError ? (known.cause ?? known) : error,
    });
  return { code, message };
}
