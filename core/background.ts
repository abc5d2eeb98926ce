/**
 * Work a long-lived process (the local server) repeats while it lives: a pass, then a pause of `everyMs`, then the
 * next; a failed pass is logged and tried again later. Lambdas never run it (they rely on the cron).
 */
import { log } from "./log";

export interface Background {
  /** Stops scheduling passes and waits for the one under way. */
  stop(): Promise<void>;
  /** Runs the next pass now (after the one under way, if any), as if no pass had failed: new work was asked for. */
  wake?(): void;
}

/**
 * `pass` is handed a signal that aborts when `stop` is called: a pass that heeds it (between its statements, and in
 * its calls out) ends promptly, so a process that must exit soon (`engram mcp` when its client closes it) does not
 * wait out a slow embedding call, or get killed in the middle of a write.
 */
export function repeat(name: string, everyMs: number, pass: (signal: AbortSignal) => Promise<void>): Background {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  /** Passes failed in a row: each doubles the pause, so a failure that lasts (a model refusing a chunk's text) is not
   * sent again every few seconds for as long as the process lives. */
  let failures = 0;
  const stopping = new AbortController();
  const next = () => {
    running = pass(stopping.signal)
      .then(
        () => {
          failures = 0;
        },
        (error) => {
          if (stopping.signal.aborted) return;
          failures++;
          const pauseMs = pauseAfter(everyMs, failures);
          log.warn(`${name}: pass failed; retrying in ${Math.round(pauseMs / 1000)} s`, { error, failures });
        },
      )
      .finally(() => {
        if (!stopped) timer = setTimeout(next, pauseAfter(everyMs, failures)).unref();
      });
  };
  timer = setTimeout(next, 0).unref();
  return {
    wake() {
      failures = 0;
      if (stopped) return;
      clearTimeout(timer);
      // A pass under way schedules the next itself, now without the failures' pause.
      void running.then(() => {
        if (stopped) return;
        clearTimeout(timer);
        timer = setTimeout(next, 0).unref();
      });
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      stopping.abort();
      await running;
    },
  };
}

/** The longest pause after failed passes: a failure that clears (the provider back) is still noticed within minutes. */
export const MAX_PAUSE_MS = 10 * 60_000;

/** The pause before the next pass: `everyMs`, doubled for each pass failed in a row, at most MAX_PAUSE_MS. */
export const pauseAfter = (everyMs: number, failures: number) =>
  Math.min(everyMs * 2 ** Math.min(failures, 30), Math.max(everyMs, MAX_PAUSE_MS));
