/**
 * Work a long-lived process (the local server) repeats while it lives: a pass, then a pause of `everyMs`, then the
 * next; a failed pass is logged and tried again later. Lambdas never run it (they rely on the cron).
 */
import { log } from "./log";

export interface Background {
  /** Stops scheduling passes and waits for the one under way. */
  stop(): Promise<void>;
}

export function repeat(name: string, everyMs: number, pass: () => Promise<void>): Background {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const next = () => {
    running = pass()
      .catch((error) => log.warn(`${name}: pass failed; retrying later`, { error }))
      .finally(() => {
        if (!stopped) timer = setTimeout(next, everyMs).unref();
      });
  };
  timer = setTimeout(next, 0).unref();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
