/**
 * Micro-batching without a timer: the first request runs at once (no added latency at low
 * load); requests that arrive while a run is in progress wait for it and then go together
 * as one run, up to `maxBatch`. onnxruntime-node runs a session synchronously on the main
 * thread, so every request that arrived during a run has been read off its socket by the
 * time the next flush (a setImmediate, after the event loop's I/O phase) gathers the queue.
 */
export interface BatchStats {
  runs: number;
  items: number;
  /** Histogram: batch size → runs. */
  sizes: Map<number, number>;
}

interface Pending<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (err: unknown) => void;
}

export class MicroBatcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private running = false;
  private scheduled = false;
  readonly stats: BatchStats = { runs: 0, items: 0, sizes: new Map() };

  constructor(
    private readonly run: (items: I[]) => Promise<O[]>,
    private readonly maxBatch: number,
  ) {
    if (maxBatch < 1) throw new Error("maxBatch must be at least 1");
  }

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  submitAll(items: I[]): Promise<O[]> {
    return Promise.all(items.map((i) => this.submit(i)));
  }

  get pending(): number {
    return this.queue.length;
  }

  private schedule(): void {
    if (this.running || this.scheduled || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    const batch = this.queue.splice(0, this.maxBatch);
    this.stats.runs++;
    this.stats.items += batch.length;
    this.stats.sizes.set(batch.length, (this.stats.sizes.get(batch.length) ?? 0) + 1);
    try {
      const out = await this.run(batch.map((p) => p.item));
      if (out.length !== batch.length) throw new Error(`batch run returned ${out.length} results for ${batch.length} inputs`);
      batch.forEach((p, i) => p.resolve(out[i]!));
    } catch (err) {
      batch.forEach((p) => p.reject(err));
    } finally {
      this.running = false;
      this.schedule();
    }
  }
}
