/** What the CLI prints for people: stored text shows its control characters, it never sends them to the terminal. */
import { describe, expect, it } from "vitest";
import { printable } from "../../cli/printable";

describe("printable", () => {
  it("shows an escape sequence, a bell and DEL as escapes instead of sending them", () => {
    expect(printable("wombats \x1b[31mRED\x1b[0m and \x1b]0;pwned\x07 title\x7f")).toBe(
      "wombats \\x1b[31mRED\\x1b[0m and \\x1b]0;pwned\\x07 title\\x7f",
    );
  });

  it("shows C1 controls (a one-byte CSI, NEL) as escapes and leaves other text as it is", () => {
    expect(printable("a\u009b31mb\u0085c")).toBe("a\\x9b31mb\\x85c");
    expect(printable("café · 日本 … \u200b")).toBe("café · 日本 … \u200b");
  });

  it("keeps a one-line field on its line: newline, tab and carriage return are escaped", () => {
    expect(printable("new\nline.md\tx\ry")).toBe("new\\x0aline.md\\x09x\\x0dy");
  });

  it("with lines, keeps newlines and tabs, reads a Windows line end as a newline and escapes a lone carriage return", () => {
    expect(printable("one\r\ntwo\tcols\rover\x1b[2J", { lines: true })).toBe("one\ntwo\tcols\\x0dover\\x1b[2J");
  });
});
