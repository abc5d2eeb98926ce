import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { sql } from "drizzle-orm";
import type { Db } from "../db";
import { EngramError, inputError } from "../error";
import * as Tenant from "../tenant";

/** Who is calling: the tenant from the key, the end user from `X-User-Id` ('' = shared space). */
export interface Caller {
  tenantId: string;
  tenantName: string;
  keyPrefix: string;
  userId: string;
  rateLimits: Record<string, string>;
  /**
   * The client's address, when its requests are limited by it: keyless requests (KEYLESS_TENANT),
   * whose user id anyone may choose.
   */
  clientAddress?: string;
}

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const KEY = /^egm_[0-9A-Za-z]{32}$/;
export const USER_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

/** 32 base62 characters: about 190 bits of entropy. */
function randomToken(length = 32): string {
  const bytes = randomBytes(length * 2);
  let out = "";
  for (let i = 0; i < bytes.length && out.length < length; i++) {
    const b = bytes[i] as number;
    if (b < 248) out += ALPHABET[b % 62]; // 248 = 4 * 62: rejection keeps it unbiased
  }
  return out.length === length ? out : randomToken(length);
}

const hashKey = (key: string) => createHash("sha256").update(key).digest("hex");
const PREFIX_LENGTH = 12;
const prefixOf = (key: string) => key.slice(0, PREFIX_LENGTH);

export interface CreatedKey {
  key: string;
  prefix: string;
  tenant: string;
  name: string | null;
}

/** Creates a key for a tenant (creating the tenant if needed). The key is returned once, never stored. */
/** A key's label, at most: shown in `keys list`, where a pasted paragraph would push every other column away. */
const KEY_NAME_CHARS = 200;

export async function createKey(db: Db, tenantName: string, name?: string): Promise<CreatedKey> {
  if (name !== undefined && ([...name].length > KEY_NAME_CHARS || /[\p{Cc}]/u.test(name))) {
    throw inputError(
      "request.invalid",
      `A key's name is at most ${KEY_NAME_CHARS} characters, without control characters (line breaks, tabs).`,
    );
  }
  const tenant = await Tenant.ensure(db, tenantName);
  const key = `egm_${randomToken()}`;
  const prefix = prefixOf(key);
  await db.query(
    sql`insert into api_keys (tenant_id, prefix, hash, name) values (${tenant.id}, ${prefix}, ${hashKey(key)}, ${name ?? null})`,
  );
  return { key, prefix, tenant: tenant.name, name: name ?? null };
}

