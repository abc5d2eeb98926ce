/** Query schemas for the conversation routes. */
import { Limit, PageCursor } from "../document/schema";
import * as z from "../zod";

export const ConversationListQuery = z.strictObject({
  limit: Limit,
  cursor: z.optional(PageCursor),
});
export type ConversationListQuery = z.infer<typeof ConversationListQuery>;
