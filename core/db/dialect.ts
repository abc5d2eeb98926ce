/**
 * The one part of drizzle's Postgres dialect Engram uses: turning a `sql` fragment into text and
 * numbered parameters, with drizzle's own quoting. Importing drizzle's `PgDialect` for it brings
 * all of pg-core along (column types, query builders, the migrator: 23 KB of every Lambda bundle).
 * Parameter typings stay "none": nothing here binds drizzle columns, and `compile` drops them.
 */
import type { SQL } from "drizzle-orm";
import { CasingCache } from "drizzle-orm/casing";

export class PgDialect {
  readonly casing = new CasingCache();

  escapeName(name: string): string {
    return `"${name.replace(/"/g, '""')}"`;
  }

  escapeParam(index: number): string {
    return `$${index + 1}`;
  }

  escapeString(text: string): string {
    return `'${text.replace(/'/g, "''")}'`;
  }

  sqlToQuery(query: SQL, invokeSource?: "indexes") {
    return query.toQuery({
      casing: this.casing,
      escapeName: this.escapeName,
      escapeParam: this.escapeParam,
      escapeString: this.escapeString,
      invokeSource,
    });
  }
}
