import { setTimeout as sleep } from "node:timers/promises";

export interface RetryOptions {
  /** Attempts in all, including the first (default 6). */
  attempts?: number;
  /** Delay before the first retry (default 500 ms); doubles each time, with full jitter. */
  baseDelayMs?: number;
  /** Cap on one delay (default 15 s). */
  maxDelayMs?: number;
}

/** Exponential backoff with full jitter: the delay before retry `n` (1-based). */
function backoffDelay(n: number, opts: RetryOptions = {}, random: () => number = Math.random): number {
  const base = opts.baseDelayMs ?? 500;
  const max = opts.maxDelayMs ?? 15_000;
  const ceiling = Math.min(max, base * 2 ** (n - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * Calls `fn(attempt)` until it succeeds, `isRetryable(err)` says no, or attempts run out.
 * `onRetry` hears about each failure that will be retried.
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  isRetryable: (err: unknown) => boolean,
  opts: RetryOptions & { signal?: AbortSignal; onRetry?: (err: unknown, attempt: number, delayMs: number) => void } = {},
): Promise<T> {
  const attempts = Math.max(1, opts.attempts ?? 6);
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= attempts || !isRetryable(err) || opts.signal?.aborted) throw err;
      const delay = backoffDelay(attempt, opts);
      opts.onRetry?.(err, attempt, delay);
      await sleep(delay, undefined, opts.signal ? { signal: opts.signal } : {});
    }
  }
}
