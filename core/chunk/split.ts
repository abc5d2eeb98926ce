/**
 * The chunker: splits text into chunks of at most a token budget (core/tokens.ts), at the strongest
 * boundary that fits (headings, paragraphs, sentences, words). Linear time, deterministic.
 */
import {
  C_CJK,
  C_HIGH,
  C_SPACE,
  C_SYMBOL,
  CLASS,
  estimate as estimateTokens,
  estimateUnits,
  HEAVY_SPACE,
  isAstralHan,
  isLowSurrogate,
  runCost,
  UNIT,
  W_ASTRAL_HAN,
  W_ASTRAL_SYMBOL,
  WEIGHT,
} from "../tokens";

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
  let fenceChar = 0;

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
    // A fence closes at a marker of its own character (``` inside a ~~~ block is code), as CommonMark has it.
    if (atLineStart && isFenceMarker(text, ws, we)) {
      const char = text.charCodeAt(ws);
      if (!inFence) fenceChar = char;
      if (!inFence || char === fenceChar) inFence = !inFence;
    }
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

/** Whether the whitespace between two atoms holds a line break: read only the gap, so the whole split stays linear. */
function gapHasLineBreak(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (text.charCodeAt(i) === 10) return true;
  return false;
}

/**
 * Splits text into chunks of at most maxTokens estimated tokens for embedding.
 *
 * The text is cut into words (whitespace-separated, and CJK sentences) tagged with the strongest boundary before
 * them: markdown heading (outside ``` fences) > blank line > sentence end, list item or code line > other line
 * break > space > inside a word. Words longer than
 * 16 tokens are cut into pieces (by character, never inside a surrogate pair). Chunks are then filled greedily:
 * each takes the longest run of words that fits the budget and ends before
 *   1. the last heading in that run with text other than headings before it, if any (so sections start chunks,
 *      small sections are packed together, and a title straight above a long section stays with its text);
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
      // Whether the run [s, p) holds a line that is not a heading: a chunk of headings alone would be found by its
      // headings' words and hold nothing else.
      let body = false;
      let inHeading = false;
      let best = -1;
      let bestLevel = 99;
      let fallback = -1;
      let fallbackLevel = 99;
      for (let p = s + 1; p <= w; p++) {
        const level = brk[p]!;
        // Atom p - 1: a line's first word says whether the line is a heading; any other line's words are text.
        const m = p - 1;
        const startsLine = m === 0 || gapHasLineBreak(text, aEnd[m - 1]!, aStart[m]!);
        if (m === s || startsLine) inHeading = startsLine && brk[m] === B_SECTION && text[aStart[m]!] === "#";
        if (!inHeading) body = true;
        if (level === B_SECTION && body) heading = p;
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
