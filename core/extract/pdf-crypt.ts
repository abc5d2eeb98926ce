/**
 * The PDF Standard security handler, as much of it as reading a file that opens without a password needs: the file
 * key the empty user password gives (ISO 32000-1 7.6.3, Algorithms 2, 4 and 5; ISO 32000-2 Algorithms 2.A and 2.B
 * for AES-256), each object's key (Algorithm 1) and a stream's data decrypted. core/extract/pdf-streams.ts bounds
 * what pdf.js decodes, so where pdf.js (unpdf 1.7) departs from the specification it is followed here: a key is found
 * exactly when pdf.js finds one, and it is the same key.
 */
import { createCipheriv, createDecipheriv, createHash } from "node:crypto";

/** A crypt filter's method for streams: none, RC4 (`V2`), AES-128 (`AESV2`) or AES-256 (`AESV3`). */
export type Method = "None" | "V2" | "AESV2" | "AESV3";

/** An object's number and generation, from its header (`12 0 obj`): RC4 and AES-128 keys are made from them. */
export interface ObjectId {
  num: number;
  gen: number;
}

/** The entries of a Standard /Encrypt dictionary and the file's /ID that the key is made from. */
export interface Standard {
  /** /V: 1, 2, 4 or 5. */
  version: number;
  /** /R. */
  revision: number;
  /** The key's length in bits, with pdf.js's defaults when /Length is absent. */
  bits: number;
  /** /O and /U, the owner and user password checks. */
  owner: Uint8Array;
  user: Uint8Array;
  /** /UE: under V5, the file key encrypted with the user password's. */
  userKey: Uint8Array;
  /** /P, the permissions. */
  permissions: number;
  /** Whether pdf.js counts metadata as encrypted: under V4-5 unless /EncryptMetadata is false, never under V1-2. */
  metadata: boolean;
  /** The first string of the trailer's /ID (empty without one). */
  id: Uint8Array;
}

const EMPTY = new Uint8Array();

/** Algorithm 2's padding: a password is completed to 32 bytes with its start (all of it, for the empty password). */
const PADDING = Buffer.from("28bf4e5e4e758a4164004e56fffa01082e2e00b6d0683e802f0ca9fe6453697a", "hex");

/** Algorithm 1's suffix for an AES object key. */
const SALT = Buffer.from("sAlT");

const hash = (algorithm: string, ...parts: Uint8Array[]): Buffer => {
  const digest = createHash(algorithm);
  for (const part of parts) digest.update(part);
  return digest.digest();
};

/** `bytes` cut or completed with zeros to `length`, as pdf.js reads a key or salt of another length than it wants. */
function sized(bytes: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  out.set(bytes.subarray(0, length));
  return out;
}

/** RC4 of `data` under `key`, written here: OpenSSL 3's default provider, and so node:crypto, no longer has it. */
export function rc4(key: Uint8Array, data: Uint8Array): Uint8Array {
  const s = Uint8Array.from({ length: 256 }, (_, i) => i);
  for (let i = 0, j = 0; i < 256; i++) {
    j = (j + (s[i] as number) + (key[i % key.length] as number)) & 255;
    [s[i], s[j]] = [s[j] as number, s[i] as number];
  }
  const out = new Uint8Array(data.length);
  for (let n = 0, i = 0, j = 0; n < data.length; n++) {
    i = (i + 1) & 255;
    const si = s[i] as number;
    j = (j + si) & 255;
    const sj = s[j] as number;
    s[i] = sj;
    s[j] = si;
    out[n] = (data[n] as number) ^ (s[(si + sj) & 255] as number);
  }
  return out;
}

/**
 * Algorithm 2 for the empty password (R2-R4). pdf.js takes the length from /Length under every revision (the
 * specification has R2 at 40 bits) and rehashes `bits / 8` bytes of each digest, zeros past its 16.
 */
function md5Key(s: Standard): Uint8Array {
  const length = s.bits >> 3;
  const p = s.permissions;
  const permissions = Uint8Array.of(p & 255, (p >> 8) & 255, (p >> 16) & 255, (p >>> 24) & 255);
  const unencryptedMetadata = s.revision >= 4 && !s.metadata ? Uint8Array.of(255, 255, 255, 255) : EMPTY;
  let digest: Uint8Array = hash("md5", PADDING, s.owner.subarray(0, 32), permissions, s.id, unencryptedMetadata);
  if (s.revision >= 3) for (let i = 0; i < 50; i++) digest = hash("md5", sized(digest, length));
  return digest.subarray(0, length);
}

/** Algorithms 4 and 5: whether `key` is the empty user password's, by the check value it makes of /U. */
function opensMd5(s: Standard, key: Uint8Array): boolean {
  let check: Uint8Array;
  if (s.revision >= 3) {
    check = rc4(key, hash("md5", PADDING, s.id));
    for (let round = 1; round <= 19; round++) {
      const roundKey = key.map((byte) => byte ^ round);
      check = rc4(roundKey, check);
    }
  } else check = rc4(key, PADDING);
  return check.every((byte, i) => s.user[i] === byte);
}

