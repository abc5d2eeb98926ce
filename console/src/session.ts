/**
 * Who the console speaks as. The local key comes from the local server (only to a page opened
 * on the same machine); another key and the end user are kept in this tab's sessionStorage only.
 */
import { credentials } from "./api";

const KEY = "engram.console.key";
const USER = "engram.console.user";
export const USER_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

function read(name: string): string | null {
  try {
    return sessionStorage.getItem(name);
  } catch {
    return null;
  }
}

function write(name: string, value: string | null) {
  try {
    if (value === null) sessionStorage.removeItem(name);
    else sessionStorage.setItem(name, value);
  } catch {
    // storage unavailable (privacy mode): the choice lasts until reload
  }
}

let localKey: string | null = null;

export const session = {
  get localKey() {
    return localKey;
  },
  /** The key another person typed in, if any (this tab only). */
  get customKey() {
    return read(KEY);
  },
  get userId() {
    return credentials.userId;
  },
  init(local: string | null) {
    localKey = local;
    credentials.key = read(KEY) ?? local;
    const user = read(USER);
    credentials.userId = user && USER_ID.test(user) ? user : null;
  },
  useKey(key: string | null) {
    write(KEY, key);
    credentials.key = key ?? localKey;
  },
  useUser(userId: string | null) {
    write(USER, userId);
    credentials.userId = userId;
  },
};

/** A key shown without its secret part. */
export const maskKey = (key: string) => (key.length > 12 ? `${key.slice(0, 12)}…` : key);
