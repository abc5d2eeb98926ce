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

  it("shows bidirectional controls as escapes, so a title cannot display reordered (Trojan Source)", () => {
    // An RLO makes "txt.exe" display as "exe.txt"; isolates, marks and the Arabic letter mark reorder text too.
    expect(printable("report\u202etxt.exe")).toBe("report\\u202etxt.exe");
    expect(printable("a\u202ab\u202bc\u202cd\u202de")).toBe("a\\u202ab\\u202bc\\u202cd\\u202de");
    expect(printable("\u2066x\u2067y\u2068z\u2069")).toBe("\\u2066x\\u2067y\\u2068z\\u2069");
    expect(printable("\u200eleft\u200fright\u061c")).toBe("\\u200eleft\\u200fright\\u061c");
  });

  it("with lines, escapes bidirectional controls too, and leaves right-to-left text itself as it is", () => {
    expect(printable("שלום \u2067عربي\u2069\nnext\u202e line", { lines: true })).toBe(
      "שלום \\u2067عربي\\u2069\nnext\\u202e line",
    );
  });

  it("with lines, keeps newlines and tabs, reads a Windows line end as a newline and escapes a lone carriage return", () => {
    expect(printable("one\r\ntwo\tcols\rover\x1b[2J", { lines: true })).toBe("one\ntwo\tcols\\x0dover\\x1b[2J");
  });
});
