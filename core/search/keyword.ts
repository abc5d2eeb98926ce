/**
 * The keyword leg: Okapi BM25 over Postgres full-text lexemes, in SQL, so it runs the same on every driver and
 * stays inside the search's one statement. Why BM25 and how the candidates are bounded: docs/search.md.
 */
import { type SQL, sql } from "drizzle-orm";
import { arr, constant } from "../db";
import type { Where } from "./scope";

/** BM25's term-frequency saturation and length normalization, at their usual values (Robertson & Zaragoza). */
export const K1 = 1.2;
export const B = 0.75;
/**
 * Two consecutive words of the question found in that order within three positions of each other add this share
 * of their idf: a bonus for phrases, after Metzler and Croft's sequential dependence model (docs/search.md).
 */
export const PAIR_WEIGHT = 0.15;
/** Word pairs scored at most, the rarest first: a long chat message would otherwise add a check per pair per match. */
const PAIRS = 12;

export interface KeywordQuery {
  /** The question as the caller wrote it: any text, never parsed as tsquery syntax. */
  text: string;
  textConfig: string;
  /** A tenant id, or SQL that gives it (core/gate's tenant of a gated batch). */
  tenantId: string | SQL;
  /** The owners whose statistics (and chunks) the search reads. */
  owners: string[];
  where: Where;
  /** Ranked matches to return. */
  n: number;
  /** Matches ranked at most. */
  cap: number;
  /** Whether the matches of the question's commoner words fill a gathering its rarer words left short of `cap`. */
  fill: boolean;
  /**
   * Ids of the chunks another leg found (hybrid: the vector leg's `vec`), scored on the question's words too when the
   * cap cut the gathering short: which matches it keeps is then the table's order, not relevance.
   */
  alongside?: SQL;
}

/**
 * CTEs ending in `kw(id, rank)`, the `n` best chunks by BM25, and `kwmax(top)`, the most a chunk could score for
 * this question (every word, saturated), which keyword mode divides by.
 *
 * The question's lexemes come from `to_tsvector` (stop words out, stemmed per the text configuration), with the
 * words inside its paths and dotted names as the chunks have them (migrations/0026), its options (`-t`,
 * `--porcelain`, whose word is left out: the option counts for it) and snake_case names as written, in Unicode's
 * compatibility form (migrations/0027), and its stop words written in capitals as written (`OVER`, `INTO`;
 * migrations/0029), so punctuation and tsquery operators in it are plain text. A chunk matches
 * on any of them (OR). Document frequencies, the chunk count and the average length come from `search_terms`
 * (migrations/0009), summed over the scope's owners. Matches are gathered from the rarest lexemes first, as long as
 * their summed frequencies stay within `cap` (the rarest always), then (`fill`), while fewer than `cap` are gathered,
 * from the others; every gathered chunk is scored on all lexemes: a chunk holding only the commonest words of a
 * question is the one a cap may leave out, and it would rank last. The cap is what bounds a search's time (docs/search.md, "Bounded work").
 */
