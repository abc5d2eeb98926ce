/**
 * A PDF's streams decoded under one running bound before pdf.js opens the file. pdf.js (unpdf 1.7) has no option
 * bounding what its decoders make (`maxImageSize` counts an image's pixels only) and keeps a stream's whole output in
 * one growing buffer: 0.5 MB of deflated spaces took 13 s and 1.7 GB to extract (docs/extract.md). So the file is read
 * here first, by hand: every stream, found by its `stream` keyword wherever it is (not through the cross-reference
 * table, which may lie), its filters applied as pdf.js applies them (core/extract/pdf-filters.ts), the output of all
 * of them counted against `limits.maxPdfDecodedBytes`. Images and attached files, which text extraction never
 * decodes, are not counted but blanked in the copy pdf.js gets, so one named as a page's contents decodes to nothing.
 */
import { Budget, decodeFilter, IMAGE_CODECS, type Predictor, predicted } from "./pdf-filters";

/** A stream the reader cannot account for as pdf.js would read it: the file is refused as damaged. */
export class Unchecked extends Error {}

class Name {
  constructor(readonly name: string) {}
}
class Ref {
  constructor(
    readonly num: number,
    readonly gen: number,
  ) {}
}
class Keyword {
  constructor(readonly word: string) {}
}
const STRING = Symbol("string");
type Value = number | boolean | null | Name | Ref | Keyword | typeof STRING | Value[] | Dict;
type Dict = Map<string, Value>;
type Token = Value | "<<" | ">>" | "[" | "]";

/** Each character's class as pdf.js's lexer reads it (the text is Latin-1): 1 whitespace, 2 a delimiter, else 0. */
const CLASS = new Uint8Array(256);
for (const c of "\0\t\n\f\r ") CLASS[c.charCodeAt(0)] = 1;
for (const c of "()<>[]{}/%") CLASS[c.charCodeAt(0)] = 2;
const isSpace = (c: string | undefined) => c !== undefined && CLASS[c.charCodeAt(0)] === 1;
/** A character of a keyword, number or name: neither whitespace nor a delimiter. */
const regular = (c: string | undefined) => c !== undefined && CLASS[c.charCodeAt(0)] === 0;
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)$/;
/** Deeper arrays and dictionaries are no stream dictionary a producer writes. */
const MAX_DEPTH = 64;

/** PDF tokens of `text` from `pos`, up to `end` (a dictionary read before a keyword never reads past it). */
class Lexer {
  constructor(
    readonly text: string,
    public pos: number,
    readonly end = text.length,
  ) {}

  skipSpace(): void {
    while (this.pos < this.end) {
      const c = this.text[this.pos] as string;
      if (c === "%") while (this.pos < this.end && !"\r\n".includes(this.text[this.pos] as string)) this.pos++;
      else if (isSpace(c)) this.pos++;
      else return;
    }
  }

  token(): Token | undefined {
    this.skipSpace();
    if (this.pos >= this.end) return undefined;
    const c = this.text[this.pos] as string;
    if ((c === "<" || c === ">") && this.text[this.pos + 1] === c) {
      this.pos += 2;
      return c === "<" ? "<<" : ">>";
    }
    if ("[]{}".includes(c)) {
      this.pos++;
      return c === "[" || c === "]" ? c : new Keyword(c);
    }
    if (c === "(") return this.literalString();
    if (c === "<") {
      const close = this.text.indexOf(">", this.pos);
      this.pos = close < 0 || close >= this.end ? this.end : close + 1;
      return STRING;
    }
    if (c === "/") return this.name();
    if (c === ")" || c === ">") throw new SyntaxError(`unexpected ${c}`);
    const start = this.pos;
    while (this.pos < this.end && regular(this.text[this.pos])) this.pos++;
    const word = this.text.slice(start, this.pos);
    return NUMBER.test(word) ? Number(word) : new Keyword(word);
  }

  /** Past a (string), its parentheses balanced and escaped ones skipped; its text is never needed. */
  private literalString(): typeof STRING {
    for (let depth = 0; this.pos < this.end; this.pos++) {
      const c = this.text[this.pos];
      if (c === "\\") this.pos++;
      else if (c === "(") depth++;
      else if (c === ")" && --depth === 0) break;
    }
    this.pos = Math.min(this.pos + 1, this.end);
    return STRING;
  }

