/** Which chunks a search may read: the caller's tenant and owners, live documents, the request's filters. */
import { type SQL, sql } from "drizzle-orm";
import { arr } from "../db";
import type { Scope, SearchFilter } from "./schema";

/** The owners a scope reads: '' is the tenant's shared space; a caller without an end user *is* the shared space. */
export function owners(userId: string, scope: Scope): string[] {
  if (scope === "shared") return [""];
  if (scope === "user") return [userId];
  return userId ? [userId, ""] : [""];
}

export interface Where {
  /** On chunks `c`: tenant and owner (denormalized from the document, served by `chunks_scope`). */
  chunks: SQL;
  /** On documents `d`: tenant and owner. */
  scope: SQL;
  /** On documents `d`: liveness and the request's filters. */
  documents: SQL;
  /** Whether the request filters documents beyond scope and liveness. */
  narrowed: boolean;
}

export function scopeAndFilters(tenant: SQL, userId: string, scope: Scope, filter: SearchFilter): Where {
  const who = owners(userId, scope);
  const conditions: SQL[] = [];
  if (filter.metadata) conditions.push(sql`d.metadata @> ${JSON.stringify(filter.metadata)}::jsonb`);
  if (filter.documentIds) conditions.push(sql`d.id = any(${arr(filter.documentIds)}::text[])`);
  if (filter.conversationId !== undefined) conditions.push(sql`d.conversation_id = ${filter.conversationId}`);
  if (filter.minImportance !== undefined) conditions.push(sql`d.importance >= ${filter.minImportance}`);
  if (filter.createdAfter) conditions.push(sql`d.created_at >= ${instant(filter.createdAfter)}::timestamptz`);
  if (filter.createdBefore) conditions.push(sql`d.created_at < ${instant(filter.createdBefore)}::timestamptz`);
  // Document ids and conversations name few documents: find their keys once through documents' unique and
  // conversation indexes, then their chunks through `chunks_document`. Documents are otherwise joined by
  // key alone: without statistics (PGlite never autovacuums) the planner matched a tenant/owner condition on
  // documents to `documents_recent` inside a nested loop and read every document once per chunk (1.8 s for
  // 2,000 chunks); by key, the worst case is one primary key lookup a chunk.
  const named: SQL[] = [];
  if (filter.documentIds) named.push(sql`k.id = any(${arr(filter.documentIds)}::text[])`);
  if (filter.conversationId !== undefined) named.push(sql`k.conversation_id = ${filter.conversationId}`);
  const keys = named.length
    ? sql` and c.document_key = any(array(
        select k.key from documents k
        where k.tenant_id = ${tenant} and k.owner = any(${arr(who)}::text[]) and ${sql.join(named, sql` and `)}))`
    : sql``;
  return {
    chunks: sql`c.tenant_id = ${tenant} and c.owner = any(${arr(who)}::text[])${keys}`,
    scope: sql`d.tenant_id = ${tenant} and d.owner = any(${arr(who)}::text[])`,
    documents: sql.join(
      [sql`d.deleted_at is null and (d.expires_at is null or d.expires_at > now())`, ...conditions],
      sql` and `,
    ),
    narrowed: conditions.length > 0,
  };
}

/** A date alone is its midnight UTC: cast as it is, it would be midnight in the session's time zone. */
const instant = (value: string) => (/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value);
