import { type SQL, sql } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import type { Query, Statement } from "./types";

const dialect = new PgDialect();

/** Compiles a drizzle `sql` fragment (or passes a ready statement through). */
export function compile(query: Query): Statement {
  if ("text" in query && "params" in query) return query;
  const { sql: text, params } = dialect.sqlToQuery(query as SQL);
  return { text, params };
}

/** One parameter holding a whole array (drizzle would otherwise expand it to a list). */
export const arr = (values: readonly unknown[]): SQL => sql`${sql.param(values)}`;

/** A pgvector literal: `[0.1,0.2,...]`. */
export function vectorLiteral(vector: ArrayLike<number>): string {
  let out = "[";
  for (let i = 0; i < vector.length; i++) {
    if (i > 0) out += ",";
    // 7 significant digits keep float4 precision and are half the text of full doubles.
    out += (vector[i] as number).toPrecision(7);
  }
  return `${out}]`;
}

/**
 * Many vectors as one binary `real[]` parameter (Postgres array wire format). `pg` sends a
 * Buffer parameter in binary, which skips formatting 1,536 floats as text per vector, the
 * bottleneck of every text path (see shared/MEASURED.md). Slice row i with
 * `(p::real[])[(i - 1) * d + 1 : i * d]::vector`.
 */
export function binaryRealArray(vectors: ArrayLike<number>[], dimensions: number): Buffer {
  const count = vectors.length * dimensions;
  // Built little-endian as 32-bit words (each element: its length 4, then its float's bits), then byte-swapped
  // in one native pass: about 20x faster than writing 3 million big-endian floats one by one.
  const words = new Uint32Array(5 + count * 2);
  words.set([1, 0, 700, count, 1]); // one dimension, no nulls, float4, element count, lower bound 1
  const floats = new Float32Array(words.buffer);
  let at = 5;
  for (const vector of vectors) {
    for (let i = 0; i < dimensions; i++) {
      words[at] = 4;
      floats[at + 1] = vector[i] as number;
      at += 2;
    }
  }
  return Buffer.from(words.buffer).swap32();
}
