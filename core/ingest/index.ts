import { randomUUID } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { sql } from "drizzle-orm";
import * as Admission from "../admission";
import type { Caller } from "../auth";
import { contexts, embeddingText, PRECEDING_TURN_CHARS, PRECEDING_TURNS, precedingText } from "../chunk/context";
import { contentHash } from "../chunk/hash";
import { htmlToText, isWebPage, pageTitle } from "../chunk/html";
import { type Location, locations } from "../chunk/location";
import { splitIntoChunks } from "../chunk/split";
import { config } from "../config";
import { arr, binaryVectorArray, type Db, perDb, type Query, type Row, vectorLiteral } from "../db";
import { CHANGED, retriedOn } from "../db/errors";
import * as Replica from "../db/replica";
import * as Document from "../document";
import { characters, type DocumentInput, MAX_CONTENT_CHARS, type PatchRequest } from "../document/schema";
import { embedder as defaultEmbedder, type Embedder } from "../embedding";
import { EngramError, upstreamError } from "../error";
import * as Indexer from "../search/indexer";
import * as Turns from "./turns";

export type DocumentStatus = "created" | "updated" | "unchanged";

export interface IngestResult {
  ingestionId: string;
  documents: { id: string; status: DocumentStatus; chunks: number }[];
  totals: { documents: number; chunks: number; embedded: number; reused: number };
  usage: { embeddingTokens: number };
}

interface Existing {
  id: string;
  /** Insertion order: a conversation's turns are ordered by it. */
  key: string;
  contentHash: string;
  title: string | null;
  source: string | null;
  metadata: Record<string, unknown>;
  importance: number;
  conversationId: string | null;
  chunkCount: number;
  live: boolean;
  /**
   * The TTL its expiry was last set with (expiry minus last write, both the same transaction's `now()`); null
   * without an expiry.
   */
  ttlSeconds: number | null;
}

interface Planned {
  id: string;
  input: DocumentInput;
  hash: string;
  status: DocumentStatus;
  /** Chunks to store; undefined when neither the content nor the title changed. */
  chunks?: {
    ordinal: number;
    content: string;
    context: string;
    /** The conversation turns before the document, embedded before its first chunk (empty elsewhere). */
    preceding: string;
    hash: string;
    tokens: number;
    location: Location | null;
  }[];
  chunkCount: number;
}

/**
 * The id a document gets without one: the same text always gets the same id, within a conversation for a turn. The
 * same words in two conversations are two turns: one id would move the turn from the first conversation to the second.
 */
export const derivedId = (content: string, conversationId?: string) =>
  `doc_${contentHash(conversationId === undefined ? content : `${conversationId}\n${content}`).slice(0, 32)}`;

/**
 * What a document's chunks are made from: its content, its title (every chunk's context starts with it) and the
 * chunking scheme. Raise CHUNKING when chunks or their context are made differently: the next ingest of each
 * document then re-chunks it, still reusing every embedding whose text did not change.
 */
const CHUNKING = "5";
// A conversation's turn is also embedded after the turns before it, so its conversation is part of the scheme: a
// document moved into one, or to another (or stored before turns were), is re-chunked on its next ingest.
const documentHash = (content: string, title: string | undefined, conversationId: string | undefined) =>
  contentHash(
    `${CHUNKING}${conversationId ? `+turns\u0000${conversationId}` : ""}\u0000${title ?? ""}\u0000${content}`,
  );

// Deep equality, whatever the order of object keys: jsonb gives metadata back in its own key order.
const same = (a: unknown, b: unknown) => isDeepStrictEqual(a ?? null, b ?? null);

export interface RunOptions {
  embedder?: Embedder;
  signal?: AbortSignal;
  /**
   * A document sent without `ttlSeconds` keeps the expiry it has (a PATCH that does not name it). Otherwise ingest
   * replaces a document with what is sent, expiry included: without `ttlSeconds` it no longer expires.
   */
  keepExpiry?: boolean;
  /** The documents are paged (an uploaded PDF): each chunk's location names its page, a one-page document's too. */
  paged?: boolean;
  /** A statement the batch starts with, that fails it when what the documents were planned on changed (`patch`). */
  guard?: Query;
}

/**
 * Adds or replaces documents in the caller's space: chunks them, embeds only chunk texts this
 * space (or the tenant's shared space) has not embedded with this model before, then stores
 * everything in one atomic batch. Sending the same request again changes nothing and embeds nothing.
 */
