import { sql } from "drizzle-orm";
import type { Caller } from "../auth";
import type { Db } from "../db";
import * as Cursor from "../db/cursor";
import { retriedOn } from "../db/errors";
import * as Replica from "../db/replica";
import * as Reembed from "../embedding/reembed";
import { EngramError } from "../error";
import * as Turns from "../ingest/turns";
import type { DocumentScope, ListQuery, Metadata } from "./schema";

export interface DocumentView {
  id: string;
  scope: DocumentScope;
  title: string | null;
  source: string | null;
  metadata: Metadata;
  importance: number;
  conversationId: string | null;
  chunks: number;
  contentLength: number;
  accessCount: number;
  lastAccessedAt: Date | null;
  expiresAt: Date | null;
  deletedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  content?: string;
}

const LIVE = sql`(d.expires_at is null or d.expires_at > now())`;

const columns = (withContent: boolean) => sql`
  d.id, case when d.owner = '' then 'shared' else 'user' end as scope, d.title, d.source, d.metadata,
  d.importance::int as importance, d.conversation_id as "conversationId", d.chunk_count as chunks,
  length(d.content) as "contentLength", d.access_count as "accessCount", d.last_accessed_at as "lastAccessedAt",
  d.expires_at as "expiresAt", d.deleted_at as "deletedAt", d.created_at as "createdAt", d.updated_at as "updatedAt"
  ${withContent ? sql`, d.content` : sql``}`;

const notFound = (id: string) =>
  new EngramError("not_found", "document.not_found", `No document with id ${JSON.stringify(id)}.`);

/** The caller's own documents, newest first, in keyset pages. */
export async function list(db: Db, caller: Caller, query: ListQuery) {
  const after = query.cursor ? Cursor.decodeKey(query.cursor) : undefined;
  const rows = await db.query<DocumentView & { key: number; cursorAt: string }>(sql`
    select d.key, ${Cursor.timeOf(sql`d.created_at`)} as "cursorAt",
           ${columns(false)} from documents d
    where d.tenant_id = ${caller.tenantId} and d.owner = ${caller.userId}
      ${query.includeDeleted ? sql`` : sql`and d.deleted_at is null and ${LIVE}`}
      ${query.conversationId ? sql`and d.conversation_id = ${query.conversationId}` : sql``}
      ${after ? sql`and (d.created_at, d.key) < (${after.at}::timestamptz, ${after.key})` : sql``}
    order by d.created_at desc, d.key desc
    limit ${query.limit + 1}`);
  const page = rows.slice(0, query.limit);
  const last = page[page.length - 1];
  return {
    documents: page.map(({ key: _key, cursorAt: _cursor, ...doc }) => doc),
    nextCursor: rows.length > query.limit && last ? Cursor.encode(last.cursorAt, last.key) : null,
  };
}

/**
 * The caller's own document of that id, else the shared one; with `scope`, that space's only (`user` is the
 * caller's own, the shared space for a caller without an end user), as a search result or citation names it.
 * Counts an access unless `track` is false.
 */
export async function get(
  db: Db,
  caller: Caller,
  id: string,
  options: { track: boolean; scope?: DocumentScope },
): Promise<DocumentView> {
  const owners =
    options.scope === "shared"
      ? sql`d.owner = ''`
      : options.scope === "user"
        ? sql`d.owner = ${caller.userId}`
        : sql`d.owner in (${caller.userId}, '')`;
  const target = sql`
    select d.key from documents d
    where d.tenant_id = ${caller.tenantId} and ${owners} and d.id = ${id}
      and d.deleted_at is null and ${LIVE}
    order by d.owner = ${caller.userId} desc limit 1`;
  const rows = options.track
    ? await db.query<DocumentView>(sql`
        update documents d set access_count = d.access_count + 1, last_accessed_at = now()
        where d.key = (${target}) returning ${columns(true)}`)
    : await db.query<DocumentView>(sql`select ${columns(true)} from documents d where d.key = (${target})`);
  const doc = rows[0];
  if (!doc) throw notFound(id);
  return doc;
}

/**
 * The caller's own live document with its content, for a change (not counted as an access), and its `version`: the
 * time of its last change to the microsecond, which the change's write checks (`unchanged`).
 */
export async function own(
  db: Db,
  caller: Caller,
  id: string,
): Promise<DocumentView & { content: string; version: string }> {
  const current = (
    await db.query<DocumentView & { content: string; version: string }>(sql`
      select ${columns(true)}, d.updated_at::text as version from documents d
      where d.tenant_id = ${caller.tenantId} and d.owner = ${caller.userId} and d.id = ${id}
        and d.deleted_at is null and ${LIVE}`)
  )[0];
  if (!current) throw notFound(id);
  return current;
}

/**
 * A statement for the head of a write's batch: locks the caller's own document `id` and fails the batch (CHANGED) unless
 * it is still live and at `version` (`own`), so a change planned on what was read cannot undo a delete or another
 * change that committed since.
 */
export function unchanged(caller: Caller, id: string, version: string) {
  return sql`select engram_expect(exists(
    select 1 from documents d
    where d.tenant_id = ${caller.tenantId} and d.owner = ${caller.userId} and d.id = ${id}
      and d.deleted_at is null and ${LIVE} and d.updated_at = ${version}::timestamptz
    for no key update), 'the document changed since it was read')`;
}

/**
 * Soft delete (hidden at once, purged after retention) or, with `hard`, removal with its chunks now. Either way a
 * conversation turn's text leaves the context of the turns after it in the same statement (core/ingest/turns.ts).
 */
