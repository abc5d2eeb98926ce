/**
 * Work a long-lived process (the local server) repeats while it lives: a pass, then a pause of `everyMs`, then the
 * next; a failed pass is logged and tried again later. Lambdas never run it (they rely on the cron).
 */
import { log } from "./log";

export interface Background {
  /** Stops scheduling passes and waits for the one under way. */
  stop(): Promise<void>;
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
  const stopping = new AbortController();
  const next = () => {
    running = pass(stopping.signal)
      .catch((error) => {
        if (!stopping.signal.aborted) log.warn(`${name}: pass failed; retrying later`, { error });
      })
      .finally(() => {
        if (!stopped) timer = setTimeout(next, everyMs).unref();
      });
  };
  timer = setTimeout(next, 0).unref();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      stopping.abort();
      await running;
    },
  };
}
