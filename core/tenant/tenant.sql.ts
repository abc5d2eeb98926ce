import { jsonb, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";

/** Mirrors migrations/0001_foundation.sql (the SQL files are the source of truth). */
export const tenantTable = pgTable("tenants", {
  id: uuid("id").primaryKey().defaultRandom(),
  name: text("name").notNull().unique(),
  rateLimits: jsonb("rate_limits").$type<Record<string, string>>().notNull().default({}),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
});

export const userTable = pgTable("users", {
  tenantId: uuid("tenant_id").notNull(),
  id: text("id").notNull(),
  email: text("email"),
  name: text("name"),
  metadata: jsonb("metadata").notNull().default({}),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});
