import { describe, expect, it } from "vitest";
import { MicroBatcher } from "./batcher.js";

describe("MicroBatcher", () => {
  it("runs a lone request at once and batches requests that arrive while a run is busy", async () => {
    const runs: number[][] = [];
    const b = new MicroBatcher<number, number>(async (items) => {
      runs.push(items);
      await new Promise((r) => setTimeout(r, 20));
      return items.map((i) => i * 2);
    }, 8);
    expect(await b.submit(1)).toBe(2);
    expect(runs).toEqual([[1]]);
    // Ten at once: the first flush takes all that are queued (up to 8), the rest follow together.
    const out = await Promise.all(Array.from({ length: 10 }, (_, i) => b.submit(i)));
    expect(out).toEqual(Array.from({ length: 10 }, (_, i) => i * 2));
    expect(runs.slice(1)).toEqual([
      [0, 1, 2, 3, 4, 5, 6, 7],
      [8, 9],
    ]);
    expect(b.stats.runs).toBe(3);
    expect(b.stats.items).toBe(11);
  });

  it("rejects every request of a failed run and keeps working", async () => {
    let fail = true;
    const b = new MicroBatcher<number, number>(async (items) => {
      if (fail) throw new Error("boom");
      return items;
    }, 4);
    const r = await Promise.allSettled([b.submit(1), b.submit(2)]);
    expect(r.map((x) => x.status)).toEqual(["rejected", "rejected"]);
    fail = false;
    expect(await b.submit(3)).toBe(3);
  });
});
