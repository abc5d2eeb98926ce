/**
 * Text chunking for retrieval: a dependency-free token estimate, a structure-aware splitter, an HTML-to-text
 * converter and a content hash. Everything here runs in linear time and is deterministic.
 */
import { createHash } from "node:crypto";

// ---------------------------------------------------------------------------------------------------------------
// Token estimate
// ---------------------------------------------------------------------------------------------------------------

/*
 * estimateTokens(text) approximates the number of tokens OpenAI's cl100k_base tokenizer (text-embedding-3-*,
 * gpt-4, gpt-3.5-turbo) gives, without its 1.7 MB rank table.
 *
 * The text is cut into maximal runs of one character class. A run costs the sum of its characters' weights, but at
 * least 1 token; a whitespace run costs 1/4 token if it holds anything but U+0020 spaces (newline, tab), else 0.
 * The estimate is ceil(sum of run costs), and at least 1 for non-empty text. Weights in tokens per character:
 *
 *   latin   a-z                                  2/13 (so a word of up to 6 letters is 1 token, 13 letters 2)
 *           A-Z                                  2/13 + 1/4
 *           other Latin letters and diacritics   2/13 + 2   (accented letters split into byte tokens)
 *   digit   0-9                                  1/2
 *   punct   ASCII punctuation and symbols        1/2
 *   cyr     Cyrillic                             1/2
 *   alpha   Greek, Armenian, Hebrew, Arabic, Georgian, ...   1
 *   dense   Thai, Lao, Tibetan, Myanmar, Khmer, Ethiopic     1
 *   indic   Devanagari, Bengali, Tamil, ... Sinhala          4/3
 *   cjk     kana, CJK punctuation, full-width forms 1; Han 13/12; Hangul 7/6; astral Han 2
 *   symbol  anything else (other punctuation, emoji, ...)    4/3 per UTF-16 unit (an emoji: 8/3)
 *
 * The weights were fitted against cl100k_base (js-tiktoken 1.0.21, used offline for calibration only) on the
 * GPL/Apache licences, npm READMEs, TypeScript/JavaScript source, package.json files, the Vim tutor in 17
 * languages and short Hindi/Thai/Arabic/Hebrew/emoji samples. Measured error on whole documents
 * (estimate / cl100k - 1):
 *   English prose -1 .. +5 %         Markdown READMEs +8 %        JS/TS source -2 .. +2 %      JSON +8 %
 *   French, Spanish, Czech, Russian, Turkish 0 .. +7 %    German, Italian, Polish, Ukrainian, Bulgarian -15 .. -11 %
 *   Vietnamese +19 %    Greek -6 %    Japanese 0 %    Korean +1 %    Chinese -14 % (rare characters) .. +24 %
 *   (the most common ones)    Hindi, Thai, emoji within 1 %    Arabic +27 %    Hebrew -13 %
 *   hex ids, numbers -9 .. -7 %      deeply indented code -13 %
 * Over 400-token windows of those documents the error stays within -30 .. +42 %, and for 90 % of the windows of
 * each document within -22 .. +29 % (English and code: -13 .. +29 %).
 *
 * Properties the chunker relies on, because every run cost is non-decreasing and subadditive in its characters:
 *   - monotone: appending characters never lowers the estimate;
 *   - subadditive: estimateTokens(a + b) <= estimateTokens(a) + estimateTokens(b), so a chunk assembled from
 *     pieces never costs more than the sum of its pieces.
 * Costs are kept as integers in 1/156 token (UNIT), so sums are exact.
 */

const UNIT = 156;
/** Cost of a whitespace run holding a newline, tab or other non-U+0020 space. */
const HEAVY_SPACE = 39;

const C_SPACE = 0;
const C_LATIN = 1;
const C_DIGIT = 2;
const C_PUNCT = 3;
const C_CYR = 4;
const C_ALPHA = 5;
const C_DENSE = 6;
const C_INDIC = 7;
const C_CJK = 8;
const C_SYMBOL = 9;
/** High surrogate: resolved from the code point. */
const C_HIGH = 10;

const W_ASTRAL_SYMBOL = 416; // 2 units of 4/3
const W_ASTRAL_HAN = 312;

const CLASS = new Uint8Array(0x10000);
/** Weight of each BMP code unit, in 1/UNIT token. */
const WEIGHT = new Uint16Array(0x10000);
buildTables();

