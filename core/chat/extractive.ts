/**
 * Answers without a chat model: the retrieved passages are split into sentences, each scored by
 * how much of the question's weighted terms it covers, and the best few are returned in source
 * order with their markers. When no sentence shares enough words with the question (a paraphrase:
 * "When does the boat depart?" over "The ferry leaves at 7:45"), the sentences closest to it in
 * word meaning answer instead, if close enough. Deterministic: the same question and sources give
 * the same answer.
 */
import { embedOffline, isCommonWord, meaningOf } from "../embedding/offline";
import * as Keyword from "../search/keyword";
import { type Source, withoutNoteMarks } from "./prompt";

export const MODEL = "extractive";
export const NOT_FOUND = "The sources do not contain an answer to this question.";
/** The answer to a message stored with `remember` that asks nothing ("Remember: my train leaves at 8:15."). */
export const NOTED = "Noted: I will remember that.";

/** Sentences an answer is made of, at most. */
const MAX_SENTENCES = 3;
/** A sentence must cover this share of the question's term weight to count as relevant. */
const MIN_COVERAGE = 0.2;
/** …and score at least this share of the best sentence's score to join it. */
const RELATIVE_CUTOFF = 0.5;
/** A sentence of fewer words is a fragment (a heading, a label), unless it is the whole passage. */
const MIN_WORDS = 4;
const isFragment = (sentence: string) => sentence.split(" ").length < MIN_WORDS;
/**
 * Cosine of word meaning (core/embedding/offline.ts) a sentence needs to answer a question it shares no words
 * with: conservative, since a sentence on the same topic is not yet an answer (docs/search.md, "Extractive answers").
 */
const MIN_MEANING = 0.6;
/**
 * Cosine (offline embedder, whatever model stored the vectors) one of the passages needs with the question when the best
 * sentence covers only part of the question's words and some word of the question is in no passage: "What is the
 * capital of France?" had been answered "LATIN CAPITAL LETTER C WITH CEDILLA ..." from a manual. Chosen on
 * unanswerable questions (docs/search.md, "Extractive answers").
 */
const MIN_PASSAGE_SIMILARITY = 0.35;
/** Vector length for that comparison: the offline embedder's default, where its words collide least. */
const NEARNESS_DIMENSIONS = 1536;
/** Sentences a meaning-only answer is made of, at most, and how far below the best one they may be. */
const MEANING_SENTENCES = 2;
const MEANING_MARGIN = 0.1;
/**
 * Words a sentence needs to answer by meaning alone: the mean of a few words' vectors is near anything ("hello text
 * plain ct" at 0.61 to "What is the ephemeral zebra password?").
 */
