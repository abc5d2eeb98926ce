/**
 * A PDF's streams decoded under one running bound before pdf.js opens the file. pdf.js (unpdf 1.7) has no option
 * bounding what its decoders make (`maxImageSize` counts an image's pixels only) and keeps a stream's whole output in
 * one growing buffer: 0.5 MB of deflated spaces took 13 s and 1.7 GB to extract (docs/extract.md). So the file is read
 * here first, by hand: every stream, found by its `stream` keyword wherever it is (not through the cross-reference
 * table, which may lie), its filters applied as pdf.js applies them (core/extract/pdf-filters.ts), the output of all
 * of them counted against `limits.maxPdfDecodedBytes`. Images and attached files, which text extraction never
 * decodes, are not counted but blanked in the copy pdf.js gets, so one named as a page's contents decodes to nothing.
 * A file encrypted with an empty user password, which pdf.js opens without asking, has its streams decrypted first
 * as pdf.js decrypts them (core/extract/pdf-crypt.ts); docs/extract.md says what is decrypted and what is not.
 */
import { decrypt, fileKey, type Method, type ObjectId, type Standard } from "./pdf-crypt";
import { Budget, decodeFilter, flateHeader, IMAGE_CODECS, type Predictor, predicted } from "./pdf-filters";

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
/** A string as written between its delimiters; its bytes are worked out only where they are needed (stringBytes). */
class PdfString {
  constructor(
    readonly raw: string,
    readonly hex: boolean,
  ) {}
}
type Value = number | boolean | null | Name | Ref | Keyword | PdfString | Value[] | Dict;
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
      const end = close < 0 || close >= this.end ? this.end : close;
      const raw = this.text.slice(this.pos + 1, end);
      this.pos = Math.min(end + 1, this.end);
      return new PdfString(raw, true);
    }
    if (c === "/") return this.name();
    if (c === ")" || c === ">") throw new SyntaxError(`unexpected ${c}`);
    const start = this.pos;
    while (this.pos < this.end && regular(this.text[this.pos])) this.pos++;
    const word = this.text.slice(start, this.pos);
    return NUMBER.test(word) ? Number(word) : new Keyword(word);
  }

  /** A (string), its parentheses balanced and escaped ones skipped. */
  private literalString(): PdfString {
    const start = this.pos + 1;
    for (let depth = 0; this.pos < this.end; this.pos++) {
      const c = this.text[this.pos];
      if (c === "\\") this.pos++;
      else if (c === "(") depth++;
      else if (c === ")" && --depth === 0) break;
    }
    const raw = this.text.slice(start, Math.min(this.pos, this.end));
    this.pos = Math.min(this.pos + 1, this.end);
    return new PdfString(raw, false);
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

const ESCAPES = new Map([
  ["n", 10],
  ["r", 13],
  ["t", 9],
  ["b", 8],
  ["f", 12],
]);

/**
 * A string's bytes as pdf.js reads them. A literal's escapes are undone (\n \r \t \b \f, \( \) \\, one to three
 * octal digits, a backslash before a line end joining the lines, another character escaped standing for itself), its
 * unescaped line ends kept as written: pdf.js keeps them, where the specification reads each as \n, and a key made
 * otherwise than pdf.js makes it decrypts nothing it reads. A hex string's digits are paired, anything else skipped,
 * an odd last digit read as followed by 0.
 */
function stringBytes({ raw, hex }: PdfString): Uint8Array {
  const out: number[] = [];
  if (hex) {
    let high = -1;
    for (const c of raw) {
      const digit = Number.parseInt(c, 16);
      if (Number.isNaN(digit)) continue;
      if (high < 0) high = digit;
      else {
        out.push((high << 4) | digit);
        high = -1;
      }
    }
    if (high >= 0) out.push(high << 4);
    return Uint8Array.from(out);
  }
  const octal = (c: string | undefined) => c !== undefined && c >= "0" && c <= "7";
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== "\\") {
      out.push(raw.charCodeAt(i));
      continue;
    }
    const c = raw[++i];
    if (c === undefined || c === "\n") continue;
    if (c === "\r") {
      if (raw[i + 1] === "\n") i++;
    } else if (octal(c)) {
      let value = 0;
      for (let digits = 0; digits < 3 && octal(raw[i]); digits++) value = value * 8 + Number(raw[i++]);
      out.push(value & 255);
      i--;
    } else out.push(ESCAPES.get(c) ?? raw.charCodeAt(i));
  }
  return Uint8Array.from(out);
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

/** Each place `word` starts as a keyword: after whitespace or a delimiter, and before one. */
function keywordsOf(text: string, word: string): number[] {
  const found: number[] = [];
  for (let at = text.indexOf(word); at >= 0; at = text.indexOf(word, at + 1)) {
    if (!regular(text[at - 1]) && !regular(text[at + word.length])) found.push(at);
  }
  return found;
}

