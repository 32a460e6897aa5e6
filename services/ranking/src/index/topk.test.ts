import { describe, expect, it } from "vitest";
import { dotTopK, exactTopK } from "./topk.js";
import { GalleryIndex } from "./gallery.js";
import { batchTopK } from "./similarity.js";

function rand(n: number, seed = 1): Float32Array {
  let s = seed;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    out[i] = s / 2 ** 31 - 0.5;
  }
  return out;
}

function normalise(m: Float32Array, dim: number): Float32Array {
  for (let r = 0; r < m.length / dim; r++) {
    let n = 0;
    for (let d = 0; d < dim; d++) n += m[r * dim + d]! ** 2;
    n = Math.sqrt(n);
    for (let d = 0; d < dim; d++) m[r * dim + d]! /= n;
  }
  return m;
}


/** A gallery of n images with one caption each, embeddings shared by images and captions. */
function galleryOf(emb: Float32Array, n: number, split: (i: number) => number, caption: (i: number) => string): GalleryIndex {
  return new GalleryIndex({
    modelVersion: "m-0000000000000000",
    dataset: "t",
    datasetVersion: "0000000000000000",
    dim: emb.length / n,
    builtAt: new Date(),
    imageIds: Array.from({ length: n }, (_, i) => `img${i}`),
    imageSplits: Uint8Array.from({ length: n }, (_, i) => split(i)),
    imageCaptions: Array.from({ length: n }, (_, i) => [caption(i)]),
    imageEmb: emb,
    captionEmb: emb,
  });
}

describe("top-k", () => {
  const dim = 32;
  const m = normalise(rand(2000 * dim), dim);
  const q = normalise(rand(dim, 7), dim);

  it("usearch's exact search agrees with the TypeScript loop and a full sort", () => {
    const scores = Array.from({ length: 2000 }, (_, r) => ({ row: r, score: [...q].reduce((s, v, d) => s + v * m[r * dim + d]!, 0) }));
    scores.sort((a, b) => b.score - a.score);
    const ref = scores.slice(0, 10).map((s) => s.row);
    expect(dotTopK(m, dim, q, 10).map((h) => h.row)).toEqual(ref);
    const hits = exactTopK(m, dim, q, 10);
    expect(hits.map((h) => h.row)).toEqual(ref);
    hits.forEach((h, i) => expect(h.score).toBeCloseTo(scores[i]!.score, 5));
    expect(exactTopK(m, dim, q, 5000)).toHaveLength(2000);
  });

  it("takes a row of a matrix as the query (a subarray view; usearch ignores view offsets)", () => {
    const row = 1234;
    const view = m.subarray(row * dim, (row + 1) * dim);
    expect(exactTopK(m, dim, view, 3)[0]!.row).toBe(row);
    expect(dotTopK(m, dim, view, 3)[0]!.row).toBe(row);
    expect(exactTopK(m.subarray(0, 1000 * dim), dim, view, 3)[0]!.row).toBe(dotTopK(m.subarray(0, 1000 * dim), dim, view, 3)[0]!.row);
  });

  it("filters by split and maps rows back; HNSW finds the same best images", () => {
    const n = 2000;
    const idx = galleryOf(m, n, (i) => (i % 3) + 1, (i) => `caption ${i}`);
    const all = idx.searchImages(q, 10);
    const test = idx.searchImages(q, 10, 3);
    expect(test.every((h) => idx.data.imageSplits[h.row] === 3)).toBe(true);
    expect(test[0]!.row).toBe(all.find((h) => idx.data.imageSplits[h.row] === 3)!.row);
    expect(idx.searchCaptions(q, 3)[0]!.row).toBe(all[0]!.row);
    idx.useHnsw();
    const approx = idx.searchImages(q, 10);
    const overlap = approx.filter((h) => all.some((a) => a.row === h.row)).length;
    expect(overlap).toBeGreaterThanOrEqual(9);
    expect(approx[0]!.score).toBeCloseTo(all[0]!.score, 5);
  });

  it("batched Gemm+TopK on onnxruntime finds what one scan per query finds", async () => {
    const qs = normalise(rand(5 * dim, 99), dim);
    const batched = await batchTopK(m, dim, qs, 7);
    expect(batched).toHaveLength(5);
    batched.forEach((hits, i) => {
      const ref = dotTopK(m, dim, qs.subarray(i * dim, (i + 1) * dim), 7);
      expect(hits.map((h) => h.row)).toEqual(ref.map((h) => h.row));
      hits.forEach((h, j) => expect(h.score).toBeCloseTo(ref[j]!.score, 5));
    });
  });

  it("concurrent index searches are gathered into one run and agree with single searches", async () => {
    const n = 1500;
    const idx = galleryOf(m.slice(0, n * dim), n, (i) => (i % 2) + 2, () => "c");
    const qs = Array.from({ length: 12 }, (_, i) => normalise(rand(dim, 500 + i), dim));
    const runs = idx.searches.stats.runs;
    const got = await Promise.all(qs.map((q, i) => (i % 3 === 0 ? idx.findCaptions(q, 5, 3) : idx.findImages(q, 4 + (i % 2), i % 2 ? 2 : 0))));
    expect(idx.searches.stats.runs - runs).toBe(1);
    qs.forEach((q, i) => {
      const ref = i % 3 === 0 ? idx.searchCaptions(q, 5, 3) : idx.searchImages(q, 4 + (i % 2), i % 2 ? 2 : 0);
      expect(got[i]!.map((h) => h.row)).toEqual(ref.map((h) => h.row));
    });
  });
});