export async function run(
  db: Db,
  caller: Caller,
  documents: DocumentInput[],
  options: RunOptions = {},
): Promise<IngestResult> {
  const max = config().search.indexBacklogMax;
  const staged = await Indexer.enabled(db);
  const tenant = caller.tenantId;
  const { result, added, waiting } = await withReplanning(async () => {
    const planned = await prepare(db, caller, documents, options);
    const added = (uncounted.get(tenant) ?? 0) + planned.result.totals.embedded + planned.result.totals.reused;
    if (!staged || added < Math.max(1, Math.floor(max / 10))) {
      // The admission's lease goes back with the write (no round trip of its own): nothing of the ingest is left after
      // it. Not when the backlog is counted: an index catch-up may follow, still part of this ingest.
      const lease = Admission.releasedWithWrite(caller);
      const answers = await db.batch(lease ? [...planned.statements, lease.statement] : planned.statements);
      lease?.done();
      return { result: planned.settle(answers), added, waiting: undefined };
    }
    // The tenant's backlog, counted (up to the bound) in the same batch: no extra round trip.
    const results = await db.batch([...planned.statements, Indexer.backlogQuery(tenant, max)]);
    return { result: planned.settle(results), added, waiting: Number(results.at(-1)?.[0]?.n ?? 0) };
  });
  if (staged) uncounted.set(tenant, waiting === undefined ? added : 0);
  await Replica.written(db, tenant);
  // New chunks wait outside the HNSW index (core/search/indexer.ts) and every search scans the waiting ones
  // exactly (~2 µs a chunk), so past INDEX_BACKLOG_MAX an ingest indexes as many chunks as were added since the
  // last count before it answers: bursts are stored at full speed, a sustained stream slows to the index's pace.
  if (waiting !== undefined && waiting > max) {
    await Indexer.catchUp(db, {
      model: (options.embedder ?? defaultEmbedder()).model,
      tenantId: tenant,
      limit: added,
      budgetMs: Number.POSITIVE_INFINITY,
    });
  }
  return result;
}

/**
 * Chunks this process added per tenant since it last counted the tenant's backlog. Counting costs a scan of
 * up to INDEX_BACKLOG_MAX entries, so it happens once per tenth of the bound added (every ingest when the
 * bound is under 10); several processes may each add that much before one of them counts.
 */
const uncounted = new Map<string, number>();

/**
 * Runs `write` (which plans an ingest and stores it) again when a chunk it meant to reuse was
 * purged, or a stored turn it embeds a turn after was deleted or edited, between planning and
 * writing; callers that add statements of their own to an ingest's batch (chat's `remember`) wrap
 * their write in it too.
 */
export function withReplanning<T>(write: () => Promise<T>): Promise<T> {
  // The batch is atomic and planning reads again: a deadlock Postgres broke by aborting it (40P01) is run again too.
  return retriedOn(write, ["23502", "40P01"]);
}

/** An ingest planned and embedded but not yet stored: its statements form one atomic batch. */
export interface PreparedIngest {
  statements: Query[];
  /** The result as planned; a concurrent write may have changed what the batch did (`settle`). */
  result: IngestResult;
  /**
   * The result with each written document's status as the write found the document, from the batch's answers
   * (`statements` first).
   */
  settle(answers: Row[][]): IngestResult;
}

/**
 * Two documents of one request stored under one id, where one would silently replace the other: an id given that is
 * another document's derived id, or the same text twice without an id but with other fields (a title, metadata).
 * Ids given twice are refused by the schema; identical copies are one document.
 */
function refuseClashes(documents: DocumentInput[], ids: string[]): void {
  const first = new Map<string, number>();
  for (const [i, id] of ids.entries()) {
    const j = first.get(id);
    if (j === undefined) {
      first.set(id, i);
      continue;
    }
    const a = documents[j] as DocumentInput;
    const b = documents[i] as DocumentInput;
    if (a.id === undefined && b.id === undefined && same(a, b)) continue;
    const message =
      a.id === undefined && b.id === undefined
        ? `documents ${j} and ${i} have the same text without an id, so both would be stored as ${id}, but other fields differ; give each an id, or send it once`
        : `document ${b.id === undefined ? i : j}'s text, sent without an id, is stored as ${JSON.stringify(id)}, the id document ${b.id === undefined ? j : i} gives; give it another id`;
    throw new EngramError("input", "ingest.duplicate_id", message, {
      details: [{ path: `documents.${i}${b.id === undefined ? "" : ".id"}`, message, code: "custom" }],
    });
  }
}

/**
 * Plans an ingest (reads what is stored, chunks, embeds what is new) and returns the statements
 * that store it, without running them: `run` sends them as one batch, and chat sends them in the
 * same batch as the turn they belong to.
 */