  /** A /Name with its #xx escapes decoded: `/Fl#61teDecode` is FlateDecode to pdf.js. */
  private name(): Name {
    const start = ++this.pos;
    while (this.pos < this.end && regular(this.text[this.pos])) this.pos++;
    const raw = this.text.slice(start, this.pos);
    return new Name(
      raw.replace(/#([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))),
    );
  }
}

const CONSTANTS = new Map<string, Value>([
  ["true", true],
  ["false", false],
  ["null", null],
]);

/** One value (`12 0 R` a reference); throws SyntaxError where pdf.js would find no value. */
function parseValue(lexer: Lexer, depth = 0): Value {
  if (depth > MAX_DEPTH) throw new SyntaxError("nested too deep");
  const token = lexer.token();
  if (token === "<<") return parseDict(lexer, depth);
  if (token === "[") {
    const items: Value[] = [];
    for (;;) {
      const at = lexer.pos;
      if (lexer.token() === "]") return items;
      lexer.pos = at;
      items.push(parseValue(lexer, depth + 1));
    }
  }
  if (typeof token === "number") {
    const at = lexer.pos;
    const gen = lexer.token();
    const r = typeof gen === "number" ? lexer.token() : undefined;
    if (r instanceof Keyword && r.word === "R") return new Ref(token, gen as number);
    lexer.pos = at;
    return token;
  }
  if (token instanceof Keyword) return CONSTANTS.has(token.word) ? (CONSTANTS.get(token.word) as Value) : token;
  if (token === undefined || token === "]" || token === ">>") throw new SyntaxError("no value");
  return token;
}

/** A dictionary's entries; a token where a key belongs that is not a name is skipped, as pdf.js skips it. */
function parseDict(lexer: Lexer, depth: number): Dict {
  const dict: Dict = new Map();
  for (;;) {
    const token = lexer.token();
    if (token === ">>") return dict;
    if (token === undefined) throw new SyntaxError("end of file inside a dictionary");
    if (token instanceof Name) dict.set(token.name, parseValue(lexer, depth + 1));
  }
}

/**
 * The file's values, read on demand, all reads together bounded: a file of one huge value before many keywords, or
 * named by many references, would otherwise be read again for each of them.
 */
class Reader {
  private left: number;
  constructor(readonly text: string) {
    this.left = text.length + (1 << 20);
  }