/**
 * Each place an `obj` keyword starts for pdf.js: after whitespace, a delimiter or a digit (the generation's: pdf.js
 * reads `12 0obj` as `12 0 obj`), whatever follows (it takes `objects` for `obj` too).
 */
const objKeywords = (text: string): number[] =>
  Array.from(text.matchAll(/(?<![^\d\0\t\n\f\r ()<>[\]{}/%])obj/g), ({ index }) => index);

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

/** One `stream` keyword's data and, when it has one, its dictionary and object numbers. */
interface Found {
  /** Undefined when no `obj` keyword before it starts a dictionary ending at it. */
  dict?: Dict;
  /** The numbers its object header gives it (objectIds); empty without a dictionary. */
  ids: ObjectId[];
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
 * The numbers the object header ending at `obj` (`12 0 obj`) gives its object, those it is written with first, then
 * each pdf.js reads when a cross-reference offset points inside the object number (`2 0 obj` within `12 0 obj`);
 * none when it is not two numbers apart by whitespace (pdf.js allows comments too, which no producer writes there).
 */
function objectIds(text: string, obj: number): ObjectId[] {
  let at = obj;
  const back = (test: (c: string | undefined) => boolean) => {
    const end = at;
    while (at > 0 && test(text[at - 1])) at--;
    return text.slice(at, end);
  };
  const digit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9";
  back(isSpace);
  const gen = back(digit);
  if (!gen || !back(isSpace)) return [];
  // Longer numbers name no object a cross-reference table can hold.
  const num = back(digit).slice(-10);
  const nums = new Set(Array.from(num, (_, i) => Number(num.slice(i))));
  return Array.from(nums, (n) => ({ num: n, gen: Number(gen) }));
}

/**
 * The dictionary ending right at the keyword, from the nearest `obj` before it that starts one so (pdf.js allows
 * comments between `obj` and the dictionary), and the object's numbers.
 */
function dictBefore(reader: Reader, keyword: number, obj: number[]): Pick<Found, "dict" | "ids"> {
  const nearest = firstFrom(obj, keyword) - 1;
  for (let i = nearest; i >= 0 && i > nearest - 16; i--) {
    let at = (obj[i] as number) + "obj".length;
    while (regular(reader.text[at])) at++;
    const read = reader.value(at, keyword);
    if (read?.value instanceof Map && read.end === keyword) {
      return { dict: read.value, ids: objectIds(reader.text, obj[i] as number) };
    }
  }
  return { ids: [] };
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
): Omit<Found, "dict" | "ids" | "start"> {
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
  const obj = objKeywords(text);
  // pdf.js takes `endsteam` and `endstrea` for `endstream`.
  const endstream = Array.from(text.matchAll(/end(?:stream|steam[\t\n\r ]|strea[\t\n\r ])/g), (m) => m.index);
  const dataStart = dataStarts(text);
  for (const keyword of keywordsOf(text, "stream")) {
    const start = dataStart(keyword);
    const { dict, ids } = dictBefore(reader, keyword, obj);
    yield { dict, ids, start, ...extent(text, start, dict ? lengthsOf(dict, objects) : [null], endstream) };
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
 * The file's trailers: first the one of the cross-reference section the last `startxref` points at (undefined when
 * it points at none, and pdf.js rebuilds the table), then every other: each `trailer` dictionary and each
 * cross-reference stream's, found as pdf.js finds them then (an object holding `/XRef`).
 */
function trailersOf(reader: Reader): [Dict | undefined, Dict[]] {
  const { text } = reader;
  const last = Array.from(text.matchAll(/startxref[\0\t\n\f\r ]+(\d+)/g)).at(-1);
  const read = last ? trailerAt(reader, Number(last[1])) : undefined;
  const mentions = Array.from(text.matchAll(/\/XRef[\0-?]/g), ({ index }) => index);
  const obj = mentions.length ? objKeywords(text) : [];
  // Each object holding `/XRef` is read once, however often it names it.
  const xrefStreams = new Set(mentions.map((at) => obj[firstFrom(obj, at) - 1]));
  xrefStreams.delete(undefined);
  const others = [
    ...keywordsOf(text, "trailer").map((at) => reader.value(at + "trailer".length)?.value),
    ...Array.from(xrefStreams, (header) => reader.value((header as number) + "obj".length)?.value),
  ];
  return [read instanceof Map ? read : undefined, others.filter((dict): dict is Dict => dict instanceof Map)];
}

/** How pdf.js reads the streams of a file the empty password opens: decrypted by `method` with `key`. */
interface Opened {
  key: Uint8Array;
  method: Method;
  /** Whether pdf.js decrypts the document's XML metadata (Standard.metadata). */
  metadata: boolean;
}

/** An encrypted file the empty password does not open, or another security handler's: pdf.js opens no stream. */
const LOCKED = "locked";

/**
 * An entry of the encryption's dictionaries (or the trailer's /ID) of the type the specification gives it: Unchecked
 * for another, which pdf.js may read otherwise than this reader.
 */
function entry<T>(dict: Dict, key: string, objects: Objects, read: (value: Value | undefined) => T | undefined): T {
  const value = read(objects.resolve(dict.get(key)));
  if (value === undefined) throw new Unchecked(`the /Encrypt dictionary's /${key} is not what it should be`);
  return value;
}
const integer = (value: Value | undefined) => (Number.isInteger(value) ? (value as number) : undefined);
const optionalInteger = (value: Value | undefined) => (value === undefined ? 0 : integer(value));
const bytes = (value: Value | undefined) => (value instanceof PdfString ? stringBytes(value) : undefined);
const optionalName = (fallback: string) => (value: Value | undefined) =>
  value === undefined ? fallback : value instanceof Name ? value.name : undefined;
const optionalDict = (value: Value | undefined) =>
  value === undefined ? new Map() : value instanceof Map ? value : undefined;
const METHODS = new Set(["None", "V2", "AESV2", "AESV3"]);
const method = (value: Value | undefined) => {
  const name = optionalName("None")(value);
  return name !== undefined && METHODS.has(name) ? (name as Method) : undefined;
};

/** A key longer than this is no producer's: pdf.js would hash that many bytes 50 times over. */
const MAX_KEY_BITS = 4096;

/**
 * The streams' crypt filter method and the Standard handler's entries as pdf.js reads them, its defaults filled in
 * (the key's length from /Length, else 40 bits under V1 and V2, else the stream filter's /Length, in bytes when
 * under 40, else 128); undefined for another handler or version, which pdf.js refuses.
 */
function standardOf(dict: Dict, trailer: Dict, objects: Objects): { standard: Standard; method: Method } | undefined {
  const version = objects.resolve(dict.get("V"));
  if (nameAt(dict, "Filter", objects) !== "Standard" || ![1, 2, 4, 5].includes(version as number)) return undefined;
  const modern = version === 4 || version === 5;
  let streams: Method = "V2";
  let bits = entry(dict, "Length", objects, optionalInteger);
  if (modern) {
    // Streams use /StmF's filter of /CF (Identity, or one /CF lacks, is none); pdf.js ignores a stream's own /Crypt.
    const filters = entry(dict, "CF", objects, (value) => (value instanceof Map ? value : undefined));
    const filter = entry(filters, entry(dict, "StmF", objects, optionalName("Identity")), objects, optionalDict);
    streams = entry(filter, "CFM", objects, method);
    if (!bits) {
      bits = entry(filter, "Length", objects, optionalInteger) || 128;
      if (bits < 40) bits <<= 3;
    }
  } else bits ||= 40;
  if (bits < 40 || bits % 8) return undefined;
  if (bits > MAX_KEY_BITS) throw new Unchecked(`a ${bits}-bit key`);
  const id = entry(trailer, "ID", objects, (value) => {
    if (value === undefined || (Array.isArray(value) && !value.length)) return new Uint8Array();
    return Array.isArray(value) ? bytes(value[0]) : undefined;
  });
  const standard: Standard = {
    version: version as number,
    revision: entry(dict, "R", objects, integer),
    bits,
    owner: entry(dict, "O", objects, bytes),
    user: entry(dict, "U", objects, bytes),
    userKey: version === 5 ? entry(dict, "UE", objects, bytes) : new Uint8Array(),
    permissions: entry(dict, "P", objects, integer),
    metadata: modern && objects.resolve(dict.get("EncryptMetadata")) !== false,
    id,
  };
  return { standard, method: streams };
}

/**
 * How pdf.js reads the streams of a file with `trailer`: as written (undefined: no /Encrypt dictionary), decrypted,
 * or not at all (LOCKED).
 */
function encryptionOf(trailer: Dict, objects: Objects): Opened | typeof LOCKED | undefined {
  if (!trailer.has("Encrypt")) return undefined;
  const dict = objects.resolve(trailer.get("Encrypt"));
  if (!(dict instanceof Map)) return undefined; // pdf.js reads the file as not encrypted
  const handler = standardOf(dict, trailer, objects);
  const key = handler && fileKey(handler.standard);
  return key && handler ? { key, method: handler.method, metadata: handler.standard.metadata } : LOCKED;
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

/** Filters whose data pdf.js decodes nothing of without a zlib header. */
const FLATE = new Set(["FlateDecode", "Fl"]);

/**
 * The file's encryption as pdf.js reads it, and the readings of each stream under it. `main` is how pdf.js reads the
 * streams by the trailer it finds (the last `startxref`'s, else the first naming /Encrypt, as pdf.js prefers one when
 * it rebuilds the table): as written (undefined), decrypted, or not at all (LOCKED). `others` are the keys of every
 * other trailer, which pdf.js decrypts with should it take that one for the file's. What is decrypted in all is
 * bounded like the Reader's reads: a stream whose /Length is not found is decrypted to the end of the file.
 */
class Decryption {
  readonly main?: Opened | typeof LOCKED;
  readonly others: Opened[];
  private left: number;

  constructor(reader: Reader, objects: Objects) {
    const [found, rest] = trailersOf(reader);
    const trailer = found ?? rest.find((dict) => dict.has("Encrypt"));
    this.main = trailer && encryptionOf(trailer, objects);
    const describe = (o: Opened | typeof LOCKED | undefined) =>
      typeof o === "object" ? `${o.method} ${Buffer.from(o.key).toString("hex")} ${o.metadata}` : o;
    const others = new Map<string | undefined, Opened>();
    for (const dict of rest) {
      const opened = dict === trailer ? undefined : encryptionOf(dict, objects);
      if (typeof opened === "object" && describe(opened) !== describe(this.main)) others.set(describe(opened), opened);
    }
    this.others = [...others.values()];
    this.left = 4 * reader.text.length + (16 << 20);
  }

  /**
   * The data pdf.js may decode of a stream with `filters`, each with whether damage in it is charged (pdf-filters'
   * `pessimistic`): as written, charged unless pdf.js decrypts it (a cross-reference stream it never does; the
   * catalog's XML metadata not when it counts metadata as not encrypted); decrypted with the file's key, charged when
   * pdf.js reads it so; and, uncharged, decrypted with another trailer's key or for another number pdf.js may read
   * the object header as (Flate data first tried on its first blocks: without a zlib header pdf.js decodes none).
   */
  *readings(
    data: Uint8Array,
    { dict, ids }: { dict: Dict; ids: ObjectId[] },
    filters: string[],
    objects: Objects,
  ): Generator<[Uint8Array, boolean]> {
    const opened = this.main === LOCKED ? undefined : this.main;
    const type = nameAt(dict, "Type", objects);
    const metadata = type === "Metadata" && nameAt(dict, "Subtype", objects) === "XML";
    const plain =
      !this.main || type === "XRef" || opened?.method === "None" || (opened?.metadata === false && metadata);
    yield [data, plain];
    if (!filters.length) return; // decrypted, it decodes to nothing more either
    for (const crypt of opened ? [opened, ...this.others] : this.others) {
      if (crypt.method === "None") continue;
      // AES-256 keys are the file's: the object's numbers change nothing.
      for (const [i, id] of (crypt.method === "AESV3" || !ids.length ? [undefined] : ids).entries()) {
        const main = crypt === opened && i === 0;
        if (!main && FLATE.has(filters[0] as string) && !flateHeader(this.decrypt(data.subarray(0, 48), crypt, id))) {
          continue;
        }
        yield [this.decrypt(data, crypt, id), main && !plain];
      }
    }
  }

  private decrypt(data: Uint8Array, { key, method }: Opened, id: ObjectId | undefined): Uint8Array {
    this.left -= data.length;
    if (this.left < 0) throw new Unchecked("too much to decrypt again and again");
    const decrypted = decrypt(data, method, key, id);
    if (!decrypted) throw new Unchecked("an encrypted stream whose object header is not read");
    return decrypted;
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
  const decryption = new Decryption(reader, objects);
  const budget = new Budget(maxBytes, exceeded);
  const copy = new Uint8Array(bytes);
  for (const { dict, ids, start, end, exact, firstEnd } of streamsOf(reader, objects)) {
    const data = bytes.subarray(start, end);
    // Zeroed only to where pdf.js surely ends it, so no byte of the next object is touched.
    const blank = () => copy.fill(0, start, exact ? end : firstEnd);
    if (!dict) await decodeGuessed(data, budget);
    else if (unread(dict, objects)) blank();
    else {
      const filters = filtersOf(dict, objects);
      // An image codec's output follows the sizes its header declares: it is read as an image is, never decoded.
      if (filters?.some((name) => IMAGE_CODECS.has(name))) blank();
      else if (filters) {
        for (const [input, pessimistic] of decryption.readings(data, { dict, ids }, filters, objects)) {
          await decodeStream(input, dict, filters, objects, budget, pessimistic);
        }
      }
    }
  }
  return { copy, decoded: budget.spent };
}
