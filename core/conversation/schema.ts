/** Query schemas for the conversation routes. */
import * as z from "../zod";

export const ConversationListQuery = z.object({
  limit: z._default(z.coerce.number().check(z.int(), z.gte(1), z.lte(100)), 20),
  cursor: z.optional(z.string().check(z.maxLength(200))),
});
export type ConversationListQuery = z.infer<typeof ConversationListQuery>;
