/** core/db/dialect.ts: the SQL text and parameters of drizzle's own Postgres dialect, without pg-core. */
import { sql } from "drizzle-orm";
import { PgDialect as DrizzlePgDialect } from "drizzle-orm/pg-core";
import { describe, expect, it } from "vitest";
import { PgDialect } from "../../core/db/dialect";

const fragments = {
  "plain text": sql`select 1`,
  "values of every kind": sql`select ${1}, ${"it's"}, ${null}, ${true}, ${1.5}, ${new Date(0)}, ${Buffer.from("ab")}`,
  "a list and an object": sql`select ${[1, 2, 3]}, ${{ a: 1 }}`,
  "one array parameter": sql`select ${sql.param([1, 2])}::int[]`,
  "identifiers and raw text": sql`select * from ${sql.identifier('we"ird')} where ${sql.raw("true")} and id = ${"a"}`,
  "nested and joined fragments": sql`with x as (${sql`select ${5}`}) select ${sql.join([sql`${1}`, sql`${2}`], sql`, `)}`,
  "inlined parameters": sql`select ${sql`${"it's"}`.inlineParams()}, ${sql`${3}`.inlineParams()}`,
  "an undefined chunk": sql`select ${undefined}`,
  "an empty fragment": sql.empty(),
};

describe("the Postgres dialect", () => {
  it.each(Object.entries(fragments))("compiles %s exactly as drizzle's PgDialect does", (_name, fragment) => {
    expect(new PgDialect().sqlToQuery(fragment)).toEqual(new DrizzlePgDialect().sqlToQuery(fragment));
  });
});
