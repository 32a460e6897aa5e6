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

describe("MicroBatcher with a grouping", () => {
  it("runs a gathered batch as the grouping's runs, in its order; stats count each run and its size", async () => {
    const runs: number[][] = [];
    const b = new MicroBatcher<number, number>(
      async (items) => {
        runs.push(items);
        return items.map((i) => i * 10);
      },
      8,
      // even items, then odd ones
      (items) => [items.flatMap((x, i) => (x % 2 === 0 ? [i] : [])), items.flatMap((x, i) => (x % 2 ? [i] : []))].filter((g) => g.length > 0),
    );
    expect(await b.submit(3)).toBe(30);
    const answered: number[] = [];
    const out = await Promise.all([1, 2, 3, 4, 6].map((x) => b.submit(x).then((o) => (answered.push(x), o))));
    expect(out).toEqual([10, 20, 30, 40, 60]);
    expect(runs).toEqual([[3], [2, 4, 6], [1, 3]]);
    // each group is answered when its own run ends
    expect(answered).toEqual([2, 4, 6, 1, 3]);
    expect([b.stats.batches, b.stats.runs, b.stats.items]).toEqual([2, 3, 6]);
    expect(Object.fromEntries(b.stats.sizes)).toEqual({ 1: 1, 3: 1, 2: 1 });
  });

  it("fails only the failed run's group, and the whole batch when the grouping is wrong", async () => {
    const b = new MicroBatcher<number, number>(
      async (items) => {
        if (items.includes(13)) throw new Error("unlucky");
        return items;
      },
      8,
      (items) => items.map((_, i) => [i]),
    );
    const r = await Promise.allSettled([1, 13, 2].map((x) => b.submit(x)));
    expect(r.map((x) => x.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    const bad = new MicroBatcher<number, number>(async (items) => items, 8, (items) => [items.map((_, i) => i), [0]]);
    const e = await Promise.allSettled([bad.submit(1), bad.submit(2)]);
    expect(e.map((x) => x.status)).toEqual(["rejected", "rejected"]);
    expect(String((e[0] as PromiseRejectedResult).reason)).toMatch(/twice or out of range/);
  });
});
