/**
 * The offline embedder: deterministic feature hashing, no model, no network. Used when no OpenAI key is set.
 *
 * Text is normalized (Unicode NFKC, Latin/Greek/Cyrillic diacritics folded, lowercased) and cut into words
 * (runs of letters, digits and marks; every Han/kana character is a word of its own; one-letter Latin words are
 * dropped). Each word w yields features, each counted per text (tf) and weighted:
 *
 *   feature                                                            weight
 *   unigram: stem(w)                                                   1.0  (0.1 for English stopwords)
 *   bigram: {stem(w), stem(next content word)} (unordered, skips        0.5
 *           stopwords, so "refund policy" ~ "policy for refunds")
 *   CJK bigram: two adjacent Han/kana characters (ordered)             0.5
 *   character trigrams of "^w$" (not for stopwords or CJK)             0.25 each
 *
 * stem() strips common English suffixes from ASCII words longer than 3 letters: -ies -> -y, -s (not -ss, -us, -is),
 * -ing, -ed (-eed -> -ee), -ly (after a consonant other than p), then undoubles a final consonant after -ing/-ed and
 * drops a final -e, so refund/refunds/refunded/refunding, policy/policies, hope/hoped/hoping, box/boxes,
 * process/processes/processed each share a stem.
 *
 * A feature's value is weight * (1 + ln tf). It is added, with a sign, to one of the word buckets; bucket and sign
 * come from a 32-bit hash of the feature (FNV-1a over UTF-16 code units, finalized with murmur3's fmix32).
 *
 * Meaning (vectors of 256 dimensions or more): the last 100 dimensions hold the rarity-weighted (SIF) sum of the
 * GloVe vectors of the text's non-stopword words among the 50,000 most frequent (words.bin, built by
 * scripts/build-word-vectors.ts), so "refund" is near "money back" and "dog" near "puppy" though they share no
 * letters. Word buckets and meaning are each L2-normalized and weighted so that the meaning holds MEANING_SHARE of
 * the squared length: cosine = 0.6 * words + 0.4 * meaning. Text with no word at all (empty, whitespace,
 * punctuation only) gets the fixed unit vector e0 = [1, 0, 0, ...], so cosine similarity is always defined.
 *
 * Deterministic: no randomness and no locale-dependent calls (toLowerCase and normalize follow the Unicode tables of
 * the runtime). Vectors stored by one version must match queries embedded by the next, so any change to the features,
 * weights or hashing here must come with a new OFFLINE_MODEL name (and a re-embedding of stored chunks).
 *
 * Cost: one pass over the text, no allocation per feature (an open-addressing table of 32-bit feature hashes is
 * reused across texts); about 15,000 chunks of 350 tokens per second at 1536 dimensions on one core.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as Tokens from "../tokens";
import type { Embedder, EmbedResult } from "./types";

export const OFFLINE_MODEL = "engram-offline-v2";

const W_UNIGRAM = 1;
const W_STOPWORD = 0.1;
const W_BIGRAM = 0.5;
const W_TRIGRAM = 0.25;

const SEED_WORD = 0x811c9dc5; // FNV offset basis: hash of a raw word (stopword lookup)
const SEED_STEM = 0x2f1b7c31; // unigram feature
const SEED_TRIGRAM = 0x6a09e667;
const SEED_CJK_BIGRAM = 0x3c6ef372;
const FNV_PRIME = 0x01000193;
/** Mixed into a feature's hash to pick its bucket; another seed is an equally good embedder (`npm run eval -- --seed`). */
const BUCKET_SEED = 0x5bd1e995;

/** Share of the squared length given to meaning, chosen on the labelled sets (docs/search.md, "Offline embedder"). */
const MEANING_SHARE = 0.4;
/** Vectors shorter than this get no meaning feature: 100 of 128 dimensions would crowd out the words. */
const MEANING_MIN_DIMENSIONS = 256;
/** SIF weight a / (a + p(word)) with a = 1e-3 and p(word of rank r) ~ 1 / (r * H), H ~ 13.3 for GloVe's vocabulary. */
const SIF_RANK = 75;

/** Texts embedded between two yields to the event loop (lets timers and abort signals run). */
const YIELD_EVERY = 256;

const STOPWORDS =
  "a an the and or but if then else of to in on at by for with from as into onto about above below over under " +
  "between through during before after is are was were be been being am do does did doing done have has had " +
  "having it its this that these those there here what which who whom whose when where why how i me my mine we " +
  "us our ours you your yours he him his she her hers they them their theirs not no nor so too very can could " +
  "will would shall should may might must just also than such some any all each every both few more most other " +
  "own same only up down out off again further once s t don doesn didn isn aren wasn weren won let get got";

