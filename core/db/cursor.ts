/**
 * Keyset-page cursors, one format for every list: base64url of `time|tie`, the sort column's time and
 * the row's tie-breaker. The time is kept to the microsecond, as Postgres has it: rounded down to a JS
 * Date's millisecond, the next page skipped what was created in that millisecond before the page's last row.
 */
import { type SQL, sql } from "drizzle-orm";
import { inputError } from "../error";
import { UNSTORABLE } from "./text";

/** The column's time as a cursor keeps it (select it beside the row, pass it to `encode`). */
export const timeOf = (column: SQL): SQL => sql`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

export const encode = (at: string, tie: string | number): string => Buffer.from(`${at}|${tie}`).toString("base64url");

const invalid = () => inputError("request.invalid_cursor", "The cursor is not one this API returned.");

/** A time Postgres accepts: microseconds, or milliseconds in cursors written before them; Date rolls 02-30 over into March, and Postgres has no year 0. */
function checkTime(text: string): string {
  const seconds = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\.\d{3}(\d{3})?Z$/.exec(text)?.[1];
  if (!seconds || seconds.startsWith("0000")) throw invalid();
  // An impossible month or hour (9999-99-99) makes an invalid Date, whose toISOString throws.
  const date = new Date(`${seconds}Z`);
  if (Number.isNaN(date.getTime()) || !date.toISOString().startsWith(seconds)) throw invalid();
  return text;
}

/** The position a cursor names; a cursor this API did not make is a 400 `request.invalid_cursor`. */
export function decode(cursor: string): { at: string; tie: string } {
  const text = Buffer.from(cursor, "base64url").toString("utf8");
  const bar = text.indexOf("|");
  let [at, tie] = bar < 0 ? [] : [text.slice(0, bar), text.slice(bar + 1)];
  // Conversation cursors written before this format: base64url of `[time, id]`.
  if (text.startsWith("[")) [at, tie] = legacy(text);
  if (at === undefined || !tie || UNSTORABLE.test(tie)) throw invalid();
  return { at: checkTime(at), tie };
}

/** A cursor whose tie-breaker is a row's integer key. */
export function decodeKey(cursor: string): { at: string; key: number } {
  const { at, tie } = decode(cursor);
  if (!/^\d{1,15}$/.test(tie)) throw invalid();
  return { at, key: Number(tie) };
}

function legacy(text: string): [string?, string?] {
  try {
    const [at, id, ...rest] = JSON.parse(text) as unknown[];
    if (typeof at === "string" && typeof id === "string" && !rest.length) return [at, id];
  } catch {
    // not one of ours
  }
  return [];
}
