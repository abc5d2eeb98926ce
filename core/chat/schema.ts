/** Request schemas for chat; the same schemas feed the OpenAPI document. */

import { UNSTORABLE } from "../db/text";
import { blank, characters, coded, Id, unstorable } from "../document/schema";
import { Scope, SearchFilter } from "../search/schema";
import * as z from "../zod";

export const MAX_MESSAGES = 50;
export const MAX_MESSAGE_CHARS = 32_000;
export const ROLES = ["user", "assistant", "system"] as const;
export type Role = (typeof ROLES)[number];

/** A message's role; checked as text first so an unknown role gets its own code (the OpenAPI document lists the three). */
export const MessageRole = z.pipe(
  z.string().check(
    z.superRefine((role, ctx) => {
      if (!(ROLES as readonly string[]).includes(role)) {
        ctx.addIssue({
          code: "custom",
          message: `role ${JSON.stringify(role)} is not one of user, assistant, system`,
          ...coded("chat.invalid_role"),
        });
      }
    }),
  ),
  z.enum(ROLES),
);

const message = {
  role: MessageRole,
  content: z.string().check(
    z.superRefine((content, ctx) => {
      // Counted as `maxLength` counts (code points); only a string over the limit in UTF-16 units can be over it.
      const count = content.length > MAX_MESSAGE_CHARS ? characters(content) : content.length;
      if (count > MAX_MESSAGE_CHARS) {
        ctx.addIssue({
          code: "custom",
          message: `a message is ${count} characters; the limit is ${MAX_MESSAGE_CHARS}`,
          ...coded("chat.message_too_long", "too_large"),
        });
      } else if (blank(content)) {
        ctx.addIssue({ code: "custom", message: "a message is empty", ...coded("chat.empty_message") });
      } else if (UNSTORABLE.test(content)) {
        ctx.addIssue({ code: "custom", ...unstorable("a message") });
      }
    }),
    z.describe(`At most ${MAX_MESSAGE_CHARS.toLocaleString("en")} characters (413 chat.message_too_long)`),
  ),
};
// A misspelt field is refused, as on every other route, not silently dropped (`conversationID` would start a new
// conversation, `Remember` store nothing).
export const ChatMessageInput = z.strictObject(message);
export type ChatMessageInput = z.infer<typeof ChatMessageInput>;

// Defaulted only so that a missing list gets its own code (chat.no_messages); the OpenAPI document marks it required.
const messages = <Sent>(item: z.ZodMiniType<ChatMessageInput, Sent>) =>
  z._default(z.array(item), []).check(
    z.superRefine((messages, ctx) => {
      if (messages.length === 0) {
        ctx.addIssue({ code: "custom", message: "send at least one message", ...coded("chat.no_messages") });
      } else if (messages.length > MAX_MESSAGES) {
        ctx.addIssue({
          code: "custom",
          message: `${messages.length} messages in one request; the limit is ${MAX_MESSAGES}`,
          ...coded("chat.too_many_messages"),
        });
      } else if (["assistant", "system"].includes(messages[messages.length - 1]?.role ?? "")) {
        // An unknown role (`bot`) has its own issue; this one would only repeat it.
        ctx.addIssue({
          code: "custom",
          path: [messages.length - 1, "role"],
          message: "the last message must be the user's question",
          ...coded("chat.last_not_user"),
        });
      }
    }),
    z.describe(`1-${MAX_MESSAGES} messages, the last one from the user; each at most ${MAX_MESSAGE_CHARS} characters`),
    z.meta({ [z.REQUIRED_IN_DOCS]: true }),
  );

const fields = {
  conversationId: z
    .optional(Id)
    .check(
      z.describe(
        "Continue this conversation of the caller's (404 when it has none of this id; ingesting a document with a new conversationId creates one); without it one is created",
      ),
    ),
  topK: z
    ._default(z.number().check(z.int(), z.gte(1), z.lte(50)), 5)
    .check(z.describe("Passages retrieved for the answer")),
  filter: z.optional(SearchFilter).check(z.describe("The same filter as POST /v1/search")),
  scope: z
    ._default(Scope, "all")
    .check(
      z.describe(
        "Where passages come from, as in POST /v1/search: the caller's own space and the shared one (all), or one of them",
      ),
    ),
  stream: z._default(z.boolean(), false).check(z.describe("Answer as server-sent events: citations, deltas, done")),
  format: z
    .optional(z.enum(["ui-message-stream"]))
    .check(
      z.describe(
        "Stream the answer in the Vercel AI SDK's UI message stream protocol instead (for useChat); implies stream, whatever `stream` says. `Accept: text/event-stream; format=ui-message-stream` does the same",
      ),
    ),
  remember: z._default(z.boolean(), false).check(z.describe("Also store the user's message as a memory document")),
};

export const ChatRequest = z.strictObject({ messages: messages(ChatMessageInput), ...fields });
export type ChatRequest = z.infer<typeof ChatRequest>;

/**
 * The Digital Twin API's body is the same `{messages}` with the same optional fields as `/v1/chat`; fields it does
 * not know are ignored, on the body and on its messages (ids, timestamps), as that API did.
 */
export const CompatChatMessageInput = z.object(message);
export const CompatChatRequest = z.object({ messages: messages(CompatChatMessageInput), ...fields });
