/** Near-duplicate groups from nearest neighbours: the same groups exactly and through the HNSW graph. */
import { describe, expect, it } from "vitest";
import { nearDuplicates, NEAR_DUPLICATE_COSINE } from "./duplicates.js";

/** Unit rows: `n` random directions, and for some of them copies nudged by `eps`. */
function rows(n: number, dim: number, copies: [of: number, eps: number][]): Float32Array {
  let s = 11;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5;
  const out: number[][] = [];
  for (let i = 0; i < n; i++) out.push(Array.from({ length: dim }, rnd));
  for (const [of, eps] of copies) out.push(out[of]!.map((v) => v + eps * rnd()));
  return Float32Array.from(out.flatMap((r) => {
    const norm = Math.hypot(...r);
    return r.map((v) => v / norm);
  }));
}

describe("near duplicates", () => {
  const dim = 32;
  // 300 random photos; photo 5 has two close copies (300, 301), photo 7 one (302), photo 9 one too far off (303)
  const emb = rows(300, dim, [[5, 0.05], [5, 0.08], [7, 0.05], [9, 1.5]]);
  const ids = Array.from({ length: 304 }, (_, i) => `p${String(i).padStart(3, "0")}`);

  it("groups each photo with those nearest to it at or above the threshold, the one they are nearest to first", async () => {
    const d = await nearDuplicates(ids, emb, dim);
    expect(d).toMatchObject({ threshold: NEAR_DUPLICATE_COSINE, method: "exact", photos: 5 });
    expect(d.groups.map((g) => g.photo_ids)).toEqual([["p005", "p300", "p301"], ["p007", "p302"]]);
    for (const g of d.groups) {
      expect(g.score).toBeGreaterThanOrEqual(NEAR_DUPLICATE_COSINE);
      expect(g.score).toBeLessThan(1);
    }
  });

  it("finds the same groups through an HNSW graph above the exact limit", async () => {
    const exact = await nearDuplicates(ids, emb, dim);
    const hnsw = await nearDuplicates(ids, emb, dim, { exactMax: 100 });
    expect(hnsw.method).toBe("hnsw");
    expect(hnsw.groups).toEqual(exact.groups);
  });

  it("has no groups for no photos, one photo, or photos all far apart", async () => {
    expect((await nearDuplicates([], new Float32Array(0), dim)).groups).toEqual([]);
    expect((await nearDuplicates(["a"], emb.slice(0, dim), dim)).groups).toEqual([]);
    expect((await nearDuplicates(ids.slice(0, 300), emb.slice(0, 300 * dim), dim)).groups).toEqual([]);
  });
});
