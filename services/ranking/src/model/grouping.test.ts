import { describe, expect, it } from "vitest";
import { groupByLength, groupingCost } from "./grouping.js";

/** Every split of the sorted order into consecutive runs of at most maxRun: the cheapest cost. */
function bruteForce(lengths: number[], overhead: number, maxRun: number): number {
  const sorted = [...lengths].sort((a, b) => a - b);
  const best = (from: number): number => {
    if (from === sorted.length) return 0;
    let b = Infinity;
    for (let to = from + 1; to <= Math.min(sorted.length, from + maxRun); to++) b = Math.min(b, overhead + (to - from) * Math.max(1, sorted[to - 1]!) + best(to));
    return b;
  };
  return best(0);
}

describe("groupByLength", () => {
  it("does not pad a short query to a long neighbour's length, and keeps close lengths in one run", () => {
    expect(groupByLength([40, 6])).toEqual([[1], [0]]);
    expect(groupByLength([9, 7, 8, 8])).toEqual([[1, 2, 3, 0]]);
    // three short queries and two long captions: two runs, the short one first
    expect(groupByLength([7, 31, 8, 29, 7])).toEqual([[0, 4, 2], [3, 1]]);
    // padding one row by 2 tokens is cheaper than a run of its own; by 10 it is not
    expect(groupByLength([10, 12, 12, 12], { overhead: 8 })).toEqual([[0, 1, 2, 3]]);
    expect(groupByLength([10, 20, 20, 20], { overhead: 8 })).toEqual([[0], [1, 2, 3]]);
    // with no run overhead, every length runs alone; with a huge one, everything runs together
    expect(groupByLength([5, 6, 5, 7], { overhead: 0 })).toEqual([[0, 2], [1], [3]]);
    expect(groupByLength([5, 40, 5, 7], { overhead: 1e9 })).toEqual([[0, 2, 3, 1]]);
    expect(groupByLength([])).toEqual([]);
  });

  it("names every index once, shortest runs first, arrival order kept among equal lengths, runs within maxRun", () => {
    const lengths = [12, 3, 12, 12, 40, 3, 12, 12, 12, 12, 12, 3];
    const groups = groupByLength(lengths, { maxRun: 4 });
    expect(groups.flat().sort((a, b) => a - b)).toEqual(lengths.map((_, i) => i));
    expect(groups.every((g) => g.length <= 4)).toBe(true);
    const widths = groups.map((g) => Math.max(...g.map((i) => lengths[i]!)));
    expect(widths).toEqual([...widths].sort((a, b) => a - b));
    expect(groups.flat().filter((i) => lengths[i] === 12)).toEqual([0, 2, 3, 6, 7, 8, 9, 10]);
  });

  it("finds the cheapest split (against every split, on random batches)", () => {
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    for (let t = 0; t < 300; t++) {
      const n = 1 + rnd(10);
      const lengths = Array.from({ length: n }, () => 1 + rnd(40));
      const overhead = [0, 4, 8, 16, 50][rnd(5)]!;
      const maxRun = 1 + rnd(n + 2);
      const groups = groupByLength(lengths, { overhead, maxRun });
      expect(groups.flat().sort((a, b) => a - b)).toEqual(lengths.map((_, i) => i));
      expect(groupingCost(lengths, groups, overhead)).toBe(bruteForce(lengths, overhead, maxRun));
    }
  });
});
