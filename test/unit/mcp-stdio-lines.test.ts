/**
 * `engram mcp`'s input filter: blank and whitespace-only lines never reach the SDK's reader, every other line does,
 * whole and valid UTF-8, and a line that is not UTF-8, or past POST /mcp's body limit, is refused instead.
 */
import { Readable } from "node:stream";
import { text } from "node:stream/consumers";
import { describe, expect, it } from "vitest";
import { inputLines, type LineRefusal } from "../../cli/mcp";
import { MAX_BODY_BYTES } from "../../core/api/http";

/** What the reader gets when `chunks` arrive one by one, and what was refused. */
async function filtered(chunks: (string | Buffer)[]) {
  const refused: LineRefusal[] = [];
  const lines = inputLines((refusal) => refused.push(refusal));
  const out = await text(Readable.from(chunks.map((c) => (typeof c === "string" ? Buffer.from(c) : c))).pipe(lines));
  return { out, refused };
}

const NOT_UTF8 = {
  code: -32700,
  message: "Parse error: The line is not valid UTF-8.",
  data: { code: "request.invalid_utf8" },
};

/** As POST /mcp answers a body over 6 MB (core/api/http.ts): -32600, the API's code in `data`. */
const TOO_LARGE = {
  code: -32600,
  message: "Invalid Request: The line is larger than 6 MB.",
  data: { code: "request.too_large" },
};

describe("inputLines", () => {
  it("drops empty, CR-only and whitespace-only lines and keeps the others whole", async () => {
    expect((await filtered(['\n\r\n \t \r\n{"id":1}\r\n\n   \n{bad\n'])).out).toBe('{"id":1}\r\n{bad\n');
  });

  it("hands a line `take` keeps (a batch) to it alone, and passes the others on", async () => {
    const taken: string[] = [];
    const lines = inputLines(
      () => {},
      (line) => line[0] === 0x5b && taken.push(line.toString()) > 0,
    );
    const out = await text(Readable.from([Buffer.from('{"id":1}\n  [{"id":2}]\n{"id":3}\n')]).pipe(lines));
    expect([out, taken]).toEqual(['{"id":1}\n{"id":3}\n', ['[{"id":2}]\n']]);
  });

  it("drops a line's leading whitespace, which JSON ignores, and nothing after it", async () => {
    expect((await filtered(['  \t{"a": " x "}  \n'])).out).toBe('{"a": " x "}  \n');
  });

  it("reads lines split anywhere across chunks, multi-byte characters included", async () => {
    const input = ' \r\n  {"note":"café ☕"}\n\r\n{"b":2}\n';
    // Every byte its own chunk: a blank line, a line start and a character each cut in pieces.
    const chunks = [...Buffer.from(input)].map((b) => Buffer.from([b]));
    expect(await filtered(chunks)).toEqual({ out: '{"note":"café ☕"}\n{"b":2}\n', refused: [] });
  });

  it("ends a last line sent without its newline, so the reader, which waits for one, gets it", async () => {
    expect((await filtered(["\n", '  {"partial":'])).out).toBe('{"partial":\n');
    // Nothing is added after a line that ended, or to input of blank lines only.
    expect((await filtered(['{"a":1}\n'])).out).toBe('{"a":1}\n');
    expect((await filtered(["\n", "  \n"])).out).toBe("");
  });

  it("refuses a line that is not UTF-8 as POST /mcp refuses such a body, and reads the lines around it", async () => {
    // Latin-1 é (0xe9), which a lenient decoder stores as U+FFFD; split from its line's end by a chunk boundary.
    const latin1 = Buffer.from('{"id":2,"content":"caf\xe9 latin1"}', "latin1");
    const { out, refused } = await filtered(['{"id":1}\n', latin1.subarray(0, 22), latin1.subarray(22), '\n{"id":3}']);
    expect(out).toBe('{"id":1}\n{"id":3}\n');
    expect(refused).toEqual([NOT_UTF8]);
    // A multi-byte character cut off by the line's end, an overlong encoding and an encoded surrogate too.
    for (const bad of [
      [0xe2, 0x98],
      [0xc0, 0xaf],
      [0xed, 0xa0, 0x80],
    ]) {
      const line = Buffer.concat([Buffer.from('{"x":"'), Buffer.from(bad), Buffer.from('"}\n')]);
      expect(await filtered([line, '{"ok":1}\n'])).toEqual({ out: '{"ok":1}\n', refused: [NOT_UTF8] });
    }
    // The last line, without its newline, too.
    expect(await filtered(['{"a":1}\n', Buffer.from([0x7b, 0xff])])).toEqual({ out: '{"a":1}\n', refused: [NOT_UTF8] });
  });

  it("refuses a line past POST /mcp's body limit as POST /mcp refuses such a body, drops its rest, and reads the lines after it", async () => {
    const pad = "a".repeat(MAX_BODY_BYTES);
    const chunks = ['{"id":1}\n{"id":2,"x":"', pad, 'bbbb"}\n{"id":3}\n', '{"id":4,"y":"', pad];
    const { out, refused } = await filtered(chunks);
    expect(out).toBe('{"id":1}\n{"id":3}\n');
    expect(refused).toEqual([TOO_LARGE, TOO_LARGE]);
  });

  it("takes a line of exactly the body limit, as POST /mcp takes such a body", async () => {
    const line = `{"x":"${"a".repeat(MAX_BODY_BYTES - 8)}"}`;
    const { out, refused } = await filtered([line.slice(0, 1000), line.slice(1000), "\n"]);
    expect([out.length, refused]).toEqual([MAX_BODY_BYTES + 1, []]);
  });

  it("refuses a long line as soon as it grows past the limit, before its newline comes, and passes none of it on", async () => {
    const refused: LineRefusal[] = [];
    const lines = inputLines((refusal) => refused.push(refusal));
    const out: Buffer[] = [];
    lines.on("data", (chunk: Buffer) => out.push(chunk));
    const write = (chunk: string) => new Promise((resolve) => lines.write(Buffer.from(chunk), resolve));
    await write('{"x":"');
    await write("a".repeat(MAX_BODY_BYTES));
    // Refused before its newline came; what follows is dropped, however much of it there is, up to that newline.
    expect(refused).toEqual([TOO_LARGE]);
    for (let i = 0; i < 4; i++) await write("b".repeat(MAX_BODY_BYTES));
    expect([refused.length, lines.readableLength, out.length]).toEqual([1, 0, 0]);
    await write('"}\n{"id":5}\n');
    expect(Buffer.concat(out).toString()).toBe('{"id":5}\n');
  });
});
