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