function buildTables(): void {
  const set = (from: number, to: number, cls: number, weight: number) => {
    CLASS.fill(cls, from, to + 1);
    WEIGHT.fill(weight, from, to + 1);
  };
  set(0, 0xffff, C_SYMBOL, 208);
  set(0x21, 0x7e, C_PUNCT, 78);
  set(0x30, 0x39, C_DIGIT, 78);
  set(0x41, 0x5a, C_LATIN, 24 + 39);
  set(0x61, 0x7a, C_LATIN, 24);
  set(0xc0, 0x2ff, C_LATIN, 24 + 312); // Latin-1 letters, Latin Extended-A/B, IPA, spacing modifiers
  set(0xd7, 0xd7, C_SYMBOL, 208); // ×
  set(0xf7, 0xf7, C_SYMBOL, 208); // ÷
  set(0x300, 0x36f, C_LATIN, 24 + 312); // combining diacritical marks
  set(0x370, 0x3ff, C_ALPHA, 156); // Greek
  set(0x400, 0x52f, C_CYR, 78); // Cyrillic
  set(0x530, 0x8ff, C_ALPHA, 156); // Armenian, Hebrew, Arabic, Syriac, Thaana, NKo, ...
  set(0x900, 0xdff, C_INDIC, 208); // Devanagari ... Sinhala
  set(0xe00, 0xfff, C_DENSE, 156); // Thai, Lao, Tibetan
  set(0x1000, 0x109f, C_DENSE, 156); // Myanmar
  set(0x10a0, 0x10ff, C_ALPHA, 156); // Georgian
  set(0x1100, 0x11ff, C_CJK, 156); // Hangul Jamo
  set(0x1200, 0x139f, C_DENSE, 156); // Ethiopic
  set(0x13a0, 0x167f, C_ALPHA, 156); // Cherokee, Canadian syllabics
  set(0x1780, 0x17ff, C_DENSE, 156); // Khmer
  set(0x1c80, 0x1c8f, C_CYR, 78); // Cyrillic Extended-C
  set(0x1e00, 0x1eff, C_LATIN, 24 + 312); // Latin Extended Additional (Vietnamese)
  set(0x1f00, 0x1fff, C_ALPHA, 156); // Greek Extended
  set(0x2c60, 0x2c7f, C_LATIN, 24 + 312);
  set(0x2de0, 0x2dff, C_CYR, 78);
  set(0x2e80, 0x2fdf, C_CJK, 169); // radicals
  set(0x3000, 0x33ff, C_CJK, 156); // CJK punctuation, kana, bopomofo, Hangul compatibility, enclosed, compatibility
  set(0x3400, 0x4dbf, C_CJK, 169); // Han, Extension A
  set(0x4e00, 0x9fff, C_CJK, 169); // Han, Unified Ideographs
  set(0xa640, 0xa69f, C_CYR, 78);
  set(0xa720, 0xa7ff, C_LATIN, 24 + 312);
  set(0xa960, 0xa97f, C_CJK, 156);
  set(0xac00, 0xd7ff, C_CJK, 182); // Hangul syllables, Jamo Extended-B
  set(0xd800, 0xdbff, C_HIGH, 0);
  set(0xf900, 0xfaff, C_CJK, 169); // compatibility ideographs
  set(0xfb00, 0xfb06, C_LATIN, 24 + 312); // ligatures
  set(0xfe30, 0xfe4f, C_CJK, 156);
  set(0xff00, 0xffef, C_CJK, 156); // half-width and full-width forms
  // Exactly the characters JavaScript's /\s/ matches.
  for (const c of [9, 10, 11, 12, 13, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff]) {
    set(c, c, C_SPACE, HEAVY_SPACE);
  }
  set(0x2000, 0x200a, C_SPACE, HEAVY_SPACE);
  set(0x20, 0x20, C_SPACE, 0);
}

