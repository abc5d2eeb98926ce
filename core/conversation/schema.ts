/** Query schemas for the conversation routes. */
import { Limit, PageCursor } from "../document/schema";
import * as z from "../zod";

export const ConversationListQuery = z.strictObject({
  limit: Limit,
  cursor: z.optional(PageCursor),
});
export type ConversationListQuery = z.infer<typeof ConversationListQuery>;

export const ConversationGetQuery = z.strictObject({
  before: z
    .optional(PageCursor)
    .check(z.describe("A conversation's `olderCursor`: its messages before the ones that answer gave")),
});
export type ConversationGetQuery = z.infer<typeof ConversationGetQuery>;
