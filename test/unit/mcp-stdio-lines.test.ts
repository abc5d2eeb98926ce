/**
 * `engram mcp`'s input filter: blank and whitespace-only lines never reach the SDK's reader, every other line does, and
 * a line past the bound is cut short.
 */
import { Readable } from "node:stream";
import { text } from "node:stream/consumers";
import { describe, expect, it } from "vitest";
import { withoutBlankLines } from "../../cli/mcp";

/** What the reader gets when `chunks` arrive one by one. */
const filtered = (chunks: string[]) => text(Readable.from(chunks.map((c) => Buffer.from(c))).pipe(withoutBlankLines()));

describe("withoutBlankLines", () => {
  it("drops empty, CR-only and whitespace-only lines and keeps the others whole", async () => {
    expect(await filtered(['\n\r\n \t \r\n{"id":1}\r\n\n   \n{bad\n'])).toBe('{"id":1}\r\n{bad\n');
  });

  it("drops a line's leading whitespace, which JSON ignores, and nothing after it", async () => {
    expect(await filtered(['  \t{"a": " x "}  \n'])).toBe('{"a": " x "}  \n');
  });

  it("reads lines split anywhere across chunks, multi-byte characters included", async () => {
    const input = ' \r\n  {"note":"café ☕"}\n\r\n{"b":2}\n';
    const bytes = Buffer.from(input);
    // Every byte its own chunk: a blank line, a line start and a character each cut in pieces.
    const chunks = [...bytes].map((b) => Buffer.from([b]));
    const out = await text(Readable.from(chunks).pipe(withoutBlankLines()));
    expect(out).toBe('{"note":"café ☕"}\n{"b":2}\n');
  });

  it("ends a last line sent without its newline, so the reader, which waits for one, gets it", async () => {
    expect(await filtered(["\n", '  {"partial":'])).toBe('{"partial":\n');
    // Nothing is added after a line that ended, or to input of blank lines only.
    expect(await filtered(['{"a":1}\n'])).toBe('{"a":1}\n');
    expect(await filtered(["\n", "  \n"])).toBe("");
  });

  it("cuts a line past the bound where it falls, drops its rest, and reads the lines after it", async () => {
    let cuts = 0;
    const chunks = ['{"id":1}\n{"id":2,"x":"', "a".repeat(30), 'bbbb"}\n{"id":3}\n', '{"id":4,"y":"', "c".repeat(20)];
    const out = await text(
      Readable.from(chunks.map((c) => Buffer.from(c))).pipe(
        withoutBlankLines(24, () => {
          cuts++;
        }),
      ),
    );
    expect(out).toBe(`{"id":1}\n{"id":2,"x":"${"a".repeat(11)}\n{"id":3}\n{"id":4,"y":"${"c".repeat(11)}\n`);
    expect(cuts).toBe(2);
  });
});
