import { EngramError } from "../core/error";

/** The EngramError `work` rejects with; anything else, a resolution included, fails the caller's test. */
export async function refusal(work: Promise<unknown>): Promise<EngramError> {
  const error = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof EngramError)) throw new Error(`expected an EngramError, got ${String(error)}`);
  return error;
}
