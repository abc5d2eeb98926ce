/**
 * The keyword leg: Okapi BM25 over Postgres full-text lexemes, in SQL, so it runs the same on every driver and
 * stays inside the search's one statement. Why BM25 and how the candidates are bounded: docs/search.md.
 */
import { type SQL, sql } from "drizzle-orm";
import { arr } from "../db";
import type { Where } from "./index";

/** BM25's term-frequency saturation and length normalization, at their usual values (Robertson & Zaragoza). */
export const K1 = 1.2;
export const B = 0.75;

export interface KeywordQuery {
  /** The question as the caller wrote it: any text, never parsed as tsquery syntax. */
  text: string;
  textConfig: string;
  tenantId: string;
  /** The owners whose statistics (and chunks) the search reads. */
  owners: string[];
  where: Where;
  /** Ranked matches to return. */
  n: number;
  /** Matches ranked at most. */
  cap: number;
}

/**
 * CTEs ending in `kw(id, rank)`, the `n` best chunks by BM25, and `kwmax(top)`, the most a chunk could score for
 * this question (every word, saturated), which keyword mode divides by.
 *
 * The question's lexemes come from `to_tsvector` (stop words out, stemmed per the text configuration), so
 * punctuation and tsquery operators in it are plain text. A chunk matches on any of them (OR). Document
 * frequencies, the chunk count and the average length come from `search_terms` (migrations/0009), summed over
 * the scope's owners. Matches are gathered from the rarest lexemes first, as long as their summed frequencies
 * stay within `cap` (the rarest always), and every gathered chunk is scored on all lexemes: a chunk holding only
 * the commonest words of a question is the one a cap may leave out, and it would rank last.
 */
export function candidates(q: KeywordQuery): SQL[] {
  const who = sql`${arr(q.owners)}::text[]`;
  return [
    sql`kwt as materialized (
      select t.lexeme, greatest(coalesce(sum(s.chunks), 0), 0)::float8 as df
      from unnest(tsvector_to_array(to_tsvector(${q.textConfig}::regconfig, ${q.text}))) t(lexeme)
      left join search_terms s on s.tenant_id = ${q.tenantId} and s.owner = any(${who}) and s.lexeme = t.lexeme
      group by t.lexeme)`,
    sql`kwc as materialized (
      select greatest(coalesce(sum(chunks), 0), 1)::float8 as n,
             greatest(coalesce(sum(length), 0), 1)::float8 / greatest(coalesce(sum(chunks), 0), 1) as avgdl
      from search_terms where tenant_id = ${q.tenantId} and owner = any(${who}) and lexeme = '')`,
    sql`kwi as materialized (
      select lexeme, df, ln(1 + ((select n from kwc) - df + 0.5) / (df + 0.5)) as idf,
             sum(df) over (order by df, lexeme) as through
      from kwt where df > 0)`,
    sql`kwmax as materialized (select greatest(coalesce(sum(idf), 0) * ${K1 + 1}, 1e-9)::float8 as top from kwi)`,
    // A lexeme as a tsquery operand, quoted so that it is taken verbatim (no second normalization).
    sql`kwq as materialized (
      select tsquery_any(('''' || replace(replace(lexeme, '\\', '\\\\'), '''', '''''') || '''')::tsquery) as q
      from kwi where through <= ${q.cap} or df = (select min(df) from kwi))`,
    sql`kwm as materialized (
      select c.id, c.tsv from chunks c
      where c.tsv @@ (select q from kwq) and ${q.where.chunks}
        and exists (select 1 from documents d where d.key = c.document_key and ${q.where.documents})
      limit ${q.cap})`,
    sql`kw as materialized (
      select m.id, sum(i.idf * u.tf * ${K1 + 1}::float8
                       / (u.tf + ${K1}::float8 * (${1 - B}::float8 + ${B}::float8 * length(m.tsv) / (select avgdl from kwc)))) as rank
      from kwm m
      cross join lateral (
        select t.lexeme, greatest(coalesce(array_length(t.positions, 1), 1), 1) as tf from unnest(m.tsv) t) u
      join kwi i on i.lexeme = u.lexeme
      group by m.id
      order by rank desc, m.id
      limit ${q.n})`,
  ];
}
