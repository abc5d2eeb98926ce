/** Query schemas for the conversation routes. */
import { z } from "zod";

export const ConversationListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional(),
});
export type ConversationListQuery = z.infer<typeof ConversationListQuery>;