export async function prepare(
  db: Db,
  caller: Caller,
  sentDocuments: DocumentInput[],
  options: RunOptions = {},
): Promise<PreparedIngest> {
  const documents = sentDocuments.map(withoutByteOrderMarks).map(fromWebPage);
  const cfg = config();
  const embedder = options.embedder ?? defaultEmbedder();
  const owner = caller.userId;

  // Same text without an id twice in one request is one document; the answer still has an entry per document sent.
  const sent = documents.map((doc) => doc.id ?? derivedId(doc.content, doc.conversationId));
  refuseClashes(sentDocuments, sent);
  const inputs = new Map<string, DocumentInput>();
  for (const [i, doc] of documents.entries()) inputs.set(sent[i] as string, doc);
  const ids = [...inputs.keys()];

  const existingQuery = sql`
    select id, key::text as key, content_hash as "contentHash", title, source, metadata, importance,
           conversation_id as "conversationId", chunk_count as "chunkCount",
           (deleted_at is null and (expires_at is null or expires_at > now())) as live,
           ttl_seconds as "ttlSeconds"
    from documents where tenant_id = ${caller.tenantId} and owner = ${owner} and id = any(${arr(ids)})`;
  // The turns before a conversation's first documents in this request are stored ones: read in the same round trip,
  // as for new documents (the latest of the conversation).
  const first = firstTurns(ids, inputs).map((id) => ({ id, conversation: inputs.get(id)?.conversationId as string }));
  const [existingRows, storedRows] = first.length
    ? await db.batch([existingQuery, storedTurnsQuery(caller, first, ids)])
    : [await db.query(existingQuery), []];
  const existing = new Map((existingRows as unknown as Existing[]).map((row) => [row.id, row]));

  const plans: Planned[] = ids.map((id) => {
    const input = inputs.get(id) as DocumentInput;
    const hash = documentHash(input.content, input.title, input.conversationId);
    const old = existing.get(id);
    const contentSame = old?.live && old.contentHash === hash;
    const fieldsSame =
      old?.live &&
      same(old.title, input.title ?? null) &&
      same(old.source, input.source ?? null) &&
      same(old.metadata, input.metadata ?? {}) &&
      old.importance === (input.importance ?? 5) &&
      same(old.conversationId, input.conversationId ?? null) &&
      // The same TTL again (a retried request) keeps the expiry it set; removing one that exists is a change.
      (input.ttlSeconds !== undefined
        ? Number(old.ttlSeconds) === input.ttlSeconds
        : options.keepExpiry || old.ttlSeconds === null);
    if (contentSame && fieldsSame) return { id, input, hash, status: "unchanged", chunkCount: old.chunkCount };
    const status: DocumentStatus = old?.live ? "updated" : "created";
    if (contentSame && old) return { id, input, hash, status, chunkCount: old.chunkCount };
    const split = splitIntoChunks(input.content, {
      maxTokens: cfg.chunk.maxTokens,
      overlapTokens: cfg.chunk.overlapTokens,
    });
    const context = contexts(
      input.title,
      input.content,
      split.map((c) => c.start),
    );
    const located = locations(input.content, split, input.title, options.paged);
    // The hash is set below, once the turns a conversation's document follows are known.
    const chunks = split.map((c, i) => ({
      ordinal: c.ordinal,
      content: c.content,
      context: context[i] ?? "",
      preceding: "",
      hash: "",
      tokens: c.tokens,
      location: located[i] ?? null,
    }));
    return { id, input, hash, status, chunks, chunkCount: chunks.length };
  });
  const stored = storedTurns(first, storedRows as unknown as StoredTurn[]);
  // A stored turn sent with new text follows the turns stored before it instead: read them (rare, so apart).
  const planOf = new Map(plans.map((p) => [p.id, p]));
  const edited = first.flatMap(({ id, conversation }) => {
    const key = existing.get(id)?.key;
    return key && planOf.get(id)?.chunks?.length === 1 ? [{ id, conversation, before: key }] : [];
  });
  if (edited.length) {
    for (const [id, turns] of storedTurns(edited, await db.query<StoredTurn>(storedTurnsQuery(caller, edited, ids)))) {
      stored.set(id, turns);
    }
  }
  const preceding = precedingTurns(plans, stored);
  // The stored turns a re-chunked turn is embedded after: the write checks they are still as read (see readTurnsHeld).
  const read = plans.flatMap((p) => (p.chunks?.length === 1 ? (stored.get(p.id) ?? []) : []));
  for (const p of plans) {
    for (const c of p.chunks ?? []) {
      if (c.ordinal === 0) c.preceding = preceding.get(p.id) ?? "";
      // A chunk's hash names the text it is embedded as (context, preceding turns and content), so embeddings are
      // reused only for exactly that text; its location (pages, headings) is stored beside it, never embedded.
      c.hash = contentHash(embeddingText(c.context, c.content, c.preceding));
    }
  }

  const changed = plans.filter((p) => p.status !== "unchanged");
  const rechunked = changed.filter((p) => p.chunks);
  const allChunks = rechunked.flatMap((p) => p.chunks ?? []);

  // Embed each distinct chunk text the caller's space (or the tenant's shared one) has no embedding for yet (with this
  // model). Not another end user's: `embedded` and `reused` would tell whether that user stored the same text.
  const wanted = [...new Set(allChunks.map((c) => c.hash))];
  // Stored documents re-chunked here: a chunk they keep may be of another model (the configured one changed since).
  const storedKeys = rechunked.flatMap((p) => {
    const old = existing.get(p.id);
    return old?.live ? [old.key] : [];
  });
  const known = new Set(
    wanted.length
      ? // One probe of `chunks_reuse` per hash. A join, or an EXISTS Postgres may hash (`offset 0` forbids it), was
        // planned under stale statistics (a fast-growing table) as a read of all the tenant's chunks: 39 ms at 5,000.
        // The row '' says a stored document holds chunks of another model (see replaceChunks).
        (
          await db.query<{ h: string }>(sql`
            select h from (
              select h, exists (
                select 1 from chunks c
                where c.tenant_id = ${caller.tenantId} and c.embedding_model = ${embedder.model} and c.content_hash = h
                  and c.owner in (${owner}, '')
                offset 0
              ) as known
              from unnest(${arr(wanted)}::text[]) h) x
            where known
            ${
              storedKeys.length
                ? // The tenant's other models first (chunks_reuse, two index descents when it has none).
                  sql`union all select '' where exists (
                    select 1 from chunks c where c.tenant_id = ${caller.tenantId}
                      and (c.embedding_model < ${embedder.model} or c.embedding_model > ${embedder.model})
                      and c.document_key = any(${arr(storedKeys)}::bigint[]))`
                : sql``
            }`)
        ).map((r) => r.h)
      : [],
  );
  const otherModel = known.delete("");
  const toEmbed = new Map<string, string>();
  for (const c of allChunks) {
    if (!known.has(c.hash) && !toEmbed.has(c.hash))
      toEmbed.set(c.hash, embeddingText(c.context, c.content, c.preceding));
  }
  const maxBatchBytes = db.capabilities.maxBatchBytes;
  if (maxBatchBytes) checkBatchSize(changed, toEmbed.size, embedder.dimensions, maxBatchBytes);
  const vectors = new Map<string, Float32Array>();
  let embeddingTokens = 0;
  if (toEmbed.size) {
    const texts = [...toEmbed.values()];
    const result = await embedder.embed(texts, { signal: options.signal }).catch((error) => {
      throw upstreamError(error, "embedding");
    });
    embeddingTokens = result.tokens;
    for (const [i, hash] of [...toEmbed.keys()].entries()) vectors.set(hash, result.vectors[i] as Float32Array);
  }

  const ingestionId = `ing_${randomUUID().replaceAll("-", "")}`;
  const results = plans.map((p) => ({ id: p.id, status: p.status, chunks: p.chunkCount }));
  const totals = {
    documents: plans.length,
    chunks: plans.reduce((n, p) => n + p.chunkCount, 0),
    embedded: toEmbed.size,
    // Every chunk written either had its text embedded (once for all the request's chunks of that text) or reused a
    // vector.
    reused: allChunks.length - toEmbed.size,
  };

  const statements: Query[] = options.guard ? [options.guard] : [];
  let written: number | undefined;
  if (changed.length && owner) {
    statements.push(
      sql`insert into users (tenant_id, id) values (${caller.tenantId}, ${owner}) on conflict do nothing`,
    );
  }
  // Every document's conversation, unchanged ones' too: sent again after its conversation was deleted, a document
  // makes it again, as the first ingest did (the same request, the same state).
  const conversations = [...new Set(plans.map((p) => p.input.conversationId).filter((c): c is string => !!c))];
  if (conversations.length) {
    statements.push(sql`
      insert into conversations (tenant_id, owner, id)
      select ${caller.tenantId}, ${owner}, c from unnest(${arr(conversations)}::text[]) c
      on conflict do nothing`);
  }
  if (changed.length) {
    written = statements.length;
    statements.push(upsertDocuments(caller.tenantId, owner, changed, options.keepExpiry ?? false));
    if (rechunked.length) {
      statements.push(
        ...replaceChunks(caller.tenantId, owner, embedder, rechunked, vectors, await vectorOidOf(db), read, otherModel),
      );
    }
    // A stored turn with new text (or moved to another conversation) leaves the context of the turns after it.
    const rewritten = rechunked.flatMap((p) => {
      const old = existing.get(p.id);
      return old?.live && old.conversationId ? [{ conversation: old.conversationId, key: old.key }] : [];
    });
    if (rewritten.length) {
      statements.push(sql`
        with rewritten as (
          select ${caller.tenantId}::uuid as tenant_id, ${owner}::text as owner, c as conversation_id, k as key
          from unnest(${arr(rewritten.map((r) => r.conversation))}::text[], ${arr(rewritten.map((r) => r.key))}::bigint[])
            as x(c, k)),
        ${Turns.forgetting(sql`select tenant_id, owner, conversation_id, key from rewritten`, ids)}
        select 1`);
    }
  }
  // The record keeps the statuses the write found (left by the upsert, see WRITTEN_STATUSES), as the answer does.
  const recorded = written === undefined ? sql`${JSON.stringify(results)}::jsonb` : recordedStatuses(results);
  statements.push(sql`
    insert into ingestions (id, tenant_id, owner, documents, document_count, chunk_count, embedded, reused, embedding_tokens)
    values (${ingestionId}, ${caller.tenantId}, ${owner}, ${recorded}, ${totals.documents},
            ${totals.chunks}, ${totals.embedded}, ${totals.reused}, ${embeddingTokens})`);
  const perSent = (list: typeof results) => {
    const byId = new Map(list.map((d) => [d.id, d]));
    return sent.map((id) => byId.get(id) as (typeof results)[number]);
  };
  const result: IngestResult = { ingestionId, documents: perSent(results), totals, usage: { embeddingTokens } };
  return {
    statements,
    result,
    // Totals count documents, chunks and embedding work, none of which depends on a status: only statuses change.
    settle(answers) {
      if (written === undefined) return result;
      const found = JSON.parse(String(answers[written]?.[0]?.statuses)) as Record<string, DocumentStatus>;
      return { ...result, documents: perSent(results.map((d) => ({ ...d, status: found[d.id] ?? d.status }))) };
    },
  };
}

