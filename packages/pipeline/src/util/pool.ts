/**
 * Runs `fn` over `items` with at most `concurrency` calls in flight, in order of the items.
 * Stops starting new items after the first failure (or an abort) and rethrows it once the
 * ones in flight have settled.
 */
export async function forEachLimit<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined) {
      if (signal?.aborted) {
        failure = { err: signal.reason };
        return;
      }
      const i = next++;
      if (i >= items.length) return;
      try {
        await fn(items[i] as T, i);
      } catch (err) {
        failure ??= { err };
        return;
      }
    }
  };
  const n = Math.max(1, Math.min(concurrency, items.length));
  await Promise.all(Array.from({ length: n }, worker));
  if (failure !== undefined) throw failure.err;
}