  /** The value at `at` (after `skip` tokens) read no further than `end`, and where it ends (after whitespace). */
  value(at: number, end = this.text.length, skip = 0): { value: Value; end: number } | undefined {
    const lexer = new Lexer(this.text, at, end);
    let value: Value | undefined;
    try {
      for (let i = 0; i < skip; i++) lexer.token();
      value = parseValue(lexer);
      lexer.skipSpace();
    } catch {
      value = undefined;
    }
    this.left -= lexer.pos - at;
    if (this.left < 0) throw new Unchecked("too much to read again and again");
    return value === undefined ? undefined : { value, end: lexer.pos };
  }
}

/** Each place `word` starts as a keyword: after whitespace or a delimiter, and (unless `open`) before one. */
function keywordsOf(text: string, word: string, open = false): number[] {
  const found: number[] = [];
  for (let at = text.indexOf(word); at >= 0; at = text.indexOf(word, at + 1)) {
    if (!regular(text[at - 1]) && (open || !regular(text[at + word.length]))) found.push(at);
  }
  return found;
}

/** The index in sorted `positions` of the first at or after `at` (their length when none is). */
function firstFrom(positions: number[], at: number): number {
  let [low, high] = [0, positions.length];
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((positions[middle] as number) < at) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** An object header, `12 0 obj`, from the first digit of its number (so a run of digits is tried once). */
const OBJECT_HEADER = /(?<!\d)(\d+)[\0\t\n\f\r ]+(\d+)[\0\t\n\f\r ]+obj/g;
/** `endstream` after whitespace and comments: how pdf.js tells that a stream's /Length is right. */
const ENDSTREAM_AFTER = /^(?:[\0\t\n\f\r ]|%[^\r\n]*)*endstream/;
/** Definitions of one object past which the file is no longer read: no producer redefines one so often. */
const MAX_DEFINITIONS = 16;

/** The file's objects by number, to read what an indirect reference (`/Length 12 0 R`) names. */
class Objects {
  private index?: Map<string, number[]>;
  private readonly cache = new Map<string, { value: Value; text: string }[]>();
  constructor(private readonly reader: Reader) {}

  /** Every definition of `ref` in the file (an incremental update may define it again), unreadable ones left out. */
  definitions(ref: Ref): { value: Value; text: string }[] {
    const key = `${ref.num} ${ref.gen}`;
    let found = this.cache.get(key);
    if (!found) {
      const { text } = this.reader;
      this.index ??= indexObjects(text);
      const places = this.index.get(key) ?? [];
      if (places.length > MAX_DEFINITIONS) throw new Unchecked(`object ${key} is defined ${places.length} times`);
      found = places.flatMap((at) => {
        const read = this.reader.value(at);
        return read ? [{ value: read.value, text: text.slice(at, read.end).trim() }] : [];
      });
      this.cache.set(key, found);
    }
    return found;
  }

  /**
   * `value`, or the value a reference names; throws Unchecked when no definition is found (one inside an object
   * stream, which this reader does not open) or two disagree, since pdf.js may read either.
   */
  resolve(value: Value | undefined): Value | undefined {
    if (!(value instanceof Ref)) return value;
    const found = this.definitions(value);
    if (!found.length || found.some((d) => d.text !== found[0]?.text)) {
      throw new Unchecked(`object ${value.num} ${value.gen} is not found, or defined twice`);
    }
    return found[0]?.value;
  }
}

function indexObjects(text: string): Map<string, number[]> {
  const index = new Map<string, number[]>();
  for (const match of text.matchAll(OBJECT_HEADER)) {
    const key = `${Number(match[1])} ${Number(match[2])}`;
    const places = index.get(key) ?? [];
    places.push(match.index + match[0].length);
    index.set(key, places);
  }
  return index;
}

/** One `stream` keyword's data and, when it has one, its dictionary. */
interface Found {
  /** Undefined when no `obj` keyword before it starts a dictionary ending at it. */
  dict?: Dict;
  start: number;
  /** Where its data ends: at its /Length when that is right, else at the next `endstream`, never before pdf.js. */
  end: number;
  /** Its /Length is known (right or wrong), so `end` is where pdf.js ends it too. */
  exact: boolean;
  /** The first `endstream` after its start, as pdf.js finds it: no right /Length ends before it. */
  firstEnd: number;
}

/**
 * Where each stream's data starts, as pdf.js's `skipToNextLine` finds it: after the end of its keyword's line. The
 * keywords come in order, so the next CR and LF are each searched for once, not once a keyword.
 */
function dataStarts(text: string): (keyword: number) => number {
  const next = { "\r": -1, "\n": -1 };
  const after = (eol: "\r" | "\n", from: number) => {
    if (next[eol] < from) {
      const at = text.indexOf(eol, from);
      next[eol] = at < 0 ? Number.POSITIVE_INFINITY : at;
    }
    return next[eol];
  };
  return (keyword) => {
    const at = Math.min(after("\r", keyword + "stream".length), after("\n", keyword + "stream".length));
    if (at === Number.POSITIVE_INFINITY) return text.length;
    return text[at] === "\r" && text[at + 1] === "\n" ? at + 2 : at + 1;
  };
}

/**
 * The dictionary ending right at the keyword, from the nearest `obj` before it that starts one so (the object's
 * numbers are not needed, and pdf.js allows comments among them).
 */
function dictBefore(reader: Reader, keyword: number, obj: number[]): Dict | undefined {
  const nearest = firstFrom(obj, keyword) - 1;
  for (let i = nearest; i >= 0 && i > nearest - 16; i--) {
    let at = (obj[i] as number) + "obj".length;
    while (regular(reader.text[at])) at++;
    const read = reader.value(at, keyword);
    if (read?.value instanceof Map && read.end === keyword) return read.value;
  }
  return undefined;
}

/**
 * Where pdf.js ends a stream's data: at its /Length when `endstream` follows it there (after whitespace and comments),
 * else at the next `endstream`. `lengths` are the values its /Length may have; undefined when the object it names is
 * not found, its data then read to the end of the file (zlib stops where the data does).
 */
function extent(
  text: string,
  start: number,
  lengths: Value[] | undefined,
  endstream: number[],
): Omit<Found, "dict" | "start"> {
  const firstEnd = endstream[firstFrom(endstream, start)] ?? text.length;
  if (!lengths) return { end: text.length, exact: false, firstEnd };
  // A kilobyte of whitespace and comments before `endstream` is no producer's: that /Length ends at the next one.
  const right = (length: Value) =>
    typeof length === "number" &&
    Number.isInteger(length) &&
    length >= 0 &&
    ENDSTREAM_AFTER.test(text.slice(start + length, start + length + 1024));
  const ends = lengths.map((length) => (right(length) ? start + (length as number) : firstEnd));
  return { end: Math.max(...ends), exact: new Set(ends).size === 1, firstEnd };
}

/** The values /Length may have for pdf.js: the number, or each definition of the object it names (undefined: none). */
function lengthsOf(dict: Dict, objects: Objects): Value[] | undefined {
  const length = dict.get("Length");
  if (!(length instanceof Ref)) return [length ?? null];
  const found = objects.definitions(length);
  return found.length ? found.map((d) => d.value) : undefined;
}

/** Every `stream` keyword of the file, with its dictionary and the extent of its data. */
function* streamsOf(reader: Reader, objects: Objects): Generator<Found> {
  const { text } = reader;
  // pdf.js takes `objects` for `obj` too, whatever follows; it takes `endsteam` and `endstrea` for `endstream`.
  const obj = keywordsOf(text, "obj", true);
  const endstream = Array.from(text.matchAll(/end(?:stream|steam[\t\n\r ]|strea[\t\n\r ])/g), (m) => m.index);
  const dataStart = dataStarts(text);
  for (const keyword of keywordsOf(text, "stream")) {
    const start = dataStart(keyword);
    const dict = dictBefore(reader, keyword, obj);
    yield { dict, start, ...extent(text, start, dict ? lengthsOf(dict, objects) : [null], endstream) };
  }
}

const XREF_TABLE = /[\0\t\n\f\r ]*xref/y;

/** The trailer of the cross-reference section at `at`: a table's `trailer` dictionary, or the stream's own. */
function trailerAt(reader: Reader, at: number): Value | undefined {
  XREF_TABLE.lastIndex = at;
  if (!XREF_TABLE.test(reader.text)) return reader.value(at, undefined, 3)?.value; // `12 0 obj <<…>>`
  const trailer = reader.text.indexOf("trailer", at);
  return trailer < 0 ? undefined : reader.value(trailer + "trailer".length)?.value;
}

/**
 * Whether pdf.js reads the file as encrypted: the trailer the last `startxref` points at names an /Encrypt
 * dictionary, or, when it points at none, any trailer does (pdf.js then rebuilds the table from them all).
 */
function encrypted(reader: Reader): boolean {
  const named = (dict: Value | undefined) => dict instanceof Map && dict.has("Encrypt");
  const last = Array.from(reader.text.matchAll(/startxref[\0\t\n\f\r ]+(\d+)/g)).at(-1);
  const trailer = last ? trailerAt(reader, Number(last[1])) : undefined;
  if (trailer instanceof Map) return named(trailer);
  return keywordsOf(reader.text, "trailer").some((at) => named(reader.value(at + "trailer".length)?.value));
}

/** A name a dictionary holds at `key`, a reference followed; undefined when it holds none or names nothing found. */
function nameAt(dict: Dict, key: string, objects: Objects): string | undefined {
  try {
    const value = objects.resolve(dict.get(key));
    return value instanceof Name ? value.name : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The stream's filters, read as pdf.js reads them: /F before /Filter, references followed; undefined when pdf.js
 * refuses the stream (a filter that is not a name).
 */
function filtersOf(dict: Dict, objects: Objects): string[] | undefined {
  const filter = objects.resolve(dict.has("F") ? dict.get("F") : dict.get("Filter"));
  const names = filter instanceof Name ? [filter] : Array.isArray(filter) ? filter.map((f) => objects.resolve(f)) : [];
  return names.every((name) => name instanceof Name) ? names.map((name) => (name as Name).name) : undefined;
}

/** Each filter's parameters as pdf.js pairs them: /DP before /DecodeParms, an array's by position. */
function paramsOf(dict: Dict, count: number, objects: Objects): (Dict | undefined)[] {
  const params = objects.resolve(dict.has("DP") ? dict.get("DP") : dict.get("DecodeParms"));
  const asParams = (value: Value | undefined) => (value instanceof Map ? value : undefined);
  if (!Array.isArray(params)) return [count === 1 ? asParams(params) : undefined];
  return Array.from({ length: count }, (_, i) => asParams(objects.resolve(params[i])));
}

/**
 * A number in a filter's parameters (the first of `keys` it holds), as pdf.js's `get(...) || fallback` reads it:
 * `fallback` for none, zero or null, NaN for another value (pdf.js computes with it as given).
 */
function numberAt(params: Dict | undefined, objects: Objects, keys: string[], fallback: number): number {
  const key = keys.find((k) => params?.has(k));
  const value = key === undefined ? undefined : objects.resolve(params?.get(key));
  return typeof value === "number" ? value || fallback : value ? Number.NaN : fallback;
}

function predictorOf(params: Dict | undefined, objects: Objects): Predictor {
  return {
    predictor: numberAt(params, objects, ["Predictor"], 1),
    colors: numberAt(params, objects, ["Colors"], 1),
    bits: numberAt(params, objects, ["BPC", "BitsPerComponent"], 8),
    columns: numberAt(params, objects, ["Columns"], 1),
  };
}

/** LZW's /EarlyChange: 1 unless the parameters hold one, then that (0 included), as pdf.js reads it. */
function earlyChange(params: Dict | undefined, objects: Objects): number {
  if (!params?.has("EarlyChange")) return 1;
  const value = objects.resolve(params.get("EarlyChange"));
  return typeof value === "number" ? value : Number.NaN;
}

/** Filters pdf.js puts a predictor after. */
const PREDICTED = new Set(["FlateDecode", "Fl", "LZWDecode", "LZW"]);

/** Whether pdf.js never decodes the stream for text: an image or an attached file, by its dictionary. */
const unread = (dict: Dict, objects: Objects): boolean =>
  nameAt(dict, "Subtype", objects) === "Image" || nameAt(dict, "Type", objects) === "EmbeddedFile";

/** Decodes a stream's data through its filters in turn, every filter's output spent from the budget. */
async function decodeStream(
  data: Uint8Array,
  dict: Dict,
  filters: string[],
  objects: Objects,
  budget: Budget,
  pessimistic: boolean,
) {
  const params = paramsOf(dict, filters.length, objects);
  let input = data;
  for (const [i, name] of filters.entries()) {
    const last = i === filters.length - 1;
    const predictor = PREDICTED.has(name) ? predictorOf(params[i], objects) : undefined;
    if (predictor && predicted(predictor, 0) === undefined) return; // pdf.js refuses the predictor: nothing decoded
    // A predictor's output feeding another filter would have to be undone here first; no producer writes one.
    if (predictor && predictor.predictor > 1 && !last) throw new Unchecked("a predictor before another filter");
    const lzw = name === "LZWDecode" || name === "LZW" ? earlyChange(params[i], objects) : 1;
    const before = budget.spent;
    input = await decodeFilter(name, { input, budget, keep: !last, pessimistic }, lzw);
    if (predictor) budget.spend(predicted(predictor, budget.spent - before) ?? 0);
    if (!input.length && !last) return;
  }
}

/**
 * The data after a `stream` keyword whose dictionary could not be read: inflated while it looks like zlib data,
 * nothing charged for damage (the keyword may be a word of uncompressed text).
 */
async function decodeGuessed(data: Uint8Array, budget: Budget): Promise<void> {
  let input = data;
  for (let stage = 0; stage < 8 && input.length >= 2; stage++) {
    input = await decodeFilter("FlateDecode", { input, budget, keep: true, pessimistic: false });
  }
}

/**
 * Decodes every stream of the PDF that pdf.js may decode for its text under `maxBytes` in all, throwing `exceeded()`
 * past it and Unchecked for a stream it cannot account for; answers the copy of the file to give pdf.js, with the
 * data of images and attached files zeroed, and the bytes its streams decoded to.
 */
export async function checkStreams(
  bytes: Uint8Array,
  maxBytes: number,
  exceeded: () => Error,
): Promise<{ copy: Uint8Array; decoded: number }> {
  const reader = new Reader(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1"));
  const objects = new Objects(reader);
  // An encrypted file's streams are ciphertext here: what decodes is noise, and no damage is charged for.
  const charged = !encrypted(reader);
  const budget = new Budget(maxBytes, exceeded);
  const copy = new Uint8Array(bytes);
  for (const { dict, start, end, exact, firstEnd } of streamsOf(reader, objects)) {
    const data = bytes.subarray(start, end);
    // Zeroed only to where pdf.js surely ends it, so no byte of the next object is touched.
    const blank = () => copy.fill(0, start, exact ? end : firstEnd);
    if (!dict) await decodeGuessed(data, budget);
    else if (unread(dict, objects)) blank();
    else {
      const filters = filtersOf(dict, objects);
      // An image codec's output follows the sizes its header declares: it is read as an image is, never decoded.
      if (filters?.some((name) => IMAGE_CODECS.has(name))) blank();
      // A cross-reference stream is never encrypted.
      else if (filters)
        await decodeStream(data, dict, filters, objects, budget, charged || nameAt(dict, "Type", objects) === "XRef");
    }
  }
  return { copy, decoded: budget.spent };
}