/**
 * A document without the byte-order mark its text may open with (a file read as UTF-8 keeps it): an encoding's mark,
 * not text. PGlite drops it when reading a value back, so a document stored with it read back without it there, and
 * sent again as read was "updated" and embedded again; the same text on `pg` kept it. Stripped on every driver.
 */
function withoutByteOrderMarks(doc: DocumentInput): DocumentInput {
  const strip = <T extends string | null | undefined>(text: T): T =>
    (text?.startsWith("\uFEFF") ? text.replace(/^\uFEFF+/, "") : text) as T;
  if (![doc.content, doc.title, doc.source].some((text) => text?.startsWith("\uFEFF"))) return doc;
  // A title or source that was only the mark is none.
  return {
    ...doc,
    content: strip(doc.content),
    title: strip(doc.title) || undefined,
    source: strip(doc.source) || undefined,
  };
}

/**
 * A whole web page sent as content (a doctype or <html> first) is stored as its text, its <title> the title when none
 * is sent: its tags, scripts and styles made three times the chunks, which no question matched and answers quoted.
 * The upload route reads pages more closely (it keeps the main element, drops navigation), with a parser this
 * function's bundle does not carry.
 */
function fromWebPage(doc: DocumentInput): DocumentInput {
  if (!isWebPage(doc.content)) return doc;
  const content = htmlToText(doc.content);
  if (!/\p{L}|\p{N}/u.test(content)) {
    throw new EngramError(
      "input",
      "document.empty_content",
      `The web page sent as ${doc.id ?? "a document"} holds no text.`,
    );
  }
  const count = characters(content);
  if (count > MAX_CONTENT_CHARS) {
    throw new EngramError(
      "too_large",
      "document.too_large",
      `The web page sent as ${doc.id ?? "a document"} holds ${count} characters of text; the limit is ${MAX_CONTENT_CHARS}.`,
    );
  }
  return { ...doc, content, title: doc.title ?? pageTitle(doc.content) };
}

