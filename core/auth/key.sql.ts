import { pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";

/** Mirrors migrations/0001_foundation.sql. Only a hash of each key is stored. */
export const apiKeyTable = pgTable("api_keys", {
  id: uuid("id").primaryKey().defaultRandom(),
  tenantId: uuid("tenant_id").notNull(),
  prefix: text("prefix").notNull().unique(),
  hash: text("hash").notNull(),
  name: text("name"),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
  revokedAt: timestamp("revoked_at", { withTimezone: true }),
});
