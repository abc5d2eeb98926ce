/**
 * PDF stream filters decoded under a byte budget, for core/extract/pdf-streams.ts: what pdf.js would make of a
 * stream, counted as it is produced and never past the budget. Flate and Brotli through Node's zlib; LZW, RunLength,
 * ASCII85 and ASCIIHex written from the PDF specification, with pdf.js's tolerances (unpdf 1.7: data cut short
 * is read as far as it goes), so each produces what pdf.js would.
 */
import type { Transform } from "node:stream";
import { constants, createBrotliDecompress, createInflateRaw, inflateRawSync } from "node:zlib";

/** Bytes decoded so far against the bound; `spend` throws the caller's error once the total passes it. */
export class Budget {
  spent = 0;
  constructor(
    readonly limit: number,
    private readonly exceeded: () => Error,
  ) {}

  spend(bytes: number): void {
    this.spent += bytes;
    if (this.spent > this.limit) throw this.exceeded();
  }
}

/** What a filter is given: its input, the budget, and whether its output is needed (another filter follows). */
interface Stage {
  input: Uint8Array;
  budget: Budget;
  keep: boolean;
  /**
   * Whether a decoder error is charged as if the rest of the input expanded at the filter's largest ratio: zlib
   * stops at damage pdf.js's decoder reads past (an empty stored block, an incomplete Huffman table).
   */
  pessimistic: boolean;
}

const EMPTY = new Uint8Array();

/** The most deflate expands: 258 bytes from a length code and a distance code of one bit each. */
const DEFLATE_RATIO = 1032;

/** Output is read from zlib this many bytes at a time, each spent before the next is made. */
const CHUNK = 64 * 1024;

/** A 32 KB window of zeros: a distance reaching before the start reads zeros, as in pdf.js, where zlib would stop. */
const ZERO_WINDOW = new Uint8Array(32 * 1024);

/** Output collected a run at a time, each run spent from the budget before it is kept. */
class Output {
  private buffer = new Uint8Array(1024);
  length = 0;
  constructor(
    private readonly budget: Budget,
    private readonly keep: boolean,
  ) {}

  push(run: ArrayLike<number>, count = run.length): void {
    this.budget.spend(count);
    if (!this.keep) return;
    this.reserve(count);
    for (let i = 0; i < count; i++) this.buffer[this.length + i] = run[i] ?? 0;
    this.length += count;
  }

  repeat(byte: number, count: number): void {
    this.budget.spend(count);
    if (!this.keep) return;
    this.reserve(count);
    this.buffer.fill(byte, this.length, this.length + count);
    this.length += count;
  }

  get bytes(): Uint8Array {
    return this.keep ? this.buffer.subarray(0, this.length) : EMPTY;
  }

  private reserve(count: number): void {
    if (this.length + count <= this.buffer.length) return;
    const grown = new Uint8Array(Math.max(this.buffer.length * 2, this.length + count));
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
  }
}

/**
 * A zlib decoder's output, spent chunk by chunk (it is stopped at the bound, and holds no more than a chunk unless the
 * output is kept); at damage, what came before it plus, when `pessimistic`, the input left unread at `ratio` bytes a
 * byte, as pdf.js may read on.
 */
function drain(zlib: Transform & { bytesWritten: number }, stage: Stage, ratio: number): Promise<Uint8Array> {
  const { input, budget, keep } = stage;
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    const spend = (bytes: number): boolean => {
      try {
        budget.spend(bytes);
        return true;
      } catch (error) {
        zlib.destroy();
        reject(error);
        return false;
      }
    };
    zlib.on("data", (chunk: Buffer) => {
      if (spend(chunk.length) && keep) chunks.push(chunk);
    });
    zlib.on("error", () => {
      const left = input.length - zlib.bytesWritten;
      if (spend(stage.pessimistic && left > 0 ? left * ratio : 0)) resolve(Buffer.concat(chunks));
    });
    zlib.on("end", () => resolve(keep ? Buffer.concat(chunks) : EMPTY));
    zlib.end(input);
  });
}

/** pdf.js refuses a Flate stream whose two-byte zlib header is wrong (and decodes nothing of it). */
export const flateHeader = ([cmf = -1, flg = -1]: Uint8Array): boolean =>
  (cmf & 0x0f) === 8 && ((cmf << 8) + flg) % 31 === 0 && (flg & 0x20) === 0;