/** The first PRECEDING_TURNS documents of each conversation in a request: the ones that may follow stored turns. */
function firstTurns(ids: string[], inputs: Map<string, DocumentInput>): string[] {
  const seen = new Map<string, number>();
  return ids.filter((id) => {
    const conversation = inputs.get(id)?.conversationId;
    if (!conversation) return false;
    const n = seen.get(conversation) ?? 0;
    seen.set(conversation, n + 1);
    return n < PRECEDING_TURNS;
  });
}

interface StoredTurn {
  /** 1-based position in the list asked for. */
  i: number;
  key: string;
  content: string;
}

/**
 * For each document asked for, the last PRECEDING_TURNS live turns (documents of one chunk) of its conversation
 * stored before `before` (a key; without it, the latest), other than this request's documents; cut as precedingText
 * keeps them (one character more, so that it knows a turn was longer).
 */
function storedTurnsQuery(
  caller: Caller,
  list: { id: string; conversation: string; before?: string }[],
  ids: string[],
): Query {
  return sql`
    select t.i::int as i, p.key::text as key, p.content
    from unnest(${arr(list.map((x) => x.conversation))}::text[], ${arr(list.map((x) => x.before ?? null))}::bigint[])
      with ordinality as t(conversation, before, i)
    cross join lateral (
      select left(d.content, ${PRECEDING_TURN_CHARS + 1}) as content, d.key from documents d
      where d.tenant_id = ${caller.tenantId} and d.owner = ${caller.userId} and d.conversation_id = t.conversation
        and d.key < coalesce(t.before, 9223372036854775807)
        and d.chunk_count = 1 and d.deleted_at is null and (d.expires_at is null or d.expires_at > now())
        and d.id <> all(${arr(ids)}::text[])
      order by d.key desc limit ${PRECEDING_TURNS}) p
    order by t.i, p.key`;
}

/** The stored turns read for each document asked for, oldest first. */
function storedTurns(list: { id: string }[], rows: StoredTurn[]): Map<string, StoredTurn[]> {
  const stored = new Map<string, StoredTurn[]>(list.map(({ id }) => [id, []]));
  for (const row of rows) stored.get(list[Number(row.i) - 1]?.id as string)?.push(row);
  return stored;
}

/**
 * The text each re-chunked conversation turn (a document of one chunk) follows (`precedingText`): the stored
 * documents of its conversation before it (for a conversation's first documents in the request), then the ones sent
 * before it in the request.
 */
function precedingTurns(plans: Planned[], stored: Map<string, StoredTurn[]>): Map<string, string> {
  const preceding = new Map<string, string>();
  const sent = new Map<string, string[]>();
  for (const p of plans) {
    const conversation = p.input.conversationId;
    if (!conversation) continue;
    const before = sent.get(conversation) ?? [];
    // A turn is a document of one chunk; a longer one (a transcript, a report) has its own context, and is not
    // the context of the turns after it either.
    if (p.chunks?.length === 1) {
      const turns = (stored.get(p.id) ?? []).map((t) => t.content);
      preceding.set(p.id, precedingText([...turns, ...before.slice(-PRECEDING_TURNS)]));
    }
    if (p.chunkCount === 1) before.push(p.input.content);
    sent.set(conversation, before);
  }
  return preceding;
}

// A batch is one request to a driver with a limit (Neon's HTTP endpoint); the estimate keeps 5% from it.
const BATCH_MARGIN = 0.95;

/**
 * Bytes a text costs in the Neon driver's request body as an element of an array parameter
 * (every value of the write travels that way): quoted and backslash-escaped as a Postgres array
 * literal, that escaped again as a JSON string, in UTF-8, plus its comma. Quotes cost 4 bytes,
 * a newline 2, CJK 3, where counting characters said 1.
 */
function neonTextBytes(text: string): number {
  const literal = `"${text.replace(/[\\"]/g, "\\$&")}",`;
  return Buffer.byteLength(JSON.stringify(literal)) - 2;
}

/**
 * A new vector's float as `vectorLiteral` writes it (7 significant digits) with its comma: 11.8
 * bytes on average for OpenAI's 1,536-dimension unit vectors (values around ±0.03 take
 * "-0.0xxxxxxx"), bounded here at 12. A model whose values are rarely that small could still
 * exceed it; Neon's own 413 then answers 413 too (core/db/errors.ts).
 */
const NEON_FLOAT_BYTES = 12;
/** The statements' SQL, the ingestion record and the JSON around them. */
const NEON_BATCH_OVERHEAD = 16 * 1024;