export function candidates(query: KeywordQuery): SQL[] {
  // In the compatibility form the chunks' words are indexed in (migrations/0027): `café` with a combining accent or
  // `ﬁle` with a ligature, asked, meets the plain spelling stored, and the reverse.
  const q = { ...query, text: withoutComparisons(query.text.normalize("NFKC")) };
  const who = sql`${arr(q.owners)}::text[]`;
  const phrases = identifiers(q.text);
  // Without filters beyond liveness, a document is checked only for the matches that rank, in rank order: few
  // documents are ever deleted or expired, and checking each gathered match cost a key lookup (3 buffers) apiece.
  // With filters, every match is checked before the cap, or the cap could fill with chunks the filter drops.
  // `offset 0` keeps the check a key lookup: as a semi-join it was planned as a hash of every document.
  const live = (key: SQL) =>
    sql`exists (select 1 from documents d where d.key = ${key} and ${q.where.documents} offset 0)`;
  const late = !q.where.narrowed;
  return [
    sql`kwt as materialized (
      select t.lexeme, greatest(coalesce(sum(s.chunks), 0), 0)::float8 as df
      from unnest(tsvector_to_array(to_tsvector(${q.textConfig}::regconfig, regexp_replace(${q.text}, search_option_pattern(), '\\1 ', 'g'))
        || to_tsvector(${q.textConfig}::regconfig, search_compound_words(${q.text}))
        || search_code_lexemes(${q.text})
        || search_capital_lexemes(${capitals(q.text)}))) t(lexeme)
      left join search_terms s on s.tenant_id = ${q.tenantId} and s.owner = any(${who}) and s.lexeme = t.lexeme
      group by t.lexeme)`,
    sql`kwc as materialized (
      select greatest(coalesce(sum(chunks), 0), 1)::float8 as n,
             greatest(coalesce(sum(length), 0), 1)::float8 / greatest(coalesce(sum(chunks), 0), 1) as avgdl
      from search_terms where tenant_id = ${q.tenantId} and owner = any(${who}) and lexeme = '')`,
    // Each lexeme also as a tsquery operand, quoted so that it is taken verbatim (no second normalization).
    sql`kwi as materialized (
      select lexeme, df, ln(1 + ((select n from kwc) - df + 0.5) / (df + 0.5)) as idf,
             sum(df) over (order by df, lexeme) as through, lit, lit::tsquery as q
      from (select *, '''' || replace(replace(lexeme, '\\', '\\\\'), '''', '''''') || '''' as lit from kwt) t
      where df > 0)`,
    // Identifiers the parser cuts into words (max_wal_size: max, wal, size) score their words again when the chunk
    // holds them as written, adjacent and in order, so the exact term ranks first. Consecutive words of the question
    // score a share of theirs when the chunk holds them in that order, one to three positions apart (stop words
    // between them keep their positions in both tsvectors): each pair once, read with hyphens as spaces (the parser
    // would pair `e-mail` with its own parts `e` and `mail`). A pair in the turns before a turn counts whole: counted
    // as a fifth there, as its words are, it found less on both conversation sets (docs/search.md, "Phrases").
    sql`kwp as materialized (
      select phraseto_tsquery(${q.textConfig}::regconfig, p) as q, (
        select coalesce(sum(i.idf), 0) from kwi i
        where i.lexeme = any(tsvector_to_array(to_tsvector(${q.textConfig}::regconfig, p)))) as bonus
      from unnest(${arr(phrases)}::text[]) p
      union all (
      select (format('%1$s <1> %2$s | %1$s <2> %2$s | %1$s <3> %2$s', a.lit, b.lit))::tsquery,
             ${constant(PAIR_WEIGHT)}::float8 * (a.idf + b.idf)
      from (select distinct lexeme, next from (
              select lexeme, lead(lexeme) over (order by pos) as next from (
                select t.lexeme, unnest(t.positions) as pos
                from unnest(to_tsvector(${q.textConfig}::regconfig, replace(${q.text}, '-', ' '))) t) w) o) s
      join kwi a on a.lexeme = s.lexeme join kwi b on b.lexeme = s.next
      where s.lexeme <> s.next
      order by a.idf + b.idf desc, a.lexeme, b.lexeme limit ${constant(PAIRS)}))`,
    sql`kwpa as materialized (select tsquery_any(q) as q from kwp)`,
    sql`kwmax as materialized (
      select greatest(coalesce((select sum(idf) from kwi), 0) * ${constant(K1 + 1)} + coalesce((select sum(bonus) from kwp), 0), 1e-9)::float8 as top)`,
    // The lexemes that gather matches: the rarest ones within the cap. When even the rarest alone passes it (a
    // question of common words), its matches that also hold another of the question's words, the likelier ones.
    sql`kwq as materialized (
      select case
        when (select min(df) from kwi) <= ${constant(q.cap)} or (select count(*) from kwi) = 1
          then (select tsquery_any(q) from kwi where through <= ${constant(q.cap)} or df = (select min(df) from kwi))
        else (
          select r.q && (select tsquery_any(o.q) from kwi o where o.lexeme <> r.lexeme)
          from (select lexeme, q from kwi order by df, lexeme limit 1) r)
      end as q)`,
    // The tsvector lives out of line (TOAST: the embedding fills the row) and each function handed the column
    // fetches it again, so it is copied here (`|| ''`) once, and the scoring below reads the copy (docs/search.md,
    // "Where a hybrid search's time goes").
    sql`${q.fill ? sql`kwr` : sql`kwg`} as materialized (
      select c.id, c.document_key, c.tsv || ''::tsvector as tsv from chunks c
      where c.tsv @@ (select q from kwq) and ${q.where.chunks} ${late ? sql`` : sql`and ${live(sql`c.document_key`)}`}
      limit ${constant(q.cap)})`,
    // Fewer than the cap (the rarest words are few, or a filter kept few of their matches): with `fill`, the matches
    // of the question's other words fill it, or a search for "refund policy window" filtered to the 12 passages that
    // say only "refund" found none of them, and one whose rare word is in 3 passages returned 3 results of the
    // thousands that match its common words.
    ...(q.fill
      ? [
          // At most `cap` more matches are read before a filter drops some, so the work stays bounded by the cap
          // however few of them a filter keeps (the vector leg still answers for the rest in hybrid).
          sql`kwg as materialized (
      select * from kwr
      union all (
      select m.id, m.document_key, m.tsv || ''::tsvector from (
        select c.id, c.document_key, c.tsv from chunks c
        where (select count(*) from kwr) < ${constant(q.cap)} and c.tsv @@ (select tsquery_any(q) from kwi)
          and c.id not in (select id from kwr) and ${q.where.chunks}
        limit ${constant(q.cap)}) m
      ${late ? sql`` : sql`where ${live(sql`m.document_key`)}`}
      limit ${constant(q.cap)} - (select count(*) from kwr)))`,
        ]
      : []),
    // A full gathering is the first `cap` matches in the table's order (oldest first), whichever rank best: a short
    // passage added last, all of whose words are common, was never scored ("When are you open?" over the
    // Python manual). The other leg's chunks that hold any of the question's words are scored then too.
    sql`kwm as materialized (
      select id, document_key, tsv, length(tsv)::float8 / (select avgdl from kwc) as rel from (
        select * from kwg
        ${
          q.alongside
            ? sql`union all
        select c.id, c.document_key, c.tsv || ''::tsvector from chunks c
        where (select count(*) from kwg) >= ${constant(q.cap)} and c.id in (${q.alongside})
          and c.id not in (select id from kwg) and c.tsv @@ (select tsquery_any(q) from kwi)
          and ${q.where.chunks} ${late ? sql`` : sql`and ${live(sql`c.document_key`)}`}`
            : sql``
        }) m)`,
    // A lexeme's frequency in a chunk: ts_rank_cd of the lexeme alone, weight 0.1, is 0.1 an occurrence (one cover
    // a position). The turns before a conversation turn (weight C, migrations/0021) weigh 0.02: a fifth of an
    // occurrence (docs/search.md, "Conversation turns"). One C call a lexeme (`offset 0`: inlined, the call was
    // repeated in the filter and the sum); unnesting the tsvector instead cost seven times as much.
    sql`kw as materialized (
      select id, rank from (
        select m.id, m.document_key, s.bm25 + coalesce(p.bonus, 0) as rank
        from kwm m
        cross join lateral (
          select sum(i.idf * t.tf * ${constant(K1 + 1)}::float8 / (t.tf + ${constant(K1)}::float8 * (${constant(1 - B)}::float8 + ${constant(B)}::float8 * m.rel))) as bm25
          from kwi i cross join lateral (select ts_rank_cd('{0.1,0.02,0.1,0.1}', m.tsv, i.q, 0) * 10 as tf offset 0) t
          where t.tf > 0) s
        cross join lateral (select case when m.tsv @@ (select q from kwpa)
          then (select sum(p.bonus) from kwp p where m.tsv @@ p.q) end as bonus) p
        order by rank desc, m.id offset 0) r
      ${late ? sql`where ${live(sql`r.document_key`)}` : sql``}
      limit ${constant(q.n)})`,
  ];
}