/**
 * Deflate data this short inflates to at most 4 MB, in one call: a stream costs more to set up than to run, and a file
 * may hold tens of thousands (60,000 tiny ones took 4.3 s as streams, 1.5 s so).
 */
const ONE_CALL = 4096;

/**
 * FlateDecode: raw inflate after the header (pdf.js checks no Adler-32) over a window of zeros, data cut short read as
 * far as it goes, as pdf.js reads it; damaged data is read again as a stream, which tells what came before the damage.
 */
async function flate(stage: Stage): Promise<Uint8Array> {
  if (!flateHeader(stage.input)) return EMPTY;
  const input = stage.input.subarray(2);
  if (input.length <= ONE_CALL) {
    try {
      const out = inflateRawSync(input, { dictionary: ZERO_WINDOW, finishFlush: constants.Z_SYNC_FLUSH });
      stage.budget.spend(out.length);
      return stage.keep ? out : EMPTY;
    } catch (error) {
      if (!(error as { errno?: number }).errno) throw error;
    }
  }
  return drain(createInflateRaw({ dictionary: ZERO_WINDOW, chunkSize: CHUNK }), { ...stage, input }, DEFLATE_RATIO);
}

/** BrotliDecode (PDF 2.0, which pdf.js reads): its ratio has no useful bound, so a damaged stream is charged in full. */
const brotli = (stage: Stage): Promise<Uint8Array> =>
  drain(createBrotliDecompress({ chunkSize: CHUNK }), stage, Number.POSITIVE_INFINITY);

/** LZWDecode as pdf.js's LZWStream reads it: 9- to 12-bit codes, a full table kept, `earlyChange` 1 by default. */
function lzw({ input, budget, keep }: Stage, earlyChange: number): Uint8Array {
  const out = new Output(budget, keep);
  const values = new Uint8Array(4096);
  const lengths = new Uint16Array(4096);
  const previous = new Uint16Array(4096);
  const sequence = new Uint8Array(4096);
  for (let i = 0; i < 256; i++) [values[i], lengths[i]] = [i, 1];
  let [next, codeLength, prior, length, bits, cache, at] = [258, 9, 0, 0, 0, 0, 0];
  for (;;) {
    while (bits < codeLength) {
      if (at >= input.length) return out.bytes;
      cache = (cache << 8) | (input[at++] as number);
      bits += 8;
    }
    bits -= codeLength;
    const code = (cache >>> bits) & ((1 << codeLength) - 1);
    const extend = length > 0;
    if (code < 256) [sequence[0], length] = [code, 1];
    else if (code >= 258 && code < next) {
      length = lengths[code] as number;
      for (let j = length - 1, c = code; j >= 0; j--, c = previous[c] as number) sequence[j] = values[c] as number;
    } else if (code >= 258) sequence[length++] = sequence[0] as number;
    else if (code === 256) {
      [codeLength, next, length] = [9, 258, 0];
      continue;
    } else return out.bytes; // 257, the end
    if (extend) {
      [previous[next], lengths[next], values[next]] = [prior, (lengths[prior] as number) + 1, sequence[0] as number];
      next++;
      const edge = next + earlyChange;
      if (!(edge & (edge - 1))) codeLength = Math.min((Math.log(edge) / Math.LN2 + 1) | 0, 12);
    }
    prior = code;
    out.push(sequence, length);
  }
}

/** RunLengthDecode as pdf.js reads it: a length byte, then that many bytes plus one, or one byte repeated. */
function runLength({ input, budget, keep }: Stage): Uint8Array {
  const out = new Output(budget, keep);
  for (let at = 0; at + 1 < input.length && input[at] !== 128; ) {
    const n = input[at] as number;
    if (n < 128) {
      out.push(input.subarray(at + 1, at + 2 + n));
      at += 2 + n;
    } else {
      out.repeat(input[at + 1] as number, 257 - n);
      at += 2;
    }
  }
  return out.bytes;
}

const isSpace = (c: number | undefined) => c === 0 || c === 9 || c === 10 || c === 12 || c === 13 || c === 32;