/**
 * Refuses, before anything is paid to embed it, a write too big for one Neon batch, measured as
 * the driver encodes it: each document's text fields once, each new chunk's text, hash and ids
 * in the insert and again (ids and hashes) in the delete, each new vector as text.
 */
function checkBatchSize(changed: Planned[], newVectors: number, dimensions: number, maxBatchBytes: number): void {
  let bytes = NEON_BATCH_OVERHEAD + newVectors * (dimensions * NEON_FLOAT_BYTES + 6);
  for (const p of changed) {
    const i = p.input;
    bytes += neonTextBytes(i.content) + neonTextBytes(JSON.stringify(i.metadata ?? {}));
    bytes += neonTextBytes(p.id) * 2 + neonTextBytes(i.title ?? "") + neonTextBytes(i.source ?? "");
    bytes += neonTextBytes(i.conversationId ?? "") + p.hash.length + 64;
    for (const c of p.chunks ?? []) {
      bytes += neonTextBytes(c.content) + neonTextBytes(c.context) + neonTextBytes(c.preceding);
      bytes += 2 * (neonTextBytes(p.id) + c.hash.length + 16) + 32;
      if (c.location) bytes += 2 * neonTextBytes(JSON.stringify(c.location));
    }
  }
  if (bytes > maxBatchBytes * BATCH_MARGIN) {
    throw new EngramError(
      "too_large",
      "request.too_large",
      `This request would send about ${(bytes / 1048576).toFixed(1)} MB to the database in one atomic batch; Neon's limit is ${maxBatchBytes / 1048576} MB. Send fewer or smaller documents per request.`,
      { details: { encodedBytes: Math.ceil(bytes), limitBytes: maxBatchBytes } },
    );
  }
}

/**
 * The transaction-local setting where the documents upsert leaves `{id: key}` of the documents it wrote, read by the
 * chunk statements of the same batch. Looking the keys up again by (tenant, owner, id) was planned, under the
 * statistics of a fast-growing table (which say a tenant has a handful of documents), as a read of all the owner's
 * documents: 2 to 6 ms a request at 5,000 documents, growing with every ingest.
 */
const DOCUMENT_KEYS = "engram.ingest_document_keys";
const writtenDocuments = sql`jsonb_each_text(current_setting(${DOCUMENT_KEYS})::jsonb) as d(id, key)`;

/**
 * The transaction-local setting where the documents upsert leaves `{id: status}` of the documents it was given:
 * "created", "updated" or "unchanged" as the write found each document, whatever planning read before. The upsert
 * answers it too.
 */
const WRITTEN_STATUSES = "engram.ingest_written_statuses";
function upsertDocuments(tenantId: string, owner: string, plans: Planned[], keepExpiry: boolean): Query {
  const col = <T>(f: (p: Planned) => T) => arr(plans.map(f));
  // A revived (soft-deleted or expired) document starts over: new created_at, no access history. The documents' keys
  // stay in a transaction-local setting for the chunk statements after it (see DOCUMENT_KEYS).
  // A document is "created" when this write set its created_at (now(): this transaction's start), as an insert and a
  // revival do, else "updated": also one planning did not see, which another request stored since. Read from the
  // written row, as RETURNING cannot see the row it replaced.
  return sql`
    with d as (
    insert into documents as d (tenant_id, owner, id, title, source, metadata, content, content_hash, importance,
                                conversation_id, chunk_count, expires_at, ttl_seconds)
    select ${tenantId}, ${owner}, t.id, t.title, t.source, t.metadata::jsonb, t.content, t.hash, t.importance,
           t.conversation_id, t.chunk_count, case when t.ttl is null then null else now() + make_interval(secs => t.ttl) end,
           t.ttl
    from unnest(${col((p) => p.id)}::text[], ${col((p) => p.input.title ?? null)}::text[],
                ${col((p) => p.input.source ?? null)}::text[], ${col((p) => JSON.stringify(p.input.metadata ?? {}))}::text[],
                ${col((p) => p.input.content)}::text[], ${col((p) => p.hash)}::text[], ${col((p) => p.input.importance ?? 5)}::int[],
                ${col((p) => p.input.conversationId ?? null)}::text[], ${col((p) => p.chunkCount)}::int[],
                ${col((p) => p.input.ttlSeconds ?? null)}::int[])
      as t(id, title, source, metadata, content, hash, importance, conversation_id, chunk_count, ttl)
    on conflict (tenant_id, owner, id) do update set
      title = excluded.title, source = excluded.source, metadata = excluded.metadata, content = excluded.content,
      content_hash = excluded.content_hash, importance = excluded.importance, conversation_id = excluded.conversation_id,
      chunk_count = excluded.chunk_count,
      -- A live document keeps its expiry when sent the time to live it was set with, or, with keepExpiry, none.
      expires_at = case when d.deleted_at is null and (d.expires_at is null or d.expires_at > now())
                          and (excluded.ttl_seconds = d.ttl_seconds or ${keepExpiry}::boolean and excluded.ttl_seconds is null)
                        then d.expires_at else excluded.expires_at end,
      ttl_seconds = case when d.deleted_at is null and (d.expires_at is null or d.expires_at > now())
                           and ${keepExpiry}::boolean and excluded.ttl_seconds is null
                         then d.ttl_seconds else excluded.ttl_seconds end,
      access_count = case when d.deleted_at is null and (d.expires_at is null or d.expires_at > now()) then d.access_count else 0 end,
      last_accessed_at = case when d.deleted_at is null and (d.expires_at is null or d.expires_at > now()) then d.last_accessed_at end,
      created_at = case when d.deleted_at is null and (d.expires_at is null or d.expires_at > now()) then d.created_at else now() end,
      deleted_at = null,
      updated_at = now()
    -- What another request stored since planning, exactly as this one would write it, stays as it is: the same
    -- request sent twice at once writes once (no second version of the row or of its chunks), and answers "unchanged".
    where not coalesce(
      d.deleted_at is null and (d.expires_at is null or d.expires_at > now())
      and d.content_hash = excluded.content_hash and d.title is not distinct from excluded.title
      and d.source is not distinct from excluded.source and d.metadata = excluded.metadata
      and d.importance = excluded.importance and d.conversation_id is not distinct from excluded.conversation_id
      and case when excluded.ttl_seconds is null then ${keepExpiry}::boolean or d.ttl_seconds is null
               else excluded.ttl_seconds = d.ttl_seconds end, false)
    returning d.id, d.key, d.created_at = now() as created)
    select set_config(${DOCUMENT_KEYS}, (select coalesce(jsonb_object_agg(d.id, d.key), '{}')::text from d), true),
           set_config(${WRITTEN_STATUSES}, (
             select coalesce(jsonb_object_agg(t.id,
                      case when d.id is null then 'unchanged' when d.created then 'created' else 'updated' end), '{}')::text
             from unnest(${col((p) => p.id)}::text[]) t(id) left join d on d.id = t.id), true) as statuses`;
}