export interface KeyInfo {
  prefix: string;
  name: string | null;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

export async function listKeys(db: Db, tenantName: string): Promise<KeyInfo[]> {
  const tenant = await Tenant.get(db, tenantName);
  return db.query<KeyInfo>(sql`
    select prefix, name, created_at as "createdAt", last_used_at as "lastUsedAt", revoked_at as "revokedAt"
    from api_keys where tenant_id = ${tenant.id} order by created_at`);
}

/**
 * Revokes by display prefix, or by the whole key (then only the key it is: a mistyped one revokes nothing);
 * effective for the next request. Returns the tenant it belonged to and, for a key revoked before (left as it was),
 * when.
 */
export async function revokeKey(
  db: Db,
  prefixOrKey: string,
): Promise<{ prefix: string; tenant: string; revokedBefore: Date | null }> {
  if (prefixOrKey.length > PREFIX_LENGTH && !KEY.test(prefixOrKey)) {
    // Said in the operator's terms: a pasted key with a typo is no key, not an HTTP authorization failure.
    throw new EngramError(
      "not_found",
      "key.not_found",
      `No API key is the value given (not shown: it may be a key with a typo): a key is egm_ and 32 letters or digits, its prefix (engram keys list) its first ${PREFIX_LENGTH} characters.`,
    );
  }
  const whole = prefixOrKey.length > PREFIX_LENGTH ? keyFrom(`Bearer ${prefixOrKey}`) : undefined;
  const prefix = whole?.prefix ?? prefixOrKey;
  // `old` reads the row as it was before this update: a key already revoked keeps its time and says so.
  const rows = await db.query<{ prefix: string; tenant: string; revokedBefore: Date | string | null }>(sql`
    update api_keys k set revoked_at = coalesce(k.revoked_at, now())
    from tenants t, api_keys old
    where t.id = k.tenant_id and k.prefix = ${prefix} and old.id = k.id
      ${whole ? sql`and k.hash = ${whole.hash}` : sql``}
    returning k.prefix, t.name as tenant, old.revoked_at as "revokedBefore"`);
  const row = rows[0];
  if (!row) {
    throw new EngramError(
      "not_found",
      "key.not_found",
      whole ? `No API key is the key given (prefix ${prefix}).` : `No API key with prefix ${prefix}.`,
    );
  }
  return { ...row, revokedBefore: row.revokedBefore === null ? null : new Date(row.revokedBefore) };
}

/**
 * Resolves `Authorization: Bearer egm_...` to a tenant in one round trip (and records use at
 * most once a minute). The stored hash is compared in constant time.
 */
export async function authenticate(db: Db, authorization: string | undefined): Promise<Omit<Caller, "userId">> {
  const { key, prefix } = keyFrom(authorization);
  const rows = await db.query<{
    hash: string;
    tenantId: string;
    tenantName: string;
    rateLimits: Record<string, string>;
  }>(sql`
    with k as (
      select k.id, k.hash, k.tenant_id from api_keys k where k.prefix = ${prefix} and k.revoked_at is null
    ), touched as (
      update api_keys set last_used_at = now()
      where id in (select id from k) and (last_used_at is null or last_used_at < now() - interval '1 minute')
    )
    select k.hash, t.id as "tenantId", t.name as "tenantName", t.rate_limits as "rateLimits"
    from k join tenants t on t.id = k.tenant_id`);
  const row = rows[0];
  const expected = Buffer.from(row?.hash ?? "0".repeat(64), "hex");
  const actual = Buffer.from(hashKey(key), "hex");
  if (!row || !timingSafeEqual(expected, actual)) {
    throw new EngramError("auth", "auth.invalid_key", "The API key is not valid or has been revoked.");
  }
  return { tenantId: row.tenantId, tenantName: row.tenantName, keyPrefix: prefix, rateLimits: row.rateLimits ?? {} };
}

/**
 * The key in `Authorization: Bearer egm_...`, its display prefix and its SHA-256 hash (what
 * api_keys stores); 401 without a database read when the header holds no well-formed key.
 */
export function keyFrom(authorization: string | undefined): { key: string; prefix: string; hash: string } {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
  const key = match?.[1];
  // Two Authorization headers arrive joined by a comma (API Gateway's way, and the local server's): neither is used.
  if (!key && /^Bearer\s+\S/i.test(authorization ?? "")) {
    const what = /,\s*Bearer\s/i.test(authorization ?? "")
      ? "more than one API key"
      : "more than one word after Bearer";
    throw new EngramError(
      "auth",
      "auth.invalid_key",
      `The Authorization header holds ${what}; send one: 'Authorization: Bearer egm_...'.`,
    );
  }
  if (!key) throw new EngramError("auth", "auth.missing_key", "Send your API key as 'Authorization: Bearer egm_...'.");
  if (!KEY.test(key)) throw new EngramError("auth", "auth.invalid_key", "The API key is not valid.");
  return { key, prefix: prefixOf(key), hash: hashKey(key) };
}

/** Validates the optional `X-User-Id`; '' means the tenant's shared space. */
export function userIdFrom(header: string | undefined): string {
  if (header === undefined) return "";
  if (!USER_ID.test(header)) {
    throw new EngramError("input", "user.invalid_id", "X-User-Id must be 1-128 characters of A-Z a-z 0-9 . _ : @ -");
  }
  return header;
}

/**
 * The caller of a request without a key on a Digital Twin route (`/api/*`) when KEYLESS_TENANT
 * names a tenant: that tenant (created on first use), the end user from `x-user-id`, and its
 * rate limits counted per client address, since anyone can claim any user id.
 */
export async function keyless(
  db: Db,
  tenantName: string,
  userIdHeader: string | undefined,
  clientAddress: string,
): Promise<Caller> {
  const userId = userIdFrom(userIdHeader);
  // The shared space is what every end user's chat reads: an anonymous caller must not write it (or share
  // conversations with every other anonymous caller). Without a key, a request speaks for one end user.
  if (!userId) {
    throw new EngramError(
      "auth",
      "auth.missing_key",
      "Without an API key, name the end user with X-User-Id (the tenant's shared space needs a key: 'Authorization: Bearer egm_...').",
    );
  }
  const tenant = (await Tenant.byName(db, tenantName)) ?? (await Tenant.ensure(db, tenantName));
  return {
    tenantId: tenant.id,
    tenantName: tenant.name,
    keyPrefix: "keyless",
    userId,
    rateLimits: tenant.rateLimits ?? {},
    clientAddress,
  };
}