/** ASCII85Decode as pdf.js reads it: `z` is four zeros, `~` (or the end) ends, a short group is padded with `u`. */
function ascii85({ input, budget, keep }: Stage): Uint8Array {
  const out = new Output(budget, keep);
  const group = new Uint8Array(5);
  let at = 0;
  const next = () => {
    while (isSpace(input[at])) at++;
    return at < input.length ? (input[at++] as number) : -1;
  };
  for (;;) {
    const c = next();
    if (c === -1 || c === 126) return out.bytes;
    if (c === 122) {
      out.repeat(0, 4);
      continue;
    }
    group[0] = c;
    let n = 1;
    for (; n < 5; n++) {
      const d = next();
      if (d === -1 || d === 126) break;
      group[n] = d;
    }
    group.fill(117, n);
    let value = 0;
    for (const d of group) value = value * 85 + (d - 33);
    const word = [value >>> 24, value >>> 16, value >>> 8, value].map((b) => b & 255);
    out.push(word, n - 1);
    if (n < 5) return out.bytes;
  }
}

/** ASCIIHexDecode as pdf.js reads it: pairs of hex digits, anything else skipped, `>` ends, an odd digit padded. */
function asciiHex({ input, budget, keep }: Stage): Uint8Array {
  const out = new Output(budget, keep);
  let first = -1;
  for (const c of input) {
    if (c === 62) break;
    const digit = c >= 48 && c <= 57 ? c & 15 : (c >= 65 && c <= 70) || (c >= 97 && c <= 102) ? (c & 15) + 9 : -1;
    if (digit < 0) continue;
    if (first < 0) first = digit;
    else {
      out.push([(first << 4) | digit]);
      first = -1;
    }
  }
  if (first >= 0) out.push([first << 4]);
  return out.bytes;
}

/** A Flate or LZW filter's predictor, from its DecodeParms as pdf.js reads them (with its defaults). */
export interface Predictor {
  predictor: number;
  colors: number;
  bits: number;
  columns: number;
}

/**
 * The bytes pdf.js's predictor makes of `input` bytes: a row of `/Columns` for each row it starts (for a PNG predictor,
 * a tag byte and at least one byte of the row; for TIFF's, a byte), however short its input, so a wide `/Columns` is
 * charged in full; undefined for a predictor pdf.js refuses, which then decodes nothing of the stream.
 */
export function predicted({ predictor, colors, bits, columns }: Predictor, input: number): number | undefined {
  if (predictor <= 1) return 0;
  if (predictor !== 2 && (predictor < 10 || predictor > 15)) return undefined;
  const rowBytes = (columns * colors * bits + 7) >> 3;
  if (rowBytes <= 0) return 0;
  if (predictor === 2) return Math.ceil(input / rowBytes) * rowBytes;
  const rows = Math.floor(input / (rowBytes + 1)) + (input % (rowBytes + 1) >= 2 ? 1 : 0);
  return rows * rowBytes;
}

/** The filters pdf.js decodes (by their names and the abbreviations it also takes), each under the budget. */
const DECODERS: Record<string, (stage: Stage, earlyChange: number) => Uint8Array | Promise<Uint8Array>> = {
  FlateDecode: flate,
  Fl: flate,
  LZWDecode: lzw,
  LZW: lzw,
  RunLengthDecode: runLength,
  RL: runLength,
  ASCII85Decode: ascii85,
  A85: ascii85,
  ASCIIHexDecode: asciiHex,
  AHx: asciiHex,
  BrotliDecode: brotli,
};

/**
 * Image codecs: pdf.js decodes them only to draw an image (text extraction never does), and their output follows
 * the sizes their headers declare rather than their input, so a stream using one is never decoded here.
 */
export const IMAGE_CODECS = new Set(["DCTDecode", "DCT", "JPXDecode", "JPX", "CCITTFaxDecode", "CCF", "JBIG2Decode"]);

/**
 * A filter's output (empty when it is not needed), spent from the budget; a filter pdf.js does not know is passed
 * over, as pdf.js passes it over. `earlyChange` is LZW's parameter.
 */
export async function decodeFilter(name: string, stage: Stage, earlyChange = 1): Promise<Uint8Array> {
  const decoder = DECODERS[name];
  if (!decoder) return stage.input;
  return decoder(stage, earlyChange);
}