/** The ingestion record's documents as planned (`results`), with the statuses the upsert left (WRITTEN_STATUSES). */
function recordedStatuses(results: IngestResult["documents"]): Query {
  return sql`(
    select jsonb_agg(case when w.status is null then e else jsonb_set(e, '{status}', to_jsonb(w.status)) end order by x.n)
    from jsonb_array_elements(${JSON.stringify(results)}::jsonb) with ordinality as x(e, n)
    left join jsonb_each_text(current_setting(${WRITTEN_STATUSES})::jsonb) as w(id, status) on w.id = x.e ->> 'id')`;
}

const vectorOid = perDb((db) =>
  db.query<{ oid: number }>(sql`select 'vector'::regtype::oid::int as oid`).then(([row]) => Number(row?.oid)),
);

/** Where vectors travel as binary parameters, the database's oid of pgvector's `vector` type; elsewhere undefined. */
const vectorOidOf = (db: Db): Promise<number> | undefined =>
  db.capabilities.binaryVectors ? vectorOid(db) : undefined;

/**
 * Swaps the chunks of re-chunked documents inside the same batch: inserts the (ordinal, text)
 * pairs that are new, taking reused embeddings from the owner's (or the shared space's) chunks, then deletes
 * the pairs that are gone. Unchanged chunks are not rewritten (no index churn).
 */
