/**
 * How a ranked list is judged against a labelled question. Pure functions: the evaluation harness and its tests
 * share them; nothing here knows how the list was produced.
 */

export type Kind = "keyword" | "paraphrase" | "identifier";

export interface Evidence {
  documentId: string;
  /** A passage copied verbatim from the document: the part that answers the question. */
  text: string;
}

export interface Question {
  id: string;
  question: string;
  kind: Kind;
  evidence: Evidence[];
  /** The end user whose memory the question is asked of (`x-user-id`); absent: the tenant's shared space. */
  userId?: string;
}

/** One ranked result, as any system under test returns it. */
export interface Ranked {
  documentId: string;
  content: string;
}

export interface Scores {
  hit1: number;
  hit5: number;
  hit10: number;
  mrr10: number;
  /** Share of the question's evidence passages found inside the top 10 results' text. */
  evidence10: number;
}

export const normalize = (text: string): string => text.replace(/\s+/g, " ").trim().toLowerCase();

/**
 * Whether a result's text holds an evidence passage: the whole passage, or (when a chunk boundary cut it) its
 * first or second half, counted in words.
 */
export function covers(result: Ranked, evidence: Evidence): boolean {
  if (result.documentId !== evidence.documentId) return false;
  const content = normalize(result.content);
  const passage = normalize(evidence.text);
  if (content.includes(passage)) return true;
  const words = passage.split(" ");
  if (words.length < 6) return false;
  const half = Math.ceil(words.length / 2);
  return content.includes(words.slice(0, half).join(" ")) || content.includes(words.slice(-half).join(" "));
}

/** Scores one question: a hit is a result from a document that holds evidence. */
export function score(question: Question, results: Ranked[]): Scores {
  const documents = new Set(question.evidence.map((e) => e.documentId));
  const first = results.slice(0, 10).findIndex((r) => documents.has(r.documentId));
  const top10 = results.slice(0, 10);
  const found = question.evidence.filter((e) => top10.some((r) => covers(r, e))).length;
  return {
    hit1: first === 0 ? 1 : 0,
    hit5: first >= 0 && first < 5 ? 1 : 0,
    hit10: first >= 0 ? 1 : 0,
    mrr10: first >= 0 ? 1 / (first + 1) : 0,
    evidence10: question.evidence.length ? found / question.evidence.length : 0,
  };
}

/** The mean of each score over a list (zeros when empty). */
export function mean(list: Scores[]): Scores & { n: number } {
  const n = list.length;
  const avg = (key: keyof Scores) => (n ? list.reduce((sum, s) => sum + s[key], 0) / n : 0);
  return {
    n,
    hit1: avg("hit1"),
    hit5: avg("hit5"),
    hit10: avg("hit10"),
    mrr10: avg("mrr10"),
    evidence10: avg("evidence10"),
  };
}
