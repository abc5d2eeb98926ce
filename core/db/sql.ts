import { type SQL, sql } from "drizzle-orm";
import { PgDialect } from "./dialect";
import type { Query, Statement } from "./types";

const dialect = new PgDialect();

/** Compiles a drizzle `sql` fragment (or passes a ready statement through). */
export function compile(query: Query): Statement {
  if ("text" in query && "params" in query) return query;
  const { sql: text, params } = dialect.sqlToQuery(query as SQL);
  return { text, params };
}

/**
 * A constant written into the statement's text, not sent as a parameter: for values the planner must see to use a
 * reusable (generic) plan well, such as the model a partial index names or a LIMIT (core/search). Only for values
 * of the code and its configuration, never a request's: each distinct value is another statement to prepare.
 */
export function constant(value: string | number): SQL {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`not a finite number: ${value}`);
    return sql.raw(String(value));
  }
  // E'' reads backslashes the same whatever standard_conforming_strings says.
  return sql.raw(`E'${value.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`);
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
 * Many vectors as one binary `vector[]` parameter (Postgres array wire format, pgvector's binary
 * element: length, int16 dimensions, int16 unused, float4s). `pg` sends a Buffer parameter in
 * binary, which skips formatting 1,536 floats as text per vector, the bottleneck of every text
 * path (4-6 s per 10,000 vectors measured here). `vectorOid` is the database's oid of type `vector` (an extension
 * type: it differs between databases). Read it with `unnest($n::vector[]) with ordinality`.
 */
export function binaryVectorArray(vectors: ArrayLike<number>[], dimensions: number, vectorOid: number): Buffer {
  const each = 1 + dimensions; // words per element after its length: dimensions and unused, then the floats
  // Built little-endian as 32-bit words, then byte-swapped in one native pass: about 20x faster than writing
  // millions of big-endian floats one by one.
  const words = new Uint32Array(5 + vectors.length * (1 + each));
  words.set([1, 0, vectorOid, vectors.length, 1]); // one dimension, no nulls, element type, count, lower bound 1
  const floats = new Float32Array(words.buffer);
  let at = 5;
  for (const vector of vectors) {
    words[at] = 4 * each;
    words[at + 1] = dimensions << 16; // big-endian int16 dimensions, then int16 0
    for (let i = 0; i < dimensions; i++) floats[at + 2 + i] = vector[i] as number;
    at += 1 + each;
  }
  return Buffer.from(words.buffer).swap32();
}
