/**
 * Text for a terminal. What the CLI prints for people holds text anyone who can write to Engram chose (a remembered
 * memory, an ingested page's title, a file's name): a terminal obeys the control characters in it, so an escape
 * sequence stored there could recolour or clear the operator's screen, retitle the window, or, with a carriage return,
 * overwrite what was printed before it on the line. Every C0 and C1 control character and DEL is shown as its escape
 * instead (ESC as `\x1b`); `--json` output is JSON's own escaping and untouched.
 */

// \p{Cc}: U+0000-U+001F, U+007F and U+0080-U+009F.
const CONTROL = /\p{Cc}/gu;
const CONTROL_BUT_LAYOUT = /[^\P{Cc}\n\t]/gu;

const escaped = (c: string) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;

/**
 * `text` with its control characters shown as escapes (`\x1b`), so printing it cannot drive the terminal. `lines`
 * keeps newlines and tabs, for text laid out in lines (a chat answer; a Windows line end is a newline); without it
 * they are escaped too, so a one-line field (a title, a file's name) stays on its line.
 */
export function printable(text: string, options: { lines?: boolean } = {}): string {
  if (!options.lines) return text.replace(CONTROL, escaped);
  return text.replace(/\r\n/g, "\n").replace(CONTROL_BUT_LAYOUT, escaped);
}