/** Algorithm 2.B (R6): SHA-256, then rounds of AES-128 and SHA-2 until the last byte allows an end. */
function hashR6(input: Uint8Array): Uint8Array {
  let k: Uint8Array = hash("sha256", input);
  let e: Uint8Array = Uint8Array.of(0);
  for (let round = 0; round < 64 || (e.at(-1) as number) > round - 32; round++) {
    // The password is empty and, for the user password, so is the extra data: K1 is K repeated 64 times.
    const cipher = createCipheriv("aes-128-cbc", k.subarray(0, 16), k.subarray(16, 32)).setAutoPadding(false);
    e = Buffer.concat([cipher.update(Buffer.concat(Array(64).fill(k))), cipher.final()]);
    const sum = e.subarray(0, 16).reduce((total, byte) => total + byte, 0);
    k = hash(["sha256", "sha384", "sha512"][sum % 3] as string, e);
  }
  return k.subarray(0, 32);
}

/** AES-CBC of whole blocks, no padding removed: how /UE is decrypted, and each stream once its IV is read. */
function cbc(algorithm: string, key: Uint8Array, iv: Uint8Array, data: Uint8Array): Buffer {
  const decipher = createDecipheriv(algorithm, key, iv).setAutoPadding(false);
  const whole = data.subarray(0, data.length - (data.length % 16));
  return Buffer.concat([decipher.update(whole), decipher.final()]);
}

/**
 * Algorithm 2.A for the empty password (R5 and R6; pdf.js hashes as R6 only for R6, as R5 otherwise): the user
 * password's hash with /U's validation salt must be /U's first 32 bytes; /UE, decrypted with its hash with the key
 * salt, is the file key.
 */
function sha2Key(s: Standard): Uint8Array | undefined {
  const digest = s.revision === 6 ? hashR6 : (input: Uint8Array) => hash("sha256", input);
  const salt = (at: number) => sized(s.user.subarray(at, at + 8), 8);
  const check = digest(salt(32));
  const user = s.user.subarray(0, 32);
  if (user.length !== 32 || !check.every((byte, i) => user[i] === byte)) return undefined;
  return cbc("aes-256-cbc", digest(salt(40)), new Uint8Array(16), s.userKey);
}

/**
 * The file key the empty user password opens, or undefined when it opens none (pdf.js then asks for a password;
 * with none given, as Engram gives none, it never tries the empty owner password).
 */
export function fileKey(s: Standard): Uint8Array | undefined {
  if (s.version === 5) return sha2Key(s);
  const key = md5Key(s);
  if (!opensMd5(s, key)) return undefined;
  // pdf.js widens a shorter key to 16 bytes (zeros after it) under V4.
  return s.version === 4 && key.length < 16 ? sized(key, 16) : key;
}

/** Algorithm 1: an object's key, from the file key and the object's number and generation (and "sAlT" for AES). */
function objectKey(key: Uint8Array, { num, gen }: ObjectId, aes: boolean): Uint8Array {
  const suffix = Uint8Array.of(num & 255, (num >> 8) & 255, (num >> 16) & 255, gen & 255, (gen >> 8) & 255);
  return hash("md5", key, suffix, aes ? SALT : EMPTY).subarray(0, Math.min(key.length + 5, 16));
}

/**
 * AES-CBC data as pdf.js reads it: the first 16 bytes are the IV, a trailing partial block is dropped, and the
 * padding is removed only when it is well formed (never an error).
 */
function aes(algorithm: string, key: Uint8Array, data: Uint8Array): Uint8Array {
  if (data.length < 16) return EMPTY;
  const plain = cbc(algorithm, key, data.subarray(0, 16), data.subarray(16));
  const pad = plain.at(-1) ?? 0;
  const padded = pad <= 16 && plain.subarray(plain.length - pad).every((byte) => byte === pad);
  return padded ? plain.subarray(0, plain.length - pad) : plain;
}

/**
 * A stream's data decrypted with `method` under the file key (as written for `None`), or undefined when the method's
 * key is made from the object's numbers and they are unknown. AES-256 uses the file key itself, cut or completed with
 * zeros to 32 bytes as pdf.js's cipher takes a key of another length.
 */
export function decrypt(
  data: Uint8Array,
  method: Method,
  key: Uint8Array,
  object: ObjectId | undefined,
): Uint8Array | undefined {
  if (method === "None") return data;
  if (method === "AESV3") return aes("aes-256-cbc", sized(key, 32), data);
  if (!object) return undefined;
  if (method === "V2") return rc4(objectKey(key, object, false), data);
  return aes("aes-128-cbc", objectKey(key, object, true), data);
}
