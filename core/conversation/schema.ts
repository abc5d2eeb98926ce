/** Query schemas for the conversation routes. */
import { Limit } from "../document/schema";
import * as z from "../zod";

export const ConversationListQuery = z.strictObject({
  limit: Limit,
  cursor: z.optional(z.string().check(z.maxLength(200))),
});
export type ConversationListQuery = z.infer<typeof ConversationListQuery>;
