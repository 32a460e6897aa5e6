/**
 * Query-bank normalisation in the index: biases equal a double-precision reference, and every
 * search path (one query, a gathered batch, a split view, HNSW) ranks by cosine + bias while
 * reporting the cosine.
 */
import { describe, expect, it } from "vitest";
import { itemBias, parseQueryBank, type QueryBank } from "../model/querybank.js";
import { GalleryIndex, type SplitNumber } from "./gallery.js";

function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function unitRows(n: number, d: number, r: () => number): Float32Array {
  const m = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += (m[i * d + j] = r() * 2 - 1) ** 2;
    for (let j = 0; j < d; j++) m[i * d + j]! /= Math.sqrt(s);
  }
  return m;
}

const dotAt = (m: Float32Array, row: number, q: Float32Array, d: number) => {
  let s = 0;
  for (let j = 0; j < d; j++) s += m[row * d + j]! * q[j]!;
  return s;
};

function refBias(bank: Float32Array, items: Float32Array, d: number, beta: number): number[] {
  const n = items.length / d;
  const m = bank.length / d;
  return Array.from({ length: n }, (_, i) => {
    const z = Array.from({ length: m }, (_, b) => beta * dotAt(bank, b, items.subarray(i * d, (i + 1) * d), d));
    const top = Math.max(...z);
    return -(top + Math.log(z.reduce((s, v) => s + Math.exp(v - top), 0))) / beta;
  });
}

const D = 16;
const r = rng(7);
const IMAGES = 240;
const imageEmb = unitRows(IMAGES, D, r);
const captionEmb = unitRows(IMAGES * 2, D, r);
const bank: QueryBank = { beta: 10, dim: D, images: unitRows(300, D, r), captions: unitRows(300, D, r) };
const splits = Uint8Array.from({ length: IMAGES }, (_, i) => (i % 3) + 1);

function gallery(): GalleryIndex {
  return new GalleryIndex({
    modelVersion: "m-0000000000000001",
    dataset: "toy",
    datasetVersion: "0000000000000001",
    dim: D,
    builtAt: new Date(0),
    imageIds: Array.from({ length: IMAGES }, (_, i) => `img${i}`),
    imageSplits: splits,
    imageCaptions: Array.from({ length: IMAGES }, (_, i) => [`a${i}`, `b${i}`]),
    imageEmb,
    captionEmb,
  });
}

/** The expected top k: by cosine + bias (ties by row), reported with the cosine. */
function expected(m: Float32Array, bias: number[], q: Float32Array, k: number, keep: (row: number) => boolean) {
  const rows = Array.from({ length: m.length / D }, (_, i) => i).filter(keep);
  return rows
    .map((row) => ({ row, cos: dotAt(m, row, q, D), order: dotAt(m, row, q, D) + bias[row]! }))
    .sort((a, b) => b.order - a.order || a.row - b.row)
    .slice(0, k);
}