const MEANING_MIN_WORDS = 6;
/** A longer sentence is cut (clip) to this many characters and "…". */
const MAX_SENTENCE_CHARS = 400;
/** Text that starts inside a sentence: a small letter or a punctuation mark that continues one. */
const CUT_START = /^[\p{Ll},;:)\]]/u;
/** A first word that is a name written in small letters (iPhone, macOS, eBay) or code (`json.dumps`, get_ready). */
const NAME_START = /^\S*(?:\p{Ll}\p{Lu}|[_.(`])/u;
/** A block of two or more lines, each of cells split by `|`. */
const isTable = (block: string) => {
  const lines = block.split("\n").filter((line) => line.trim());
  return lines.length >= 2 && lines.every((line) => / \| |^\s*\||\|\s*$/.test(line));
};
/** A Markdown heading line (ATX). */
const HEADING = /^\s*#{1,6}\s/;
/** A sentence that ends in a colon, and the words from which such a sentence may answer (evidence measured 12-20). */
const LEADS_IN = /:["'”’]*$/;
const LEAD_IN_WORDS = 10;
/** A sentence that ends in a question mark (before any closing quote or bracket). */
const QUESTION = /[?？]["'”’)\]]*$/;

const STOPWORDS = new Set(
  (
    "a about above after again against all am an and any are as at be because been before being below between both but by " +
    "can could did do does doing down during each few for from further had has have having he her here hers herself him " +
    "himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or other " +
    "our ours ourselves out over own same she should so some such than that the their theirs them themselves then there " +
    "these they this those through to too under until up very was we were what when where which while who whom why will " +
    "with would you your yours yourself yourselves tell know please give show explain describe much many also us " +
    // A pronoun or a time word of a follow-up ("And how do I drop one?", "How do I remove it afterwards?").
    "one ones afterwards afterward"
  ).split(" "),
);

/**
 * "How long", "how often", "how old" ask for a measure: the adjective is the question's form, not its subject, and
 * matched "Alice prefers window seats on long flights" to "How long do refunds take?" (as "take" matched "Shipping
 * takes three days").
 */
const MEASURE =
  /\bhow\s+(?:long|often|far|old|soon|late|early|big|large|tall|high|deep|wide|heavy|fast)(?![\p{L}\p{N}_-])/giu;
/** The verb a measure is asked with ("How long does shipping take?", "How long do batteries last?"): its form too. */
const MEASURE_VERB = /\b(?:take|takes|took|taking|last|lasts|lasted)(?![\p{L}\p{N}_-])/giu;
const withoutMeasures = (question: string) =>
  question.search(MEASURE) >= 0 ? question.replace(MEASURE, "how").replace(MEASURE_VERB, "") : question;

/** A light suffix stripper: it only has to map the question's and the sentence's forms alike. */
function stem(word: string): string {
  let w = word;
  if (w.length > 4 && w.endsWith("ies")) w = `${w.slice(0, -3)}y`;
  else if (w.endsWith("sses")) w = w.slice(0, -2);
  // "stashes", "branches", "indexes", "detaches", "reaches", "approaches": the -es of a word ending in ch, sh or x,
  // where "caches", "headaches" and "sizes" keep their e.
  else if (/(?:sh|x|tch|nch|rch|each|oach|tach)es$/.test(w)) w = w.slice(0, -2);
  else if (w.length > 3 && w.endsWith("s") && !/(ss|us|is)$/.test(w)) w = w.slice(0, -1);
  if ((w.length > 5 && w.endsWith("ing")) || (w.length > 4 && w.endsWith("ed"))) {
    w = w.slice(0, w.endsWith("ing") ? -3 : -2);
    // A consonant doubled before -ing or -ed is the word's one (shipping, shipped: ship), but not l, s or z (falling),
    // nor d or f, as "added" and "staffed" are far more common than "padded" and words ending in one f.
    if (/([^aeiouylszdf])\1$/.test(w)) w = w.slice(0, -1);
  } else if (w.length > 4 && w.endsWith("ly")) w = w.slice(0, -2);
  return w;
}

/** A word, with an apostrophe's ending ("Maya's") that terms drop. */
const WORD = /[\p{L}\p{N}]+(?:['’][\p{L}]+)?/gu;

/** A command-line option (`-t`, `--porcelain`), as the keyword leg reads one (migrations/0027's pattern). */
const OPTION = /(?<![\p{L}\p{N}_-])--?[a-z][a-z0-9_-]*/gu;

/**
 * A text's informative words, lower case, as written (no stop words, none of one letter), its options whole, and its
 * stop words written in capitals as written when it has lower-case letters too, as the keyword leg reads them
 * (migrations/0029): `-t` and `-a` were a stop word and a letter, so "What does -A do in psql?" shared no word with
 * its answer, and "What does the OVER clause do?" only "clause" with "A window function has an OVER clause".
 */
function words(text: string): string[] {
  const out: string[] = [];
  const lower = text.toLowerCase();
  const capitals = Keyword.capitals(text) !== "";
  for (const match of text.matchAll(WORD)) {
    const written = match[0].replace(/['’].*$/, "");
    const word = written.toLowerCase();
    if (word.length >= 2 && !STOPWORDS.has(word)) out.push(word);
    else if (capitals && word.length >= 2 && /^\p{Lu}+$/u.test(written)) out.push(written);
  }
  for (const match of lower.matchAll(OPTION)) out.push(match[0]);
  return out;
}

export const terms = (text: string): string[] => words(text).map(stem);

const SENTENCE_END =
  /(?<=[.!?]["'”’)\]]*)(?<!\b(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|Mt|vs|e\.g|i\.e|No|Fig|\p{Lu})\.)\s+(?=["'“‘([]?[\p{Lu}\p{N}])/u;

/** A fence line (``` or ~~~, an opening one with its info string). */
// At any indentation: a fence inside a list item is indented past the three spaces a top-level one may have.
const FENCE = /^[ \t]*(`{3,}|~{3,})(.*)$/;
/** A line that reads as prose: a capital (or a quote, a bracket) first, sentence punctuation last. */
const PROSE_LINE = /^["'“‘([]?\p{Lu}.*[.!?:]["'”’)\]]*$/u;
const proseShare = (lines: string[]) => {
  const full = lines.filter((l) => l.trim());
  // A list item reads as prose by its text: "- Automatically bisect a broken build:" before a block had made a passage
  // that ends inside the block read as one starting inside another.
  return full.length
    ? full.filter((l) => PROSE_LINE.test(l.trim().replace(/^(?:[-*+•]|\d+[.)])\s+/, ""))).length / full.length
    : 0;
};

/**
 * Whether a passage with no fence is all inside one code block (a long listing cut into chunks): most of its lines
 * indented, as no paragraph or list is, and hardly any prose. A chunk of venv's example script had answered "How do I
 * create a virtual environment?" with "parser = argparse.ArgumentParser(prog=__name__, ...".
 */
function insideCode(lines: string[]): boolean {
  const full = lines.filter((line) => line.trim());
  const indented = full.filter((line) => /^(?: {4}|\t)/.test(line) && !/^\s*(?:[-*+•]|\d+[.)])\s/.test(line));
  return full.length >= 3 && indented.length >= full.length / 2 && proseShare(full) < 0.2;
}

/**
 * The passage without its code: fenced blocks, and the part of one the passage starts or ends inside (a chunk may
 * be cut inside a block). With an odd number of fences, the unpaired one opens a block when it carries an info
 * string (```python) or when what follows it reads less like prose than what precedes it; else it closes one.
 */
function withoutCode(text: string): string {
  const lines = text.split("\n");
  const fences = lines.flatMap((line, i) => (FENCE.test(line) ? [i] : []));
  if (!fences.length) return insideCode(lines) ? "" : text;
  let inside = false;
  if (fences.length % 2 === 1) {
    const first = fences[0] as number;
    const before = lines.slice(0, first);
    // With nothing before it, the fence opens a block unless prose follows it, up to the next fence (itertools'
    // recipes opened with one).
    const opens =
      (FENCE.exec(lines[first] as string)?.[2] ?? "").trim() !== "" ||
      (before.some((line) => line.trim())
        ? proseShare(lines.slice(first + 1)) < proseShare(before)
        : proseShare(lines.slice(first + 1, fences[1] ?? lines.length)) < 0.5);
    inside = !opens;
  }
  const kept: string[] = [];
  for (const line of lines) {
    if (FENCE.test(line)) {
      inside = !inside;
      kept.push("");
    } else kept.push(inside ? "" : line);
  }
  return kept.join("\n");
}

/**
 * Sentences of a passage: blocks split on blank lines, list items and headings, then on sentence ends. Code is no
 * sentence: a fenced block flattened onto one line ("``` >>> import json >>> json.dumps(...) ```") was quoted as an
 * answer; the citation leads to it.
 */
export function sentences(text: string): string[] {
  return described(text).map((s) => clip(s.text, MAX_SENTENCE_CHARS));
}

/**
 * An API signature alone in its block (`@functools.lru_cache(maxsize=128, typed=False)`, a Sphinx or man page entry):
 * a call, and no sentence's end.
 */
const SIGNATURE = /^(?:[\w@]+ )?[^\s(]*[\w\]]\(.*\)[^\s.!?]*$/;

/**
 * The sentences of a passage, each with the signature its block follows, if any: "Decorator to wrap a function with a
 * memoizing callable ..." never names `functools.lru_cache`, the line above it does, so "What does
 * functools.lru_cache do?" had quoted every other sentence that names it.
 */
function described(text: string): { text: string; signature?: string }[] {
  const pieces: { text: string; signature?: string }[] = [];
  const blocks = withoutCode(text).split(/\n\s*\n|\n(?=\s*(?:[-*•+]\s|\d+[.)]\s|#{1,6}\s))/);
  let signature: string | undefined;
  for (const block of blocks) {
    // A heading names what follows rather than saying it ("`pathlib` — Object-oriented filesystem paths" had answered
    // "How do I join two paths with pathlib?"), unless the passage is nothing else.
    if (HEADING.test(block) && blocks.some((other) => other.trim() && !HEADING.test(other))) continue;
    // A table (rows of cells, as a web page's or a Markdown table is stored) is no sentence: its rows ran together into
    // "Platform | Shell | Command ... POSIX | bash/zsh | $ source <venv>/bin/activate ...".
    if (isTable(block)) continue;
    const lines = block
      .split("\n")
      .map((line) => line.trim().replace(/^`|`$/g, ""))
      .filter(Boolean);
    if (lines.length && lines.every((line) => SIGNATURE.test(line))) {
      signature = lines.join(" ");
      continue;
    }
    // A source's own bracketed numbers (a footnote's "[1]", a bibliography's) are no part of a sentence as quoted:
    // they would read as the answer's citations (finalize cannot tell them from its markers); "water.[3] The" ends one.
    const flat = withoutNoteMarks(block.replace(/^\s*(?:[-*•+]|\d+[.)]|#{1,6})\s+/, ""))
      .replace(/\s+/g, " ")
      .trim();
    if (!flat) continue;
    // The closing quote or bracket stays with its sentence: `said "We ship Friday." Then` keeps the `"`. A title or
    // an initial before a name ends no sentence: "The manager is Mr. Johnson." was answered "The manager is Mr".
    flat.split(SENTENCE_END).forEach((piece, i) => {
      pieces.push(i === 0 && signature ? { text: piece.trim(), signature } : { text: piece.trim() });
    });
    signature = undefined;
  }
  // Fragments (headings, "Refund policy.") are not answers; a passage that is one short sentence is one:
  // "Maya likes sushi." stored as a memory.
  return pieces.filter((sentence) => pieces.length === 1 || !isFragment(sentence.text));
}

/**
 * A sentence as quoted: whole up to MAX_SENTENCE_CHARS, else the whole words of that length (the "…" of each cut
 * counted) that hold most of the question's `wanted` terms: of those, one cut rather than two, then the words most
 * centred. A sentence is scored whole and shortened only here: cut before scoring, a 473-character sentence whose
 * answer came last ("... hotels up to 150 EUR per night are reimbursed ...") answered nothing.
 */
function excerpt(text: string, wanted: ReadonlySet<string> = new Set()): string {
  if (text.length <= MAX_SENTENCE_CHARS) return text;
  const words = [...text.matchAll(/\S+/g)].map((m) => ({
    at: m.index,
    end: m.index + m[0].length,
    hit: terms(m[0]).some((term) => wanted.has(term)),
  }));
  const last = words.length - 1;
  // Words i..j fit with the "…" of each side that is cut.
  const width = (i: number, j: number) =>
    (words[j]?.end ?? 0) - (words[i]?.at ?? 0) + (i > 0 ? 1 : 0) + (j < last ? 1 : 0);
  let best: { i: number; j: number; count: number; cuts: number; margin: number } | undefined;
  for (let i = 0, j = -1; i <= last; i++) {
    j = Math.max(j, i - 1);
    while (j < last && width(i, j + 1) <= MAX_SENTENCE_CHARS) j++;
    if (j < i) continue; // a word longer than the whole window: clip below cuts inside it
    const hits = words.slice(i, j + 1).filter((w) => w.hit);
    const count = hits.length;
    const cuts = (i > 0 ? 1 : 0) + (j < last ? 1 : 0);
    // How far the counted words sit from the window's edges: centred, each keeps some of what it says.
    const margin = count
      ? Math.min((hits[0]?.at ?? 0) - (words[i]?.at ?? 0), (words[j]?.end ?? 0) - (hits.at(-1)?.end ?? 0))
      : 0;
    if (
      !best ||
      count > best.count ||
      (count === best.count && (cuts < best.cuts || (cuts === best.cuts && margin > best.margin)))
    )
      best = { i, j, count, cuts, margin };
  }
  if (!best) return clip(text, MAX_SENTENCE_CHARS);
  const part = text.slice(words[best.i]?.at, words[best.j]?.end);
  return `${best.i > 0 ? "…" : ""}${part}${best.j < last ? "…" : ""}`;
}

/**
 * `text` cut to at most `max` characters and "…" (so `max` + 1 in all), at the last whitespace that fits: an answer
 * or snippet never ends in half a word. Only a word longer than `max` itself (a URL, a hash) is cut inside.
 */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  // The word the cut falls in starts here; with whitespace just past the window, the window's last word is whole.
  const wordStart = text.slice(0, max + 1).search(/\S*$/);
  let end = Math.min(wordStart, max);
  if (wordStart <= max && (/^\S*/.exec(text.slice(wordStart))?.[0].length ?? 0) > max) {
    end = /[\uD800-\uDBFF]/.test(text[max - 1] ?? "") ? max - 1 : max; // never half a surrogate pair
  }
  return `${text.slice(0, end).replace(/[\s,;:.-]+$/, "")}…`;
}

interface Candidate {
  text: string;
  source: number;
  position: number;
  terms: Set<string>;
  score: number;
  /** Other documents' sources holding the very same sentence. */
  also: number[];
}

/**
 * The markers go before the sentence's closing punctuation: `... 30 days [2].`, `... 30 days [2][4].`; after a cut
 * (`excerpt`), after its "…".
 */
function withMarkers(sentence: string, sources: number[]): string {
  const markers = sources.map((index) => `[${index}]`).join("");
  if (sentence.endsWith("…")) return `${sentence} ${markers}`;
  const end = /[.!?…]+["'”’)\]]*$/.exec(sentence);
  if (end) return `${sentence.slice(0, end.index)} ${markers}${end[0]}`;
  // A sentence leading into a list ends the answer's sentence: "... up to 5 Debian packages [1]."
  return `${sentence.replace(/:$/, "")} ${markers}.`;
}

/** Share of informative words two sentences must share to say the same thing (Jaccard), and the fewest they need. */
const SAME_SENTENCE = 0.8;
const SAME_SENTENCE_TERMS = 5;

/**
 * The first `limit` sentences of `list` that say different things, each with the sources of every sentence that
 * says the same: the same page stored as HTML and as a PDF ("worktreeA worktree is ...", its heading run in) is
 * one sentence citing both, not the same sentence twice. Short sentences must match exactly ("I do." / "I do not.").
 */
function distinct(list: Candidate[], limit: number): { c: Candidate; sources: number[] }[] {
  const out: { c: Candidate; sources: number[] }[] = [];
  const bare = (text: string) => text.toLowerCase().replace(/[.!?…]+$/, "");
  for (const c of list) {
    // One sentence whole inside another says nothing more: it is said once, in full when the other only went on
    // after it (a passage cut after "... will catch all messages"), not with a PDF's heading run into its start.
    const within = out.find(({ c: o }) => bare(o.text).includes(bare(c.text)) || bare(c.text).includes(bare(o.text)));
    if (within) {
      if (bare(c.text).startsWith(bare(within.c.text))) within.c = c;
      within.sources.push(...[c.source, ...c.also].filter((s) => !within.sources.includes(s)));
      continue;
    }
    const same = out.find(({ c: o }) => {
      if (o.terms.size < SAME_SENTENCE_TERMS || c.terms.size < SAME_SENTENCE_TERMS) return false;
      // "within 22 days" and "within 13 days" differ in the one word that matters: numbers must all be the same.
      if (!sameNumbers(o.terms, c.terms)) return false;
      const shared = [...c.terms].filter((t) => o.terms.has(t)).length;
      return shared / (o.terms.size + c.terms.size - shared) >= SAME_SENTENCE;
    });
    const sources = [c.source, ...c.also];
    if (same) same.sources.push(...sources.filter((s) => !same.sources.includes(s)));
    else if (out.length < limit) out.push({ c, sources });
  }
  for (const entry of out) entry.sources.sort((a, b) => a - b);
  return out;
}

const NUMBER = /\p{N}/u;
const sameNumbers = (a: Set<string>, b: Set<string>) => {
  const numbers = (terms: Set<string>) =>
    [...terms]
      .filter((t) => NUMBER.test(t))
      .sort()
      .join(" ");
  return numbers(a) === numbers(b);
};

const inOrder = (a: { c: Candidate }, b: { c: Candidate }) => a.c.source - b.c.source || a.c.position - b.c.position;

/**
 * What a message asks: its questions, when it also says other things ("My favourite colour is teal, remember
 * that. What are the refund rules?"), whose words would otherwise count against every passage that answers.
 */
export function asked(message: string): string {
  const questions = sentences(message).filter((sentence) => QUESTION.test(sentence));
  return questions.length && terms(questions.join(" ")).length ? questions.join(" ") : message;
}

/** Whether a message asks anything: one of its sentences is a question. */
export const asks = (message: string) => sentences(message).some((sentence) => QUESTION.test(sentence));

/**
 * The answer to a message (`query`: what was searched for, a follow-up with the question before), its markers numbered
 * as `sources` are (finalize() renumbers them). A message stored with `remember` that asks nothing is a statement to
 * keep, not a question: it is acknowledged, not answered with the passages that share most of its words.
 */
export function reply(message: { question: string; query: string }, sources: readonly Source[], remember: boolean) {
  if (remember && !asks(message.question)) return NOTED;
  // A follow-up with a word of its own ("What if there is a conflict?" after "How do I rebase onto main?") is answered
  // by that word, from what the two found together: answered as the two, it had repeated the first answer.
  if (message.query !== message.question && terms(message.question).length) {
    const own = answer(message.question, sources);
    if (own !== NOT_FOUND) return own;
  }
  return answer(message.query, sources);
}

/** The answer text with markers numbered as `sources` are (finalize() renumbers them). */
export function answer(question: string, sources: readonly Source[]): string {
  const subject = withoutMeasures(asked(question));
  const wanted = [...new Set(terms(subject))];
  if (!wanted.length || !sources.length) return NOT_FOUND;

  const seen = new Map<string, { candidate: Candidate; documentId: string }>();
  const candidates: Candidate[] = [];
  for (const source of sources) {
    described(source.content).forEach(({ text, signature }, position) => {
      const key = text.toLowerCase();
      const before = seen.get(key);
      if (before) {
        // Overlapping chunks of one document repeat sentences; another document saying it is another source.
        if (before.documentId !== source.documentId && !before.candidate.also.includes(source.index))
          before.candidate.also.push(source.index);
        return;
      }
      // A question answers nothing, however many of the question's words it repeats: a conversation's
      // "What car do you drive?" was quoted as the answer to "What car does Leo drive?".
      if (QUESTION.test(text)) return;
      // A later chunk may begin inside a sentence (its overlap with the one before): that part alone can say the
      // opposite of the whole ("specifically need to activate a virtual environment" of "You don't specifically
      // need to ..."), so it answers nothing.
      if (position === 0 && source.ordinal > 0 && cutStart(source.content, text)) return;
      // A short sentence that leads into what follows it ("Example of an LRU cache for static web content:") says
      // nothing without the code or list after it (a longer one may: "... will generate up to 5 Debian packages:").
      if (LEADS_IN.test(text) && text.split(" ").length < LEAD_IN_WORDS) return;
      // The sentence that describes a signature is about what the signature names.
      const words = new Set(terms(signature ? `${signature} ${text}` : text));
      const candidate = { text, source: source.index, position, terms: words, score: 0, also: [] };
      seen.set(key, { candidate, documentId: source.documentId });
      candidates.push(candidate);
    });
  }

  // Rarer terms weigh more (idf over the candidate sentences).
  const weight = new Map(
    wanted.map((term) => {
      const df = candidates.reduce((n, c) => n + (c.terms.has(term) ? 1 : 0), 0);
      return [term, Math.log(1 + candidates.length / (1 + df))];
    }),
  );
  const total = [...weight.values()].reduce((a, b) => a + b, 0);
  for (const c of candidates) {
    const covered = wanted.reduce((sum, term) => sum + (c.terms.has(term) ? (weight.get(term) ?? 0) : 0), 0);
    const coverage = total > 0 ? covered / total : 0;
    // Long sentences match by accident more often; a better-ranked source wins ties.
    c.score = coverage < MIN_COVERAGE ? 0 : coverage / (1 + Math.max(0, c.terms.size - 20) / 40) + 0.01 / c.source;
  }

  const ranked = candidates
    .filter((c) => c.score > 0)
    .sort((a, b) => b.score - a.score || a.source - b.source || a.position - b.position);
  const best = ranked[0]?.score ?? 0;
  // A word of the question that none of the passages holds says they are about something else when the best sentence
  // shares only some of its words ("capital of France" over "LATIN CAPITAL LETTER C"), unless a passage is near the
  // question as a whole, or the sentence holds every rare word of it (a command, a name: "What does edquota -t set?").
  // Each test only when the ones before it fail: the later ones read every passage.
  const holds = (term: string) => ranked[0]?.terms.has(term) ?? false;
  const offTopic =
    best > 0 &&
    !wanted.every(holds) &&
    !allIn(wanted, heldBy(sources)) &&
    !(holdsRare(rareTerms(subject), holds) && onlyFrameMissing(subject, holds)) &&
    !near(subject, sources);
  if (best === 0 || offTopic) return byMeaning(question, candidates);
  return distinct(
    ranked.filter((c) => c.score >= best * RELATIVE_CUTOFF),
    MAX_SENTENCES,
  )
    .sort(inOrder)
    .map(({ c, sources }) => withMarkers(excerpt(c.text, new Set(wanted)), sources))
    .join(" ");
}

/**
 * Whether a passage's first sentence is the end of one cut by the chunker (the passage text starts right with it, in a
 * small letter or continuing punctuation, and not with a name written in small letters or code); a list item or a
 * paragraph after a heading starts where it starts.
 */
function cutStart(content: string, sentence: string): boolean {
  const start = content.trimStart();
  return CUT_START.test(start) && !NAME_START.test(start) && start.startsWith(sentence.slice(0, 12));
}

/**
 * The question's rare words, as terms: neither stop words nor among the offline embedder's 50,000 (a command, a name),
 * judged on the words as written ("released" is common though its stem "releas" is in no table) and never a number.
 */
function rareTerms(question: string): string[] {
  const rare = words(question).filter(
    (word) => !/^\p{N}+$/u.test(word) && !word.startsWith("-") && !isCommonWord(word),
  );
  return [...new Set(rare.map(stem))];
}

const allIn = (list: string[], set: Set<string>) => list.every((term) => set.has(term));

/**
 * Verbs a question is framed with ("What does edquota -t set?", "What does --force do?"): a sentence about the rare
 * thing asked of answers them, as it does an option it does not name (an option it names is matched as a word). Any other word of the question the sentence lacks is what is asked: "Who is the CEO of
 * Kovalink?" is not answered by what else is said of Kovalink. A frequency bound could not tell them apart ("budget"
 * is more frequent than "seen").
 */
const FRAME = new Set(
  "set sets do mean means use used work works happen happens return returns need needs make makes take takes give gives get gets change changes cause causes vs versus".split(
    " ",
  ),
);
const onlyFrameMissing = (question: string, holds: (term: string) => boolean) =>
  words(question).every((word) => FRAME.has(word) || word.startsWith("-") || holds(stem(word)));

/** Whether a question has rare words and `holds` all of them. */
const holdsRare = (rare: string[], holds: (term: string) => boolean) => rare.length > 0 && rare.every(holds);

/** The terms of the passages and their titles. */
const heldBy = (sources: readonly Source[]) =>
  new Set(sources.flatMap((source) => terms(`${source.title ?? ""} ${source.content}`)));

/** Whether one of the passages is near the question as a whole (MIN_PASSAGE_SIMILARITY). */
function near(question: string, sources: readonly Source[]): boolean {
  const wanted = embedOffline(question, NEARNESS_DIMENSIONS);
  return sources.some(
    (source) => cosine(wanted, embedOffline(source.content, NEARNESS_DIMENSIONS)) >= MIN_PASSAGE_SIMILARITY,
  );
}

/** The fall-back when no sentence covers the question's words: the sentences nearest to it in meaning. */
function byMeaning(question: string, candidates: Candidate[]): string {
  const wanted = meaningOf(question);
  if (!wanted) return NOT_FOUND;
  const near = candidates
    // A passage of a few words (a stored label, "proto doc") is near anything by one word's meaning: it may answer
    // by its words (above), never by meaning alone.
    .filter((c) => c.text.split(" ").length >= MEANING_MIN_WORDS)
    .map((c) => ({ c, similarity: cosine(wanted, meaningOf(c.text)) }))
    .filter((n) => n.similarity >= MIN_MEANING)
    .sort((a, b) => b.similarity - a.similarity || a.c.source - b.c.source || a.c.position - b.c.position);
  const best = near[0]?.similarity;
  if (best === undefined) return NOT_FOUND;
  return distinct(
    near.filter((n) => n.similarity >= best - MEANING_MARGIN).map((n) => n.c),
    MEANING_SENTENCES,
  )
    .sort(inOrder)
    .map(({ c, sources }) => withMarkers(excerpt(c.text), sources))
    .join(" ");
}

/** Both vectors are unit length (or absent: no known word, no similarity). */
function cosine(a: Float32Array, b: Float32Array | null): number {
  if (!b) return 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}