function fnvRange(s: string, from: number, to: number, seed: number): number {
  let h = seed;
  for (let i = from; i < to; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return h;
}

function fmix32(x: number): number {
  let h = x;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

const STOP_HASHES = new Set(STOPWORDS.split(" ").map((w) => fnvRange(w, 0, w.length, SEED_WORD)));

// Character kinds for word scanning.
const K_NONE = 0;
const K_WORD = 1; // letter, digit or mark: part of a word
const K_CJK = 2; // Han or kana: a word by itself

const WORD_CHAR = /[\p{L}\p{N}\p{M}]/u;
/** Kind + 1 of each BMP code unit seen so far (0: not looked up yet); filled lazily, one regex test per code unit. */
const KINDS = new Uint8Array(0x10000);

function kindOf(c: number): number {
  let k = KINDS[c]!;
  if (k === 0) {
    const isCjk = (c >= 0x3040 && c <= 0x30ff) || (c >= 0x31f0 && c <= 0x31ff) || (c >= 0x3400 && c <= 0x4dbf);
    const isHan = (c >= 0x4e00 && c <= 0x9fff) || (c >= 0xf900 && c <= 0xfaff);
    k = 1 + (WORD_CHAR.test(String.fromCharCode(c)) ? (isCjk || isHan ? K_CJK : K_WORD) : K_NONE);
    KINDS[c] = k;
  }
  return k - 1;
}

function kindOfAstral(cp: number): number {
  if (cp >= 0x20000 && cp <= 0x3ffff) return K_CJK;
  return WORD_CHAR.test(String.fromCodePoint(cp)) ? K_WORD : K_NONE;
}

const COMBINING_DIACRITICS = /[\u0300-\u036f]/g;
const NON_ASCII = /[\u0080-\uffff]/;

/** NFKC with Latin/Greek/Cyrillic diacritics removed, lowercased. */
export function normalizeForEmbedding(text: string): string {
  if (!NON_ASCII.test(text)) return text.toLowerCase();
  return text.normalize("NFKD").replace(COMBINING_DIACRITICS, "").normalize("NFKC").toLowerCase();
}

function isVowel(c: number): boolean {
  return c === 0x61 || c === 0x65 || c === 0x69 || c === 0x6f || c === 0x75 || c === 0x79; // a e i o u y
}

function hasVowel(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (isVowel(s.charCodeAt(i))) return true;
  return false;
}

function endsWith(s: string, end: number, suffix: string): boolean {
  const n = suffix.length;
  for (let i = 0; i < n; i++) if (s.charCodeAt(end - n + i) !== suffix.charCodeAt(i)) return false;
  return true;
}

/** Flag in stem()'s result: the stem is s[from, end) followed by "y". */
const STEM_Y = 1 << 30;

/**
 * Light English stemmer for a lowercase ASCII word s[from, to). Returns the stem's end offset, or'ed with STEM_Y
 * when a "y" must be appended (policies -> policy). Allocation-free.
 */
function stem(s: string, from: number, to: number): number {
  let e = to;
  if (e - from <= 3) return e;
  if (e - from > 4 && endsWith(s, e, "ies")) return (e - 3) | STEM_Y; // "polic" + "y"
  if (s.charCodeAt(e - 1) === 0x73 /* s */ && !endsWith(s, e, "ss") && !endsWith(s, e, "us") && !endsWith(s, e, "is"))
    e--;
  let undouble = false;
  if (e - from > 5 && endsWith(s, e, "ing") && hasVowel(s, from, e - 3)) {
    e -= 3;
    undouble = true;
  } else if (e - from > 4 && endsWith(s, e, "eed")) {
    e -= 1;
  } else if (e - from > 4 && endsWith(s, e, "ed") && hasVowel(s, from, e - 2)) {
    e -= 2;
    undouble = true;
  } else if (e - from > 5 && endsWith(s, e, "ly")) {
    const c = s.charCodeAt(e - 3);
    if (!isVowel(c) && c !== 0x70 /* p */) e -= 2;
  }
  if (undouble && e - from >= 3) {
    const c = s.charCodeAt(e - 1);
    if (c === s.charCodeAt(e - 2) && !isVowel(c) && c !== 0x6c && c !== 0x73 && c !== 0x7a) e--; // not l, s, z
  }
  if (e - from > 3 && s.charCodeAt(e - 1) === 0x65 /* e */) e--;
  return e;
}

/** Open-addressing map from feature hash to (tf, weight), reused across texts. */
class FeatureCounts {
  private keys: Int32Array;
  private tf: Float32Array;
  private weight: Float32Array;
  private used: Int32Array;
  private size = 0;
  private mask: number;

  constructor(capacity = 4096) {
    this.keys = new Int32Array(capacity);
    this.tf = new Float32Array(capacity);
    this.weight = new Float32Array(capacity);
    this.used = new Int32Array(capacity >> 1);
    this.mask = capacity - 1;
  }

  add(hash: number, weight: number): void {
    const key = hash === 0 ? 1 : hash; // 0 marks an empty slot
    let i = fmix32(key) & this.mask;
    for (;;) {
      const k = this.keys[i]!;
      if (k === key) {
        this.tf[i]! += 1;
        return;
      }
      if (k === 0) break;
      i = (i + 1) & this.mask;
    }
    this.keys[i] = key;
    this.tf[i] = 1;
    this.weight[i] = weight;
    this.used[this.size++] = i;
    if (this.size >= this.used.length) this.grow();
  }

  get count(): number {
    return this.size;
  }

  /** Adds every feature into vector[0, dims) (signed hashing) and empties the map. */
  drainInto(vector: Float32Array, dims: number, seed: number): void {
    for (let j = 0; j < this.size; j++) {
      const i = this.used[j]!;
      const h = fmix32(this.keys[i]! ^ seed);
      const value = this.weight[i]! * (1 + Math.log(this.tf[i]!));
      const bucket = (h >>> 1) % dims;
      vector[bucket]! += h & 1 ? value : -value;
      this.keys[i] = 0;
    }
    this.size = 0;
  }

  /** Empties the map without adding its features anywhere. */
  clear(): void {
    for (let j = 0; j < this.size; j++) this.keys[this.used[j]!] = 0;
    this.size = 0;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldTf = this.tf;
    const oldWeight = this.weight;
    const oldUsed = this.used;
    const oldSize = this.size;
    const capacity = oldKeys.length * 2;
    this.keys = new Int32Array(capacity);
    this.tf = new Float32Array(capacity);
    this.weight = new Float32Array(capacity);
    this.used = new Int32Array(capacity >> 1);
    this.mask = capacity - 1;
    this.size = 0;
    for (let j = 0; j < oldSize; j++) {
      const o = oldUsed[j]!;
      const key = oldKeys[o]!;
      let i = fmix32(key) & this.mask;
      while (this.keys[i] !== 0) i = (i + 1) & this.mask;
      this.keys[i] = key;
      this.tf[i] = oldTf[o]!;
      this.weight[i] = oldWeight[o]!;
      this.used[this.size++] = i;
    }
  }
}

/** GloVe word vectors of the most frequent English words, centred and quantized (scripts/build-word-vectors.ts). */
interface WordTable {
  dimensions: number;
  index: Map<string, number>;
  scales: Float32Array;
  components: Int8Array;
}

let words: WordTable | undefined;

/**
 * Beside this module when run from source; in a Lambda bundle, where the module is inlined into the handler, the
 * file is copied to the same path under the function's root, which is the working directory (infra/functions.ts).
 */
function readWordsFile(): Buffer {
  const beside = fileURLToPath(new URL("./words.bin", import.meta.url));
  return readFileSync(existsSync(beside) ? beside : resolve("core/embedding/words.bin"));
}

function wordTable(): WordTable {
  if (words) return words;
  const file = readWordsFile();
  if (file.toString("latin1", 0, 4) !== "EWV1") throw new Error("core/embedding/words.bin is not a word-vector file");
  const count = file.readUInt32LE(4);
  const dimensions = file.readUInt32LE(8);
  const bytesAt = 12 + 4 * count;
  const scales = new Float32Array(count);
  for (let i = 0; i < count; i++) scales[i] = file.readFloatLE(12 + 4 * i);
  const components = new Int8Array(file.buffer, file.byteOffset + bytesAt, dimensions * count);
  const list = file.toString("utf8", bytesAt + dimensions * count).split("\n");
  const index = new Map<string, number>();
  for (let i = 0; i < count; i++) index.set(list[i]!, i);
  words = { dimensions, index, scales, components };
  return words;
}

/** Adds a known word's vector, weighted by its rarity (SIF), into meaning. */
function addMeaning(table: WordTable, word: string, meaning: Float32Array): void {
  const i = table.index.get(word);
  if (i === undefined) return;
  const weight = (table.scales[i]! * (i + 1)) / (i + 1 + SIF_RANK);
  const dims = meaning.length;
  const components = table.components;
  const at = i * dims;
  for (let d = 0; d < dims; d++) meaning[d] = meaning[d]! + weight * components[at + d]!;
}

/** Extracts the features of one text into counts (see the file comment), and its words' meaning when asked. */
function extractFeatures(
  raw: string,
  counts: FeatureCounts,
  meaning: Float32Array | null,
  table: WordTable | null,
): void {
  const s = normalizeForEmbedding(raw);
  const n = s.length;
  let prevContent = 0; // stem hash of the previous content word, 0 if none
  let hasPrevContent = false;
  let prevCjk = 0; // code point of the previous CJK character, if it ends at prevCjkEnd
  let prevCjkEnd = -1;
  let i = 0;
  while (i < n) {
    const c = s.charCodeAt(i);
    let kind: number;
    let width = 1;
    if (c < 0x80) {
      kind = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) ? K_WORD : K_NONE;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
      const cp = s.codePointAt(i)!;
      width = cp > 0xffff ? 2 : 1;
      kind = width === 2 ? kindOfAstral(cp) : K_NONE;
    } else {
      kind = kindOf(c);
    }
    if (kind === K_NONE) {
      i += width;
      continue;
    }
    if (kind === K_CJK) {
      const cp = width === 2 ? s.codePointAt(i)! : c;
      counts.add(Math.imul(SEED_STEM ^ cp, FNV_PRIME), W_UNIGRAM);
      if (prevCjkEnd === i) counts.add(fmix32(Math.imul(prevCjk ^ SEED_CJK_BIGRAM, FNV_PRIME) ^ cp), W_BIGRAM);
      prevCjk = cp;
      i += width;
      prevCjkEnd = i;
      continue;
    }

    // A word: letters, digits and marks (not CJK).
    const from = i;
    let asciiLetters = true;
    while (i < n) {
      const d = s.charCodeAt(i);
      let k: number;
      let w = 1;
      if (d < 0x80) {
        if (d >= 0x61 && d <= 0x7a) k = K_WORD;
        else if (d >= 0x30 && d <= 0x39) {
          k = K_WORD;
          asciiLetters = false;
        } else k = K_NONE;
      } else if (d >= 0xd800 && d <= 0xdbff && i + 1 < n) {
        const cp = s.codePointAt(i)!;
        w = cp > 0xffff ? 2 : 1;
        k = w === 2 ? kindOfAstral(cp) : K_NONE;
        asciiLetters = false;
      } else {
        k = kindOf(d);
        asciiLetters = false;
      }
      if (k !== K_WORD) break;
      i += w;
    }
    const to = i;
    if (to - from === 1 && asciiLetters) continue; // "a", the "s" of "it's", ...

    const wordHash = fnvRange(s, from, to, SEED_WORD);
    if (STOP_HASHES.has(wordHash)) {
      counts.add(fnvRange(s, from, to, SEED_STEM), W_STOPWORD);
      continue;
    }
    if (meaning && table && asciiLetters && to - from <= 24) addMeaning(table, s.slice(from, to), meaning);
    let stemHash: number;
    if (asciiLetters) {
      const st = stem(s, from, to);
      const end = st & ~STEM_Y;
      stemHash = fnvRange(s, from, end, SEED_STEM);
      if (st & STEM_Y) stemHash = Math.imul(stemHash ^ 0x79 /* y */, FNV_PRIME);
    } else {
      stemHash = fnvRange(s, from, to, SEED_STEM);
    }
    counts.add(stemHash, W_UNIGRAM);
    if (hasPrevContent) {
      const lo = Math.min(prevContent, stemHash);
      const hi = Math.max(prevContent, stemHash);
      counts.add(fmix32(Math.imul(lo, 0x9e3779b1) ^ hi), W_BIGRAM);
    }
    prevContent = stemHash;
    hasPrevContent = true;

    // Character trigrams of "^word$" (0x5e = ^, 0x24 = $).
    let a = 0x5e;
    let b = s.charCodeAt(from);
    for (let j = from + 1; j <= to; j++) {
      const c3 = j < to ? s.charCodeAt(j) : 0x24;
      let h = Math.imul(SEED_TRIGRAM ^ a, FNV_PRIME);
      h = Math.imul(h ^ b, FNV_PRIME);
      h = Math.imul(h ^ c3, FNV_PRIME);
      counts.add(h, W_TRIGRAM);
      a = b;
      b = c3;
    }
  }
}

const meaningScratch = new FeatureCounts();

/**
 * The word-meaning part of a text alone (its SIF-weighted word vectors, as a unit vector), or null when none of its
 * words is in the table. The extractive answerer compares sentences with a question by it.
 */
export function meaningOf(text: string): Float32Array | null {
  const table = wordTable();
  const meaning = new Float32Array(table.dimensions);
  // The word features are computed on the way and thrown away: one map for every call, emptied after each.
  extractFeatures(text, meaningScratch, meaning, table);
  meaningScratch.clear();
  const length = Math.sqrt(sumOfSquares(meaning, 0, meaning.length));
  if (length === 0) return null;
  for (let d = 0; d < meaning.length; d++) meaning[d]! /= length;
  return meaning;
}

/**
 * Whether a lower-case word is a common one: a stop word, or among the table's 50,000 most frequent words. The
 * extractive answerer takes the others (a command, a name) for what a question is about.
 */
export function isCommonWord(word: string): boolean {
  return STOP_HASHES.has(fnvRange(word, 0, word.length, SEED_WORD)) || wordTable().index.has(word);
}

function checkDimensions(dimensions: number): number {
  if (!Number.isInteger(dimensions) || dimensions < 1) throw new RangeError("dimensions must be an integer >= 1");
  return dimensions;
}

/**
 * Embeds one text into a fresh unit vector of the given length (see the file comment for the method).
 * The same text always gives the same vector.
 */
export function embedOffline(text: string, dimensions: number): Float32Array {
  return embedWith(text, checkDimensions(dimensions), new FeatureCounts(), BUCKET_SEED);
}

function embedWith(text: string, dimensions: number, counts: FeatureCounts, seed: number): Float32Array {
  const vector = new Float32Array(dimensions);
  const table = dimensions >= MEANING_MIN_DIMENSIONS ? wordTable() : null;
  const meaning = table ? new Float32Array(table.dimensions) : null;
  extractFeatures(text, counts, meaning, table);
  const wordDims = dimensions - (table?.dimensions ?? 0);
  counts.drainInto(vector, wordDims, seed);
  const wordsLength = Math.sqrt(sumOfSquares(vector, 0, wordDims));
  if (wordsLength === 0) {
    vector.fill(0);
    vector[0] = 1;
    return vector;
  }
  const meaningLength = meaning ? Math.sqrt(sumOfSquares(meaning, 0, meaning.length)) : 0;
  const meaningShare = meaningLength > 0 ? MEANING_SHARE : 0;
  const wordScale = Math.sqrt(1 - meaningShare) / wordsLength;
  for (let i = 0; i < wordDims; i++) vector[i]! *= wordScale;
  if (meaning && meaningLength > 0) {
    const meaningScale = Math.sqrt(meaningShare) / meaningLength;
    for (let d = 0; d < meaning.length; d++) vector[wordDims + d] = meaning[d]! * meaningScale;
  }
  return vector;
}

function sumOfSquares(v: Float32Array, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += v[i]! * v[i]!;
  return sum;
}

/**
 * An Embedder that needs no network or key: hashed lexical features and word meaning (OFFLINE_MODEL). `seed`, for
 * measurement only, hashes the features into other buckets: its vectors are another model's, and named so.
 */
export function createOfflineEmbedder(opts: { dimensions: number; seed?: number }): Embedder {
  const dimensions = checkDimensions(opts.dimensions);
  const seed = opts.seed ?? BUCKET_SEED;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
    throw new RangeError("seed must be a 32-bit unsigned integer");
  const bucketSeed = seed | 0; // as the 32-bit integers the feature hashes are
  const counts = new FeatureCounts();
  return {
    provider: "offline",
    model: seed === BUCKET_SEED ? OFFLINE_MODEL : `${OFFLINE_MODEL}-seed-${seed}`,
    dimensions,
    async embed(texts: string[], embedOpts?: { signal?: AbortSignal }): Promise<EmbedResult> {
      const signal = embedOpts?.signal;
      const vectors: Float32Array[] = new Array(texts.length);
      let tokens = 0;
      for (let i = 0; i < texts.length; i++) {
        if (i > 0 && i % YIELD_EVERY === 0) await new Promise<void>((resolve) => setImmediate(resolve));
        signal?.throwIfAborted();
        const text = texts[i]!;
        vectors[i] = embedWith(text, dimensions, counts, bucketSeed);
        tokens += Tokens.estimate(text);
      }
      signal?.throwIfAborted();
      return { vectors, tokens };
    },
  };
}