/**
 * Identifiers of joined words in a question (snake_case, kebab-case, codes like ERR-4012), with any dotted
 * qualifier they are written with (`functools.lru_cache` whole, not `lru_cache`: the parser makes the qualified
 * name other lexemes, so the tail alone would favour passages naming it bare), at most 8.
 */
export function identifiers(text: string): string[] {
  const found = text.match(/[\p{L}\p{N}]+(?:[._-][\p{L}\p{N}]+)+/gu) ?? [];
  return [...new Set(found.filter((t) => /[_-]/.test(t)).map((t) => t.toLowerCase()))].slice(0, 8);
}

/**
 * The question's text for its words in capitals (migrations/0029): none when it has no lower-case letter, as a question
 * written all in capitals ("WHAT DID I SAY ABOUT IT") shouts its stop words rather than naming SQL's keywords.
 */
export const capitals = (text: string): string => (/\p{Ll}/u.test(text) ? text : "");

/**
 * The question without "vs" and "versus", which no stop-word list drops: "git log -S vs -G" asks about two options,
 * not about the sections titled "REBASE VS. PULL/MERGE" that ranked first for it (docs/search.md, "Comparisons").
 */
export const withoutComparisons = (text: string): string =>
  text.replace(/(?<![\p{L}\p{N}_.-])(?:vs\.?|versus)(?![\p{L}\p{N}_-])/giu, " ");

/**
 * Whether a question names an identifier as code writes it: `snake_case`, a dotted name (`core.autocrlf`,
 * `os.path`), a call (`coalesce()`), camelCase, a Git revision (`HEAD~3`, `HEAD@{2}`), an option (`--onto`, `-f`,
 * `-S`), `::`, `->`, `key=value`, backticks or a code (`ERR-4012`). Other hyphenated words are not: English writes
 * "fast-forward" too. (`identifiers` finds the terms a phrase must match; this only asks whether there is one.)
 */
export function namesIdentifier(query: string): boolean {
  return /[A-Za-z0-9]_[A-Za-z0-9]|[A-Za-z0-9_]{2,}\.[A-Za-z_]\w|[A-Za-z_]\w*\(|[a-z][A-Z]|\w[~^@{]|(^|[^\w-])--?[A-Za-z]|::|->|\w=\w|`|\b[A-Z]{2,}-\d/.test(
    query,
  );
}
