import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import type { Caller } from "../auth";
import type { ChatUsage, Citation } from "../chat";
import { arr, type Db, type Query, type Row } from "../db";
import * as Cursor from "../db/cursor";
import { EngramError } from "../error";
import * as Gate from "../gate";

export type MessageRole = "user" | "assistant" | "system";

export interface StoredMessage {
  role: MessageRole;
  content: string;
  /** The chat's answer: the sources it cited; none on other messages. */
  citations: Citation[];
  model: string | null;
  usage: ChatUsage | null;
  createdAt: Date;
}

export interface ConversationSummary {
  id: string;
  title: string | null;
  messageCount: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface ConversationView extends ConversationSummary {
  messages: StoredMessage[];
  /** `before` for the messages older than these; null when they start at the conversation's first. */
  olderCursor: string | null;
}

/** A message to store with a turn. */
export interface NewMessage {
  role: MessageRole;
  content: string;
  citations?: Citation[];
  model?: string | null;
  usage?: ChatUsage | null;
}

/** Earlier turns loaded for a new question, at most. The prompt budget keeps fewer still. */
export const HISTORY_LIMIT = 100;
/**
 * And at most this many bytes of them (the newest whole messages that fit, always the newest one): 100 stored messages
 * can hold 12.8 MB (32,000 characters of 4 bytes each), past Neon HTTP's 10 MB answer. As much as a chat request
 * can resend (6 MB), so history a client resends is still found stored and not stored twice.
 */
export const HISTORY_BYTES = 6 * 1024 * 1024;
/**
 * The JSON one read of a conversation answers, at most (its newest whole messages that fit, always the newest one):
 * under Lambda's 6 MB response and Neon HTTP's 10 MB. A conversation that fits (almost all) is answered whole.
 */
export const PAGE_BYTES = 4 * 1024 * 1024;
const TITLE_CHARS = 80;

export const newId = () => `conv_${randomBytes(12).toString("hex")}`;

export const notFound = (id: string) =>
  new EngramError("not_found", "conversation.not_found", `No conversation with id ${JSON.stringify(id)}.`);

/** A chat's `conversationId` continues a conversation; one that names none says how to start one. */
const notFoundToContinue = (id: string) =>
  new EngramError(
    "not_found",
    "conversation.not_found",
    `No conversation with id ${JSON.stringify(id)} to continue. Leave conversationId out to start one (its id is in the answer), or ingest a document with this conversationId first.`,
  );

/** A title from the first question: its first line, shortened at a word. */
export function titleOf(question: string): string {
  const line = question.trim().split("\n")[0]?.replace(/\s+/g, " ").trim() ?? "";
  if (line.length <= TITLE_CHARS) return line;
  const cut = line.slice(0, TITLE_CHARS);
  const space = cut.lastIndexOf(" ");
  return `${space > TITLE_CHARS / 2 ? cut.slice(0, space) : cut}…`;
}

/**
 * The newest earlier turns of one of the caller's own conversations, oldest first. A
 * conversation of another user or tenant is a plain 404, like one that does not exist.
 */
export async function history(db: Db, caller: Caller, id: string): Promise<{ role: MessageRole; content: string }[]> {
  return historyFrom(await db.query(historyQuery(caller, id)), id);
}

/** `history`'s statement, for a batch of its own (core/gate: its tenant may come from the gate's check). */
export function historyQuery(caller: Caller, id: string): Query {
  return sql`
    select m.role, m.content from conversations c
    left join lateral (
      select id, role, content from (
        select id, role, content,
          sum(octet_length(content)) over (order by id desc) as running, row_number() over (order by id desc) as n
        from messages
        where tenant_id = c.tenant_id and owner = c.owner and conversation_id = c.id
        order by id desc limit ${HISTORY_LIMIT}
      ) newest where running <= ${HISTORY_BYTES} or n = 1
    ) m on true
    where c.tenant_id = ${Gate.tenantOf(caller)} and c.owner = ${caller.userId} and c.id = ${id}
    order by m.id`;
}

/** `history`'s answer from its statement's rows. */
export function historyFrom(rows: Row[], id: string): { role: MessageRole; content: string }[] {
  const found = rows as { role: MessageRole | null; content: string | null }[];
  if (!found.length) throw notFoundToContinue(id);
  return found.flatMap((row) => (row.role && row.content !== null ? [{ role: row.role, content: row.content }] : []));
}

/**
 * A statement for the head of a turn's batch when the turn continues a conversation: locks it and fails the batch
 * (CHANGED, core/db/errors.ts) when it was deleted since its history was read, as the turn would make it again.
 */
export function stillThere(caller: Caller, id: string): Query {
  return sql`select engram_expect(exists(
    select 1 from conversations c
    where c.tenant_id = ${caller.tenantId} and c.owner = ${caller.userId} and c.id = ${id}
    for no key update), 'the conversation was deleted')`;
}

/**
 * The statements that store a finished turn, for one atomic batch: the end user, the
 * conversation (created, or its `updated_at` moved), and the turn's messages in order.
 */
export function saveTurn(
  caller: Caller,
  turn: { conversationId: string; title: string; messages: NewMessage[] },
): Query[] {
  const { tenantId, userId: owner } = caller;
  const statements: Query[] = [];
  if (owner)
    statements.push(sql`insert into users (tenant_id, id) values (${tenantId}, ${owner}) on conflict do nothing`);
  statements.push(sql`
    insert into conversations as c (tenant_id, owner, id, title) values (${tenantId}, ${owner}, ${turn.conversationId}, ${turn.title})
    on conflict (tenant_id, owner, id) do update set updated_at = now(), title = coalesce(c.title, excluded.title)`);
  const col = <T>(f: (m: NewMessage) => T) => arr(turn.messages.map(f));
  statements.push(sql`
    insert into messages (tenant_id, owner, conversation_id, role, content, citations, model, usage)
    select ${tenantId}, ${owner}, ${turn.conversationId}, t.role, t.content, t.citations::jsonb, t.model, t.usage::jsonb
    from unnest(${col((m) => m.role)}::text[], ${col((m) => m.content)}::text[],
                ${col((m) => JSON.stringify(m.citations ?? []))}::text[], ${col((m) => m.model ?? null)}::text[],
                ${col((m) => (m.usage ? JSON.stringify(m.usage) : null))}::text[])
      with ordinality as t(role, content, citations, model, usage, n)
    order by t.n`);
  return statements;
}

const summaryColumns = sql`
  c.id, c.title, c.created_at as "createdAt", c.updated_at as "updatedAt",
  (select count(*)::int from messages m
    where m.tenant_id = c.tenant_id and m.owner = c.owner and m.conversation_id = c.id) as "messageCount"`;

/** The caller's own conversations, most recently active first, in keyset pages. */
export async function list(
  db: Db,
  caller: Caller,
  query: { limit: number; cursor?: string | undefined },
): Promise<{ conversations: ConversationSummary[]; nextCursor: string | null }> {
  const after = query.cursor ? Cursor.decode(query.cursor) : undefined;
  const rows = await db.query<ConversationSummary & { cursorAt: string }>(sql`
    select ${summaryColumns}, ${Cursor.timeOf(sql`c.updated_at`)} as "cursorAt"
    from conversations c
    where c.tenant_id = ${caller.tenantId} and c.owner = ${caller.userId}
      ${after ? sql`and (c.updated_at, c.id) < (${after.at}::timestamptz, ${after.tie})` : sql``}
    order by c.updated_at desc, c.id desc
    limit ${query.limit + 1}`);
  const page = rows.slice(0, query.limit);
  const last = page[page.length - 1];
  return {
    conversations: page.map(({ cursorAt: _cursor, ...conversation }) => normalizeSummary(conversation)),
    nextCursor: rows.length > query.limit && last ? Cursor.encode(last.cursorAt, last.id) : null,
  };
}

/**
 * One of the caller's own conversations with its messages, oldest first: all of them when their JSON fits in
 * PAGE_BYTES, else the newest that fit and `olderCursor`, which `before` takes for the ones before them (docs/contract.md).
 * Measured and cut in the database, so a long conversation never crosses the wire whole.
 */
export async function get(
  db: Db,
  caller: Caller,
  id: string,
  query: { before?: string | undefined } = {},
): Promise<ConversationView> {
  const before = query.before ? Cursor.decodeKey(query.before) : undefined;
  const rows = await db.query<
    ConversationSummary & {
      messages: StoredMessage[] | null;
      oldestId: number | null;
      oldestAt: string | null;
      more: boolean | null;
    }
  >(sql`
    select ${summaryColumns}, p.messages, p."oldestId", p."oldestAt", p.more
    from conversations c
    left join lateral (
      select json_agg(w.j order by w.id) filter (where w.kept) as messages,
             min(w.id) filter (where w.kept) as "oldestId",
             (array_agg(w.at order by w.id) filter (where w.kept))[1] as "oldestAt",
             bool_or(not w.kept) as more
      from (
        select s.id, s.j, s.at, (s.running <= ${PAGE_BYTES} or s.n = 1) as kept
        from (
          select m.id, x.j, ${Cursor.timeOf(sql`m.created_at`)} as at,
            sum(octet_length(x.j::text) + 1) over (order by m.id desc) as running,
            row_number() over (order by m.id desc) as n
          from messages m,
            lateral (select json_build_object('role', m.role, 'content', m.content, 'citations', m.citations,
                     'model', m.model, 'usage', m.usage, 'createdAt', m.created_at) as j) x
          where m.tenant_id = c.tenant_id and m.owner = c.owner and m.conversation_id = c.id
            ${before ? sql`and m.id < ${before.key}` : sql``}
        ) s
      ) w
    ) p on true
    where c.tenant_id = ${caller.tenantId} and c.owner = ${caller.userId} and c.id = ${id}`);
  const row = rows[0];
  if (!row) throw notFound(id);
  return {
    ...normalizeSummary(row),
    messages: (row.messages ?? []).map((m) => ({ ...m, createdAt: new Date(m.createdAt) })),
    olderCursor: row.more && row.oldestAt && row.oldestId !== null ? Cursor.encode(row.oldestAt, row.oldestId) : null,
  };
}

/** Deletes one of the caller's own conversations and its messages. Memory documents stay documents. */
export async function remove(db: Db, caller: Caller, id: string): Promise<{ id: string; deleted: true }> {
  const rows = await db.query<{ id: string }>(sql`
    delete from conversations where tenant_id = ${caller.tenantId} and owner = ${caller.userId} and id = ${id}
    returning id`);
  if (!rows[0]) throw notFound(id);
  return { id, deleted: true };
}

function normalizeSummary(row: ConversationSummary): ConversationSummary {
  return {
    id: row.id,
    title: row.title,
    messageCount: Number(row.messageCount),
    createdAt: new Date(row.createdAt),
    updatedAt: new Date(row.updatedAt),
  };
}
