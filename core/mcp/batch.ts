/**
 * A JSON-RPC batch (2.0, section 6), read the same on both transports. The server negotiates MCP 2025-03-26 among the
 * versions the SDK speaks, and that version has a server take batches, on stdio as over HTTP; 2025-06-18 dropped them,
 * and its clients send none, so a batch is read whatever the version. Each member is a message of its own: one that
 * is no JSON-RPC 2.0 message, or an `initialize` (which 2025-03-26 keeps out of batches), is answered with its own
 * -32600, by its id when it has one that can be read (else null), and the others are answered as if sent alone.
 */
import { MAX_BATCH_SIZE } from "@modelcontextprotocol/sdk/server/requestBody.js";
import {
  ErrorCode,
  isJSONRPCRequest,
  type JSONRPCMessage,
  JSONRPCMessageSchema,
} from "@modelcontextprotocol/sdk/types.js";

type Id = string | number;

/** A JSON-RPC error answer, with JSON-RPC's `id: null` when no id could be read (the SDK's type has none). */
export interface Refusal {
  jsonrpc: "2.0";
  id: Id | null;
  error: { code: number; message: string };
}

/** A batch's member: a message to answer as if it came alone, or the error answering it. */
export type Member = { message: JSONRPCMessage } | { refusal: Refusal };

/** JSON-RPC's -32600, id null unless given. */
export const invalidRequest = (message: string, id: Id | null = null): Refusal => ({
  jsonrpc: "2.0",
  id,
  error: { code: ErrorCode.InvalidRequest, message: `Invalid Request: ${message}` },
});

/** A member's id if it has one of a JSON-RPC id's types (a string, an integer), for its refusal to be matched by. */
function idOf(member: unknown): Id | null {
  const id = member !== null && typeof member === "object" ? (member as { id?: unknown }).id : undefined;
  return typeof id === "string" || (typeof id === "number" && Number.isInteger(id)) ? id : null;
}

/**
 * A batch's members, or its refusal as a whole (one error, id null, as JSON-RPC answers a batch it cannot read):
 * empty, over the SDK's bound on a batch, or holding two members that would be answered with one id, which the client
 * could not tell apart (and POST /mcp's transport, answering by id, would lose one of).
 */
export function read(batch: unknown[]): { members: Member[] } | { refusal: Refusal } {
  if (batch.length === 0) return { refusal: invalidRequest("an empty batch; send at least one message") };
  if (batch.length > MAX_BATCH_SIZE) {
    return {
      refusal: invalidRequest(`a batch holds at most ${MAX_BATCH_SIZE} messages; this one has ${batch.length}`),
    };
  }
  const members = batch.map((member, index): Member => {
    const parsed = JSONRPCMessageSchema.safeParse(member);
    if (!parsed.success) {
      const message = `batch[${index}] is no JSON-RPC 2.0 message ("jsonrpc": "2.0", an id that is a string or an integer)`;
      return { refusal: invalidRequest(message, idOf(member)) };
    }
    if (isJSONRPCRequest(parsed.data) && parsed.data.method === "initialize") {
      return { refusal: invalidRequest(`batch[${index}] is initialize, which is sent alone`, parsed.data.id) };
    }
    return { message: parsed.data };
  });
  const ids = members.flatMap((member) =>
    "refusal" in member
      ? member.refusal.id === null
        ? []
        : [member.refusal.id]
      : isJSONRPCRequest(member.message)
        ? [member.message.id]
        : [],
  );
  if (new Set(ids).size < ids.length)
    return { refusal: invalidRequest("the requests of a batch must have different ids") };
  return { members };
}

/** The messages of `members` to hand to the server, in the batch's order. */
export const messagesOf = (members: Member[]): JSONRPCMessage[] =>
  members.flatMap((member) => ("message" in member ? [member.message] : []));

/**
 * A batch's answer in the batch's order: each refused member's error, and each request's answer from `answers` (the
 * server's, by id); notifications and responses have none. Empty when nothing is to be answered, which JSON-RPC
 * answers with nothing at all.
 */
export function answerOf(members: Member[], answers: unknown[]): unknown[] {
  const byId = new Map(answers.map((answer) => [(answer as { id?: unknown }).id, answer]));
  return members.flatMap((member) => {
    if ("refusal" in member) return [member.refusal];
    const answer = isJSONRPCRequest(member.message) ? byId.get(member.message.id) : undefined;
    return answer ? [answer] : [];
  });
}
