/**
 * Text for a terminal. What the CLI prints for people holds text anyone who can write to Engram chose (a remembered
 * memory, an ingested page's title, a file's name): a terminal obeys the control characters in it, so an escape
 * sequence stored there could recolour or clear the operator's screen, retitle the window, or, with a carriage return,
 * overwrite what was printed before it on the line. Bidirectional controls make it display in another order than it is
 * (Trojan Source, CVE-2021-42574): a title `report<U+202E>txt.exe` displays as `reportexe.txt`. Every C0 and C1 control
 * character, DEL and bidirectional control is shown as its escape instead (ESC as `\x1b`, RLO as `\u202e`); `--json`
 * output is JSON's own escaping and untouched.
 */

// \p{Cc}: U+0000-U+001F, U+007F and U+0080-U+009F. \p{Bidi_Control}: U+061C, U+200E-U+200F, U+202A-U+202E and
// U+2066-U+2069 (the embeddings, overrides, isolates and marks; right-to-left letters themselves are not controls).
const CONTROL = /[\p{Cc}\p{Bidi_Control}]/gu;
const CONTROL_BUT_LAYOUT = /[^\P{Cc}\n\t]|\p{Bidi_Control}/gu;

const escaped = (c: string) => {
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
};

/**
 * `text` with its control characters shown as escapes (`\x1b`, `\u202e`), so printing it cannot drive the terminal.
 * `lines` keeps newlines and tabs, for text laid out in lines (a chat answer; a Windows line end is a newline); without
 * it they are escaped too, so a one-line field (a title, a file's name) stays on its line.
 */
export function printable(text: string, options: { lines?: boolean } = {}): string {
  if (!options.lines) return text.replace(CONTROL, escaped);
  return text.replace(/\r\n/g, "\n").replace(CONTROL_BUT_LAYOUT, escaped);
}
