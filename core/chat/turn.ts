/** A complete answer stored as the conversation's next turn (and, with `remember`, the question as a memory). */
import { createHash } from "node:crypto";
import type { Caller } from "../auth";
import * as Conversation from "../conversation";
import type { Db } from "../db";
import { CHANGED, sqlState } from "../db/errors";
import * as Replica from "../db/replica";
import * as Ingest from "../ingest";
import type { Citation } from "./citations";
import type { ChatOptions, ChatResponse, ChatUsage, Prepared } from "./index";
import type { ChatRequest } from "./schema";

export interface Answered {
  content: string;
  citations: Citation[];
  model: string;
  promptTokens: number;
  completionTokens: number;
}

/** Stable per conversation and text: remembering the same message twice stores it once. */
const memoryId = (conversationId: string, content: string) =>
  `mem_${createHash("sha256").update(`${conversationId}\n${content}`).digest("hex").slice(0, 32)}`;

/**
 * Stores a complete answer in one atomic batch: the turn's messages and, with `remember`, the
 * question as a memory document of the conversation. Either both land or neither, so a client's
 * retry after a failure finds the state before its first try.
 */
export async function commit(
  db: Db,
  caller: Caller,
  request: ChatRequest,
  prepared: Prepared,
  answered: Answered,
  options: ChatOptions,
): Promise<ChatResponse> {
  options.signal?.throwIfAborted();
  const usage = await Ingest.withReplanning(async () => {
    const memory = request.remember
      ? await Ingest.prepare(
          db,
          caller,
          [
            {
              id: memoryId(prepared.conversationId, prepared.question),
              content: prepared.question,
              title: Conversation.titleOf(prepared.question),
              conversationId: prepared.conversationId,
              metadata: { kind: "chat_memory", role: "user" },
            },
          ],
          { signal: options.signal },
        )
      : undefined;
    const usage: ChatUsage = {
      promptTokens: answered.promptTokens,
      completionTokens: answered.completionTokens,
      embeddingTokens: prepared.embeddingTokens + (memory?.result.usage.embeddingTokens ?? 0),
    };
    options.signal?.throwIfAborted();
    // A continued conversation deleted meanwhile is gone: its check comes first, as a remembered question would
    // make the conversation again too. The memory next: the turn's conversation row is then already there.
    await db.batch([
      ...(request.conversationId ? [Conversation.stillThere(caller, request.conversationId)] : []),
      ...(memory?.statements ?? []),
      ...Conversation.saveTurn(caller, {
        conversationId: prepared.conversationId,
        title: prepared.title,
        messages: [
          ...prepared.newMessages,
          {
            role: "assistant",
            content: answered.content,
            citations: answered.citations,
            model: answered.model,
            usage: { ...usage },
          },
        ],
      }),
    ]);
    return usage;
  }).catch((error) => {
    if (request.conversationId && sqlState(error) === CHANGED) throw Conversation.notFound(request.conversationId);
    throw error;
  });
  // The remembered question is searchable: the next turn's retrieval must find it (core/db/replica.ts).
  if (request.remember) await Replica.written(db, caller.tenantId);
  return {
    conversationId: prepared.conversationId,
    message: { role: "assistant", content: answered.content },
    citations: answered.citations,
    model: answered.model,
    usage,
  };
}
