/**
 * What a user could do without Engram, over the same stored text: plain SQL on a table of their own, sharing no
 * code with Engram's search. Each chunk's text is its document's title and its content, as a user would index
 * them; the lexemes come from the same text search configuration. A question asked for an end user searches that
 * user's chunks only, with statistics of their own (as Engram keeps them per owner).
 * - `fts`: Postgres full-text search, any of the question's lexemes (OR), ranked by `ts_rank_cd`.
 * - `bm25`: Okapi BM25 (k1 1.2, b 0.75) over the same lexemes, its statistics counted exactly at query time.
 */
import type { Db } from "../core/db";

export type Baseline = "fts" | "bm25";
export const BASELINES: Baseline[] = ["fts", "bm25"];

/** Builds the baseline's own table from the tenant's stored chunks (content and title, no Engram context). */
export async function prepare(db: Db, tenantId: string, textConfig: string): Promise<void> {
  await db.query({ text: "drop table if exists baseline_chunks", params: [] });
  await db.query({
    text: "create table baseline_chunks (id bigint, owner text, document_id text, content text, tsv tsvector)",
    params: [],
  });
  await db.query({
    text: `insert into baseline_chunks
       select c.id, d.owner, d.id, c.content, to_tsvector($2::regconfig, coalesce(d.title, '') || E'\\n' || c.content)
       from chunks c join documents d on d.key = c.document_key
       where c.tenant_id = $1 and d.deleted_at is null`,
    params: [tenantId, textConfig],
  });
  await db.query({ text: "create index on baseline_chunks using gin (tsv)", params: [] });
  await db.query({ text: "create index on baseline_chunks (owner)", params: [] });
  await db.query({ text: "analyze baseline_chunks", params: [] });
}

// The question's lexemes as the configuration makes them, joined by OR (cast, not parsed again: no second stemming).
const ANY_LEXEME = `replace(plainto_tsquery($2::regconfig, $1)::text, ' & ', ' | ')::tsquery`;

const SQL: Record<Baseline, string> = {
  fts: `
    select document_id as "documentId", content
    from baseline_chunks
    where owner = $4 and tsv @@ ${ANY_LEXEME}
    order by ts_rank_cd(tsv, ${ANY_LEXEME}) desc, id
    limit $3`,
  bm25: `
    with terms as (
      select distinct lexeme from unnest(tsvector_to_array(to_tsvector($2::regconfig, $1))) lexeme),
    corpus as (
      select count(*)::float8 as n, avg(length(tsv))::float8 as avgdl from baseline_chunks where owner = $4),
    idf as (
      select t.lexeme, ln(1 + (corpus.n - f.df + 0.5) / (f.df + 0.5)) as idf
      from terms t cross join corpus
      cross join lateral (
        select count(*)::float8 as df from baseline_chunks b
        where b.owner = $4 and b.tsv @@ ('''' || replace(replace(t.lexeme, '\\', '\\\\'), '''', '''''') || '''')::tsquery) f
      where f.df > 0),
    scored as (
      select b.id, b.document_id, b.content,
             sum(i.idf * e.tf * 2.2 / (e.tf + 1.2 * (0.25 + 0.75 * length(b.tsv) / (select avgdl from corpus)))) as score
      from baseline_chunks b
      cross join lateral (
        select u.lexeme, coalesce(array_length(u.positions, 1), 1) as tf from unnest(b.tsv) u) e
      join idf i on i.lexeme = e.lexeme
      where b.owner = $4 and b.tsv @@ ${ANY_LEXEME}
      group by b.id, b.document_id, b.content)
    select document_id as "documentId", content from scored order by score desc, id limit $3`,
};

/** The baseline's top `k` for a question asked of an end user's chunks ("": the shared space's). */
export async function search(
  db: Db,
  baseline: Baseline,
  question: string,
  owner: string,
  textConfig: string,
  k: number,
): Promise<{ documentId: string; content: string }[]> {
  return db.query<{ documentId: string; content: string }>({
    text: SQL[baseline],
    params: [question, textConfig, k, owner],
  });
}