function replaceChunks(
  tenantId: string,
  owner: string,
  embedder: Embedder,
  plans: Planned[],
  vectors: Map<string, Float32Array>,
  vectorOid: number | undefined,
  read: StoredTurn[],
  /** The stored documents hold chunks of another model: those kept as they are take this model's vectors. */
  otherModel: boolean,
): Query[] {
  const model = embedder.model;
  // A chunk's turns before are written only while the turns they come from are still as read, else null: the
  // batch fails on the column's not-null (23502) and withReplanning reads them again.
  const preceding = read.length
    ? sql`case when ${readTurnsHeld(tenantId, read)} then t.preceding end`
    : sql`t.preceding`;
  const rows = plans.flatMap((p) => (p.chunks ?? []).map((c) => ({ doc: p.id, ...c })));
  const docIds = arr(rows.map((r) => r.doc));
  const ordinals = arr(rows.map((r) => r.ordinal));
  const hashes = arr(rows.map((r) => r.hash));
  const located = arr(rows.map((r) => (r.location ? JSON.stringify(r.location) : null)));
  // Each row names its new vector by position (null: reuse an existing embedding).
  const order = [...vectors.keys()];
  const position = new Map(order.map((hash, i) => [hash, i + 1]));
  const slot = arr(rows.map((r) => position.get(r.hash) ?? null));
  const ordered = order.map((h) => vectors.get(h) as Float32Array);
  // On `pg` the new vectors travel as one binary vector[] (no float formatting); elsewhere as text.
  const newVectors =
    vectorOid === undefined
      ? sql`unnest(${arr(ordered.map(vectorLiteral))}::text[]::vector[])`
      : sql`unnest(${sql.param(binaryVectorArray(ordered, embedder.dimensions, vectorOid))}::vector[])`;
  // A row's vector: the one embedded for it here (`nv`), else an existing one of its text (`t.hash`) and this model.
  const vectorOfRow = sql`coalesce(nv.embedding, (
      select k.embedding from chunks k
      where k.tenant_id = ${tenantId} and k.embedding_model = ${model} and k.content_hash = t.hash
        and k.owner in (${owner}, '') limit 1))`;
  const movedToModel = sql`
      update chunks c set embedding = v.embedding, embedding_model = ${model}, indexed = false
      from (
        select d.key::bigint as key, t.ordinal, t.hash, t.location, ${vectorOfRow} as embedding
        from unnest(${docIds}::text[], ${ordinals}::int[], ${hashes}::text[], ${slot}::int[], ${located}::text[])
          as t(doc, ordinal, hash, slot, location)
        join ${writtenDocuments} on d.id = t.doc
        left join ${newVectors} with ordinality as nv(embedding, slot) on nv.slot = t.slot) v
      where c.document_key = v.key and c.ordinal = v.ordinal and c.content_hash = v.hash
        and c.location is not distinct from v.location::jsonb and c.embedding_model <> ${model}
        and v.embedding is not null`;
  return [
    sql`
      insert into chunks (tenant_id, document_key, owner, ordinal, content, context, preceding, content_hash, tokens, location, embedding, embedding_model)
      select ${tenantId}, d.key::bigint, ${owner}, t.ordinal, t.content, t.context, ${preceding}, t.hash, t.tokens, t.location::jsonb,
             ${vectorOfRow}, ${model}
      from unnest(${docIds}::text[], ${ordinals}::int[], ${arr(rows.map((r) => r.content))}::text[],
                  ${arr(rows.map((r) => r.context))}::text[], ${arr(rows.map((r) => r.preceding))}::text[], ${hashes}::text[],
                  ${arr(rows.map((r) => r.tokens))}::int[], ${slot}::int[], ${located}::text[])
        as t(doc, ordinal, content, context, preceding, hash, tokens, slot, location)
      join ${writtenDocuments} on d.id = t.doc
      left join ${newVectors} with ordinality as nv(embedding, slot) on nv.slot = t.slot
      where not exists (
        select 1 from chunks c where c.document_key = d.key::bigint and c.ordinal = t.ordinal and c.content_hash = t.hash
          and c.location is not distinct from t.location::jsonb)`,
    // A chunk the document keeps as it was, stored under another model (the configured one changed, no `engram
    // reembed` yet): its text was embedded with this model above, as the reuse probe found no vector of it; the
    // vector is kept, not paid for and dropped, and the indexer takes the chunk into this model's graph.
    ...(otherModel ? [movedToModel] : []),
    // Documents new to this request have no chunks to remove, but another request may have stored the same
    // document since this one planned: the delete runs anyway and leaves this request's version whole.
    sql`
      delete from chunks c using documents d
      where d.key = any(array(
          select d.key::bigint from ${writtenDocuments} where d.id = any(${arr(plans.map((p) => p.id))}::text[])))
        -- The tenant compared as text, a filter no index serves: usable by one, it made Postgres (under the same
        -- stale statistics) read all the owner's documents instead of probing the keys, 4 ms at 5,000 documents.
        and d.tenant_id::text = ${tenantId} and d.owner = ${owner} and c.document_key = d.key
        and not exists (
          select 1 from unnest(${docIds}::text[], ${ordinals}::int[], ${hashes}::text[], ${located}::text[])
            as t(doc, ordinal, hash, location)
          where t.doc = d.id and t.ordinal = c.ordinal and t.hash = c.content_hash
            and c.location is not distinct from t.location::jsonb)`,
  ];
}

/**
 * Whether the stored turns an ingest read (to embed turns after them) are all still live and hold the text read,
 * each held `for share` until the batch commits. A turn deleted or edited meanwhile would otherwise leave its old
 * text in the new turn's context: the delete's own statement (core/ingest/turns.ts) cannot see a turn not yet
 * committed. Its lock on the turn (Document.remove) orders the two: a delete that holds it first commits before
 * this reads the row again (and finds it gone); one that waits for this batch then sees the new turn.
 */
function readTurnsHeld(tenantId: string, read: StoredTurn[]): Query {
  const keys = [...new Map(read.map((t) => [t.key, t.content])).entries()];
  return sql`(
    select count(*) from (
      select 1 from documents d
      join unnest(${arr(keys.map(([key]) => key))}::bigint[], ${arr(keys.map(([, content]) => content))}::text[]) as r(key, content)
        on d.key = r.key
      where d.tenant_id = ${tenantId} and d.deleted_at is null and (d.expires_at is null or d.expires_at > now())
        and left(d.content, ${PRECEDING_TURN_CHARS + 1}) = r.content
      for share of d) held) = ${keys.length}`;
}

/**
 * Changes a document of the caller's own through the same write path as ingest: changed content
 * is re-chunked and only changed chunks are embedded again.
 */
export async function patch(db: Db, caller: Caller, id: string, change: PatchRequest, signal?: AbortSignal) {
  // The write checks that the document is still as read (Document.unchanged): a delete or another change that
  // committed in between is read again, so a PATCH never revives a deleted document (it is 404) or undoes another.
  const result = await retriedOn(async () => {
    const current = await Document.own(db, caller, id);
    return run(
      db,
      caller,
      [
        {
          id,
          content: change.content ?? current.content,
          title: change.title === null ? undefined : (change.title ?? current.title ?? undefined),
          source: current.source ?? undefined,
          metadata: change.metadata ?? (current.metadata as DocumentInput["metadata"]),
          importance: change.importance ?? current.importance,
          conversationId: current.conversationId ?? undefined,
          ttlSeconds: change.ttlSeconds ?? undefined,
        },
      ],
      // One batch: the new content and the new or removed TTL land together or not at all.
      {
        signal,
        keepExpiry: change.ttlSeconds === undefined,
        guard: Document.unchanged(caller, id, current.version),
      },
    );
  }, [CHANGED]);
  const doc = await Document.get(db, caller, id, { track: false });
  return { ...doc, status: result.documents[0]?.status ?? "unchanged", totals: result.totals };
}
