/** Keyset cursors (core/db/cursor.ts): one format for documents and conversations, and what is refused. */
import { describe, expect, it } from "vitest";
import * as Cursor from "../../core/db/cursor";

const b64 = (text: string) => Buffer.from(text).toString("base64url");

describe("keyset cursors", () => {
  it("give back the time to the microsecond and the tie-breaker they were made from", () => {
    const at = "2026-12-05T07:30:01.123456Z";
    expect(Cursor.decodeKey(Cursor.encode(at, 42))).toEqual({ at, key: 42 });
    expect(Cursor.decode(Cursor.encode(at, "conv|1"))).toEqual({ at, tie: "conv|1" });
  });

  it("still read the cursors written before: milliseconds, and conversations' [time, id]", () => {
    expect(Cursor.decodeKey(b64("2026-12-05T07:30:01.123Z|7"))).toEqual({ at: "2026-12-05T07:30:01.123Z", key: 7 });
    expect(Cursor.decode(b64(JSON.stringify(["2026-12-05T07:30:01.123456Z", "c1"])))).toEqual({
      at: "2026-12-05T07:30:01.123456Z",
      tie: "c1",
    });
  });

  it.each([
    ["garbage", "nonsense"],
    ["a time Date.parse takes but Postgres refuses", b64("1|c1")],
    ["year 0000", b64("0000-01-01T00:00:00.000000Z|c1")],
    ["February 30th", b64("2026-02-30T00:00:00.000000Z|1")],
    ["month 99", b64("9999-99-99T12:23:37.376000Z|10")],
    ["hour 25", b64("2026-12-05T25:00:00.000000Z|10")],
    ["no tie-breaker", b64("2026-12-05T07:30:01.123456Z|")],
    ["a NUL in the tie-breaker", b64("2026-12-05T07:30:01.123456Z|a\u0000")],
    ["an old cursor with a number for an id", b64(JSON.stringify(["2026-12-05T07:30:01.123456Z", 1]))],
  ])("refuse %s as request.invalid_cursor", (_, cursor) => {
    expect(() => Cursor.decode(cursor)).toThrow(expect.objectContaining({ code: "request.invalid_cursor" }));
  });

  it("refuse a key that is not a whole number of at most 15 digits", () => {
    for (const key of ["-1", "1.5", "9223372036854775808", "1|2"]) {
      expect(() => Cursor.decodeKey(b64(`2026-12-05T07:30:01.123456Z|${key}`)), key).toThrow(
        expect.objectContaining({ code: "request.invalid_cursor" }),
      );
    }
  });
});
