import { sql } from "drizzle-orm";
import type { Db } from "../db";
import { EngramError, inputError } from "../error";

export interface TenantRow {
  id: string;
  name: string;
  rateLimits: Record<string, string>;
}

export const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function checkName(name: string): void {
  if (!NAME.test(name)) {
    throw inputError("tenant.invalid_name", "Tenant names are 1-64 characters of letters, digits, '.', '_' and '-'.");
  }
}

/** Finds a tenant by name, creating it when missing (idempotent). */
export async function ensure(db: Db, name: string): Promise<TenantRow> {
  checkName(name);
  const rows = await db.query<TenantRow>(sql`
    with ins as (
      insert into tenants (name) values (${name}) on conflict (name) do nothing
      returning id, name, rate_limits
    )
    select id, name, rate_limits as "rateLimits" from ins
    union all
    select id, name, rate_limits from tenants where name = ${name}
    limit 1`);
  const row = rows[0];
  if (!row) throw new EngramError("internal", "tenant.ensure_failed", `Could not create tenant ${name}`);
  return row;
}

export async function byName(db: Db, name: string): Promise<TenantRow | undefined> {
  const rows = await db.query<TenantRow>(
    sql`select id, name, rate_limits as "rateLimits" from tenants where name = ${name}`,
  );
  return rows[0];
}

/** Other tenants whose names differ from `name` only in case: names are case-sensitive, so `Acme` is not `acme`. */
export async function sameButCase(db: Db, name: string): Promise<string[]> {
  const rows = await db.query<{ name: string }>(
    sql`select name from tenants where lower(name) = lower(${name}) and name <> ${name} order by name`,
  );
  return rows.map((row) => row.name);
}

export async function get(db: Db, name: string): Promise<TenantRow> {
  const tenant = await byName(db, name);
  if (!tenant) throw new EngramError("not_found", "tenant.not_found", `No tenant named ${name}.`);
  return tenant;
}

export interface TenantSummary extends TenantRow {
  createdAt: Date;
  /** Keys not revoked. */
  activeKeys: number;
}

/** Every tenant, by name, with its rate-limit overrides and how many of its keys are active. */
export async function list(db: Db): Promise<TenantSummary[]> {
  const rows = await db.query<TenantSummary & { createdAt: Date | string }>(sql`
    select t.id, t.name, t.rate_limits as "rateLimits", t.created_at as "createdAt",
           (select count(*)::int from api_keys k where k.tenant_id = t.id and k.revoked_at is null) as "activeKeys"
    from tenants t order by t.name`);
  return rows.map((row) => ({ ...row, createdAt: new Date(row.createdAt) }));
}