/** Cost of a run of class cls whose character weights add up to sum. */
function runCost(cls: number, sum: number): number {
  if (cls < 0) return 0;
  if (cls === C_SPACE) return Math.min(sum, HEAVY_SPACE);
  return Math.max(sum, UNIT);
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

/** Class and weight of the astral code point made of the surrogate pair hi, lo. */
function isAstralHan(hi: number, lo: number): boolean {
  const cp = ((hi - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
  return cp >= 0x20000 && cp <= 0x3ffff;
}

/** Sum of run costs of text[s, e), in 1/UNIT token. */
function estimateUnits(text: string, s: number, e: number): number {
  let total = 0;
  let cls = -1;
  let sum = 0;
  let i = s;
  while (i < e) {
    const c = text.charCodeAt(i);
    let k = CLASS[c]!;
    let w = WEIGHT[c]!;
    let u = 1;
    if (k === C_HIGH) {
      const lo = text.charCodeAt(i + 1);
      if (i + 1 < e && isLowSurrogate(lo)) {
        u = 2;
        if (isAstralHan(c, lo)) {
          k = C_CJK;
          w = W_ASTRAL_HAN;
        } else {
          k = C_SYMBOL;
          w = W_ASTRAL_SYMBOL;
        }
      } else {
        k = C_SYMBOL;
        w = 208;
      }
    }
    if (k === cls) {
      sum += w;
    } else {
      total += runCost(cls, sum);
      cls = k;
      sum = w;
    }
    i += u;
  }
  return total + runCost(cls, sum);
}

function unitsToTokens(units: number): number {
  return Math.ceil(units / UNIT);
}

/** Estimated cl100k token count; see the comment above for the method and its measured error. */
export function estimateTokens(text: string): number {
  if (text.length === 0) return 0;
  return Math.max(1, unitsToTokens(estimateUnits(text, 0, text.length)));
}

// ---------------------------------------------------------------------------------------------------------------
// Splitter
// ---------------------------------------------------------------------------------------------------------------

export interface Chunk {
  /** 0-based position in the returned array. */
  ordinal: number;
  /** Exactly text.slice(start, end); never empty, never starts or ends with whitespace. */
  content: string;
  /** estimateTokens(content); never above maxTokens. */
  tokens: number;
  /** UTF-16 offset of the first character of content in the input. */
  start: number;
  /** UTF-16 offset just past the last character of content in the input. */
  end: number;
}

export interface SplitOptions {
  /** Token budget of one chunk, overlap included (estimateTokens). Integer >= 8. Default 400. */
  maxTokens?: number;
  /** Tokens repeated from the end of the previous chunk. Integer >= 0, capped at maxTokens / 2. Default 50. */
  overlapTokens?: number;
}

/** Break strength before an atom, strongest first. */
const B_SECTION = 0; // a markdown ATX heading line (or the start of the text)
const B_PARAGRAPH = 1; // a blank line
const B_SENTENCE = 2; // a sentence end (. ! ? … 。！？) then a word not starting in a-z or a line break; a list item
//                        or table row; a line break inside a ``` fence
const B_LINE = 3; // another line break (e.g. in hard-wrapped text)
const B_WORD = 4; // whitespace
const B_CHAR = 5; // inside a word too long for one piece

/** The largest atom (word piece) cost the splitter makes, so overlaps can be cut finely even in CJK text. */
const PIECE_TOKENS = 16;
/** Smallest budget accepted: one character can cost up to 3 tokens (an emoji), and a chunk needs room to grow. */
const MIN_MAX_TOKENS = 8;

class Atoms {
  count = 0;
  start: Int32Array;
  end: Int32Array;
  /** Cost in 1/UNIT token. */
  units: Int32Array;
  brk: Uint8Array;
  /** Cost of the whitespace between the previous atom and this one (0 or HEAVY_SPACE). */
  gap: Uint8Array;

  constructor(capacity: number) {
    const n = Math.max(16, capacity);
    this.start = new Int32Array(n);
    this.end = new Int32Array(n);
    this.units = new Int32Array(n);
    this.brk = new Uint8Array(n);
    this.gap = new Uint8Array(n);
  }

  push(start: number, end: number, units: number, brk: number, gap: number): void {
    if (this.count === this.start.length) this.grow();
    const i = this.count++;
    this.start[i] = start;
    this.end[i] = end;
    this.units[i] = units;
    this.brk[i] = brk;
    this.gap[i] = gap;
  }

  private grow(): void {
    const n = this.start.length * 2;
    const grow32 = (a: Int32Array) => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    const grow8 = (a: Uint8Array) => {
      const b = new Uint8Array(n);
      b.set(a);
      return b;
    };
    this.start = grow32(this.start);
    this.end = grow32(this.end);
    this.units = grow32(this.units);
    this.brk = grow8(this.brk);
    this.gap = grow8(this.gap);
  }
}

function isClosingMark(c: number): boolean {
  // ) ] } " ' ” ’ » 」 』 】 》 ）
  return (
    c === 0x29 ||
    c === 0x5d ||
    c === 0x7d ||
    c === 0x22 ||
    c === 0x27 ||
    c === 0x201d ||
    c === 0x2019 ||
    c === 0xbb ||
    c === 0x300d ||
    c === 0x300f ||
    c === 0x3011 ||
    c === 0x300b ||
    c === 0xff09
  );
}

function isCjkTerminator(c: number): boolean {
  return c === 0x3002 || c === 0xff01 || c === 0xff1f || c === 0xff61; // 。！？｡
}

function isTerminator(c: number): boolean {
  return c === 0x2e || c === 0x21 || c === 0x3f || c === 0x2026 || isCjkTerminator(c);
}

/** Whether the word text[s, e) ends a sentence: a terminator, then optionally closing quotes or brackets. */
function endsSentence(text: string, s: number, e: number): boolean {
  let i = e - 1;
  while (i > s && isClosingMark(text.charCodeAt(i))) i--;
  return isTerminator(text.charCodeAt(i));
}

/** Splits text into atoms: words (maximal non-whitespace runs), cut after CJK sentence ends and into pieces of at
 *  most pieceUnits (never inside a surrogate pair), each tagged with the break before it. Costs in 1/UNIT token. */
function buildAtoms(text: string, pieceUnits: number): Atoms {
  const n = text.length;
  const atoms = new Atoms(Math.min(n, 1 << 16) >> 2);
  let i = 0;
  let first = true;
  let prevEndsSentence = false;
  let inFence = false;

  const pushPieces = (s: number, e: number, brk: number, gap: number) => {
    const cost = estimateUnits(text, s, e);
    if (cost <= pieceUnits) {
      atoms.push(s, e, cost, brk, gap);
      return;
    }
    // Character split, tracking the cost of the open piece incrementally.
    let pieceStart = s;
    let closed = 0;
    let cls = -1;
    let sum = 0;
    let j = s;
    let b = brk;
    let g = gap;
    while (j < e) {
      const c = text.charCodeAt(j);
      let k = CLASS[c]!;
      let w = WEIGHT[c]!;
      let u = 1;
      if (k === C_HIGH) {
        const lo = text.charCodeAt(j + 1);
        if (j + 1 < e && isLowSurrogate(lo)) {
          u = 2;
          k = isAstralHan(c, lo) ? C_CJK : C_SYMBOL;
          w = k === C_CJK ? W_ASTRAL_HAN : W_ASTRAL_SYMBOL;
        } else {
          k = C_SYMBOL;
          w = 208;
        }
      }
      const withChar = k === cls ? closed + runCost(k, sum + w) : closed + runCost(cls, sum) + runCost(k, w);
      if (withChar > pieceUnits && j > pieceStart) {
        atoms.push(pieceStart, j, closed + runCost(cls, sum), b, g);
        b = B_CHAR;
        g = 0;
        pieceStart = j;
        closed = 0;
        cls = k;
        sum = w;
      } else if (k === cls) {
        sum += w;
      } else {
        closed += runCost(cls, sum);
        cls = k;
        sum = w;
      }
      j += u;
    }
    atoms.push(pieceStart, e, closed + runCost(cls, sum), b, g);
  };

  while (i < n) {
    // Whitespace gap.
    let newlines = 0;
    let lastNewline = -1;
    let heavy = false;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (CLASS[c] !== C_SPACE) break;
      if (c === 10 || (c === 13 && text.charCodeAt(i + 1) !== 10) || c === 0x2028 || c === 0x2029) {
        newlines++;
        lastNewline = i;
      }
      if (c !== 32) heavy = true;
      i++;
    }
    if (i >= n) break;
    // Word.
    const ws = i;
    while (i < n && CLASS[text.charCodeAt(i)] !== C_SPACE) i++;
    const we = i;

    const lineStart = newlines > 0 ? lastNewline + 1 : first ? 0 : -1;
    const atLineStart = lineStart >= 0 && ws - lineStart <= 3;
    let brk: number;
    if (first) brk = B_SECTION;
    else if (atLineStart && !inFence && isAtxMarker(text, ws, we)) brk = B_SECTION;
    else if (newlines >= 2) brk = B_PARAGRAPH;
    else if (newlines === 1) brk = inFence || prevEndsSentence || isLineMarker(text, ws, we) ? B_SENTENCE : B_LINE;
    else if (prevEndsSentence && !isAsciiLower(text.charCodeAt(ws))) brk = B_SENTENCE;
    else brk = B_WORD;
    if (atLineStart && isFenceMarker(text, ws, we)) inFence = !inFence;
    const gap = first ? 0 : heavy ? HEAVY_SPACE : 0;

    // Cut after CJK sentence ends inside the word.
    let s = ws;
    let b = brk;
    let g = gap;
    for (let j = ws; j < we - 1; j++) {
      if (!isCjkTerminator(text.charCodeAt(j))) continue;
      let k = j + 1;
      while (k < we && isClosingMark(text.charCodeAt(k))) k++;
      if (k >= we) break;
      pushPieces(s, k, b, g);
      s = k;
      b = B_SENTENCE;
      g = 0;
      j = k - 1;
    }
    pushPieces(s, we, b, g);

    prevEndsSentence = endsSentence(text, ws, we);
    first = false;
  }
  return atoms;
}

function isAsciiLower(c: number): boolean {
  return c >= 0x61 && c <= 0x7a;
}

/** A list item or quote marker (- * + > • 1. 1)) or a table row (|...) at the start of a line. */
function isLineMarker(text: string, s: number, e: number): boolean {
  const c = text.charCodeAt(s);
  if (c === 0x7c) return true;
  if (e - s === 1) return c === 0x2d || c === 0x2a || c === 0x2b || c === 0x3e || c === 0x2022;
  if (e - s > 10) return false;
  const last = text.charCodeAt(e - 1);
  if (last !== 0x2e && last !== 0x29) return false;
  for (let i = s; i < e - 1; i++) {
    const d = text.charCodeAt(i);
    if (d < 0x30 || d > 0x39) return false;
  }
  return true;
}

/** A word of 1 to 6 '#' (an ATX heading marker when it starts a line). */
function isAtxMarker(text: string, s: number, e: number): boolean {
  if (e - s > 6) return false;
  for (let i = s; i < e; i++) if (text.charCodeAt(i) !== 0x23) return false;
  return true;
}

/** A word starting with ``` or ~~~ (a code fence when it starts a line). */
function isFenceMarker(text: string, s: number, e: number): boolean {
  if (e - s < 3) return false;
  const c = text.charCodeAt(s);
  return (c === 0x60 || c === 0x7e) && text.charCodeAt(s + 1) === c && text.charCodeAt(s + 2) === c;
}

function checkInt(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) throw new RangeError(`${name} must be an integer >= ${min}`);
  return value;
}

/**
 * Splits text into chunks of at most maxTokens estimated tokens for embedding.
 *
 * The text is cut into words (whitespace-separated, and CJK sentences) tagged with the strongest boundary before
 * them: markdown heading (outside ``` fences) > blank line > sentence end, list item or code line > other line
 * break > space > inside a word. Words longer than
 * 16 tokens are cut into pieces (by character, never inside a surrogate pair). Chunks are then filled greedily:
 * each takes the longest run of words that fits the budget and ends before
 *   1. the last heading in that run, if any (so sections start chunks, and small sections are packed together);
 *   2. else the strongest boundary that still leaves the chunk at least half of its room for new text
 *      (the latest one of that strength);
 *   3. else the strongest boundary at all.
 * Each chunk after the first, unless it starts at a heading, begins with an overlap of at most overlapTokens taken
 * from the end of the previous chunk: whole sentences when they give at least half the overlap, else whole lines,
 * else whole words (word pieces only inside one very long word). The overlap never reaches back past a heading or
 * to the start of the previous chunk. overlapTokens is capped at maxTokens / 2.
 *
 * Invariants: content === text.slice(start, end); content has no leading or trailing whitespace and is never
 * empty; tokens === estimateTokens(content) <= maxTokens; chunks are in text order with strictly increasing start
 * and end; every non-whitespace character (per /\s/) of text is inside at least one [start, end). The same input
 * and options always give the same chunks. Runs in O(text.length).
 */
export function splitIntoChunks(text: string, opts: SplitOptions = {}): Chunk[] {
  const maxTokens = checkInt("maxTokens", opts.maxTokens ?? 400, MIN_MAX_TOKENS);
  const overlapTokens = Math.min(checkInt("overlapTokens", opts.overlapTokens ?? 50, 0), Math.floor(maxTokens / 2));
  const pieceTokens = Math.max(1, Math.min(PIECE_TOKENS, maxTokens - overlapTokens - 1));
  // All costs below are in 1/UNIT token; a chunk fits when its summed cost is at most maxUnits.
  const maxUnits = maxTokens * UNIT;
  const overlapUnits = overlapTokens * UNIT;

  const atoms = buildAtoms(text, pieceTokens * UNIT);
  const count = atoms.count;
  const { start: aStart, end: aEnd, brk, gap } = atoms;
  // cum[k] = sum over atoms m < k of units[m] + gap[m]; cost of atoms [a, c) = cum[c] - cum[a] - gap[a].
  const cum = new Float64Array(count + 1);
  for (let k = 0; k < count; k++) cum[k + 1] = cum[k]! + atoms.units[k]! + gap[k]!;
  const cost = (a: number, c: number) => cum[c]! - cum[a]! - gap[a]!;

  const chunks: Chunk[] = [];
  let s = 0; // first atom of the next chunk's new text
  let prevStart = 0; // first atom of the previous chunk
  while (s < count) {
    // Overlap: atoms [o, s) from the end of the previous chunk.
    let o = s;
    if (overlapUnits > 0 && s > 0 && brk[s] !== B_SECTION) {
      while (o - 1 > prevStart && cost(o - 1, s) + gap[s]! <= overlapUnits) {
        o--;
        if (brk[o] === B_SECTION) break;
      }
      // Prefer starting at a sentence (else a line, else a word) when that keeps at least half the overlap.
      for (const level of [B_SENTENCE, B_LINE, B_WORD]) {
        let m = o;
        while (m < s && brk[m]! > level) m++;
        if (m < s && cost(m, s) + gap[s]! >= overlapUnits / 2) {
          o = m;
          break;
        }
      }
      while (o < s && cost(o, s + 1) > maxUnits) o++;
    }

    // Window: atoms [o, w) with w as large as the budget allows (always at least one new atom).
    let w = s + 1;
    while (w < count && cost(o, w + 1) <= maxUnits) w++;

    let cut = w;
    if (w < count) {
      const enough = (maxUnits - (o < s ? cost(o, s) + gap[s]! : 0)) / 2;
      let heading = -1;
      let best = -1;
      let bestLevel = 99;
      let fallback = -1;
      let fallbackLevel = 99;
      for (let p = s + 1; p <= w; p++) {
        const level = brk[p]!;
        if (level === B_SECTION) heading = p;
        if (level <= fallbackLevel) {
          fallback = p;
          fallbackLevel = level;
        }
        if (level <= bestLevel && cost(s, p) >= enough) {
          best = p;
          bestLevel = level;
        }
      }
      cut = heading >= 0 ? heading : best >= 0 ? best : fallback;
    }

    const startOffset = aStart[o]!;
    const endOffset = aEnd[cut - 1]!;
    const content = text.slice(startOffset, endOffset);
    chunks.push({
      ordinal: chunks.length,
      content,
      tokens: estimateTokens(content),
      start: startOffset,
      end: endOffset,
    });
    prevStart = o;
    s = cut;
  }
  return chunks;
}

// ---------------------------------------------------------------------------------------------------------------
// HTML to text
// ---------------------------------------------------------------------------------------------------------------

/** Elements whose content is dropped entirely. */
const DROPPED = new Set(["script", "style", "noscript", "head", "template", "svg", "iframe", "object"]);
/** Elements that start and end a block (a line of their own). */
const BLOCK = new Set([
  "address",
  "article",
  "aside",
  "blockquote",
  "body",
  "caption",
  "dd",
  "details",
  "dialog",
  "div",
  "dl",
  "dt",
  "fieldset",
  "figcaption",
  "figure",
  "footer",
  "form",
  "header",
  "hgroup",
  "html",
  "legend",
  "main",
  "menu",
  "nav",
  "ol",
  "section",
  "summary",
  "table",
  "tbody",
  "tfoot",
  "thead",
  "tr",
  "ul",
]);
/** Elements separated from their neighbours by a blank line. */
const PARAGRAPH = new Set(["p", "blockquote", "pre", "table", "ul", "ol", "dl", "figure", "section", "article", "hr"]);

const LATIN1_ENTITIES =
  "nbsp iexcl cent pound curren yen brvbar sect uml copy ordf laquo not shy reg macr deg plusmn sup2 sup3 acute " +
  "micro para middot cedil sup1 ordm raquo frac14 frac12 frac34 iquest Agrave Aacute Acirc Atilde Auml Aring AElig " +
  "Ccedil Egrave Eacute Ecirc Euml Igrave Iacute Icirc Iuml ETH Ntilde Ograve Oacute Ocirc Otilde Ouml times Oslash " +
  "Ugrave Uacute Ucirc Uuml Yacute THORN szlig agrave aacute acirc atilde auml aring aelig ccedil egrave eacute " +
  "ecirc euml igrave iacute icirc iuml eth ntilde ograve oacute ocirc otilde ouml divide oslash ugrave uacute ucirc " +
  "uuml yacute thorn yuml";

const OTHER_ENTITIES: Record<string, number> = {
  amp: 0x26,
  lt: 0x3c,
  gt: 0x3e,
  quot: 0x22,
  apos: 0x27,
  OElig: 0x152,
  oelig: 0x153,
  Scaron: 0x160,
  scaron: 0x161,
  Yuml: 0x178,
  fnof: 0x192,
  circ: 0x2c6,
  tilde: 0x2dc,
  ensp: 0x2002,
  emsp: 0x2003,
  thinsp: 0x2009,
  zwnj: 0x200c,
  zwj: 0x200d,
  lrm: 0x200e,
  rlm: 0x200f,
  ndash: 0x2013,
  mdash: 0x2014,
  lsquo: 0x2018,
  rsquo: 0x2019,
  sbquo: 0x201a,
  ldquo: 0x201c,
  rdquo: 0x201d,
  bdquo: 0x201e,
  dagger: 0x2020,
  Dagger: 0x2021,
  bull: 0x2022,
  hellip: 0x2026,
  permil: 0x2030,
  prime: 0x2032,
  Prime: 0x2033,
  lsaquo: 0x2039,
  rsaquo: 0x203a,
  euro: 0x20ac,
  trade: 0x2122,
  larr: 0x2190,
  uarr: 0x2191,
  rarr: 0x2192,
  darr: 0x2193,
  harr: 0x2194,
  rArr: 0x21d2,
  hArr: 0x21d4,
  minus: 0x2212,
  infin: 0x221e,
  ne: 0x2260,
  le: 0x2264,
  ge: 0x2265,
  asymp: 0x2248,
  check: 0x2713,
};

let entityTable: Map<string, string> | undefined;

function entities(): Map<string, string> {
  if (entityTable) return entityTable;
  const table = new Map<string, string>();
  const latin1 = LATIN1_ENTITIES.split(" ");
  for (let i = 0; i < latin1.length; i++) table.set(latin1[i]!, String.fromCharCode(0xa0 + i));
  for (const [name, cp] of Object.entries(OTHER_ENTITIES)) table.set(name, String.fromCodePoint(cp));
  table.set("nbsp", " ");
  table.set("shy", "");
  entityTable = table;
  return table;
}

/** Windows-1252 meanings of numeric references &#128; to &#159;, as browsers decode them. */
const CP1252 =
  "\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f" +
  "\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178";

function decodeNumeric(body: string): string | undefined {
  const hex = body[1] === "x" || body[1] === "X";
  const digits = body.slice(hex ? 2 : 1);
  if (digits.length === 0 || !(hex ? /^[0-9a-fA-F]+$/ : /^[0-9]+$/).test(digits)) return undefined;
  const cp = Number.parseInt(digits, hex ? 16 : 10);
  if (cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return "\ufffd";
  if (cp >= 0x80 && cp <= 0x9f) return CP1252[cp - 0x80];
  return String.fromCodePoint(cp);
}

/** Decodes character references: named ones (HTML's common set) and numeric ones; unknown ones are kept. */
export function decodeEntities(s: string): string {
  if (!s.includes("&")) return s;
  return s.replace(/&(#[xX]?[0-9a-fA-F]{1,8}|[a-zA-Z][a-zA-Z0-9]{1,31});/g, (whole, body: string) => {
    if (body[0] === "#") return decodeNumeric(body) ?? whole;
    return entities().get(body) ?? whole;
  });
}

/**
 * Converts an HTML document or fragment to plain text for chunking.
 *
 * Drops comments, doctype/processing instructions and the content of script, style, noscript, head, template,
 * svg, iframe and object. Keeps block structure as line breaks (p, div, li, tr, br, headings, ...; a blank line
 * around paragraphs, lists, tables and pre). Headings h1-h6 become "# " to "###### " lines; list items "- ";
 * table cells in a row are joined by " | "; pre content keeps its whitespace inside a ``` fence. Elsewhere runs of
 * whitespace collapse to one space. Character references are decoded (&nbsp; becomes a space). Tolerant of
 * malformed markup; linear time; no dependency.
 */
export function htmlToText(html: string): string {
  const out: string[] = [];
  /** Newlines at the end of out (a large number while out is empty, so nothing leads with a break). */
  let trailingNewlines = Number.POSITIVE_INFINITY;
  let trailingSpace = false;
  /** Newlines wanted before the next text (0, 1 or 2). */
  let pendingBreak = 0;
  /** Whitespace was seen since the last text. */
  let pendingSpace = false;
  let preDepth = 0;
  let preStart = false;
  let headingLevel = 0;
  const cells: number[] = [];

  const requestBreak = (lines: number) => {
    if (lines > pendingBreak) pendingBreak = lines;
  };
  const push = (s: string) => {
    out.push(s);
    let k = s.length;
    while (k > 0 && s.charCodeAt(k - 1) === 10) k--;
    trailingNewlines = k === 0 ? trailingNewlines + s.length : s.length - k;
    trailingSpace = k > 0 && k === s.length && s.charCodeAt(k - 1) === 32;
  };
  const emit = (s: string) => {
    if (s.length === 0) return;
    const need = pendingBreak - trailingNewlines;
    if (need > 0) push("\n".repeat(need));
    else if (pendingSpace && trailingNewlines === 0 && !trailingSpace) push(" ");
    pendingBreak = 0;
    pendingSpace = false;
    push(s);
  };
  const text = (raw: string) => {
    if (raw.length === 0) return;
    let decoded = decodeEntities(raw);
    if (preDepth > 0) {
      if (preStart && decoded.startsWith("\n")) decoded = decoded.slice(1);
      preStart = false;
      emit(decoded);
      return;
    }
    const parts = decoded.split(/[ \t\n\r\f\v]+/);
    for (let i = 0; i < parts.length; i++) {
      if (i > 0) pendingSpace = true;
      emit(parts[i]!);
    }
  };

  const n = html.length;
  let i = 0;
  let textStart = 0;
  while (i < n) {
    const lt = html.indexOf("<", i);
    if (lt < 0) break;
    const next = html.charCodeAt(lt + 1);
    // Comments, doctype, CDATA, processing instructions.
    if (next === 0x21 /* ! */ || next === 0x3f /* ? */) {
      text(html.slice(textStart, lt));
      let close: number;
      if (html.startsWith("<!--", lt)) {
        close = html.indexOf("-->", lt + 4);
        close = close < 0 ? n : close + 3;
      } else if (html.startsWith("<![CDATA[", lt)) {
        const e = html.indexOf("]]>", lt + 9);
        text(html.slice(lt + 9, e < 0 ? n : e));
        close = e < 0 ? n : e + 3;
      } else {
        close = html.indexOf(">", lt + 2);
        close = close < 0 ? n : close + 1;
      }
      i = textStart = close;
      continue;
    }
    const closing = next === 0x2f; /* / */
    const nameStart = lt + (closing ? 2 : 1);
    let j = nameStart;
    while (j < n && isTagNameChar(html.charCodeAt(j))) j++;
    if (j === nameStart || !isAsciiLetter(html.charCodeAt(nameStart))) {
      i = lt + 1; // a literal "<"
      continue;
    }
    const name = html.slice(nameStart, j).toLowerCase();
    const end = findTagEnd(html, j);
    text(html.slice(textStart, lt));
    i = textStart = end;

    if (!closing && DROPPED.has(name)) {
      const selfClosing = html.charCodeAt(end - 2) === 0x2f && name !== "script" && name !== "style";
      if (selfClosing) continue;
      const re = new RegExp(name === "head" ? "</head\\s*>|<body[\\s>]" : `</${name}\\s*>`, "gi");
      re.lastIndex = end;
      const m = re.exec(html);
      if (name === "head" && !m) continue; // no end of head: parse its content as usual
      i = textStart = m ? (m[0][1] === "/" ? m.index + m[0].length : m.index) : n;
      requestBreak(1);
      continue;
    }

    if (name.length === 2 && name[0] === "h" && name[1]! >= "1" && name[1]! <= "6") {
      requestBreak(2);
      if (closing) {
        headingLevel = 0;
      } else {
        headingLevel = name.charCodeAt(1) - 0x30;
        emit(`${"#".repeat(headingLevel)} `);
      }
      continue;
    }
    switch (name) {
      case "br":
        if (headingLevel > 0) pendingSpace = true;
        else if (out.length > 0) {
          push("\n");
          pendingSpace = false;
        }
        break;
      case "li":
        requestBreak(1);
        if (!closing) emit("- ");
        break;
      case "pre":
        if (!closing) {
          requestBreak(2);
          emit("```\n");
          preDepth++;
          preStart = true;
        } else if (preDepth > 0) {
          preDepth--;
          if (trailingNewlines === 0) push("\n");
          push("```");
          requestBreak(2);
        }
        break;
      case "tr":
        requestBreak(1);
        if (!closing) cells.push(0);
        else cells.pop();
        break;
      case "td":
      case "th": {
        const k = cells.length - 1;
        if (closing || k < 0) pendingSpace = true;
        else {
          if (cells[k]! > 0) {
            pendingSpace = false;
            emit(" | ");
          }
          cells[k] = cells[k]! + 1;
        }
        break;
      }
      default:
        if (PARAGRAPH.has(name)) requestBreak(2);
        else if (BLOCK.has(name)) requestBreak(1);
        else if (name === "img" || name === "input" || name === "wbr") pendingSpace = true;
    }
  }
  text(html.slice(textStart));

  return out
    .join("")
    .replace(/[ \t]+$/gm, "")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}

function isAsciiLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

function isTagNameChar(c: number): boolean {
  return isAsciiLetter(c) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x3a;
}

/** Offset just past the ">" that ends the tag whose name ends at i, skipping quoted attribute values. */
function findTagEnd(html: string, i: number): number {
  const n = html.length;
  for (let j = i; j < n; j++) {
    const c = html.charCodeAt(j);
    if (c === 0x3e) return j + 1;
    if (c !== 0x22 && c !== 0x27) continue;
    // A quote opens a value only right after "=" (spaces allowed); a stray quote is ignored.
    let k = j - 1;
    while (k > i && isHtmlSpace(html.charCodeAt(k))) k--;
    if (html.charCodeAt(k) !== 0x3d) continue;
    const close = html.indexOf(c === 0x22 ? '"' : "'", j + 1);
    if (close < 0) return n;
    j = close;
  }
  return n;
}

function isHtmlSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0c;
}

// ---------------------------------------------------------------------------------------------------------------
// Hash
// ---------------------------------------------------------------------------------------------------------------

/** SHA-256 of the UTF-8 encoding of text, as 64 lowercase hex digits. */
export function contentHash(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}
