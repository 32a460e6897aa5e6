/**
 * Messages a producer pushes, read by one server-streaming handler as an async iterable.
 * Register `push` with the producer before reading a snapshot, so nothing falls between the
 * two. `close()` ends it after the queued messages; an aborted `signal` ends it at once and
 * unsubscribes (through `onClose`), since a cancelled stream may never resume its generator.
 */
export class Subscription<T> implements AsyncIterable<T> {
  private readonly queue: T[] = [];
  private wake: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly signal: AbortSignal,
    private readonly onClose: () => void = () => {},
  ) {
    signal.addEventListener("abort", this.abort);
  }

  private readonly abort = (): void => {
    this.queue.length = 0;
    this.close();
  };

  readonly push = (message: T): void => {
    if (this.closed) return;
    this.queue.push(message);
    this.wake?.();
  };

  readonly close = (): void => {
    if (this.closed) return;
    this.closed = true;
    this.signal.removeEventListener("abort", this.abort);
    this.onClose();
    this.wake?.();
  };

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    if (this.signal.aborted) this.abort();
    try {
      for (;;) {
        if (this.queue.length > 0) {
          yield this.queue.shift()!;
          continue;
        }
        if (this.closed) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
    } finally {
      this.close();
    }
  }
}
