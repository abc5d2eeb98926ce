import type { Caller } from "../auth";
import { type Config, config } from "../config";
import type { NewMessage } from "../conversation";
import * as Conversation from "../conversation";
import type { Db } from "../db";
import { EngramError, upstreamError } from "../error";
import * as Gate from "../gate";
import { type ChatMessage, type ChatModel, type ChatStreamEvent, createChatModel } from "../llm";
import * as Search from "../search";
import { MAX_QUERY_CHARS } from "../search/schema";
import { type Citation, finalize } from "./citations";
import * as Extractive from "./extractive";
import { buildPrompt, type Passage, type Source } from "./prompt";
import type { ChatRequest } from "./schema";
import type { ChatEvent } from "./stream";
import * as Stream from "./stream";
import * as Turn from "./turn";

export type { Citation } from "./citations";
export type { Source } from "./prompt";
export type { ChatEvent } from "./stream";

export interface ChatUsage {
  promptTokens: number;
  completionTokens: number;
  embeddingTokens: number;
}

export interface ChatResponse {
  conversationId: string;
  message: { role: "assistant"; content: string };
  citations: Citation[];
  model: string;
  usage: ChatUsage;
}

export interface ChatOptions {
  signal?: AbortSignal;
  /** Named in the message of an internal error that ends a stream (log lines take it from core/log.ts). */
  requestId?: string;
}

/** Everything an answer needs before the model is asked: the prompt is ready. */
export interface Prepared {
  conversationId: string;
  question: string;
  /** What was searched for, and what the extractive answerer answers: the question, or a follow-up with the one before. */
  query: string;
  /** Sources offered to the model, numbered as in the prompt. */
  sources: Source[];
  prompt: ChatMessage[];
  /** Messages of this request to store with the answer (not yet part of the conversation). */
  newMessages: NewMessage[];
  /** Title for a conversation this turn creates. */
  title: string;
  embeddingTokens: number;
}

let client: { cfg: Config; model: ChatModel } | undefined;

/** The configured chat model, made once per configuration; undefined in extractive mode. */
export function chatModel(): ChatModel | undefined {
  const cfg = config();
  if (cfg.chat.provider !== "openai") return undefined;
  if (client?.cfg !== cfg) {
    client = {
      cfg,
      model: createChatModel({
        apiKey: cfg.openai.apiKey ?? "not-needed",
        baseURL: cfg.chat.baseURL,
        model: cfg.chat.model,
        timeoutMs: cfg.chat.timeoutMs,
        maxRetries: cfg.chat.maxRetries,
      }),
    };
  }
  return client.model;
}

/** A message's words: its citation markers and spacing left out, as a client may resend an answer without them. */
const wordsOf = (content: string) =>
  content
    .replace(/(?<!\s)\s*\[\d+\]/g, "") // from a run of spaces' start only: linear (core/chat/prompt.ts, MARKER)
    .replace(/\s+/g, " ")
    .trim();

const sameMessage = (a: { role: string; content: string }, b: { role: string; content: string }) =>
  a.role === b.role && wordsOf(a.content) === wordsOf(b.content);

/**
 * How many of `sent`'s first messages the conversation already holds (clients that resend history), where the client
 * may have left out assistant messages (one that keeps only its user's questions) and written an answer without its
 * markers: the longest run of them that repeats the end of `stored`, in order, or that repeats `stored` from its start
 * on (`stored` is the newest part of the conversation; messages sent before its first are older ones). The second is
 * a client resending its history after an answer it never got: the conversation holds that answer after the history.
 */
function overlap(stored: readonly ChatMessage[], sent: readonly ChatMessage[]): number {
  return Math.max(heldAtEnd(stored, sent), heldFromStart(stored, sent));
}

function heldAtEnd(stored: readonly ChatMessage[], sent: readonly ChatMessage[]): number {
  for (let k = sent.length; k > 0; k--) {
    let i = k - 1;
    for (let j = stored.length - 1; j >= 0 && i >= 0; j--) {
      const held = stored[j] as ChatMessage;
      if (sameMessage(held, sent[i] as ChatMessage)) i--;
      else if (held.role !== "assistant") break;
    }
    if (i < 0) return k;
  }
  return 0;
}

function heldFromStart(stored: readonly ChatMessage[], sent: readonly ChatMessage[]): number {
  // The run starts at the first stored message, or at the first user message for a client that keeps only those.
  const starts = stored.length
    ? [0, stored.findIndex((m) => m.role === "user")].filter((s, n, all) => s >= 0 && all.indexOf(s) === n)
    : [];
  let best = 0;
  for (const start of starts) {
    for (let x = 0; x < sent.length; x++) {
      if (!sameMessage(stored[start] as ChatMessage, sent[x] as ChatMessage)) continue;
      let i = x;
      for (let j = start; j < stored.length && i < sent.length; j++) {
        const held = stored[j] as ChatMessage;
        if (sameMessage(held, sent[i] as ChatMessage)) i++;
        else if (held.role !== "assistant") break;
      }
      best = Math.max(best, i);
    }
  }
  return best;
}

