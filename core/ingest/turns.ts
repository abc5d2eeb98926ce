/**
 * What a conversation turn leaves in the turns after it. A turn is embedded after the two before it
 * (docs/search.md, "Conversation turns"), so when one is deleted, expired or edited, the next two carry text that is
 * gone. Their stored copy of it is dropped and their vectors leave search at once (marked with a model no search
 * ranks); the re-embedding run this starts (of these turns only) embeds them again, without it, as the cleanup or `engram reembed` gets
 * to them. Their context is dropped, not rebuilt: nothing here embeds, so a delete stays one statement.
 */
import { type SQL, sql } from "drizzle-orm";
import { PRECEDING_TURNS } from "../chunk/context";
import { arr } from "../db";
import * as Reembed from "../embedding/reembed";

export const CONTEXT_DROPPED = Reembed.CONTEXT_DROPPED;

/**
 * Common table expressions (to follow a statement's own, after a comma) that drop the context of the turns after
 * each row of `changed`, a query of (tenant_id, owner, conversation_id, key), other than documents named in
 * `except` (this request's, re-chunked with it), and begin a re-embedding of the tenants they belong to.
 */
export function forgetting(changed: SQL, except: string[] = []): SQL {
  const { model, dimensions } = Reembed.active();
  // The new hash is contentHash(embeddingText(context, content)) (core/chunk), written in SQL: a re-embedding reuses
  // vectors by hash, so the old one (of the text with the turns before) must not name the vector of the new text.
  return sql`
    turns_after as (
      select f.key from (${changed}) g cross join lateral (
        select d.key from documents d
        where d.tenant_id = g.tenant_id and d.owner = g.owner and d.conversation_id = g.conversation_id
          and d.key > g.key and d.chunk_count = 1 and d.id <> all(${arr(except)}::text[])
        order by d.key limit ${PRECEDING_TURNS}) f),
    context_dropped as (
      update chunks c set preceding = '', embedding_model = ${CONTEXT_DROPPED}, content_hash = encode(sha256(convert_to(
          case when c.context = '' then c.content else c.context || E'\\n\\n' || c.content end, 'UTF8')), 'hex')
      from turns_after f where c.document_key = f.key and c.ordinal = 0 and c.preceding <> ''
      returning c.tenant_id),
    reembedding as (
      ${Reembed.beginning(sql`select distinct tenant_id from context_dropped`, model, dimensions, true)}
      returning 1)`;
}