export async function remove(db: Db, caller: Caller, id: string, options: { hard: boolean }) {
  const where = sql`d.tenant_id = ${caller.tenantId} and d.owner = ${caller.userId} and d.id = ${id}`;
  const gone = options.hard
    ? sql`delete from documents d where ${where}`
    : // An expired document is already gone to its owner (a read is 404): deleting it softly is 404 too.
      sql`update documents d set deleted_at = now(), updated_at = now() where ${where} and d.deleted_at is null and ${LIVE}`;
  // The row is locked first, in a statement of its own: the delete's statement then sees a turn an ingest committed
  // after it while it waited (an ingest holds the turns it embeds a turn after: Ingest's readTurnsHeld).
  const statements = [
    sql`select 1 from documents d where ${where} for no key update`,
    sql`
    with gone as (${gone} returning d.id, d.key, d.tenant_id, d.owner, d.conversation_id),
    ${Turns.forgetting(sql`select tenant_id, owner, conversation_id, key from gone where conversation_id is not null`)}
    select id from gone`,
  ];
  // Dropping a turn's text from the turns after it moves keyword statistics and re-embedding state that a concurrent
  // ingest of the same conversation may hold in another order: a deadlock Postgres breaks is run again (it wrote
  // nothing).
  const [, rows] = await retriedOn(() => db.batch(statements));
  if (!rows?.[0]) throw notFound(id);
  await Replica.written(db, caller.tenantId);
  return { id, deleted: true as const, hard: options.hard };
}

/**
 * Restores a soft-deleted document of the caller's own that the cleanup has not purged yet: found again at once, with
 * its chunks and vectors as they were (a soft delete keeps them). A live document is answered as it is, so restoring
 * twice is one restore; an expired, purged or hard-deleted one is 404. The turns after a restored conversation turn
 * keep the context they were re-embedded with, without it (core/ingest/turns.ts).
 */
export async function restore(db: Db, caller: Caller, id: string): Promise<DocumentView> {
  const where = sql`d.tenant_id = ${caller.tenantId} and d.owner = ${caller.userId} and d.id = ${id} and ${LIVE}`;
  const rows = await db.query<DocumentView>(sql`
    with restored as (
      update documents d set deleted_at = null, updated_at = now() where ${where} and d.deleted_at is not null
      returning ${columns(true)})
    select * from restored
    union all
    select ${columns(true)} from documents d where ${where} and d.deleted_at is null`);
  const doc = rows[0];
  if (!doc) throw notFound(id);
  await Replica.written(db, caller.tenantId);
  return doc;
}

export interface Stats {
  /** The tenant the caller's key belongs to. */
  tenant: string;
  documents: { total: number; deleted: number };
  chunks: number;
  byConversation: { conversationId: string; documents: number }[];
  averageImportance: number | null;
  totalAccessCount: number;
  lastIngestAt: Date | null;
  /** The active embedding model, and this space's chunks of another one (not vector-searched until re-embedded). */
  embedding: { model: string; dimensions: number; stale: number; reembed: NonNullable<Reembed.State["run"]> | null };
}

/** Counts for the caller's own space, in one query. */
export async function stats(db: Db, caller: Caller): Promise<Stats> {
  const model = Reembed.active();
  const [rows, state] = await Promise.all([
    statsRow(db, caller, model.model),
    Reembed.state(db, caller.tenantId, model.model),
  ]);
  const row = rows[0];
  if (!row) throw new EngramError("internal", "internal", "stats query returned nothing");
  return {
    tenant: caller.tenantName,
    documents: { total: row.total, deleted: row.deleted },
    chunks: row.chunks,
    byConversation: row.byConversation ?? [],
    averageImportance: row.averageImportance,
    totalAccessCount: row.totalAccessCount,
    lastIngestAt: row.lastIngestAt ? new Date(row.lastIngestAt) : null,
    embedding: { model: model.model, dimensions: model.dimensions, stale: row.stale, reembed: state.run ?? null },
  };
}

function statsRow(db: Db, caller: Caller, model: string) {
  return db.query<{
    total: number;
    deleted: number;
    chunks: number;
    byConversation: { conversationId: string; documents: number }[] | null;
    averageImportance: number | null;
    totalAccessCount: number;
    lastIngestAt: Date | null;
    stale: number;
  }>(sql`
    with mine as (
      select d.* from documents d where d.tenant_id = ${caller.tenantId} and d.owner = ${caller.userId}
    ), live as (
      select * from mine d where d.deleted_at is null and ${LIVE}
    )
    select
      (select count(*)::int from live) as total,
      (select count(*)::int from mine where deleted_at is not null) as deleted,
      (select coalesce(sum(chunk_count), 0)::int from live) as chunks,
      (select json_agg(json_build_object('conversationId', conversation_id, 'documents', n) order by n desc, conversation_id)
         from (select conversation_id, count(*)::int as n from live where conversation_id is not null group by conversation_id) c)
        as "byConversation",
      (select round(avg(importance)::numeric, 2)::float8 from live) as "averageImportance",
      (select coalesce(sum(access_count), 0)::int from live) as "totalAccessCount",
      -- Ingestion records are purged after 30 days (migrations/0002): past that, the last write of a live document.
      coalesce(
        (select max(created_at) from ingestions where tenant_id = ${caller.tenantId} and owner = ${caller.userId}),
        (select max(updated_at) from live)) as "lastIngestAt",
      -- Of live documents, as a search's count (a soft-deleted document's chunks wait in the re-embedding too).
      (select count(*)::int from chunks c where c.tenant_id = ${caller.tenantId} and c.owner = ${caller.userId}
         and (c.embedding_model < ${model} or c.embedding_model > ${model})
         and exists (select 1 from live d where d.key = c.document_key)) as stale`);
}
