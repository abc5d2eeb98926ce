/**
 * The one token estimate: about the count OpenAI's cl100k_base tokenizer gives, without its rank table.
 * The chunker sizes chunks with it, the offline embedder reports it as usage, the embedding client
 * batches requests by it, and the chat prompt is budgeted with it. Linear time, deterministic.
 */

/*
 * estimate(text) approximates the number of tokens OpenAI's cl100k_base tokenizer (text-embedding-3-*,
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
 * How the weights were fitted, and the measured error per language and kind of text: docs/tokens.md.
 *
 * Properties the chunker relies on, because every run cost is non-decreasing and subadditive in its characters:
 *   - monotone: appending characters never lowers the estimate;
 *   - subadditive: estimate(a + b) <= estimate(a) + estimate(b), so a chunk assembled from
 *     pieces never costs more than the sum of its pieces.
 * Costs are kept as integers in 1/156 token (UNIT), so sums are exact.
 */

export const UNIT = 156;
/** Cost of a whitespace run holding a newline, tab or other non-U+0020 space. */
export const HEAVY_SPACE = 39;

export const C_SPACE = 0;
const C_LATIN = 1;
const C_DIGIT = 2;
const C_PUNCT = 3;
const C_CYR = 4;
const C_ALPHA = 5;
const C_DENSE = 6;
const C_INDIC = 7;
export const C_CJK = 8;
export const C_SYMBOL = 9;
/** High surrogate: resolved from the code point. */
export const C_HIGH = 10;

export const W_ASTRAL_SYMBOL = 416; // 2 units of 4/3
export const W_ASTRAL_HAN = 312;

export const CLASS = new Uint8Array(0x10000);
/** Weight of each BMP code unit, in 1/UNIT token. */
export const WEIGHT = new Uint16Array(0x10000);
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
export function runCost(cls: number, sum: number): number {
  if (cls < 0) return 0;
  if (cls === C_SPACE) return Math.min(sum, HEAVY_SPACE);
  return Math.max(sum, UNIT);
}

export function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

/** Class and weight of the astral code point made of the surrogate pair hi, lo. */
export function isAstralHan(hi: number, lo: number): boolean {
  const cp = ((hi - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
  return cp >= 0x20000 && cp <= 0x3ffff;
}

/** Sum of run costs of text[s, e), in 1/UNIT token. */
export function estimateUnits(text: string, s: number, e: number): number {
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

export function unitsToTokens(units: number): number {
  return Math.ceil(units / UNIT);
}

/** Estimated cl100k token count; see the comment above for the method and its measured error. */
export function estimate(text: string): number {
  if (text.length === 0) return 0;
  return Math.max(1, unitsToTokens(estimateUnits(text, 0, text.length)));
}
