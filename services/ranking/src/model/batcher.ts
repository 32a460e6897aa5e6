/**
 * Micro-batching without a timer: the first request runs at once (no added latency at low
 * load); requests that arrive while `concurrency` runs are in progress wait for one to end and
 * then go together as one batch, up to `maxBatch`. A flush is a setImmediate, after the event
 * loop's I/O phase, so every request read off its socket meanwhile is gathered. `concurrency` is
 * the number of encoder threads (encoder-pool.ts); 1 for encoders on the main thread.
 *
 * A gathered batch is one run, or — with a `group` function — several, one after another in the
 * order it gives (the text encoder's: by token length, model/grouping.ts): each group's requests
 * are answered when their run ends, and a failed run fails only its own group.
 */
export interface BatchStats {
  /** Batches gathered (one per flush). */
  batches: number;
  /** Runs: one per batch, or one per group of a grouped batch. */
  runs: number;
  items: number;
  /** Histogram: items in a run → runs. */
  sizes: Map<number, number>;
}

interface Pending<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (err: unknown) => void;
}

/** Splits a gathered batch into runs: indices into `items`, each exactly once, in the order to run them. */
export type Grouping<I> = (items: I[]) => number[][];

export class MicroBatcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private running = 0;
  private scheduled = false;
  readonly stats: BatchStats = { batches: 0, runs: 0, items: 0, sizes: new Map() };

  constructor(
    private readonly run: (items: I[]) => Promise<O[]>,
    private readonly maxBatch: number,
    private readonly group?: Grouping<I>,
    private readonly concurrency = 1,
  ) {
    if (maxBatch < 1) throw new Error("maxBatch must be at least 1");
    if (!(concurrency >= 1)) throw new Error("concurrency must be at least 1");
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
    if (this.running >= this.concurrency || this.scheduled || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.running >= this.concurrency || this.queue.length === 0) return;
    this.running++;
    const batch = this.queue.splice(0, this.maxBatch);
    // another run may start beside this one with what is left or comes next
    this.schedule();
    this.stats.batches++;
    this.stats.items += batch.length;
    try {
      const groups = this.group ? checkGroups(this.group(batch.map((p) => p.item)), batch.length) : [batch.map((_, i) => i)];
      for (const g of groups) await this.runGroup(g.map((i) => batch[i]!));
    } catch (err) {
      // the grouping itself failed: nothing ran
      batch.forEach((p) => p.reject(err));
    } finally {
      this.running--;
      this.schedule();
    }
  }

  private async runGroup(group: Pending<I, O>[]): Promise<void> {
    this.stats.runs++;
    this.stats.sizes.set(group.length, (this.stats.sizes.get(group.length) ?? 0) + 1);
    try {
      const out = await this.run(group.map((p) => p.item));
      if (out.length !== group.length) throw new Error(`batch run returned ${out.length} results for ${group.length} inputs`);
      group.forEach((p, i) => p.resolve(out[i]!));
    } catch (err) {
      group.forEach((p) => p.reject(err));
    }
  }
}

/** The groups, if they name every index of the batch exactly once. */
function checkGroups(groups: number[][], n: number): number[][] {
  const seen = new Uint8Array(n);
  let count = 0;
  for (const g of groups) {
    if (g.length === 0) throw new Error("batch grouping returned an empty group");
    for (const i of g) {
      if (!(Number.isInteger(i) && i >= 0 && i < n) || seen[i]) throw new Error(`batch grouping names item ${i} of ${n} twice or out of range`);
      seen[i] = 1;
      count++;
    }
  }
  if (count !== n) throw new Error(`batch grouping covers ${count} of ${n} items`);
  return groups;
}