/** The search query: a long message's start says what it is about (never half a surrogate pair). */
function queryOf(question: string): string {
  const text = question.trim();
  if (text.length <= MAX_QUERY_CHARS) return text;
  const cut = /[\uD800-\uDBFF]/.test(text[MAX_QUERY_CHARS - 1] ?? "") ? MAX_QUERY_CHARS - 1 : MAX_QUERY_CHARS;
  return text.slice(0, cut);
}

function searchInput(request: ChatRequest, question: string): Search.SearchRequest {
  return Search.SearchRequest.parse({
    query: queryOf(question),
    topK: request.topK,
    mode: "hybrid",
    filter: request.filter,
    scope: request.scope,
  });
}

function passagesOf(result: Search.SearchResponse) {
  const passages: Passage[] = result.results.map((r) => ({
    documentId: r.documentId,
    scope: r.scope,
    chunkId: r.chunkId,
    ordinal: r.ordinal,
    title: r.title,
    source: r.source,
    content: r.content,
    score: r.score,
    location: r.location,
  }));
  return { passages, embeddingTokens: result.usage.embeddingTokens };
}

async function retrieve(db: Db, caller: Caller, request: ChatRequest, question: string, signal?: AbortSignal) {
  return passagesOf(await Search.query(db, caller, searchInput(request, question), { signal }));
}

/**
 * The conversation's earlier turns and the search, for a caller through the gate: one batch with
 * its key and limit checks (core/gate), so retrieval is one round trip.
 */
async function retrieveGated(db: Db, caller: Caller, request: ChatRequest, question: string, signal?: AbortSignal) {
  const search = await Search.plan(db, caller, searchInput(request, question), { signal });
  const id = request.conversationId;
  const [found = [], stored = []] = await Gate.through(
    db,
    caller,
    [search.statement, ...(id ? [Conversation.historyQuery(caller, id)] : [])],
    search.settings,
  );
  // A conversation that is not the caller's is the answer, whatever search found.
  const earlier = id ? Conversation.historyFrom(stored, id) : [];
  return { stored: earlier, found: passagesOf(await search.finish(found)) };
}

/** The conversation's earlier turns and the search, side by side, for a caller already known. */
async function retrieveApart(db: Db, caller: Caller, request: ChatRequest, question: string, signal?: AbortSignal) {
  const [stored, found] = await Promise.allSettled([
    request.conversationId ? Conversation.history(db, caller, request.conversationId) : Promise.resolve([]),
    retrieve(db, caller, request, question, signal),
  ]);
  // A conversation that is not the caller's is the answer, whatever search did.
  if (stored.status === "rejected") throw stored.reason;
  if (found.status === "rejected") throw found.reason;
  return { stored: stored.value, found: found.value };
}

type Turns = { role: string; content: string }[];

/**
 * The user's last message that says anything (an informative word): a follow-up of a follow-up ("What is git bisect?",
 * "Tell me more.", "And how do I stop it?") is about the message before both, where the one before it alone had found
 * git rebase; a one-word change of topic ("Shipping?" before "Tell me more.") is the topic.
 */
const lastUser = (messages: readonly { role: string; content: string }[]) => {
  const users = messages.filter((m) => m.role === "user");
  return (users.findLast((m) => Extractive.terms(m.content).length > 0) ?? users.at(-1))?.content;
};
/** Whether a message names something to find: more than one informative word. */
const names = (message: string) => new Set(Extractive.terms(message)).size > 1;

/** The conversation's earlier turns alone, through the gate in the same round trip when it has not run yet. */
async function storedTurns(db: Db, caller: Caller, id: string): Promise<Turns> {
  if (!Gate.unsettled(caller)) return Conversation.history(db, caller, id);
  const [rows = []] = await Gate.through(db, caller, [Conversation.historyQuery(caller, id)]);
  return Conversation.historyFrom(rows, id);
}

/**
 * What a question is searched as. A follow-up of at most one informative word ("Tell me more about that.", "And
 * refunds?") names nothing to find, so the user's last message before it that does (`lastUser`) is searched with it,
 * after it (a long query is cut at its end): the request's own, or, when the client sent only the new message, the
 * conversation's stored one, read first (with the gate: one round trip more, only then). Other questions are searched
 * as written.
 */