describe("query-bank normalisation", () => {
  it("item biases equal a double-precision reference", async () => {
    const got = await itemBias(bank.captions, imageEmb, D, bank.beta);
    const want = refBias(bank.captions, imageEmb, D, bank.beta);
    expect(got.length).toBe(IMAGES);
    got.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThan(1e-5));
  });

  it("reads a bank from a model's files and refuses a malformed one", () => {
    const doc = { schema: "glimpse.querybank/v1", beta: 10, dim: D, images: 300, captions: 300, files: { images: "qi.f32", captions: "qc.f32" } };
    const files = {
      "querybank.json": Buffer.from(JSON.stringify(doc)),
      "qi.f32": new Uint8Array(bank.images.buffer.slice(0)),
      "qc.f32": new Uint8Array(bank.captions.buffer.slice(0)),
    };
    const qb = parseQueryBank(files, D)!;
    expect(qb.beta).toBe(10);
    expect([...qb.captions.subarray(0, 4)]).toEqual([...bank.captions.subarray(0, 4)]);
    expect(parseQueryBank({}, D)).toBeUndefined();
    expect(() => parseQueryBank(files, D + 1)).toThrow(/dim/);
    expect(() => parseQueryBank({ ...files, "qi.f32": new Uint8Array(12) }, D)).toThrow(/float32/);
    expect(() => parseQueryBank({ "querybank.json": files["querybank.json"], "qc.f32": files["qc.f32"] }, D)).toThrow(/lacks/);
  });

  it("every search path ranks by cosine + bias and reports the cosine", async () => {
    const index = gallery();
    await index.applyQueryBank(bank);
    expect(index.queryBankApplied).toBe(true);
    const ib = refBias(bank.captions, imageEmb, D, bank.beta);
    const cb = refBias(bank.images, captionEmb, D, bank.beta);
    const queries = Array.from({ length: 6 }, () => unitRows(1, D, r));
    let reordered = 0;
    for (const q of queries) {
      const want = expected(imageEmb, ib, q, 10, () => true);
      const plain = expected(imageEmb, new Array(IMAGES).fill(0), q, 10, () => true);
      if (want.map((h) => h.row).join() !== plain.map((h) => h.row).join()) reordered++;
      const got = index.searchImages(q, 10);
      expect(got.map((h) => h.row)).toEqual(want.map((h) => h.row));
      got.forEach((h, i) => expect(Math.abs(h.score - want[i]!.cos)).toBeLessThan(1e-5));
      const split = 2 as SplitNumber;
      expect(index.searchImages(q, 5, split).map((h) => h.row)).toEqual(expected(imageEmb, ib, q, 5, (row) => splits[row] === split).map((h) => h.row));
      const wantCaps = expected(captionEmb, cb, q, 8, () => true);
      const caps = index.searchCaptions(q, 8);
      expect(caps.map((h) => h.row)).toEqual(wantCaps.map((h) => h.row));
      caps.forEach((h, i) => expect(Math.abs(h.score - wantCaps[i]!.cos)).toBeLessThan(1e-5));
    }
    expect(reordered).toBeGreaterThan(0); // the biases really change rankings here
    // Concurrent searches are gathered into one batched product: the same answers.
    const batched = await Promise.all(queries.map((q) => index.findImages(q, 10)));
    batched.forEach((hits, i) => expect(hits.map((h) => h.row)).toEqual(index.searchImages(queries[i]!, 10).map((h) => h.row)));
    const batchedCaps = await Promise.all(queries.map((q) => index.findCaptions(q, 8, 3)));
    batchedCaps.forEach((hits, i) => expect(hits.map((h) => h.row)).toEqual(index.searchCaptions(queries[i]!, 8, 3).map((h) => h.row)));
    // HNSW: candidates from the graph, re-ranked by cosine + bias, with exact cosines. The graph is
    // approximate (and its multi-threaded build differs run to run), so it finds nearly all of the
    // exact top 10, not always every one.
    const exact = queries.map((q) => index.searchImages(q, 10).map((h) => h.row));
    index.useHnsw();
    let found = 0;
    queries.forEach((q, i) => {
      const got = index.searchImages(q, 10);
      const rank = got.map((h) => h.score + ib[h.row]!);
      rank.forEach((v, j) => j > 0 && expect(v).toBeLessThanOrEqual(rank[j - 1]! + 1e-6));
      got.forEach((h) => expect(Math.abs(h.score - dotAt(imageEmb, h.row, q, D))).toBeLessThan(1e-5));
      found += got.filter((h) => exact[i]!.includes(h.row)).length;
    });
    expect(found).toBeGreaterThanOrEqual(57); // of 60
  });

  it("without a bank the index ranks by cosine alone", async () => {
    const index = gallery();
    await index.applyQueryBank(undefined);
    expect(index.queryBankApplied).toBe(false);
    const q = unitRows(1, D, r);
    expect(index.searchImages(q, 10).map((h) => h.row)).toEqual(expected(imageEmb, new Array(IMAGES).fill(0), q, 10, () => true).map((h) => h.row));
  });
});