async function queryFor(
  db: Db,
  caller: Caller,
  request: ChatRequest,
  question: string,
): Promise<{ query: string; stored?: Turns }> {
  if (names(question)) return { query: question };
  const sent = lastUser(request.messages.slice(0, -1));
  if (sent !== undefined) return { query: `${question}\n${sent}` };
  if (!request.conversationId) return { query: question };
  const stored = await storedTurns(db, caller, request.conversationId);
  const before = lastUser(stored);
  return { query: before === undefined ? question : `${question}\n${before}`, stored };
}

/**
 * Retrieval plus assembly: loads the conversation's earlier turns (the caller's own only) and
 * searches the caller's scope with the question, together, then builds the prompt within the
 * configured token budget.
 */
export async function prepare(
  db: Db,
  caller: Caller,
  request: ChatRequest,
  options: ChatOptions = {},
): Promise<Prepared> {
  const messages = request.messages;
  const last = messages[messages.length - 1];
  if (last?.role !== "user") {
    throw new EngramError("input", "chat.last_not_user", "The last message must be the user's question.");
  }
  const question = last.content;

  // With a read replica, or a key this process has not seen accepted, the gate runs first (Search.gateFirst).
  if (Search.gateFirst(db, caller, { mode: "hybrid" })) await Gate.open(db, caller);
  const { query, stored: read } = await queryFor(db, caller, request, question);
  const { stored, found } = read
    ? { stored: read, found: await retrieve(db, caller, request, query, options.signal) }
    : Gate.unsettled(caller)
      ? await retrieveGated(db, caller, request, query, options.signal)
      : await retrieveApart(db, caller, request, query, options.signal);

  const earlier = stored.filter((m) => m.role !== "system") as ChatMessage[];
  const sent = messages.slice(0, -1).filter((m) => m.role !== "system");
  const fresh = sent.slice(overlap(earlier, sent));
  const prompt = buildPrompt({
    question,
    history: [...earlier, ...fresh],
    passages: found.passages,
    appInstructions: messages.filter((m) => m.role === "system").map((m) => m.content),
    budget: config().chat.promptTokens,
  });

  return {
    conversationId: request.conversationId ?? Conversation.newId(),
    question,
    query,
    sources: prompt.sources,
    prompt: prompt.messages,
    newMessages: [...fresh, last].map((m) => ({ role: m.role, content: m.content })),
    title: Conversation.titleOf((fresh.find((m) => m.role === "user") ?? last).content),
    embeddingTokens: found.embeddingTokens,
  };
}

/** The answer as one response: retrieval, the model (or the extractive answerer), citations, then the turn is stored. */
export async function answer(
  db: Db,
  caller: Caller,
  request: ChatRequest,
  options: ChatOptions = {},
): Promise<ChatResponse> {
  const prepared = await prepare(db, caller, request, options);
  const model = chatModel();
  if (!model) {
    const final = finalize(Extractive.reply(prepared, prepared.sources, request.remember), prepared.sources);
    return Turn.commit(
      db,
      caller,
      request,
      prepared,
      { ...final, model: Extractive.MODEL, promptTokens: 0, completionTokens: 0 },
      options,
    );
  }
  const reply = await model
    .complete(prepared.prompt, { signal: options.signal, maxTokens: config().chat.maxAnswerTokens })
    .catch((error) => {
      throw upstreamError(error, "chat");
    });
  const final = finalize(reply.content, prepared.sources);
  return Turn.commit(db, caller, request, prepared, { ...final, model: model.model, ...reply.usage }, options);
}

/**
 * The answer as events. Resolves once the first token is in hand, so that every failure before
 * it (a conversation that is not the caller's, search, the model after its retries) is an
 * ordinary error response. Later failures end the stream with an `error` event; either way
 * nothing is stored unless the answer is complete. Stopping the iteration or aborting `signal`
 * stops the model.
 */
export async function stream(
  db: Db,
  caller: Caller,
  request: ChatRequest,
  options: ChatOptions = {},
): Promise<AsyncIterable<ChatEvent>> {
  const prepared = await prepare(db, caller, request, options);
  const model = chatModel();
  if (!model) {
    const final = finalize(Extractive.reply(prepared, prepared.sources, request.remember), prepared.sources);
    const done = { ...final, model: Extractive.MODEL, promptTokens: 0, completionTokens: 0 };
    return Stream.extractiveEvents(db, caller, request, prepared, done, options);
  }
  const upstream = model
    .stream(prepared.prompt, { signal: options.signal, maxTokens: config().chat.maxAnswerTokens })
    [Symbol.asyncIterator]();
  let first: IteratorResult<ChatStreamEvent>;
  try {
    first = await upstream.next();
  } catch (error) {
    throw upstreamError(error, "chat");
  }
  return Stream.modelEvents(db, caller, request, prepared, { model: model.model, upstream, first }, options);
}
